// --needle-cache-size on a real master (ioredis): with the cache, a small value read once is
// served from memory (a byte flipped on disk afterwards is not seen); with 0, every GET reads
// the volume and checks it (the flip is a checksum error, never served).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startMaster, stopAll } from './helpers/master_process.js';
import { flipInVolume } from './helpers/volume_damage.js';

after(stopAll);

/** SET, GET (the cache may keep it), flip a byte on disk, GET again: what the second GET answers. */
async function readAfterFlip(args: string[]): Promise<Buffer | Error> {
  const m = await startMaster({ args: ['--vacuum-every', '0', '--scrub-every', '0', ...args] });
  const client = new Redis({ port: m.port, host: '127.0.0.1', maxRetriesPerRequest: 0, lazyConnect: true });
  try {
    await client.connect();
    const value = Buffer.alloc(1000, 0x5a);
    assert.equal(await client.set('k', value), 'OK');
    assert.deepEqual(await client.getBuffer('k'), value);
    flipInVolume(m.dataDir, 0x5a, 500);
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
