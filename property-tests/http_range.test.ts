// Property test of parseRange (src/protocol/http_range.ts) against an independent oracle of
// RFC 9110 §14 written here (TESTING.md §6, bad input over HTTP).
//
// The oracle is built differently on purpose: one left-to-right state machine over the whole
// field value (no split, no indexOf, no regex), numbers as BigInt (no digit-string tricks),
// and coalescing by merging any touching pair until nothing changes (no sort-and-sweep). It
// applies the same documented policy (see the top of http_range.ts): malformed → none, OWS
// around list elements, more than 16 specs → none, empty body → none if a non-zero suffix
// is there else unsatisfiable, ranges summing past the body → none, touching ranges merged.
//
// Generated: headers from specs (int, open, suffix, huge digit strings, leading zeros,
// numbers near the size), units in any case, OWS and empty elements, garbage specs and
// random strings; sizes 0, 1, small, near 2^53. Checked on every input: equality with the
// oracle; 0 <= start <= end < size (safe integers); 'multi' ascending, disjoint, not
// adjacent, 2..16 ranges; 'unsatisfiable' only when no spec overlaps the body; OWS around
// commas and the case of the unit change nothing.
//
// Environment: BRISE_RANGE_RUNS (default 20000), BRISE_SEED (replay).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRange, MAX_RANGE_SPECS, type ByteRange, type RangeResult } from '../src/protocol/http_range.js';

const RUNS = Number(process.env.BRISE_RANGE_RUNS ?? 20_000);
const SEED = Number(process.env.BRISE_SEED ?? Math.floor(Math.random() * 2 ** 31));

// ---- the oracle ----

type OSpec = { first: bigint; last: bigint | null } | { suffix: bigint };

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS = '0123456789';

/** The specs of a `bytes` ranges-specifier, or null when the header is to be ignored. */
function oracleSpecs(header: string): OSpec[] | null {
  let i = 0;
  const at = (): string => header.charAt(i);
  const ows = (c: string): boolean => c === ' ' || c === '\t';
  while (i < header.length && ows(at())) i++;
  let unit = '';
  while (i < header.length && TCHAR.includes(at())) unit += header[i++];
  if (at() !== '=' || unit.toLowerCase() !== 'bytes') return null;
  i++;
  const specs: OSpec[] = [];
  type State = 'between' | 'first' | 'dash' | 'last' | 'suffixDash' | 'suffix' | 'after';
  let state: State = 'between';
  let a = 0n;
  let b = 0n;
  const finish = (): boolean => {
    if (state === 'first' || state === 'suffixDash') return false; // `5` or `-`
    if (state === 'dash') specs.push({ first: a, last: null });
    else if (state === 'last') {
      if (a > b) return false;
      specs.push({ first: a, last: b });
    } else if (state === 'suffix') specs.push({ suffix: b });
    state = 'after';
    return true;
  };
  for (; i <= header.length; i++) {
    const c = i < header.length ? header[i]! : 'END';
    const digit = DIGITS.includes(c) && c.length === 1;
    if (state === 'between') {
      if (ows(c) || c === ',' || c === 'END') continue;
      if (digit) { state = 'first'; a = BigInt(c); } else if (c === '-') { state = 'suffixDash'; b = 0n; } else return null;
    } else if (state === 'first') {
      if (digit) a = a * 10n + BigInt(c); else if (c === '-') { state = 'dash'; b = 0n; } else return null;
    } else if (state === 'dash' || state === 'last') {
      if (digit) { b = (state === 'dash' ? 0n : b) * 10n + BigInt(c); state = 'last'; } else if (ows(c) || c === ',' || c === 'END') {
        if (!finish()) return null;
        if (c === ',') state = 'between';
      } else return null;
    } else if (state === 'suffixDash' || state === 'suffix') {
      if (digit) { b = b * 10n + BigInt(c); state = 'suffix'; } else if (ows(c) || c === ',' || c === 'END') {
        if (!finish()) return null;
        if (c === ',') state = 'between';
      } else return null;
    } else { // after a spec: OWS, then ',' or the end
      if (c === ',') state = 'between'; else if (!ows(c) && c !== 'END') return null;
    }
  }
  return specs.length === 0 ? null : specs;
}

/** Why the oracle answered as it did: to check that the generators reach every branch. */
type Why = 'absent' | 'malformed' | 'too many' | 'empty body' | 'past the body' | 'served' | 'unsatisfiable';
let why: Why = 'served';

function oracle(header: string | undefined, size: number): RangeResult {
  const NONE: RangeResult = { kind: 'none' };
  if (header === undefined) return (why = 'absent', NONE);
  const specs = oracleSpecs(header);
  if (specs === null) return (why = 'malformed', NONE);
  if (specs.length > MAX_RANGE_SPECS) return (why = 'too many', NONE);
  const n = BigInt(size);
  why = 'unsatisfiable';
  if (n === 0n) return specs.some((s) => 'suffix' in s && s.suffix > 0n) ? (why = 'empty body', NONE) : { kind: 'unsatisfiable' };
  const ranges: [bigint, bigint][] = [];
  for (const s of specs) {
    if ('suffix' in s) {
      if (s.suffix > 0n) ranges.push([s.suffix >= n ? 0n : n - s.suffix, n - 1n]);
    } else if (s.first < n) {
      ranges.push([s.first, s.last === null || s.last >= n ? n - 1n : s.last]);
    }
  }
  if (ranges.length === 0) return { kind: 'unsatisfiable' };
  const toRange = ([s, e]: [bigint, bigint]): ByteRange => ({ start: Number(s), end: Number(e) });
  why = 'served';
  if (ranges.length === 1) return { kind: 'single', range: toRange(ranges[0]!) };
  if (ranges.reduce((sum, [s, e]) => sum + (e - s + 1n), 0n) > n) return (why = 'past the body', NONE);
  const merged = ranges.map((r): [bigint, bigint] => [r[0], r[1]]);
  let changed = true;
  while (changed) {
    changed = false;
    outer: for (let x = 0; x < merged.length; x++) {
      for (let y = 0; y < merged.length; y++) {
        if (x === y) continue;
        const [s1, e1] = merged[x]!;
        const [s2, e2] = merged[y]!;
        if (s2 <= e1 + 1n && s1 <= e2 + 1n) { // overlap or touch
          merged[x] = [s1 < s2 ? s1 : s2, e1 > e2 ? e1 : e2];
          merged.splice(y, 1);
          changed = true;
          break outer;
        }
      }
    }
  }
  const out = merged.map(toRange).sort((p, q) => p.start - q.start);
  return out.length === 1 ? { kind: 'single', range: out[0]! } : { kind: 'multi', ranges: out };
}

// ---- generators ----

const sizeArb = fc.oneof(
  fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 100_000 }),
  fc.integer({ min: Number.MAX_SAFE_INTEGER - 100, max: Number.MAX_SAFE_INTEGER }),
);

const withZeros = (digits: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(fc.oneof({ weight: 5, arbitrary: fc.constant('') }, fc.constantFrom('0', '00', '000000000000000000000')), digits)
    .map(([z, d]) => z + d);

/** A decimal numeral: small, near the size, near 2^53, or huge. */
const numberArb = (size: number): fc.Arbitrary<string> => withZeros(fc.oneof(
  fc.integer({ min: 0, max: 20 }).map(String),
  fc.bigInt({ min: BigInt(Math.max(0, size - 3)), max: BigInt(size) + 3n }).map(String),
  fc.integer({ min: 0, max: Math.max(0, size) }).map(String),
  fc.bigInt({ min: 2n ** 53n - 5n, max: 2n ** 53n + 5n }).map(String),
  fc.array(fc.constantFrom(...DIGITS), { minLength: 16, maxLength: 40 }).map((d) => d.join('')),
));

const specArb = (size: number): fc.Arbitrary<string> => fc.oneof(
  { weight: 4, arbitrary: fc.tuple(numberArb(size), numberArb(size)).map(([a, b]) => `${a}-${b}`) },
  { weight: 4, arbitrary: fc.tuple(numberArb(size), numberArb(size))
    .map(([a, b]) => (BigInt(a) <= BigInt(b) ? `${a}-${b}` : `${b}-${a}`)) },
  { weight: 2, arbitrary: numberArb(size).map((a) => `${a}-`) },
  { weight: 3, arbitrary: numberArb(size).map((a) => `-${a}`) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'0123456789-+ \tabe=;.xX'), maxLength: 8 }) },
);

const validSepArb = fc.constantFrom(',', ',', ', ', ' ,', ' , ', ',\t', ',,', ', ,');
const sepArb = fc.oneof({ weight: 8, arbitrary: validSepArb }, fc.constantFrom(' ', ';', ''));
const unitArb = fc.oneof({ weight: 8, arbitrary: fc.constantFrom('bytes', 'BYTES', 'Bytes', 'bYtEs') },
  fc.constantFrom('items', 'byte', 'bytes ', ' bytes', '', 'bytes=bytes', 'b\u00fftes'));
const owsArb = fc.constantFrom('', '', '', ' ', '\t', '  ');

/** Mostly satisfiable, non-overlapping specs, so that 'multi' is reached often. */
const narrowSpecArb = (size: number): fc.Arbitrary<string> => fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: Math.max(0, size - 1) }), fc.integer({ min: 0, max: 8 }))
    .map(([a, w]) => `${a}-${a + w}`) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }).map((n) => `-${n}`) },
  { weight: 1, arbitrary: fc.integer({ min: Math.max(0, size - 8), max: size + 2 }).map((a) => `${a}-`) },
);

const headerArb = (size: number): fc.Arbitrary<string | undefined> => fc.oneof(
  { weight: 8, arbitrary: fc.tuple(unitArb, fc.array(fc.tuple(narrowSpecArb(size), validSepArb), { minLength: 1, maxLength: 6 }))
    .map(([unit, parts]) => `${unit}=${parts.map(([s, sep], k) => (k === 0 ? s : sep + s)).join('')}`) },
  { weight: 1, arbitrary: fc.tuple(unitArb, fc.array(fc.tuple(narrowSpecArb(size), validSepArb), { minLength: 15, maxLength: 18 }))
    .map(([unit, parts]) => `${unit}=${parts.map(([s, sep], k) => (k === 0 ? s : sep + s)).join('')}`) },
  { weight: 8, arbitrary: fc.tuple(owsArb, unitArb, owsArb, fc.array(fc.tuple(specArb(size), sepArb), { minLength: 0, maxLength: 5 }), owsArb)
    .map(([o1, unit, o2, parts, o3]) => `${o1}${unit}=${o2}${parts.map(([s, sep], k) => (k === 0 ? s : sep + s)).join('')}${o3}`) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...'bytesBYTES=0123456789-, \t;'), maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const caseArb = sizeArb.chain((size) => headerArb(size).map((header) => ({ size, header })));

// ---- the properties ----

function checkInvariants(r: RangeResult, size: number, header: string | undefined): void {
  const ranges = r.kind === 'single' ? [r.range] : r.kind === 'multi' ? r.ranges : [];
  for (const { start, end } of ranges) {
    assert.ok(Number.isSafeInteger(start) && Number.isSafeInteger(end), 'safe integers');
    assert.ok(start >= 0 && start <= end && end < size, `0 <= ${start} <= ${end} < ${size}`);
  }
  if (r.kind === 'multi') {
    assert.ok(r.ranges.length >= 2 && r.ranges.length <= MAX_RANGE_SPECS, 'multi holds 2..16 ranges');
    for (let k = 1; k < r.ranges.length; k++) {
      assert.ok(r.ranges[k]!.start > r.ranges[k - 1]!.end + 1, 'ascending, disjoint and not adjacent');
    }
  }
  if (r.kind === 'unsatisfiable') {
    const specs = oracleSpecs(header!);
    assert.ok(specs !== null, 'unsatisfiable only for a valid header');
    const n = BigInt(size);
    for (const s of specs) assert.ok('suffix' in s ? s.suffix === 0n : s.first >= n, 'no spec overlaps the body');
  }
}

test(`parseRange agrees with the RFC 9110 oracle (${RUNS} runs)`, () => {
  const kinds = { none: 0, single: 0, multi: 0, unsatisfiable: 0 };
  const whys: Record<Why, number> = { absent: 0, malformed: 0, 'too many': 0, 'empty body': 0, 'past the body': 0, served: 0, unsatisfiable: 0 };
  fc.assert(fc.property(caseArb, ({ size, header }) => {
    const got = parseRange(header, size);
    const want = oracle(header, size);
    assert.deepEqual(got, want, `header ${JSON.stringify(header)} size ${size}`);
    checkInvariants(got, size, header);
  }), { numRuns: RUNS, seed: SEED });
  // Count outcomes outside fc.assert (which also runs shrinking) over the same seed's inputs.
  for (const { size, header } of fc.sample(caseArb, { numRuns: RUNS, seed: SEED })) {
    kinds[parseRange(header, size).kind]++;
    oracle(header, size);
    whys[why]++;
  }
  console.log(`http_range: seed ${SEED}, outcomes ${JSON.stringify(kinds)}, oracle branches ${JSON.stringify(whys)}`);
  // The generators must reach every outcome and every branch, or the comparison proves little.
  for (const [kind, count] of Object.entries(kinds)) assert.ok(count > RUNS / 20, `${kind} reached only ${count} times (seed ${SEED})`);
  for (const [w, count] of Object.entries(whys)) assert.ok(count > RUNS / 200, `'${w}' reached only ${count} times (seed ${SEED})`);
});

test('OWS around commas and the case of the unit change nothing', () => {
  fc.assert(fc.property(sizeArb.chain((size) => fc.tuple(fc.constant(size),
    fc.array(specArb(size), { minLength: 1, maxLength: 6 }), fc.array(fc.constantFrom(',', ' ,', ', ', '\t,\t', ' , '), { minLength: 6, maxLength: 6 }),
    fc.constantFrom('bytes', 'BYTES', 'Bytes'))), ([size, specs, seps, unit]) => {
    fc.pre(specs.every((s) => !/[ \t,]/.test(s))); // garbage with OWS or commas has no canonical form
    const plain = parseRange(`bytes=${specs.join(',')}`, size);
    const spaced = parseRange(`${unit}=${specs.map((s, k) => (k === 0 ? s : seps[k]! + s)).join('')}`, size);
    assert.deepEqual(spaced, plain);
  }), { numRuns: Math.ceil(RUNS / 5), seed: SEED });
});

test('the oracle itself on a few hand-checked headers', () => {
  assert.deepEqual(oracle('bytes=0-499', 1234), { kind: 'single', range: { start: 0, end: 499 } });
  assert.deepEqual(oracle('bytes=-500', 1234), { kind: 'single', range: { start: 734, end: 1233 } });
  assert.deepEqual(oracle('bytes=0-0, -1', 100), { kind: 'multi', ranges: [{ start: 0, end: 0 }, { start: 99, end: 99 }] });
  assert.deepEqual(oracle('bytes=9-0', 100), { kind: 'none' });
  assert.deepEqual(oracle('bytes=100-', 100), { kind: 'unsatisfiable' });
  assert.deepEqual(oracle(`bytes=0-${'9'.repeat(30)}`, 100), { kind: 'single', range: { start: 0, end: 99 } });
});
