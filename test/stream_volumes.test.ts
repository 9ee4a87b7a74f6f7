// Tests of needles of unknown length (chunked uploads) and of version-2 needles (a metadata
// section), on real files: VolumeFile.reserveOpen (value first, header last, CRC combined),
// DriveVolumes' stream volumes (one open needle each, reused, beside the current volume, synced
// at the needle's end), a restart after them, and crc32Combine against plain concatenation.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { NodeFs } from '../src/runtime/fs.js';
import { ManualClock } from '../src/runtime/clock.js';
import { crc32, crc32Combine, crc32c } from '../src/storage/checksum.js';
import { DriveVolumes } from '../src/storage/drive_volumes.js';
import { VolumeFile } from '../src/storage/volume_file.js';
import { VolumeReader } from '../src/storage/volume_reader.js';
import { needleLength, volumeFileName } from '../src/storage/volume_format.js';
import { codeOf } from './helpers/store_error.js';

const fs = new NodeFs();
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const NOW = 1_700_000_000_000;
let root = '';

beforeEach(() => {
  root = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-stream-'));
});
afterEach(() => {
  nodeFs.rmSync(root, { recursive: true, force: true });
});

function openDrive(maxVolumeSize = 1 << 20): DriveVolumes {
  return DriveVolumes.open(fs, { dir: root, group: 0, maxVolumeSize, clock: new ManualClock(NOW) });
}

function readAll(reader: VolumeReader, address: Parameters<VolumeReader['streamValue']>[0], key: Uint8Array, size: number): Buffer {
  return Buffer.concat([...reader.streamValue(address, key, 0, size)]);
}

test('crc32Combine(crc(a), crc(b), |b|) is crc(a ++ b), for any a and b', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
      const joined = new Uint8Array(a.length + b.length);
      joined.set(a);
      joined.set(b, a.length);
      return crc32Combine(crc32(a), crc32(b), b.length) === crc32(joined);
    }),
    { numRuns: 300 },
  );
  const big = randomBytes(5 * 1024 * 1024 + 3);
  assert.equal(crc32Combine(crc32(big.subarray(0, 17)), crc32(big.subarray(17)), big.length - 17), crc32(big));
});

test('crc32c: the check value of CRC-32C, incremental', () => {
  assert.equal(crc32c(enc('123456789')), 0xe3069283);
  assert.equal(crc32c(enc('56789'), crc32c(enc('1234'))), 0xe3069283);
});

test('an open needle: value first, header last; it reads back, scans valid, and a torn one is skipped', () => {
  const path = join(root, volumeFileName(1));
  const file = VolumeFile.create(fs, path, 1, NOW);
  const key = enc('chunked');
  const value = randomBytes(3 * 1024 * 1024 + 5);
  const s = file.reserveOpen(key, 0, 1 << 30);
  assert.equal(file.streaming, true);
  assert.equal(codeOf(() => file.append(enc('x'), enc('y'), 0)), 'CONFLICT', 'the tail is held while it streams');
  for (let at = 0; at < value.length; at += 1000003) s.write(value.subarray(at, at + 1000003));
  const address = s.finish();
  assert.equal(address.length, needleLength(key.length, value.length));
  assert.equal(file.streaming, false);
  const read = file.readNeedle(address);
  assert.ok(Buffer.from(read.value).equals(value));
  assert.ok(file.verifyNeedle(address, key));
  // A torn one after it (no header written) is skipped by a scan; the tail moves past it.
  const torn = file.reserveOpen(enc('torn'), 0, 1 << 30);
  torn.write(randomBytes(4096));
  torn.abort();
  const after = file.append(enc('after'), enc('v'), 0);
  assert.ok(after.offset > address.offset + address.length + 4096);
  const scanned = [...file.scan()].filter((n) => n.valid).map((n) => new TextDecoder().decode(n.key));
  assert.deepEqual(scanned, ['chunked', 'after']);
  file.close();
});

test('a version-2 needle: the metadata section is read with the head and under the needle CRC', () => {
  const path = join(root, volumeFileName(2));
  const file = VolumeFile.create(fs, path, 2, NOW);
  const key = enc('photo');
  const meta = enc('metadata bytes');
  const value = randomBytes(70_000);
  const sized = file.reserve(key, value.length, 0, meta.length);
  sized.write(value);
  const a1 = sized.finish(meta);
  assert.equal(a1.meta, meta.length);
  const open = file.reserveOpen(enc('open'), 0, 1 << 30, meta.length);
  open.write(value);
  const a2 = open.finish(meta);
  const a3 = file.appendAt(file.tail, enc('whole'), value, 0, 0, meta);
  for (const [address, k] of [[a1, key], [a2, enc('open')], [a3, enc('whole')]] as const) {
    const n = file.readNeedle(address);
    assert.ok(Buffer.from(n.value).equals(value));
    assert.deepEqual([...n.meta], [...meta]);
    assert.deepEqual([...file.readHead(address, k).meta], [...meta]);
    assert.ok(file.verifyNeedle(address, k));
  }
  assert.equal(codeOf(() => file.reserve(enc('k'), 1, 0, 3).finish(enc('toolong'))), 'SIZE_MISMATCH');
  // A flipped metadata byte fails the needle's CRC.
  file.close();
  const raw = nodeFs.readFileSync(path);
  raw[a1.offset + 32 + key.length + value.length + 2] ^= 0xff;
  nodeFs.writeFileSync(path, raw);
  const damaged = VolumeFile.open(fs, path, 'read');
  assert.equal(damaged.verifyNeedle(a1, key), false);
  assert.equal(codeOf(() => damaged.readNeedle(a1)), 'CHECKSUM_MISMATCH');
  damaged.close();
});

test('stream volumes: one open needle each, beside the current volume, reused, and a restart reads them all', () => {
  const drive = openDrive();
  const small = drive.append(enc('small-0'), enc('v0'), 0);
  const s1 = drive.reserveOpen(enc('one'), 0, 1 << 30);
  const s2 = drive.reserveOpen(enc('two'), 0, 1 << 30);
  const v1 = randomBytes(200_000);
  const v2 = randomBytes(300_000);
  s1.write(v1);
  s2.write(v2);
  // Sized appends go on in the current volume while both stream.
  const small1 = drive.append(enc('small-1'), enc('v1'), 0);
  assert.equal(small1.volume, small.volume);
  const a1 = s1.finish();
  const a2 = s2.finish();
  assert.notEqual(a1.volume, a2.volume, 'two uploads at once: two stream volumes');
  assert.notEqual(a1.volume, small.volume);
  // The next open needle reuses a free stream volume: no new file per upload.
  const s3 = drive.reserveOpen(enc('three'), 0, 1 << 30);
  s3.write(enc('3'));
  const a3 = s3.finish();
  assert.ok([a1.volume, a2.volume].includes(a3.volume));
  drive.checkInvariants();
  drive.sync();
  const volumes = drive.list().length;
  drive.close();
  assert.equal(volumes, 3);
  // After a restart every needle reads back; the highest id takes new appends.
  const again = openDrive();
  const reader = new VolumeReader(fs, [{ id: 0, dir: root }], 8);
  try {
    assert.ok(readAll(reader, a1, enc('one'), v1.length).equals(v1));
    assert.ok(readAll(reader, a2, enc('two'), v2.length).equals(v2));
    assert.equal(Buffer.from(reader.readNeedle(small1).value).toString(), 'v1');
    const next = again.append(enc('next'), enc('n'), 0);
    assert.equal(next.volume, Math.max(small.volume, a1.volume, a2.volume));
    again.checkInvariants();
  } finally {
    reader.close();
    again.close();
  }
});

test('reserveApart: a sized upload in a stream volume of its own; small appends go on in the current one; reused once it ends', () => {
  const drive = openDrive();
  try {
    const current = drive.place(8).volume;
    const a = drive.reserveApart(enc('big-a'), 5000, 0);
    const b = drive.reserveApart(enc('big-b'), 5000, 0);
    assert.notEqual(a.address.volume, current, 'not in the current volume');
    assert.notEqual(a.address.volume, b.address.volume, 'two uploads at once: two stream volumes');
    // While both stream, small needles land in the current volume, one after another.
    const small = drive.append(enc('small'), randomBytes(10), 0);
    assert.equal(small.volume, current);
    a.write(randomBytes(5000));
    const done = a.finish();
    b.abort();
    // A new upload reuses a free stream volume (after the first needle), not a third one.
    const c = drive.reserveApart(enc('big-c'), 100, 0);
    assert.ok([a.address.volume, b.address.volume].includes(c.address.volume), `reused: ${c.address.volume}`);
    c.write(randomBytes(100));
    c.finish();
    drive.sync();
    const reader = new VolumeReader(fs, [{ id: 0, dir: root }]);
    try {
      assert.equal(readAll(reader, done, enc('big-a'), 5000).length, 5000);
    } finally {
      reader.close();
    }
  } finally {
    drive.close();
  }
});
