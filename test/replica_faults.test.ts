// Fault tests of replication (issue 12, docs/replica.md "Tests"), real processes: a master and
// replicas (node cmd/master.js, node cmd/replica.js), writers on the master all along, and
// (a) the stream cut 50 times at seeded points by a fault proxy between replica and master;
// (b) the replica killed -9 at seeded moments and restarted on its data dir;
// (c) the master killed -9 and restarted on its data dir and port;
// (d) a replica stopped while the master writes and compacts, then restarted;
// (e) a replica killed -9 in the middle of its full resync, three times, then restarted;
// (f) a master with two drives, small volumes and a password, a replica that
//     resyncs while writes run, killed -9, restarted; a wrong --masterauth refused;
// (g) a new replica started while its master is down, which waits for it;
// (h) 64 MB values over HTTP: the stream cut inside one's regions, the replica killed inside another's;
// (i) the master restarted with a new drive (a new volume group) under a following replica.
// Invariants checked: in the end each replica's digest (every key, value, expiry) equals the
// master's; in (a) the replica's WAL holds the master's records, LSN for LSN (the same time and
// ops: every record applied once, in order); a replica resumes with CONTINUE after a cut, its
// own crash or the master's, and takes a full resync only when the master compacted past it.
// The seed is printed (and taken from REPLICA_FAULT_SEED when set), so a failure replays.
// Owns: the processes and proxies it starts, stopped in `after`. Every loop is bounded.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { NodeFs } from '../src/runtime/fs.js';
import { readWal } from '../src/storage/wal_reader.js';
import { WAL_FILE } from '../src/storage/store_files.js';
import { VOLUMES_DIR } from '../src/storage/drive_volumes.js';
import type { WalRecord } from '../src/storage/types.js';
import { patternChunks, sha256Of, sleep, startMaster, stopAll, streamRequest, tempDir, within } from './helpers/master_process.js';
import { seededFloats, startFaultProxy, type Fault, type FaultProxy } from './helpers/fault_proxy.js';
import { startMasterAt, startReplica, startedPids, stopAllReplicas, type ReplicaProcess } from './helpers/replica_process.js';
import { waitEqual } from './helpers/store_digest.js';

const SEED = Number(process.env['REPLICA_FAULT_SEED'] ?? Date.now() % 1_000_000);
const CATCH_UP_MS = 30_000;
const proxies: FaultProxy[] = [];

after(async () => {
  for (const p of proxies) await p.close();
  await stopAllReplicas();
  await stopAll();
});

/**
 * Writers on the master until stopped or `max` writes: SETs of 50 B to 1 MB over 300 keys,
 * INCRs, DELs, TTLs, a MULTI now and then. A write that fails (the master is down) is counted
 * and the loop waits a little; ioredis reconnects.
 */
class Writer {
  written = 0;
  failed = 0;
  private stopped = false;
  private readonly loops: Array<Promise<void>> = [];
  private readonly clients: Redis[] = [];

  constructor(port: number, seed: number, max = 200_000, parallel = 3, password?: string) {
    for (let i = 0; i < parallel; i++) {
      const c = new Redis({ host: '127.0.0.1', port, password, maxRetriesPerRequest: 1, commandTimeout: 5_000, retryStrategy: () => 100 });
      c.on('error', () => undefined);
      this.clients.push(c);
      this.loops.push(this.loop(c, seededFloats(seed + i), Math.ceil(max / parallel)));
    }
  }

  private async loop(c: Redis, rand: () => number, max: number): Promise<void> {
    for (let n = 0; n < max && !this.stopped; n++) {
      const key = `w:${Math.floor(rand() * 300)}`;
      const p = rand();
      try {
        if (p < 0.6) await c.set(key, Buffer.alloc(valueSize(rand()), n % 251));
        else if (p < 0.7) await c.del(key);
        else if (p < 0.8) await c.incr(`c:${Math.floor(rand() * 10)}`);
        else if (p < 0.9) await c.set(key, `ttl ${n}`, 'EX', 3600);
        else await c.multi().set(key, `multi ${n}`).del(`w:${Math.floor(rand() * 300)}`).exec();
        this.written += 1;
      } catch {
        this.failed += 1;
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await within(Promise.all(this.loops), 20_000, 'the writers to stop');
    for (const c of this.clients) c.disconnect();
  }
}

/** Mostly small values; some of 64 KB and a few of 1 MB (regions of several frames, so a cut or
 * a kill can land inside one). */
function valueSize(p: number): number {
  if (p < 0.01) return 1024 * 1024;
  if (p < 0.05) return 64 * 1024;
  return 50 + Math.floor(p * 4000);
}

/** Committed records of a data dir's WAL (kind 0), by LSN, as comparable text. */
function walRecords(dataDir: string): Map<number, string> {
  const out = new Map<number, string>();
  const it = readWal(new NodeFs(), join(dataDir, WAL_FILE));
  for (let next = it.next(); next.done !== true; next = it.next()) {
    const r: WalRecord = next.value;
    if (r.kind !== 0) continue;
    out.set(r.lsn, JSON.stringify({ t: r.timeMs, ops: r.ops }, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));
  }
  return out;
}

/** The replica's records are the master's, LSN for LSN, and it holds the master's last one. */
function assertWalPrefix(masterDir: string, replicaDir: string): number {
  const master = walRecords(masterDir);
  const replica = walRecords(replicaDir);
  assert.ok(replica.size > 0, 'the replica holds records');
  const lsns = [...replica.keys()];
  for (let i = 1; i < lsns.length; i++) assert.equal(lsns[i], lsns[i - 1]! + 1, `the replica's records follow each other (${lsns[i - 1]} then ${lsns[i]})`);
  for (const [lsn, text] of replica) {
    const want = master.get(lsn);
    assert.ok(want !== undefined, `the master has record ${lsn}`);
    assert.equal(text, want, `record ${lsn} is the master's`);
  }
  assert.equal(Math.max(...lsns), Math.max(...master.keys()), "the replica holds up to the master's last record");
  return replica.size;
}

/** The PID of the replica process holding `dataDir`'s lock (it was started without a handle yet). */
async function pidOf(dataDir: string): Promise<number> {
  for (const p of startedPids()) if (p.dataDir === dataDir) return p.pid;
  throw new Error(`no replica started on ${dataDir}`);
}

function countLogs(r: ReplicaProcess, text: string): number {
  return r.logs().filter((l) => typeof l['msg'] === 'string' && l['msg'].includes(text)).length;
}

async function waitFor(what: string, ms: number, ready: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

test(`(a) the stream cut at 50 seeded points: the replica ends equal, every record once and in order (seed ${SEED})`, { timeout: 120_000 }, async () => {
  console.log(`replica_faults (a) seed ${SEED}`);
  const rand = seededFloats(SEED);
  const m = await startMaster();
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: m.port } });
  proxies.push(proxy);
  const cuts = (): number => proxy.stats().faults.resets + proxy.stats().faults.truncations;
  const cutAt = async (i: number, fault: Fault): Promise<void> => {
    const before = cuts();
    const accepted = proxy.stats().accepted;
    proxy.set(fault);
    await waitFor(`cut ${i} (${JSON.stringify(fault)})`, 15_000, () => cuts() > before);
    proxy.set({ kind: 'none' });
    await waitFor(`the replica to reconnect after cut ${i}`, 15_000, () => proxy.stats().accepted > accepted);
  };
  // The first 5 cuts land inside the replica's first full copy (about 6 MB: a copy cut short
  // starts over), the other 45 while it follows.
  const seedWriter = new Redis({ host: '127.0.0.1', port: m.port, maxRetriesPerRequest: 1 });
  for (let i = 0; i < 200; i++) await seedWriter.set(`pre:${i}`, Buffer.alloc(30_000, i));
  seedWriter.disconnect();
  const starting = startReplica({ master: proxy.address });
  void starting.catch(() => undefined);
  for (let i = 0; i < 5; i++) await cutAt(i, { kind: rand() < 0.5 ? 'reset' : 'truncate', afterBytes: Math.floor(rand() * 5_000_000), direction: 'toClient' });
  const r = await starting;
  await r.waitLog('replica following its master');
  const writer = new Writer(m.port, SEED);
  try {
    for (let i = 5; i < 50; i++) {
      const toServer = rand() < 0.2;
      // Towards the replica: anywhere in the first 256 KB (handshake, history, regions, records);
      // towards the master the bytes are the handshake and the acks, so the points are nearer.
      const afterBytes = Math.floor(rand() * (toServer ? 600 : rand() < 0.2 ? 512 : 256 * 1024));
      await cutAt(i, { kind: rand() < 0.5 ? 'reset' : 'truncate', afterBytes, direction: toServer ? 'toServer' : 'toClient' });
    }
  } finally {
    await writer.stop();
  }
  assert.ok(writer.written > 500, `the writers wrote (${writer.written})`);
  await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica after 50 cuts');
  assert.equal(countLogs(r, 'full resync done'), 1, 'one full resync (the first start); every later cut resumed with CONTINUE');
  assert.equal(countLogs(r, 'full resync from the master'), 0, 'no full resync after the first copy');
  await r.stop();
  await m.stop();
  const records = assertWalPrefix(m.dataDir, r.dataDir);
  console.log(`(a) ${cuts()} cuts, ${writer.written} writes, ${records} records compared, ${proxy.stats().accepted} connections`);
});

test(`(b) the replica killed -9 at seeded moments resumes (CONTINUE) and ends equal (seed ${SEED})`, { timeout: 120_000 }, async () => {
  const rand = seededFloats(SEED + 1);
  const m = await startMaster();
  let r = await startReplica({ master: `127.0.0.1:${m.port}` });
  await r.waitLog('replica following its master');
  const writer = new Writer(m.port, SEED + 10);
  try {
    for (let i = 0; i < 5; i++) {
      await sleep(200 + Math.floor(rand() * 1500));
      await r.kill();
      await sleep(Math.floor(rand() * 300));
      r = await startReplica({ master: `127.0.0.1:${m.port}`, dataDir: r.dataDir, port: r.port });
      const following = await r.waitLog('replica following its master');
      assert.equal(r.logged('full resync'), false, `restart ${i}: no full resync: ${r.stderr().slice(-2000)}`);
      assert.ok(Number(following['from']) > 1, `restart ${i} continues from LSN ${String(following['from'])}`);
    }
  } finally {
    await writer.stop();
  }
  await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica after 5 kills');
  await r.stop();
  await m.stop();
  assertWalPrefix(m.dataDir, r.dataDir);
});

test('(c) the master killed -9 and restarted on its data dir and port: both replicas resume and end equal', { timeout: 120_000 }, async () => {
  const first = await startMaster();
  const { port, dataDir } = first;
  const replicas = [await startReplica({ master: `127.0.0.1:${port}` }), await startReplica({ master: `127.0.0.1:${port}` })];
  for (const r of replicas) await r.waitLog('replica following its master');
  const writer = new Writer(port, SEED + 20);
  let master: { port: number; dataDir: string; stop(): Promise<unknown> } = first;
  try {
    for (let i = 0; i < 2; i++) {
      await sleep(800);
      const lines = replicas.map((r) => r.logs().length);
      await (master === first ? first.kill() : (master as ReplicaProcess).kill());
      await sleep(300);
      master = await startMasterAt({ port, dataDir });
      for (const [j, r] of replicas.entries()) {
        const resumed = await r.waitLog('replica following its master', 20_000, lines[j]);
        assert.ok(Number(resumed['from']) > 1, `replica ${j} continues after restart ${i}`);
      }
    }
  } finally {
    await writer.stop();
  }
  assert.ok(writer.written > 200, `the writers wrote (${writer.written})`);
  await waitEqual(port, replicas.map((r) => r.port), CATCH_UP_MS, 'both replicas after the master restarts');
  for (const r of replicas) assert.equal(countLogs(r, 'full resync done'), 1, 'no full resync after the first');
  for (const r of replicas) await r.stop();
  await master.stop();
  for (const r of replicas) assertWalPrefix(dataDir, r.dataDir);
});

test(`(e) a replica killed -9 in the middle of its full resync starts it over and ends equal (seed ${SEED})`, { timeout: 120_000 }, async () => {
  const rand = seededFloats(SEED + 2);
  const m = await startMaster();
  const c = new Redis({ host: '127.0.0.1', port: m.port, maxRetriesPerRequest: 1, commandTimeout: 30_000 });
  c.on('error', () => undefined);
  try {
    // Enough bytes that a resync takes a while: 48 MB in values of 1 to 8 MB, and small keys.
    for (let i = 0; i < 12; i++) await c.set(`big:${i}`, Buffer.alloc((1 + (i % 8)) * 1024 * 1024, i));
    for (let i = 0; i < 300; i++) await c.set(`small:${i}`, `v${i}`, 'EX', 3600);
    const dataDir = join(tempDir('brisedb-replica-'), 'data');
    let cutShort = 0;
    for (let i = 0; i < 3; i++) {
      const r = startReplica({ master: `127.0.0.1:${m.port}`, dataDir });
      // The marker exists from before the first file is removed until the copy is durable.
      await waitFor(`the resync marker of try ${i}`, 20_000, () => existsSync(join(dataDir, 'resync')));
      await sleep(Math.floor(rand() * 40));
      const pid = await pidOf(dataDir);
      process.kill(pid, 'SIGKILL');
      await r.catch(() => undefined); // killed before it listened
      if (existsSync(join(dataDir, 'resync'))) cutShort += 1;
    }
    assert.ok(cutShort > 0, 'at least one kill landed inside a resync');
    const r = await startReplica({ master: `127.0.0.1:${m.port}`, dataDir });
    assert.ok(r.logged('full resync done'), 'the restarted replica copied again');
    await c.set('after', 'resync');
    await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica after kills mid-resync');
  } finally {
    c.disconnect();
  }
});

test(`(f) two drives, 1 MB volumes, a password: a replica resyncs while writes run, is killed -9, and ends equal (seed ${SEED})`, { timeout: 120_000 }, async () => {
  const dir = tempDir('brisedb-multi-');
  const drives = [join(dir, 'd1'), join(dir, 'd2')];
  const m = await startMaster({ args: ['--drives', drives.join(','), '--max-volume-size', '1mb', '--requirepass', 'pw'] });
  const c = new Redis({ host: '127.0.0.1', port: m.port, password: 'pw', maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  try {
    for (let i = 0; i < 300; i++) await c.set(`pre:${i}`, Buffer.alloc(2000 + i * 50, i));
    assert.equal(await c.call('COMPACT'), 'OK');
    // A wrong password is refused with a clear error, and nothing is copied.
    const wrong = await startReplica({ master: `127.0.0.1:${m.port}`, args: ['--masterauth', 'nope'], startMs: 5_000 }).then(
      (r) => ({ r, error: null }),
      (e: Error) => ({ r: null, error: e }),
    );
    if (wrong.r !== null) {
      const down = await wrong.r.waitLog('replica link down');
      assert.match(String(down['err']), /AUTH|WRONGPASS|password/i, String(down['err']));
      await wrong.r.stop();
    } else assert.match(wrong.error!.message, /AUTH|WRONGPASS|password/i);

    const writer = new Writer(m.port, SEED + 30, 200_000, 2, 'pw');
    let r: ReplicaProcess;
    try {
      r = await startReplica({ master: `127.0.0.1:${m.port}`, args: ['--masterauth', 'pw', '--requirepass', 'pw'] });
      await r.waitLog('replica following its master');
      await sleep(500);
      await r.kill();
      r = await startReplica({ master: `127.0.0.1:${m.port}`, args: ['--masterauth', 'pw', '--requirepass', 'pw'], dataDir: r.dataDir, port: r.port });
      await r.waitLog('replica following its master');
      await sleep(500);
    } finally {
      await writer.stop();
    }
    assert.equal(r.logged('full resync'), false, 'the restart continued');
    // The master's three groups (data dir, d1, d2) on the replica's one drive: three directories.
    const dirs = [join(r.dataDir, VOLUMES_DIR), ...readdirSync(r.dataDir).filter((n) => n.startsWith('group-')).map((n) => join(r.dataDir, n, VOLUMES_DIR))];
    const counts = dirs.map((d) => readdirSync(d).length);
    assert.equal(counts.filter((n) => n > 0).length, 3, `volumes in three group directories (${dirs.join(', ')}: ${counts.join(', ')})`);
    assert.ok(counts.reduce((a, b) => a + b, 0) > 3, `the master rolled over to more volumes (${counts.join(', ')})`);
    await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica of a two-drive master', 'pw');
  } finally {
    c.disconnect();
  }
});

test('(g) a new replica whose master is down waits for it (it does not exit), then copies and follows', { timeout: 60_000 }, async () => {
  const first = await startMaster();
  const c = new Redis({ host: '127.0.0.1', port: first.port, maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  for (let i = 0; i < 50; i++) await c.set(`k${i}`, `v${i}`);
  c.disconnect();
  await first.stop();
  const starting = startReplica({ master: `127.0.0.1:${first.port}` });
  let settled = false;
  void starting.then(() => (settled = true), () => (settled = true));
  await sleep(2_000);
  assert.equal(settled, false, 'the replica neither listens nor exits while its master is down');
  const m = await startMasterAt({ port: first.port, dataDir: first.dataDir });
  const r = await starting;
  assert.ok(r.logged('full resync done'));
  await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica of a master that came up late');
});

test(`(h) 64 MB values: the stream cut inside one, the replica killed -9 inside another; it ends equal (seed ${SEED})`, { timeout: 120_000 }, async () => {
  const rand = seededFloats(SEED + 3);
  const m = await startMaster({ http: true });
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: m.port } });
  proxies.push(proxy);
  let r = await startReplica({ master: proxy.address });
  await r.waitLog('replica following its master');
  const size = 64 * 1024 * 1024;
  const put = async (key: string, seed: number): Promise<void> => {
    const res = await streamRequest({ method: 'PUT', port: m.httpPort, path: `/v1/blobs/${key}`, headers: { 'content-length': String(size) }, body: patternChunks(seed, size), ms: 60_000 });
    assert.equal(res.status, 201);
  };
  // A cut somewhere in the 64 MB of regions.
  const accepted = proxy.stats().accepted;
  proxy.set({ kind: 'reset', afterBytes: 1_000_000 + Math.floor(rand() * 60_000_000), direction: 'toClient' });
  await put('big/one', 1);
  await waitFor('the cut inside the regions', 20_000, () => proxy.stats().faults.resets > 0);
  proxy.set({ kind: 'none' });
  await waitFor('the replica to reconnect', 15_000, () => proxy.stats().accepted > accepted);
  // A kill -9 once the replica holds part of the next one.
  const volumeBytes = (): number => readdirSync(join(r.dataDir, VOLUMES_DIR)).reduce((n, f) => n + statSync(join(r.dataDir, VOLUMES_DIR, f)).size, 0);
  await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica after the cut');
  const held = volumeBytes();
  await put('big/two', 2);
  const mark = held + 4 * 1024 * 1024 + Math.floor(rand() * 40 * 1024 * 1024);
  await waitFor('the replica to hold part of the second value', 20_000, () => volumeBytes() > mark);
  await r.kill();
  console.log(`(h) killed holding ${volumeBytes() - held} bytes of the second value's ${size}`);
  r = await startReplica({ master: proxy.address, dataDir: r.dataDir, port: r.port });
  assert.equal(r.logged('full resync'), false, 'the restart continues');
  await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica after a kill inside a 64 MB value');
  const rc = new Redis({ host: '127.0.0.1', port: r.port, maxRetriesPerRequest: 1, retryStrategy: () => null });
  rc.on('error', () => undefined);
  try {
    const value = await rc.getBuffer('big/two');
    assert.ok(value !== null);
    assert.equal(createHash('sha256').update(value).digest('hex'), await sha256Of(patternChunks(2, size)));
  } finally {
    rc.disconnect();
  }
});

test('(i) the master restarted with one more drive (a new volume group): its replica restarts its store on the new groups and ends equal', { timeout: 90_000 }, async () => {
  const first = await startMaster();
  const r = await startReplica({ master: `127.0.0.1:${first.port}` });
  await r.waitLog('replica following its master');
  const write = async (port: number, tag: string): Promise<void> => {
    const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      for (let i = 0; i < 100; i++) await c.set(`${tag}:${i}`, Buffer.alloc(5000 + i, i));
    } finally {
      c.disconnect();
    }
  };
  await write(first.port, 'one-drive');
  await waitEqual(first.port, [r.port], CATCH_UP_MS);
  await first.stop();
  const drive = join(tempDir('brisedb-drive-'), 'd1');
  const m = await startMasterAt({ port: first.port, dataDir: first.dataDir, args: ['--drives', drive] });
  await write(m.port, 'two-drives');
  await r.waitLog('the master has volume groups this store lacks', 20_000);
  await waitEqual(m.port, [r.port], CATCH_UP_MS, 'the replica of a master with a new group');
  assert.ok(readdirSync(join(drive, VOLUMES_DIR)).length > 0, 'the master wrote to its new drive');
});

test('(d) a replica stopped while the master writes and compacts takes a full resync at restart and ends equal', { timeout: 120_000 }, async () => {
  const m = await startMaster();
  const r = await startReplica({ master: `127.0.0.1:${m.port}` });
  await r.waitLog('replica following its master');
  const c = new Redis({ host: '127.0.0.1', port: m.port, maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  try {
    for (let i = 0; i < 200; i++) await c.set(`before:${i}`, `v${i}`);
    await waitEqual(m.port, [r.port], CATCH_UP_MS);
    await r.stop();
    for (let i = 0; i < 200; i++) await c.set(`during:${i}`, Buffer.alloc(1000 + i, i));
    for (let i = 0; i < 200; i += 3) await c.del(`before:${i}`);
    assert.equal(await c.call('COMPACT'), 'OK');
    for (let i = 0; i < 50; i++) await c.set(`after:${i}`, `v${i}`, 'EX', 3600);
    const back = await startReplica({ master: `127.0.0.1:${m.port}`, dataDir: r.dataDir, port: r.port });
    await back.waitLog('full resync done', 20_000).catch((e: Error) => {
      throw new Error(`${e.message}\nmaster: ${m.stderr().slice(-3000)}`);
    });
    await waitEqual(m.port, [back.port], CATCH_UP_MS, 'the lagging replica after its resync');
    // And it follows again from there.
    for (let i = 0; i < 50; i++) await c.set(`later:${i}`, `v${i}`);
    await waitEqual(m.port, [back.port], CATCH_UP_MS, 'the resynced replica following');
  } finally {
    c.disconnect();
  }
});
