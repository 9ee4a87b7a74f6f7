// The front end's cache of small needles (storage/needle_cache.ts): bounded in bytes, least
// the unused dropped first (two generations), copies handed out, a removed volume's needles forgotten; and
// through a VolumeReader over real volume files, a hit answers what the file holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_CACHED_NEEDLE, NeedleCache } from '../src/storage/needle_cache.js';
import type { ReadNeedleResult } from '../src/storage/volume_file.js';
import { needleAddress } from '../src/storage/types.js';
import { openStore } from '../src/wiring/open.js';
import { VolumeReader } from '../src/storage/volume_reader.js';
import { NodeFs } from '../src/runtime/fs.js';

const needle = (v: string): ReadNeedleResult => ({ key: Buffer.from('k'), value: Buffer.from(v), meta: new Uint8Array(0), expiresAt: 0, flags: 0 });

test('the cache holds at most its bytes in two generations: a needle used lately stays, one unused is dropped; hits are copies', () => {
  const cache = new NeedleCache(400); // generations of 200 bytes: two needles of 100 each
  const a = needleAddress(1, 8, 100);
  const b = needleAddress(1, 108, 100);
  const c = needleAddress(2, 8, 100);
  const d = needleAddress(2, 108, 100);
  cache.put(a, needle('a'));
  cache.put(b, needle('b'));
  cache.put(c, needle('c')); // the young generation {a, b} turns old
  assert.equal(cache.bytes, 300);
  assert.equal(Buffer.from(cache.get(a)!.value).toString(), 'a'); // a used again: young {c, a}
  cache.put(d, needle('d')); // {c, a} turns old, {b} is dropped
  assert.ok(cache.bytes <= 400, `${cache.bytes} bytes held`);
  assert.equal(cache.get(b), undefined, 'b, never used again, was dropped');
  assert.ok(cache.get(a) && cache.get(c) && cache.get(d), 'a (used), c and d (new) stay');
  for (let i = 0; i < 50; i++) {
    cache.put(needleAddress(5, 8 + 100 * i, 100), needle(`n${i}`));
    assert.ok(cache.bytes <= 400, `${cache.bytes} bytes held after ${i + 1} more`);
  }
  cache.put(a, needle('a'));
  const got = cache.get(a)!;
  got.value[0] = 0x7a;
  assert.equal(Buffer.from(cache.get(a)!.value).toString(), 'a', 'a caller changing its copy changes nothing held');
  assert.equal(Buffer.from(got.key).toString(), 'k', 'the copy carries its key');
  const before = cache.bytes;
  cache.forgetVolume(1);
  assert.equal(cache.get(a), undefined);
  assert.equal(cache.bytes, before - 100);
  cache.forgetVolume(5);
  assert.ok(cache.bytes <= 100, `${cache.bytes} bytes after forgetting volume 5`);
  cache.put(needleAddress(3, 8, MAX_CACHED_NEEDLE + 1), needle('big'));
  assert.equal(cache.get(needleAddress(3, 8, MAX_CACHED_NEEDLE + 1)), undefined, 'large needles are never held');
});

test('a caching VolumeReader answers what the files hold, and forgets a removed volume', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-ncache-'));
  try {
    const store = await openStore(dir);
    const addresses = new Map<string, ReturnType<typeof needleAddress>>();
    try {
      for (let i = 0; i < 20; i++) await store.db.set(`k${i}`, `value-${i}`.repeat(i + 1));
      for (let i = 0; i < 20; i++) {
        const found = await store.engine.ports.index.lookup(Buffer.from(`k${i}`));
        addresses.set(`k${i}`, found.entry!.address);
      }
    } finally {
      await store.db.close();
    }
    const reader = new VolumeReader(new NodeFs(), [{ id: 0, dir }], 4, 1 << 20);
    try {
      for (let round = 0; round < 2; round++) {
        for (const [key, address] of addresses) {
          const i = Number(key.slice(1));
          assert.equal(Buffer.from(reader.readNeedle(address).value).toString(), `value-${i}`.repeat(i + 1), `${key}, round ${round}`);
        }
      }
      assert.ok(reader.cachedBytes > 0, 'the small needles are held');
      const first = addresses.get('k0')!;
      reader.forget(first.volume);
      assert.equal(reader.cachedBytes, 0, 'a forgotten volume leaves nothing held (all 20 keys are in it)');
      assert.equal(Buffer.from(reader.readNeedle(first).value).toString(), 'value-0', 'read again from the file');
    } finally {
      reader.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
