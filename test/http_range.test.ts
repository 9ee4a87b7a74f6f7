// Unit tests of src/protocol/http_range.ts: the Range header of RFC 9110 §14 as tables of
// (header, size) → result, then Content-Range and the multipart/byteranges framing (its
// bytes and its declared total length, checked against a body assembled from a real file).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import {
  contentRange, multipartByteranges, parseRange, unsatisfiedRange, MAX_RANGE_SPECS, type RangeResult,
} from '../src/protocol/http_range.js';

const none: RangeResult = { kind: 'none' };
const unsat: RangeResult = { kind: 'unsatisfiable' };
const one = (start: number, end: number): RangeResult => ({ kind: 'single', range: { start, end } });
const multi = (...pairs: [number, number][]): RangeResult => ({ kind: 'multi', ranges: pairs.map(([start, end]) => ({ start, end })) });

const HUGE = '9'.repeat(40); // far beyond 2^53
const TWO53 = '9007199254740993'; // 2^53 + 1: parseInt would round it to 2^53

const cases: [string | undefined, number, RangeResult, string][] = [
  [undefined, 1000, none, 'no header'],
  ['bytes=0-499', 1234, one(0, 499), 'first 500'],
  ['bytes=500-', 1234, one(500, 1233), 'open range'],
  ['bytes=-500', 1234, one(734, 1233), 'suffix'],
  ['bytes=-5000', 1234, one(0, 1233), 'suffix longer than the body = whole body'],
  ['bytes=-1234', 1234, one(0, 1233), 'suffix exactly the body'],
  ['bytes=0-0,-1', 10000, multi([0, 0], [9999, 9999]), 'first and last byte'],
  ['bytes=0-1233', 1234, one(0, 1233), 'exactly the whole body'],
  ['bytes=0-99999', 1234, one(0, 1233), 'last-pos past the end clamps'],
  ['bytes=1233-1233', 1234, one(1233, 1233), 'last byte'],
  ['bytes=1234-', 1234, unsat, 'first-pos = size'],
  ['bytes=1234-2000', 1234, unsat, 'entirely after the end'],
  ['bytes=-0', 1234, unsat, 'zero suffix'],
  ['bytes=-0,5000-', 1234, unsat, 'nothing overlaps'],
  ['bytes=-0,1-2', 1234, one(1, 2), 'the unsatisfiable spec is dropped'],
  ['bytes=5000-,0-9', 1234, one(0, 9), 'unsatisfiable first spec dropped'],
  // case, whitespace
  ['BYTES=0-9', 100, one(0, 9), 'unit is case-insensitive'],
  ['Bytes=0-9', 100, one(0, 9), 'unit is case-insensitive (mixed)'],
  ['bytes=0-9 , 20-29', 100, multi([0, 9], [20, 29]), 'OWS before and after a comma'],
  ['bytes=0-9,\t20-29', 100, multi([0, 9], [20, 29]), 'HTAB after a comma'],
  ['  bytes=0-9  ', 100, one(0, 9), 'OWS around the field value'],
  ['bytes= 0-9', 100, one(0, 9), 'OWS before the first element is tolerated'],
  ['bytes=0-9,,20-29', 100, multi([0, 9], [20, 29]), 'empty list element'],
  ['bytes=,0-9,', 100, one(0, 9), 'leading and trailing empty elements'],
  ['bytes=0 -9', 100, none, 'space inside a spec'],
  ['bytes=0- 9', 100, none, 'space after the dash'],
  ['bytes =0-9', 100, none, 'space before ='],
  ['bytes\t=0-9', 100, none, 'tab before ='],
  // malformed → none
  ['bytes=', 100, none, 'empty range-set'],
  ['bytes=,', 100, none, 'only empty elements'],
  ['bytes= , ', 100, none, 'only blank elements'],
  ['bytes', 100, none, 'no ='],
  ['=0-9', 100, none, 'no unit'],
  ['items=0-9', 100, none, 'another unit'],
  ['byte=0-9', 100, none, 'a near miss of the unit'],
  ['bytes=abc', 100, none, 'garbage'],
  ['bytes=0-9,abc', 100, none, 'one garbage spec spoils the header'],
  ['bytes=9-0', 100, none, 'first > last'],
  ['bytes=0-9,9-0', 100, none, 'one inverted spec spoils the header'],
  ['bytes=-', 100, none, 'a lone dash'],
  ['bytes=--5', 100, none, 'double dash'],
  ['bytes=-5-10', 100, none, 'negative first-pos'],
  ['bytes=0--1', 100, none, 'negative last-pos'],
  ['bytes=+1-2', 100, none, 'plus sign'],
  ['bytes=1-+2', 100, none, 'plus sign in last-pos'],
  ['bytes=1.5-2', 100, none, 'fraction'],
  ['bytes=0x10-20', 100, none, 'hex'],
  ['bytes=１-２', 100, none, 'non-ASCII digits'],
  ['bytes=0-9;x', 100, none, 'a parameter'],
  ['bytes=0-9 20-29', 100, none, 'two specs without a comma'],
  ['', 100, none, 'empty header'],
  ['bytes=0-9=', 100, none, 'stray ='],
  // leading zeros
  ['bytes=007-010', 100, one(7, 10), 'leading zeros'],
  ['bytes=000-000', 100, one(0, 0), 'all zeros'],
  ['bytes=-0010', 100, one(90, 99), 'leading zeros in a suffix'],
  ['bytes=-000', 100, unsat, 'zero suffix with leading zeros'],
  ['bytes=0010-09', 100, none, 'first > last after leading zeros (10 > 9)'],
  ['bytes=09-0010', 100, one(9, 10), 'compared as numbers, not strings'],
  // huge numbers
  [`bytes=0-${HUGE}`, 100, one(0, 99), 'huge last-pos clamps'],
  [`bytes=${HUGE}-`, 100, unsat, 'huge first-pos is unsatisfiable'],
  [`bytes=${HUGE}-${HUGE}`, 100, unsat, 'huge both, equal'],
  [`bytes=${HUGE}-1`, 100, none, 'huge first > small last is invalid'],
  [`bytes=${HUGE}9-${HUGE}`, 100, none, 'huge first > huge last (longer) is invalid'],
  [`bytes=-${HUGE}`, 100, one(0, 99), 'huge suffix = whole body'],
  [`bytes=${TWO53}-`, 2 ** 53 - 1, unsat, '2^53+1 is not 2^53 (no lossy parse)'],
  ['bytes=9007199254740990-', 2 ** 53 - 1, one(2 ** 53 - 2, 2 ** 53 - 2), 'near 2^53 exact'],
  [`bytes=9007199254740991-${TWO53}`, 2 ** 53 - 1, unsat, 'first-pos = size at 2^53-1'],
  [`bytes=0-${TWO53}`, 2 ** 53 - 1, one(0, 2 ** 53 - 2), '2^53+1 last-pos clamps'],
  [`bytes=-${TWO53}`, 2 ** 53 - 1, one(0, 2 ** 53 - 2), '2^53+1 suffix clamps'],
  [`bytes=${'0'.repeat(30)}5-6`, 100, one(5, 6), 'many leading zeros'],
  // size 0
  ['bytes=0-0', 0, unsat, 'empty body: int-range unsatisfiable'],
  ['bytes=0-', 0, unsat, 'empty body: open range unsatisfiable'],
  ['bytes=-5', 0, none, 'empty body: non-zero suffix is satisfiable but selects nothing → whole (empty) body'],
  ['bytes=-0', 0, unsat, 'empty body: zero suffix unsatisfiable'],
  ['bytes=0-5,-1', 0, none, 'empty body: any non-zero suffix → whole body'],
  ['bytes=9-0', 0, none, 'empty body: malformed is still none'],
  ['bytes=-1', 1, one(0, 0), 'one byte: suffix'],
  ['bytes=0-', 1, one(0, 0), 'one byte: open'],
  ['bytes=1-', 1, unsat, 'one byte: past the end'],
  // several ranges: coalescing, ordering, abuse
  ['bytes=20-29,0-9', 100, multi([0, 9], [20, 29]), 'sorted ascending'],
  ['bytes=0-9,5-14', 100, one(0, 14), 'overlapping → one range'],
  ['bytes=0-9,10-19', 100, one(0, 19), 'adjacent → one range'],
  ['bytes=0-9,11-19', 100, multi([0, 9], [11, 19]), 'a one-byte gap is kept'],
  ['bytes=0-9,5-14,40-49', 100, multi([0, 14], [40, 49]), 'partly coalesced'],
  ['bytes=0-9,2-3', 100, one(0, 9), 'contained'],
  ['bytes=-10,90-', 100, one(90, 99), 'a suffix and an open range the same'],
  ['bytes=0-59,40-99', 100, none, 'overlap sums past the body → whole body'],
  ['bytes=0-,0-', 100, none, 'the whole body twice'],
  ['bytes=0-49,50-99', 100, one(0, 99), 'halves sum to exactly the body → coalesced, not refused'],
  [`bytes=${Array.from({ length: MAX_RANGE_SPECS }, (_, i) => `${i * 2}-${i * 2}`).join(',')}`, 100,
    multi(...Array.from({ length: MAX_RANGE_SPECS }, (_, i): [number, number] => [i * 2, i * 2])), '16 ranges served'],
  [`bytes=${Array.from({ length: MAX_RANGE_SPECS + 1 }, (_, i) => `${i * 2}-${i * 2}`).join(',')}`, 100, none, '17 ranges → whole body'],
  [`bytes=${Array.from({ length: MAX_RANGE_SPECS + 1 }, () => '500-').join(',')}`, 100, none, '17 unsatisfiable specs → whole body too'],
  [`bytes=0-0${',,'.repeat(1000)}`, 100, one(0, 0), 'many empty elements are fine'],
];

test('parseRange: table of RFC 9110 cases', () => {
  for (const [header, size, want, why] of cases) {
    assert.deepEqual(parseRange(header, size), want, `${why}: ${JSON.stringify(header)} of ${size}`);
  }
});

test('parseRange: two ranges of two bytes sum to the size and coalesce to the whole', () => {
  assert.deepEqual(parseRange('bytes=0-0,-1', 2), one(0, 1));
  assert.deepEqual(parseRange('bytes=0-0,-1', 3), multi([0, 0], [2, 2]));
  assert.deepEqual(parseRange('bytes=0-0,-1', 1), none, 'first and last are the same byte: sum 2 > 1');
});

test('parseRange: a huge header ends quickly and is bounded by the spec limit', () => {
  const header = `bytes=${'0-0,'.repeat(200_000)}`;
  const t0 = process.hrtime.bigint();
  assert.deepEqual(parseRange(header, 100), none);
  assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 500, 'stops after MAX_RANGE_SPECS + 1 specs');
  assert.deepEqual(parseRange(`bytes=${'9'.repeat(1_000_000)}-`, 100), unsat, 'a million digits');
});

test('parseRange: a bad size is a programmer error', () => {
  for (const size of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(() => parseRange('bytes=0-1', size), /invalid representation size/);
  }
});

test('contentRange and unsatisfiedRange', () => {
  assert.equal(contentRange({ start: 0, end: 499 }, 1234), 'bytes 0-499/1234');
  assert.equal(contentRange({ start: 1233, end: 1233 }, 1234), 'bytes 1233-1233/1234');
  assert.equal(contentRange({ start: 0, end: 2 ** 53 - 2 }, 2 ** 53 - 1), 'bytes 0-9007199254740990/9007199254740991');
  assert.equal(unsatisfiedRange(1234), 'bytes */1234');
  assert.equal(unsatisfiedRange(0), 'bytes */0');
  for (const [s, e, size] of [[5, 4, 10], [0, 10, 10], [-1, 2, 10], [0, 0, 0], [0.5, 1, 10]] as const) {
    assert.throws(() => contentRange({ start: s, end: e }, size), /invalid byte range/);
  }
});

test('multipartByteranges: exact bytes of the framing', () => {
  const plan = multipartByteranges([{ start: 0, end: 1 }, { start: 5, end: 7 }], 10, 'text/plain', 'BND');
  assert.equal(plan.boundary, 'BND');
  assert.equal(plan.parts.length, 2);
  assert.equal(plan.parts[0]!.head.toString(), '--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n');
  assert.equal(plan.parts[1]!.head.toString(), '\r\n--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n');
  assert.deepEqual(plan.parts.map((p) => p.range), [{ start: 0, end: 1 }, { start: 5, end: 7 }]);
  assert.equal(plan.tail.toString(), '\r\n--BND--\r\n');
  const body = Buffer.from('0123456789');
  const assembled = Buffer.concat([
    plan.parts[0]!.head, body.subarray(0, 2), plan.parts[1]!.head, body.subarray(5, 8), plan.tail,
  ]);
  assert.equal(assembled.toString(),
    '--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01'
    + '\r\n--BND\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n567'
    + '\r\n--BND--\r\n');
  assert.equal(plan.totalLength, assembled.length);
});

test('multipartByteranges: no Content-Type line for "", injection replaced, bad boundary refused', () => {
  const plain = multipartByteranges([{ start: 0, end: 0 }], 1, '', 'b');
  assert.equal(plain.parts[0]!.head.toString(), '--b\r\nContent-Range: bytes 0-0/1\r\n\r\n');
  const evil = multipartByteranges([{ start: 0, end: 0 }], 1, 'text/plain\r\nX-Evil: 1', 'b');
  assert.match(evil.parts[0]!.head.toString(), /^--b\r\nContent-Type: application\/octet-stream\r\n/);
  assert.throws(() => multipartByteranges([{ start: 0, end: 0 }], 1, 'x/y', 'has space'), /boundary/);
  assert.throws(() => multipartByteranges([{ start: 0, end: 0 }], 1, 'x/y', ''), /boundary/);
  assert.throws(() => multipartByteranges([{ start: 0, end: 1 }], 1, 'x/y', 'b'), /invalid byte range/);
});

test('multipartByteranges: random boundaries differ; a parser reading the assembled file gets every part back', () => {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'brise-range-'));
  try {
    const size = 100_000;
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7919) & 0xff;
    const file = join(dir, 'blob');
    fs.writeFileSync(file, data);
    const r = parseRange('bytes=-100,0-99,50000-50999,99990-', size);
    assert.equal(r.kind, 'multi');
    if (r.kind !== 'multi') return;
    assert.deepEqual(r.ranges, [{ start: 0, end: 99 }, { start: 50000, end: 50999 }, { start: 99900, end: 99999 }]);
    const plan = multipartByteranges(r.ranges, size, 'application/octet-stream');
    assert.notEqual(plan.boundary, multipartByteranges(r.ranges, size, 'application/octet-stream').boundary);
    // Assemble as the front end would: head, then the range's bytes read from disk.
    const fd = fs.openSync(file, 'r');
    const chunks: Buffer[] = [];
    for (const part of plan.parts) {
      const buf = Buffer.alloc(part.range.end - part.range.start + 1);
      fs.readSync(fd, buf, 0, buf.length, part.range.start);
      chunks.push(part.head, buf);
    }
    fs.closeSync(fd);
    chunks.push(plan.tail);
    const body = Buffer.concat(chunks);
    assert.equal(body.length, plan.totalLength);
    // Parse it back as a client would (split on the delimiter).
    const pieces = body.toString('latin1').split(`--${plan.boundary}`);
    assert.equal(pieces[0], '');
    assert.equal(pieces[pieces.length - 1], '--\r\n');
    const parts = pieces.slice(1, -1);
    assert.equal(parts.length, 3);
    parts.forEach((p, i) => {
      const [head, payload] = p.split('\r\n\r\n', 2) as [string, string];
      const { start, end } = r.ranges[i]!;
      assert.match(head, new RegExp(`Content-Range: bytes ${start}-${end}/${size}$`));
      const bytes = Buffer.from(payload.slice(0, payload.length - 2), 'latin1'); // minus the CRLF before the next delimiter
      assert.ok(bytes.equals(data.subarray(start, end + 1)), `part ${i} bytes`);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
