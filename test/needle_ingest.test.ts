// Tests of raw needle ingestion (src/storage/needle_ingest.ts, VolumeFile.ingestAt) and of
// VolumeFile.truncateTo: what a member of a volume group does with the bytes the master or a
// peer sends (docs/volume-server.md). Needles made by one volume file are copied byte for byte
// into another at the same offset, in any chunking; damaged, short or long ones are refused and
// cut back; a volume cut to a needle boundary takes appends there.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { NodeFs } from '../src/runtime/fs.js';
import { VolumeFile } from '../src/storage/volume_file.js';
import { volumeFileName } from '../src/storage/volume_format.js';
import type { NeedleAddress } from '../src/storage/types.js';
import { codeOf } from './helpers/store_error.js';

const fs = new NodeFs();
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const NOW = 1_700_000_000_000;
let root = '';

beforeEach(() => {
  root = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-ingest-'));
});
afterEach(() => {
  nodeFs.rmSync(root, { recursive: true, force: true });
});

function volume(name: string, id = 7): VolumeFile {
  return VolumeFile.create(fs, join(root, name, volumeFileName(id)), id, NOW);
}

function dirs(...names: string[]): void {
  for (const n of names) nodeFs.mkdirSync(join(root, n));
}

/** The raw bytes of a needle in a volume file. */
function rawOf(v: VolumeFile, a: NeedleAddress): Buffer {
  return nodeFs.readFileSync(v.path).subarray(a.offset, a.offset + a.length);
}

function feed(target: VolumeFile, offset: number, bytes: Uint8Array, cuts: number[]): NeedleAddress {
  const ingest = target.ingestAt(offset);
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  let last = 0;
  for (const p of [...points, bytes.length]) {
    ingest.write(bytes.subarray(last, p));
    last = p;
  }
  return ingest.finish();
}

test('a needle copied as raw bytes, in any chunking, is the same needle at the same offset', () => {
  dirs('a', 'b');
  const a = volume('a');
  const b = volume('b');
  const sources = [
    a.append(enc('k'), randomBytes(1), 0),
    a.append(enc('photo.png'), randomBytes(70_000), 0, 0),
    a.appendAt(a.tail, enc('with-meta'), randomBytes(5000), 0, 0, enc('metadata!')),
    a.append(enc('empty'), new Uint8Array(0), NOW + 1000),
  ];
  let run = 0;
  fc.assert(
    fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
      const copy = VolumeFile.create(fs, join(root, 'b', volumeFileName(100 + run++)), 7, NOW);
      try {
        for (const s of sources) {
          const got = feed(copy, s.offset, rawOf(a, s), cuts);
          assert.deepEqual(got, s);
          const want = a.readNeedle(s);
          const have = copy.readNeedle(got);
          assert.ok(Buffer.from(have.value).equals(Buffer.from(want.value)));
          assert.ok(Buffer.from(have.meta).equals(Buffer.from(want.meta)));
        }
        assert.equal(copy.tail, a.tail);
      } finally {
        copy.close();
        nodeFs.rmSync(copy.path);
      }
    }),
    { numRuns: 40 },
  );
  a.close();
  b.close();
});

test('a damaged, short or long needle is refused and cut back: the volume is as if it never came', () => {
  dirs('a', 'b');
  const a = volume('a');
  const b = volume('b');
  const s = a.append(enc('key'), randomBytes(10_000), 0);
  const raw = rawOf(a, s);
  const sizeBefore = nodeFs.statSync(b.path).size;
  const cases: [string, Uint8Array, string][] = [
    ['a flipped value byte', Buffer.from(raw).fill(raw[5000]! ^ 1, 5000, 5001), 'CHECKSUM_MISMATCH'],
    ['a flipped trailer byte', Buffer.from(raw).fill(raw[raw.length - 1]! ^ 1, raw.length - 1), 'CHECKSUM_MISMATCH'],
    ['a flipped header byte', Buffer.from(raw).fill(raw[9]! ^ 1, 9, 10), 'CHECKSUM_MISMATCH'],
    ['a flipped key byte', Buffer.from(raw).fill(raw[33]! ^ 1, 33, 34), 'CHECKSUM_MISMATCH'],
    ['short', raw.subarray(0, raw.length - 3), 'SIZE_MISMATCH'],
    ['long', Buffer.concat([raw, Buffer.from([1, 2, 3])]), 'SIZE_MISMATCH'],
    ['not a needle', randomBytes(200), 'CHECKSUM_MISMATCH'],
  ];
  for (const [what, bytes, code] of cases) {
    assert.equal(codeOf(() => feed(b, s.offset, bytes, [17, 4000])), code, what);
    assert.equal(b.tail, s.offset, `${what}: the tail is back at the offset`);
    assert.equal(nodeFs.statSync(b.path).size, sizeBefore, `${what}: the bytes are cut back`);
  }
  // The right bytes are then taken at that offset.
  assert.deepEqual(feed(b, s.offset, raw, []), s);
  // A needle asked at another offset than the tail: CONFLICT, nothing written.
  assert.equal(codeOf(() => b.ingestAt(b.tail + 8)), 'CONFLICT');
  a.close();
  b.close();
});

test('truncateTo: cut to a needle boundary, the needles before it read, appends go on there', () => {
  dirs('a');
  const a = volume('a');
  const first = a.append(enc('first'), enc('one'), 0);
  const second = a.append(enc('second'), randomBytes(3000), 0);
  a.truncateTo(second.offset);
  assert.equal(a.tail, second.offset);
  assert.equal(Buffer.from(a.readNeedle(first).value).toString(), 'one');
  const again = a.append(enc('third'), enc('three'), 0);
  assert.equal(again.offset, second.offset);
  assert.equal(codeOf(() => a.truncateTo(second.offset + 3)), 'BAD_ARGUMENT');
  assert.equal(codeOf(() => a.truncateTo(10)), 'BAD_ARGUMENT');
  a.close();
});

test('streamRaw gives a needle\'s bytes whole and checked; a peer ingests them into the same needle', () => {
  dirs('a', 'b');
  const a = volume('a');
  const b = volume('b');
  const buf = new Uint8Array(65_567 + 100);
  // Value lengths that put the trailer across a chunk boundary (last chunk of 1, 2, 3 bytes).
  const sizes = [0, 1, 70_000, buf.length * 2 - 32 - 5 - 4 + 1, buf.length * 2 - 32 - 5 - 4 + 2, buf.length * 3 - 32 - 5 - 4 + 3];
  for (const size of sizes) {
    const s = a.append(enc('k-raw'), randomBytes(size), 0);
    const chunks: Buffer[] = [];
    for (const c of a.streamRaw(s, buf)) chunks.push(Buffer.from(c)); // a view of buf: copied before the next
    assert.ok(Buffer.concat(chunks).equals(rawOf(a, s)), `needle of ${size} value bytes`);
    assert.equal(b.tail, s.offset, 'the copy is at the same length as the source');
    const ingest = b.ingestAt(s.offset);
    for (const c of chunks) ingest.write(c);
    assert.deepEqual(ingest.finish(), s);
  }
  a.close();
  b.close();
});

test('streamRaw of a damaged needle: a bad header fails before any byte, a bad value before the last chunk', () => {
  dirs('a');
  const a = volume('a');
  const buf = new Uint8Array(65_567);
  const s = a.append(enc('k'), randomBytes(200_000), 0);
  const path = a.path;
  a.close();
  const raw = nodeFs.readFileSync(path);
  const flip = (at: number): void => {
    const copy = Buffer.from(raw);
    copy[at] = copy[at]! ^ 1;
    nodeFs.writeFileSync(path, copy);
  };
  flip(s.offset + 150_000);
  let damaged = VolumeFile.open(fs, path, 'read');
  const seen: number[] = [];
  assert.equal(codeOf(() => { for (const c of damaged.streamRaw(s, buf)) seen.push(c.length); }), 'CHECKSUM_MISMATCH');
  assert.ok(seen.reduce((x, y) => x + y, 0) < s.length, 'the last chunk never left');
  damaged.close();
  flip(s.offset + 10);
  damaged = VolumeFile.open(fs, path, 'read');
  const none: number[] = [];
  assert.equal(codeOf(() => { for (const c of damaged.streamRaw(s, buf)) none.push(c.length); }), 'CHECKSUM_MISMATCH');
  assert.deepEqual(none, [], 'nothing of a needle whose header fails');
  damaged.close();
});
