// The replication history file (src/storage/history.ts, docs/replica.md): made once for a new
// store, kept across opens, replaced atomically at a promotion that keeps the previous history
// and where it ended; which replicas may continue; a damaged file is an error, never a new
// history (which would send every replica into a full copy, or worse, let them follow blindly).
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../src/runtime/fs.js';
import { HISTORY_FILE, canContinue, loadHistory, loadOrStartHistory, promote } from '../src/storage/history.js';
import { codeOf } from './helpers/store_error.js';

const fs = new NodeFs();
let dir = '';

beforeEach(() => {
  dir = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-history-'));
});
afterEach(() => {
  nodeFs.rmSync(dir, { recursive: true, force: true });
});

test('a new store starts a history once; the next open finds the same one', () => {
  assert.equal(loadHistory(fs, dir), null);
  const h = loadOrStartHistory(fs, dir);
  assert.match(h.id, /^[0-9a-f]{40}$/);
  assert.equal(h.since, 1);
  assert.deepEqual(loadOrStartHistory(fs, dir), h);
  assert.notEqual(loadOrStartHistory(fs, nodeFs.mkdtempSync(join(dir, 'other-'))).id, h.id, 'another store, another history');
});

test('promotion: a new history after the last LSN, the old one kept as the previous', () => {
  const h = loadOrStartHistory(fs, dir);
  const p = promote(fs, dir, h, 500);
  assert.notEqual(p.id, h.id);
  assert.equal(p.since, 501);
  assert.deepEqual(p.previous, { id: h.id, end: 500 });
  assert.deepEqual(loadHistory(fs, dir), p, 'durable');
  // who may continue from the promoted store
  assert.equal(canContinue(p, p.id, 500), true, 'its own history from its start');
  assert.equal(canContinue(p, p.id, 800), true);
  assert.equal(canContinue(p, h.id, 500), true, 'a replica of the old history up to where it ended');
  assert.equal(canContinue(p, h.id, 120), true);
  assert.equal(canContinue(p, h.id, 501), false, 'past the fork: it holds records the new history does not');
  assert.equal(canContinue(p, 'f'.repeat(40), 10), false, 'a history it never had');
  // a second promotion forgets the first history
  const q = promote(fs, dir, p, 900);
  assert.equal(canContinue(q, h.id, 10), false);
  assert.equal(canContinue(q, p.id, 900), true);
  assert.equal(codeOf(() => promote(fs, dir, q, 100)), 'BAD_ARGUMENT', 'not before the history began');
});

test('a damaged history file is an error naming it, never a new history', () => {
  const path = join(dir, HISTORY_FILE);
  for (const bad of ['{', '[]', '{"id":"xyz","since":1}', `{"id":"${'a'.repeat(40)}","since":0}`, `{"id":"${'a'.repeat(40)}","since":5,"previous":{"id":"${'b'.repeat(40)}","end":7}}`, 'x'.repeat(5000)]) {
    nodeFs.writeFileSync(path, bad);
    assert.equal(codeOf(() => loadOrStartHistory(fs, dir)), 'CORRUPT', bad.slice(0, 40));
    assert.equal(nodeFs.readFileSync(path, 'utf8'), bad, 'left as it was');
  }
});
