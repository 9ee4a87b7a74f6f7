// Tests of whole-file replacement (src/storage/atomic_file.ts): a failure at any step leaves
// the old file or the new one, the directory is fsynced after the rename, stale temps go away.
// (The volume registry that uses it has test/registry.test.ts.)
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { NodeFs, type FileHandle, type Fs, type OpenMode } from '../src/runtime/fs.js';
import { canaries, resetCanaries } from '../src/runtime/canary.js';
import { removeStaleTemp, replaceFileAtomically } from '../src/storage/atomic_file.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
let dir = '';

beforeEach(() => {
  dir = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-atomic-'));
  resetCanaries();
});
afterEach(() => {
  resetCanaries();
  nodeFs.rmSync(dir, { recursive: true, force: true });
});

type Step = 'open' | 'write' | 'sync' | 'close' | 'rename' | 'syncDir';

/** NodeFs that logs each step and can fail at a chosen one. */
class StepFs implements Fs {
  private readonly inner = new NodeFs();
  log: Step[] = [];
  failAt: Step | null = null;
  private step(s: Step): void {
    this.log.push(s);
    if (this.failAt === s) throw Object.assign(new Error(`injected failure at ${s}`), { code: 'EIO' });
  }
  open(path: string, mode: OpenMode): FileHandle {
    if (mode === 'exclusive') this.step('open');
    const h = this.inner.open(path, mode);
    return {
      path: h.path,
      read: (b, p) => h.read(b, p),
      write: (b, p) => {
        this.step('write');
        h.write(b, p);
      },
      sync: () => {
        this.step('sync');
        h.sync();
      },
      truncate: (n) => h.truncate(n),
      size: () => h.size(),
      close: () => {
        h.close();
        this.step('close');
      },
    };
  }
  exists(p: string): boolean { return this.inner.exists(p); }
  readdir(p: string): string[] { return this.inner.readdir(p); }
  mkdir(p: string): void { this.inner.mkdir(p); }
  rename(a: string, b: string): void {
    this.step('rename');
    this.inner.rename(a, b);
  }
  unlink(p: string): void { this.inner.unlink(p); }
  syncDir(p: string): void {
    this.step('syncDir');
    this.inner.syncDir(p);
  }
  readFile(p: string): Uint8Array { return this.inner.readFile(p); }
}

test('replace writes NAME.tmp, syncs, renames, then syncs the directory', () => {
  const fs = new StepFs();
  const path = join(dir, 'thing.json');
  replaceFileAtomically(fs, path, enc('one'));
  assert.deepEqual(fs.log, ['open', 'write', 'sync', 'close', 'rename', 'syncDir']);
  replaceFileAtomically(fs, path, enc('two, longer'));
  assert.equal(nodeFs.readFileSync(path, 'utf8'), 'two, longer');
  replaceFileAtomically(fs, path, enc('3'));
  assert.equal(nodeFs.readFileSync(path, 'utf8'), '3', 'a shorter file leaves no tail of the old one');
  assert.deepEqual(nodeFs.readdirSync(dir), ['thing.json']);
});

test('a failure at any step leaves the old file whole (or the new one, after the rename)', () => {
  const path = join(dir, 'thing.json');
  for (const step of ['open', 'write', 'sync', 'close', 'rename', 'syncDir'] as Step[]) {
    nodeFs.writeFileSync(path, 'old');
    const fs = new StepFs();
    fs.failAt = step;
    assert.throws(() => replaceFileAtomically(fs, path, enc('new')), /injected failure/);
    const now = nodeFs.readFileSync(path, 'utf8');
    assert.equal(now, step === 'syncDir' ? 'new' : 'old', `failure at ${step}`);
    assert.equal(nodeFs.existsSync(`${path}.tmp`), false, `no temp left after a failure at ${step}`);
  }
});

test('a stale NAME.tmp from a crash is removed, and does not break the next replace', () => {
  const fs = new NodeFs();
  const path = join(dir, 'x');
  nodeFs.writeFileSync(`${path}.tmp`, 'half-written garbage that is long');
  removeStaleTemp(fs, path);
  assert.equal(nodeFs.existsSync(`${path}.tmp`), false);
  removeStaleTemp(fs, path); // nothing there: fine
  nodeFs.writeFileSync(`${path}.tmp`, 'half-written garbage that is long');
  replaceFileAtomically(fs, path, enc('fresh'));
  assert.equal(nodeFs.readFileSync(path, 'utf8'), 'fresh');
});

test('canary skipDirSync: the directory fsync after the rename is skipped', () => {
  const fs = new StepFs();
  canaries.skipDirSync = true;
  replaceFileAtomically(fs, join(dir, 'y'), enc('y'));
  assert.deepEqual(fs.log, ['open', 'write', 'sync', 'close', 'rename']);
});
