// Blob metadata and integrity end to end (issue 10, items 2 and 4), against real masters started
// here: the representation headers and X-Brise-Meta-* a PUT sends come back on GET and HEAD
// (curl, fetch, a browser showing an uploaded PNG), across a restart and a COMPACT; the ETag is
// derived from the content (the same bytes give the same ETag whichever key, front end or time
// stored them); a PUT whose bytes do not match its Content-MD5, Repr-Digest / Digest or
// X-Brise-Checksum-CRC32C commits nothing (400 BAD_DIGEST) and its bytes count as garbage.
// Owns: the masters it starts (stopped by PID in `after`), the Chromium it starts, temp dirs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startHttpMaster, startMaster, stopAll, tempDir, type MasterProcess } from './helpers/master_process.js';
import { startChromium, stopAllChromium } from './helpers/chromium.js';

const BOUNDED = { timeout: 60_000 };
const run = promisify(execFile);

let m: MasterProcess;
let base = '';

before(async () => ({ m, base } = await startHttpMaster()));

after(async () => {
  await stopAllChromium();
  await stopAll();
});

const blob = (key: string, at = base): string => `${at}/v1/blobs/${key}`;
const sha256 = (b: Buffer | string): Buffer => createHash('sha256').update(b).digest();
const md5 = (b: Buffer | string): Buffer => createHash('md5').update(b).digest();

async function put(key: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(blob(key), { method: 'PUT', body, headers, signal: AbortSignal.timeout(10_000) });
}

async function garbage(): Promise<number> {
  const res = await fetch(`${base}/v1/status`, { signal: AbortSignal.timeout(5000) });
  return ((await res.json()) as { volumes: { garbage_bytes: number }[] }).volumes.reduce((a, v) => a + v.garbage_bytes, 0);
}

const STORED = {
  'Content-Type': 'image/png',
  'Content-Disposition': 'attachment; filename="cat.png"',
  'Content-Encoding': 'identity',
  'Content-Language': 'en-GB',
  'Cache-Control': 'public, max-age=3600',
  Expires: 'Thu, 01 Dec 2033 16:00:00 GMT',
};

// ---- metadata ---------------------------------------------------------------------------------

test('curl: the representation headers and X-Brise-Meta-* of a PUT come back on GET and HEAD', BOUNDED, async () => {
  const args = ['-s', '-X', 'PUT', '--data-binary', 'pixels', '-w', '%{http_code}'];
  for (const [name, value] of Object.entries(STORED)) args.push('-H', `${name}: ${value}`);
  args.push('-H', 'X-Brise-Meta-Camera: Leica M6', '-H', 'x-brise-meta-ROLL: 12', blob('meta/curl'));
  const { stdout } = await run('curl', args, { timeout: 10_000 });
  assert.ok(stdout.endsWith('201'), stdout);
  for (const method of ['GET', 'HEAD']) {
    const res = await fetch(blob('meta/curl'), { method });
    assert.equal(res.status, 200);
    for (const [name, value] of Object.entries(STORED)) assert.equal(res.headers.get(name), value, `${method} ${name}`);
    assert.equal(res.headers.get('x-brise-meta-camera'), 'Leica M6');
    assert.equal(res.headers.get('x-brise-meta-roll'), '12', 'names are stored lower case, as HTTP compares them');
    assert.equal(res.headers.get('etag'), `"${sha256('pixels').subarray(0, 16).toString('hex')}"`);
    assert.equal(res.headers.get('repr-digest'), `sha-256=:${sha256('pixels').toString('base64')}:`);
    if (method === 'GET') assert.equal(await res.text(), 'pixels');
  }
  // Without a Content-Type (curl -T sends none), the store answers application/octet-stream.
  const dir = tempDir('brisedb-meta-');
  fs.writeFileSync(path.join(dir, 'f'), 'plain bytes');
  await run('curl', ['-s', '-T', path.join(dir, 'f'), blob('meta/none')], { timeout: 10_000 });
  const res = await fetch(blob('meta/none'));
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
});

test('fetch: metadata round-trips with Range and 304; a chunked upload keeps its metadata too', BOUNDED, async () => {
  const body = Buffer.from('0123456789');
  assert.equal((await put('meta/fetch', body, { 'Content-Type': 'text/csv; charset=utf-8', 'X-Brise-Meta-Source': 'sensor-7' })).status, 201);
  const part = await fetch(blob('meta/fetch'), { headers: { Range: 'bytes=2-4' } });
  assert.equal(part.status, 206);
  assert.equal(await part.text(), '234');
  assert.equal(part.headers.get('content-type'), 'text/csv; charset=utf-8');
  assert.equal(part.headers.get('x-brise-meta-source'), 'sensor-7');
  const etag = part.headers.get('etag')!;
  const again = await fetch(blob('meta/fetch'), { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get('x-brise-meta-source'), 'sensor-7', 'a 304 carries what the 200 would');
  const stream = new ReadableStream({ start(c) { c.enqueue(new Uint8Array(4 * 1024 * 1024).fill(9)); c.close(); } });
  const init = { method: 'PUT', body: stream, duplex: 'half', headers: { 'Content-Type': 'application/x-ndjson', 'X-Brise-Meta-Rows': '4' } };
  assert.equal((await fetch(blob('meta/chunked'), init as RequestInit)).status, 201);
  const got = await fetch(blob('meta/chunked'), { method: 'HEAD' });
  assert.equal(got.headers.get('content-type'), 'application/x-ndjson');
  assert.equal(got.headers.get('x-brise-meta-rows'), '4');
  assert.equal(got.headers.get('content-length'), String(4 * 1024 * 1024));
});

test('metadata is bounded: too many, too long or non-ASCII user metadata is 400 BAD_METADATA, nothing stored', BOUNDED, async () => {
  const many: Record<string, string> = {};
  for (let i = 0; i < 33; i++) many[`X-Brise-Meta-K${i}`] = 'v';
  const long = { 'X-Brise-Meta-Big': 'x'.repeat(2100) };
  const type = { 'Content-Type': 'a'.repeat(1100) };
  for (const headers of [many, long, type]) {
    const res = await put('meta/bad', 'v', headers);
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { code: string }).code, 'BAD_METADATA');
  }
  assert.equal((await fetch(blob('meta/bad'))).status, 404);
});

// ---- the content ETag -----------------------------------------------------------------------------

test('the ETag is derived from the content: same bytes, same ETag, whichever key, front end or time', BOUNDED, async () => {
  const a = await put('etag/a', 'same bytes');
  const b = await put('etag/b', 'same bytes', { 'Content-Type': 'text/plain' });
  const c = await put('etag/c', 'other bytes');
  const tag = (r: Response): string => r.headers.get('etag')!;
  assert.equal(tag(a), tag(b));
  assert.notEqual(tag(a), tag(c));
  // Rewritten later with the same bytes: the same ETag (a cache keeps its copy).
  assert.equal(tag(await put('etag/a', 'same bytes')), tag(a));
  // Written over TCP (no metadata in its needle): the ETag GET gives is computed from the bytes.
  const r = new Redis({ port: m.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    await r.set('etag/tcp', 'same bytes');
  } finally {
    r.disconnect();
  }
  const viaTcp = await fetch(blob('etag/tcp'));
  assert.equal(viaTcp.headers.get('etag'), tag(a));
  assert.equal(viaTcp.headers.get('repr-digest'), `sha-256=:${sha256('same bytes').toString('base64')}:`);
  // Compare-and-set with it: the current ETag passes, a stale one is 412.
  assert.equal((await put('etag/a', 'v2', { 'If-Match': tag(a) })).status, 201);
  assert.equal((await put('etag/a', 'v3', { 'If-Match': tag(a) })).status, 412);
  assert.equal(await (await fetch(blob('etag/a'))).text(), 'v2');
});

// ---- digests ----------------------------------------------------------------------------------------

test('Content-MD5, Repr-Digest, Digest and X-Brise-Checksum-CRC32C: checked before commit, mismatch is 400 BAD_DIGEST', BOUNDED, async () => {
  const body = '123456789';
  // CRC-32C("123456789") is 0xE3069283, the check value of the Castagnoli CRC.
  const crc = Buffer.from([0xe3, 0x06, 0x92, 0x83]).toString('base64');
  const good: Record<string, string>[] = [
    { 'Content-MD5': md5(body).toString('base64') },
    { 'Repr-Digest': `sha-256=:${sha256(body).toString('base64')}:` },
    { 'Content-Digest': `sha-256=:${sha256(body).toString('base64')}:` },
    { Digest: `SHA-256=${sha256(body).toString('base64')}` },
    { 'X-Brise-Checksum-CRC32C': crc },
  ];
  for (const headers of good) {
    const res = await put('digest/ok', body, headers);
    assert.equal(res.status, 201, JSON.stringify(headers));
  }
  const stored = await fetch(blob('digest/ok'));
  assert.equal(stored.headers.get('x-brise-checksum-crc32c'), crc, 'the checksum named is given back');
  assert.equal(await stored.text(), body);
  const bad: Record<string, string>[] = [
    { 'Content-MD5': md5('other').toString('base64') },
    { 'Repr-Digest': `sha-256=:${sha256('other').toString('base64')}:` },
    { Digest: `sha-256=${sha256('other').toString('base64')}` },
    { 'X-Brise-Checksum-CRC32C': Buffer.from([0, 0, 0, 1]).toString('base64') },
  ];
  for (const headers of bad) {
    const before = await garbage();
    const res = await put('digest/ok', 'tampered', headers);
    assert.equal(res.status, 400, JSON.stringify(headers));
    assert.equal(((await res.json()) as { code: string }).code, 'BAD_DIGEST');
    assert.equal(await (await fetch(blob('digest/ok'))).text(), body, 'nothing committed');
    assert.ok((await garbage()) > before, 'the bytes written for it are counted as garbage');
  }
  const malformed = await put('digest/ok', body, { 'Content-MD5': 'not base64!' });
  assert.equal(malformed.status, 400);
  assert.equal(((await malformed.json()) as { code: string }).code, 'BAD_DIGEST');
  // A chunked body whose digest is wrong: nothing committed either.
  const stream = new ReadableStream({ start(c) { c.enqueue(new Uint8Array(5 * 1024 * 1024).fill(1)); c.close(); } });
  const init = { method: 'PUT', body: stream, duplex: 'half', headers: { 'Repr-Digest': `sha-256=:${sha256('x').toString('base64')}:` } };
  const chunked = await fetch(blob('digest/chunked'), init as RequestInit);
  assert.equal(chunked.status, 400);
  assert.equal((await fetch(blob('digest/chunked'))).status, 404);
});

// ---- durability of metadata ---------------------------------------------------------------------

test('metadata survives a restart and a COMPACT (WAL, index and snapshot carry it)', { timeout: 90_000 }, async () => {
  const own = await startMaster({ http: true });
  const at = `http://127.0.0.1:${own.httpPort}`;
  const res = await fetch(blob('durable/photo', at), { method: 'PUT', body: 'image bytes', headers: { 'Content-Type': 'image/jpeg', 'X-Brise-Meta-Album': 'summer' } });
  assert.equal(res.status, 201);
  const etag = res.headers.get('etag');
  const dataDir = own.dataDir;
  assert.equal(await own.stop(), 0);
  const again = await startMaster({ http: true, dataDir });
  const check = async (port: number): Promise<void> => {
    const got = await fetch(blob('durable/photo', `http://127.0.0.1:${port}`));
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'image/jpeg');
    assert.equal(got.headers.get('x-brise-meta-album'), 'summer');
    assert.equal(got.headers.get('etag'), etag);
    assert.equal(await got.text(), 'image bytes');
  };
  await check(again.httpPort);
  const r = new Redis({ port: again.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    assert.equal(await r.call('COMPACT'), 'OK');
    // Read over TCP: the value alone, without its metadata.
    assert.equal(await r.get('durable/photo'), 'image bytes');
  } finally {
    r.disconnect();
  }
  assert.equal(await again.stop(), 0);
  const third = await startMaster({ http: true, dataDir });
  await check(third.httpPort);
  await third.stop();
});

// ---- a browser ------------------------------------------------------------------------------------

/** A PNG of w × h pixels, RGB, made by hand (filter 0 on each scanline). */
function png(w: number, h: number, pixel: (x: number, y: number) => [number, number, number]): Buffer {
  const crcTable = new Int32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  const crc = (b: Buffer): number => {
    let c = -1;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ -1) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) raw.set(pixel(x, y), y * (1 + 3 * w) + 1 + 3 * x);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

test('headless Chromium shows a PNG uploaded with Content-Type: image/png, pixel for pixel', { timeout: 60_000 }, async () => {
  const colour = (x: number, y: number): [number, number, number] => (x < 8 ? [255, 0, 0] : y < 8 ? [0, 255, 0] : [0, 0, 255]);
  const image = png(16, 16, colour);
  assert.equal((await put('browser/logo.png', image, { 'Content-Type': 'image/png' })).status, 201);
  // The same bytes without a type: a browser would not take them for an image.
  assert.equal((await put('browser/untyped', image)).status, 201);
  const browser = await startChromium();
  try {
    const page = await browser.newPage(200, 200);
    await page.navigate(blob('browser/logo.png'));
    // Opened directly, the URL is an image document: its <img> is the uploaded picture. Its
    // pixels are read back through a canvas (same origin, so not tainted).
    const pixels = await page.waitFor<number[] | null>(`(() => {
      const img = document.querySelector('img');
      if (!img || !img.complete || img.naturalWidth === 0) return null;
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const g = c.getContext('2d'); g.drawImage(img, 0, 0);
      return [img.naturalWidth, img.naturalHeight, ...g.getImageData(0, 0, c.width, c.height).data];
    })()`, 15_000);
    assert.ok(pixels !== null);
    assert.deepEqual(pixels.slice(0, 2), [16, 16]);
    for (const [x, y] of [[0, 0], [7, 15], [8, 0], [15, 7], [8, 8], [15, 15]] as const) {
      const at = 2 + (y * 16 + x) * 4;
      assert.deepEqual(pixels.slice(at, at + 3), colour(x, y), `pixel (${x}, ${y})`);
    }
    // application/octet-stream is a download to a browser, not a page: the navigation is aborted.
    await assert.rejects(page.navigate(blob('browser/untyped')), /ERR_ABORTED/);
    await page.close();
  } finally {
    await browser.close();
  }
});
