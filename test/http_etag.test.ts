// Unit tests of src/protocol/http_etag.ts: ETags from needle addresses and back, and
// If-Match / If-None-Match per RFC 9110 §13 (lists, '*', weak tags, strong vs weak
// comparison, malformed headers failing safe).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  etagOf, ifMatchPasses, ifNoneMatchHits, parseEtagAddress, parsePreconditions, MAX_CONDITION_TAGS,
} from '../src/protocol/http_etag.js';

test('etagOf: strong, quoted, distinct per address; parseEtagAddress inverts it', () => {
  assert.equal(etagOf(1, 64), '"v1-40"');
  assert.equal(etagOf(0, 0), '"v0-0"');
  const addresses: [number, number][] = [
    [0, 0], [1, 64], [2 ** 20 + 7, 123456789], [2 ** 32, 2 ** 53 - 1], [2 ** 53 - 1, 0], [15, 16], [1, 564], [15, 64],
  ];
  const seen = new Set<string>();
  for (const [volume, offset] of addresses) {
    const tag = etagOf(volume, offset);
    assert.match(tag, /^"[\x21\x23-\x7e]+"$/, 'a valid strong entity-tag');
    assert.ok(!seen.has(tag), `${tag} collides`);
    seen.add(tag);
    assert.deepEqual(parseEtagAddress(tag), { volume, offset });
  }
  for (const [v, o] of [[-1, 0], [0, -1], [1.5, 0], [0, NaN], [2 ** 53, 0]] as const) {
    assert.throws(() => etagOf(v, o), /etagOf/);
  }
});

test('parseEtagAddress: anything but the canonical form is null', () => {
  for (const s of [
    '', 'v1-40', '"v1-40', 'v1-40"', 'W/"v1-40"', '"V1-40"', '"v1-4G"', '"v-40"', '"v1-"', '"v01-40"', '"v1-040"',
    '"v1-40-1"', '"x1-40"', '"v1_40"', ' "v1-40"', '"v1-40" ', '"vFF-40"', `"v${'f'.repeat(15)}-0"`, `"v0-${'f'.repeat(15)}"`,
    '"v20000000000000-0"', '*',
  ]) {
    assert.equal(parseEtagAddress(s), null, JSON.stringify(s));
  }
  assert.deepEqual(parseEtagAddress('"v1fffffffffffff-0"'), { volume: 2 ** 53 - 1, offset: 0 });
});

test('parsePreconditions: absent, *, lists, weak tags, commas inside tags, empty elements', () => {
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
  for (const [header, want] of table) {
    assert.deepEqual(parsePreconditions(header, undefined).ifMatch, want, `If-Match ${JSON.stringify(header)}`);
    assert.deepEqual(parsePreconditions(undefined, header).ifNoneMatch, want, `If-None-Match ${JSON.stringify(header)}`);
  }
  const many = Array.from({ length: MAX_CONDITION_TAGS }, (_, i) => `"${i}"`).join(',');
  assert.equal(parsePreconditions(many, undefined).ifMatch!.tags.length, MAX_CONDITION_TAGS);
});

const cond = (h: string | undefined): ReturnType<typeof parsePreconditions> => parsePreconditions(h, h);

test('ifMatchPasses: strong comparison; * needs the blob; no header passes', () => {
  const E = etagOf(3, 100);
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
  for (const [header, etag, want, why] of table) assert.equal(ifMatchPasses(cond(header).ifMatch, etag), want, why);
});

test('ifNoneMatchHits: weak comparison; * hits an existing blob; no header never hits', () => {
  const E = etagOf(3, 100);
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
  for (const [header, etag, want, why] of table) assert.equal(ifNoneMatchHits(cond(header).ifNoneMatch, etag), want, why);
});

test('an ETag written by etagOf round-trips through If-Match to the address for compare-and-set', () => {
  const E = etagOf(2 ** 20 + 1, 4096);
  const p = parsePreconditions(E, undefined);
  assert.ok(p.ifMatch && !p.ifMatch.any && p.ifMatch.tags.length === 1);
  assert.deepEqual(parseEtagAddress(p.ifMatch.tags[0]!), { volume: 2 ** 20 + 1, offset: 4096 });
});
