// Black-box tests of the blob routes over HTTP (PUT/GET/HEAD/DELETE /v1/blobs/{key}) against a
// real master started here (`node cmd/master.js --http ...`), with fetch (undici), node:http
// (raw paths: fetch normalises '..' and %2E%2E away) and curl.
// Owns: the masters it starts (stopped by PID in `after`) and their temp dirs.
// Invariants checked: bodies of 0 B, 1 B, 1 MB and 64 MB round-trip byte for byte (SHA-256),
// with the headers the API promises; TTLs, preconditions, keys, routes, the token and Range
// answer with the statuses of RFC 9110 and the issue. Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import {
  hasProgram, parseMultipart, patternChunks, patternSlice, sha256Of, sleep, startHttpMaster, startMaster, stopAll, streamRequest, tempDir,
  type MasterProcess,
} from './helpers/master_process.js';

/** Every test is bounded (fetch itself waits minutes by default). */
const BOUNDED = { timeout: 30_000 };

const run = promisify(execFile);
const MB = 1024 * 1024;
const TOKEN = 'open-sesame-42';

let m: MasterProcess;
let base = '';

before(async () => ({ m, base } = await startHttpMaster()));

after(async () => {
  await stopAll();
});

const blob = (key: string): string => `${base}/v1/blobs/${key}`;

async function json(res: Response): Promise<Record<string, unknown>> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  return (await res.json()) as Record<string, unknown>;
}

async function put(key: string, body: Buffer | string, headers: Record<string, string> = {}, query = ''): Promise<Response> {
  return fetch(blob(key) + query, { method: 'PUT', body, headers, signal: AbortSignal.timeout(10_000) });
}

async function get(key: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(blob(key), { headers, signal: AbortSignal.timeout(10_000) });
}

// ---- bodies of every size -------------------------------------------------------------------

for (const [name, size] of [['0 B', 0], ['1 B', 1], ['1 MB', MB], ['64 MB', 64 * MB]] as const) {
  test(`PUT, GET, HEAD, DELETE of a ${name} body, streamed both ways, equal by SHA-256`, BOUNDED, async () => {
    const key = `sized/${size}`;
    const seed = size + 7;
    const expected = await sha256Of(patternChunks(seed, size));
    const created = await streamRequest({
      method: 'PUT', port: m.httpPort, path: `/v1/blobs/${key}`, headers: { 'content-length': String(size) },
      body: patternChunks(seed, size), keep: true,
    });
    assert.equal(created.status, 201, created.body.toString());
    const etag = created.headers.etag;
    assert.match(String(etag), /^"[^"]+"$/, 'a strong ETag');
    const answer = JSON.parse(created.body.toString()) as Record<string, unknown>;
    assert.deepEqual(answer, { key, size, etag });

    const got = await streamRequest({ method: 'GET', port: m.httpPort, path: `/v1/blobs/${key}` });
    assert.equal(got.status, 200);
    assert.equal(got.length, size);
    assert.equal(got.sha256, expected);
    checkBlobHeaders(got.headers, size, String(etag));
    assert.equal(got.headers['x-brise-ttl'], '-1', 'no TTL: -1');

    const head = await streamRequest({ method: 'HEAD', port: m.httpPort, path: `/v1/blobs/${key}` });
    assert.equal(head.status, 200);
    assert.equal(head.length, 0, 'HEAD has no body');
    checkBlobHeaders(head.headers, size, String(etag));
    for (const h of ['etag', 'x-brise-size', 'x-brise-ttl', 'last-modified', 'accept-ranges', 'content-length']) {
      assert.equal(head.headers[h], got.headers[h], `HEAD and GET agree on ${h}`);
    }

    const del = await fetch(blob(key), { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.equal((await get(key)).status, 404);
  });
}

function checkBlobHeaders(h: Record<string, string | string[] | undefined>, size: number, etag: string): void {
  assert.equal(h['content-length'], String(size));
  assert.equal(h['accept-ranges'], 'bytes');
  assert.equal(h.etag, etag);
  assert.equal(h['x-brise-size'], String(size));
  const modified = Date.parse(String(h['last-modified']));
  assert.ok(Number.isFinite(modified), `Last-Modified is an HTTP date: ${String(h['last-modified'])}`);
  assert.ok(Math.abs(modified - Date.now()) < 5 * 60_000, 'Last-Modified is about now');
}

test('curl: PUT a 1 MB file and GET it back byte for byte; curl -I shows the headers', { ...BOUNDED, skip: !hasProgram('curl') && 'curl is not installed' }, async () => {
  const dir = tempDir('brisedb-http-curl-');
  const src = path.join(dir, 'src.bin');
  const dst = path.join(dir, 'dst.bin');
  const data = randomBytes(MB);
  fs.writeFileSync(src, data);
  const up = await run('curl', ['-sS', '-m', '10', '-o', '-', '-w', '\n%{http_code}', '-T', src, blob('curl/one')]);
  assert.match(up.stdout, /\n201$/);
  const down = await run('curl', ['-sS', '-m', '10', '-o', dst, '-w', '%{http_code}', blob('curl/one')]);
  assert.equal(down.stdout, '200');
  assert.ok(fs.readFileSync(dst).equals(data));
  const head = await run('curl', ['-sS', '-m', '10', '-I', blob('curl/one')]);
  assert.match(head.stdout, /^HTTP\/1\.1 200/);
  assert.match(head.stdout, new RegExp(`X-Brise-Size: ${MB}\\r?\\n`, 'i'));
  assert.match(head.stdout, /Content-Length: 1048576\r?\n/i);
});

// ---- TTL -----------------------------------------------------------------------------------

test('?ttl=1h: X-Brise-TTL about 3600; ?ttl=1s: gone after about 1.5 s', BOUNDED, async () => {
  assert.equal((await put('ttl/hour', 'h', {}, '?ttl=1h')).status, 201);
  const hour = await get('ttl/hour');
  const left = Number(hour.headers.get('x-brise-ttl'));
  assert.ok(left >= 3595 && left <= 3600, `X-Brise-TTL ${left}`);

  assert.equal((await put('ttl/second', 's', {}, '?ttl=1s')).status, 201);
  const fresh = await get('ttl/second');
  assert.equal(fresh.status, 200);
  assert.ok(['1', '0'].includes(fresh.headers.get('x-brise-ttl') ?? ''), `X-Brise-TTL ${fresh.headers.get('x-brise-ttl')}`);
  await sleep(1500);
  const deadline = Date.now() + 3000;
  let status = 0;
  do {
    status = (await get('ttl/second')).status;
    if (status === 404) break;
    await sleep(100);
  } while (Date.now() < deadline);
  assert.equal(status, 404, 'an expired blob is not served');
});

test('a bad ttl is 400 BAD_TTL and stores nothing', BOUNDED, async () => {
  for (const ttl of ['abc', '0', '-1', '1.5s', '1y', '', '10%20s']) {
    const res = await put('ttl/bad', 'x', {}, `?ttl=${ttl}`);
    assert.equal(res.status, 400, `ttl=${ttl}`);
    assert.equal((await json(res)).code, 'BAD_TTL');
  }
  assert.equal((await get('ttl/bad')).status, 404);
});

// ---- preconditions -------------------------------------------------------------------------

test('If-None-Match: * creates only; If-Match with the ETag replaces, a stale one is 412', BOUNDED, async () => {
  const first = await put('cond/a', 'one', { 'if-none-match': '*' });
  assert.equal(first.status, 201);
  const etag1 = first.headers.get('etag')!;
  const again = await put('cond/a', 'two', { 'if-none-match': '*' });
  assert.equal(again.status, 412);
  assert.equal((await json(again)).code, 'PRECONDITION_FAILED');
  assert.equal(await (await get('cond/a')).text(), 'one', 'a failed create-only leaves the blob');

  const replaced = await put('cond/a', 'three', { 'if-match': etag1 });
  assert.equal(replaced.status, 201);
  const etag2 = replaced.headers.get('etag')!;
  assert.notEqual(etag2, etag1);
  const stale = await put('cond/a', 'four', { 'if-match': etag1 });
  assert.equal(stale.status, 412);
  const now = await get('cond/a');
  assert.equal(await now.text(), 'three');
  assert.equal(now.headers.get('etag'), etag2);

  assert.equal((await put('cond/missing', 'x', { 'if-match': etag2 })).status, 412, 'If-Match on a missing blob');
  assert.equal((await put('cond/missing', 'x', { 'if-match': '"not-ours"' })).status, 412, 'an ETag this server never made');
  assert.equal((await get('cond/missing')).status, 404);
});

test('GET with If-None-Match of the current ETag is 304 without a body; another ETag is 200', BOUNDED, async () => {
  const etag = (await put('cond/cache', 'cached bytes')).headers.get('etag')!;
  const hit = await streamRequest({ method: 'GET', port: m.httpPort, path: '/v1/blobs/cond/cache', headers: { 'if-none-match': etag } });
  assert.equal(hit.status, 304);
  assert.equal(hit.length, 0);
  assert.equal(hit.headers.etag, etag);
  const miss = await get('cond/cache', { 'if-none-match': '"v0-1"' });
  assert.equal(miss.status, 200);
  assert.equal(await miss.text(), 'cached bytes');
});

test('DELETE: 204, then 404 (JSON), and GET/HEAD are 404', BOUNDED, async () => {
  assert.equal((await put('del/me', 'bye')).status, 201);
  assert.equal((await fetch(blob('del/me'), { method: 'DELETE' })).status, 204);
  const again = await fetch(blob('del/me'), { method: 'DELETE' });
  assert.equal(again.status, 404);
  const body = await json(again);
  assert.equal(body.code, 'NOT_FOUND');
  assert.equal(typeof body.error, 'string');
  assert.equal((await get('del/me')).status, 404);
  assert.equal((await fetch(blob('del/me'), { method: 'HEAD' })).status, 404);
});

// ---- keys ----------------------------------------------------------------------------------

test("keys with '/', '..', spaces and UTF-8 round-trip (percent-encoded raw paths)", BOUNDED, async () => {
  const keys = ['a/b/c', '..', 'x/../y', '/lead//double', 'with space', 'héllo/日本語/🙂', 'plus+sign', '%literal'];
  for (const key of keys) {
    const raw = encodeKeyPath(key);
    const value = Buffer.from(`value of ${key}`);
    const created = await streamRequest({
      method: 'PUT', port: m.httpPort, path: `/v1/blobs/${raw}`, headers: { 'content-length': String(value.length) },
      body: (async function* () { yield value; })(), keep: true,
    });
    assert.equal(created.status, 201, `${key}: ${created.body.toString()}`);
    assert.equal((JSON.parse(created.body.toString()) as { key: string }).key, key);
    const got = await streamRequest({ method: 'GET', port: m.httpPort, path: `/v1/blobs/${raw}`, keep: true });
    assert.equal(got.status, 200, key);
    assert.ok(got.body.equals(value), key);
  }
  // '/' raw and %2F are the same key.
  const viaEscape = await streamRequest({ method: 'GET', port: m.httpPort, path: '/v1/blobs/a%2Fb%2Fc', keep: true });
  assert.equal(viaEscape.body.toString(), 'value of a/b/c');
});

/** Percent-encodes every byte but unreserved characters and '/'; '.' too, so no client or proxy folds dot segments. */
function encodeKeyPath(key: string): string {
  let out = '';
  for (const b of Buffer.from(key, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_~/]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

test('a key over the limit is 414; NUL and invalid UTF-8 are 400; nothing is stored', BOUNDED, async () => {
  const long = 'k'.repeat(4097);
  for (const method of ['PUT', 'GET', 'DELETE']) {
    const res = await fetch(blob(long), { method, ...(method === 'PUT' ? { body: 'x' } : {}) });
    assert.equal(res.status, 414, method);
    assert.equal((await json(res)).code, 'KEY_TOO_LONG');
  }
  const veryLong = await get('%41'.repeat(5000));
  assert.equal(veryLong.status, 414, 'a raw path far over the limit');
  const atLimit = await put('k'.repeat(4096), 'ok');
  assert.equal(atLimit.status, 201, 'a key of exactly the limit is fine');
  for (const raw of ['nul%00byte', '%FF', 'bad%C3%28utf8', 'trunc%E6%97', '%G1', 'pct%']) {
    for (const method of ['PUT', 'GET']) {
      const res = await fetch(blob(raw), { method, ...(method === 'PUT' ? { body: 'x' } : {}) });
      assert.equal(res.status, 400, `${method} ${raw}`);
      assert.equal((await json(res)).code, 'BAD_KEY', raw);
    }
  }
  const keys = (await (await fetch(`${base}/v1/keys?pattern=*nul*`)).json()) as { keys: string[] };
  assert.deepEqual(keys.keys, []);
});

test('unknown route 404, POST on a blob 405, empty key 400 (all JSON errors)', BOUNDED, async () => {
  const unknown = await fetch(`${base}/v2/nothing`);
  assert.equal(unknown.status, 404);
  assert.equal((await json(unknown)).code, 'NOT_FOUND');
  const post = await fetch(blob('some/key'), { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal((await json(post)).code, 'METHOD_NOT_ALLOWED');
  const patch = await fetch(`${base}/v1/status`, { method: 'PUT', body: 'x' });
  assert.equal(patch.status, 405);
  // GET /v1/blobs/ is the listing; a write to the empty key is refused.
  const empty = await fetch(`${base}/v1/blobs/`, { method: 'DELETE' });
  assert.equal(empty.status, 400);
  assert.equal((await json(empty)).code, 'BAD_KEY');
});

// ---- token ---------------------------------------------------------------------------------

test('--http-token: 401 JSON with WWW-Authenticate without or with a wrong token; served with it', BOUNDED, async () => {
  const secured = await startMaster({ http: true, args: ['--http-token', TOKEN] });
  const url = (p: string): string => `http://127.0.0.1:${secured.httpPort}${p}`;
  const refusals: Array<[string, RequestInit]> = [
    ['/v1/blobs/t', { method: 'PUT', body: 'x' }],
    ['/v1/blobs/t', { method: 'PUT', body: 'x', headers: { authorization: 'Bearer wrong' } }],
    ['/v1/blobs/t', { headers: { authorization: `Basic ${TOKEN}` } }],
    ['/v1/blobs/t', { headers: { authorization: `Bearer ${TOKEN}x` } }],
    ['/v1/keys', {}],
    ['/v1/status', {}],
    ['/metrics', { headers: { authorization: 'Bearer' } }],
  ];
  for (const [p, init] of refusals) {
    const res = await fetch(url(p), init);
    assert.equal(res.status, 401, `${p} ${JSON.stringify(init.headers ?? {})}`);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await json(res)).code, 'UNAUTHORIZED');
  }
  const auth = { authorization: `Bearer ${TOKEN}` };
  assert.equal((await fetch(url('/v1/blobs/t'), { method: 'GET', headers: auth })).status, 404, 'the token passes: nothing stored by the refusals');
  assert.equal((await fetch(url('/v1/blobs/t'), { method: 'PUT', body: 'x', headers: auth })).status, 201);
  const got = await fetch(url('/v1/blobs/t'), { headers: { authorization: `bearer ${TOKEN}` } });
  assert.equal(got.status, 200, 'the scheme is case-insensitive');
  assert.equal(await got.text(), 'x');
  assert.equal((await fetch(url('/v1/status'), { headers: auth })).status, 200);
  await secured.stop();
});

// ---- Range ---------------------------------------------------------------------------------

test('Range: first, open, suffix, middle, clamped past the end, 416 with bytes */size', BOUNDED, async () => {
  const size = 1000;
  const data = patternSlice(99, 0, size);
  assert.equal((await put('range/r', data)).status, 201);
  const cases: Array<[string, number, number]> = [
    ['bytes=0-9', 0, 9],
    ['bytes=10-', 10, size - 1],
    ['bytes=-10', size - 10, size - 1],
    ['bytes=400-599', 400, 599],
    ['bytes=990-5000', 990, size - 1],
    ['bytes=0-99999999999999999999999', 0, size - 1],
    ['bytes=-5000', 0, size - 1],
    [`bytes=${size - 1}-`, size - 1, size - 1],
  ];
  for (const [range, start, end] of cases) {
    const res = await get('range/r', { range });
    assert.equal(res.status, 206, range);
    assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${size}`, range);
    assert.equal(res.headers.get('content-length'), String(end - start + 1), range);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(data.subarray(start, end + 1)), range);
  }
  for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, 'bytes=-0', `bytes=${size}-,${size * 2}-`]) {
    const res = await get('range/r', { range });
    assert.equal(res.status, 416, range);
    assert.equal(res.headers.get('content-range'), `bytes */${size}`, range);
    assert.equal((await json(res)).code, 'RANGE_NOT_SATISFIABLE');
  }
  for (const range of ['items=0-1', 'bytes=5-1', 'bytes=abc', 'bytes=']) {
    const res = await get('range/r', { range });
    assert.equal(res.status, 200, `an invalid Range is ignored: ${range}`);
    assert.equal(createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex'), createHash('sha256').update(data).digest('hex'));
  }
});

test('several ranges: 206 multipart/byteranges, each part with its bytes and Content-Range', BOUNDED, async () => {
  const size = 5000;
  const data = patternSlice(123, 0, size);
  assert.equal((await put('range/multi', data)).status, 201);
  const res = await get('range/multi', { range: 'bytes=0-9, 100-199,-50' });
  assert.equal(res.status, 206);
  const type = res.headers.get('content-type') ?? '';
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(res.headers.get('content-length'), String(body.length));
  const parts = parseMultipart(body, type);
  const want: Array<[number, number]> = [[0, 9], [100, 199], [size - 50, size - 1]];
  assert.equal(parts.length, want.length);
  parts.forEach((part, i) => {
    const [start, end] = want[i]!;
    assert.equal(part.headers['content-range'], `bytes ${start}-${end}/${size}`);
    assert.equal(part.headers['content-type'], 'application/octet-stream');
    assert.ok(part.body.equals(data.subarray(start, end + 1)), `part ${i}`);
  });
  // Overlapping ranges coalesce into one (RFC 9110 allows it): a single 206.
  const merged = await get('range/multi', { range: 'bytes=0-99,50-149' });
  assert.equal(merged.status, 206);
  assert.equal(merged.headers.get('content-range'), `bytes 0-149/${size}`);
});

test('curl: a Range request and an unsatisfiable one', { ...BOUNDED, skip: !hasProgram('curl') && 'curl is not installed' }, async () => {
  const data = patternSlice(5, 0, 300);
  assert.equal((await put('range/curl', data)).status, 201);
  const part = await run('curl', ['-sS', '-m', '10', '-r', '100-199', '-D', '-', '-o', '/dev/null', blob('range/curl')]);
  assert.match(part.stdout, /^HTTP\/1\.1 206/);
  assert.match(part.stdout, /Content-Range: bytes 100-199\/300/i);
  const bytes = await run('curl', ['-sS', '-m', '10', '-r', '100-199', blob('range/curl')], { encoding: 'buffer' });
  assert.ok(Buffer.from(bytes.stdout).equals(data.subarray(100, 200)));
  const none = await run('curl', ['-sS', '-m', '10', '-r', '300-', '-D', '-', '-o', '/dev/null', blob('range/curl')]);
  assert.match(none.stdout, /^HTTP\/1\.1 416/);
  assert.match(none.stdout, /Content-Range: bytes \*\/300/i);
});
