// One blob of 1 GiB + 1 byte over HTTP against a real master: PUT streamed from a deterministic
// generator (never held in memory on either side), GET back equal by SHA-256, a Range from the
// middle equal to the generator's bytes, and the master's RSS sampled (VmRSS every 50 ms).
// Owns: the master it starts (stopped by PID in `after`) and its temp dir.
// The RSS bound: the growth over the whole transfer stays under 64 MB. It is measured from
// AFTER a 16 MB warm-up PUT and GET: a fresh process ramps up once on first use (lazy code,
// the JIT, the upload buffer pool, uWS's buffers), which says nothing about holding a body.
// Skipped, with a message, only when the temp dir's file system has less than 3 GB free.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import {
  patternChunks, patternSlice, rssBytes, sampleRss, sleep, startMaster, stopAll, streamRequest,
} from './helpers/master_process.js';

const MB = 1024 * 1024;
const SIZE = 1024 * MB + 1;
const RSS_GROWTH_LIMIT = 64 * MB;
const SEED = 20240611;

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

const free = freeBytes(os.tmpdir());
const skip = free < 3 * 1024 * MB ? `only ${(free / 1024 / MB).toFixed(1)} GB free under ${os.tmpdir()}; a 1 GiB blob test needs 3 GB` : false;

after(async () => {
  await stopAll();
});

/** Yields the chunks of `source` and feeds them to `hash` on the way (one pass, no copy). */
async function* hashing(source: AsyncIterable<Buffer>, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

test('1 GiB + 1 byte: PUT streamed, GET equal by SHA-256, a Range from the middle; master RSS growth < 64 MB', { skip, timeout: 90_000 }, async () => {
  const m = await startMaster({ http: true });
  const blob = (key: string): string => `/v1/blobs/${key}`;

  // Warm-up (see the top comment): 16 MB there and back, then the baseline.
  const warm = 16 * MB;
  const warmPut = await streamRequest({ method: 'PUT', port: m.httpPort, path: blob('warm'), headers: { 'content-length': String(warm) }, body: patternChunks(1, warm) });
  assert.equal(warmPut.status, 201);
  const warmGet = await streamRequest({ method: 'GET', port: m.httpPort, path: blob('warm') });
  assert.equal(warmGet.length, warm);
  await sleep(300);
  const baseline = rssBytes(m.pid);
  assert.ok(baseline > 0, 'RSS readable from /proc');

  const sampler = sampleRss(m.pid, 50);
  const sent = createHash('sha256');
  const started = Date.now();
  let put: Awaited<ReturnType<typeof streamRequest>>;
  let got: Awaited<ReturnType<typeof streamRequest>>;
  let samples: number[] = [];
  let putMs = 0;
  try {
    put = await streamRequest({
      method: 'PUT', port: m.httpPort, path: blob('big'), headers: { 'content-length': String(SIZE) },
      body: hashing(patternChunks(SEED, SIZE), sent), keep: true, ms: 60_000,
    });
    putMs = Date.now() - started;
    got = await streamRequest({ method: 'GET', port: m.httpPort, path: blob('big'), ms: 60_000 });
  } finally {
    // Stopped whatever happened: a sampler left running would keep this file alive.
    samples = await sampler.stop();
  }
  const totalMs = Date.now() - started;
  assert.equal(put.status, 201, put.body.toString());
  assert.equal((JSON.parse(put.body.toString()) as { size: number }).size, SIZE);
  const expected = sent.digest('hex');
  assert.equal(got.status, 200);
  assert.equal(got.headers['content-length'], String(SIZE));
  assert.equal(got.length, SIZE);
  assert.equal(got.sha256, expected, 'the GET body equals what was PUT');

  // A range across the 512 MiB block boundary, from the generator's bytes.
  const start = 512 * MB - 1234;
  const end = start + 3 * MB;
  const range = await streamRequest({ method: 'GET', port: m.httpPort, path: blob('big'), headers: { range: `bytes=${start}-${end}` }, keep: true });
  assert.equal(range.status, 206);
  assert.equal(range.headers['content-range'], `bytes ${start}-${end}/${SIZE}`);
  assert.ok(range.body.equals(patternSlice(SEED, start, end - start + 1)), 'the middle range equals the generator');
  const last = await streamRequest({ method: 'GET', port: m.httpPort, path: blob('big'), headers: { range: 'bytes=-1' }, keep: true });
  assert.equal(last.status, 206);
  assert.ok(last.body.equals(patternSlice(SEED, SIZE - 1, 1)), 'the one byte past 1 GiB');

  const peak = Math.max(...samples);
  const growth = peak - baseline;
  const mb = (n: number): string => (n / MB).toFixed(1);
  // For the report of the run: what was moved, how fast, and the memory it took.
  console.log(`1 GiB+1: PUT ${putMs} ms, PUT+GET ${totalMs} ms; RSS baseline ${mb(baseline)} MB, peak ${mb(peak)} MB, growth ${mb(growth)} MB over ${samples.length} samples`);
  assert.ok(samples.length > 10, 'RSS was sampled during the transfer');
  assert.ok(growth < RSS_GROWTH_LIMIT, `master RSS grew ${mb(growth)} MB during the transfer (limit ${mb(RSS_GROWTH_LIMIT)} MB)`);
  await m.stop();
});

test('1 GiB + 1 byte chunked (no Content-Length): stored in constant memory, ETag from its SHA-256, other writes go on meanwhile', { skip, timeout: 120_000 }, async () => {
  const m = await startMaster({ http: true });
  const blob = (key: string): string => `/v1/blobs/${key}`;
  const warm = 16 * MB;
  const warmPut = await streamRequest({ method: 'PUT', port: m.httpPort, path: blob('warm'), body: patternChunks(1, warm) });
  assert.equal(warmPut.status, 201);
  await sleep(300);
  const baseline = rssBytes(m.pid);
  const sampler = sampleRss(m.pid, 50);
  const sent = createHash('sha256');
  let samples: number[] = [];
  let put: Awaited<ReturnType<typeof streamRequest>>;
  let got: Awaited<ReturnType<typeof streamRequest>>;
  // Small writes to the same drive while the upload streams, from another process (this one is
  // busy making and hashing the 1 GiB): each answered PUT prints the time it was answered.
  const beside = spawn(process.execPath, ['-e', `
    const end = Date.now() + 20000;
    (async () => {
      for (let i = 0; Date.now() < end; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const r = await fetch('http://127.0.0.1:${m.httpPort}/v1/blobs/beside-' + i, { method: 'PUT', body: 'v' + i });
        process.stdout.write(r.status + ' ' + Date.now() + '\\n');
      }
    })();
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  let besideOut = '';
  beside.stdout!.on('data', (d: Buffer) => (besideOut += d.toString()));
  let uploadStart = 0;
  let uploadEnd = 0;
  try {
    // No content-length header: node:http sends Transfer-Encoding: chunked.
    await sleep(300); // the writer process is up and writing
    uploadStart = Date.now();
    put = await streamRequest({ method: 'PUT', port: m.httpPort, path: blob('big-chunked'), body: hashing(patternChunks(SEED, SIZE), sent), keep: true, ms: 90_000 });
    uploadEnd = Date.now();
    got = await streamRequest({ method: 'GET', port: m.httpPort, path: blob('big-chunked'), ms: 60_000 });
  } finally {
    beside.kill();
    samples = await sampler.stop();
  }
  const during = besideOut.trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number])
    .filter(([, at]) => at > uploadStart && at < uploadEnd);
  assert.equal(put.status, 201, put.body.toString());
  const digest = sent.digest();
  const answer = JSON.parse(put.body.toString()) as { size: number; etag: string };
  assert.equal(answer.size, SIZE);
  assert.equal(answer.etag, `"${digest.subarray(0, 16).toString('hex')}"`);
  assert.equal(got.length, SIZE);
  assert.equal(got.sha256, digest.toString('hex'), 'the GET body equals what was PUT');
  assert.ok(during.length >= 3 && during.every(([status]) => status === 201), `writes answered during the ${uploadEnd - uploadStart} ms upload: ${JSON.stringify(during)}`);
  const growth = Math.max(...samples) - baseline;
  console.log(`1 GiB+1 chunked: RSS growth ${(growth / MB).toFixed(1)} MB over ${samples.length} samples; ${during.length} writes answered during it`);
  assert.ok(growth < RSS_GROWTH_LIMIT, `master RSS grew ${(growth / MB).toFixed(1)} MB during a chunked upload (limit 64 MB)`);
  await m.stop();
});
