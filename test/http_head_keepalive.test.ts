// Regression (issue 10, defect 1): a HEAD answer carried a body (404, 400, 412, 416 answered
// JSON to a HEAD), so on a keep-alive connection the next response began with that JSON:
// httpx failed with `illegal status line: b'{"error":...}HTTP/1.1 200 OK'`. And a HEAD ended
// with uWS's endWithoutBody(n) left the response pending, so the next request on the connection
// closed it. A raw socket sends each HEAD and then, on the SAME connection, a GET that succeeds,
// and checks byte for byte that the GET's answer follows the HEAD's headers at once. Then a
// Python requests Session and http.client do HEAD then GET on one connection (http.client drops
// what was buffered with a HEAD's headers, so it mostly survived the stray body; the raw socket
// is the exact check, Python shows a common client works).
// Owns: the master it starts (with --http-token, stopped by PID in `after`) and its sockets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rawConnect, startMaster, stopAll, type MasterProcess, type RawConnection } from './helpers/master_process.js';
import { request, splitResponses } from './helpers/http_wire.js';

const BOUNDED = { timeout: 60_000 };
const TOKEN = 'head-keepalive-token';
const AUTH = `Authorization: Bearer ${TOKEN}`;
const VALUE = 'hello world';

let m: MasterProcess;
let base = '';

before(async () => {
  m = await startMaster({ http: true, args: ['--http-token', TOKEN] });
  base = `http://127.0.0.1:${m.httpPort}`;
  const put = await fetch(`${base}/v1/blobs/k`, { method: 'PUT', body: VALUE, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(10_000) });
  assert.equal(put.status, 201);
});

after(async () => {
  await stopAll();
});

interface HeadCase {
  name: string;
  path: string;
  headers: string[];
  status: number;
  contentType: RegExp;
  /** The GET of the same request answers a body of a fixed length: HEAD's Content-Length must be it. */
  sameLengthAsGet: boolean;
  /** Headers the HEAD answer must carry, as the GET's would. */
  also?: Record<string, RegExp>;
}

const JSON_TYPE = /^application\/json/;

const FAILING: HeadCase[] = [
  { name: '404 of a missing blob', path: '/v1/blobs/missing', headers: [AUTH], status: 404, contentType: JSON_TYPE, sameLengthAsGet: true },
  { name: '400 of a bad key', path: '/v1/blobs/%zz', headers: [AUTH], status: 400, contentType: JSON_TYPE, sameLengthAsGet: true },
  { name: '412 of If-Match', path: '/v1/blobs/k', headers: [AUTH, 'If-Match: "nope"'], status: 412, contentType: JSON_TYPE, sameLengthAsGet: true },
  {
    name: '416 of Range', path: '/v1/blobs/k', headers: [AUTH, 'Range: bytes=100-200'], status: 416, contentType: JSON_TYPE, sameLengthAsGet: true,
    also: { 'content-range': /^bytes \*\/11$/ },
  },
  {
    name: '401 of a wrong token', path: '/v1/blobs/k', headers: ['Authorization: Bearer wrong'], status: 401, contentType: JSON_TYPE, sameLengthAsGet: true,
    also: { 'www-authenticate': /^Bearer/ },
  },
  { name: '404 of an unknown route', path: '/v2/nothing', headers: [AUTH], status: 404, contentType: JSON_TYPE, sameLengthAsGet: false },
  { name: '400 of a bad /v1/scan cursor', path: '/v1/scan?cursor=x', headers: [AUTH], status: 400, contentType: JSON_TYPE, sameLengthAsGet: true },
  { name: '400 of a bad /v1/keys limit', path: '/v1/keys?limit=0', headers: [AUTH], status: 400, contentType: JSON_TYPE, sameLengthAsGet: true },
];

const SUCCEEDING: HeadCase[] = [
  { name: '200 of a blob', path: '/v1/blobs/k', headers: [AUTH], status: 200, contentType: /^application\/octet-stream$/, sameLengthAsGet: true, also: { etag: /^"/ } },
  { name: '206 of one range', path: '/v1/blobs/k', headers: [AUTH, 'Range: bytes=0-1'], status: 206, contentType: /^application\/octet-stream$/, sameLengthAsGet: true },
  { name: '206 of two ranges', path: '/v1/blobs/k', headers: [AUTH, 'Range: bytes=0-1,3-4'], status: 206, contentType: /^multipart\/byteranges/, sameLengthAsGet: true },
  { name: '304 of If-None-Match', path: '/v1/blobs/k', headers: [AUTH, 'If-None-Match: *'], status: 304, contentType: /^application\/octet-stream$/, sameLengthAsGet: false },
  { name: '200 of /v1/status', path: '/v1/status', headers: [AUTH], status: 200, contentType: JSON_TYPE, sameLengthAsGet: false },
  { name: '200 of /v1/keys', path: '/v1/keys', headers: [AUTH], status: 200, contentType: JSON_TYPE, sameLengthAsGet: true },
  { name: '200 of /v1/scan', path: '/v1/scan?cursor=0', headers: [AUTH], status: 200, contentType: JSON_TYPE, sameLengthAsGet: true },
  { name: '200 of /metrics', path: '/metrics', headers: [AUTH], status: 200, contentType: /^text\/plain/, sameLengthAsGet: false },
];

/** The length of the body a GET of the same request gets (on a connection of its own). */
async function getLength(c: HeadCase): Promise<number> {
  const headers: Record<string, string> = {};
  for (const h of c.headers) {
    const colon = h.indexOf(':');
    headers[h.slice(0, colon)] = h.slice(colon + 1).trim();
  }
  const res = await fetch(`${base}${c.path}`, { headers, signal: AbortSignal.timeout(10_000) });
  return (await res.arrayBuffer()).byteLength;
}

/**
 * Sends the HEAD, waits for its header block, then sends a GET of the blob on the same
 * connection and waits for its whole answer. Answers the two responses, checked to be
 * exactly the bytes received since `from` (nothing between them, nothing after).
 */
async function headThenGet(conn: RawConnection, from: number, c: HeadCase): Promise<{ head: ReturnType<typeof splitResponses>['responses'][number]; next: number }> {
  conn.send(request('HEAD', c.path, c.headers));
  await conn.until((t) => t.indexOf('\r\n\r\n', from) >= 0, 5000, `the headers of HEAD ${c.path} (${c.name})`);
  conn.send(request('GET', '/v1/blobs/k', [AUTH]));
  const text = await conn.until((t) => t.slice(from).endsWith(`\r\n\r\n${VALUE}`), 5000, `the GET after HEAD (${c.name})`);
  const bytes = conn.received().subarray(from);
  const headerEnd = text.indexOf('\r\n\r\n', from) + 4;
  // Byte for byte: the GET's status line comes right after the HEAD's headers.
  assert.equal(text.slice(headerEnd, headerEnd + 12), 'HTTP/1.1 200', `${c.name}: what follows the HEAD's headers is the next response`);
  const split = splitResponses(bytes, ['HEAD', 'GET']);
  assert.equal(split.responses.length, 2, c.name);
  assert.equal(split.rest.length, 0, `${c.name}: nothing after the GET's body`);
  assert.equal(split.responses[1]!.body.toString(), VALUE);
  return { head: split.responses[0]!, next: from + bytes.length };
}

async function checkCases(cases: HeadCase[]): Promise<void> {
  const conn = await rawConnect(m.httpPort);
  try {
    let from = 0;
    for (const c of cases) {
      const { head, next } = await headThenGet(conn, from, c);
      from = next;
      assert.equal(head.status, c.status, c.name);
      assert.match(head.headers.get('content-type') ?? '', c.contentType, `${c.name}: the GET's Content-Type`);
      for (const [name, value] of Object.entries(c.also ?? {})) assert.match(head.headers.get(name) ?? '', value, `${c.name}: ${name}`);
      const lengths = head.lines.filter((l) => /^content-length:/i.test(l));
      assert.ok(lengths.length <= 1, `${c.name}: one Content-Length at most, got ${JSON.stringify(lengths)}`);
      if (c.sameLengthAsGet) assert.equal(head.headers.get('content-length'), String(await getLength(c)), `${c.name}: the GET's Content-Length`);
      if (c.status === 304) assert.equal(head.headers.get('content-length'), undefined, '304: no Content-Length');
    }
    assert.equal(conn.isClosed(), false, 'the connection stays open');
  } finally {
    conn.destroy();
  }
}

test('a HEAD that fails (404, 400, 412, 416, 401, unknown route) has no body: the next GET on the connection answers 200', BOUNDED, async () => {
  await checkCases(FAILING);
});

test('a HEAD that succeeds (blob 200/206/304, /v1/status, /v1/keys, /v1/scan, /metrics) keeps the connection for the next GET', BOUNDED, async () => {
  await checkCases(SUCCEEDING);
});

test('HEAD is answered wherever GET is (no 405 for HEAD)', BOUNDED, async () => {
  for (const path of ['/v1/status', '/v1/keys', '/v1/scan', '/metrics', '/v1/blobs/k']) {
    const res = await fetch(`${base}${path}`, { method: 'HEAD', headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200, path);
  }
});

test('Python requests and http.client: HEAD 404 then GET 200 on one connection', BOUNDED, () => {
  const script = `
import http.client, sys, requests
port, token = int(sys.argv[1]), sys.argv[2]
auth = {'Authorization': 'Bearer ' + token}
s = requests.Session()
for _ in range(3):
    h = s.head('http://127.0.0.1:%d/v1/blobs/missing' % port, headers=auth, timeout=10)
    assert h.status_code == 404, h.status_code
    assert h.content == b'', h.content
    g = s.get('http://127.0.0.1:%d/v1/blobs/k' % port, headers=auth, timeout=10)
    assert g.status_code == 200 and g.content == b'${VALUE}', (g.status_code, g.content)
c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
c.connect()
sock = c.sock
for path, want in [('/nothing', 404), ('/v1/blobs/%zz', 400), ('/v1/status', 200)]:
    c.request('HEAD', path, headers=auth)
    r = c.getresponse()
    assert r.status == want and r.read() == b'', (path, r.status)
    c.request('GET', '/v1/blobs/k', headers=auth)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b'${VALUE}', (path, r.status)
    assert c.sock is sock, 'http.client had to open a new connection'
print('ok')
`;
  const run = spawnSync('python3', ['-c', script, String(m.httpPort), TOKEN], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, `python3 failed: ${run.stderr}${run.stdout}`);
  assert.equal(run.stdout.trim(), 'ok');
});
