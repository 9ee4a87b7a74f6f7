// BriseDB behind Debian's nginx (issue 10, item 6): nginx runs the site config the README shows
// (docs/nginx-brisedb.conf, only its listen and upstream addresses changed) in front of a real
// master, and the blob API, a chunked PUT and the WebSocket routes are used through it with
// fetch, node:http, raw sockets and `ws`. The same config in front of a small recording server
// shows what nginx passes on (HTTP/1.1, Host, X-Forwarded-For, kept-alive upstream connections,
// bodies streamed both ways, Expect answered by nginx itself). A naive config (nginx's default HTTP/1.0 to the upstream) pins
// what a misconfigured proxy gets: uWebSockets.js answers HTTP/1.0 with its own fixed 505
// before any route runs (docs/http.md, "Behind a reverse proxy").
// Owns: the master, nginx and the recording server it starts (stopped by PID / closed in
// `after`), their temp dirs, every client. Every wait is bounded. nginx missing is a failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket } from 'ws';
import {
  freePort, patternChunks, rawConnect, resp, sha256Of, sleep, startMaster, stopAll, streamRequest, within,
  type MasterProcess,
} from './helpers/master_process.js';
import { README, SITE_CONF, siteConfig, startNginx, stopAllNginx, type NginxProcess } from './helpers/nginx.js';

/** What the recorder's /flood answers: more than socket buffers can hold in flight. */
const FLOOD_BYTES = 64 * 1024 * 1024;
/** Generous: nginx, a master and others' tests share two cores. */
const BOUNDED = { timeout: 60_000 };
const MB = 1024 * 1024;
/** uWebSockets.js's answer to anything but HTTP/1.1, byte for byte (its HttpErrors.h). */
const UWS_505 = 'HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\r\n'
  + '<h1>HTTP Version Not Supported</h1><p>This server does not support HTTP/1.0.</p><hr><i>uWebSockets/20 Server</i>';

let m: MasterProcess;
let ngx: NginxProcess;
let recorder: Recorder;
/** nginx's ports: the shipped config in front of the master, of the recorder, of a dead port; a naive config. */
let proxied = 0;
let toRecorder = 0;
let toNothing = 0;
let naive = 0;

before(async () => {
  m = await startMaster({ http: true });
  recorder = await startRecorder();
  const dead = await freePort();
  ngx = await startNginx([
    { name: 'brisedb', config: (p) => siteConfig(p, m.httpPort, 'brisedb') },
    { name: 'recorder', config: (p) => siteConfig(p, recorder.port, 'recorder') },
    { name: 'nothing', config: (p) => siteConfig(p, dead, 'nothing') },
    { name: 'naive', config: (p) => naiveConfig(p, m.httpPort) },
  ]);
  proxied = ngx.ports.brisedb!;
  toRecorder = ngx.ports.recorder!;
  toNothing = ngx.ports.nothing!;
  naive = ngx.ports.naive!;
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  await stopAllNginx();
  await recorder?.close();
  await stopAll();
});

/** What a user writes without reading the README: nginx's defaults (proxy_http_version 1.0). */
function naiveConfig(listenPort: number, upstreamPort: number): string {
  return `server {
    listen 127.0.0.1:${listenPort};
    client_max_body_size 0;
    location / {
        proxy_pass http://127.0.0.1:${upstreamPort};
    }
}
`;
}

const url = (port: number, path: string): string => `http://127.0.0.1:${port}${path}`;

async function json(res: Response): Promise<Record<string, unknown>> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, 'a JSON body');
  return (await res.json()) as Record<string, unknown>;
}

function fetchVia(port: number, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url(port, path), { ...init, signal: AbortSignal.timeout(15_000) });
}

// ---- the config the README shows is the one tested ----------------------------------------

test('the README shows docs/nginx-brisedb.conf verbatim under "Behind nginx"', () => {
  const readme = fs.readFileSync(README, 'utf8');
  const section = /^## Behind nginx\n([\s\S]*?)(?=^## )/m.exec(readme);
  assert.ok(section !== null, 'README has a "## Behind nginx" section');
  const block = /```nginx\n([\s\S]*?)```/.exec(section[1]!);
  assert.ok(block !== null, 'the section holds an ```nginx block');
  assert.equal(block[1], fs.readFileSync(SITE_CONF, 'utf8'), 'the README block and docs/nginx-brisedb.conf differ');
});

// ---- the blob API through nginx ------------------------------------------------------------

test('PUT (Content-Length), GET, Range, HEAD, DELETE and a 404 through nginx', BOUNDED, async () => {
  const key = 'nginx/small';
  const body = randomBytes(64 * 1024);
  const created = await fetchVia(proxied, `/v1/blobs/${key}`, { method: 'PUT', body });
  assert.equal(created.status, 201);
  const etag = created.headers.get('etag');
  assert.match(etag ?? '', /^"[^"]+"$/, 'a strong ETag');
  assert.deepEqual(await json(created), { key, size: body.length, etag });

  const got = await fetchVia(proxied, `/v1/blobs/${key}`);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('etag'), etag);
  assert.equal(got.headers.get('accept-ranges'), 'bytes');
  assert.ok(Buffer.from(await got.arrayBuffer()).equals(body), 'the body read back through nginx');

  const part = await fetchVia(proxied, `/v1/blobs/${key}`, { headers: { range: 'bytes=1000-1999' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 1000-1999/${body.length}`);
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(body.subarray(1000, 2000)), 'the range through nginx');

  const head = await fetchVia(proxied, `/v1/blobs/${key}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('etag'), etag);
  assert.equal(head.headers.get('x-brise-size'), String(body.length));
  assert.equal((await head.arrayBuffer()).byteLength, 0, 'HEAD has no body');

  const deleted = await fetchVia(proxied, `/v1/blobs/${key}`, { method: 'DELETE' });
  assert.equal(deleted.status, 204);
  const missing = await fetchVia(proxied, `/v1/blobs/${key}`);
  assert.equal(missing.status, 404);
  assert.equal((await json(missing)).code, 'NOT_FOUND');
});

test('keys reach the master as sent: %2F, .. and // are not rewritten by nginx', BOUNDED, async () => {
  // node:http sends the path as written (fetch would normalise '..' away).
  for (const [path, key] of [['a%2Fb%20c', 'a/b c'], ['x/../y', 'x/../y'], ['%2E%2E/z', '../z'], ['dir//double', 'dir//double']] as const) {
    const put = await streamRequest({ method: 'PUT', port: proxied, path: `/v1/blobs/nginx/${path}`, headers: { 'content-length': '2' }, body: toChunks('ok'), keep: true });
    assert.equal(put.status, 201, put.body.toString());
    assert.equal((JSON.parse(put.body.toString()) as { key: string }).key, `nginx/${key}`);
  }
});

async function* toChunks(text: string): AsyncGenerator<Buffer> {
  yield Buffer.from(text);
}

test('an 8 MB PUT streamed through nginx, read back equal by SHA-256', BOUNDED, async () => {
  const size = 8 * MB;
  const path = '/v1/blobs/nginx/eight';
  const put = await streamRequest({
    method: 'PUT', port: proxied, path, headers: { 'content-length': String(size) }, body: patternChunks(81, size), keep: true,
  });
  assert.equal(put.status, 201, put.body.toString());
  const got = await streamRequest({ method: 'GET', port: proxied, path });
  assert.equal(got.status, 200);
  assert.equal(got.length, size);
  assert.equal(got.sha256, await sha256Of(patternChunks(81, size)));
});

test('a chunked PUT (no Content-Length) through nginx is stored', BOUNDED, async () => {
  const size = MB + 1;
  const path = '/v1/blobs/nginx/chunked';
  // node:http sends a PUT body of unknown length as Transfer-Encoding: chunked; nginx
  // (proxy_http_version 1.1, proxy_request_buffering off) passes it on chunked.
  const put = await streamRequest({ method: 'PUT', port: proxied, path, body: patternChunks(82, size), keep: true });
  assert.equal(put.status, 201, put.body.toString());
  const got = await streamRequest({ method: 'GET', port: proxied, path });
  assert.equal(got.status, 200);
  assert.equal(got.sha256, await sha256Of(patternChunks(82, size)));
});

test('an HTTP/1.0 client is served through nginx (nginx speaks 1.1 to the master)', BOUNDED, async () => {
  const put = await fetchVia(proxied, '/v1/blobs/nginx/old-client', { method: 'PUT', body: 'from HTTP/1.0' });
  assert.equal(put.status, 201);
  const conn = await rawConnect(proxied);
  try {
    conn.send('GET /v1/blobs/nginx/old-client HTTP/1.0\r\n\r\n');
    await conn.closed(10_000);
    const text = conn.received().toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(text.endsWith('\r\n\r\nfrom HTTP/1.0'), JSON.stringify(text));
  } finally {
    conn.destroy();
  }
});

// ---- WebSockets through nginx ---------------------------------------------------------------

const sockets: WebSocket[] = [];

async function openWs(path: string): Promise<{ ws: WebSocket; frames: Array<{ data: Buffer; binary: boolean }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${proxied}${path}`);
  sockets.push(ws);
  const frames: Array<{ data: Buffer; binary: boolean }> = [];
  ws.on('message', (data: Buffer, binary: boolean) => frames.push({ data, binary }));
  ws.on('error', () => undefined);
  await within(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  }), 10_000, `the WebSocket ${path} through nginx`);
  return { ws, frames };
}

async function nextJson(
  frames: Array<{ data: Buffer; binary: boolean }>, pred: (f: Record<string, unknown>) => boolean, what: string,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const found = frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString()) as Record<string, unknown>).find(pred);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${frames.map((f) => f.data.toString()).join(' ')}`);
    await sleep(10);
  }
}

test('a WebSocket subscription through nginx receives a TCP PUBLISH', BOUNDED, async () => {
  const { ws, frames } = await openWs('/v1/subscribe?channels=nginx-news');
  await nextJson(frames, (f) => f.op === 'subscribed', 'the subscription');
  const tcp = await rawConnect(m.port);
  try {
    tcp.send(resp('PUBLISH', 'nginx-news', 'through the proxy'));
    assert.equal(await tcp.until((t) => t.endsWith('\r\n'), 5000, 'PUBLISH'), ':1\r\n', 'one receiver: the socket behind nginx');
  } finally {
    tcp.destroy();
  }
  assert.deepEqual(await nextJson(frames, (f) => f.channel === 'nginx-news', 'the message'), { channel: 'nginx-news', payload: 'through the proxy' });
  ws.close();
});

test('the WAL stream through nginx carries a PUT made through nginx', BOUNDED, async () => {
  const { ws, frames } = await openWs('/v1/wal?format=json');
  const put = await fetchVia(proxied, '/v1/blobs/nginx/walled', { method: 'PUT', body: 'logged' });
  assert.equal(put.status, 201);
  const record = await nextJson(frames, (f) => Array.isArray(f.ops) && (f.ops as Array<Record<string, unknown>>).some((o) => o.key === 'nginx/walled'), 'the WAL record');
  assert.equal(typeof record.lsn, 'number');
  ws.close();
});

// ---- what the shipped config makes nginx send upstream ------------------------------------

test('nginx passes on HTTP/1.1, Host, X-Forwarded-For and keeps the upstream connection alive', BOUNDED, async () => {
  recorder.seen.length = 0;
  for (let i = 0; i < 3; i++) {
    // A fresh client connection each time: only nginx's upstream pool can reuse a connection.
    const r = await streamRequest({ method: 'GET', port: toRecorder, path: `/hello/${i}`, headers: { host: 'blobs.example.com' } });
    assert.equal(r.status, 200);
  }
  assert.equal(recorder.seen.length, 3);
  for (const s of recorder.seen) {
    assert.equal(s.httpVersion, '1.1');
    assert.equal(s.headers.host, 'blobs.example.com');
    assert.equal(s.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(s.headers['x-forwarded-proto'], 'http');
    assert.equal(s.headers.connection, undefined, 'no "Connection: close" to the upstream');
  }
  assert.equal(new Set(recorder.seen.map((s) => s.socket)).size, 1, 'the three requests came on one upstream connection');
});

test('nginx streams a chunked request body and a response as they come (no buffering)', BOUNDED, async () => {
  recorder.seen.length = 0;
  const req = http.request({ host: '127.0.0.1', port: toRecorder, method: 'PUT', path: '/stream', agent: false });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  req.write('first part;');
  // The recorder gets the first part while the client still holds the rest back.
  await until(() => recorder.seen[0]?.body === 'first part;', 'the first part upstream before the request ends');
  req.end('second part');
  const res = await within(response, 10_000, 'the response head');
  const received: string[] = [];
  res.on('data', (d: Buffer) => received.push(d.toString()));
  // The recorder sent its first line and holds the rest: the client has it before the end.
  await until(() => received.join('').startsWith('partial;'), 'the first part of the response before it ends');
  recorder.release();
  await within(once(res, 'end'), 10_000, 'the end of the response');
  const seen = recorder.seen[0]!;
  assert.equal(seen.headers['transfer-encoding'], 'chunked', 'the chunked body went upstream chunked');
  assert.equal(seen.headers['content-length'], undefined);
  assert.equal(seen.body, 'first part;second part');
  assert.equal(received.join(''), `partial;${JSON.stringify({ body: 'first part;second part' })}`);
});

test('nginx answers Expect: 100-continue itself and does not pass it on', BOUNDED, async () => {
  recorder.seen.length = 0;
  const conn = await rawConnect(toRecorder);
  try {
    conn.send('PUT /expect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
    assert.equal(await conn.until((t) => t.includes('\r\n\r\n'), 5000, 'the 100'), 'HTTP/1.1 100 Continue\r\n\r\n');
    conn.send('body');
    assert.match(await conn.until((t) => t.endsWith('ok'), 5000, 'the answer'), /HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  } finally {
    conn.destroy();
  }
  assert.equal(recorder.seen.length, 1);
  assert.equal(recorder.seen[0]!.headers.expect, undefined, 'Expect is not passed upstream');
  assert.equal(recorder.seen[0]!.body, 'body');
});

test('a client that stops reading holds the upstream back: nginx does not spool the response', BOUNDED, async () => {
  const req = http.request({ host: '127.0.0.1', port: toRecorder, method: 'GET', path: '/flood', agent: false });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  req.end();
  const res = await within(response, 10_000, 'the response head');
  res.pause();
  // Wait until the recorder can hand out no more (its writes wait for 'drain'), bounded.
  const deadline = Date.now() + 10_000;
  for (let last = -1; recorder.flooded() !== last && Date.now() < deadline; ) {
    last = recorder.flooded();
    await sleep(500);
  }
  const heldAt = recorder.flooded();
  // Socket buffers on two loopback hops hold a few MB; proxy_buffering on would let nginx take
  // all 64 MB into its temp files at once.
  assert.ok(heldAt < FLOOD_BYTES / 2, `the upstream wrote ${(heldAt / MB).toFixed(1)} MB to a client that reads nothing`);
  let received = 0;
  res.on('data', (d: Buffer) => (received += d.length));
  res.resume();
  await within(once(res, 'end'), 30_000, 'the rest of the response');
  assert.equal(received, FLOOD_BYTES);
});

test('a master that is not there: 502 as JSON, not nginx\'s HTML', BOUNDED, async () => {
  const res = await fetchVia(toNothing, '/v1/blobs/anything');
  assert.equal(res.status, 502);
  assert.equal((await json(res)).code, 'UPSTREAM_UNAVAILABLE');
});

// ---- HTTP/1.0 to the master: what a misconfigured proxy gets -------------------------------

test('uWebSockets.js answers HTTP/1.0 itself, before any route: its fixed 505, then it closes', BOUNDED, async () => {
  // The route /v1/status exists; a request that reached it would be answered 200 JSON.
  const conn = await rawConnect(m.httpPort);
  try {
    conn.send('GET /v1/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n');
    await conn.closed(5000);
    assert.equal(conn.received().toString('latin1'), UWS_505);
  } finally {
    conn.destroy();
  }
});

test('nginx without proxy_http_version 1.1: GET and HEAD get 505, a PUT 505 or 502, nothing stored', BOUNDED, async () => {
  const get = await fetchVia(naive, '/v1/status');
  assert.equal(get.status, 505);
  assert.equal(await get.text(), UWS_505.slice(UWS_505.indexOf('<h1>')), 'uWS\'s own body, passed on by nginx');
  assert.equal((await fetchVia(naive, '/v1/status', { method: 'HEAD' })).status, 505);
  // A small PUT reaches uWS whole and gets the 505; for a larger one uWS closes while nginx is
  // still sending the body, and nginx answers 502 (writev: broken pipe) or passes the 505 on.
  const small = await fetchVia(naive, '/v1/blobs/nginx/naive-small', { method: 'PUT', body: 'abc' });
  assert.equal(small.status, 505);
  const big = await streamRequest({
    method: 'PUT', port: naive, path: '/v1/blobs/nginx/naive-big', headers: { 'content-length': String(8 * MB) }, body: patternChunks(83, 8 * MB),
  });
  assert.ok(big.status === 502 || big.status === 505, `an 8 MB PUT through the naive proxy: ${big.status}`);
  for (const key of ['naive-small', 'naive-big']) {
    assert.equal((await fetchVia(proxied, `/v1/blobs/nginx/${key}`)).status, 404, `${key} was not stored`);
  }
});

// ---- the recording upstream ------------------------------------------------------------------

interface Seen {
  httpVersion: string;
  headers: http.IncomingHttpHeaders;
  /** The upstream connection it came on (a number per socket). */
  socket: number;
  body: string;
}

interface Recorder {
  port: number;
  seen: Seen[];
  /** Bytes /flood has handed to its socket so far (it waits for 'drain' when they back up). */
  flooded(): number;
  /** Lets a held /stream response finish. */
  release(): void;
  close(): Promise<void>;
}

/**
 * A node:http server that records what nginx sends it. /stream answers its first line at once
 * and the rest only when released, so the test can see whether nginx forwards it before the end;
 * /flood answers FLOOD_BYTES as fast as the connection takes them.
 */
async function startRecorder(): Promise<Recorder> {
  const ids = new WeakMap<Socket, number>();
  const seen: Seen[] = [];
  let releases: Array<() => void> = [];
  let nextId = 1;
  let flooded = 0;
  const flood = (res: http.ServerResponse): void => {
    const chunk = Buffer.alloc(64 * 1024, 0x78);
    const more = (): void => {
      while (flooded < FLOOD_BYTES) {
        flooded += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', more);
          return;
        }
      }
      res.end();
    };
    more();
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/flood') {
      flooded = 0;
      flood(res);
      return;
    }
    if (!ids.has(req.socket)) ids.set(req.socket, nextId++);
    const s: Seen = { httpVersion: req.httpVersion, headers: req.headers, socket: ids.get(req.socket)!, body: '' };
    seen.push(s);
    req.on('data', (d: Buffer) => (s.body += d.toString()));
    req.once('end', () => {
      if (req.url !== '/stream') {
        res.end('ok');
        return;
      }
      res.write('partial;');
      releases.push(() => res.end(JSON.stringify({ body: s.body })));
    });
  });
  server.listen(0, '127.0.0.1');
  await within(once(server, 'listening'), 5000, 'the recorder to listen');
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    flooded: () => flooded,
    release() {
      for (const r of releases) r();
      releases = [];
    },
    async close() {
      for (const r of releases) r();
      server.closeAllConnections();
      server.close();
      await within(once(server, 'close'), 5000, 'the recorder to close');
    },
  };
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}
