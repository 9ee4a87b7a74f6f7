// Unit tests of src/protocol/url_signing.ts: signed, expiring URLs (the pure module shared by
// the HTTP front end, SIGN, the CLI and the client library). No I/O; the clock is a number.
// Invariants checked: a URL signed for (method, resource, expiry) verifies only for exactly
// those, until the expiry; any changed byte, parameter, method or key is BAD_SIGNATURE; keys
// with UTF-8 and '/' sign and verify whichever way the client percent-encodes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_SIGNED_SECONDS, blobResource, canonicalQuery, requestAccess, signResource, signTarget, signature, verify, verifyRequest,
} from '../src/protocol/url_signing.js';
import { signUrl } from '../src/client/sign_url.js';

const TOKEN = 'open-sesame-42';
const NOW = 1_800_000_000;
const MAX_KEY = 4096;

/** The path and the query of a signed path. */
function split(signed: string): { path: string; query: string } {
  const q = signed.indexOf('?');
  return { path: signed.slice(0, q), query: signed.slice(q + 1) };
}

function check(method: string, signed: string, now = NOW, token = TOKEN): ReturnType<typeof verifyRequest> {
  const { path, query } = split(signed);
  return verifyRequest(token, { method, path, query, websocket: false }, now, MAX_KEY);
}

function signed(method: 'GET' | 'HEAD' | 'PUT' | 'WS', target: string, seconds = 3600): string {
  const r = signTarget(TOKEN, method, target, seconds, NOW, MAX_KEY);
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r.path;
}

test('a signed GET verifies until its expiry, and not a second after', () => {
  const url = signed('GET', 'photos/cat.png', 60);
  assert.match(url, /^\/v1\/blobs\/photos\/cat\.png\?expires=1800000060&sig=[0-9a-f]{64}$/);
  assert.deepEqual(check('GET', url), { ok: true });
  assert.deepEqual(check('GET', url, NOW + 60), { ok: true });
  const late = check('GET', url, NOW + 61);
  assert.equal(late?.ok, false);
  assert.equal(late?.ok === false && late.code, 'SIGNATURE_EXPIRED');
});

test('the signature is the HMAC-SHA256 of the documented string, in hex', async () => {
  const { createHmac } = await import('node:crypto');
  const expected = createHmac('sha256', TOKEN).update(`BRISE-HMAC-SHA256\nPUT\n${NOW}\n/v1/blobs/a%20b`).digest('hex');
  assert.equal(signature(TOKEN, 'PUT', '/v1/blobs/a%20b', NOW), expected);
  assert.equal(signResource(TOKEN, 'PUT', '/v1/blobs/a%20b', NOW), `/v1/blobs/a%20b?expires=${NOW}&sig=${expected}`);
});

test('tampered: any changed character of the signature, the expiry or the key is BAD_SIGNATURE', () => {
  const url = signed('GET', 'k', 600);
  const { path, query } = split(url);
  const params = new URLSearchParams(query);
  const sig = params.get('sig')!;
  const flipped = (sig[0] === '0' ? '1' : '0') + sig.slice(1);
  const cases = [
    `${path}?expires=${params.get('expires')}&sig=${flipped}`,
    `${path}?expires=${Number(params.get('expires')) + 1}&sig=${sig}`,
    `/v1/blobs/K?${query}`,
    `/v1/blobs/k2?${query}`,
    `${url}&ttl=1s`, // an added parameter is signed too
    `${path}?expires=${params.get('expires')}&sig=${sig.slice(0, 63)}`,
    `${path}?expires=${params.get('expires')}`,
    `${url}&sig=${sig}`, // two signatures
  ];
  for (const u of cases) {
    const v = check('GET', u);
    assert.equal(v?.ok, false, u);
    assert.equal(v?.ok === false && v.code, 'BAD_SIGNATURE', u);
  }
  // Another token's signature of the same request.
  const other = signTarget('another-token', 'GET', 'k', 600, NOW, MAX_KEY);
  assert.ok(other.ok);
  assert.equal(check('GET', other.path)?.ok, false);
  // An expired AND tampered URL is BAD_SIGNATURE: "expired" is said only of a genuine URL.
  const v = check('GET', cases[0]!, NOW + 10_000);
  assert.equal(v?.ok === false && v.code, 'BAD_SIGNATURE');
});

test('wrong method: a GET signature opens GET and HEAD only; PUT opens PUT only', () => {
  const get = signed('GET', 'k');
  assert.deepEqual(check('HEAD', get), { ok: true });
  for (const m of ['PUT', 'DELETE', 'POST']) assert.equal(check(m, get)?.ok, false, m);
  const put = signed('PUT', 'k');
  assert.deepEqual(check('PUT', put), { ok: true });
  for (const m of ['GET', 'HEAD', 'DELETE']) assert.equal(check(m, put)?.ok, false, m);
  const head = signed('HEAD', 'k');
  assert.deepEqual(check('HEAD', head), { ok: true });
  assert.equal(check('GET', head)?.ok, false);
});

test('keys with UTF-8 and "/" sign once and verify however the client encodes the path', () => {
  const key = 'dir/sub dir/été ✓/ü+?#%.txt';
  const url = signed('GET', key);
  const { query } = split(url);
  assert.ok(url.startsWith('/v1/blobs/dir/sub%20dir/%C3%A9t%C3%A9%20%E2%9C%93/%C3%BC%2B%3F%23%25.txt?'), url);
  assert.deepEqual(check('GET', url), { ok: true });
  // curl sends raw UTF-8; lower-case escapes and %2F for '/' are the same key.
  const raw = '/v1/blobs/dir/sub%20dir/été ✓/ü%2b%3f%23%25.txt';
  assert.deepEqual(check('GET', `${raw}?${query}`), { ok: true });
  assert.deepEqual(check('GET', `/v1/blobs/dir%2Fsub%20dir%2F%c3%a9t%c3%a9%20%e2%9c%93/%C3%BC%2B%3F%23%25.txt?${query}`), { ok: true });
  // A neighbouring key does not.
  assert.equal(check('GET', `/v1/blobs/dir/sub%20dir/ete%20%E2%9C%93/%C3%BC%2B%3F%23%25.txt?${query}`)?.ok, false);
  // A key that cannot be served cannot be signed.
  const nul = signTarget(TOKEN, 'GET', 'a\0b', 60, NOW, MAX_KEY);
  assert.equal(nul.ok, false);
  const long = signTarget(TOKEN, 'GET', 'x'.repeat(MAX_KEY + 1), 60, NOW, MAX_KEY);
  assert.equal(long.ok, false);
});

test('a key whose bytes look like a query cannot pass for a key with parameters', () => {
  // "a?ttl=1s" as a key is /v1/blobs/a%3Fttl%3D1s; key "a" with ttl=1s is /v1/blobs/a?ttl=1s.
  assert.notEqual(blobResource('a?ttl=1s'), blobResource('a', new URLSearchParams('ttl=1s')));
  const asKey = signed('PUT', 'a?ttl=1s');
  const { query } = split(asKey);
  assert.equal(check('PUT', `/v1/blobs/a?ttl=1s&${query}`)?.ok, false);
});

test('parameters are signed in a canonical order', () => {
  assert.equal(canonicalQuery(new URLSearchParams('b=2&a=1&expires=5&sig=x&a=0')), '?a=0&a=1&b=2');
  assert.equal(canonicalQuery(new URLSearchParams('sig=x')), '');
  const resource = blobResource('k', new URLSearchParams('ttl=1h'));
  const url = signResource(TOKEN, 'PUT', resource, NOW + 60);
  assert.match(url, /^\/v1\/blobs\/k\?ttl=1h&expires=\d+&sig=/);
  const { query } = split(url);
  const reordered = new URLSearchParams(query);
  const back = `/v1/blobs/k?sig=${reordered.get('sig')}&expires=${reordered.get('expires')}&ttl=1h`;
  assert.deepEqual(check('PUT', back), { ok: true });
  assert.equal(check('PUT', back.replace('ttl=1h', 'ttl=2h'))?.ok, false);
});

test('WebSocket routes: the path and every parameter are signed, with the method WS', () => {
  const url = signed('WS', '/v1/subscribe?patterns=news.*&channels=a,b');
  assert.match(url, /^\/v1\/subscribe\?channels=a%2Cb&patterns=news\.\*&expires=\d+&sig=[0-9a-f]{64}$/);
  const ws = (u: string, now = NOW): ReturnType<typeof verifyRequest> => {
    const { path, query } = split(u);
    return verifyRequest(TOKEN, { method: 'GET', path, query, websocket: true }, now, MAX_KEY);
  };
  assert.deepEqual(ws(url), { ok: true });
  assert.equal(ws(url.replace('channels=a%2Cb', 'channels=a%2Cc'))?.ok, false);
  assert.equal(ws(url.replace('/v1/subscribe', '/v1/wal'))?.ok, false);
  assert.equal(ws(url, NOW + 3601)?.ok === false && (ws(url, NOW + 3601) as { code: string }).code, 'SIGNATURE_EXPIRED');
  // The same resource signed as a GET does not open a socket, nor a WS signature a GET.
  const wal = signed('WS', '/v1/wal?from=7');
  assert.deepEqual(ws(wal), { ok: true });
  assert.equal(check('GET', wal)?.ok, false);
  assert.equal(signTarget(TOKEN, 'WS', '/v1/keys', 60, NOW, MAX_KEY).ok, false);
  assert.equal(signTarget(TOKEN, 'WS', '/v1/wal?from=1&sig=x', 60, NOW, MAX_KEY).ok, false);
});

test('lifetimes: 1 s to 7 days; a URL expiring further ahead than that is refused', () => {
  for (const s of [0, -1, 1.5, MAX_SIGNED_SECONDS + 1, Number.NaN]) assert.equal(signTarget(TOKEN, 'GET', 'k', s, NOW, MAX_KEY).ok, false, String(s));
  assert.ok(signTarget(TOKEN, 'GET', 'k', MAX_SIGNED_SECONDS, NOW, MAX_KEY).ok);
  // Made by hand with the token, valid for a year: refused all the same.
  const far = signResource(TOKEN, 'GET', blobResource('k'), NOW + 365 * 86_400);
  const v = check('GET', far);
  assert.equal(v?.ok === false && v.code, 'BAD_EXPIRY');
});

test('without a token nothing is signed; unknown methods are refused', () => {
  assert.equal(signTarget(null, 'GET', 'k', 60, NOW, MAX_KEY).ok, false);
  assert.equal(signTarget('', 'GET', 'k', 60, NOW, MAX_KEY).ok, false);
  assert.equal(signTarget(TOKEN, 'DELETE', 'k', 60, NOW, MAX_KEY).ok, false);
  assert.ok(signTarget(TOKEN, 'get', 'k', 60, NOW, MAX_KEY).ok, 'the method is any case');
});

test('verifyRequest: no signature is null; routes and methods that cannot be signed are refused', () => {
  assert.equal(verifyRequest(TOKEN, { method: 'GET', path: '/v1/blobs/k', query: undefined, websocket: false }, NOW, MAX_KEY), null);
  assert.equal(verifyRequest(TOKEN, { method: 'GET', path: '/v1/blobs/k', query: 'ttl=1', websocket: false }, NOW, MAX_KEY), null);
  const get = signed('GET', 'k');
  const { query } = split(get);
  for (const [method, path] of [['DELETE', '/v1/blobs/k'], ['GET', '/v1/keys'], ['GET', '/metrics']] as const) {
    const v = verifyRequest(TOKEN, { method, path, query, websocket: false }, NOW, MAX_KEY);
    assert.equal(v?.ok === false && v.code, 'BAD_SIGNATURE', `${method} ${path}`);
  }
  assert.equal(verify(TOKEN, 'GET', blobResource('k'), new URLSearchParams('expires=abc&sig=00'), NOW).ok, false);
});

test('requestAccess: the token, a signature, 401 without either, 403 for a bad signature', () => {
  const req = (authorization: string | undefined, path: string, query?: string) =>
    requestAccess(TOKEN, { method: 'GET', path, query, authorization, websocket: false }, NOW, MAX_KEY);
  assert.deepEqual(requestAccess(null, { method: 'GET', path: '/v1/keys', query: undefined, authorization: undefined, websocket: false }, NOW, MAX_KEY), { ok: true });
  assert.deepEqual(req(`Bearer ${TOKEN}`, '/v1/keys'), { ok: true });
  const none = req(undefined, '/v1/blobs/k');
  assert.equal(none.ok === false && none.status, 401);
  const wrongBearer = req('Bearer nope', '/v1/blobs/k');
  assert.equal(wrongBearer.ok === false && wrongBearer.status, 401);
  const { path, query } = split(signed('GET', 'k'));
  assert.deepEqual(req(undefined, path, query), { ok: true });
  assert.deepEqual(req('Bearer nope', path, query), { ok: true }, 'a good signature with a wrong bearer');
  const bad = req(undefined, '/v1/blobs/other', query);
  assert.equal(bad.ok === false && bad.status, 403);
  assert.equal(bad.ok === false && bad.code, 'BAD_SIGNATURE');
});

test('signUrl (client library) makes what the server accepts, with a base URL', () => {
  const url = signUrl(TOKEN, 'PUT', 'dir/é', 120, { base: 'http://127.0.0.1:6381/', nowMs: NOW * 1000 });
  assert.match(url, /^http:\/\/127\.0\.0\.1:6381\/v1\/blobs\/dir\/%C3%A9\?expires=1800000120&sig=[0-9a-f]{64}$/);
  assert.deepEqual(check('PUT', url.slice('http://127.0.0.1:6381'.length)), { ok: true });
  assert.throws(() => signUrl(TOKEN, 'GET', 'k', 0), RangeError);
});
