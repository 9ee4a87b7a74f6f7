// Tests of the data dir lock (src/storage/lock_file.ts): one holder at a time, a clear error
// naming the holder, stale locks replaced, release that never removes another's lock.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../src/runtime/fs.js';
import { acquireLock } from '../src/storage/lock_file.js';
import { StoreError } from '../src/runtime/errors.js';

const fs = new NodeFs();
const STARTED = 1_700_000_000_000;
let dir = '';

beforeEach(() => {
  dir = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-lock-'));
});
afterEach(() => {
  nodeFs.rmSync(dir, { recursive: true, force: true });
});

const alive = (): boolean => true;
const dead = (): boolean => false;

function lockError(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StoreError && err.code === 'LOCKED', String(err));
    return err;
  }
  assert.fail('expected LOCKED');
}

test('LOCK holds the pid, host and start time; a second acquire fails naming the pid', () => {
  const lock = acquireLock(fs, dir, { pid: 4242, host: 'h1', nowMs: STARTED }, alive);
  assert.deepEqual(JSON.parse(nodeFs.readFileSync(join(dir, 'LOCK'), 'utf8')), { pid: 4242, host: 'h1', started: STARTED });
  const err = lockError(() => acquireLock(fs, dir, { pid: 5000, host: 'h1', nowMs: STARTED + 1 }, alive));
  assert.equal(err.message, `data dir ${dir} is held by pid 4242 (started ${new Date(STARTED).toISOString()})`);
  lock.release();
  assert.equal(nodeFs.existsSync(join(dir, 'LOCK')), false);
  const again = acquireLock(fs, dir, { pid: 5000, host: 'h1', nowMs: STARTED + 2 }, alive);
  again.release();
});

test('a stale lock (holder dead on this host) is replaced; asks about the right pid', () => {
  acquireLock(fs, dir, { pid: 111, host: 'h1', nowMs: STARTED }, alive); // never released: crashed
  const asked: number[] = [];
  const lock = acquireLock(fs, dir, { pid: 222, host: 'h1', nowMs: STARTED + 5 }, (pid) => {
    asked.push(pid);
    return false;
  });
  assert.deepEqual(asked, [111]);
  assert.equal(JSON.parse(nodeFs.readFileSync(join(dir, 'LOCK'), 'utf8')).pid, 222);
  lock.release();
});

test('a holder on another host cannot be checked, so it holds the lock', () => {
  acquireLock(fs, dir, { pid: 111, host: 'other', nowMs: STARTED }, alive);
  lockError(() => acquireLock(fs, dir, { pid: 222, host: 'h1', nowMs: STARTED }, dead));
});

test('an empty or garbled LOCK (creator died before writing it) counts as stale', () => {
  for (const content of ['', '{"pid":', 'null', '{"pid": -3, "host": "h1", "started": 1}']) {
    nodeFs.writeFileSync(join(dir, 'LOCK'), content);
    const lock = acquireLock(fs, dir, { pid: 7, host: 'h1', nowMs: STARTED }, alive);
    lock.release();
    assert.equal(nodeFs.existsSync(join(dir, 'LOCK')), false, JSON.stringify(content));
  }
});

test('release only removes a lock that is still ours, and is idempotent', () => {
  const first = acquireLock(fs, dir, { pid: 1, host: 'h1', nowMs: STARTED }, alive);
  // Someone judged us dead and took over.
  const second = acquireLock(fs, dir, { pid: 2, host: 'h1', nowMs: STARTED + 1 }, dead);
  first.release();
  assert.equal(JSON.parse(nodeFs.readFileSync(join(dir, 'LOCK'), 'utf8')).pid, 2, 'the newer lock survives');
  second.release();
  second.release();
  assert.equal(nodeFs.existsSync(join(dir, 'LOCK')), false);
});
