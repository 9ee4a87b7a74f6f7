// Black-box tests of the HTTP API for browsers (issue 10, item 5) against real masters started
// here: CORS (--http-cors-origins: preflights, the headers on every kind of response, foreign
// origins, the WebSocket Origin check with `ws`) and signed, expiring URLs (made by SIGN over
// TCP with ioredis, by the CLI and by the client library; used with fetch and curl; expired,
// tampered and misused ones refused). Requests that set Origin go through node:http, which
// sends exactly the headers given.
// Owns: the masters it starts (stopped by PID in `after`) and their temp dirs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as http from 'node:http';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { hasProgram, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';
import { blobResource, signResource } from '../src/protocol/url_signing.js';
import { Client } from '../src/client/client.js';
import { signUrl } from '../src/client/sign_url.js';
import { parseMasterArgs } from '../src/master/config.js';

const BOUNDED = { timeout: 30_000 };
const run = promisify(execFile);
const TOKEN = 'cors-token-7';
const PASSWORD = 'tcp-pass-3';
const ALLOWED = 'http://app.example:8080';
const FOREIGN = 'http://evil.example';
const CLI_JS = new URL('../../cmd/cli.js', import.meta.url).pathname;

let m: MasterProcess;
let plain: MasterProcess;
let base = '';

before(async () => {
  m = await startMaster({
    http: true,
    args: ['--http-token', TOKEN, '--http-cors-origins', `${ALLOWED},HTTP://Other.Example:80`, '--requirepass', PASSWORD],
  });
  base = `http://127.0.0.1:${m.httpPort}`;
  // Neither a token nor CORS: the defaults.
  plain = await startMaster({ http: true });
});

after(async () => {
  await stopAll();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request with exactly these headers (fetch would add its own Origin rules). */
function request(method: string, url: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Answer> {
  return within(
    new Promise<Answer>((resolve, reject) => {
      const req = http.request(url, { method, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    }),
    10_000,
    `${method} ${url}`,
  );
}

const auth = { authorization: `Bearer ${TOKEN}` };
const blob = (key: string): string => `${base}/v1/blobs/${key}`;

function assertCors(a: Answer, origin: string, what: string): void {
  assert.equal(a.headers['access-control-allow-origin'], origin, `${what}: Access-Control-Allow-Origin`);
  assert.match(String(a.headers.vary), /Origin/, `${what}: Vary`);
  const exposed = String(a.headers['access-control-expose-headers']).split(/,\s*/).map((h) => h.toLowerCase());
  for (const h of ['etag', 'content-range', 'content-length', 'accept-ranges', 'last-modified', 'x-brise-size']) {
    assert.ok(exposed.includes(h), `${what}: ${h} exposed in ${exposed.join(',')}`);
  }
}

function assertNoCors(a: Answer, what: string): void {
  for (const h of Object.keys(a.headers)) assert.ok(!h.startsWith('access-control-'), `${what}: ${h} present`);
}

// ---- config ------------------------------------------------------------------------------

test('--http-cors-origins: origins are normalised; paths, other schemes and bad lists are one-line errors', () => {
  const ok = parseMasterArgs(['--http-cors-origins', 'https://A.example:443,http://b.example:8080,*']);
  assert.ok('config' in ok);
  assert.deepEqual(ok.config.httpCorsOrigins, ['https://a.example', 'http://b.example:8080', '*']);
  const off = parseMasterArgs([]);
  assert.ok('config' in off && off.config.httpCorsOrigins === undefined, 'off by default');
  for (const bad of ['http://a.example/path', 'ftp://a.example', 'a.example', 'http://user@a.example', 'http://a.example?x=1', 'http://a.example,http://a.example']) {
    const r = parseMasterArgs(['--http-cors-origins', bad]);
    assert.ok('error' in r, bad);
    assert.match(r.error, /^--http-cors-origins: /, bad);
    assert.ok(!r.error.includes('\n'));
  }
});

// ---- preflight ---------------------------------------------------------------------------

test('a preflight from an allowed origin: 204, no token needed, the asked headers within the allowed set', BOUNDED, async () => {
  const a = await request('OPTIONS', blob('pre/a'), {
    Origin: ALLOWED,
    'Access-Control-Request-Method': 'PUT',
    'Access-Control-Request-Headers': 'content-type, X-Brise-Meta-Color, authorization, x-evil, if-match, repr-digest',
  });
  assert.equal(a.status, 204);
  assert.equal(a.headers['access-control-allow-origin'], ALLOWED);
  assert.match(String(a.headers.vary), /Origin/);
  const methods = String(a.headers['access-control-allow-methods']).split(/,\s*/);
  for (const mth of ['GET', 'HEAD', 'PUT', 'DELETE']) assert.ok(methods.includes(mth), mth);
  assert.deepEqual(String(a.headers['access-control-allow-headers']).split(/,\s*/), ['content-type', 'x-brise-meta-color', 'authorization', 'if-match', 'repr-digest']);
  assert.ok(Number(a.headers['access-control-max-age']) > 0);
  assert.equal(a.body.length, 0);
  // The other listed origin, as browsers send it (lower case, default port dropped).
  const other = await request('OPTIONS', `${base}/v1/keys`, { Origin: 'http://other.example', 'Access-Control-Request-Method': 'GET' });
  assert.equal(other.status, 204);
  assert.equal(other.headers['access-control-allow-origin'], 'http://other.example');
});

test('a preflight from an origin not allowed: 403 JSON and no CORS header', BOUNDED, async () => {
  for (const origin of [FOREIGN, 'http://app.example:8081', 'https://app.example:8080', 'null']) {
    const a = await request('OPTIONS', blob('pre/a'), { Origin: origin, 'Access-Control-Request-Method': 'GET' });
    assert.equal(a.status, 403, origin);
    assertNoCors(a, origin);
    assert.equal(JSON.parse(a.body.toString()).code, 'ORIGIN_NOT_ALLOWED');
  }
});

// ---- the headers on actual responses -----------------------------------------------------

test('PUT, GET, HEAD, Range, 404, 401 and unknown routes to an allowed origin all carry the CORS headers', BOUNDED, async () => {
  const o = { Origin: ALLOWED };
  const put = await request('PUT', blob('cors/a'), { ...o, ...auth, 'Content-Type': 'text/plain' }, 'hello cors');
  assert.equal(put.status, 201);
  assertCors(put, ALLOWED, 'PUT 201');
  const get = await request('GET', blob('cors/a'), { ...o, ...auth });
  assert.equal(get.status, 200);
  assert.equal(get.body.toString(), 'hello cors');
  assertCors(get, ALLOWED, 'GET 200');
  const range = await request('GET', blob('cors/a'), { ...o, ...auth, Range: 'bytes=0-4' });
  assert.equal(range.status, 206);
  assert.equal(range.body.toString(), 'hello');
  assertCors(range, ALLOWED, 'GET 206');
  const head = await request('HEAD', blob('cors/a'), { ...o, ...auth });
  assert.equal(head.status, 200);
  assertCors(head, ALLOWED, 'HEAD 200');
  const missing = await request('GET', blob('cors/missing'), { ...o, ...auth });
  assert.equal(missing.status, 404);
  assertCors(missing, ALLOWED, 'GET 404');
  const unauthorized = await request('GET', blob('cors/a'), o);
  assert.equal(unauthorized.status, 401);
  assertCors(unauthorized, ALLOWED, 'GET 401');
  assert.ok(String(unauthorized.headers['access-control-expose-headers']).includes('WWW-Authenticate'));
  const unknown = await request('GET', `${base}/nowhere`, o);
  assert.equal(unknown.status, 404);
  assertCors(unknown, ALLOWED, 'unknown route 404');
  const keys = await request('GET', `${base}/v1/keys`, { ...o, ...auth });
  assert.equal(keys.status, 200);
  assertCors(keys, ALLOWED, 'GET /v1/keys');
  const del = await request('DELETE', blob('cors/a'), { ...o, ...auth });
  assert.equal(del.status, 204);
  assertCors(del, ALLOWED, 'DELETE 204');
});

test('a foreign origin or no Origin gets the answer without Access-Control-Allow-Origin (Vary: Origin still)', BOUNDED, async () => {
  await request('PUT', blob('cors/b'), auth, 'b');
  const foreign = await request('GET', blob('cors/b'), { Origin: FOREIGN, ...auth });
  assert.equal(foreign.status, 200);
  assertNoCors(foreign, 'foreign GET');
  assert.match(String(foreign.headers.vary), /Origin/);
  const none = await request('GET', blob('cors/b'), auth);
  assert.equal(none.status, 200);
  assertNoCors(none, 'GET without Origin');
});

test('CORS off (the default): no CORS header, and OPTIONS is not answered as a preflight', BOUNDED, async () => {
  const pbase = `http://127.0.0.1:${plain.httpPort}`;
  const put = await request('PUT', `${pbase}/v1/blobs/x`, { Origin: ALLOWED }, 'x');
  assert.equal(put.status, 201);
  assertNoCors(put, 'PUT on a master without CORS');
  const pre = await request('OPTIONS', `${pbase}/v1/blobs/x`, { Origin: ALLOWED, 'Access-Control-Request-Method': 'PUT' });
  assert.notEqual(pre.status, 204);
  assertNoCors(pre, 'OPTIONS on a master without CORS');
});

// ---- WebSockets --------------------------------------------------------------------------

/** Opens a socket: 'open', or the status of the refused upgrade. */
function openSocket(url: string, options: { origin?: string; headers?: Record<string, string> } = {}): Promise<number | 'open'> {
  return within(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { ...(options.origin === undefined ? {} : { origin: options.origin }), headers: options.headers ?? {} });
      ws.on('open', () => {
        ws.close();
        resolve('open');
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.on('error', (e) => reject(e));
    }),
    10_000,
    `WebSocket ${url}`,
  );
}

test('WebSocket upgrades: a foreign Origin is refused 403, an allowed one or none is let in', BOUNDED, async () => {
  const url = `ws://127.0.0.1:${m.httpPort}/v1/subscribe?channels=news`;
  assert.equal(await openSocket(url, { origin: ALLOWED, headers: auth }), 'open');
  assert.equal(await openSocket(url, { headers: auth }), 'open', 'no Origin: not a browser');
  assert.equal(await openSocket(url, { origin: FOREIGN, headers: auth }), 403);
  assert.equal(await openSocket(url, { origin: ALLOWED }), 401, 'an allowed origin still needs the token');
});

test('WebSocket upgrades with a signed URL (SIGN WS): no token needed; tampered, expired or for another route refused', BOUNDED, async () => {
  const redis = new Redis({ port: m.port, host: '127.0.0.1', password: PASSWORD, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await redis.connect();
    const path = String(await redis.call('SIGN', 'WS', '/v1/subscribe?channels=news', '60'));
    const wsBase = `ws://127.0.0.1:${m.httpPort}`;
    assert.equal(await openSocket(wsBase + path, { origin: ALLOWED }), 'open');
    assert.equal(await openSocket(wsBase + path), 'open');
    assert.equal(await openSocket(wsBase + path.replace('channels=news', 'channels=secrets')), 403);
    assert.equal(await openSocket(wsBase + path.replace('/v1/subscribe', '/v1/wal')), 403);
    assert.equal(await openSocket(wsBase + path, { origin: FOREIGN }), 403, 'a signed URL does not lift the Origin check');
    const expired = signResource(TOKEN, 'WS', '/v1/wal?from=1', Math.floor(Date.now() / 1000) - 5);
    assert.equal(await openSocket(wsBase + expired), 403);
  } finally {
    redis.disconnect();
  }
});

// ---- signed URLs -------------------------------------------------------------------------

test('SIGN over TCP (ioredis): a signed GET, HEAD and PUT work with fetch and curl, without the token', BOUNDED, async () => {
  const redis = new Redis({ port: m.port, host: '127.0.0.1', password: PASSWORD, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await redis.connect();
    const key = 'signed/été x.txt';
    const putPath = String(await redis.call('SIGN', 'PUT', key, '120'));
    assert.match(putPath, /^\/v1\/blobs\/signed\/%C3%A9t%C3%A9%20x\.txt\?expires=\d+&sig=[0-9a-f]{64}$/);
    const put = await fetch(base + putPath, { method: 'PUT', body: 'signed body', signal: AbortSignal.timeout(10_000) });
    assert.equal(put.status, 201);
    const getPath = String(await redis.call('SIGN', 'GET', key, '120'));
    const get = await fetch(base + getPath, { signal: AbortSignal.timeout(10_000) });
    assert.equal(get.status, 200);
    assert.equal(await get.text(), 'signed body');
    const head = await fetch(base + getPath, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    assert.equal(head.status, 200, 'a GET signature opens HEAD');
    assert.equal(head.headers.get('content-length'), '11');
    if (hasProgram('curl')) {
      const { stdout } = await run('curl', ['-sS', '--max-time', '10', base + getPath]);
      assert.equal(stdout, 'signed body');
      const { stdout: code } = await run('curl', ['-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'PUT', '--data-binary', 'x', base + getPath]);
      assert.equal(code, '403', 'a GET signature does not open PUT');
    } else {
      assert.fail('curl is needed (Debian package curl)');
    }
    // The GET signature does not delete; the PUT signature does not read.
    assert.equal((await fetch(base + getPath, { method: 'DELETE', signal: AbortSignal.timeout(10_000) })).status, 403);
    assert.equal((await fetch(base + putPath, { signal: AbortSignal.timeout(10_000) })).status, 403);
  } finally {
    redis.disconnect();
  }
});

test('expired, tampered and other-key signed URLs are refused with 403 and a clear code', BOUNDED, async () => {
  await request('PUT', blob('signed/k'), auth, 'k');
  const now = Math.floor(Date.now() / 1000);
  const expired = signResource(TOKEN, 'GET', blobResource('signed/k'), now - 10);
  const e = await fetch(base + expired, { signal: AbortSignal.timeout(10_000) });
  assert.equal(e.status, 403);
  assert.deepEqual(((await e.json()) as { code: string }).code, 'SIGNATURE_EXPIRED');
  const good = signUrl(TOKEN, 'GET', 'signed/k', 60);
  const cases: [string, string][] = [
    [good.replace(/sig=([0-9a-f])/, (_s, c: string) => `sig=${c === '0' ? '1' : '0'}`), 'BAD_SIGNATURE'],
    [good.replace('signed/k', 'signed/other'), 'BAD_SIGNATURE'],
    [good.replace(/expires=(\d+)/, (_s, n: string) => `expires=${Number(n) + 1}`), 'BAD_SIGNATURE'],
    [signResource('not-the-token', 'GET', blobResource('signed/k'), now + 60), 'BAD_SIGNATURE'],
    [signResource(TOKEN, 'GET', blobResource('signed/k'), now + 30 * 86_400), 'BAD_EXPIRY'],
  ];
  for (const [url, code] of cases) {
    const r = await fetch(base + url, { signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 403, url);
    assert.equal(((await r.json()) as { code: string }).code, code, url);
  }
  // Still fine: the genuine one.
  assert.equal((await fetch(base + good, { signal: AbortSignal.timeout(10_000) })).status, 200);
  // A signature is no way into the routes it cannot sign.
  const keys = await fetch(`${base}/v1/keys?${good.split('?')[1]}`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(keys.status, 403);
});

test('SIGN needs AUTH when requirepass is set, a token on the master, and valid arguments', BOUNDED, async () => {
  // RESP2 and no ready check: a client without the password sends nothing before SIGN.
  const anon = new Redis({ port: m.port, host: '127.0.0.1', protocol: 2, enableReadyCheck: false, disableClientInfo: true, lazyConnect: true, maxRetriesPerRequest: 0 });
  anon.on('error', () => undefined);
  const noToken = new Redis({ port: plain.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  const authed = new Redis({ port: m.port, host: '127.0.0.1', password: PASSWORD, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await Promise.all([anon.connect(), noToken.connect(), authed.connect()]);
    await assert.rejects(anon.call('SIGN', 'GET', 'k', '60'), /NOAUTH/);
    await assert.rejects(noToken.call('SIGN', 'GET', 'k', '60'), /no HTTP token is configured/);
    await assert.rejects(authed.call('SIGN', 'DELETE', 'k', '60'), /GET, HEAD or PUT/);
    await assert.rejects(authed.call('SIGN', 'GET', 'k', '0'), /7 days/);
    await assert.rejects(authed.call('SIGN', 'GET', 'k', '604801'), /7 days/);
    await assert.rejects(authed.call('SIGN', 'GET', 'k', 'x'), /not an integer/);
    await assert.rejects(authed.call('SIGN', 'GET', 'k'), /wrong number of arguments/);
    await assert.rejects(authed.call('SIGN', 'WS', '/v1/keys', '60'), /WS target/);
  } finally {
    anon.disconnect();
    noToken.disconnect();
    authed.disconnect();
  }
});

test('the CLI (node cmd/cli.js sign) and the client library (Client.sign) make URLs the master accepts', BOUNDED, async () => {
  await request('PUT', blob('cli/k'), auth, 'from the cli');
  const { stdout } = await run(process.execPath, [CLI_JS, 'sign', 'GET', 'cli/k', '60', '--base', base], {
    env: { ...process.env, BRISEDB_HTTP_TOKEN: TOKEN },
    timeout: 15_000,
  });
  const url = stdout.trim();
  assert.ok(url.startsWith(`${base}/v1/blobs/cli/k?expires=`), url);
  assert.equal(await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text(), 'from the cli');
  await assert.rejects(run(process.execPath, [CLI_JS, 'sign', 'GET', 'cli/k', '60'], { env: { ...process.env, BRISEDB_HTTP_TOKEN: '' }, timeout: 15_000 }), /no HTTP token/);
  const client = await Client.dial(`127.0.0.1:${m.port}`, { password: PASSWORD, commandTimeoutMs: 5000 });
  try {
    const path = await client.sign('HEAD', 'cli/k', 60);
    const head = await fetch(base + path, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('x-brise-size'), '12');
  } finally {
    await client.close();
  }
});
