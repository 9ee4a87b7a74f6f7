// Range over the wire: fast-check generates Range headers (valid, suffix, open, overlapping,
// unsatisfiable, huge numbers, garbage) and sends them to a real master (`node cmd/master.js`)
// for one stored blob of a random size; every answer (status, Content-Range, Content-Length,
// body bytes, multipart parts) must equal what an oracle of RFC 9110 §14 written here predicts.
// Owns: the master it starts (stopped by PID in `after`) and its temp dir.
//
// The oracle is written independently of src/protocol/http_range.ts (regexes per element,
// BigInt numbers, sort-free pairwise merging) and applies the policy that file documents and
// the RFC allows: a malformed header, another unit or more than 16 specs → the header is
// ignored (200, whole body); no satisfiable spec → 416 with `bytes */size`; ranges whose
// lengths sum past the body → 200 whole body; overlapping or touching ranges merged; one
// range → 206 with Content-Range; several → 206 multipart/byteranges in ascending order.
//
// Environment: BRISE_RANGE_E2E_RUNS (default 500), BRISE_SEED (replay: also picks the size).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import fc from 'fast-check';
import { parseMultipart, patternSlice, startMaster, stopAll, within, type MasterProcess } from '../test/helpers/master_process.js';

const RUNS = Number(process.env.BRISE_RANGE_E2E_RUNS ?? 500);
const SEED = Number(process.env.BRISE_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** The blob's size: from the seed, so a replay stores the same blob. 1 .. 200 000 bytes. */
const SIZE = 1 + (Math.imul(SEED, 2654435761) >>> 0) % 200_000;
const MAX_SPECS = 16;

let m: MasterProcess;
let data: Buffer;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

before(async () => {
  m = await startMaster({ http: true });
  data = patternSlice(SEED, 0, SIZE);
  const res = await request('PUT', undefined, data);
  assert.equal(res.status, 201, `storing the blob of ${SIZE} bytes`);
});

after(async () => {
  agent.destroy();
  await stopAll();
});

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

function request(method: string, range: string | undefined, body?: Buffer): Promise<Reply> {
  const headers: http.OutgoingHttpHeaders = {};
  if (range !== undefined) headers.range = range;
  if (body !== undefined) headers['content-length'] = body.length;
  return within(new Promise<Reply>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: m.httpPort, method, path: '/v1/blobs/range/e2e', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  }), 10_000, `${method} with Range ${JSON.stringify(range)}`);
}

// ---- the oracle ------------------------------------------------------------------------------

type Expect =
  | { status: 200 }
  | { status: 206; ranges: Array<[bigint, bigint]> }
  | { status: 416 };

const OWS = /^[ \t]*|[ \t]*$/g;

/** What RFC 9110 (under the documented policy) says a GET with this Range answers. */
function oracle(header: string | undefined, sizeNumber: number): Expect {
  const size = BigInt(sizeNumber);
  if (header === undefined) return { status: 200 };
  const top = /^[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)=([\s\S]*)$/.exec(header);
  if (top === null || top[1]!.toLowerCase() !== 'bytes') return { status: 200 };
  const specs: Array<{ first: bigint; last: bigint | null } | { suffix: bigint }> = [];
  for (const raw of top[2]!.split(',')) {
    const element = raw.replace(OWS, '');
    if (element === '') continue;
    const int = /^([0-9]+)-([0-9]*)$/.exec(element);
    const suffix = /^-([0-9]+)$/.exec(element);
    if (int !== null) {
      const first = BigInt(int[1]!);
      const last = int[2] === '' ? null : BigInt(int[2]!);
      if (last !== null && first > last) return { status: 200 };
      specs.push({ first, last });
    } else if (suffix !== null) {
      specs.push({ suffix: BigInt(suffix[1]!) });
    } else {
      return { status: 200 };
    }
  }
  if (specs.length === 0 || specs.length > MAX_SPECS) return { status: 200 };
  if (size === 0n) return specs.some((s) => 'suffix' in s && s.suffix > 0n) ? { status: 200 } : { status: 416 };
  const ranges: Array<[bigint, bigint]> = [];
  for (const s of specs) {
    if ('suffix' in s) {
      if (s.suffix > 0n) ranges.push([s.suffix >= size ? 0n : size - s.suffix, size - 1n]);
    } else if (s.first < size) {
      ranges.push([s.first, s.last === null || s.last >= size ? size - 1n : s.last]);
    }
  }
  if (ranges.length === 0) return { status: 416 };
  if (ranges.length > 1 && ranges.reduce((n, [a, b]) => n + (b - a + 1n), 0n) > size) return { status: 200 };
  // Merge any two that overlap or touch, until none do; then ascending.
  let merged = ranges.map((r) => [...r] as [bigint, bigint]);
  for (let changed = true; changed;) {
    changed = false;
    outer: for (let i = 0; i < merged.length; i++) {
      for (let j = i + 1; j < merged.length; j++) {
        const [a1, b1] = merged[i]!;
        const [a2, b2] = merged[j]!;
        if (a2 <= b1 + 1n && a1 <= b2 + 1n) {
          merged[i] = [a1 < a2 ? a1 : a2, b1 > b2 ? b1 : b2];
          merged = merged.filter((_, k) => k !== j);
          changed = true;
          break outer;
        }
      }
    }
  }
  merged.sort((x, y) => (x[0] < y[0] ? -1 : 1));
  return { status: 206, ranges: merged };
}

// ---- generators ------------------------------------------------------------------------------

const printable = fc.string({ unit: fc.constantFrom(...' \t!"#$%&\'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~'.split('')), maxLength: 30 });

/** Numbers around what matters: 0, the edges of the body, inside, far past it, absurdly long. */
const num = fc.oneof(
  fc.constantFrom(0, 1, SIZE - 1, SIZE, SIZE + 1).map(String),
  fc.nat({ max: SIZE + 10 }).map(String),
  fc.nat({ max: 20 }).map(String),
  fc.integer({ min: 20, max: 60 }).map((n) => '9'.repeat(n)),
  fc.tuple(fc.integer({ min: 1, max: 5 }), fc.nat({ max: SIZE })).map(([z, n]) => '0'.repeat(z) + String(n)),
);

// Mostly valid specs: one bad spec makes the whole header ignored, so garbage is rare per spec.
const spec = fc.oneof(
  // Two numbers in order (first > last is malformed: that is the garbage case below).
  { weight: 10, arbitrary: fc.tuple(num, num).map(([a, b]) => (BigInt(a) <= BigInt(b) ? `${a}-${b}` : `${b}-${a}`)) },
  { weight: 8, arbitrary: fc.tuple(fc.nat({ max: SIZE }), fc.nat({ max: 2000 })).map(([a, n]) => `${a}-${a + n}`) },
  { weight: 4, arbitrary: num.map((a) => `${a}-`) },
  { weight: 4, arbitrary: num.map((n) => `-${n}`) },
  { weight: 1, arbitrary: fc.constantFrom('-', '', '1-2-3', '+5-6', '5 - 6', 'a-b', '-0', '0x1-2', '1.5-2', '5-1') },
  { weight: 1, arbitrary: printable },
);

const ows = fc.constantFrom('', '', '', ' ', '\t', '  ');
const unit = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('bytes', 'BYTES', 'Bytes', ' bytes') },
  { weight: 1, arbitrary: fc.constantFrom('items', 'byte', 'bytes ', '') },
);
const specList = (maxLength: number): fc.Arbitrary<string> =>
  fc.array(fc.tuple(ows, spec, ows), { minLength: 1, maxLength }).map((parts) => parts.map(([l, s, r]) => `${l}${s}${r}`).join(','));

const rangeHeader: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(unit, specList(4)).map(([u, list]) => `${u}=${list}`) },
  // Long lists: past 16 specs the header is ignored; heavy overlap sums past the body.
  { weight: 2, arbitrary: fc.tuple(unit, specList(20)).map(([u, list]) => `${u}=${list}`) },
  { weight: 1, arbitrary: printable },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

// ---- the property ----------------------------------------------------------------------------

function check(header: string | undefined, reply: Reply): void {
  const want = oracle(header, SIZE);
  const where = `Range ${JSON.stringify(header)} on ${SIZE} bytes`;
  assert.equal(reply.status, want.status, where);
  assert.equal(reply.headers['content-length'], String(reply.body.length), `${where}: Content-Length`);
  if (want.status === 200) {
    assert.equal(reply.headers['content-range'], undefined, where);
    assert.ok(reply.body.equals(data), `${where}: the whole body`);
    return;
  }
  if (want.status === 416) {
    assert.equal(reply.headers['content-range'], `bytes */${SIZE}`, where);
    return;
  }
  const slice = ([a, b]: [bigint, bigint]): Buffer => data.subarray(Number(a), Number(b) + 1);
  const cr = ([a, b]: [bigint, bigint]): string => `bytes ${a}-${b}/${SIZE}`;
  if (want.ranges.length === 1) {
    assert.equal(reply.headers['content-range'], cr(want.ranges[0]!), where);
    assert.ok(reply.body.equals(slice(want.ranges[0]!)), `${where}: the range's bytes`);
    return;
  }
  const parts = parseMultipart(reply.body, String(reply.headers['content-type']));
  assert.equal(parts.length, want.ranges.length, `${where}: parts`);
  parts.forEach((p, i) => {
    assert.equal(p.headers['content-range'], cr(want.ranges[i]!), `${where}: part ${i}`);
    assert.ok(p.body.equals(slice(want.ranges[i]!)), `${where}: part ${i} bytes`);
  });
}

test(`generated Range headers against one blob (size ${SIZE}, seed ${SEED}) answer as the RFC 9110 oracle says`, { timeout: 60_000 }, async () => {
  const seen = { 200: 0, 206: 0, multi: 0, 416: 0 };
  await fc.assert(
    fc.asyncProperty(rangeHeader, async (header) => {
      const reply = await request('GET', header);
      check(header, reply);
      const want = oracle(header, SIZE);
      if (want.status === 206 && want.ranges.length > 1) seen.multi++;
      else seen[want.status]++;
    }),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  console.log(`Range e2e (size ${SIZE}, seed ${SEED}): ${JSON.stringify(seen)}`);
  // The generators must reach every kind of answer, or the property proves little.
  if (RUNS >= 200) for (const [kind, n] of Object.entries(seen)) assert.ok(n > 0, `no run answered ${kind}`);
});

test('the oracle agrees with hand-checked RFC 9110 examples (it is tested too)', () => {
  const r = (a: number, b: number): [bigint, bigint] => [BigInt(a), BigInt(b)];
  assert.deepEqual(oracle('bytes=0-499', 10_000), { status: 206, ranges: [r(0, 499)] });
  assert.deepEqual(oracle('bytes=-500', 10_000), { status: 206, ranges: [r(9500, 9999)] });
  assert.deepEqual(oracle('bytes=9500-', 10_000), { status: 206, ranges: [r(9500, 9999)] });
  assert.deepEqual(oracle('bytes=0-0,-1', 10_000), { status: 206, ranges: [r(0, 0), r(9999, 9999)] });
  assert.deepEqual(oracle('bytes=500-600,601-999', 10_000), { status: 206, ranges: [r(500, 999)] });
  assert.deepEqual(oracle('bytes=500-700,601-999', 10_000), { status: 206, ranges: [r(500, 999)] });
  assert.deepEqual(oracle('bytes=10000-', 10_000), { status: 416 });
  assert.deepEqual(oracle('bytes=-0', 10_000), { status: 416 });
  assert.deepEqual(oracle('bytes=5-1', 10_000), { status: 200 });
  assert.deepEqual(oracle('bytes=0-9999,0-9999', 10_000), { status: 200 });
  assert.deepEqual(oracle(' bytes = 0-1', 10_000), { status: 200 });
  assert.deepEqual(oracle('bytes=1-2, ,\t3-4 ', 10_000), { status: 206, ranges: [r(1, 4)] });
  assert.deepEqual(oracle('bytes=1-2, ,\t4-5 ', 10_000), { status: 206, ranges: [r(1, 2), r(4, 5)] });
  assert.deepEqual(oracle('bytes=0-99999999999999999999999', 10), { status: 206, ranges: [r(0, 9)] });
  assert.deepEqual(oracle('items=0-1', 10), { status: 200 });
});
