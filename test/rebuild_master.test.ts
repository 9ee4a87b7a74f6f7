// Rebuilding wal.log and index.hash from the volume log (issue 13: "delete the index and the WAL,
// rebuild, compare with the index before (key, value, expiry)"; docs/formats.md §Log volumes),
// end to end with real processes: a master (node cmd/master.js, 1 MB volumes) takes a workload
// over TCP (ioredis) and HTTP (fetch): SETs, overwrites, DELs, EXPIRE/PEXPIRE and a PERSIST, a SET
// NX that fails, MULTI/EXEC, INCR and APPEND, a WATCH'ed EXEC that fails, RENAME, a FLUSHALL in
// the middle, blobs (one with Content-Type and X-Brise-Meta-*, one of 3 MB, one with ?ttl, one
// DELETEd), a COMPACT and a VACUUM (MOVE_IF and RETIRE records). The state is read back key by
// key (SCAN; SHA-256 of GET; PEXPIRETIME; the representation headers of HEAD; for blobs the
// SHA-256 of an HTTP GET too); then the master is stopped, wal.log and index.hash* are lost,
// `node cmd/rebuild.js` rebuilds them, the master starts again, and the state must be exactly
// the same. Scenarios: kill -9 on one drive; a clean stop with two extra drives (the volume log
// on the last one, found through vol-registry.json); wal.log damaged in its middle (the master
// refuses it; the rebuild takes every acknowledged record, more than check-wal --fix keeps);
// and the refusals (a running master's lock, a whole WAL, no volume log).
// Owns: the masters it starts (stopped by their own PID in `finally`, stopAll in `after`), the
// rebuild.js / check-wal.js children (bounded, killed by PID past their bound), its temp dirs.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { patternChunks, sha256Of, sleep, startMaster, stopAll, streamRequest, tempDir, within, type MasterProcess } from './helpers/master_process.js';
import { parseVacuum, smallValue, volinfo, type VolumeRow } from './helpers/vacuum_model.js';
import { NodeFs } from '../src/runtime/fs.js';
import { scanFrames } from '../src/storage/wal_reader.js';

const ROOT = path.join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const REBUILD_JS = path.join(ROOT, 'cmd', 'rebuild.js');
const CHECK_WAL_JS = path.join(ROOT, 'cmd', 'check-wal.js');
/** 1 MB volumes: a workload of a few MB seals several, so a VACUUM has one to move and retire. */
const MASTER_ARGS = ['--max-volume-size', '1mb', '--vacuum-every', '0', '--vacuum-rate', '0'];
const TOOL_MS = 60_000;
const MAX_KEYS = 5000;
const KEYS = 240;
const BIG_BLOB = 3 * 1024 * 1024;
/**
 * Headers of a GET/HEAD that belong to the stored value (not Date, not a TTL counted down).
 * Last-Modified is kept apart: see checkModified.
 */
const VALUE_HEADERS = new Set(['content-type', 'content-length', 'etag', 'content-disposition', 'content-encoding', 'content-language', 'cache-control', 'expires']);

after(stopAll);

// ---- the processes -----------------------------------------------------------------------------

interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a cmd/*.js program to its end (bounded: killed by its PID past TOOL_MS). */
async function runTool(script: string, args: string[]): Promise<ToolRun> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  try {
    const code = await within(exit, TOOL_MS, `${path.basename(script)} ${args.join(' ')}`);
    return { code, stdout, stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

const rebuild = (...args: string[]): Promise<ToolRun> => runTool(REBUILD_JS, args);
const checkWal = (...args: string[]): Promise<ToolRun> => runTool(CHECK_WAL_JS, args);

interface Clients {
  redis: Redis;
  other: Redis;
  base: string;
  httpPort: number;
}

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, commandTimeout: 30_000, retryStrategy: () => null });
  c.on('error', () => undefined);
  return c;
}

async function connect(m: MasterProcess): Promise<Clients> {
  const base = `http://127.0.0.1:${m.httpPort}`;
  await waitHttp(base);
  return { redis: client(m.port), other: client(m.port), base, httpPort: m.httpPort };
}

function disconnect(c: Clients | undefined): void {
  c?.redis.disconnect();
  c?.other.disconnect();
}

/** Waits (bounded) until the HTTP front end answers /v1/status. */
async function waitHttp(base: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await fetch(`${base}/v1/status`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > deadline) assert.fail(`the HTTP front end at ${base} does not answer /v1/status`);
    await sleep(50);
  }
}

/** Stops a master (by its PID) if a failing test left it running. */
async function stopIfRunning(m: MasterProcess | undefined): Promise<void> {
  if (m !== undefined && !m.exited()) await m.stop().catch(() => undefined);
}

// ---- the workload ------------------------------------------------------------------------------

const key = (i: number): string => `k:${i}`;
const sizeOf = (i: number): number => 2000 + ((i * 37) % 6000);
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** What the workload promises about a few keys: the state read back must show it took effect. */
interface Expected {
  values: Map<string, string>;
  absent: Set<string>;
  persistent: Set<string>;
  expiring: Set<string>;
}

/** SETs in groups of 20 in flight (group commits), each acknowledged. */
async function setMany(redis: Redis, keys: string[], round: number, size: (k: string) => number): Promise<void> {
  for (let at = 0; at < keys.length; at += 20) {
    const replies = await Promise.all(keys.slice(at, at + 20).map((k) => redis.set(k, smallValue(k, round, size(k)))));
    for (const r of replies) assert.equal(r, 'OK');
  }
}

async function putBlob(c: Clients, k: string, body: Buffer | AsyncIterable<Buffer>, size: number, headers: Record<string, string> = {}, query = ''): Promise<void> {
  const res = await streamRequest({
    method: 'PUT', port: c.httpPort, path: `/v1/blobs/${k}${query}`, headers: { 'content-length': String(size), ...headers },
    body: Buffer.isBuffer(body) ? (async function* () { yield body; })() : body, keep: true, ms: 60_000,
  });
  assert.ok(res.status === 201 || res.status === 200, `PUT ${k}: ${res.status} ${res.body.toString()}`);
}

/** Runs every kind of write once or more; answers what some keys must look like after it. */
async function workload(c: Clients): Promise<Expected> {
  const e: Expected = { values: new Map(), absent: new Set(), persistent: new Set(), expiring: new Set() };
  const r = c.redis;
  await flushedWrites(c, e);
  await setMany(r, Array.from({ length: KEYS }, (_, i) => key(i)), 0, (k) => sizeOf(Number(k.slice(2))));
  await setMany(r, Array.from({ length: KEYS }, (_, i) => key(i)).filter((_, i) => i % 3 === 1), 1, (k) => sizeOf(Number(k.slice(2))));
  for (let i = 0; i < KEYS; i += 5) assert.equal(await r.del(key(i)), 1, `DEL ${key(i)}`);
  await expiries(c, e);
  await guarded(c, e);
  await blobs(c, e);
  assert.equal(await r.call('COMPACT'), 'OK', 'COMPACT');
  // After the COMPACT: records on top of the new WAL's snapshot, and garbage for the vacuum.
  const rewritten = Array.from({ length: KEYS }, (_, i) => key(i)).filter((_, i) => i % 3 === 2);
  const posts = Array.from({ length: 100 }, (_, i) => `post:${i}`);
  await setMany(r, rewritten, 2, (k) => sizeOf(Number(k.slice(2))));
  await setMany(r, posts, 0, () => 3000);
  assert.equal(await r.del('post:7', 'post:8', 'nothing'), 2);
  assert.equal(await r.pexpire('post:9', 5_400_000), 1);
  e.expiring.add('post:9');
  await vacuumOne(c);
  // After the VACUUM: its MOVE_IF and RETIRE records are in the middle, not at the end.
  const afters = Array.from({ length: 20 }, (_, i) => `after:${i}`);
  await setMany(r, afters, 0, () => 700);
  assert.equal(await r.set(key(0), 'back after its DEL'), 'OK');
  e.values.set(key(0), 'back after its DEL');
  assert.equal(await r.expire('after:1', 4000), 1);
  e.expiring.add('after:1');
  assert.equal(await r.del('after:2'), 1);
  e.absent.add('after:2');
  return e;
}

/** Writes that a FLUSHALL then wipes: none of them may come back. */
async function flushedWrites(c: Clients, e: Expected): Promise<void> {
  await setMany(c.redis, Array.from({ length: 40 }, (_, i) => `pre:${i}`), 0, () => 300);
  assert.equal(await c.redis.expire('pre:0', 3600), 1);
  assert.equal(await c.redis.flushall(), 'OK');
  for (const i of [0, 1, 39]) e.absent.add(`pre:${i}`);
}

async function expiries(c: Clients, e: Expected): Promise<void> {
  const r = c.redis;
  for (let i = 2; i < KEYS; i += 7) {
    if (i % 5 === 0) continue;
    assert.equal(await r.expire(key(i), 3600 + i), 1, `EXPIRE ${key(i)}`);
    // Those of them that the SETs after the COMPACT overwrite lose their TTL (as in Redis).
    if (i % 3 !== 2) e.expiring.add(key(i));
  }
  for (let i = 3; i < KEYS; i += 11) {
    if (i % 5 === 0) continue;
    assert.equal(await r.pexpire(key(i), 7_200_000 + i), 1, `PEXPIRE ${key(i)}`);
    if (i % 3 !== 2) e.expiring.add(key(i));
  }
  // k:9 had an EXPIRE, and no later write would clear it: only the PERSIST does.
  assert.equal(await r.persist(key(9)), 1, 'PERSIST k:9');
  e.expiring.delete(key(9));
  e.persistent.add(key(9));
  assert.equal(await r.set('ttl:set-ex', 'with EX', 'EX', 5000), 'OK');
  e.expiring.add('ttl:set-ex');
  assert.equal(await r.set('ren:src', 'renamed with its TTL', 'EX', 6000), 'OK');
  assert.equal(await r.rename('ren:src', 'ren:dst'), 'OK');
  e.absent.add('ren:src');
  e.values.set('ren:dst', 'renamed with its TTL');
  e.expiring.add('ren:dst');
}

/** Writes whose effect is decided when they commit: NX, transactions, guards, WATCH. */
async function guarded(c: Clients, e: Expected): Promise<void> {
  const r = c.redis;
  assert.equal(await r.set('nx:taken', 'first'), 'OK');
  assert.equal(await r.set('nx:taken', 'nx-must-not-come-back', 'NX'), null, 'SET NX on a key that exists fails');
  e.values.set('nx:taken', 'first');
  assert.equal(await r.set('nx:fresh', 'nx took it', 'NX'), 'OK');
  e.values.set('nx:fresh', 'nx took it');
  const tx = await r.multi().set('tx:a', 'one').set('tx:b', 'two').del(key(1)).incr('counter').exec();
  assert.deepEqual(tx, [[null, 'OK'], [null, 'OK'], [null, 1], [null, 1]], 'MULTI/EXEC');
  e.values.set('tx:a', 'one');
  e.absent.add(key(1));
  for (let i = 0; i < 5; i++) await r.incr('counter');
  e.values.set('counter', '6');
  for (let i = 0; i < 4; i++) await r.append('text', `part${i};`);
  e.values.set('text', 'part0;part1;part2;part3;');
  assert.equal(await r.set('watched', 'initial'), 'OK');
  assert.equal(await r.watch('watched'), 'OK');
  assert.equal(await c.other.set('watched', 'by-the-other-client'), 'OK');
  assert.equal(await r.multi().set('watched', 'from-the-failed-exec').set('watch:side', 'never').exec(), null, 'a WATCHed EXEC after a change fails');
  e.values.set('watched', 'by-the-other-client');
  e.absent.add('watch:side');
}

async function blobs(c: Clients, e: Expected): Promise<void> {
  const meta = Buffer.from('# notes\nthe blob with metadata\n');
  await putBlob(c, 'blob/meta', meta, meta.length, { 'content-type': 'text/markdown; charset=utf-8', 'x-brise-meta-owner': 'ops-team', 'x-brise-meta-roll': '12', 'cache-control': 'max-age=60' });
  e.values.set('blob/meta', meta.toString());
  await putBlob(c, 'blob/big', patternChunks(31, BIG_BLOB), BIG_BLOB, { 'content-type': 'application/x-big' });
  assert.equal(await c.redis.expire('blob/big', 9000), 1);
  e.expiring.add('blob/big');
  await putBlob(c, 'blob/ttl', Buffer.from('an hour'), 7, {}, '?ttl=1h');
  e.expiring.add('blob/ttl');
  await putBlob(c, 'blob/gone', Buffer.from('deleted over HTTP'), 17);
  const del = await fetch(`${c.base}/v1/blobs/blob/gone`, { method: 'DELETE', signal: AbortSignal.timeout(10_000) });
  assert.ok(del.status === 204 || del.status === 200, `DELETE blob/gone: ${del.status}`);
  e.absent.add('blob/gone');
}

/** VACUUMs the sealed volume with the most garbage that still holds live keys (MOVE_IF, RETIRE). */
async function vacuumOne(c: Clients): Promise<void> {
  const rows = await volinfo(c.redis);
  const newest = new Map<number, number>();
  for (const v of rows) newest.set(v.group, Math.max(newest.get(v.group) ?? -1, v.id));
  const sealed = rows.filter((v) => v.id !== newest.get(v.group) && v.live > 0 && v.garbage > 0);
  assert.ok(sealed.length > 0, `a sealed volume with live keys and garbage: ${JSON.stringify(rows)}`);
  const target = sealed.reduce((a: VolumeRow, b: VolumeRow) => (b.garbage > a.garbage ? b : a));
  const [report] = parseVacuum(await c.redis.call('VACUUM', String(target.id)));
  assert.ok(report !== undefined, 'VACUUM answers one row');
  assert.deepEqual(report.errors, []);
  assert.ok(report.moved > 0 && report.removed === 1, `volume ${target.id} moved and retired: ${JSON.stringify(report)}`);
}

// ---- the state -----------------------------------------------------------------------------------

interface KeyState {
  sha: string;
  /** PEXPIRETIME: absolute ms, -1 without an expiry. */
  expiry: number;
  /** The value's headers of a HEAD, `name: value` sorted. */
  headers: string;
  /** Last-Modified of the HEAD, in ms. */
  modified: number;
}

type State = Map<string, KeyState>;

async function scanKeys(redis: Redis): Promise<string[]> {
  const seen = new Set<string>();
  let cursor = '0';
  for (let rounds = 0; ; rounds++) {
    assert.ok(rounds < MAX_KEYS, 'SCAN ends');
    const [next, batch] = await redis.scan(cursor, 'COUNT', 500);
    for (const k of batch) seen.add(k);
    assert.ok(seen.size <= MAX_KEYS, `at most ${MAX_KEYS} keys`);
    cursor = next;
    if (cursor === '0') return [...seen].sort();
  }
}

function valueHeaders(h: Headers): string {
  const out: string[] = [];
  h.forEach((value, name) => {
    if (VALUE_HEADERS.has(name) || name.startsWith('x-brise-meta-')) out.push(`${name}: ${value}`);
  });
  return out.sort().join('\n');
}

/** Every key with its value's SHA-256, its exact expiry and its headers; blobs also by HTTP GET. */
async function readState(c: Clients): Promise<State> {
  const state: State = new Map();
  const keys = await scanKeys(c.redis);
  // A few keys at a time: the reads are independent, and one at a time takes seconds.
  for (let at = 0; at < keys.length; at += 16) {
    const batch = keys.slice(at, at + 16);
    const read = await Promise.all(batch.map((k) => readKey(c, k)));
    batch.forEach((k, i) => state.set(k, read[i]!));
  }
  return state;
}

async function readKey(c: Clients, k: string): Promise<KeyState> {
  const [value, expiry] = await Promise.all([c.redis.getBuffer(k), c.redis.call('PEXPIRETIME', k) as Promise<number>]);
  assert.ok(value !== null, `${k} is listed by SCAN and has a value (nothing expires in this test)`);
  const head = await fetch(`${c.base}/v1/blobs/${k}`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
  assert.equal(head.status, 200, `HEAD ${k}`);
  const digest = sha(value);
  if (k.startsWith('blob/')) {
    const got = await streamRequest({ method: 'GET', port: c.httpPort, path: `/v1/blobs/${k}`, ms: 30_000 });
    assert.equal(got.status, 200, `GET ${k} over HTTP`);
    assert.equal(got.sha256, digest, `${k}: the same bytes over HTTP and TCP`);
  }
  const modified = Date.parse(head.headers.get('last-modified') ?? '');
  assert.ok(Number.isFinite(modified), `${k} has a Last-Modified`);
  return { sha: digest, expiry, headers: valueHeaders(head.headers), modified };
}

/** The workload took effect: FLUSHALL, NX, transactions, WATCH, RENAME, PERSIST, blobs. */
async function checkExpected(s: State, e: Expected): Promise<void> {
  for (const [k, v] of e.values) assert.equal(s.get(k)?.sha, sha(v), `${k} holds ${JSON.stringify(v.slice(0, 40))}`);
  for (const k of e.absent) assert.equal(s.has(k), false, `${k} is absent`);
  for (const k of e.persistent) assert.equal(s.get(k)?.expiry, -1, `${k} has no expiry`);
  for (const k of e.expiring) assert.ok((s.get(k)?.expiry ?? -1) > Date.now(), `${k} has an expiry to come: ${JSON.stringify(s.get(k))}`);
  assert.equal([...s.keys()].filter((k) => k.startsWith('pre:')).length, 0, 'nothing written before the FLUSHALL');
  const meta = s.get('blob/meta')?.headers ?? '';
  for (const h of ['content-type: text/markdown; charset=utf-8', 'x-brise-meta-owner: ops-team', 'x-brise-meta-roll: 12', 'cache-control: max-age=60']) {
    assert.ok(meta.split('\n').includes(h), `blob/meta's headers have ${h}: ${meta}`);
  }
  assert.equal(s.get('blob/big')?.sha, await sha256Of(patternChunks(31, BIG_BLOB)), 'blob/big holds its 3 MB');
}

/** The first differences between two states (value, expiry, headers), in words (empty when equal). */
function differences(a: State, b: State, limit = 8): string[] {
  const out: string[] = [];
  const shown = (v: KeyState): string => JSON.stringify({ sha: v.sha, expiry: v.expiry, headers: v.headers });
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined) out.push(`${k} is gone`);
    else if (shown(v) !== shown(w)) out.push(`${k}: ${shown(v)} became ${shown(w)}`);
  }
  for (const k of b.keys()) if (!a.has(k)) out.push(`${k} appeared: ${JSON.stringify(b.get(k))}`);
  return out.slice(0, limit);
}

function assertSameState(before: State, after: State, what: string): void {
  assert.deepEqual(differences(before, after), [], `${what}: the state differs`);
  assert.equal(after.size, before.size, `${what}: key count`);
  checkModified(before, after, what);
}

/**
 * Last-Modified after the rebuild: exactly the same for every key, those in the WAL's snapshot
 * included (a snapshot chunk's SET carries the value's modified time: without it they came back
 * with the COMPACT's time), those of the tail replayed with their commit time, and those a
 * vacuum moved (MOVE_IF keeps it).
 */
function checkModified(before: State, after: State, what: string): void {
  let compared = 0;
  for (const [k, v] of before) {
    const w = after.get(k);
    if (w === undefined) continue;
    assert.equal(new Date(w.modified).toUTCString(), new Date(v.modified).toUTCString(), `${what}: Last-Modified of ${k}`);
    compared += 1;
  }
  assert.ok(compared >= 100, `${what}: Last-Modified compared for ${compared} keys`);
}

// ---- files ---------------------------------------------------------------------------------------

const logFiles = (drive: string): string[] => {
  const dir = path.join(drive, 'log');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => /^log-\d+\.data$/.test(n)) : [];
};

/** Deletes wal.log and index.hash* (the loss the rebuild repairs); answers the names deleted. */
function loseWalAndIndex(dir: string): string[] {
  const names = fs.readdirSync(dir).filter((n) => n === 'wal.log' || n.startsWith('index.hash')).sort();
  for (const n of names) fs.unlinkSync(path.join(dir, n));
  return names;
}

/** Every file of the data dir (not LOCK, which a rebuild takes and gives back) and its SHA-256. */
function dirDigest(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, n);
    if (n !== 'LOCK' && fs.statSync(p).isFile()) out.set(n, sha(fs.readFileSync(p)));
  }
  return out;
}

/** The rebuild's report: exit 0, the live key count, no warning. */
function assertRebuilt(run: ToolRun, keys: number): void {
  assert.equal(run.code, 0, `rebuild.js exits 0: ${run.stdout}${run.stderr}`);
  assert.match(run.stdout, new RegExp(`rebuilt wal\\.log \\(\\d+ bytes\\) and the index: ${keys} live key\\(s\\)`), run.stdout);
  assert.doesNotMatch(run.stdout, /WARNING/, run.stdout);
}

/** The last LSN in a line of check-wal's or rebuild.js's report. */
function lastLsn(text: string, re: RegExp): number {
  const m = re.exec(text);
  assert.ok(m !== null, `${re} in ${text}`);
  return Number(m[1]);
}

/** Flips bytes of a committed record in the middle of the WAL's records (after the snapshot). */
function damageMiddle(walPath: string): { lsn: number; offset: number } {
  const frames: Array<{ lsn: number; offset: number; length: number }> = [];
  const it = scanFrames(new NodeFs(), walPath);
  for (let next = it.next(); next.done !== true; next = it.next()) {
    if (next.value.record.kind === 0) frames.push({ lsn: next.value.record.lsn, offset: next.value.offset, length: next.value.frame.length });
  }
  assert.ok(frames.length >= 10, `the WAL has records after its snapshot: ${frames.length}`);
  const f = frames[Math.floor(frames.length / 2)]!;
  const bytes = fs.readFileSync(walPath);
  for (let i = 0; i < 4; i++) bytes[f.offset + Math.floor(f.length / 2) + i]! ^= 0xa5;
  fs.writeFileSync(walPath, bytes);
  return { lsn: f.lsn, offset: f.offset };
}

/** A master on dataDir that ran the workload: still running, with the state it serves. */
async function afterWorkload(dataDir: string, args: string[]): Promise<{ m: MasterProcess; before: State }> {
  const m = await startMaster({ http: true, dataDir, args });
  const c = await connect(m);
  try {
    const expected = await workload(c);
    const before = await readState(c);
    await checkExpected(before, expected);
    return { m, before };
  } finally {
    disconnect(c);
  }
}

/** Starts a master on dataDir again and checks that it serves `before` exactly. */
async function assertServes(dataDir: string, args: string[], before: State, what: string): Promise<MasterProcess> {
  const m = await startMaster({ http: true, dataDir, args });
  const c = await connect(m);
  try {
    assertSameState(before, await readState(c), what);
  } finally {
    disconnect(c);
  }
  return m;
}

// ---- the tests -----------------------------------------------------------------------------------

describe('rebuild.js: wal.log and index.hash from the volume log, with real masters', { timeout: 240_000 }, () => {
  it('one drive, kill -9: WAL and index deleted, rebuilt, the same keys, values, expiries and blob headers', { timeout: 90_000 }, async () => {
    const root = tempDir('brisedb-rebuild-');
    const dataDir = path.join(root, 'data');
    let m: MasterProcess | undefined;
    try {
      const ran = await afterWorkload(dataDir, MASTER_ARGS);
      m = ran.m;
      const before = ran.before;
      assert.ok(logFiles(dataDir).length > 0, 'the volume log is in the data dir\'s log/ (one drive)');
      assert.equal(await m.kill(), 'SIGKILL', `master pid ${m.pid} killed by SIGKILL`);

      assert.deepEqual(loseWalAndIndex(dataDir).filter((n) => n === 'wal.log' || n === 'index.hash'), ['index.hash', 'wal.log']);
      const run = await rebuild('--data', dataDir);
      assertRebuilt(run, before.size);
      assert.ok(fs.existsSync(path.join(dataDir, 'wal.log')), 'a new wal.log');
      assert.equal(fs.existsSync(path.join(dataDir, 'wal.log.tmp')), false, 'no wal.log.tmp left');

      m = await assertServes(dataDir, MASTER_ARGS, before, 'after kill -9 and the rebuild');
    } finally {
      await stopIfRunning(m);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('two extra drives, clean stop: the volume log on the last drive, found through vol-registry.json', { timeout: 90_000 }, async () => {
    const root = tempDir('brisedb-rebuild-');
    const dataDir = path.join(root, 'data');
    const drives = [path.join(root, 'drive1'), path.join(root, 'drive2')];
    for (const d of drives) fs.mkdirSync(d);
    const args = [...MASTER_ARGS, '--drives', drives.join(',')];
    let m: MasterProcess | undefined;
    try {
      const ran = await afterWorkload(dataDir, args);
      m = ran.m;
      const before = ran.before;
      assert.equal(await m.stop(), 0, 'the master stops cleanly');

      assert.ok(logFiles(drives[1]!).length > 0, 'the volume log is in the last extra drive\'s log/');
      assert.deepEqual(logFiles(dataDir), [], 'no volume log in the data dir');
      assert.deepEqual(logFiles(drives[0]!), [], 'no volume log on the first extra drive');
      assert.ok(fs.existsSync(path.join(dataDir, 'vol-registry.json')), 'vol-registry.json is kept');
      loseWalAndIndex(dataDir);
      // No --drives: the registry names them.
      const run = await rebuild('--data', dataDir);
      assertRebuilt(run, before.size);

      m = await assertServes(dataDir, args, before, 'after a clean stop and the rebuild from the last drive');
    } finally {
      await stopIfRunning(m);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('wal.log damaged in its middle: the master refuses it; the rebuild takes every acknowledged record back', { timeout: 90_000 }, async () => {
    const root = tempDir('brisedb-rebuild-');
    const dataDir = path.join(root, 'data');
    const walPath = path.join(dataDir, 'wal.log');
    let m: MasterProcess | undefined;
    try {
      const ran = await afterWorkload(dataDir, MASTER_ARGS);
      m = ran.m;
      const before = ran.before;
      assert.equal(await m.stop(), 0, 'the master stops cleanly');

      const whole = await checkWal('--data', dataDir);
      assert.equal(whole.code, 0, whole.stdout + whole.stderr);
      const wholeLast = lastLsn(whole.stdout, /records read, last LSN (\d+)/);
      const damaged = damageMiddle(walPath);
      const damagedSha = sha(fs.readFileSync(walPath));
      await assert.rejects(startMaster({ http: true, dataDir, args: MASTER_ARGS }), /CORRUPT|damaged in the middle/, 'the master refuses a WAL damaged in its middle');

      const report = await checkWal('--data', dataDir);
      assert.equal(report.code, 1, report.stdout);
      assert.match(report.stdout, /DAMAGED in the middle/);
      // What check-wal --fix would keep: the records before the damage.
      const fixKeeps = lastLsn(report.stdout, /records read, last LSN (\d+)/);
      assert.ok(fixKeeps < damaged.lsn && damaged.lsn <= wholeLast, `check-wal stops at LSN ${fixKeeps}, before the damaged record ${damaged.lsn} of ${wholeLast}`);

      const run = await rebuild('--data', dataDir);
      assertRebuilt(run, before.size);
      assert.equal(lastLsn(run.stdout, /^volume log: .*last LSN (\d+)$/m), wholeLast, `the volume log gives back every record up to LSN ${wholeLast}: ${run.stdout}`);
      assert.match(run.stdout, new RegExp(`old wal\\.log: last LSN ${fixKeeps}, damaged`), run.stdout);
      const kept = fs.readdirSync(dataDir).filter((n) => n.startsWith('wal.log.before-rebuild-'));
      assert.equal(kept.length, 1, `the old wal.log is kept: ${kept.join(', ')}`);
      assert.equal(sha(fs.readFileSync(path.join(dataDir, kept[0]!))), damagedSha, 'the kept wal.log is the damaged one, byte for byte');

      m = await assertServes(dataDir, MASTER_ARGS, before, 'after the rebuild of a WAL damaged in its middle');
    } finally {
      await stopIfRunning(m);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('refusals: a running master\'s lock; a whole WAL (nothing rebuilt, files unchanged); no volume log', { timeout: 60_000 }, async () => {
    const root = tempDir('brisedb-rebuild-');
    const dataDir = path.join(root, 'data');
    let m: MasterProcess | undefined;
    let c: Clients | undefined;
    try {
      m = await startMaster({ http: true, dataDir, args: MASTER_ARGS });
      c = await connect(m);
      await setMany(c.redis, Array.from({ length: 30 }, (_, i) => `r:${i}`), 0, () => 200);
      const locked = await rebuild('--data', dataDir);
      assert.equal(locked.code, 1, `rebuild beside a running master: ${locked.stdout}${locked.stderr}`);
      assert.match(locked.stderr, new RegExp(`held by pid ${m.pid}`), locked.stderr);
      assert.match(locked.stderr, /stop the master first/);
      assert.deepEqual(fs.readdirSync(dataDir).filter((n) => n.includes('before-rebuild') || n === 'wal.log.tmp'), [], 'nothing was set aside or written');
      assert.equal(await c.redis.get('r:29'), smallValue('r:29', 0, 200).toString(), 'the master still serves');
      disconnect(c);
      assert.equal(await m.stop(), 0, 'the master stops cleanly');

      const files = dirDigest(dataDir);
      assert.ok(files.has('wal.log') && files.has('index.hash'), `wal.log and index.hash: ${[...files.keys()].join(', ')}`);
      const whole = await rebuild('--data', dataDir);
      assert.equal(whole.code, 0, whole.stdout + whole.stderr);
      assert.match(whole.stdout, /nothing rebuilt/);
      assert.deepEqual(dirDigest(dataDir), files, 'a rebuild with a whole WAL changes no file of the data dir');

      // No volume log (a data dir from before it, or its drive lost): a clear refusal, no empty WAL.
      fs.rmSync(path.join(dataDir, 'log'), { recursive: true });
      loseWalAndIndex(dataDir);
      const none = await rebuild('--data', dataDir);
      assert.equal(none.code, 1, none.stdout + none.stderr);
      assert.match(none.stderr, /no log volume with a base file in .*nothing to rebuild from/, none.stderr);
      assert.deepEqual(fs.readdirSync(dataDir).filter((n) => n.startsWith('wal.log') || n.startsWith('index.hash')), [], 'no WAL or index was made from nothing');
      const missing = await rebuild('--data', path.join(root, 'no-such-dir'));
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no data dir/);
    } finally {
      disconnect(c);
      await stopIfRunning(m);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
