// Unit tests of src/protocol/http_conditions.ts with the examples of RFC 9110 itself: the three
// HTTP-date forms of §5.6.7, the comparison table of §8.8.3.2, the field examples of §13.1.1 to
// §13.1.5, and the precedence of §13.2.2 (which field wins when several are sent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  evaluateConditions, hasWritePreconditions, parseHttpDate, readConditionalHeaders,
  type ConditionalHeaders, type ConditionalMethod, type ConditionVerdict, type Validators,
} from '../src/protocol/http_conditions.js';

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
/** §8.8.2's example: Last-Modified: Tue, 15 Nov 1994 12:45:26 GMT. */
const LM = Date.UTC(1994, 10, 15, 12, 45, 26);
const xyzzy: Validators = { etag: '"xyzzy"', lastModified: LM, lastModifiedStrong: false };

const judge = (method: ConditionalMethod, h: ConditionalHeaders, rep: Validators | null = xyzzy): ConditionVerdict =>
  evaluateConditions(method, h, rep, NOW);
const proceed = (useRange = false, guard: 'none' | 'absent' | 'same' = 'same'): ConditionVerdict => ({ kind: 'proceed', useRange, guard });
const NOT_MODIFIED: ConditionVerdict = { kind: 'not-modified' };
const failed = (header: 'If-Match' | 'If-Unmodified-Since' | 'If-None-Match'): ConditionVerdict => ({ kind: 'failed', header });

test('§5.6.7: the three forms of the same instant; the rest is not a date', () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37);
  assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', NOW), t, 'IMF-fixdate');
  assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW), t, 'obsolete RFC 850 format');
  assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994', NOW), t, "ANSI C's asctime() format");
  assert.equal(parseHttpDate(' Sun, 06 Nov 1994 08:49:37 GMT\t', NOW), t, 'OWS around the field value');
  for (const bad of [
    'Sun, 06 Nov 1994 08:49:37 gmt', // case-sensitive
    'sun, 06 Nov 1994 08:49:37 GMT',
    'Sun, 06 NOV 1994 08:49:37 GMT',
    'Sun, 6 Nov 1994 08:49:37 GMT', // day = 2DIGIT
    'Sun, 06 Nov 1994 08:49:37 +0000',
    'Sun, 31 Nov 1994 08:49:37 GMT', // no such day
    'Tue, 29 Feb 2022 00:00:00 GMT',
    'Sun, 06 Nov 1994 24:00:00 GMT',
    'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', // a list of dates
    '1994-11-06T08:49:37Z',
    '784111777',
    '',
  ]) {
    assert.equal(parseHttpDate(bad, NOW), null, JSON.stringify(bad));
  }
});

test('§5.6.7: an RFC 850 year more than 50 years ahead is in the past; a leap second is the next second', () => {
  assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2050, 0, 1)), Date.UTC(2094, 10, 6, 8, 49, 37));
  assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2043, 0, 1)), Date.UTC(1994, 10, 6, 8, 49, 37));
  assert.equal(parseHttpDate('Monday, 01-Jan-25 00:00:00 GMT', NOW), Date.UTC(2025, 0, 1));
  assert.equal(parseHttpDate('Wed, 31 Dec 2008 23:59:60 GMT', NOW), Date.UTC(2009, 0, 1));
  assert.equal(parseHttpDate('Thu, 29 Feb 2024 12:00:00 GMT', NOW), Date.UTC(2024, 1, 29, 12));
});

test('§8.8.3.2: strong comparison for If-Match and If-Range, weak for If-None-Match (the table)', () => {
  const table: [string, string, boolean, boolean][] = [
    ['W/"1"', 'W/"1"', false, true],
    ['W/"1"', 'W/"2"', false, false],
    ['W/"1"', '"1"', false, true],
    ['"1"', '"1"', true, true],
  ];
  for (const [sent, current, strong, weak] of table) {
    const rep: Validators = { etag: current, lastModified: null, lastModifiedStrong: false };
    assert.deepEqual(judge('GET', { ifMatch: sent }, rep), strong ? proceed() : failed('If-Match'), `If-Match ${sent} vs ${current}`);
    assert.deepEqual(judge('GET', { ifNoneMatch: sent }, rep), weak ? NOT_MODIFIED : proceed(), `If-None-Match ${sent} vs ${current}`);
    assert.deepEqual(judge('GET', { range: 'bytes=0-1', ifRange: sent }, rep), proceed(strong, 'none'), `If-Range ${sent} vs ${current}`);
  }
});

test('§13.1.1 If-Match: the examples; * holds for any current representation, never for none', () => {
  assert.deepEqual(judge('PUT', { ifMatch: '"xyzzy"' }), proceed());
  assert.deepEqual(judge('PUT', { ifMatch: '"xyzzy", "r2d2xxxx", "c3piozzzz"' }), proceed());
  assert.deepEqual(judge('PUT', { ifMatch: '"r2d2xxxx", "c3piozzzz"' }), failed('If-Match'));
  assert.deepEqual(judge('PUT', { ifMatch: '*' }), proceed());
  assert.deepEqual(judge('PUT', { ifMatch: '*' }, null), failed('If-Match'));
  assert.deepEqual(judge('DELETE', { ifMatch: '"xyzzy"' }, null), failed('If-Match'));
  assert.deepEqual(judge('PUT', { ifMatch: 'xyzzy' }), failed('If-Match'), 'malformed: fails safe');
});

test('§13.1.2 If-None-Match: the examples; 304 for GET/HEAD, 412 for the others', () => {
  for (const v of ['"xyzzy"', 'W/"xyzzy"', '"xyzzy", "r2d2xxxx", "c3piozzzz"', 'W/"xyzzy", W/"r2d2xxxx", W/"c3piozzzz"', '*']) {
    assert.deepEqual(judge('GET', { ifNoneMatch: v }), NOT_MODIFIED, v);
    assert.deepEqual(judge('HEAD', { ifNoneMatch: v }), NOT_MODIFIED, v);
    assert.deepEqual(judge('PUT', { ifNoneMatch: v }), failed('If-None-Match'), v);
    assert.deepEqual(judge('DELETE', { ifNoneMatch: v }), failed('If-None-Match'), v);
  }
  assert.deepEqual(judge('GET', { ifNoneMatch: '"r2d2xxxx"' }), proceed());
  assert.deepEqual(judge('PUT', { ifNoneMatch: '*' }, null), proceed(false, 'absent'), 'create only: holds when nothing is there');
});

test('§13.1.3 If-Modified-Since: 304 when not modified since; ignored for writes, bad dates, no Last-Modified', () => {
  const example = 'Sat, 29 Oct 1994 19:43:31 GMT'; // before LM: modified since
  assert.deepEqual(judge('GET', { ifModifiedSince: example }), proceed(false, 'none'));
  assert.deepEqual(judge('GET', { ifModifiedSince: 'Tue, 15 Nov 1994 12:45:26 GMT' }), NOT_MODIFIED, 'equal to Last-Modified');
  assert.deepEqual(judge('HEAD', { ifModifiedSince: 'Tue, 15 Nov 1994 12:45:27 GMT' }), NOT_MODIFIED, 'after it');
  assert.deepEqual(judge('GET', { ifModifiedSince: 'Tue, 15 Nov 1994 12:45:25 GMT' }), proceed(false, 'none'), 'a second before it');
  assert.deepEqual(judge('GET', { ifModifiedSince: 'Tuesday, 15-Nov-94 12:45:26 GMT' }), NOT_MODIFIED, 'RFC 850 form');
  assert.deepEqual(judge('GET', { ifModifiedSince: 'Tue Nov 15 12:45:26 1994' }), NOT_MODIFIED, 'asctime form');
  assert.deepEqual(judge('PUT', { ifModifiedSince: 'Tue, 15 Nov 1994 12:45:26 GMT' }), proceed(false, 'none'), 'only GET and HEAD');
  assert.deepEqual(judge('GET', { ifModifiedSince: 'yesterday' }), proceed(false, 'none'), 'not a date: ignored');
  const noDate: Validators = { etag: '"xyzzy"', lastModified: null, lastModifiedStrong: false };
  assert.deepEqual(judge('GET', { ifModifiedSince: 'Tue, 15 Nov 1994 12:45:26 GMT' }, noDate), proceed(false, 'none'));
  // Last-Modified carries whole seconds: a time stored with a fraction compares as its second.
  const fraction: Validators = { etag: '"xyzzy"', lastModified: LM + 999, lastModifiedStrong: false };
  assert.deepEqual(judge('GET', { ifModifiedSince: 'Tue, 15 Nov 1994 12:45:26 GMT' }, fraction), NOT_MODIFIED);
});

test('§13.1.4 If-Unmodified-Since: 412 when modified since; ignored for bad dates and no representation', () => {
  assert.deepEqual(judge('PUT', { ifUnmodifiedSince: 'Sat, 29 Oct 1994 19:43:31 GMT' }), failed('If-Unmodified-Since'));
  assert.deepEqual(judge('DELETE', { ifUnmodifiedSince: 'Tue, 15 Nov 1994 12:45:26 GMT' }), proceed(), 'equal: unmodified');
  assert.deepEqual(judge('GET', { ifUnmodifiedSince: 'Tue, 15 Nov 1994 12:45:25 GMT' }), failed('If-Unmodified-Since'), 'GET too');
  assert.deepEqual(judge('DELETE', { ifUnmodifiedSince: 'Sat, 29 Oct 1994 19:43:31 GMT, Sun, 30 Oct 1994 19:43:31 GMT' }), proceed(false, 'none'));
  assert.deepEqual(judge('PUT', { ifUnmodifiedSince: 'Sat, 29 Oct 1994 19:43:31 GMT' }, null), proceed(false, 'none'));
});

test('§13.1.5 If-Range: the current strong ETag keeps the Range; stale, weak, dates and junk drop it', () => {
  const range = 'bytes=0-1';
  assert.deepEqual(judge('GET', { range, ifRange: '"xyzzy"' }), proceed(true, 'none'));
  assert.deepEqual(judge('HEAD', { range, ifRange: '"xyzzy"' }), proceed(true, 'none'), 'HEAD as GET');
  assert.deepEqual(judge('GET', { range, ifRange: '"r2d2xxxx"' }), proceed(false, 'none'), 'stale');
  assert.deepEqual(judge('GET', { range, ifRange: 'W/"xyzzy"' }), proceed(false, 'none'), 'weak: never');
  assert.deepEqual(judge('GET', { range, ifRange: 'Tue, 15 Nov 1994 12:45:26 GMT' }), proceed(false, 'none'), 'a date not known strong');
  const strongDate: Validators = { ...xyzzy, lastModifiedStrong: true };
  assert.deepEqual(judge('GET', { range, ifRange: 'Tue, 15 Nov 1994 12:45:26 GMT' }, strongDate), proceed(true, 'none'), 'exact and strong');
  assert.deepEqual(judge('GET', { range, ifRange: 'Tue, 15 Nov 1994 12:45:27 GMT' }, strongDate), proceed(false, 'none'), 'not exact');
  assert.deepEqual(judge('GET', { range, ifRange: '*' }), proceed(false, 'none'));
  assert.deepEqual(judge('GET', { range, ifRange: '"xyzzy", "a"' }), proceed(false, 'none'), 'one validator, not a list');
  assert.deepEqual(judge('GET', { ifRange: '"xyzzy"' }), proceed(false, 'none'), 'no Range: nothing to apply');
  assert.deepEqual(judge('PUT', { range, ifRange: '"xyzzy"' }), proceed(false, 'none'), 'Range is for GET');
});

test('§13.2.2 precedence: the first failing step answers', () => {
  // If-Match fails although If-None-Match alone would give 304: 412.
  assert.deepEqual(judge('GET', { ifMatch: '"r2d2xxxx"', ifNoneMatch: '"xyzzy"' }), failed('If-Match'));
  // If-Match holds, If-None-Match matches: 304 for GET, 412 for PUT.
  assert.deepEqual(judge('GET', { ifMatch: '"xyzzy"', ifNoneMatch: '"xyzzy"' }), NOT_MODIFIED);
  assert.deepEqual(judge('PUT', { ifMatch: '"xyzzy"', ifNoneMatch: '"xyzzy"' }), failed('If-None-Match'));
  // If-Match present: If-Unmodified-Since is ignored, even when it would fail.
  assert.deepEqual(judge('PUT', { ifMatch: '"xyzzy"', ifUnmodifiedSince: 'Sat, 29 Oct 1994 19:43:31 GMT' }), proceed());
  // If-None-Match present: If-Modified-Since is ignored, even when it would give 304.
  assert.deepEqual(judge('GET', { ifNoneMatch: '"r2d2xxxx"', ifModifiedSince: 'Tue, 15 Nov 1994 12:45:26 GMT' }), proceed());
  // If-Unmodified-Since fails before If-None-Match is asked.
  assert.deepEqual(judge('GET', { ifUnmodifiedSince: 'Sat, 29 Oct 1994 19:43:31 GMT', ifNoneMatch: '*' }), failed('If-Unmodified-Since'));
  // 304 before If-Range: a validated cache entry needs no part.
  assert.deepEqual(judge('GET', { ifModifiedSince: 'Tue, 15 Nov 1994 12:45:26 GMT', range: 'bytes=0-1', ifRange: '"xyzzy"' }), NOT_MODIFIED);
  // All passing: the Range applies, and a write would be guarded on this very representation.
  assert.deepEqual(judge('GET', { ifMatch: '*', ifNoneMatch: '"r2d2xxxx"', range: 'bytes=0-1', ifRange: '"xyzzy"' }), proceed(true, 'same'));
});

test('readConditionalHeaders and hasWritePreconditions', () => {
  const fields: Record<string, string> = { 'if-match': '"a"', 'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT', range: 'bytes=0-1' };
  const h = readConditionalHeaders((name) => fields[name] ?? '');
  assert.deepEqual(h, {
    ifMatch: '"a"', ifNoneMatch: undefined, ifModifiedSince: 'Sun, 06 Nov 1994 08:49:37 GMT', ifUnmodifiedSince: undefined,
    ifRange: undefined, range: 'bytes=0-1',
  });
  assert.equal(hasWritePreconditions(h), true);
  assert.equal(hasWritePreconditions({ ifModifiedSince: 'x', ifRange: '"a"', range: 'bytes=0-1' }), false, 'these never refuse a write');
  assert.equal(hasWritePreconditions({ ifUnmodifiedSince: 'x' }), true);
  assert.equal(hasWritePreconditions({ ifNoneMatch: '*' }), true);
});
