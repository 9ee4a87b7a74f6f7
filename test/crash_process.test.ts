// Process crashes (TESTING.md §3, issue 5 item 1): the master as a child process (TCP and HTTP,
// one HTTP thread), written to concurrently by real clients, SIGKILLed at a seeded time
// 50–500 ms after the load starts, restarted on the same data dir, and checked key by key
// against an oracle of what was acknowledged:
// - TCP lanes (ioredis, several commands in flight per connection): SET, SET EX, DEL, MSET;
// - TCP transactions (one at a time per connection): BEGIN..COMMIT, BEGIN..ROLLBACK, a nested
//   BEGIN whose inner level is rolled back, MULTI/EXEC, each of several keys;
// - an open transaction per cycle: BEGIN and writes, never committed;
// - HTTP (node:http, bodies streamed): PUT of blobs of 1 KB..4 MB (log-uniform), some with
//   ?ttl=1h, and DELETE.
// After each restart: PING over TCP and GET /v1/status over HTTP answer; every acknowledged
// write is there with its bytes (blobs by length and SHA-256 against the generator); an
// acknowledged delete stays deleted unless a later acknowledged write set the key again; a
// write in flight at the kill is there whole or not at all (a blob is its full old value, its
// full new value, or absent); a transaction is there whole or not at all, and nothing of one
// that was not committed (a rolled-back level, a BEGIN whose COMMIT was never sent, the open
// transaction); a key written with a TTL has one, a key written without has none.
// The model is in helpers/crash_workload.ts.
//
// What this does NOT prove: durability. A SIGKILL keeps the page cache, so data the master
// wrote but never fsynced survives it; this proves the program's atomicity and its restart
// path. fsync and power loss are tested through the Fs seam (TESTING.md, "the one lesson").
//
// The end of the run prints the seed, the cycle count and, per cycle, the writes acknowledged
// by kind, and how many keys and transactions had a write in flight at the kill and how many of
// those came back with it ("landed"): both outcomes over a run show the kills land inside the
// write path, not only between writes.
//
// Env: BRISE_CRASH_SEED replays a run (the same operations and kill times; thread timing
// still varies); BRISE_CRASH_CYCLES sets the cycle count (default 50, CI) for a soak.
// Owns: its masters (stopped by their own PID: kill(), stop(), stopAll in `after`) and their
// temp dirs (stopAll). Every wait is bounded.
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { sleep, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';
import {
  ABSENT, InFlight, KINDS, Load, OrderedOracle, TxOracle, blobSha, blobValue, checkOrdered, checkTx, clearBlobShas, httpWriter,
  matchesBlob, openTxWriter, readBlobs, readTcp, rng, subSeed, tcpLaneWriter, txWriter, type KeyState, type Observed,
} from './helpers/crash_workload.js';

const CYCLES = envInt('BRISE_CRASH_CYCLES', 50);
const SEED = envInt('BRISE_CRASH_SEED', Math.floor(Math.random() * 2 ** 31)) >>> 0;
const LANE_CLIENTS = 3;
const LANE_KEYS = 16;
/** Commands each lane client keeps in flight: more than one, so the kill catches several. */
const WINDOW = 4;
const TX_CLIENTS = 2;
const TX_KEYS = 10;
const OPEN_KEYS = 8;
/** Open-transaction keys below this hold a committed value from the start; the rest stay absent. */
const OPEN_BASE = 6;
const HTTP_CLIENTS = 3;
const BLOB_KEYS = 5;
const KILL_MIN_MS = 50;
const KILL_SPAN_MS = 450;
/** Bounds: writers to notice the kill, one cycle's checks. */
const DRAIN_MS = 30_000;
const VERIFY_MS = 60_000;

after(stopAll);

/** A non-negative integer from the environment, or the default; a typo must not run 0 cycles. */
function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${raw}: expected a non-negative integer`);
  return name === 'BRISE_CRASH_CYCLES' ? Math.max(1, n) : n;
}

const laneKeys = (c: number): string[] => Array.from({ length: LANE_KEYS }, (_, i) => `crash:t${c}:k${i}`);
const txKeys = (c: number): string[] => Array.from({ length: TX_KEYS }, (_, i) => `crash:x${c}:k${i}`);
const openKeys = Array.from({ length: OPEN_KEYS }, (_, i) => `crash:open:k${i}`);
const blobKeys = (c: number): string[] => Array.from({ length: BLOB_KEYS }, (_, i) => `crash/h${c}/b${i}`);

interface Models {
  lanes: OrderedOracle[];
  txs: TxOracle[];
  open: TxOracle;
  blobs: OrderedOracle[];
}

function connect(port: number): Redis {
  const c = new Redis({
    host: '127.0.0.1',
    port,
    protocol: 2,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 5000,
    commandTimeout: 20_000,
    lazyConnect: true,
  });
  c.on('error', () => undefined);
  return c;
}

async function connected(port: number): Promise<Redis> {
  const c = connect(port);
  await within(c.connect(), 10_000, `a TCP connection to port ${port}`);
  return c;
}

/** The restart answers on both protocols. */
async function liveness(c: Redis, httpPort: number, where: string): Promise<void> {
  assert.equal(await within(c.ping(), 5000, 'PING'), 'PONG', `${where}: PING`);
  const res = await fetch(`http://127.0.0.1:${httpPort}/v1/status`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  assert.equal(res.status, 200, `${where}: GET /v1/status: ${text}`);
  assert.equal((JSON.parse(text) as { status?: string }).status, 'ok', `${where}: GET /v1/status: ${text}`);
}

/** The committed values of the open-transaction keys, set once before the first cycle. */
async function seedOpenKeys(m: MasterProcess, open: TxOracle): Promise<void> {
  const c = await connected(m.port);
  try {
    const base: Array<[string, KeyState]> = openKeys.map((k, i) => [k, i < OPEN_BASE ? { value: `open-base-${i}`, ttl: false } : ABSENT]);
    await c.mset(...base.filter(([, s]) => s.value !== null).flatMap(([k, s]) => [k, s.value!]));
    open.committing(base);
    open.acked();
  } finally {
    c.disconnect();
  }
}

/** Runs the load on `m` until a SIGKILL at `killAt` ms; answers when every writer has stopped. */
async function loadAndKill(m: MasterProcess, models: Models, cycle: number, killAt: number, load: Load): Promise<void> {
  const lanes = await Promise.all(models.lanes.map(() => connected(m.port)));
  const txs = await Promise.all(models.txs.map(() => connected(m.port)));
  const open = await connected(m.port);
  const seed = (...p: number[]): (() => number) => rng(subSeed(SEED, cycle, ...p));
  const writers = [
    ...lanes.map((c, i) => tcpLaneWriter(c, seed(1, i), models.lanes[i]!, `${cycle}.t${i}`, load, WINDOW)),
    ...txs.map((c, i) => txWriter(c, seed(2, i), models.txs[i]!, `${cycle}.x${i}`, load)),
    openTxWriter(open, seed(3), openKeys, `${cycle}.open`, load),
    ...models.blobs.map((o, i) => httpWriter(m.httpPort, seed(4, i), o, (cycle + 1) * 1_000_000 + i * 100_000, load)),
  ];
  try {
    await sleep(killAt);
    load.killing = true;
    assert.equal(await m.kill(), 'SIGKILL', `cycle ${cycle}: the master was killed, not exited on its own: ${m.stderr().slice(-2000)}`);
    await within(Promise.all(writers), DRAIN_MS, 'the writers to notice the kill');
  } finally {
    for (const c of [...lanes, ...txs, open]) c.disconnect();
  }
}

/** Reads every key of the restarted master and checks it against the models; answers the failures. */
async function verify(m: MasterProcess, models: Models, where: string, flight: InFlight): Promise<string[]> {
  const c = await connected(m.port);
  try {
    await liveness(c, m.httpPort, where);
    const tcp = [...models.lanes.flatMap((o) => o.names()), ...models.txs.flatMap((o) => o.names), ...openKeys];
    const seen = await readTcp(c, tcp);
    const blobs = await readBlobs(m.httpPort, models.blobs.flatMap((o) => o.names()));
    const failures: string[] = [];
    for (const o of models.lanes) failures.push(...(await checkOrdered(o, seen, false, flight)));
    models.txs.forEach((o, i) => failures.push(...checkTx(o, seen, `transaction writer x${i}`, flight)));
    failures.push(...checkTx(models.open, seen, 'the open (never committed) transaction'));
    for (const o of models.blobs) failures.push(...(await checkOrdered(o, blobs, true, flight)));
    clearBlobShas();
    return failures;
  } finally {
    c.disconnect();
  }
}

describe('process crashes: SIGKILL under TCP and HTTP load, restart, check against the acknowledged writes', () => {
  it('the oracle has teeth: a stale value, a partial transaction, a torn or foreign blob, a lost TTL all fail', { timeout: 10_000 }, async () => {
    const lanes = new OrderedOracle(['a']);
    lanes.issue([['a', { value: 'v1', ttl: false }]])();
    lanes.issue([['a', { value: 'v2', ttl: true }]]);
    assert.deepEqual(lanes.allowed('a').map((s) => s.value), ['v1', 'v2'], 'the last acknowledged value or the one in flight');
    const tcp = (value: string | null, ttl = -1): Map<string, Observed> => new Map([['a', { value, ttl }]]);
    assert.equal((await checkOrdered(lanes, tcp(null), false)).length, 1, 'an acknowledged write lost');
    assert.equal((await checkOrdered(lanes, tcp('v2', -1), false)).length, 1, 'a value set with EX came back without a TTL');
    assert.equal((await checkOrdered(lanes, tcp('v2', 999), false)).length, 0);

    const tx = new TxOracle(['x', 'y']);
    tx.committing([['x', { value: 'x1', ttl: false }], ['y', { value: 'y1', ttl: false }]]);
    const half = new Map<string, Observed>([['x', { value: 'x1', ttl: -1 }], ['y', { value: null, ttl: -2 }]]);
    assert.equal(checkTx(tx, half, 'tx').length, 1, 'half a transaction');
    const none = new Map<string, Observed>([['x', { value: null, ttl: -2 }], ['y', { value: null, ttl: -2 }]]);
    assert.equal(checkTx(tx, none, 'tx').length, 0, 'a transaction in flight may be absent');

    const size = 300_000;
    const want = { value: blobValue(7, size), ttl: false };
    const sha = await blobSha(7, size);
    assert.equal(await matchesBlob(want, { value: 'http', ttl: -1, length: size, sha256: sha }), true);
    assert.equal(await matchesBlob(want, { value: 'http', ttl: -1, length: size - 1, sha256: sha }), false, 'a torn blob');
    assert.equal(await matchesBlob(want, { value: 'http', ttl: -1, length: size, sha256: await blobSha(8, size) }), false, 'another blob');
    assert.notEqual(await blobSha(8, size), sha, 'blob ids give different bytes');
    clearBlobShas();
  });

  it(`SIGKILL at seeded times, restart: every acknowledged write is there (seed ${SEED}, ${CYCLES} cycles)`, { timeout: 60_000 + CYCLES * 5000 }, async () => {
    console.log(`crash_process: seed ${SEED} (replay with BRISE_CRASH_SEED=${SEED}), ${CYCLES} cycles`);
    const started = Date.now();
    const r = rng(SEED);
    const models: Models = {
      lanes: Array.from({ length: LANE_CLIENTS }, (_, i) => new OrderedOracle(laneKeys(i))),
      txs: Array.from({ length: TX_CLIENTS }, (_, i) => new TxOracle(txKeys(i))),
      open: new TxOracle(openKeys),
      blobs: Array.from({ length: HTTP_CLIENTS }, (_, i) => new OrderedOracle(blobKeys(i))),
    };
    let m = await startMaster({ http: true, httpThreads: 1 });
    const dataDir = m.dataDir;
    await seedOpenKeys(m, models.open);
    const lines: string[] = [];
    const totals = new Load();
    const flights = new InFlight();
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const t0 = Date.now();
      const killAt = KILL_MIN_MS + Math.floor(r() * KILL_SPAN_MS);
      const load = new Load();
      await loadAndKill(m, models, cycle, killAt, load);
      const where = `seed ${SEED} cycle ${cycle} (killed at ${killAt} ms; ${load.summary()})`;
      assert.deepEqual(load.anomalies, [], `${where}: the live master refused or failed writes`);
      const t1 = Date.now();
      m = await startMaster({ dataDir, http: true, httpThreads: 1 });
      const t2 = Date.now();
      const flight = new InFlight();
      const failures = await within(verify(m, models, where, flight), VERIFY_MS, `${where}: the checks`);
      assert.deepEqual(failures, [], `${where}: the restarted master does not hold what was acknowledged`);
      for (const k of KINDS) totals.acked[k] += load.acked[k];
      totals.sent += load.sent;
      totals.bytesPut += load.bytesPut;
      flights.add(flight);
      lines.push(`cycle ${cycle}: kill at ${killAt} ms, ${load.summary()}; ${flight.summary()}; restart ${t2 - t1} ms, check ${Date.now() - t2} ms, cycle ${Date.now() - t0} ms`);
    }
    await m.stop();
    console.log(lines.join('\n'));
    console.log(`crash_process: seed ${SEED}: ${CYCLES} cycles, ${totals.summary()}; ${flights.summary()}; ${Date.now() - started} ms`);
    // The run must have exercised every kind of write and caught writes in flight, or it proves
    // less than it says (checked on runs long enough for every kind to come up).
    if (CYCLES >= 10) {
      for (const k of KINDS) assert.ok(totals.acked[k] > 0, `no ${k} was acknowledged in ${CYCLES} cycles: ${totals.summary()}`);
      assert.ok(flights.keys > 0 && flights.txs > 0, `the kills caught writes and transactions in flight: ${flights.summary()}`);
    }
  });
});
