// Redis glob semantics (stringmatchlen) on bytes, cases in the style of Redis's
// tests/unit/keyspace.tcl, and a pathological pattern that must stay polynomial.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globMatch, isMatchAll } from '../src/storage/glob.js';

const b = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const m = (pattern: string, key: string): boolean => globMatch(b(pattern), b(key));

const cases: [pattern: string, key: string, expected: boolean][] = [
  ['*', 'anything', true],
  ['*', 'x', true],
  ['foo*', 'foo', true],
  ['foo*', 'foobar', true],
  ['foo*', 'fo', false],
  ['*bar', 'foobar', true],
  ['*bar', 'foobaz', false],
  ['a?c', 'abc', true],
  ['a?c', 'ac', false],
  ['a?c', 'abbc', false],
  ['[a-c]*', 'apple', true],
  ['[a-c]*', 'cherry', true],
  ['[a-c]*', 'date', false],
  ['[c-a]x', 'bx', true], // reversed range
  ['[abc]', 'b', true],
  ['[abc]', 'd', false],
  ['[^x]', 'y', true],
  ['[^x]', 'x', false],
  ['[^a-c]z', 'dz', true],
  ['[^a-c]z', 'bz', false],
  ['\\*', '*', true],
  ['\\*', 'a', false],
  ['a\\?c', 'a?c', true],
  ['a\\?c', 'abc', false],
  ['[\\]]', ']', true],
  ['[a\\-z]', '-', true],
  ['[a\\-z]', 'b', false],
  ['x\\', 'x\\', true], // a trailing backslash is literal
  ['[abc', 'b', true], // unclosed class runs to the end of the pattern
  ['[abc', 'bx', false],
  ['a[', 'a', false],
  ['[]a', 'a', false], // `[]` is an empty class: nothing matches it
  ['h*llo', 'hllo', true],
  ['h*llo', 'heeeello', true],
  ['h[ae]llo', 'hello', true],
  ['h[ae]llo', 'hillo', false],
  ['*a*b*c*', 'xxaxxbxxcxx', true],
  ['*a*b*c*', 'xxaxxcxxbxx', false],
  ['user:*:name', 'user:42:name', true],
  ['user:*:name', 'user:42:email', false],
  ['**', 'abc', true],
  ['a*', 'b', false],
  ['?', '', false],
];

test('glob cases from Redis semantics', () => {
  for (const [pattern, key, expected] of cases) {
    assert.equal(m(pattern, key), expected, `${JSON.stringify(pattern)} vs ${JSON.stringify(key)}`);
  }
});

test('glob works on arbitrary bytes, not text', () => {
  assert.equal(globMatch(Uint8Array.of(0xff, 0x2a), Uint8Array.of(0xff, 0, 1, 2)), true);
  assert.equal(globMatch(Uint8Array.of(0x5b, 0x00, 0x2d, 0x10, 0x5d), Uint8Array.of(0x05)), true);
  assert.equal(globMatch(Uint8Array.of(0x5b, 0x00, 0x2d, 0x10, 0x5d), Uint8Array.of(0x11)), false);
});

test('a pathological pattern stays fast (no exponential backtracking)', () => {
  const key = b('a'.repeat(1000));
  const start = process.hrtime.bigint();
  assert.equal(m('a*a*a*a*a*a*a*a*b', 'a'.repeat(1000)), false);
  assert.equal(globMatch(b('*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b'), key), false);
  assert.equal(globMatch(b('a*a*a*a*a*a*a*a*a'), key), true);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  assert.ok(ms < 1000, `took ${ms} ms`);
});

test('isMatchAll is true only for stars', () => {
  assert.equal(isMatchAll(b('*')), true);
  assert.equal(isMatchAll(b('**')), true);
  assert.equal(isMatchAll(b('*a')), false);
  assert.equal(isMatchAll(b('')), false);
  assert.equal(isMatchAll(b('\\*')), false);
});
