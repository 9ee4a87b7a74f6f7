// The automatic COMPACT (src/db/auto_compact.ts): when it is due, and a real store whose wal.log
// (small values ride in it as redo needles) is rewritten by itself once it has doubled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoCompactor, compactDue, type AutoCompact } from '../src/db/auto_compact.js';
import { open } from '../src/wiring/open.js';

const MB = 1024 * 1024;
const settings: AutoCompact = { percentage: 100, minBytes: 64 * MB, everyMs: 10_000 };

test('due: at least minBytes and grown by the percentage over the base; 0 % is never', () => {
  assert.equal(compactDue(63 * MB, 0, settings), false, 'below the minimum');
  assert.equal(compactDue(64 * MB, 0, settings), true);
  assert.equal(compactDue(100 * MB, 60 * MB, settings), false, 'grown 67 %, not 100 %');
  assert.equal(compactDue(120 * MB, 60 * MB, settings), true);
  assert.equal(compactDue(130 * MB, 60 * MB, { ...settings, percentage: 200 }), false);
  assert.equal(compactDue(10 ** 12, 0, { ...settings, percentage: 0 }), false);
});

test('the compactor: the base is the size at the first look, after its COMPACT, and after a shrink', async () => {
  let size = 100 * MB;
  let compactions = 0;
  const c = new AutoCompactor(
    settings,
    async () => size,
    async () => {
      compactions += 1;
      size = 10 * MB;
    },
  );
  assert.equal(await c.check(), false, 'a store started with a big WAL is not compacted at once');
  size = 199 * MB;
  assert.equal(await c.check(), false);
  size = 200 * MB;
  assert.equal(await c.check(), true);
  assert.equal(compactions, 1);
  size = 70 * MB; // from the new base of 10 MB: over 64 MB and grown 600 %
  assert.equal(await c.check(), true);
  size = 5 * MB; // a COMPACT asked for
  assert.equal(await c.check(), false);
  size = 64 * MB;
  assert.equal(await c.check(), true, 'measured from the shrunk size');
  assert.equal(compactions, 3);
});

test('a store compacts its own wal.log once it doubled past the minimum, and keeps every value', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-autocompact-'));
  try {
    const db = await open(dir, { autoCompact: { percentage: 100, minBytes: 512 * 1024, everyMs: 100 } });
    const walBytes = (): number => statSync(join(dir, 'wal.log')).size;
    try {
      const value = (i: number): Buffer => Buffer.alloc(4000, i % 251);
      // 300 writes of 4 KB over 20 keys: ~1.2 MB of WAL (the values ride in their records).
      for (let i = 0; i < 300; i++) await db.set(`k${i % 20}`, value(i));
      const deadline = Date.now() + 20_000;
      while (walBytes() > 512 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const after = walBytes();
      assert.ok(after < 512 * 1024, `wal.log is ${after} bytes: not compacted within 20 s`);
      for (let k = 0; k < 20; k++) assert.deepEqual(await db.get(`k${k}`), value(280 + k), `k${k} after the COMPACT`);
    } finally {
      await db.close();
    }
    const again = await open(dir, { autoCompact: { percentage: 0 } });
    try {
      for (let k = 0; k < 20; k++) assert.deepEqual(await again.get(`k${k}`), Buffer.alloc(4000, (280 + k) % 251), `k${k} after a restart`);
    } finally {
      await again.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
