// Hostile and slow TCP clients against a real master (a child process; issue 5, item 5): a
// crowd of 1,000 idle connections, the same crowd under `--timeout 2`, 50 clients pipelining
// 1 MB values without reading their replies, a client that never reads under
// `--client-output-buffer-limit 8mb`, and a 512 MB bulk header followed by a dribble.
// (200 slow HTTP clients are in http_abuse.test.ts.)
// Owns: the masters it starts (each stopped by its PID: stopAll in `after`), their temp dirs,
// and every socket and client it opens.
// What must hold: a normal client is served within its usual latency whatever the others do;
// idle clients are closed on the timeout; every reply a slow client asked for arrives whole
// and in order once it reads; the master's memory does not follow what clients pile up.
// Memory is the master's RSS (VmRSS), sampled on a worker thread (sampleRss): a peak is
// caught even while this thread is busy.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Redis } from 'ioredis';
import { resp, rssBytes, sampleRss, sleep, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';

const MB = 1024 * 1024;
const T = { timeout: 45_000 };
const CROWD = 1_000;
const MAXCLIENTS = ['--maxclients', '1200'];

after(stopAll);

// ---- helpers -------------------------------------------------------------------------------

/** A raw socket connected to the master (bounded); errors are expected and swallowed. */
function connect(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  return within(
    new Promise<net.Socket>((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }),
    5000,
    `a connection to ${port}`,
  );
}

interface Crowd {
  sockets: net.Socket[];
  connectedAt: number[];
  /** When the server closed each one (0: still open). */
  closedAt: number[];
  destroy(): void;
}

/** `n` connections that send nothing (but read, so they see the server's close). */
async function idleCrowd(port: number, n: number): Promise<Crowd> {
  const crowd: Crowd = { sockets: [], connectedAt: [], closedAt: [], destroy: () => crowd.sockets.forEach((s) => s.destroy()) };
  for (let i = 0; i < n; i += 100) {
    // Each one's own connect time: one SYN retried (after 1 s) would make a batch's time late.
    const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => connect(port).then((s) => ({ s, at: Date.now() }))));
    for (const { s, at } of batch) {
      const k = crowd.sockets.push(s) - 1;
      crowd.connectedAt[k] = at;
      crowd.closedAt[k] = 0;
      s.on('close', () => (crowd.closedAt[k] = Date.now()));
      s.resume();
    }
  }
  return crowd;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Latencies (ms) of `n` sequential GETs of a small key, after a warm-up; sorted. */
async function getLatencies(r: Redis, n: number): Promise<number[]> {
  for (let i = 0; i < 20; i++) await r.get('probe');
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    assert.equal(await within(r.get('probe'), 5000, 'a probe GET'), 'p'.repeat(100));
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out.sort((a, b) => a - b);
}

async function probeClient(port: number): Promise<Redis> {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => undefined);
  await within(r.set('probe', 'p'.repeat(100)), 5000, 'the probe SET');
  return r;
}

/** connected_clients as the server counts them (asked on `r`, which counts itself). */
async function connectedClients(r: Redis): Promise<number> {
  const info = await within(r.info('clients'), 5000, 'INFO clients');
  return Number(/connected_clients:(\d+)/.exec(info)?.[1] ?? NaN);
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

const fmt = (n: number): string => n.toFixed(2);

// ---- 1,000 idle connections ----------------------------------------------------------------

describe(`${CROWD} idle connections`, () => {
  let m: MasterProcess;
  let probe: Redis;
  before(async () => {
    m = await startMaster({ args: MAXCLIENTS });
    probe = await probeClient(m.port);
  });
  after(async () => {
    probe?.disconnect();
    await m?.stop();
  });

  it('do not slow a normal client: p99 of 200 GETs under 50 ms and under 10x its baseline', T, async (t) => {
    const baseline = await getLatencies(probe, 200);
    const crowd = await idleCrowd(m.port, CROWD);
    try {
      await until(async () => (await connectedClients(probe)) === CROWD + 1, 10_000, `the server to count ${CROWD + 1} clients`);
      const crowded = await getLatencies(probe, 200);
      const [b50, b99, c50, c99] = [percentile(baseline, 0.5), percentile(baseline, 0.99), percentile(crowded, 0.5), percentile(crowded, 0.99)];
      t.diagnostic(`GET latency ms: alone p50 ${fmt(b50)} p99 ${fmt(b99)}; with ${CROWD} idle p50 ${fmt(c50)} p99 ${fmt(c99)}`);
      assert.ok(c99 < 50, `p99 ${fmt(c99)} ms with the idle crowd`);
      // Floors (10 ms, 2 ms): on loopback a baseline of a few tenths of a millisecond would make 10x noise.
      assert.ok(c99 < Math.max(10 * b99, 10), `p99 ${fmt(c99)} ms vs ${fmt(b99)} ms alone`);
      assert.ok(c50 < Math.max(10 * b50, 2), `p50 ${fmt(c50)} ms vs ${fmt(b50)} ms alone`);
      assert.equal(crowd.closedAt.filter((c) => c !== 0).length, 0, 'no idle connection was refused or closed (no --timeout)');
    } finally {
      crowd.destroy();
    }
  });

  it('a 512 MB bulk header then a byte every 100 ms: the master does not allocate the declared length', T, async (t) => {
    const before = rssBytes(m.pid);
    const rss = sampleRss(m.pid, 25);
    const s = await connect(m.port);
    try {
      s.write(`*3\r\n$3\r\nSET\r\n$7\r\ndribble\r\n$${512 * MB}\r\n`);
      for (let i = 0; i < 25; i++) {
        s.write('x');
        await sleep(100);
      }
      // Meanwhile others are served as usual.
      assert.equal(await within(probe.get('probe'), 1000, 'a GET beside the dribble'), 'p'.repeat(100));
    } finally {
      s.destroy();
    }
    const peak = Math.max(...(await rss.stop()));
    t.diagnostic(`RSS ${fmt(before / MB)} MB before, peak ${fmt(peak / MB)} MB during the dribble`);
    assert.ok(peak - before < 32 * MB, `RSS grew by ${fmt((peak - before) / MB)} MB for a 512 MB header and 25 bytes`);
    assert.equal(await probe.exists('dribble'), 0, 'nothing stored from the unfinished SET');
  });
});

describe(`${CROWD} idle connections under --timeout 2`, () => {
  let m: MasterProcess;
  before(async () => {
    m = await startMaster({ args: [...MAXCLIENTS, '--timeout', '2'] });
  });
  after(async () => {
    await m?.stop();
  });

  it('are all closed by the server within ~6 s (not before the timeout); an active client stays', T, async (t) => {
    const active = await probeClient(m.port);
    let pinging = true;
    const pings = (async () => {
      while (pinging) {
        assert.equal(await within(active.ping(), 2000, 'a PING of the active client'), 'PONG');
        await sleep(250);
      }
    })();
    pings.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    const crowd = await idleCrowd(m.port, CROWD);
    try {
      const lastConnected = Math.max(...crowd.connectedAt);
      await until(() => crowd.closedAt.every((c) => c !== 0), 8_000, `the server to close the ${CROWD} idle connections`);
      const lastClosed = Math.max(...crowd.closedAt);
      const idleFor = crowd.closedAt.map((c, i) => c - crowd.connectedAt[i]!);
      const early = idleFor.filter((d) => d < 1_900).length;
      t.diagnostic(`idle connections closed after ${Math.min(...idleFor)}..${Math.max(...idleFor)} ms (${early} under 1.9 s); the last ${lastClosed - lastConnected} ms after the last connect`);
      assert.ok(lastClosed - lastConnected < 6_000, `the last idle connection closed ${lastClosed - lastConnected} ms after the last connect`);
      assert.ok(Math.min(...idleFor) >= 1_500, `an idle connection closed after ${Math.min(...idleFor)} ms, before the 2 s timeout`);
      pinging = false;
      await within(pings, 5000, 'the PING loop');
      assert.equal(await connectedClients(active), 1, 'only the active client is left');
    } finally {
      pinging = false;
      crowd.destroy();
      active.disconnect();
    }
  });
});

// ---- large values pipelined by clients that do not read ------------------------------------

const PIPELINERS = 50;
const VALUES_EACH = 20;
/** What the master may grow by while 50 clients pile up 1 GB of SETs and 1 GB of GET replies. */
const PIPELINE_RSS_BOUND = 600 * MB;

/** Expected bytes of a connection's replies, as segments (the 1 MB body shared), compared as they arrive. */
class ExpectedStream {
  private seg = 0;
  private at = 0;
  received = 0;
  mismatch: string | null = null;
  constructor(private readonly segments: Buffer[]) {}
  get total(): number {
    return this.segments.reduce((n, s) => n + s.length, 0);
  }
  push(chunk: Buffer): void {
    this.received += chunk.length;
    let off = 0;
    while (off < chunk.length && this.mismatch === null) {
      const s = this.segments[this.seg];
      if (s === undefined) {
        this.mismatch = `${chunk.length - off} bytes past the end`;
        return;
      }
      const n = Math.min(s.length - this.at, chunk.length - off);
      if (!chunk.subarray(off, off + n).equals(s.subarray(this.at, this.at + n))) this.mismatch = `bytes differ in segment ${this.seg} at ${this.at}`;
      off += n;
      this.at += n;
      if (this.at === s.length) [this.seg, this.at] = [this.seg + 1, 0];
    }
  }
}

interface PipelineResult {
  baseRss: number;
  peakRss: number;
  streams: ExpectedStream[];
  closedEarly: number;
  probeMs: number[];
  ms: number;
}

/**
 * 50 connections, each writes 20 SETs of a 1 MB value (a unique 16-byte tag + a shared body,
 * never copied on this side) then 20 GETs of them, with its socket paused (replies unread) for
 * HOLD_MS; then all read. A probe client GETs a small key every 25 ms throughout.
 */
async function pipelineLoad(m: MasterProcess, probe: Redis): Promise<PipelineResult> {
  const HOLD_MS = 4_000;
  const body = Buffer.alloc(MB - 16, 0x61);
  const crlf = Buffer.from('\r\n');
  const ok = Buffer.from('+OK\r\n');
  const bulkHead = Buffer.from(`$${MB}\r\n`);
  const baseRss = rssBytes(m.pid);
  const rss = sampleRss(m.pid, 25);
  const probeMs: number[] = [];
  let probing = true;
  const probeLoop = (async () => {
    while (probing) {
      const t0 = Date.now();
      await within(probe.get('probe'), 10_000, 'a probe GET during the pipelines');
      probeMs.push(Date.now() - t0);
      await sleep(25);
    }
  })();
  probeLoop.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  const started = Date.now();
  const sockets: net.Socket[] = [];
  const streams: ExpectedStream[] = [];
  let closedEarly = 0;
  try {
    for (let c = 0; c < PIPELINERS; c++) {
      const s = await connect(m.port);
      s.pause();
      s.on('close', () => {
        if (streams[c]!.received < streams[c]!.total) closedEarly++;
      });
      const tags = Array.from({ length: VALUES_EACH }, (_, k) => Buffer.from(`tag-${c}-${k}`.padEnd(16, '.')));
      streams.push(new ExpectedStream([...tags.map(() => ok), ...tags.flatMap((tag) => [bulkHead, tag, body, crlf])]));
      sockets.push(s);
      tags.forEach((tag, k) => {
        s.write(`*3\r\n$3\r\nSET\r\n$${`pipe:${c}:${k}`.length}\r\npipe:${c}:${k}\r\n$${MB}\r\n`);
        s.write(tag);
        s.write(body);
        s.write(crlf);
      });
      for (let k = 0; k < VALUES_EACH; k++) s.write(resp('GET', `pipe:${c}:${k}`));
    }
    await sleep(HOLD_MS);
    await within(
      Promise.all(
        sockets.map((s, c) => {
          const stream = streams[c]!;
          return new Promise<void>((resolve) => {
            s.on('data', (d: Buffer) => {
              stream.push(d);
              if (stream.received >= stream.total || stream.mismatch !== null) resolve();
            });
            s.once('close', () => resolve());
            s.resume();
          });
        }),
      ),
      30_000,
      'every pipelining client to read its replies',
    );
  } finally {
    probing = false;
    for (const s of sockets) s.destroy();
  }
  await within(probeLoop, 15_000, 'the probe loop');
  const peakRss = Math.max(...(await rss.stop()));
  return { baseRss, peakRss, streams, closedEarly, probeMs, ms: Date.now() - started };
}

describe(`${PIPELINERS} clients pipelining ${VALUES_EACH} SETs and GETs of 1 MB, not reading`, () => {
  let m: MasterProcess;
  let probe: Redis;
  let result: PipelineResult | null = null;
  before(async () => {
    m = await startMaster({ args: MAXCLIENTS });
    probe = await probeClient(m.port);
    result = await pipelineLoad(m, probe);
  });
  after(async () => {
    probe?.disconnect();
    await m?.stop();
  });

  it('every reply arrives, whole and in order, once they read', T, (t) => {
    assert.ok(result !== null, 'the load ran');
    t.diagnostic(`${PIPELINERS} x ${VALUES_EACH} MB in and out in ${result.ms} ms`);
    for (const [c, s] of result.streams.entries()) {
      assert.equal(s.mismatch, null, `client ${c}: ${s.mismatch}`);
      assert.equal(s.received, s.total, `client ${c} got all of its replies`);
    }
    assert.equal(result.closedEarly, 0);
  });

  it('another client is served meanwhile', T, (t) => {
    assert.ok(result !== null, 'the load ran');
    const sorted = [...result.probeMs].sort((a, b) => a - b);
    t.diagnostic(`probe GETs during the load: ${sorted.length}, p50 ${percentile(sorted, 0.5)} ms, max ${sorted[sorted.length - 1]} ms`);
    assert.ok(sorted.length >= 20, `the probe was answered ${sorted.length} times during the load`);
    assert.ok(sorted[sorted.length - 1]! < 2_000, `the slowest probe GET took ${sorted[sorted.length - 1]} ms`);
  });

  it(
    `the master's RSS grows by less than ${PIPELINE_RSS_BOUND / MB} MB (the clients pile up 2 GB)`,
    T,
    (t) => {
      assert.ok(result !== null, 'the load ran');
      const growth = result.peakRss - result.baseRss;
      t.diagnostic(`RSS ${fmt(result.baseRss / MB)} MB before, peak ${fmt(result.peakRss / MB)} MB (+${fmt(growth / MB)} MB)`);
      assert.ok(growth < PIPELINE_RSS_BOUND, `RSS grew by ${fmt(growth / MB)} MB`);
    },
  );
});

// ---- a client that never reads, under an output limit --------------------------------------

const OUTPUT_LIMIT = 8 * MB;
const NEVER_READ_GETS = 200;

describe(`--client-output-buffer-limit 8mb: a client that asks ${NEVER_READ_GETS} GETs of 1 MB and never reads`, () => {
  let m: MasterProcess;
  let probe: Redis;
  let baseRss = 0;
  let peakRss = 0;
  let disconnectedAfterMs = -1;
  let receivedAtEnd = -1;
  before(async () => {
    m = await startMaster({ args: ['--client-output-buffer-limit', '8mb'] });
    probe = await probeClient(m.port);
    await within(probe.set('big', Buffer.alloc(MB, 0x62)), 5000, 'SET big');
    baseRss = rssBytes(m.pid);
    const rss = sampleRss(m.pid, 25);
    const s = await connect(m.port);
    s.pause();
    const started = Date.now();
    s.write(Buffer.concat(Array.from({ length: NEVER_READ_GETS }, () => resp('GET', 'big'))));
    try {
      // The server's view (the client, paused, cannot see a close it does not read up to).
      await until(async () => (await connectedClients(probe)) === 1, 10_000, 'the server to drop the client that never reads');
      disconnectedAfterMs = Date.now() - started;
      let received = 0;
      await within(
        new Promise<void>((resolve) => {
          s.on('data', (d: Buffer) => (received += d.length));
          s.once('close', () => resolve());
          s.resume();
        }),
        10_000,
        'the dropped client to see its close',
      );
      receivedAtEnd = received;
    } finally {
      s.destroy();
      peakRss = Math.max(...(await rss.stop()));
    }
  });
  after(async () => {
    probe?.disconnect();
    await m?.stop();
  });

  it('is disconnected (its output stalled), short of its replies; others are served', T, async (t) => {
    t.diagnostic(`dropped after ${disconnectedAfterMs} ms; it then read ${fmt(receivedAtEnd / MB)} MB of ${NEVER_READ_GETS} MB`);
    assert.ok(disconnectedAfterMs >= 0, 'the server dropped it');
    assert.ok(receivedAtEnd >= 0 && receivedAtEnd < NEVER_READ_GETS * MB / 2, `it got ${receivedAtEnd} bytes before the close`);
    assert.equal((await within(probe.get('big'), 5000, 'GET big'))?.length, MB);
  });

  it(
    'the master does not build the replies past the limit: RSS grows by less than 64 MB',
    T,
    (t) => {
      t.diagnostic(`RSS ${fmt(baseRss / MB)} MB before, peak ${fmt(peakRss / MB)} MB (+${fmt((peakRss - baseRss) / MB)} MB) under a ${OUTPUT_LIMIT / MB} MB limit`);
      assert.ok(peakRss - baseRss < 64 * MB, `RSS grew by ${fmt((peakRss - baseRss) / MB)} MB`);
    },
  );
});
