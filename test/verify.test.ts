// Scrub and read-time checks: a byte flipped in a committed value is found by verify() (run
// on the piscina CPU pool) and a GET of that key fails with a checksum error instead of
// serving the bad bytes; the other keys are unaffected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readSync, writeSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../src/wiring/open.js';
import { StoreError } from '../src/runtime/errors.js';

test('verify() finds a flipped byte in a value; GET refuses to serve it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-verify-'));
  try {
    let db = await open(dir);
    const victim = Buffer.alloc(10_000, 0x41);
    await db.set('victim', victim);
    for (let i = 0; i < 20; i++) await db.set(`other:${i}`, `value ${i}`);
    const clean = await db.verify();
    assert.equal(clean.length, 1);
    assert.equal(clean[0]!.invalid, 0);
    assert.equal(clean[0]!.needles, 21);
    await db.close();

    // Flip one byte in the middle of the victim's value (the run of 'A's) on disk.
    const path = join(dir, 'volumes', 'vol-000000.data');
    const fd = openSync(path, 'r+');
    const buf = Buffer.alloc(20_000);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const at = buf.subarray(0, n).indexOf(Buffer.alloc(64, 0x41)) + 5000;
    writeSync(fd, Buffer.from([0x42]), 0, 1, at);
    closeSync(fd);

    db = await open(dir);
    const reports = await db.verify();
    assert.equal(reports[0]!.invalid, 1, 'the scrub reports the damaged needle');
    await assert.rejects(db.get('victim'), (err: unknown) => err instanceof StoreError && /CHECKSUM|CORRUPT/.test(err.code));
    assert.equal((await db.get('other:7'))?.toString(), 'value 7');
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
