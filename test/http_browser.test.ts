// The HTTP API from a real browser (issue 10: "CORS preflight and a cross-origin fetch from a
// page served on another port, in headless Chromium"). A master runs with a token and
// --http-cors-origins naming one page server; a node:http server serves the same page on two
// ports (one allowed, one not). Headless Chromium (Debian's package, test/helpers/chromium.ts)
// loads the page, whose script does a PUT with Authorization (which forces a preflight), a
// ranged GET reading exposed headers, a GET of a signed URL and a WebSocket on a signed URL,
// and writes what it saw into the DOM; the test reads the DOM back.
// Owns: the master, the page server and the browser it starts (each stopped in `after`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { startChromium, stopAllChromium, type Chromium } from './helpers/chromium.js';
import { signUrl } from '../src/client/sign_url.js';

const BOUNDED = { timeout: 90_000 };
const TOKEN = 'browser-token-5';

let m: MasterProcess;
let browser: Chromium;
const pages: http.Server[] = [];
let allowedOrigin = '';
let foreignOrigin = '';

/** The page: its script reports into #result as JSON, then sets the title to 'done'. */
function pageHtml(master: string, key: string, signedGet: string, signedWs: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>running</title></head><body><pre id="result"></pre>
<script>
(async () => {
  const out = {};
  const base = ${JSON.stringify(master)};
  try {
    const put = await fetch(base + '/v1/blobs/' + ${JSON.stringify(key)}, {
      method: 'PUT', body: 'hello from chromium', headers: { Authorization: 'Bearer ${TOKEN}', 'Content-Type': 'text/plain' },
    });
    out.putStatus = put.status;
    out.putEtag = put.headers.get('ETag');
    const get = await fetch(base + '/v1/blobs/' + ${JSON.stringify(key)}, { headers: { Authorization: 'Bearer ${TOKEN}', Range: 'bytes=6-9' } });
    out.getStatus = get.status;
    out.getBody = await get.text();
    out.contentRange = get.headers.get('Content-Range');
    out.size = get.headers.get('X-Brise-Size');
    out.etag = get.headers.get('ETag');
  } catch (e) {
    out.fetchError = String(e);
  }
  try {
    const signed = await fetch(base + ${JSON.stringify(signedGet)});
    out.signedStatus = signed.status;
    out.signedBody = await signed.text();
  } catch (e) {
    out.signedError = String(e);
  }
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(base.replace('http:', 'ws:') + ${JSON.stringify(signedWs)});
    const timer = setTimeout(() => resolve('timeout'), 5000);
    ws.onopen = () => { clearTimeout(timer); ws.close(); resolve('open'); };
    ws.onerror = () => { clearTimeout(timer); resolve('error'); };
  });
  document.getElementById('result').textContent = JSON.stringify(out);
  document.title = 'done';
})();
</script></body></html>`;
}

async function listenPage(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  pages.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

before(async () => {
  // The page servers first: the master must know the allowed origin when it starts.
  const serve: http.RequestListener = (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const master = `http://127.0.0.1:${m.httpPort}`;
    const key = url.searchParams.get('key') ?? 'browser/none';
    const body = pageHtml(master, key, signUrl(TOKEN, 'GET', 'browser/signed', 300), signUrl(TOKEN, 'WS', '/v1/subscribe?channels=browser', 300));
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(body);
  };
  allowedOrigin = await listenPage(serve);
  foreignOrigin = await listenPage(serve);
  m = await startMaster({ http: true, args: ['--http-token', TOKEN, '--http-cors-origins', allowedOrigin] });
  const put = await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/browser/signed`, {
    method: 'PUT', body: 'signed for the page', headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000),
  });
  assert.equal(put.status, 201);
  browser = await startChromium();
});

after(async () => {
  await stopAllChromium();
  for (const s of pages) s.closeAllConnections();
  await Promise.all(pages.map((s) => new Promise((r) => s.close(r))));
  await stopAll();
});

async function runPage(origin: string, key: string): Promise<Record<string, unknown>> {
  const page = await browser.newPage();
  try {
    await page.navigate(`${origin}/?key=${encodeURIComponent(key)}`, 20_000);
    await page.waitFor<boolean>('document.title === "done"', 30_000);
    return JSON.parse(await page.evaluate<string>('document.getElementById("result").textContent')) as Record<string, unknown>;
  } finally {
    await page.close();
  }
}

async function stored(key: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/${key}`, { headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text() };
}

test('a page from an allowed origin: preflighted PUT, ranged GET with exposed headers, signed GET and WebSocket', BOUNDED, async () => {
  const out = await runPage(allowedOrigin, 'browser/allowed.txt');
  assert.equal(out.fetchError, undefined, JSON.stringify(out));
  assert.equal(out.putStatus, 201);
  assert.match(String(out.putEtag), /^"/, 'ETag is exposed to the page');
  assert.equal(out.getStatus, 206);
  assert.equal(out.getBody, 'from');
  assert.equal(out.contentRange, 'bytes 6-9/19');
  assert.equal(out.size, '19');
  assert.equal(out.etag, out.putEtag);
  assert.equal(out.signedStatus, 200);
  assert.equal(out.signedBody, 'signed for the page');
  assert.equal(out.ws, 'open');
  assert.deepEqual(await stored('browser/allowed.txt'), { status: 200, body: 'hello from chromium' });
});

test('a page from an origin not allowed: the preflight fails, nothing is stored, the WebSocket is refused', BOUNDED, async () => {
  const out = await runPage(foreignOrigin, 'browser/foreign.txt');
  assert.match(String(out.fetchError), /TypeError: Failed to fetch/, JSON.stringify(out));
  assert.equal(out.putStatus, undefined);
  // A plain GET needs no preflight and reaches the server, but the page may not read it.
  assert.match(String(out.signedError), /TypeError: Failed to fetch/);
  assert.equal(out.ws, 'error');
  assert.equal((await stored('browser/foreign.txt')).status, 404);
});

test('the browser helper takes screenshots (PNG) of what a page shows', BOUNDED, async () => {
  const page = await browser.newPage(64, 48);
  try {
    await page.navigate('data:text/html,<body style="margin:0;background:rgb(255,0,0)"></body>');
    const png = await page.screenshot();
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.readUInt32BE(16), 64, 'width');
    assert.equal(png.readUInt32BE(20), 48, 'height');
  } finally {
    await page.close();
  }
});
