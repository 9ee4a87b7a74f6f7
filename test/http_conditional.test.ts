// Black-box tests of conditional requests (RFC 9110 §13) on /v1/blobs/{key} against a real
// master started here, with fetch (undici) and node:http (to see that a 304 has no body).
// Owns: the master it starts (stopped by PID in `after`) and its temp dir.
// Invariants checked: If-Modified-Since → 304 with the 200's validators, in all three date
// forms; If-Unmodified-Since → 412 on GET and DELETE (and a refused DELETE deletes nothing);
// If-Range: a stale, weak or date validator → 200 and the whole current body, the current ETag
// → 206; the order of §13.2.2 (a failing If-Match wins over an If-None-Match that would give
// 304). Every request has its own timeout and every test a bound.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHttpMaster, stopAll, streamRequest, type MasterProcess } from './helpers/master_process.js';

const BOUNDED = { timeout: 30_000 };

let m: MasterProcess;
let base = '';

before(async () => ({ m, base } = await startHttpMaster()));

after(async () => {
  await stopAll();
});

const blob = (key: string): string => `${base}/v1/blobs/${key}`;

function request(key: string, method: string, headers: Record<string, string> = {}, body?: string): Promise<Response> {
  return fetch(blob(key), { method, headers, body, signal: AbortSignal.timeout(10_000) });
}

/** PUT, then the ETag and Last-Modified a GET shows. */
async function store(key: string, body: string): Promise<{ etag: string; lastModified: string }> {
  const put = await request(key, 'PUT', {}, body);
  assert.equal(put.status, 201);
  await put.arrayBuffer();
  const got = await request(key, 'GET');
  assert.equal(got.status, 200);
  assert.equal(await got.text(), body);
  const etag = got.headers.get('etag');
  const lastModified = got.headers.get('last-modified');
  assert.ok(etag !== null && lastModified !== null, 'a blob has an ETag and a Last-Modified');
  return { etag, lastModified };
}

/** The same instant in the other two forms of RFC 9110 §5.6.7, and a second earlier / later. */
function dates(imf: string): { rfc850: string; asctime: string; before: string; after: string } {
  const ms = Date.parse(imf);
  const d = new Date(ms);
  const long = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'][d.getUTCDay()]!;
  const [, dd, mon, yyyy, time] = imf.split(' ');
  const day = d.getUTCDate();
  return {
    rfc850: `${long}, ${dd}-${mon}-${yyyy!.slice(2)} ${time} GMT`,
    asctime: `${long.slice(0, 3)} ${mon} ${day < 10 ? ` ${day}` : day} ${time} ${yyyy}`,
    before: new Date(ms - 1000).toUTCString(),
    after: new Date(ms + 1000).toUTCString(),
  };
}

async function errorCode(res: Response): Promise<string> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  return ((await res.json()) as { code: string }).code;
}

test('If-Modified-Since: 304 with the validators of the 200 and no body, in every date form; 200 when modified', BOUNDED, async () => {
  const { etag, lastModified } = await store('cond/ims', 'some bytes');
  const other = dates(lastModified);
  for (const since of [lastModified, other.rfc850, other.asctime, other.after]) {
    const res = await streamRequest({ method: 'GET', port: m.httpPort, path: '/v1/blobs/cond/ims', headers: { 'if-modified-since': since }, ms: 10_000 });
    assert.equal(res.status, 304, `If-Modified-Since: ${since}`);
    assert.equal(res.length, 0, 'a 304 has no body');
    assert.equal(res.headers.etag, etag, 'the 304 keeps the ETag');
    assert.equal(res.headers['last-modified'], lastModified, 'and the Last-Modified');
  }
  const head = await request('cond/ims', 'HEAD', { 'if-modified-since': lastModified });
  assert.equal(head.status, 304, 'HEAD as GET');
  const modified = await request('cond/ims', 'GET', { 'if-modified-since': other.before });
  assert.equal(modified.status, 200, 'modified a second after the date');
  assert.equal(await modified.text(), 'some bytes');
  for (const bad of ['yesterday', lastModified.toLowerCase(), `${lastModified}, ${lastModified}`]) {
    const res = await request('cond/ims', 'GET', { 'if-modified-since': bad });
    assert.equal(res.status, 200, `an invalid date is ignored: ${bad}`);
    await res.arrayBuffer();
  }
  // If-None-Match present: If-Modified-Since is ignored (§13.1.3), even when it would say 304.
  const both = await request('cond/ims', 'GET', { 'if-none-match': '"another"', 'if-modified-since': lastModified });
  assert.equal(both.status, 200);
  assert.equal(await both.text(), 'some bytes');
});

test('If-Unmodified-Since: 412 when modified since, on GET and on DELETE (which then deletes nothing)', BOUNDED, async () => {
  const { lastModified } = await store('cond/ius', 'keep me');
  const { before: earlier } = dates(lastModified);
  const refused = await request('cond/ius', 'GET', { 'if-unmodified-since': earlier });
  assert.equal(refused.status, 412);
  assert.equal(await errorCode(refused), 'PRECONDITION_FAILED');
  const ok = await request('cond/ius', 'GET', { 'if-unmodified-since': lastModified });
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), 'keep me');

  const del = await request('cond/ius', 'DELETE', { 'if-unmodified-since': earlier });
  assert.equal(del.status, 412);
  assert.equal(await errorCode(del), 'PRECONDITION_FAILED');
  const still = await request('cond/ius', 'GET');
  assert.equal(still.status, 200, 'a DELETE whose precondition failed deleted nothing');
  assert.equal(await still.text(), 'keep me');
  const gone = await request('cond/ius', 'DELETE', { 'if-unmodified-since': lastModified });
  assert.equal(gone.status, 204);
  assert.equal((await request('cond/ius', 'GET')).status, 404);
});

test('If-Range: a stale validator gets 200 and the whole current body; the current ETag gets 206', BOUNDED, async () => {
  const v1 = await store('cond/range', 'version one, the old bytes');
  const v2 = await store('cond/range', 'VERSION TWO, the new bytes!');
  assert.notEqual(v1.etag, v2.etag);
  const stale = await request('cond/range', 'GET', { range: 'bytes=0-6', 'if-range': v1.etag });
  assert.equal(stale.status, 200, 'never a 206 of another version');
  assert.equal(stale.headers.get('content-range'), null);
  assert.equal(await stale.text(), 'VERSION TWO, the new bytes!');

  const current = await request('cond/range', 'GET', { range: 'bytes=0-6', 'if-range': v2.etag });
  assert.equal(current.status, 206);
  assert.equal(current.headers.get('content-range'), 'bytes 0-6/27');
  assert.equal(await current.text(), 'VERSION');

  const multi = await request('cond/range', 'GET', { range: 'bytes=0-0,-1', 'if-range': v2.etag });
  assert.equal(multi.status, 206);
  assert.match(multi.headers.get('content-type') ?? '', /^multipart\/byteranges/);
  await multi.arrayBuffer();

  const weak = await request('cond/range', 'GET', { range: 'bytes=0-6', 'if-range': `W/${v2.etag}` });
  assert.equal(weak.status, 200, 'a weak tag never matches strongly');
  assert.equal(await weak.text(), 'VERSION TWO, the new bytes!');

  const junk = await request('cond/range', 'GET', { range: 'bytes=0-6', 'if-range': 'not a validator' });
  assert.equal(junk.status, 200);
  await junk.arrayBuffer();

  const noRange = await request('cond/range', 'GET', { 'if-range': v1.etag });
  assert.equal(noRange.status, 200, 'If-Range without Range changes nothing');
  await noRange.arrayBuffer();
});

test('If-Range with a date: 200 and the whole body, even after two writes within one second', BOUNDED, async () => {
  // The store keeps modification times to the second and cannot tell two writes in one second
  // apart, so a date is never a strong validator (RFC 9110 §8.8.2.2). Two writes in the same
  // second are the case that makes a date-based 206 splice two versions: try to produce it.
  let sameSecond = false;
  let last = { etag: '', lastModified: '' };
  for (let attempt = 0; attempt < 5 && !sameSecond; attempt++) {
    const first = await store('cond/range-date', 'first version.');
    last = await store('cond/range-date', 'SECOND VERSION');
    sameSecond = first.lastModified === last.lastModified;
  }
  const res = await request('cond/range-date', 'GET', { range: 'bytes=0-5', 'if-range': last.lastModified });
  assert.equal(res.status, 200, `a date in If-Range drops the Range (two writes in one second: ${sameSecond})`);
  assert.equal(await res.text(), 'SECOND VERSION');
});

test('§13.2.2 order: a failing If-Match wins over an If-None-Match that would give 304', BOUNDED, async () => {
  const v1 = await store('cond/order', 'one');
  const v2 = await store('cond/order', 'two');
  const res = await request('cond/order', 'GET', { 'if-match': v1.etag, 'if-none-match': v2.etag });
  assert.equal(res.status, 412);
  assert.equal(await errorCode(res), 'PRECONDITION_FAILED');
  const both = await request('cond/order', 'GET', { 'if-match': v2.etag, 'if-none-match': v2.etag });
  assert.equal(both.status, 304, 'If-Match holds, If-None-Match matches: 304');
  // If-Match present: If-Unmodified-Since is ignored, even when it would fail.
  const { before: earlier } = dates(v2.lastModified);
  const ignored = await request('cond/order', 'GET', { 'if-match': v2.etag, 'if-unmodified-since': earlier });
  assert.equal(ignored.status, 200);
  assert.equal(await ignored.text(), 'two');
  // 304 comes before If-Range: a validated cache entry needs no part.
  const cached = await request('cond/order', 'GET', { 'if-none-match': v2.etag, range: 'bytes=0-0', 'if-range': v2.etag });
  assert.equal(cached.status, 304);
});

test('DELETE with If-Match: a stale tag is 412 and deletes nothing; the current one deletes; a missing blob is 404', BOUNDED, async () => {
  const v1 = await store('cond/del', 'old');
  const v2 = await store('cond/del', 'new');
  const stale = await request('cond/del', 'DELETE', { 'if-match': v1.etag });
  assert.equal(stale.status, 412);
  assert.equal(await errorCode(stale), 'PRECONDITION_FAILED');
  const kept = await request('cond/del', 'GET');
  assert.equal(await kept.text(), 'new', 'nothing deleted');
  const existing = await request('cond/del', 'DELETE', { 'if-none-match': '*' });
  assert.equal(existing.status, 412, 'If-None-Match: * on an existing blob');
  await existing.arrayBuffer();
  const ok = await request('cond/del', 'DELETE', { 'if-match': `"nope", ${v2.etag}` });
  assert.equal(ok.status, 204);
  assert.equal((await request('cond/del', 'GET')).status, 404);
  const missing = await request('cond/del', 'DELETE', { 'if-match': v2.etag });
  assert.equal(missing.status, 404, 'RFC 9110 §13.2.1: a DELETE that would be 404 is 404 whatever its conditions');
  assert.equal(await errorCode(missing), 'NOT_FOUND');
});
