// Seeded chaos over a replicated cluster (issue 11): a master with replication factor 2 over two
// real volume servers while writers and a reader run against its HTTP blob API and a seeded
// schedule kills (-9), stalls (SIGSTOP/SIGCONT) and restarts the servers. An oracle keeps, per
// key, the SHA-256 of the last acknowledged PUT (or "absent" after an acknowledged DELETE) and
// what a request in flight or cut may have left. At the end every server runs again, every
// member is healthy, every key reads back as the oracle says, and the member files equal the
// master's.
// Replay: BRISE_CHAOS_SEED=<seed printed> BRISE_CHAOS_MS=<ms> node --test dist/test/cluster_chaos.test.js
// Owns: the master and servers (stopped by PID in `after`; a stopped one is continued first).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { startVolumeServer, stopAllVolumeServers, type VolumeServer } from './helpers/volume_server_process.js';
import { seededIndexes, startFaultProxy, type FaultProxy } from './helpers/fault_proxy.js';

const SEED = process.env['BRISE_CHAOS_SEED'] !== undefined ? Number(process.env['BRISE_CHAOS_SEED']) : randomBytes(4).readUInt32BE(0);
const DURATION_MS = Number(process.env['BRISE_CHAOS_MS'] ?? 20_000);
const KEYS = 24;
const SIZES = [1024, 16 * 1024, 256 * 1024, 1024 * 1024];
const REQUEST_MS = 60_000;
const GROUP_SPAN = 2 ** 20;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const ABSENT = 'absent';

/**
 * A server slot: the process now (null while killed) and its data, kept across restarts. The
 * master knows the server by a proxy's URL (no faults set): a server restarted after a kill -9
 * cannot bind its old port again for a while (address in use), so it takes a new one and the
 * proxy's target follows it (the proxy reads `target` at each new connection).
 */
interface Slot {
  server: VolumeServer | null;
  target: { host: string; port: number };
  proxy: FaultProxy;
  dataDir: string;
  stopped: boolean;
}

let m: MasterProcess | null = null;
const slots: Slot[] = [];

after(async () => {
  for (const s of slots) if (s.stopped && s.server !== null) s.server.child.kill('SIGCONT');
  for (const s of slots) await s.proxy.close();
  await stopAll();
  await stopAllVolumeServers();
});

/** Restarts a killed server on its data; its proxy sends new connections to it. */
async function restart(slot: Slot): Promise<void> {
  slot.server = await startVolumeServer({ dataDir: slot.dataDir });
  slot.target.port = slot.server.port;
}

// ---- the oracle -------------------------------------------------------------------------------

/** Per key: what a read may answer (the last acknowledged state, and whatever an unanswered request may have done since). */
const allowed = new Map<string, Set<string>>();

function acknowledge(key: string, state: string): void {
  allowed.set(key, new Set([state]));
}

function mayBe(key: string, state: string): void {
  const s = allowed.get(key) ?? new Set([ABSENT]);
  s.add(state);
  allowed.set(key, s);
}

const counts = { acked: 0, refused: 0, cut: 0, deleted: 0, reads: 0, readErrors: 0, kills: 0, stalls: 0 };

/** One PUT or DELETE; a 503 must have changed nothing, a cut request may have. */
async function mutate(key: string, put: Buffer | null): Promise<void> {
  const state = put === null ? ABSENT : sha256(put);
  const before = new Set(allowed.get(key) ?? [ABSENT]);
  // While it is in flight a reader may see either state.
  mayBe(key, state);
  let res: Response;
  try {
    res = await fetch(`${base()}/v1/blobs/${key}`, { method: put === null ? 'DELETE' : 'PUT', ...(put === null ? {} : { body: put }), signal: AbortSignal.timeout(REQUEST_MS) });
  } catch (e) {
    if ((e as Error).name === 'TimeoutError') throw new Error(`seed ${SEED}: ${key}: no answer in ${REQUEST_MS} ms`);
    counts.cut++;
    return;
  }
  const text = await res.text();
  if (res.status === 201 || res.status === 204 || (put === null && res.status === 404)) {
    acknowledge(key, state);
    if (put === null) counts.deleted++;
    else counts.acked++;
    return;
  }
  assert.equal(res.status, 503, `seed ${SEED}: ${key}: ${res.status} ${text}`);
  counts.refused++;
  // Refused: the key is as it was before this request.
  allowed.set(key, before);
}

/** A GET: right bytes (one of the states the oracle allows) or a clean error, never others. */
async function check(key: string, strict: boolean): Promise<void> {
  counts.reads++;
  const may = allowed.get(key) ?? new Set([ABSENT]);
  let res: Response;
  let body: Buffer;
  try {
    res = await fetch(`${base()}/v1/blobs/${key}`, { signal: AbortSignal.timeout(REQUEST_MS) });
    body = Buffer.from(await res.arrayBuffer());
  } catch (e) {
    if (strict || (e as Error).name === 'TimeoutError') throw new Error(`seed ${SEED}: GET ${key}: ${(e as Error).message}`);
    counts.readErrors++;
    return;
  }
  const got = res.status === 404 ? ABSENT : res.status === 200 ? sha256(body) : null;
  if (got === null) {
    assert.ok(!strict && res.status >= 500, `seed ${SEED}: GET ${key}: ${res.status} ${body.toString().slice(0, 300)}`);
    counts.readErrors++;
    return;
  }
  // Read after the request: the set may have narrowed meanwhile, so check against the wider one.
  const now = allowed.get(key) ?? new Set([ABSENT]);
  assert.ok(may.has(got) || now.has(got), `seed ${SEED}: GET ${key}: ${got.slice(0, 12)} is none of ${[...may, ...now].map((s) => s.slice(0, 12)).join(', ')}`);
}

let baseUrl = '';
const base = (): string => baseUrl;

// ---- the schedule -----------------------------------------------------------------------------

/** A seeded generator of [0, n): the schedule and the workload replay from SEED. */
function rng(salt: number): (n: number) => number {
  const draws = new Map<number, () => number>();
  return (n) => {
    let d = draws.get(n);
    if (d === undefined) {
      d = seededIndexes((SEED ^ Math.imul(salt, 0x9e3779b1)) >>> 0, n);
      draws.set(n, d);
    }
    return d();
  };
}

async function chaos(until: number): Promise<void> {
  const pick = rng(1);
  while (Date.now() < until) {
    await sleep(800 + pick(1500));
    const slot = slots[pick(slots.length)]!;
    if (slot.server === null) continue;
    if (pick(2) === 0) {
      counts.kills++;
      await slot.server.kill();
      slot.server = null;
      await sleep(200 + pick(1500));
      await restart(slot);
    } else {
      counts.stalls++;
      slot.server.child.kill('SIGSTOP');
      slot.stopped = true;
      await sleep(200 + pick(2500));
      slot.server.child.kill('SIGCONT');
      slot.stopped = false;
    }
  }
}

async function writer(id: number, until: number): Promise<void> {
  const pick = rng(10 + id);
  while (Date.now() < until) {
    // Each writer owns its keys: one request per key at a time, so the oracle knows the order.
    const key = `k${id + 2 * pick(KEYS / 2)}`;
    const value = pick(10) === 0 ? null : randomBytes(SIZES[pick(SIZES.length)]!);
    await mutate(key, value);
  }
}

async function reader(until: number): Promise<void> {
  const pick = rng(20);
  while (Date.now() < until) {
    await check(`k${pick(KEYS)}`, false);
    await sleep(20);
  }
}

// ---- the end state ----------------------------------------------------------------------------

async function waitHealthy(ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(`${base()}/v1/status`, { signal: AbortSignal.timeout(10_000) });
    const gs = ((await res.json()) as { groups: { members: { state: string }[] }[] }).groups;
    if (gs.every((g) => g.members.every((x) => x.state === 'healthy'))) return;
    last = JSON.stringify(gs);
    await sleep(200);
  }
  throw new Error(`seed ${SEED}: members not all healthy within ${ms} ms: ${last}`);
}

function assertMembersEqual(master: MasterProcess): void {
  const dir = path.join(master.dataDir, 'volumes');
  for (const name of fs.readdirSync(dir)) {
    const hit = /^vol-(\d+)\.data$/.exec(name);
    if (hit === null) continue;
    const id = Number(hit[1]);
    const local = fs.readFileSync(path.join(dir, name));
    const remote = fs.readFileSync(slots[Math.floor(id / GROUP_SPAN) % slots.length]!.server!.volumePath(id));
    assert.ok(remote.length >= local.length && remote.length - local.length <= 7, `seed ${SEED}: vol ${id}: member ${remote.length} B, master ${local.length} B`);
    const at = firstDifference(local, remote);
    assert.equal(at, -1, `seed ${SEED}: vol ${id} (${local.length} B): the member's bytes differ from the master's from byte ${at} (${differing(local, remote, at)} bytes differ)`);
    assert.ok(remote.subarray(local.length).every((b) => b === 0), `seed ${SEED}: vol ${id}: the member's tail is not zero padding`);
  }
}

function firstDifference(a: Buffer, b: Buffer): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function differing(a: Buffer, b: Buffer, from: number): number {
  let n = 0;
  for (let i = Math.max(0, from); i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

test(`seeded chaos: kills, stalls and restarts of volume servers under writers and a reader (seed ${SEED})`, { timeout: DURATION_MS + 90_000 }, async () => {
  console.log(`# chaos seed ${SEED}, ${DURATION_MS} ms (replay: BRISE_CHAOS_SEED=${SEED} BRISE_CHAOS_MS=${DURATION_MS})`);
  for (let i = 0; i < 2; i++) {
    const s = await startVolumeServer();
    const target = { host: '127.0.0.1', port: s.port };
    slots.push({ server: s, target, proxy: await startFaultProxy({ target }), dataDir: s.dataDir, stopped: false });
  }
  m = await startMaster({ http: true, args: ['--volume-servers', slots.map((s) => `http://${s.proxy.address}`).join(','), '--replication-factor', '2'] });
  baseUrl = `http://127.0.0.1:${m.httpPort}`;
  await waitHealthy(20_000);
  const until = Date.now() + DURATION_MS;
  await Promise.all([chaos(until), writer(0, until), writer(1, until), reader(until)]);
  for (const s of slots) {
    if (s.stopped) s.server!.child.kill('SIGCONT');
    s.stopped = false;
    if (s.server === null) await restart(s);
  }
  await waitHealthy(45_000);
  console.log(`# chaos: ${JSON.stringify(counts)}`);
  assert.ok(counts.acked > 0, `seed ${SEED}: no write acknowledged`);
  // Every key as the oracle says: a key with one allowed state must be exactly it.
  for (let k = 0; k < KEYS; k++) await check(`k${k}`, true);
});

test(`after the chaos, with every member healthy, the member files equal the master's (seed ${SEED})`, {
  timeout: 60_000,
}, async () => {
  assert.ok(m !== null, 'the soak did not start a master');
  await waitHealthy(45_000);
  assertMembersEqual(m);
});
