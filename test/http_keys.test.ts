// Unit tests of src/protocol/http_keys.ts: the raw path after /v1/blobs/ → key bytes, with
// every refusal (empty, NUL, bad escapes, control characters, invalid UTF-8, too long) and
// the round trip through encodeBlobKey.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBlobKey, encodeBlobKey } from '../src/protocol/http_keys.js';

const MAX = 64;
const bytes = (...xs: number[]): Buffer => Buffer.from(xs);

const accepted: [string, Buffer, string][] = [
  ['abc', Buffer.from('abc'), 'plain'],
  ['a/b/c', Buffer.from('a/b/c'), "'/' inside the key"],
  ['a%2Fb', Buffer.from('a/b'), '%2F is a slash'],
  ['a%2fb', Buffer.from('a/b'), 'lower-case hex'],
  ['/lead', Buffer.from('/lead'), 'a leading slash (from /v1/blobs//lead)'],
  ['a//b/', Buffer.from('a//b/'), 'empty segments and a trailing slash'],
  ['..', Buffer.from('..'), "'..' is plain key bytes"],
  ['.', Buffer.from('.'), "'.' is plain key bytes"],
  ['a/../../etc/passwd', Buffer.from('a/../../etc/passwd'), 'dot segments are never resolved'],
  ['%2E%2E', Buffer.from('..'), 'encoded dots'],
  ['a+b', Buffer.from('a+b'), "'+' is a literal plus"],
  ['a%2Bb', Buffer.from('a+b'), '%2B is a plus'],
  ['a%20b', Buffer.from('a b'), '%20 is a space'],
  ['%25', Buffer.from('%'), '%25 is a percent sign'],
  ['%2525', Buffer.from('%25'), 'decoded once only'],
  ['caf%C3%A9', Buffer.from('café'), 'UTF-8 escapes'],
  ['café', Buffer.from('café'), 'raw non-ASCII (curl sends UTF-8 bytes)'],
  ['%F0%9F%98%80', Buffer.from('😀'), 'a 4-byte sequence'],
  ['😀', Buffer.from('😀'), 'a raw astral character'],
  ['%EF%BF%BD', Buffer.from('\uFFFD'), 'an escaped U+FFFD is a real character'],
  ["k:;@!$&'()*,=~-._", Buffer.from("k:;@!$&'()*,=~-._"), 'sub-delims and pchar punctuation'],
  ['x'.repeat(MAX), Buffer.from('x'.repeat(MAX)), 'exactly the limit'],
  ['%41'.repeat(MAX), Buffer.from('A'.repeat(MAX)), 'the limit counts bytes, not characters (3 × MAX raw)'],
  ['é'.repeat(MAX / 2), Buffer.from('é'.repeat(MAX / 2)), '2-byte characters up to the byte limit'],
];

const refused: [string, 400 | 414, 'BAD_KEY' | 'KEY_TOO_LONG', RegExp, string][] = [
  ['', 400, 'BAD_KEY', /empty/, 'empty'],
  ['a%00b', 400, 'BAD_KEY', /NUL/, '%00'],
  ['a\u0000b', 400, 'BAD_KEY', /NUL/, 'raw NUL'],
  ['%00', 400, 'BAD_KEY', /NUL/, 'only %00'],
  ['a\nb', 400, 'BAD_KEY', /control/, 'raw LF'],
  ['a\rb', 400, 'BAD_KEY', /control/, 'raw CR'],
  ['a\u007fb', 400, 'BAD_KEY', /control/, 'raw DEL'],
  ['a%G1', 400, 'BAD_KEY', /percent-escape/, '%G1'],
  ['a%1G', 400, 'BAD_KEY', /percent-escape/, '%1G'],
  ['a%', 400, 'BAD_KEY', /percent-escape/, 'trailing %'],
  ['a%4', 400, 'BAD_KEY', /percent-escape/, 'trailing %4'],
  ['%%41', 400, 'BAD_KEY', /percent-escape/, '%%'],
  ['% 41', 400, 'BAD_KEY', /percent-escape/, '% then space'],
  ['%C3', 400, 'BAD_KEY', /UTF-8/, 'truncated 2-byte sequence'],
  ['%C3%28', 400, 'BAD_KEY', /UTF-8/, 'bad continuation'],
  ['%FF', 400, 'BAD_KEY', /UTF-8/, '0xFF never appears in UTF-8'],
  ['%C0%AF', 400, 'BAD_KEY', /UTF-8/, 'overlong slash'],
  ['%E0%80%AF', 400, 'BAD_KEY', /UTF-8/, 'overlong 3-byte'],
  ['%ED%A0%80', 400, 'BAD_KEY', /UTF-8/, 'an encoded surrogate'],
  ['%F4%90%80%80', 400, 'BAD_KEY', /UTF-8/, 'past U+10FFFF'],
  ['%80', 400, 'BAD_KEY', /UTF-8/, 'a lone continuation byte'],
  ['a\uD800b', 400, 'BAD_KEY', /UTF-8/, 'a raw lone surrogate'],
  ['a\uDC00', 400, 'BAD_KEY', /UTF-8/, 'a raw lone low surrogate'],
  ['a\uFFFDb', 400, 'BAD_KEY', /UTF-8/, 'a raw U+FFFD (invalid bytes decoded by the server)'],
  ['x'.repeat(MAX + 1), 414, 'KEY_TOO_LONG', /longer than 64 bytes/, 'one byte over'],
  ['%41'.repeat(MAX + 1), 414, 'KEY_TOO_LONG', /longer/, 'one decoded byte over'],
  ['é'.repeat(MAX / 2 + 1), 414, 'KEY_TOO_LONG', /longer/, '2-byte characters over the byte limit'],
  ['x'.repeat(10_000_000), 414, 'KEY_TOO_LONG', /longer/, 'ten million characters'],
  [`${'x'.repeat(MAX)}%00`, 414, 'KEY_TOO_LONG', /longer/, 'length is checked before NUL'],
];

test('decodeBlobKey: accepted keys', () => {
  for (const [raw, want, why] of accepted) {
    const r = decodeBlobKey(raw, MAX);
    assert.ok(r.ok, `${why}: ${JSON.stringify(raw)} refused: ${r.ok ? '' : r.message}`);
    assert.ok(r.key.equals(want), `${why}: got ${JSON.stringify(r.key.toString('latin1'))}`);
  }
});

test('decodeBlobKey: refused keys with status, code and message', () => {
  for (const [raw, status, code, message, why] of refused) {
    const r = decodeBlobKey(raw, MAX);
    assert.ok(!r.ok, `${why}: ${JSON.stringify(raw.slice(0, 40))} accepted`);
    assert.equal(r.status, status, why);
    assert.equal(r.code, code, why);
    assert.match(r.message, message, why);
  }
});

test('decodeBlobKey: a ten-million-character path is refused without decoding it', () => {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 100; i++) decodeBlobKey('%41'.repeat(3_000_000), 4096);
  assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 200, 'bounded by the raw length check');
});

test('encodeBlobKey: unreserved and / stay, everything else is %XY upper case', () => {
  assert.equal(encodeBlobKey(Buffer.from('AZaz09-._~/')), 'AZaz09-._~/');
  assert.equal(encodeBlobKey(Buffer.from('a b+c%d?e#f')), 'a%20b%2Bc%25d%3Fe%23f');
  assert.equal(encodeBlobKey(Buffer.from('café')), 'caf%C3%A9');
  assert.equal(encodeBlobKey(bytes(0, 0xff, 0x0a)), '%00%FF%0A');
  assert.equal(encodeBlobKey(new Uint8Array(0)), '');
});

test('encodeBlobKey then decodeBlobKey gives the key back, for every byte value and random keys', () => {
  for (let b = 0; b < 128; b++) {
    if (b === 0) continue;
    const key = bytes(0x61, b, 0x62);
    const r = decodeBlobKey(encodeBlobKey(key), MAX);
    assert.ok(r.ok && r.key.equals(key), `byte ${b}`);
  }
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const alphabet = ['a', '/', '.', '..', '%', '+', ' ', 'é', '😀', '\u00ff', '?', '#', '~', '\t', '\uFFFD'];
  for (let i = 0; i < 2000; i++) {
    let s = '';
    const n = 1 + (next() % 12);
    for (let j = 0; j < n; j++) s += alphabet[next() % alphabet.length];
    const key = Buffer.from(s, 'utf8');
    const r = decodeBlobKey(encodeBlobKey(key), 4096);
    assert.ok(r.ok, `refused ${JSON.stringify(s)}`);
    assert.ok(r.key.equals(key), `round trip of ${JSON.stringify(s)}`);
  }
});

test('decodeBlobKey: the result is a copy the caller owns, in an ArrayBuffer of its own', () => {
  const r1 = decodeBlobKey('abc', MAX);
  const r2 = decodeBlobKey('abc', MAX);
  assert.ok(r1.ok && r2.ok);
  r1.key[0] = 0x7a;
  assert.equal(r2.key.toString(), 'abc');
  for (const raw of ['abc', 'a%2Fb', 'caf%C3%A9', 'x'.repeat(MAX)]) {
    const r = decodeBlobKey(raw, MAX);
    assert.ok(r.ok);
    assert.equal(r.key.byteOffset, 0, `${raw}: not a slice of the shared pool`);
    assert.equal(r.key.buffer.byteLength, r.key.length, `${raw}: the ArrayBuffer is exactly the key`);
  }
});
