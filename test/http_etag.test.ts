// Unit tests of src/protocol/http_etag.ts and of how http_conditions.ts judges If-Match and
// If-None-Match with it, per RFC 9110 §13 (lists, '*', weak tags, strong vs weak comparison,
// malformed headers failing safe).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CONDITION_TAGS, parseTagCondition } from '../src/protocol/http_etag.js';
import { evaluateConditions } from '../src/protocol/http_conditions.js';

/** The current representation with this ETag (null: no blob). */
const current = (etag: string | null) => (etag === null ? null : { etag, lastModified: null, lastModifiedStrong: false });
/** If-Match holds: the request is not refused for it. */
const ifMatchPasses = (header: string | undefined, etag: string | null): boolean =>
  evaluateConditions('GET', { ifMatch: header }, current(etag), 0).kind !== 'failed';
/** If-None-Match hits: a GET of that representation is 304. */
const ifNoneMatchHits = (header: string | undefined, etag: string | null): boolean =>
  evaluateConditions('GET', { ifNoneMatch: header }, current(etag), 0).kind === 'not-modified';

test('parseTagCondition: absent, *, lists, weak tags, commas inside tags, empty elements', () => {
  const table: [string | undefined, { any: boolean; tags: string[] } | null][] = [
    [undefined, null],
    ['*', { any: true, tags: [] }],
    [' * ', { any: true, tags: [] }],
    ['"a"', { any: false, tags: ['"a"'] }],
    ['"a", "b"', { any: false, tags: ['"a"', '"b"'] }],
    ['"a",W/"b" ,\t"c"', { any: false, tags: ['"a"', 'W/"b"', '"c"'] }],
    ['W/"a"', { any: false, tags: ['W/"a"'] }],
    ['"a,b"', { any: false, tags: ['"a,b"'] }],
    ['"a,b", "c"', { any: false, tags: ['"a,b"', '"c"'] }],
    ['""', { any: false, tags: ['""'] }],
    [', "a",, "b",', { any: false, tags: ['"a"', '"b"'] }],
    ['"caf\u00e9"', { any: false, tags: ['"caf\u00e9"'] }],
    ['"\u20ac"', { any: false, tags: ['"\u20ac"'] }],
    // malformed → an empty list
    ['', { any: false, tags: [] }],
    ['a', { any: false, tags: [] }],
    ['"a', { any: false, tags: [] }],
    ['"a" "b"', { any: false, tags: [] }],
    ['"a", b', { any: false, tags: [] }],
    ['w/"a"', { any: false, tags: [] }],
    ['W/ "a"', { any: false, tags: [] }],
    ['*, "a"', { any: false, tags: [] }],
    ['"a b"', { any: false, tags: [] }],
    ['"a\u0001"', { any: false, tags: [] }],
    [Array.from({ length: MAX_CONDITION_TAGS + 1 }, (_, i) => `"${i}"`).join(','), { any: false, tags: [] }],
  ];
  for (const [header, want] of table) assert.deepEqual(parseTagCondition(header), want, JSON.stringify(header));
  const many = Array.from({ length: MAX_CONDITION_TAGS }, (_, i) => `"${i}"`).join(',');
  assert.equal(parseTagCondition(many)!.tags.length, MAX_CONDITION_TAGS);
});

test('ifMatchPasses: strong comparison; * needs the blob; no header passes', () => {
  const E = '"v3-64"';
  const table: [string | undefined, string | null, boolean, string][] = [
    [undefined, E, true, 'no header'],
    [undefined, null, true, 'no header, no blob'],
    ['*', E, true, '* and the blob exists'],
    ['*', null, false, '* and no blob'],
    [E, E, true, 'same tag'],
    [`"x", ${E}`, E, true, 'in a list'],
    ['"x"', E, false, 'another tag'],
    [E, null, false, 'a tag and no blob'],
    [`W/${E}`, E, false, 'a weak tag never matches strongly'],
    [E, `W/${E}`, false, 'a weak current ETag never matches strongly'],
    ['garbage', E, false, 'malformed fails safe (412)'],
    ['', E, false, 'empty fails safe'],
  ];
  for (const [header, etag, want, why] of table) assert.equal(ifMatchPasses(header, etag), want, why);
});

test('ifNoneMatchHits: weak comparison; * hits an existing blob; no header never hits', () => {
  const E = '"v3-64"';
  const table: [string | undefined, string | null, boolean, string][] = [
    [undefined, E, false, 'no header'],
    ['*', E, true, '* and the blob exists (PUT create-only → 412)'],
    ['*', null, false, '* and no blob (PUT creates)'],
    [E, E, true, 'same tag (GET → 304)'],
    [`W/${E}`, E, true, 'weak comparison ignores W/'],
    [E, `W/${E}`, true, 'weak comparison ignores W/ on the current one too'],
    [`"x", W/"y", ${E}`, E, true, 'in a list'],
    ['"x"', E, false, 'another tag'],
    [E, null, false, 'no blob'],
    ['garbage', E, false, 'malformed never hits'],
    ['"v3-64 "', E, false, 'not a prefix match'],
  ];
  for (const [header, etag, want, why] of table) assert.equal(ifNoneMatchHits(header, etag), want, why);
});
