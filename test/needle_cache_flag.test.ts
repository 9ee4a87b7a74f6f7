// --needle-cache-size on a real master (ioredis): with the cache, a small value read once is
// served from memory (a byte flipped on disk afterwards is not seen); with 0, every GET reads
// the volume and checks it (the flip is a checksum error, never served).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startMaster, stopAll } from './helpers/master_process.js';

after(stopAll);

/** Flips the byte `at` bytes into the first run of 64 `mark` bytes of the master's first volume. */
function flip(dataDir: string, mark: number, at: number): void {
  const fd = openSync(join(dataDir, 'volumes', 'vol-000000.data'), 'r+');
  try {
    const buf = Buffer.alloc(1024 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const start = buf.subarray(0, n).indexOf(Buffer.alloc(64, mark));
    assert.ok(start >= 0, `a run of ${mark} in the volume`);
    writeSync(fd, Buffer.from([mark ^ 0xff]), 0, 1, start + at);
  } finally {
    closeSync(fd);
  }
}

/** SET, GET (the cache may keep it), flip a byte on disk, GET again: what the second GET answers. */
async function readAfterFlip(args: string[]): Promise<Buffer | Error> {
  const m = await startMaster({ args: ['--vacuum-every', '0', '--scrub-every', '0', ...args] });
  const client = new Redis({ port: m.port, host: '127.0.0.1', maxRetriesPerRequest: 0, lazyConnect: true });
  try {
    await client.connect();
    const value = Buffer.alloc(1000, 0x5a);
    assert.equal(await client.set('k', value), 'OK');
    assert.deepEqual(await client.getBuffer('k'), value);
    flip(m.dataDir, 0x5a, 500);
    return await client.getBuffer('k').then(
      (v) => v ?? new Error('null'),
      (err: Error) => err,
    );
  } finally {
    client.disconnect();
    await m.stop();
  }
}

test('default cache: a value read once is served from memory', { timeout: 60_000 }, async () => {
  const got = await readAfterFlip([]);
  assert.ok(got instanceof Buffer, `GET answered ${String(got)}`);
  assert.deepEqual(got, Buffer.alloc(1000, 0x5a));
});

test('--needle-cache-size 0: every GET reads the disk, and a damaged value is an error, never served', { timeout: 60_000 }, async () => {
  const got = await readAfterFlip(['--needle-cache-size', '0']);
  if (!(got instanceof Error)) assert.fail(`GET served ${got.length} bytes of a damaged value`);
  assert.match(got.message, /checksum mismatch/i);
});
