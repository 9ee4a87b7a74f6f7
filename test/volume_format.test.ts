// Tests of the volume byte formats (src/storage/volume_format.ts): every encoder round-trips
// through its decoder, and every decoder refuses a damaged or foreign buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_META_LENGTH,
  MAX_VALUE_LENGTH,
  NEEDLE_ALIGN,
  NEEDLE_HEADER_SIZE,
  NEEDLE_MAGIC,
  NeedleFlag,
  VOLUME_SUPERBLOCK_SIZE,
  alignUp,
  decodeNeedleHeader,
  decodeSuperblock,
  decodeTrailer,
  groupOfVolume,
  encodeNeedleHeader,
  encodeSuperblock,
  encodeTrailer,
  needleLength,
  parseVolumeFileName,
  volumeFileName,
  volumeIdOf,
  volumeSeqOf,
} from '../src/storage/volume_format.js';
import { crc32 } from '../src/storage/checksum.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('crc32 is CRC-32 (IEEE) and can be fed incrementally', () => {
  assert.equal(crc32(enc('123456789')), 0xcbf43926);
  const all = enc('hello, needle world');
  assert.equal(crc32(all.subarray(7), crc32(all.subarray(0, 7))), crc32(all));
});

test('regression: crc32 of an empty value over a zero-length ArrayBuffer keeps the running CRC (an empty SET failed its own checksum)', () => {
  const running = crc32(enc('header and key'));
  assert.equal(crc32(new Uint8Array(new ArrayBuffer(0)), running), running);
  assert.equal(crc32(new Uint8Array(0), running), running);
  assert.equal(crc32(Buffer.alloc(0), running), running);
});

test('superblock round-trips and starts with BRISEVOL', () => {
  const sb = encodeSuperblock(volumeIdOf(3, 17), 1_700_000_123_456);
  assert.equal(sb.length, VOLUME_SUPERBLOCK_SIZE);
  assert.equal(new TextDecoder().decode(sb.subarray(0, 8)), 'BRISEVOL');
  assert.deepEqual(decodeSuperblock(sb), { volumeId: volumeIdOf(3, 17), createdAt: 1_700_000_123_456 });
});

test('a superblock with any byte flipped, or short, decodes as null', () => {
  const sb = encodeSuperblock(42, 1_700_000_000_000);
  for (let i = 0; i < sb.length; i++) {
    const bad = sb.slice();
    bad[i] = (bad[i] ?? 0) ^ 0x01;
    assert.equal(decodeSuperblock(bad), null, `flip at byte ${i}`);
  }
  assert.equal(decodeSuperblock(sb.subarray(0, 63)), null);
});

test('needle header round-trips, with the key and a checked CRC', () => {
  const key = enc('user:1');
  const buf = encodeNeedleHeader(key, 2 ** 40 + 5, 1_800_000_000_000, 0);
  assert.equal(buf.length, NEEDLE_HEADER_SIZE + key.length);
  assert.deepEqual(buf.subarray(32), key);
  assert.equal(new DataView(buf.buffer).getUint32(0, true), NEEDLE_MAGIC);
  assert.deepEqual([...buf.subarray(0, 4)], [...enc('BNDL')]);
  const expected = { flags: 0, keyLength: key.length, valueLength: 2 ** 40 + 5, expiresAt: 1_800_000_000_000, metaLength: 0 };
  assert.deepEqual(decodeNeedleHeader(buf.subarray(0, 32)), expected);
  assert.deepEqual(decodeNeedleHeader(buf.subarray(0, 32), key), expected);
  assert.equal(decodeNeedleHeader(buf.subarray(0, 32), enc('user:2')), null, 'other key: CRC fails');
  assert.equal(decodeNeedleHeader(buf.subarray(0, 32), enc('user:12')), null, 'other key length');
});

test('a version-2 header carries its metadata length under the header CRC; version 1 keeps bytes 28..31 zero', () => {
  const key = enc('photo.png');
  const buf = encodeNeedleHeader(key, 1000, 0, 0, 123);
  assert.equal(buf[4], 2);
  const expected = { flags: 0, keyLength: key.length, valueLength: 1000, expiresAt: 0, metaLength: 123 };
  assert.deepEqual(decodeNeedleHeader(buf.subarray(0, 32), key), expected);
  assert.equal(needleLength(key.length, 1000, 123), 32 + key.length + 1000 + 123 + 4);
  const flipped = buf.slice();
  flipped[28] = 124;
  assert.equal(decodeNeedleHeader(flipped.subarray(0, 32), key), null, 'a changed metadata length fails the header CRC');
  const v1 = encodeNeedleHeader(key, 1000, 0, 0);
  assert.equal(v1[4], 1);
  const v1WithMeta = v1.slice();
  v1WithMeta[28] = 5;
  assert.equal(decodeNeedleHeader(v1WithMeta.subarray(0, 32)), null, 'version 1 has no metadata');
  const v2Empty = buf.slice();
  new DataView(v2Empty.buffer).setUint32(28, 0, true);
  assert.equal(decodeNeedleHeader(v2Empty.subarray(0, 32)), null, 'version 2 always has metadata');
  assert.throws(() => encodeNeedleHeader(key, 1, 0, 0, MAX_META_LENGTH + 1), RangeError);
});

test('a tombstone header has no value; a tombstone with a value is refused both ways', () => {
  const key = enc('gone');
  const buf = encodeNeedleHeader(key, 0, 0, NeedleFlag.Tombstone);
  assert.deepEqual(decodeNeedleHeader(buf.subarray(0, 32), key), { flags: 1, keyLength: 4, valueLength: 0, expiresAt: 0, metaLength: 0 });
  assert.throws(() => encodeNeedleHeader(key, 1, 0, NeedleFlag.Tombstone), RangeError);
  const forged = encodeNeedleHeader(key, 1, 0, 0);
  forged[5] = NeedleFlag.Tombstone;
  assert.equal(decodeNeedleHeader(forged.subarray(0, 32)), null);
});

test('any flipped byte of the header or key fails the header CRC', () => {
  const key = enc('some-key');
  const buf = encodeNeedleHeader(key, 1000, 0, 0);
  for (let i = 0; i < buf.length; i++) {
    const bad = buf.slice();
    bad[i] = (bad[i] ?? 0) ^ 0x80;
    const badKey = bad.subarray(32);
    assert.equal(decodeNeedleHeader(bad.subarray(0, 32), badKey), null, `flip at byte ${i}`);
  }
});

test('headers that cannot be ours decode as null: unknown flags, empty key, huge lengths', () => {
  const base = encodeNeedleHeader(enc('k'), 10, 0, 0);
  const flags = base.slice();
  flags[5] = 0x02;
  assert.equal(decodeNeedleHeader(flags), null);
  const noKey = base.slice();
  noKey[6] = 0;
  noKey[7] = 0;
  assert.equal(decodeNeedleHeader(noKey), null);
  const huge = base.slice();
  huge[15] = 0xff; // value length with the top bits set: past any safe integer
  assert.equal(decodeNeedleHeader(huge), null);
  const version = base.slice();
  version[4] = 2;
  assert.equal(decodeNeedleHeader(version), null);
  assert.equal(decodeNeedleHeader(base.subarray(0, 31)), null);
  assert.throws(() => encodeNeedleHeader(enc('k'), MAX_VALUE_LENGTH + 1, 0, 0), RangeError);
  assert.throws(() => encodeNeedleHeader(new Uint8Array(0), 1, 0, 0), RangeError);
  assert.throws(() => encodeNeedleHeader(new Uint8Array(65536), 1, 0, 0), RangeError);
});

test('trailer round-trips; lengths and alignment', () => {
  assert.equal(decodeTrailer(encodeTrailer(0xdeadbeef)), 0xdeadbeef);
  assert.equal(needleLength(3, 10), 32 + 3 + 10 + 4);
  assert.equal(NEEDLE_ALIGN, 8);
  assert.deepEqual([0, 1, 7, 8, 9, 49].map(alignUp), [0, 8, 8, 8, 16, 56]);
});

test('volume file names and ids', () => {
  assert.equal(volumeFileName(0), 'vol-000000.data');
  assert.equal(volumeFileName(42), 'vol-000042.data');
  assert.equal(volumeFileName(volumeIdOf(1, 0)), 'vol-1048576.data');
  assert.equal(parseVolumeFileName('vol-000042.data'), 42);
  assert.equal(parseVolumeFileName('vol-1048577.data'), 1048577);
  for (const name of ['vol-42.data', 'vol-000042.data.tmp', 'vol-0000042.data', 'x', 'vol-abcdef.data']) {
    assert.equal(parseVolumeFileName(name), null, name);
  }
  assert.equal(volumeIdOf(0, 5), 5);
  assert.equal(volumeIdOf(2, 7), 2 * 2 ** 20 + 7);
  assert.equal(groupOfVolume(volumeIdOf(2, 7)), 2);
  assert.equal(volumeSeqOf(volumeIdOf(2, 7)), 7);
  assert.throws(() => volumeIdOf(0, 2 ** 20), RangeError);
  assert.throws(() => volumeIdOf(4096, 0), RangeError);
});
