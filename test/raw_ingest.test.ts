// Raw regions (src/storage/raw_ingest.ts, VolumeFile.rawIngestAt / readRegion): the bytes of a
// master's volume region copied to a member as they are, garbage needles included, with the
// CRC-32 of what arrived given back, and all or nothing.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NodeFs } from '../src/runtime/fs.js';
import { ManualClock } from '../src/runtime/clock.js';
import { MemberVolumes } from '../src/storage/member_volumes.js';
import { VolumeFile } from '../src/storage/volume_file.js';
import { crc32 } from '../src/storage/checksum.js';
import { VOLUME_SUPERBLOCK_SIZE, volumeFileName, volumeIdOf } from '../src/storage/volume_format.js';
import { codeOf } from './helpers/store_error.js';

const fs = new NodeFs();
const clock = new ManualClock(1_700_000_000_000);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
let root = '';

beforeEach(() => {
  root = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-raw-'));
});
afterEach(() => {
  nodeFs.rmSync(root, { recursive: true, force: true });
});

/** A source volume with two good needles and an aborted upload between them. */
function source(id: number): VolumeFile {
  const dir = join(root, 'source');
  nodeFs.mkdirSync(dir, { recursive: true });
  const file = VolumeFile.create(fs, join(dir, volumeFileName(id)), id, clock.now());
  file.append(enc('a'), randomBytes(1000), 0);
  const stream = file.reserve(enc('b'), 5000, 0);
  stream.write(randomBytes(100));
  stream.abort();
  file.append(enc('c'), randomBytes(333), 0);
  return file;
}

test('a region with a garbage needle copies byte for byte, its CRC given back', () => {
  const id = volumeIdOf(1, 0);
  const src = source(id);
  const region = new Uint8Array(src.tail - VOLUME_SUPERBLOCK_SIZE);
  src.readRegion(region, VOLUME_SUPERBLOCK_SIZE);
  const member = MemberVolumes.open(fs, [join(root, 'm')], clock);
  try {
    member.create(id, 1);
    const ingest = member.ingestRaw(id, VOLUME_SUPERBLOCK_SIZE, region.length, 1);
    for (let at = 0; at < region.length; at += 777) ingest.write(region.subarray(at, at + 777));
    assert.deepEqual(ingest.finish(), { length: region.length, crc32: crc32(region) });
    assert.equal(member.info(id).length, src.tail);
    const copy = new Uint8Array(region.length);
    member.file(id).readRegion(copy, VOLUME_SUPERBLOCK_SIZE);
    assert.deepEqual(copy, region);
    // The last needle's padding is not in the source file (it ends before the tail), and bytes
    // past the file's end read as zeros rather than failing.
    const fileSize = nodeFs.statSync(src.path).size;
    assert.ok(fileSize < src.tail, `the file (${fileSize} B) ends before the tail (${src.tail})`);
    const past = new Uint8Array(32).fill(0xff);
    src.readRegion(past, fileSize - 8);
    assert.ok(past.subarray(8).every((b) => b === 0), 'zeros past the end of the file');
  } finally {
    member.close();
    src.close();
  }
});

test('a short, long or aborted region is cut back; a region not at the tail is refused', () => {
  const id = volumeIdOf(2, 0);
  const member = MemberVolumes.open(fs, [join(root, 'm')], clock);
  try {
    member.create(id, 1);
    const start = member.info(id).length;
    const short = member.ingestRaw(id, start, 64, 1);
    short.write(new Uint8Array(40));
    assert.equal(codeOf(() => short.finish()), 'SIZE_MISMATCH');
    assert.equal(member.info(id).length, start);
    const long = member.ingestRaw(id, start, 64, 1);
    assert.equal(codeOf(() => long.write(new Uint8Array(72))), 'SIZE_MISMATCH');
    assert.equal(member.info(id).length, start);
    const aborted = member.ingestRaw(id, start, 64, 1);
    aborted.write(new Uint8Array(64));
    aborted.abort();
    assert.equal(member.info(id).length, start);
    assert.equal(codeOf(() => member.ingestRaw(id, start + 8, 64, 1)), 'CONFLICT');
    assert.equal(codeOf(() => member.ingestRaw(id, start, 60, 1)), 'BAD_ARGUMENT');
    const ok = member.ingestRaw(id, start, 64, 1);
    ok.write(new Uint8Array(64).fill(7));
    ok.finish();
    assert.equal(member.info(id).length, start + 64);
  } finally {
    member.close();
  }
});
