// The fault proxy of test/helpers/fault_proxy.ts against a real node:http server started here:
// each fault's effect as a real client (fetch, node:http with a keep-alive agent, raw node:net
// sockets) and the server see it, on new and on live connections, and its bounds (the delay
// queue under a reader that does not read, close()).
// Owns: the HTTP server it starts (closed in `after`), one proxy per test (closed in `finally`),
// every socket it opens. Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { seededIndexes, startFaultProxy, type Fault, type FaultProxy } from './helpers/fault_proxy.js';

const BOUNDED = { timeout: 15_000 };
const MB = 1024 * 1024;
const BIG = pattern(5 * MB);
const BIG_SHA = sha256(BIG);

interface Target {
  port: number;
  requests: number;
  aborted: number;
  server: http.Server;
}

let target: Target;

before(async () => {
  target = await startTarget();
});

after(async () => {
  target.server.closeAllConnections();
  await new Promise<void>((resolve) => target.server.close(() => resolve()));
});

function pattern(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (Math.imul(i, 2654435761) >>> 24) & 0xff;
  return out;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** PUT /echo answers the body's sha256 and length; GET /big the 5 MB pattern; GET /small "hello". */
async function startTarget(): Promise<Target> {
  const t: Target = { port: 0, requests: 0, aborted: 0, server: http.createServer() };
  t.server.on('request', (req, res) => {
    t.requests++;
    req.on('close', () => { if (!req.complete) t.aborted++; });
    if (req.method === 'PUT') {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (c: Buffer) => { hash.update(c); length += c.length; });
      req.on('end', () => res.end(JSON.stringify({ sha256: hash.digest('hex'), length })));
      return;
    }
    const body = req.url === '/big' ? BIG : Buffer.from('hello');
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => t.server.listen(0, '127.0.0.1', resolve));
  t.port = (t.server.address() as net.AddressInfo).port;
  return t;
}

async function withProxy(fn: (p: FaultProxy, base: string) => Promise<void>, port = target.port): Promise<void> {
  const p = await startFaultProxy({ target: { host: '127.0.0.1', port } });
  try {
    await fn(p, `http://${p.address}`);
  } finally {
    await p.close();
  }
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function errorCode(e: unknown): string {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur instanceof Error; i++) {
    const code = (cur as Error & { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = cur.cause;
  }
  return e instanceof Error ? e.name : String(e);
}

interface RawResult {
  bytes: Buffer;
  end: 'fin' | 'error' | 'timeout';
  code: string;
}

/** Sends `request` on a raw socket and collects everything until FIN, an error or `ms`. */
function raw(port: number, request: string, ms: number, opts: { readAfterMs?: number } = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port });
    let settled = false;
    const settle = (end: RawResult['end'], code = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), end, code });
    };
    const timer = setTimeout(() => settle('timeout'), ms);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => settle('fin'));
    s.on('error', (e) => settle('error', errorCode(e)));
    s.on('connect', () => {
      s.write(request);
      if (opts.readAfterMs !== undefined) {
        s.pause();
        setTimeout(() => s.resume(), opts.readAfterMs);
      }
    });
  });
}

const GET_BIG = 'GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

/** node:http over one keep-alive socket, so a second request reuses the first's connection. */
function agentGet(agent: http.Agent, port: number, path: string, ms: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: ms }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', reject);
  });
}

test('none: 5 MB each way pass through unchanged (sha256), counted in stats', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    const put = await fetch(`${base}/echo`, { method: 'PUT', body: BIG, signal: AbortSignal.timeout(10_000) });
    assert.deepEqual(await put.json(), { sha256: BIG_SHA, length: BIG.length });
    const get = await fetch(`${base}/big`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(sha256(new Uint8Array(await get.arrayBuffer())), BIG_SHA);
    const s = p.stats();
    assert.ok(s.accepted >= 1);
    assert.ok(s.bytesToServer > BIG.length && s.bytesToClient > BIG.length, JSON.stringify(s));
    assert.equal(s.bytesDropped, 0);
  });
});

test('delay: a request and its answer each wait at least the delay; a big body keeps its order', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'delay', ms: 200 });
    const t0 = Date.now();
    const res = await fetch(`${base}/small`, { signal: AbortSignal.timeout(5000) });
    assert.equal(await res.text(), 'hello');
    // One delay towards the server, one back.
    assert.ok(Date.now() - t0 >= 390, `took ${Date.now() - t0} ms`);
    p.set({ kind: 'delay', ms: 5 });
    const big = await fetch(`${base}/big`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(sha256(new Uint8Array(await big.arrayBuffer())), BIG_SHA);
    assert.ok(p.stats().faults.delayedChunks > 2);
  });
});

test('delay: a reader that does not read holds a bounded queue (back-pressure), then gets every byte', BOUNDED, async () => {
  await withProxy(async (p) => {
    p.set({ kind: 'delay', ms: 20 });
    // (How much the kernel's loopback buffers absorb varies; what the proxy itself holds must not.)
    const res = await raw(p.port, GET_BIG, 10_000, { readAfterMs: 1500 });
    assert.equal(res.end, 'fin');
    const body = res.bytes.subarray(res.bytes.indexOf('\r\n\r\n') + 4);
    assert.equal(sha256(body), BIG_SHA);
    assert.ok(p.stats().peakQueuedBytes <= MB + 128 * 1024, `peak queue ${p.stats().peakQueuedBytes}`);
  });
});

test('blackhole: a new connection is read and never answered; the server never sees the request', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'blackhole' });
    const before = target.requests;
    await assert.rejects(fetch(`${base}/small`, { signal: AbortSignal.timeout(600) }), (e: unknown) => {
      assert.equal((e as Error).name, 'TimeoutError');
      return true;
    });
    assert.equal(target.requests, before);
    assert.ok(p.stats().faults.blackholed >= 1);
    // Lifted: new connections pass again.
    p.set({ kind: 'none' });
    assert.equal(await (await fetch(`${base}/small`, { signal: AbortSignal.timeout(5000) })).text(), 'hello');
  });
});

test('blackhole: a live keep-alive connection stops forwarding', BOUNDED, async () => {
  await withProxy(async (p) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await agentGet(agent, p.port, '/small', 5000)).body.toString(), 'hello');
      assert.equal(p.stats().accepted, 1);
      const before = target.requests;
      p.set({ kind: 'blackhole' });
      await assert.rejects(agentGet(agent, p.port, '/small', 600), (e: unknown) => errorCode(e) === 'CLIENT_TIMEOUT');
      assert.equal(p.stats().accepted, 1, 'the second request went over the live connection');
      assert.equal(target.requests, before);
      assert.ok(p.stats().bytesDropped > 0);
    } finally {
      agent.destroy();
    }
  });
});

test('reset toClient mid-body: the client gets ECONNRESET after at most afterBytes', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'reset', afterBytes: MB, direction: 'toClient' });
    const res = await raw(p.port, GET_BIG, 5000);
    assert.equal(res.end, 'error');
    assert.equal(res.code, 'ECONNRESET');
    assert.ok(res.bytes.length <= MB, `got ${res.bytes.length}`);
    const viaFetch = await fetch(`${base}/big`, { signal: AbortSignal.timeout(5000) });
    assert.equal(viaFetch.status, 200);
    await assert.rejects(viaFetch.arrayBuffer());
    assert.equal(p.stats().faults.resets, 2);
  });
});

test('reset toServer mid-body: the upload fails and the server sees an aborted request', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'reset', afterBytes: MB, direction: 'toServer', origin: 'body' });
    const aborted = target.aborted;
    await assert.rejects(fetch(`${base}/echo`, { method: 'PUT', body: BIG, signal: AbortSignal.timeout(5000) }), (e: unknown) => {
      assert.notEqual((e as Error).name, 'TimeoutError');
      return true;
    });
    await waitFor(() => target.aborted > aborted, 3000, 'the server to see the aborted upload');
  });
});

test('truncate toClient: exactly afterBytes arrive, then a clean FIN; fetch sees the premature close', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'truncate', afterBytes: MB, direction: 'toClient' });
    const res = await raw(p.port, GET_BIG, 5000);
    assert.equal(res.end, 'fin');
    assert.equal(res.bytes.length, MB);
    p.set({ kind: 'truncate', afterBytes: 1000, direction: 'toClient', origin: 'body' });
    const body = await raw(p.port, GET_BIG, 5000);
    assert.equal(body.end, 'fin');
    assert.equal(body.bytes.length - (body.bytes.indexOf('\r\n\r\n') + 4), 1000, 'afterBytes counted from the body');
    const viaFetch = await fetch(`${base}/big`, { signal: AbortSignal.timeout(5000) });
    await assert.rejects(viaFetch.arrayBuffer());
    assert.equal(p.stats().faults.truncations, 3);
  });
});

test('flip toClient: exactly one body byte differs, by the mask; the length is kept', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'flip', atByte: 12345, direction: 'toClient', origin: 'body' });
    const got = Buffer.from(await (await fetch(`${base}/big`, { signal: AbortSignal.timeout(10_000) })).arrayBuffer());
    assert.equal(got.length, BIG.length);
    assert.notEqual(sha256(got), BIG_SHA);
    const diffs: number[] = [];
    for (let i = 0; i < got.length && diffs.length < 3; i++) if (got[i] !== BIG[i]) diffs.push(i);
    assert.deepEqual(diffs, [12345]);
    assert.equal(got[12345]! ^ BIG[12345]!, 0xff);
    assert.equal(p.stats().faults.flips, 1);
  });
});

test('flip toServer: the server hashes a body of the same length and a different sha256', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'flip', atByte: 3 * MB, direction: 'toServer', mask: 0x01, origin: 'body' });
    const put = await fetch(`${base}/echo`, { method: 'PUT', body: BIG, signal: AbortSignal.timeout(10_000) });
    const echoed = (await put.json()) as { sha256: string; length: number };
    assert.equal(echoed.length, BIG.length);
    const expected = Buffer.from(BIG);
    expected[3 * MB] = expected[3 * MB]! ^ 0x01;
    assert.equal(echoed.sha256, sha256(expected));
  });
});

test('status 503 and 507: answered by the proxy with a JSON error; the server never sees the request', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    const before = target.requests;
    p.set({ kind: 'status', code: 503 });
    const get = await fetch(`${base}/small`, { signal: AbortSignal.timeout(5000) });
    assert.equal(get.status, 503);
    assert.equal(get.headers.get('connection'), 'close');
    assert.deepEqual(Object.keys((await get.json()) as object), ['error', 'code']);
    p.set({ kind: 'status', code: 507 });
    const put = await fetch(`${base}/echo`, { method: 'PUT', body: BIG.subarray(0, MB), signal: AbortSignal.timeout(5000) });
    assert.equal(put.status, 507);
    assert.equal(((await put.json()) as { code: string }).code, 'NO_SPACE');
    const head = await fetch(`${base}/small`, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    assert.equal(head.status, 507);
    assert.equal(target.requests, before);
    assert.equal(p.stats().faults.statusAnswers, 3);
  });
});

test('status on a live keep-alive connection: it is closed, and the next request is answered by the proxy', BOUNDED, async () => {
  await withProxy(async (p) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await agentGet(agent, p.port, '/small', 5000)).status, 200);
      const before = target.requests;
      p.set({ kind: 'status', code: 503 });
      await waitFor(() => p.stats().active === 0, 2000, 'the live connection to close');
      const res = await agentGet(agent, p.port, '/small', 5000);
      assert.equal(res.status, 503);
      assert.equal(target.requests, before);
    } finally {
      agent.destroy();
    }
  });
});

test('live connections: a positional fault counts from set(); { live: false } leaves them alone', BOUNDED, async () => {
  await withProxy(async (p) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await agentGet(agent, p.port, '/small', 5000)).body.toString(), 'hello');
      p.set({ kind: 'status', code: 503 }, { live: false });
      assert.equal(sha256((await agentGet(agent, p.port, '/big', 5000)).body), BIG_SHA, 'the live connection still passes');
      p.set({ kind: 'truncate', afterBytes: 100, direction: 'toClient', origin: 'body' });
      await assert.rejects(agentGet(agent, p.port, '/big', 5000), (e: unknown) => errorCode(e) === 'ECONNRESET');
      assert.equal(p.stats().accepted, 1, 'all three requests went over the one live connection');
      assert.equal(p.stats().faults.truncations, 1);
    } finally {
      agent.destroy();
    }
  });
});

test('refuse: new connections are reset at once; the server sees nothing', BOUNDED, async () => {
  await withProxy(async (p, base) => {
    p.set({ kind: 'refuse' });
    const before = target.requests;
    const res = await raw(p.port, GET_BIG, 3000);
    assert.notEqual(res.end, 'timeout');
    assert.equal(res.bytes.length, 0);
    await assert.rejects(fetch(`${base}/small`, { signal: AbortSignal.timeout(3000) }), (e: unknown) => {
      assert.notEqual((e as Error).name, 'TimeoutError');
      return true;
    });
    assert.equal(target.requests, before);
    assert.ok(p.stats().faults.refused >= 2);
  });
});

test('a target that is down: the client connection is reset, not left hanging', BOUNDED, async () => {
  const down = net.createServer();
  await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
  const port = (down.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => down.close(() => resolve()));
  await withProxy(async (p) => {
    const res = await raw(p.port, GET_BIG, 3000);
    assert.equal(res.end, 'error');
    assert.equal(res.code, 'ECONNRESET');
  }, port);
});

test('close(): bounded and idempotent; live sockets are destroyed and the port refuses', BOUNDED, async () => {
  const p = await startFaultProxy({ target: { host: '127.0.0.1', port: target.port } });
  p.set({ kind: 'blackhole' });
  const pending = raw(p.port, GET_BIG, 5000);
  await waitFor(() => p.stats().active === 1, 2000, 'the connection');
  const t0 = Date.now();
  await Promise.all([p.close(), p.close()]);
  await p.close();
  assert.ok(Date.now() - t0 < 2500);
  assert.notEqual((await pending).end, 'timeout');
  const after = await raw(p.port, GET_BIG, 2000);
  assert.equal(after.end, 'error');
  assert.equal(after.code, 'ECONNREFUSED');
});

test('setRandom: a seed gives the same sequence; the proxy changes fault over time until stopped', BOUNDED, async () => {
  const a = seededIndexes(42, 5);
  const b = seededIndexes(42, 5);
  const seqA = Array.from({ length: 50 }, a);
  assert.deepEqual(seqA, Array.from({ length: 50 }, b));
  assert.ok(new Set(seqA).size > 1 && seqA.every((i) => i >= 0 && i < 5));
  await withProxy(async (p) => {
    const faults: Fault[] = [{ kind: 'none' }, { kind: 'delay', ms: 10 }, { kind: 'status', code: 503 }];
    const seen = new Set<string>();
    const stop = p.setRandom(7, faults, 20);
    await waitFor(() => { seen.add(p.current().kind); return seen.size === 3; }, 5000, 'every fault to be drawn');
    stop();
    const last = p.current();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(p.current(), last, 'stopped');
  });
});

test('a malformed fault is refused at set(), not found out mid-test', BOUNDED, async () => {
  await withProxy(async (p) => {
    assert.throws(() => p.set({ kind: 'flip', atByte: -1, direction: 'toClient' }), RangeError);
    assert.throws(() => p.set({ kind: 'flip', atByte: 0, direction: 'toClient', mask: 0 }), RangeError);
    assert.throws(() => p.set({ kind: 'status', code: 42 }), RangeError);
    assert.throws(() => p.set({ kind: 'delay', ms: 1.5 }), RangeError);
    assert.deepEqual(p.current(), { kind: 'none' }, 'a refused fault changes nothing');
  });
});
