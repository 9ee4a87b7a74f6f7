// Damage planted in a data dir's first volume file, for the tests that check it is caught.
import assert from 'node:assert/strict';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Flips the byte `at` bytes into the first run of 64 `mark` bytes of `dataDir`'s vol-000000 (its first 16 MiB). */
export function flipInVolume(dataDir: string, mark: number, at: number): void {
  const fd = openSync(join(dataDir, 'volumes', 'vol-000000.data'), 'r+');
  try {
    const buf = Buffer.alloc(16 * 1024 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const start = buf.subarray(0, n).indexOf(Buffer.alloc(64, mark));
    assert.ok(start >= 0, `a run of ${mark} in the volume`);
    writeSync(fd, Buffer.from([mark ^ 0xff]), 0, 1, start + at);
  } finally {
    closeSync(fd);
  }
}
