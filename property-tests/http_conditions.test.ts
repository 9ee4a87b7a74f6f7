// Property test of evaluateConditions and parseHttpDate (src/protocol/http_conditions.ts)
// against an independent oracle of RFC 9110 §13.2.2 written here (TESTING.md §6).
//
// The oracle shares no code with the module (it imports only the one documented limit,
// MAX_CONDITION_TAGS) and is built differently on purpose: entity-tag lists are read by a
// character state machine into {weak, opaque} pairs; HTTP-dates by fixed column positions and
// table look-ups (no regex, no Date), turned into seconds by a days-from-civil count; RFC 850
// years by walking down from 50 years ahead; the steps of §13.2.2 one by one as the RFC words
// them. It applies the documented policies of the module (see its top): malformed If-Match →
// empty list (412), malformed If-None-Match → empty list (holds), more than 64 tags →
// malformed, invalid dates and missing Last-Modified → the date field is ignored, dates in
// whole seconds, leap second 60 → the next second, If-Range with a date only when the caller
// vouches Last-Modified is strong, HEAD judged as GET.
//
// Generated: methods GET/HEAD/PUT/DELETE; representations absent or present, with strong or
// weak ETags, with or without Last-Modified (some with a fraction of a second), strong or not;
// random subsets of the five condition fields plus Range; tag lists with W/, `*`, commas inside
// tags, empty elements, OWS, obs-text, malformed tags and overlong lists; dates before, equal to
// and after Last-Modified in all three formats, with wrong day names, invalid calendar days,
// bad times, wrong case, lists of dates and garbage; clocks that make RFC 850 years wrap.
//
// Environment: BRISE_CONDITION_RUNS (default 20000), BRISE_SEED (replay).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  evaluateConditions, parseHttpDate, type ConditionalHeaders, type ConditionalMethod, type ConditionVerdict, type Validators,
} from '../src/protocol/http_conditions.js';
import { MAX_CONDITION_TAGS } from '../src/protocol/http_etag.js';

const RUNS = Number(process.env.BRISE_CONDITION_RUNS ?? 20_000);
const SEED = Number(process.env.BRISE_SEED ?? Math.floor(Math.random() * 2 ** 31));

// ---- the oracle: entity-tags ----

type OTag = { weak: boolean; opaque: string };

/** One entity-tag spanning the whole string, or null. */
function oracleTag(s: string): OTag | null {
  let weak = false;
  let k = 0;
  if (s.charAt(0) === 'W' && s.charAt(1) === '/') {
    weak = true;
    k = 2;
  }
  if (s.charAt(k) !== '"' || s.length < k + 2 || s.charAt(s.length - 1) !== '"') return null;
  const inner = s.substring(k + 1, s.length - 1);
  for (const ch of inner) {
    const c = ch.codePointAt(0)!;
    const etagc = c === 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
    if (!etagc) return null;
  }
  return { weak, opaque: inner };
}

const isOws = (c: string): boolean => c === ' ' || c === '\t';

function stripOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charAt(a))) a++;
  while (b > a && isOws(s.charAt(b - 1))) b--;
  return s.substring(a, b);
}

/** `*`, a list of tags, or null when malformed: a state machine over the whole value. */
function oracleTagList(value: string): '*' | OTag[] | null {
  if (stripOws(value) === '*') return '*';
  const tags: OTag[] = [];
  let state: 'gap' | 'tag' | 'after' = 'gap';
  let current = '';
  for (const ch of value) {
    if (state === 'gap') {
      if (isOws(ch) || ch === ',') continue;
      state = 'tag';
      current = ch;
      continue;
    }
    if (state === 'tag') {
      current += ch;
      // A tag ends at its closing quote: the second quote of `"..."` or of `W/"..."`.
      const quotes = [...current].filter((c) => c === '"').length;
      if (quotes === 2) {
        const t = oracleTag(current);
        if (t === null) return null;
        tags.push(t);
        state = 'after';
      } else if (!(current === 'W' || current === 'W/' || current.startsWith('"') || current.startsWith('W/"'))) {
        return null;
      }
      continue;
    }
    if (ch === ',') state = 'gap';
    else if (!isOws(ch)) return null;
  }
  if (state === 'tag') return null;
  return tags.length > MAX_CONDITION_TAGS ? null : tags;
}

const strongCompare = (a: OTag, b: OTag): boolean => !a.weak && !b.weak && a.opaque === b.opaque;
const weakCompare = (a: OTag, b: OTag): boolean => a.opaque === b.opaque;

// ---- the oracle: HTTP-dates (§5.6.7), in seconds ----

const O_MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const O_DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const O_LONG_DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

function digitsAt(s: string, from: number, n: number): number | null {
  let v = 0;
  for (let k = from; k < from + n; k++) {
    const c = s.charCodeAt(k);
    if (!(c >= 48 && c <= 57)) return null;
    v = v * 10 + (c - 48);
  }
  return v;
}

const isLeap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const monthLength = (y: number, m: number): number => [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m]!;

/** Days from 1970-01-01 to y-m-d (m from 0), by counting whole years and months. */
function daysFromEpoch(y: number, m: number, d: number): number {
  let days = 0;
  if (y >= 1970) for (let yy = 1970; yy < y; yy++) days += isLeap(yy) ? 366 : 365;
  else for (let yy = y; yy < 1970; yy++) days -= isLeap(yy) ? 366 : 365;
  for (let mm = 0; mm < m; mm++) days += monthLength(y, mm);
  return days + d - 1;
}

/** "HH:MM:SS" at column `at`, as seconds of the day, or null. */
function timeAt(s: string, at: number): number | null {
  if (s.charAt(at + 2) !== ':' || s.charAt(at + 5) !== ':') return null;
  const h = digitsAt(s, at, 2);
  const mi = digitsAt(s, at + 3, 2);
  const se = digitsAt(s, at + 6, 2);
  if (h === null || mi === null || se === null || h > 23 || mi > 59 || se > 60) return null;
  return h * 3600 + mi * 60 + se;
}

function civil(y: number | null, m: number, d: number | null, t: number | null): number | null {
  if (y === null || m < 0 || d === null || t === null || d < 1 || d > monthLength(y, m)) return null;
  return daysFromEpoch(y, m, d) * 86400 + t;
}

function oracleYear850(yy: number, nowMs: number): number {
  let y = new Date(nowMs).getUTCFullYear() + 50;
  while (y % 100 !== yy) y--;
  return y;
}

/** Seconds since the epoch, or null. Which format matched goes to `dateForm`, for coverage. */
let dateForm: 'imf' | 'rfc850' | 'asctime' | 'invalid' = 'invalid';
function oracleDate(value: string, nowMs: number): number | null {
  const s = stripOws(value);
  dateForm = 'invalid';
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", 29 columns.
  if (s.length === 29 && O_DAYS.includes(s.substring(0, 3)) && s.substring(3, 5) === ', ' && s.charAt(7) === ' '
    && s.charAt(11) === ' ' && s.charAt(16) === ' ' && s.substring(25) === ' GMT') {
    const r = civil(digitsAt(s, 12, 4), O_MONTHS.indexOf(s.substring(8, 11)), digitsAt(s, 5, 2), timeAt(s, 17));
    if (r !== null) dateForm = 'imf';
    return r;
  }
  // asctime: "Sun Nov  6 08:49:37 1994", 24 columns; the day is "DD" or " D".
  if (s.length === 24 && O_DAYS.includes(s.substring(0, 3)) && s.charAt(3) === ' ' && s.charAt(7) === ' ' && s.charAt(10) === ' '
    && s.charAt(19) === ' ') {
    const day = s.charAt(8) === ' ' ? digitsAt(s, 9, 1) : digitsAt(s, 8, 2);
    const r = civil(digitsAt(s, 20, 4), O_MONTHS.indexOf(s.substring(4, 7)), day, timeAt(s, 11));
    if (r !== null) dateForm = 'asctime';
    return r;
  }
  // rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT": a long day name, then 24 fixed columns.
  const comma = s.indexOf(', ');
  if (comma > 0 && O_LONG_DAYS.includes(s.substring(0, comma))) {
    const t = s.substring(comma + 2);
    if (t.length !== 22 || t.charAt(2) !== '-' || t.charAt(6) !== '-' || t.charAt(9) !== ' ' || t.substring(18) !== ' GMT') return null;
    const yy = digitsAt(t, 7, 2);
    const r = civil(yy === null ? null : oracleYear850(yy, nowMs), O_MONTHS.indexOf(t.substring(3, 6)), digitsAt(t, 0, 2), timeAt(t, 10));
    if (r !== null) dateForm = 'rfc850';
    return r;
  }
  return null;
}

// ---- the oracle: §13.2.2, step by step ----

/** Which step decided, for coverage. */
let step = '';

function oracle(method: ConditionalMethod, h: ConditionalHeaders, rep: Validators | null, nowMs: number): ConditionVerdict {
  const safe = method === 'GET' || method === 'HEAD';
  const repTag = rep === null ? null : oracleTag(rep.etag)!;
  const lmSeconds = rep === null || rep.lastModified === null ? null : Math.floor(rep.lastModified / 1000);
  let judged = false;
  // 1. If-Match present: evaluate it; false → 412.
  if (h.ifMatch !== undefined) {
    judged = true;
    const list = oracleTagList(h.ifMatch) ?? [];
    const holds = repTag !== null && (list === '*' || list.some((t) => strongCompare(t, repTag)));
    if (!holds) return (step = '1: If-Match false', { kind: 'failed', header: 'If-Match' });
  }
  // 2. If-Match absent and If-Unmodified-Since present: evaluate it (ignored when not a date or
  //    without a modification date); false → 412.
  if (h.ifMatch === undefined && h.ifUnmodifiedSince !== undefined) {
    const date = oracleDate(h.ifUnmodifiedSince, nowMs);
    if (date !== null && lmSeconds !== null) {
      judged = true;
      if (!(lmSeconds <= date)) return (step = '2: If-Unmodified-Since false', { kind: 'failed', header: 'If-Unmodified-Since' });
    }
  }
  // 3. If-None-Match present: evaluate it; false → 304 for GET/HEAD, 412 for the others.
  if (h.ifNoneMatch !== undefined) {
    judged = true;
    const list = oracleTagList(h.ifNoneMatch) ?? [];
    const matches = repTag !== null && (list === '*' || list.some((t) => weakCompare(t, repTag)));
    if (matches) {
      step = '3: If-None-Match false';
      return safe ? { kind: 'not-modified' } : { kind: 'failed', header: 'If-None-Match' };
    }
  }
  // 4. GET/HEAD, If-None-Match absent, If-Modified-Since present: false → 304.
  if (safe && h.ifNoneMatch === undefined && h.ifModifiedSince !== undefined) {
    const date = oracleDate(h.ifModifiedSince, nowMs);
    if (date !== null && lmSeconds !== null && lmSeconds <= date) return (step = '4: If-Modified-Since false', { kind: 'not-modified' });
  }
  // 5. GET (and HEAD) with Range and If-Range: true → the Range applies; false → it is ignored.
  let useRange = safe && h.range !== undefined;
  if (useRange && h.ifRange !== undefined) {
    let holds = false;
    const v = stripOws(h.ifRange);
    if (repTag !== null && (v.startsWith('"') || v.startsWith('W/"'))) {
      const t = oracleTag(v);
      holds = t !== null && strongCompare(t, repTag);
    } else if (rep !== null) {
      const date = oracleDate(v, nowMs);
      holds = date !== null && rep.lastModifiedStrong && lmSeconds !== null && date === lmSeconds;
    }
    useRange = holds;
    step = holds ? '5: If-Range true' : '5: If-Range false';
  } else {
    step = useRange ? '6: Range' : '6: whole';
  }
  return { kind: 'proceed', useRange, guard: !judged ? 'none' : rep === null ? 'absent' : 'same' };
}

// ---- generators ----

const BASE_MS = Date.UTC(2024, 1, 29, 23, 59, 58); // a leap day, near midnight and a minute change
const OPAQUES = ['a', 'b', 'a,b', '', 'v1-40', 'x\u00e9', 'W'];

const owsArb = fc.constantFrom('', '', '', ' ', '\t', ' \t ');
const strongOrWeak = (o: string): fc.Arbitrary<string> => fc.constantFrom(`"${o}"`, `W/"${o}"`);
const goodTagArb = fc.constantFrom(...OPAQUES).chain(strongOrWeak);
const badTagArb = fc.constantFrom('a', '"a', 'a"', 'w/"a"', 'W/ "a"', '"a b"', '"a"b', 'W/a', '"\u0001"', '"""', 'W/', 'W');
const sepArb = fc.constantFrom(',', ', ', ' ,', ',,', ' , ', ',\t', ', ,');

const tagListArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('*', ' * ', '\t*', '*,', '*, "a"', '**') },
  { weight: 10, arbitrary: fc.tuple(owsArb, fc.array(fc.tuple(goodTagArb, sepArb), { minLength: 1, maxLength: 4 }), owsArb)
    .map(([a, parts, b]) => a + parts.map(([t, s], k) => (k === 0 ? t : s + t)).join('') + b) },
  { weight: 3, arbitrary: fc.array(fc.tuple(fc.oneof({ weight: 3, arbitrary: goodTagArb }, badTagArb), sepArb), { minLength: 1, maxLength: 4 })
    .map((parts) => parts.map(([t, s], k) => (k === 0 ? t : s + t)).join('')) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_CONDITION_TAGS - 1, max: MAX_CONDITION_TAGS + 2 })
    .chain((n) => fc.array(goodTagArb, { minLength: n, maxLength: n }).map((ts) => ts.join(','))) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', ',', ' , ') },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'"W/ab,* \t'), maxLength: 12 }) },
);

const pad2 = (n: number): string => String(n).padStart(2, '0');
const pad4 = (n: number): string => String(n).padStart(4, '0');
const LONG_BY_UTC_DAY = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const hms = (d: Date): string => `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;

/** An instant written in one of the three forms (optionally with a wrong day name). */
function formatDate(ms: number, form: 'imf' | 'rfc850' | 'asctime', wrongDay: boolean): string {
  const d = new Date(ms);
  const wd = (d.getUTCDay() + (wrongDay ? 3 : 0)) % 7;
  const short = LONG_BY_UTC_DAY[wd]!.slice(0, 3);
  const mon = O_MONTHS[d.getUTCMonth()]!;
  const day = d.getUTCDate();
  if (form === 'imf') return `${short}, ${pad2(day)} ${mon} ${pad4(d.getUTCFullYear())} ${hms(d)} GMT`;
  if (form === 'rfc850') return `${LONG_BY_UTC_DAY[wd]}, ${pad2(day)}-${mon}-${pad2(d.getUTCFullYear() % 100)} ${hms(d)} GMT`;
  return `${short} ${mon} ${day < 10 ? ` ${day}` : String(day)} ${hms(d)} ${pad4(d.getUTCFullYear())}`;
}

const formArb = fc.constantFrom('imf', 'rfc850', 'asctime') as fc.Arbitrary<'imf' | 'rfc850' | 'asctime'>;
const SECOND_OFFSETS = [-86400 * 400, -86400, -3600, -61, -2, -1, 0, 0, 0, 1, 2, 61, 86400, 86400 * 366];

const invalidDateArb = fc.oneof(
  fc.constantFrom(
    'Sun, 06 Nov 1994 08:49:37 gmt', 'Sun, 06 Nov 1994 08:49:37 UTC', 'sun, 06 Nov 1994 08:49:37 GMT', 'Sun, 06 nov 1994 08:49:37 GMT',
    'Sun, 6 Nov 1994 08:49:37 GMT', 'Sun,  06 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 94 08:49:37 GMT', 'Sun, 31 Apr 1994 08:49:37 GMT',
    'Sun, 30 Feb 2024 08:49:37 GMT', 'Thu, 29 Feb 2023 00:00:00 GMT', 'Sun, 00 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 24:00:00 GMT',
    'Sun, 06 Nov 1994 08:60:00 GMT', 'Sun, 06 Nov 1994 08:49:61 GMT', 'Sun, 06 Nov 1994 8:49:37 GMT', 'Sunday, 06-Nov-1994 08:49:37 GMT',
    'Sun, 06-Nov-94 08:49:37 GMT', 'Sunday, 06 Nov 94 08:49:37 GMT', 'Sun Nov 6 08:49:37 1994', 'Sun Nov  6 08:49:37 94',
    'Sun Nov 06 08:49:37 1994 GMT', 'Sun Nov  6 08:49:37  1994', '1994-11-06T08:49:37Z', '784111777', '', 'GMT', 'Sun, 06 Nov 1994',
    'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 08:49:37 GMT\n', 'Sun, 06 Nov 1994 08:49:37 +0000',
    'Sun, 06 Nov 1994 08:49:37 GMT ', '\tSun, 06 Nov 1994 08:49:37 GMT', 'Sun, 0\u0661 Nov 1994 08:49:37 GMT',
  ),
  fc.string({ unit: fc.constantFrom(...'SunMo, 0123456789:-GMTNovFeb '), maxLength: 32 }),
);

/** A date around Last-Modified (or the base), in any form, sometimes broken. */
const dateArb = (aroundMs: number): fc.Arbitrary<string> => fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...SECOND_OFFSETS), formArb, fc.boolean(), owsArb)
    .map(([off, form, wrongDay, ows]) => ows + formatDate(Math.floor(aroundMs / 1000) * 1000 + off * 1000, form, wrongDay && off % 2 === 0)) },
  { weight: 2, arbitrary: invalidDateArb },
  { weight: 1, arbitrary: fc.integer({ min: Date.UTC(1800, 0, 1), max: Date.UTC(2200, 0, 1) }).chain((ms) => formArb.map((f) => formatDate(ms, f, false))) },
  { weight: 1, arbitrary: fc.constantFrom('Fri, 31 Dec 1999 23:59:60 GMT', 'Thu, 29 Feb 2024 23:59:60 GMT', 'Mon, 01 Jan 0001 00:00:00 GMT') },
);

const repArb: fc.Arbitrary<Validators | null> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 5, arbitrary: fc.record({
    etag: goodTagArb,
    lastModified: fc.oneof(fc.constant(null), fc.constant(BASE_MS), fc.integer({ min: -3, max: 3 }).map((s) => BASE_MS + s * 1000),
      fc.integer({ min: 0, max: 999 }).map((f) => BASE_MS + f)),
    lastModifiedStrong: fc.boolean(),
  }) },
);

const nowArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 10_000 }).map((d) => BASE_MS + d) },
  // Clocks where two-digit years wrap: 2074 (24 → 2024, 25 → 2025 still), 2080 (24 → 2124), 1990.
  { weight: 1, arbitrary: fc.constantFrom(Date.UTC(2074, 0, 1), Date.UTC(2080, 5, 1), Date.UTC(1990, 0, 1), Date.UTC(2124, 0, 1)) },
);

const maybe = <T>(arb: fc.Arbitrary<T>, weight = 1): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight, arbitrary: arb });

const ifRangeArb = (rep: Validators | null): fc.Arbitrary<string> => fc.oneof(
  { weight: 3, arbitrary: rep === null ? goodTagArb : fc.constantFrom(rep.etag, rep.etag.replace(/^W\//, '')) },
  { weight: 2, arbitrary: goodTagArb },
  { weight: 3, arbitrary: dateArb(rep?.lastModified ?? BASE_MS) },
  { weight: 1, arbitrary: fc.oneof(badTagArb, fc.constantFrom('*', '', '"a", "b"')) },
);

const caseArb = fc.tuple(fc.constantFrom<ConditionalMethod>('GET', 'HEAD', 'PUT', 'DELETE'), repArb, nowArb).chain(([method, rep, nowMs]) => {
  const around = rep?.lastModified ?? BASE_MS;
  const headers: fc.Arbitrary<ConditionalHeaders> = fc.record({
    ifMatch: maybe(tagListArb, 1),
    ifNoneMatch: maybe(tagListArb, 1),
    ifModifiedSince: maybe(dateArb(around), 2),
    ifUnmodifiedSince: maybe(dateArb(around), 1),
    ifRange: maybe(ifRangeArb(rep), 2),
    range: maybe(fc.constantFrom('bytes=0-1', 'bytes=-5', 'items=1-2', 'garbage'), 3),
  });
  // Fewer fields at once, so the later steps are reached often.
  const thinned = fc.tuple(headers, fc.array(fc.boolean(), { minLength: 6, maxLength: 6 })).map(([h, keep]) => {
    const names = ['ifMatch', 'ifNoneMatch', 'ifModifiedSince', 'ifUnmodifiedSince', 'ifRange', 'range'] as const;
    const out: ConditionalHeaders = {};
    names.forEach((n, k) => {
      if (keep[k] || n === 'range') out[n] = h[n];
    });
    return out;
  });
  return thinned.map((h) => ({ method, rep, nowMs, h }));
});

// ---- the properties ----

test(`evaluateConditions agrees with the RFC 9110 §13.2.2 oracle (${RUNS} runs)`, () => {
  const describe = (c: { method: string; rep: Validators | null; nowMs: number; h: ConditionalHeaders }): string =>
    `${c.method} rep=${JSON.stringify(c.rep)} now=${new Date(c.nowMs).toISOString()} headers=${JSON.stringify(c.h)} (seed ${SEED})`;
  try {
    fc.assert(fc.property(caseArb, (c) => {
      assert.deepEqual(evaluateConditions(c.method, c.h, c.rep, c.nowMs), oracle(c.method, c.h, c.rep, c.nowMs), describe(c));
    }), { numRuns: RUNS, seed: SEED });
  } catch (e) {
    console.log(`http_conditions: failed with seed ${SEED} (replay: BRISE_SEED=${SEED})`);
    throw e;
  }
  // Count outcomes outside fc.assert (which also shrinks) over the same seed's inputs.
  const steps = new Map<string, number>();
  const outcomes = new Map<string, number>();
  for (const c of fc.sample(caseArb, { numRuns: RUNS, seed: SEED })) {
    const v = evaluateConditions(c.method, c.h, c.rep, c.nowMs);
    const key = v.kind === 'proceed' ? `proceed range=${v.useRange} guard=${v.guard}` : v.kind === 'failed' ? `412 ${v.header}` : '304';
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    oracle(c.method, c.h, c.rep, c.nowMs);
    steps.set(step, (steps.get(step) ?? 0) + 1);
  }
  console.log(`http_conditions: seed ${SEED}, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}, steps ${JSON.stringify(Object.fromEntries(steps))}`);
  // The generators must reach every outcome and every step, or the comparison proves little.
  for (const key of ['304', '412 If-Match', '412 If-Unmodified-Since', '412 If-None-Match', 'proceed range=true guard=none',
    'proceed range=false guard=none', 'proceed range=true guard=same', 'proceed range=false guard=absent']) {
    assert.ok((outcomes.get(key) ?? 0) > RUNS / 200, `'${key}' reached only ${outcomes.get(key) ?? 0} times (seed ${SEED})`);
  }
  for (const s of ['1: If-Match false', '2: If-Unmodified-Since false', '3: If-None-Match false', '4: If-Modified-Since false',
    '5: If-Range true', '5: If-Range false', '6: Range', '6: whole']) {
    assert.ok((steps.get(s) ?? 0) > RUNS / 200, `step '${s}' reached only ${steps.get(s) ?? 0} times (seed ${SEED})`);
  }
});

test(`parseHttpDate agrees with the oracle on dates of every form, valid or not (${RUNS} runs)`, () => {
  const forms = { imf: 0, rfc850: 0, asctime: 0, invalid: 0 };
  const arb = fc.tuple(dateArb(BASE_MS), nowArb);
  try {
    fc.assert(fc.property(arb, ([value, nowMs]) => {
      const want = oracleDate(value, nowMs);
      assert.equal(parseHttpDate(value, nowMs), want === null ? null : want * 1000, `${JSON.stringify(value)} now ${nowMs} (seed ${SEED})`);
    }), { numRuns: RUNS, seed: SEED });
  } catch (e) {
    console.log(`http_conditions: failed with seed ${SEED} (replay: BRISE_SEED=${SEED})`);
    throw e;
  }
  for (const [value, nowMs] of fc.sample(arb, { numRuns: RUNS, seed: SEED })) {
    oracleDate(value, nowMs);
    forms[dateForm]++;
  }
  console.log(`http_conditions: seed ${SEED}, date forms ${JSON.stringify(forms)}`);
  for (const [form, count] of Object.entries(forms)) assert.ok(count > RUNS / 20, `${form} dates reached only ${count} times (seed ${SEED})`);
});

test('every instant written in each form reads back as itself (whole seconds, years 1900-2199)', () => {
  const arb = fc.tuple(fc.integer({ min: Date.UTC(1900, 0, 1) / 1000, max: Date.UTC(2199, 11, 31) / 1000 }), formArb);
  fc.assert(fc.property(arb, ([seconds, form]) => {
    const ms = seconds * 1000;
    // A two-digit year reads back as itself when it is within the 100 years ending 50 after now.
    const nowMs = form === 'rfc850' ? ms + 10 * 365 * 86400_000 : BASE_MS;
    assert.equal(parseHttpDate(formatDate(ms, form, false), nowMs), ms, `${formatDate(ms, form, false)} (seed ${SEED})`);
  }), { numRuns: Math.ceil(RUNS / 4), seed: SEED });
});

test('the oracle itself on a few hand-checked cases', () => {
  assert.equal(oracleDate('Sun, 06 Nov 1994 08:49:37 GMT', BASE_MS), 784111777);
  assert.equal(oracleDate('Sunday, 06-Nov-94 08:49:37 GMT', BASE_MS), 784111777);
  assert.equal(oracleDate('Sun Nov  6 08:49:37 1994', BASE_MS), 784111777);
  assert.equal(oracleDate('Thu, 01 Jan 1970 00:00:00 GMT', BASE_MS), 0);
  assert.equal(oracleDate('Wed, 31 Dec 1969 23:59:59 GMT', BASE_MS), -1);
  assert.equal(oracleDate('Thu, 29 Feb 2024 23:59:60 GMT', BASE_MS), Date.UTC(2024, 2, 1) / 1000);
  assert.equal(oracleDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2080, 0, 1)), Date.UTC(2094, 10, 6, 8, 49, 37) / 1000);
  assert.equal(oracleDate('Sun, 29 Feb 2023 08:49:37 GMT', BASE_MS), null);
  assert.deepEqual(oracleTagList('"a", W/"b,c" ,,'), [{ weak: false, opaque: 'a' }, { weak: true, opaque: 'b,c' }]);
  assert.equal(oracleTagList('"a" "b"'), null);
  const rep: Validators = { etag: '"x"', lastModified: BASE_MS, lastModifiedStrong: false };
  assert.deepEqual(oracle('GET', { ifMatch: '"y"', ifNoneMatch: '"x"' }, rep, BASE_MS), { kind: 'failed', header: 'If-Match' });
  assert.deepEqual(oracle('GET', { ifNoneMatch: 'W/"x"' }, rep, BASE_MS), { kind: 'not-modified' });
  assert.deepEqual(oracle('GET', { range: 'bytes=0-1', ifRange: 'W/"x"' }, rep, BASE_MS), { kind: 'proceed', useRange: false, guard: 'none' });
});
