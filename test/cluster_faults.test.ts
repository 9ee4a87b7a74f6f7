// Network faults between the master and one of its two volume servers (issue 11): a master with
// replication factor 2 over two real volume servers, each behind a fault proxy
// (helpers/fault_proxy.ts), so group 0 = local drive + server 0 and group 1 = local drive +
// server 1. Each fault is put on ONE server's proxy and judged as a client sees the master:
// (a) writes of 1 KB..4 MB are acknowledged (201) or refused with a clean 503 JSON error, and
//     every acknowledged blob reads back with its SHA-256;
// (b) an acknowledged write is already on its group's member, byte for byte, when the 201
//     arrives (read from the server's file, not through the master), and once the fault is
//     cleared and every member is healthy again the member files equal the master's;
// (c) a read that must go remote (the master's local copy damaged on purpose) through the faulty
//     proxy gives the right bytes or a clean error or a cut connection, never a wrong byte.
// Write path = the master's PUT .../raw bodies (toServer); read path = needle GETs (toClient).
// Owns: the master, the two volume servers (stopped by PID in `after`), the proxies, temp dirs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rawConnect, resp, sleep, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { startVolumeServer, stopAllVolumeServers, type VolumeServer } from './helpers/volume_server_process.js';
import { startFaultProxy, type Fault, type FaultProxy } from './helpers/fault_proxy.js';

const KB = 1024;
const MB = 1024 * KB;
/** Each write: 1 KB, 64 KB, 1 MB, 4 MB (a small one again at the end, after the group failed). */
const SIZES = [KB, 64 * KB, MB, 4 * MB, KB, 64 * KB];
/** The master's no-progress timeout towards a server is 30 s: a blackholed request ends past it. */
const REQUEST_MS = 60_000;
const GROUP_SPAN = 2 ** 20;

let m: MasterProcess;
let base = '';
const servers: VolumeServer[] = [];
const proxies: FaultProxy[] = [];

before(async () => {
  for (let i = 0; i < 2; i++) {
    const s = await startVolumeServer();
    servers.push(s);
    proxies.push(await startFaultProxy({ target: { host: '127.0.0.1', port: s.port } }));
  }
  const urls = proxies.map((p) => `http://${p.address}`).join(',');
  m = await startMaster({ http: true, args: ['--volume-servers', urls, '--replication-factor', '2'] });
  base = `http://127.0.0.1:${m.httpPort}`;
  await waitHealthy(20_000);
});

after(async () => {
  for (const p of proxies) await p.close();
  await stopAll();
  await stopAllVolumeServers();
});

// ---- the cluster as the tests see it ----------------------------------------------------------

interface Member {
  server: string;
  state: string;
  last_error: string | null;
}

async function groups(): Promise<{ id: number; members: Member[] }[]> {
  const res = await fetch(`${base}/v1/status`, { signal: AbortSignal.timeout(10_000) });
  return ((await res.json()) as { groups: { id: number; members: Member[] }[] }).groups;
}

/** Bounded poll of /v1/status until every member of every group is healthy. */
async function waitHealthy(ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const gs = await groups();
    if (gs.every((g) => g.members.every((x) => x.state === 'healthy'))) return;
    last = JSON.stringify(gs);
    await sleep(200);
  }
  throw new Error(`members not all healthy within ${ms} ms: ${last}`);
}

/** Clears a fault: `refuse` first destroys the live connections a blackhole left dead. */
function heal(p: FaultProxy): void {
  p.set({ kind: 'refuse' });
  p.set({ kind: 'none' });
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

// ---- where a value lies in the volume files ---------------------------------------------------

interface Place {
  volume: number;
  /** Byte offset of the value's first byte in the volume file. */
  at: number;
}

function masterVolumes(): { id: number; file: string }[] {
  const dir = path.join(m.dataDir, 'volumes');
  return fs.readdirSync(dir).flatMap((name) => {
    const hit = /^vol-(\d+)\.data$/.exec(name);
    return hit === null ? [] : [{ id: Number(hit[1]), file: path.join(dir, name) }];
  });
}

/** The value's place in the master's local files (values are random: the first match is it). */
/**
 * Every place the value is in the master's volume files: an upload whose group lost a member at
 * its end is there twice, the stranded copy (garbage) and the one another group adopted.
 */
function locateAll(value: Buffer): Place[] {
  const probe = value.subarray(0, Math.min(64, value.length));
  const out: Place[] = [];
  for (const v of masterVolumes()) {
    const bytes = fs.readFileSync(v.file);
    for (let at = bytes.indexOf(probe); at >= 0; at = bytes.indexOf(probe, at + 1)) {
      if (bytes.subarray(at, at + value.length).equals(value)) out.push({ volume: v.id, at });
    }
  }
  return out;
}

const groupOf = (volume: number): number => Math.floor(volume / GROUP_SPAN);
const serverOf = (volume: number): VolumeServer => servers[groupOf(volume) % servers.length]!;

/** Whether the group's member holds the value at the same place (read from its file directly). */
function onMember(place: Place, value: Buffer): boolean {
  const file = serverOf(place.volume).volumePath(place.volume);
  if (!fs.existsSync(file)) return false;
  const fd = fs.openSync(file, 'r');
  try {
    const got = Buffer.alloc(value.length);
    const n = fs.readSync(fd, got, 0, value.length, place.at);
    return n === value.length && got.equals(value);
  } finally {
    fs.closeSync(fd);
  }
}

/** Member files equal the master's, except up to 7 zero bytes of padding past its end. */
function assertMembersEqual(): void {
  for (const v of masterVolumes()) {
    const local = fs.readFileSync(v.file);
    const remote = fs.readFileSync(serverOf(v.id).volumePath(v.id));
    assert.ok(remote.length >= local.length && remote.length - local.length <= 7, `vol ${v.id}: member ${remote.length} B, master ${local.length} B`);
    const differs = remote.subarray(0, local.length).equals(local) ? -1 : firstDifference(local, remote);
    assert.equal(differs, -1, `vol ${v.id}: member differs from the master's file at byte ${differs}`);
    assert.ok(remote.subarray(local.length).every((b) => b === 0), `vol ${v.id}: the member's tail is not zero padding`);
  }
}

function firstDifference(a: Buffer, b: Buffer): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Flips one byte of the master's local copy of a value; answers the undo. */
function damage(place: Place, value: Buffer): () => void {
  const file = masterVolumes().find((v) => v.id === place.volume)!.file;
  const at = place.at + Math.floor(value.length / 2);
  const flip = (): void => {
    const fd = fs.openSync(file, 'r+');
    try {
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, at);
      b[0] = b[0]! ^ 0x5a;
      fs.writeSync(fd, b, 0, 1, at);
    } finally {
      fs.closeSync(fd);
    }
  };
  flip();
  return flip;
}

// ---- the client's view ------------------------------------------------------------------------

interface Acked {
  key: string;
  sha: string;
  place: Place;
}

type WriteOutcome = { acked: true; place: Place } | { acked: false; code: string };

/** A PUT; a 201 is checked on the group's member at once, anything else must be a clean 503. */
async function write(key: string, value: Buffer): Promise<WriteOutcome> {
  const res = await fetch(`${base}/v1/blobs/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(REQUEST_MS) });
  const text = await res.text();
  if (res.status === 201) {
    const places = locateAll(value);
    assert.ok(places.length > 0, `${key}: acknowledged, but not in the master's volume files`);
    // The acknowledged copy is held by its group's member at the same place.
    const place = places.find((p) => onMember(p, value));
    assert.ok(place !== undefined, `${key}: acknowledged, but no group's member holds it where the master does (${JSON.stringify(places)})`);
    return { acked: true, place };
  }
  assert.equal(res.status, 503, `${key}: neither 201 nor 503: ${res.status} ${text}`);
  const body = JSON.parse(text) as { error?: unknown; code?: unknown };
  assert.ok(typeof body.error === 'string' && typeof body.code === 'string', `${key}: 503 without a JSON error: ${text}`);
  return { acked: false, code: body.code };
}

type ReadOutcome = 'correct' | 'error' | 'cut';

/** A GET that may fail cleanly (5xx JSON, or a cut connection) but never answers wrong bytes. */
async function read(key: string, sha: string): Promise<ReadOutcome> {
  let res: Response;
  try {
    res = await fetch(`${base}/v1/blobs/${key}`, { signal: AbortSignal.timeout(REQUEST_MS) });
  } catch (e) {
    if ((e as Error).name === 'TimeoutError') throw new Error(`GET ${key}: no answer within ${REQUEST_MS} ms`);
    return 'cut';
  }
  if (res.status === 200) {
    let body: Buffer;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch {
      return 'cut';
    }
    assert.equal(sha256(body), sha, `GET ${key}: a 200 with wrong bytes (${body.length} B)`);
    return 'correct';
  }
  const text = await res.text();
  assert.ok(res.status >= 500, `GET ${key}: ${res.status} ${text}`);
  const j = JSON.parse(text) as { error?: unknown; code?: unknown };
  assert.ok(typeof j.error === 'string' && typeof j.code === 'string', `GET ${key}: ${res.status} without a JSON error: ${text}`);
  return 'error';
}

/** The same read over the RESP port (GET key): a bulk reply must hold the right bytes. */
async function readResp(key: string, sha: string): Promise<ReadOutcome> {
  const c = await rawConnect(m.port);
  try {
    c.send(resp('GET', key));
    const done = (t: string): boolean => t.startsWith('-') ? t.includes('\r\n') : bulkEnd(t) >= 0;
    const text = await c.until(done, REQUEST_MS, `GET ${key} over RESP`).catch((e: Error) => {
      if (c.isClosed()) return null;
      throw e;
    });
    if (text === null) return 'cut';
    if (text.startsWith('-')) return 'error';
    const bytes = c.received();
    const head = bytes.indexOf('\r\n');
    const value = bytes.subarray(head + 2, bulkEnd(text) - 2);
    assert.equal(sha256(value), sha, `RESP GET ${key}: a bulk reply with wrong bytes (${value.length} B)`);
    return 'correct';
  } finally {
    c.destroy();
  }
}

/** Where a complete bulk reply ends in `t` (latin1), or -1. */
function bulkEnd(t: string): number {
  const hit = /^\$(\d+)\r\n/.exec(t);
  if (hit === null) return -1;
  const end = hit[0].length + Number(hit[1]) + 2;
  return t.length >= end ? end : -1;
}

/** Writes blobs until one lies in each group (both healthy now); answers them by group. */
async function victims(tag: string): Promise<Map<number, { key: string; value: Buffer; place: Place }>> {
  const byGroup = new Map<number, { key: string; value: Buffer; place: Place }>();
  for (let i = 0; i < 30 && byGroup.size < 2; i++) {
    const key = `${tag}/victim-${i}`;
    const value = randomBytes(8 * KB);
    const out = await write(key, value);
    // A clean 503 with nothing faulty is possible (see the report: first write to a new
    // member volume); the next key is tried.
    if (out.acked && !byGroup.has(groupOf(out.place.volume))) byGroup.set(groupOf(out.place.volume), { key, value, place: out.place });
  }
  assert.equal(byGroup.size, 2, `${tag}: no blob landed in each group`);
  return byGroup;
}

async function writes(tag: string, acked: Acked[]): Promise<string[]> {
  const refused: string[] = [];
  for (const [i, size] of SIZES.entries()) {
    const key = `${tag}/w-${i}-${size}`;
    const value = randomBytes(size);
    const out = await write(key, value);
    if (out.acked) acked.push({ key, sha: sha256(value), place: out.place });
    else refused.push(out.code);
  }
  return refused;
}

// ---- the faults -------------------------------------------------------------------------------

interface Case {
  name: string;
  /** Put on the faulty server's proxy while the writes run (the PUT .../raw bodies). */
  write: Fault;
  /** Put on it while the damaged blob is read remotely (the needle GETs); same object = both at once. */
  read: Fault;
  ms: number;
  /** A product defect this case finds, reported; the case runs and must fail until it is fixed. */
  todo?: string;
}

const delay: Fault = { kind: 'delay', ms: 300 };
const blackhole: Fault = { kind: 'blackhole' };
const answer503: Fault = { kind: 'status', code: 503 };
const answer507: Fault = { kind: 'status', code: 507 };
const CASES: Case[] = [
  { name: 'delay 300 ms each way (under the 30 s no-progress timeout)', write: delay, read: delay, ms: 60_000 },
  {
    name: 'blackhole',
    write: blackhole,
    read: blackhole,
    ms: 150_000,
  },
  {
    name: 'reset mid-body',
    write: { kind: 'reset', afterBytes: 32 * KB, direction: 'toServer', origin: 'body' },
    read: { kind: 'reset', afterBytes: 2 * KB, direction: 'toClient', origin: 'body' },
    ms: 60_000,
  },
  {
    name: 'truncated body',
    write: { kind: 'truncate', afterBytes: 32 * KB, direction: 'toServer', origin: 'body' },
    read: { kind: 'truncate', afterBytes: 2 * KB, direction: 'toClient', origin: 'body' },
    ms: 60_000,
  },
  { name: 'answers 503 itself', write: answer503, read: answer503, ms: 60_000 },
  { name: 'answers 507 itself', write: answer507, read: answer507, ms: 60_000 },
  // Last: what it finds stays in the member's file and would fail every later comparison.
  {
    name: 'a flipped byte',
    write: { kind: 'flip', atByte: 5000, direction: 'toServer', origin: 'body' },
    read: { kind: 'flip', atByte: 200, direction: 'toClient', origin: 'body' },
    ms: 60_000,
  },
];

for (const [n, c] of CASES.entries()) {
  const faulty = n % 2;
  test(`${c.name} on server ${faulty}: writes acknowledged only when on every member, reads never wrong`, { timeout: c.ms, ...(c.todo === undefined ? {} : { todo: c.todo }) }, async () => {
    const proxy = proxies[faulty]!;
    const tag = `f${n}`;
    await waitHealthy(30_000);
    const picked = await victims(tag);
    const remote = picked.get(faulty)!;
    const control = picked.get(1 - faulty)!;
    // Both local copies damaged: each read goes to its group's remote member.
    const undo = [damage(remote.place, remote.value), damage(control.place, control.value)];
    const acked: Acked[] = [];
    const reads: ReadOutcome[] = [];
    const readRemote = async (): Promise<void> => {
      reads.push(await readResp(remote.key, sha256(remote.value)));
      reads.push(await read(remote.key, sha256(remote.value)));
      // The other group's member is healthy: its copy must be served, byte for byte (over RESP;
      // HTTP cuts instead, see the todo test below).
      assert.equal(await readResp(control.key, sha256(control.value)), 'correct', 'a damaged local copy read from the healthy member');
      assert.notEqual(await read(control.key, sha256(control.value)), 'error', 'HTTP: a 5xx with a healthy member');
    };
    let refused: string[] = [];
    try {
      if (c.write === c.read) {
        proxy.set(c.write);
        [refused] = await Promise.all([writes(tag, acked), readRemote()]);
      } else {
        proxy.set(c.write);
        refused = await writes(tag, acked);
        heal(proxy);
        proxy.set(c.read);
        await readRemote();
      }
      if (c.read.kind === 'delay') assert.equal(reads[0], 'correct', 'a slow member still serves the right bytes (RESP)');
      assert.ok(acked.length > 0, `no write acknowledged under "${c.name}" (refused: ${refused.join(', ')})`);
      // (a) every acknowledged blob reads back, fault still on (its local copy is whole).
      for (const a of acked) assert.equal(await read(a.key, a.sha), 'correct', `${a.key} after its 201`);
    } finally {
      heal(proxy);
      for (const u of undo) u();
    }
    // (b) once healed, the members equal the master's files (repair only appends what is missing).
    await waitHealthy(45_000);
    assertMembersEqual();
    for (const a of acked) assert.equal(await read(a.key, a.sha), 'correct', `${a.key} after repair`);
    assert.equal(await readResp(remote.key, sha256(remote.value)), 'correct', `${remote.key} after repair`);
    const stats = proxy.stats().faults;
    console.log(`# ${c.name}: acked ${acked.length}/${SIZES.length}, refused [${refused.join(', ')}], remote read ${reads.join(', ')}, proxy ${JSON.stringify(stats)}`);
  });
}

// The RESP GET of a needle whose local copy is damaged is served by the healthy member (checked
// above); the HTTP GET of the same blob is cut every time, retried or not.
test('HTTP GET of a blob whose local copy is damaged is served by the healthy member', { timeout: 60_000 }, async () => {
  await waitHealthy(30_000);
  const picked = await victims('http-failover');
  const v = picked.get(0)!;
  const undo = damage(v.place, v.value);
  try {
    const outcomes: ReadOutcome[] = [];
    // The first read may be cut (bytes were out when the damage showed); later ones go remote.
    for (let i = 0; i < 3; i++) outcomes.push(await read(v.key, sha256(v.value)));
    assert.equal(outcomes[2], 'correct', `outcomes: ${outcomes.join(', ')}`);
  } finally {
    undo();
  }
});
