// Black-box tests of the non-blob HTTP routes (/v1/keys, /v1/scan, /v1/status, /metrics) against
// one master started here with two HTTP front-end threads (`--http-threads 2`), so metrics must
// aggregate across threads and listings must see writes from either thread and from TCP.
// Owns: the master it starts (stopped by PID in `after`) and its temp dir.
// Invariants checked: listings answer exactly the keys stored (as PUT, UTF-8 intact), bounded
// with `truncated`; a scan to cursor 0 visits every key once; /v1/status and /metrics describe
// the running master, and request counters add up across threads. Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { Redis } from 'ioredis';
import { startHttpMaster, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';

/** Every test is bounded (fetch itself waits minutes by default). */
const BOUNDED = { timeout: 30_000 };

let m: MasterProcess;
let base = '';

before(async () => ({ m, base } = await startHttpMaster({ httpThreads: 2 })));

after(async () => {
  await stopAll();
});

async function getJson(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(base + path, { signal: AbortSignal.timeout(10_000) });
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, path);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function putKey(key: string, value = 'v'): Promise<void> {
  const res = await fetch(`${base}/v1/blobs/${encodeURIComponent(key).replace(/%2F/g, '/')}`, { method: 'PUT', body: value });
  assert.equal(res.status, 201, key);
}

/** One request on a connection of its own (no keep-alive): the kernel picks the thread. */
function freshConnectionGet(path: string): Promise<number> {
  return within(
    new Promise<number>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: m.httpPort, path, agent: false }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
    }),
    10_000,
    `GET ${path}`,
  );
}

const KEYS = ['user:1', 'user:2', 'user:10', 'users', 'team/a/b', 'ünïcödé/日本', 'with space', 'odd[1]'];

test('/v1/keys?pattern= answers the matching keys as PUT, with count; ?limit= truncates and says so', BOUNDED, async () => {
  for (const k of KEYS) await putKey(`list/${k}`);
  const all = await getJson('/v1/keys?pattern=' + encodeURIComponent('list/*'));
  assert.equal(all.status, 200);
  assert.deepEqual([...(all.body.keys as string[])].sort(), KEYS.map((k) => `list/${k}`).sort());
  assert.equal(all.body.count, KEYS.length);
  assert.equal(all.body.truncated, false);

  const users = await getJson('/v1/keys?pattern=' + encodeURIComponent('list/user:?'));
  assert.deepEqual([...(users.body.keys as string[])].sort(), ['list/user:1', 'list/user:2']);
  const escaped = await getJson('/v1/keys?pattern=' + encodeURIComponent('list/odd\\[1\\]'));
  assert.deepEqual(escaped.body.keys, ['list/odd[1]']);
  const none = await getJson('/v1/keys?pattern=nothing-matches-*');
  assert.deepEqual(none.body, { keys: [], count: 0, truncated: false });

  const limited = await getJson('/v1/keys?pattern=' + encodeURIComponent('list/*') + '&limit=3');
  assert.equal(limited.status, 200);
  assert.equal((limited.body.keys as string[]).length, 3);
  assert.equal(limited.body.count, 3);
  assert.equal(limited.body.truncated, true);
  for (const k of limited.body.keys as string[]) assert.ok(k.startsWith('list/'), k);

  for (const bad of ['0', '-1', 'x', '1.5']) {
    const res = await getJson(`/v1/keys?limit=${bad}`);
    assert.equal(res.status, 400, `limit=${bad}`);
    assert.equal(res.body.code, 'BAD_REQUEST');
  }
});

test('/v1/scan with a small count iterates to cursor 0 and collects every key exactly once', BOUNDED, async () => {
  const keys = Array.from({ length: 300 }, (_, i) => `scan/${i}/${i % 3 === 0 ? 'é' : 'x'}/${'z'.repeat(i % 7)}`);
  for (const k of keys) await putKey(k, String(k.length));
  const seen: string[] = [];
  let cursor = '0';
  let pages = 0;
  do {
    const page = await getJson(`/v1/scan?cursor=${cursor}&count=17&match=${encodeURIComponent('scan/*')}`);
    assert.equal(page.status, 200);
    assert.equal(page.body.count, (page.body.keys as string[]).length);
    seen.push(...(page.body.keys as string[]));
    cursor = String(page.body.next_cursor);
    pages++;
    assert.ok(pages < 100_000, 'the scan ends');
  } while (cursor !== '0');
  assert.equal(new Set(seen).size, seen.length, 'no key twice');
  assert.deepEqual([...seen].sort(), [...keys].sort());
  assert.ok(pages > 1, 'the scan took several pages');

  for (const bad of ['-1', 'abc', '1e3', '99999999999999999']) {
    const res = await getJson(`/v1/scan?cursor=${bad}`);
    assert.equal(res.status, 400, `cursor=${bad}`);
    assert.equal(res.body.code, 'BAD_CURSOR');
  }
});

test('keys written over TCP (ioredis) are listed and served over HTTP', BOUNDED, async () => {
  const redis = new Redis({ port: m.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  try {
    await within(redis.connect(), 5000, 'ioredis connect');
    await redis.set('tcp/one', 'from redis');
    const listed = await getJson('/v1/keys?pattern=tcp/*');
    assert.deepEqual(listed.body.keys, ['tcp/one']);
    const res = await fetch(`${base}/v1/blobs/tcp/one`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'from redis');
    await putKey('tcp/two', 'from http');
    assert.equal(await redis.get('tcp/two'), 'from http');
  } finally {
    redis.disconnect();
  }
});

test('/v1/status: health, volumes with sizes, actors with threads and restarts, the WAL LSN', BOUNDED, async () => {
  const before = await getJson('/v1/status');
  assert.equal(before.status, 200);
  await putKey('status/probe', 'x'.repeat(1000));
  const { body } = await getJson('/v1/status');
  assert.equal(body.status, 'ok');
  assert.equal(typeof body.uptime_seconds, 'number');
  const wal = body.wal as { last_lsn: number };
  const walBefore = before.body.wal as { last_lsn: number };
  assert.ok(wal.last_lsn > walBefore.last_lsn, `the LSN moved: ${walBefore.last_lsn} → ${wal.last_lsn}`);
  const volumes = body.volumes as Array<{ id: number; size_bytes: number }>;
  assert.ok(volumes.length >= 1);
  assert.ok(volumes.reduce((n, v) => n + v.size_bytes, 0) > 1000, 'the volumes hold what was written');
  const actors = body.actors as Array<{ name: string; thread: number; state: string; restarts: number }>;
  const names = actors.map((a) => a.name);
  for (const name of ['http-0', 'http-1', 'wal', 'index', 'broker', 'tcp-0']) assert.ok(names.includes(name), `${name} in ${names.join(',')}`);
  for (const a of actors) {
    assert.equal(a.state, 'running', a.name);
    assert.equal(a.restarts, 0, a.name);
    assert.equal(typeof a.thread, 'number', a.name);
  }
  assert.equal(new Set(actors.map((a) => a.thread)).size, actors.length, 'each actor on its own thread');
});

/** The samples of a metric in Prometheus text, by their label set. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

async function metricsText(): Promise<string> {
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  return res.text();
}

test('/metrics: Prometheus text; request counters by status add up across both threads', BOUNDED, async () => {
  const label = (method: string, status: number): string => `{route="blobs",method="${method}",status="${status}"}`;
  const before = samples(await metricsText(), 'brisedb_http_requests_total');
  const n = 40;
  const statuses = await Promise.all(Array.from({ length: n }, (_, i) => freshConnectionGet(`/v1/blobs/metrics/missing-${i}`)));
  assert.deepEqual(new Set(statuses), new Set([404]));
  const puts = 7;
  for (let i = 0; i < puts; i++) {
    const res = await fetch(`${base}/v1/blobs/metrics/k${i}`, { method: 'PUT', body: 'x', headers: { connection: 'close' } });
    assert.equal(res.status, 201);
  }
  const text = await metricsText();
  const after = samples(text, 'brisedb_http_requests_total');
  const delta = (key: string): number => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  assert.equal(delta(label('GET', 404)), n, 'every 404 counted once, whichever thread answered');
  assert.equal(delta(label('PUT', 201)), puts);
  assert.match(text, /# TYPE brisedb_http_requests_total counter/);
  assert.match(text, /# TYPE brisedb_http_request_duration_seconds histogram/);

  const up = samples(text, 'brisedb_actor_up');
  for (const actor of ['http-0', 'http-1', 'wal', 'index']) assert.equal(up.get(`{actor="${actor}"}`), 1, actor);
});

test('regression: /metrics counts refused requests too (unknown route 404, wrong method 405, bad /v1/keys and /v1/scan 400)', BOUNDED, async () => {
  const total = async (): Promise<number> => [...samples(await metricsText(), 'brisedb_http_requests_total').values()].reduce((a, b) => a + b, 0);
  const before = await total();
  assert.equal((await fetch(`${base}/v2/nothing`)).status, 404);
  assert.equal((await fetch(`${base}/v1/blobs/x`, { method: 'POST', body: 'x' })).status, 405);
  assert.equal((await fetch(`${base}/v1/keys?limit=0`)).status, 400);
  assert.equal((await fetch(`${base}/v1/scan?cursor=x`)).status, 400);
  // Four refused requests, and the second scrape counts itself (a scrape sees itself).
  assert.equal(await total() - before, 5, 'four answered requests and one scrape, all counted');
});

test('/v1/scan fills a page over a sparse index: a few keys among many empty buckets come in one answer', BOUNDED, async () => {
  const sparse = await startMaster({ http: true });
  try {
    const at = `http://127.0.0.1:${sparse.httpPort}`;
    for (const k of ['sparse-a', 'sparse-b', 'sparse-c']) {
      assert.equal((await fetch(`${at}/v1/blobs/${k}`, { method: 'PUT', body: 'v' })).status, 201);
    }
    const page = (await (await fetch(`${at}/v1/scan?cursor=0&count=100`)).json()) as { next_cursor: number; keys: string[]; count: number };
    assert.deepEqual([...page.keys].sort(), ['sparse-a', 'sparse-b', 'sparse-c'], 'all three in the first page');
    // The rest of the scan (bounded rounds may stop short of the last buckets) adds no key.
    let cursor = page.next_cursor;
    for (let i = 0; i < 100 && cursor !== 0; i++) {
      const more = (await (await fetch(`${at}/v1/scan?cursor=${cursor}&count=100`)).json()) as { next_cursor: number; keys: string[] };
      assert.deepEqual(more.keys, []);
      cursor = more.next_cursor;
    }
    assert.equal(cursor, 0, 'the scan ends');
  } finally {
    await sparse.stop();
  }
});
