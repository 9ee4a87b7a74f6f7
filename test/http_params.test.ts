// Unit tests of src/protocol/http_params.ts: ?ttl=, X-Brise-TTL, ?count=, the query string,
// Authorization: Bearer and its constant-time comparison, Last-Modified dates, Content-Length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatTtlSeconds, httpDate, MAX_TTL_MS, parseBearer, parseContentLength, parseCount, parseQuery, parseTtl, tokenMatches,
} from '../src/protocol/http_params.js';

test('parseTtl: accepted', () => {
  const table: [string, number][] = [
    ['30s', 30_000], ['1h', 3_600_000], ['2d', 172_800_000], ['15m', 900_000], ['500ms', 500], ['90', 90_000],
    ['1ms', 1], ['1', 1000], ['007s', 7000], ['36500d', MAX_TTL_MS], [String(MAX_TTL_MS) + 'ms', MAX_TTL_MS],
    [String(MAX_TTL_MS / 1000), MAX_TTL_MS],
  ];
  for (const [text, ms] of table) assert.deepEqual(parseTtl(text), { ok: true, ms }, text);
});

test('parseTtl: refused, with a message that says why', () => {
  const table: [string, RegExp][] = [
    ['0', /positive/], ['0s', /positive/], ['000ms', /positive/],
    ['-1s', /expected a positive whole number/], ['+1s', /expected/], ['1.5h', /expected/], ['1x', /expected/],
    ['', /expected/], ['s', /expected/], ['1 s', /expected/], [' 1s', /expected/], ['1s ', /expected/],
    ['1H', /expected/], ['1S', /expected/], ['1w', /expected/], ['1y', /expected/], ['1e3', /expected/],
    ['1hh', /expected/], ['1h30m', /expected/], ['0x10', /expected/], ['١', /expected/],
    ['36501d', /at most 100 years/], [`${MAX_TTL_MS + 1}ms`, /at most 100 years/],
    ['9'.repeat(400), /at most 100 years/], ['9'.repeat(16) + 'ms', /at most 100 years/],
  ];
  for (const [text, message] of table) {
    const r = parseTtl(text);
    assert.equal(r.ok, false, `${JSON.stringify(text)} accepted`);
    if (!r.ok) {
      assert.match(r.message, message, text);
      assert.ok(r.message.includes(JSON.stringify(text)), 'the message quotes the input');
    }
  }
});

test('formatTtlSeconds: remaining seconds rounded up, -1 without expiry, 0 when due', () => {
  const now = 1_700_000_000_000;
  const table: [number, number][] = [
    [0, -1], [now + 1, 1], [now + 999, 1], [now + 1000, 1], [now + 1001, 2], [now + 30_000, 30],
    [now, 0], [now - 5000, 0], [now + MAX_TTL_MS, MAX_TTL_MS / 1000],
  ];
  for (const [expiresAt, want] of table) assert.equal(formatTtlSeconds(expiresAt, now), want, `expiresAt ${expiresAt - now}`);
});

test('parseQuery: undefined, empty, form decoding', () => {
  assert.equal(parseQuery(undefined).toString(), '');
  assert.equal(parseQuery('').get('x'), null);
  const q = parseQuery('ttl=30s&pattern=a%2Fb*&match=a+b&cursor=&count=10&count=20');
  assert.equal(q.get('ttl'), '30s');
  assert.equal(q.get('pattern'), 'a/b*');
  assert.equal(q.get('match'), 'a b', "'+' is a space in a query");
  assert.equal(q.get('cursor'), '');
  assert.equal(q.get('count'), '10', 'the first of repeated parameters');
  assert.equal(parseQuery('x=%ZZ').get('x'), '%ZZ', 'malformed escapes are kept, not thrown');
});

test('parseCount: default, bounds, clamping, refusals', () => {
  assert.deepEqual(parseCount(null, 10, 1000), { ok: true, n: 10 });
  assert.deepEqual(parseCount(null, 5000, 1000), { ok: true, n: 1000 }, 'a default over max is bounded too');
  assert.deepEqual(parseCount('1', 10, 1000), { ok: true, n: 1 });
  assert.deepEqual(parseCount('1000', 10, 1000), { ok: true, n: 1000 });
  assert.deepEqual(parseCount('1001', 10, 1000), { ok: true, n: 1000 }, 'clamped to max');
  assert.deepEqual(parseCount('9'.repeat(100), 10, 1000), { ok: true, n: 1000 }, 'huge clamps');
  assert.deepEqual(parseCount('0010', 10, 1000), { ok: true, n: 10 });
  for (const bad of ['', '0', '000', '-1', '+1', '1.5', 'ten', ' 1', '1 ', '1e3', '0x10']) {
    const r = parseCount(bad, 10, 1000);
    assert.equal(r.ok, false, `${JSON.stringify(bad)} accepted`);
    if (!r.ok) assert.match(r.message, /count/);
  }
});

test('parseBearer', () => {
  const table: [string | undefined, string | null][] = [
    [undefined, null], ['', null], ['Bearer abc', 'abc'], ['bearer abc', 'abc'], ['BEARER abc', 'abc'],
    ['BeArEr a.b-c_d~e+f/g==', 'a.b-c_d~e+f/g=='], ['Bearer  abc', 'abc'], ['Bearer abc ', 'abc'],
    ['Bearer', null], ['Bearer ', null], ['Bearerabc', null], ['Basic YWxhZGRpbjpvcGVuc2VzYW1l', null],
    ['Bearer a b', null], ['Bearer a\tb', null], ['Bearer ab\u0000', null], ['Token abc', null], ['Bearer\tabc', null],
  ];
  for (const [header, want] of table) assert.equal(parseBearer(header), want, JSON.stringify(header));
});

test('tokenMatches: equal only when identical; null and empty never match', () => {
  assert.equal(tokenMatches('s3cret', 's3cret'), true);
  assert.equal(tokenMatches('s3cret', 's3creT'), false);
  assert.equal(tokenMatches('s3cre', 's3cret'), false, 'a prefix');
  assert.equal(tokenMatches('s3crett', 's3cret'), false, 'longer');
  assert.equal(tokenMatches('', 's3cret'), false);
  assert.equal(tokenMatches(null, 's3cret'), false);
  assert.equal(tokenMatches('', ''), false, 'an empty expected token matches nothing');
  assert.equal(tokenMatches('é', 'é'), true);
  assert.equal(tokenMatches('x'.repeat(10_000), 'x'.repeat(10_000)), true);
});

test('tokenMatches: takes the same time for a near miss and a far miss (no early exit)', () => {
  const expected = 'k'.repeat(64);
  const near = 'k'.repeat(63) + 'j';
  const far = 'j' + 'k'.repeat(63);
  const time = (given: string): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 20_000; i++) tokenMatches(given, expected);
    return Number(process.hrtime.bigint() - t0);
  };
  time(near); time(far); // warm up
  const samples = Array.from({ length: 5 }, () => time(near) / time(far)).sort((a, b) => a - b);
  const median = samples[2]!;
  assert.ok(median > 0.5 && median < 2, `near/far time ratio ${median.toFixed(2)}`);
});

test('httpDate: IMF-fixdate', () => {
  assert.equal(httpDate(784111777000), 'Sun, 06 Nov 1994 08:49:37 GMT');
  assert.equal(httpDate(0), 'Thu, 01 Jan 1970 00:00:00 GMT');
  assert.equal(httpDate(1_700_000_000_999), 'Tue, 14 Nov 2023 22:13:20 GMT', 'milliseconds dropped');
  assert.match(httpDate(Date.now()), /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.throws(() => httpDate(NaN), /httpDate/);
});

test('parseContentLength', () => {
  const ok: [string | undefined, number | null][] = [
    [undefined, null], ['0', 0], ['1', 1], ['1048576', 1048576], ['007', 7], ['9007199254740991', 2 ** 53 - 1],
    ['1073741825', 2 ** 30 + 1],
  ];
  for (const [h, length] of ok) assert.deepEqual(parseContentLength(h), { ok: true, length }, JSON.stringify(h));
  for (const bad of ['', '12a', '-1', '+1', ' 1', '1 ', '1.0', '5, 5', '5,5', '0x10', 'abc', '１']) {
    const r = parseContentLength(bad);
    assert.equal(r.ok, false, `${JSON.stringify(bad)} accepted`);
    if (!r.ok) {
      assert.match(r.message, /invalid Content-Length/);
      assert.equal(r.tooLarge, undefined);
    }
  }
  for (const huge of ['9007199254740992', '9007199254740993', '99999999999999999999', '1' + '0'.repeat(1000)]) {
    const r = parseContentLength(huge);
    assert.deepEqual(r, { ok: false, message: 'Content-Length too large', tooLarge: true }, huge.slice(0, 30));
  }
});
