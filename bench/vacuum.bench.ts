// `npm run bench:vacuum`: the vacuum of issue 13 under load, on this machine, against a master
// this script starts (node cmd/master.js --sync always --vacuum-every 0 --vacuum-rate R):
//   1. fill: 2 GiB of blobs over HTTP PUT, sizes log-uniform from 16 KiB to 4 MiB (seeded), and
//      16,384 values of 1 KiB over TCP SET scattered among them, two writers at a time;
//   2. churn: a seeded 60 % of the keys overwritten (new values of the same size distribution),
//      another 20 % deleted, so about 80 % of the written bytes become garbage;
//   3. before: readers and writers for a fixed time (--seconds), no vacuum;
//   4. during: VACUUM (over TCP; POST /v1/admin/vacuum with --via http) under the same readers
//      and writers, /v1/status polled for its progress, until it answers and 1 s more (the
//      removed volume's handles close then);
//   5. after: the same load as long as before, no vacuum: a control, since other processes on
//      the machine move latency too (after close to before says a change during was the
//      vacuum's); the whole machine's busy cores are printed per phase for the same reason;
//   6. then the disk bytes of the volume files (du) against the live bytes (the model's value
//      bytes and VOLINFO's live sum), every live value read back and checked by SHA-256, every
//      deleted key checked gone; the master restarted on the same data dir and every value
//      checked again.
// One fresh master and data dir per --vacuum-rate in --rates (default 64 and 0 = unlimited).
// Prints a space table and a latency table with the goals of issue 13 beside the figures: disk
// within 10 % of the live bytes, read p99 during the vacuum within 3× of before.
//
// The load. Readers are paced (one request in flight each, at --read-rate / --small-read-rate;
// paced rather than closed-loop so that the client, on the same cores, does not saturate and
// the baseline latency is the server's): HTTP readers GET blobs over keep-alive connections and
// time each to its last byte; TCP readers GET the 1 KiB values with ioredis, one connection
// each. Readers walk the live keys in a shuffled order that restarts at each phase, hash every
// value and compare it with the model (how many keys a phase covered is printed). Writers are
// paced (--write-rate ops/s, at most 4 in flight): a new blob, an overwrite of a live blob, a
// SET of a 1 KiB value, and now and then a DELETE, new values of 4 KiB to 256 KiB. The blobs
// they overwrite or delete are live ones of at most 256 KiB (half the fill's blobs, copied by
// the vacuum as it runs, so writes race its moves), so the garbage they make stays about what
// they write: "modest" in bytes, not only in requests (a DELETE of a random blob would kill
// 750 KiB on average). All three phases carry the same load; only the vacuum differs.
//
// Invariants this script keeps:
// - The model is exact: every value carries its key and a write sequence number in its first
//   64 bytes (unique content, so an old version can never pass for the new one); a key with a
//   write in flight accepts the old or the new value, a failed write keeps both acceptable and
//   is counted as an error.
// - Bounded: every request has a timeout, every phase a length, the writes in flight a cap, the
//   whole run a deadline; the master is stopped by its PID (SIGTERM, then SIGKILL) and its temp
//   dir removed on success, error, SIGINT and SIGTERM.
//
// Flags: --quick (256 MiB, short phases: a smoke check), --gib N (data written by the fill,
//        default 2), --rates 64,0 (one run per vacuum rate, MB/s, 0 = no limit), --seconds S
//        (the before and after phases, default 20), --write-rate N (writes/s during the load, default 20),
//        --readers N (HTTP readers, default 3), --small-readers N (TCP readers, default 2),
//        --read-rate N (GETs/s of each HTTP reader, default 20; 0 = closed loop),
//        --small-read-rate N (GETs/s of each TCP reader, default 100; 0 = closed loop),
//        --max-volume-size SIZE (passed to the master), --cpu-prof DIR (the master runs with
//        --cpu-prof into DIR, one profile per thread), --master-log FILE (its log lines appended
//        to FILE), --via tcp|http (the vacuum started by VACUUM over TCP, the default, or by
//        POST /v1/admin/vacuum), --no-restart, --seed N, --out FILE (JSON).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { children, cpuSeconds, keepTail, makeTempDir, removeTempDir, runBench, stopChild, tempDirs, track } from './children.js';
import { body } from './pattern_body.js';
import { mulberry32 } from '../property-tests/sim_fs.js';

const KB = 1024;
const MB = 2 ** 20;
const GiB = 2 ** 30;
const BLOB_MIN = 16 * KB;
const BLOB_MAX = 4 * MB;
const WRITE_MIN = 4 * KB;
const WRITE_MAX = 256 * KB;
const SMALL_SIZE = KB;
/** The first bytes of every value: its key and write sequence number (unique content). */
const HEADER = 64;
const OVERWRITE_SHARE = 0.6;
const DELETE_SHARE = 0.2;
const FILL_STREAMS = 2;
const VERIFY_STREAMS = 2;
const WRITES_IN_FLIGHT = 4;
/** Writers' ops in turn; a DELETE of a live blob once in this cycle. */
const WRITE_CYCLE = ['new', 'overwrite', 'small', 'new', 'overwrite', 'small', 'delete'] as const;
const SMALL_PIPELINE = 256;
const WARM_MS = 2000;
/** The "during" phase lasts this long after the vacuum answers. */
const SETTLE_MS = 1000;
const STATUS_POLL_MS = 1000;
const BUSY_RETRIES = 3;
const DISK_GOAL = 1.1;
const LATENCY_GOAL = 3;
const MAX_BAD_LISTED = 5;
const REQUEST_TIMEOUT_MS = 120_000;
const VACUUM_TIMEOUT_MS = 30 * 60_000;
const START_WAIT_MS = 120_000;
const STOP_WAIT_MS = 60_000;
const DEADLINE_MS = 120 * 60_000;
const MAX_WARNINGS = 20;
const CLOCK_TICKS = 100; // USER_HZ on Linux
const LOOP_RESOLUTION_MS = 1;
const MASTER_JS = fileURLToPath(new URL('../../cmd/master.js', import.meta.url));

interface Options {
  quick: boolean;
  bytes: number;
  smallKeys: number;
  rates: number[];
  seconds: number;
  writeRate: number;
  readers: number;
  smallReaders: number;
  /** Reads/s of each HTTP reader and of each TCP reader; 0: closed loop (the next read at once). */
  readRate: number;
  smallReadRate: number;
  maxVolumeSize: string | null;
  cpuProf: string | null;
  masterLog: string | null;
  via: 'tcp' | 'http';
  restart: boolean;
  seed: number;
  out: string | null;
}

function parseOptions(argv: string[]): Options {
  const known = new Set(['--quick', '--gib', '--rates', '--seconds', '--write-rate', '--readers', '--small-readers', '--read-rate', '--small-read-rate', '--max-volume-size', '--cpu-prof', '--master-log', '--via', '--no-restart', '--seed', '--out']);
  for (const a of argv) if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown flag ${a} (flags: ${[...known].join(', ')})`);
  const value = (name: string): string | null => {
    const i = argv.indexOf(name);
    if (i < 0) return null;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name}: missing its value`);
    return v;
  };
  const number = (name: string, fallback: number, min: number): number => {
    const raw = value(name);
    const n = raw === null ? fallback : Number(raw);
    if (!Number.isFinite(n) || n < min) throw new Error(`${name}: "${raw}" is not a number >= ${min}`);
    return n;
  };
  const quick = argv.includes('--quick');
  const rates = (value('--rates') ?? '64,0').split(',').map((r) => {
    const n = Number(r);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--rates: "${r}" is not a whole number of MB/s`);
    return n;
  });
  return {
    quick,
    bytes: Math.round(number('--gib', quick ? 0.25 : 2, 0.01) * GiB),
    smallKeys: quick ? 2048 : 16_384,
    rates,
    seconds: number('--seconds', quick ? 5 : 20, 1),
    writeRate: number('--write-rate', 20, 0),
    readers: Math.floor(number('--readers', 3, 1)),
    smallReaders: Math.floor(number('--small-readers', 2, 0)),
    readRate: number('--read-rate', 20, 0),
    smallReadRate: number('--small-read-rate', 100, 0),
    maxVolumeSize: value('--max-volume-size'),
    cpuProf: value('--cpu-prof'),
    masterLog: value('--master-log'),
    via: viaOf(value('--via')),
    restart: !argv.includes('--no-restart'),
    seed: Math.floor(number('--seed', 13, 0)),
    out: value('--out'),
  };
}

function viaOf(raw: string | null): 'tcp' | 'http' {
  if (raw === null || raw === 'tcp' || raw === 'http') return raw ?? 'tcp';
  throw new Error(`--via: "${raw}" is not tcp or http`);
}

// ---------------------------------------------------------------------------------------
// The master as a child process, its ports read from its `listening' line

interface Server {
  pid: number;
  port: number;
  httpPort: number;
  child: ReturnType<typeof spawn>;
  tail: string[];
  warnings: string[];
  warningCount: number;
}

function masterArgs(data: string, rate: number, opts: Options): string[] {
  const prof = opts.cpuProf === null ? [] : ['--cpu-prof', '--cpu-prof-dir', opts.cpuProf];
  const volumeSize = opts.maxVolumeSize === null ? [] : ['--max-volume-size', opts.maxVolumeSize];
  return [...prof, MASTER_JS, '--addr', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data', data, '--sync', 'always', '--vacuum-every', '0', '--vacuum-rate', String(rate), '--log-level', 'info', ...volumeSize];
}

async function startMaster(args: string[], logFile: string | null): Promise<Server> {
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const server: Server = { pid: child.pid ?? -1, port: 0, httpPort: 0, child, tail: [], warnings: [], warningCount: 0 };
  let onListening: () => void = () => undefined;
  const listening = new Promise<void>((resolve) => (onListening = resolve));
  keepTail(child.stdout, server.tail);
  keepTail(child.stderr, server.tail, (line) => {
    onLogLine(server, line, onListening);
    if (logFile !== null) appendFileSync(logFile, `${line}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`master: not listening after ${START_WAIT_MS / 1000} s\n${server.tail.join('\n')}`)), START_WAIT_MS);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`master exited (${code}) before it listened:\n${server.tail.join('\n')}`));
    };
    child.once('exit', onExit);
    void listening.then(() => {
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve();
    });
  });
  return server;
}

function onLogLine(server: Server, line: string, onListening: () => void): void {
  let entry: { level?: unknown; msg?: unknown; port?: unknown; httpPort?: unknown };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  if (entry.msg === 'listening' && typeof entry.port === 'number' && typeof entry.httpPort === 'number') {
    server.port = entry.port;
    server.httpPort = entry.httpPort;
    onListening();
  }
  if (typeof entry.level === 'number' && entry.level >= 40) {
    server.warningCount++;
    if (server.warnings.length < MAX_WARNINGS) server.warnings.push(line.slice(0, 400));
  }
}

function alive(server: Server): void {
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    throw new Error(`master (pid ${server.pid}) died (${server.child.exitCode ?? server.child.signalCode}):\n${server.tail.join('\n')}`);
  }
}

let cleaning: Promise<void> | null = null;

/** Stops every child by its PID and removes every temp dir; idempotent. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c, 'SIGTERM', STOP_WAIT_MS)));
    for (const dir of [...tempDirs]) removeTempDir(dir);
  })();
  return cleaning;
}

// ---------------------------------------------------------------------------------------
// Values: unique, generated, hashed as they are sent


function logUniform(random: () => number, min: number, max: number): number {
  return Math.round(Math.exp(Math.log(min) + random() * (Math.log(max) - Math.log(min))));
}

function shuffled<T>(xs: T[], random: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `size` bytes: the key and sequence number in the first 64, then the pattern of `seq`. */
function* valueChunks(key: string, seq: number, size: number): Generator<Buffer> {
  const head = Buffer.alloc(Math.min(HEADER, size), 0x2e);
  head.write(`${key}#${seq}|`, 'latin1');
  yield head;
  if (size > HEADER) yield* body(size - HEADER, seq);
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

// ---------------------------------------------------------------------------------------
// The model: what every key holds

type Kind = 'blob' | 'small';

interface Entry {
  key: string;
  kind: Kind;
  size: number;
  /** Hashes a read may return: one, or two after a write whose outcome is unknown. */
  hashes: string[];
  /** The write in flight: its hash, or 'delete'. */
  pending: string | null;
  deleted: boolean;
}

class Model {
  readonly entries = new Map<string, Entry>();
  private readonly live: Record<Kind, string[]> = { blob: [], small: [] };
  private readonly slot = new Map<string, number>();
  seq = 0;

  set(key: string, kind: Kind, size: number, hash: string): void {
    const e = this.entries.get(key);
    if (e !== undefined && !e.deleted) {
      e.size = size;
      e.hashes = [hash];
      return;
    }
    this.entries.set(key, { key, kind, size, hashes: [hash], pending: e?.pending ?? null, deleted: false });
    this.slot.set(key, this.live[kind].length);
    this.live[kind].push(key);
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined || e.deleted) return;
    e.deleted = true;
    const list = this.live[e.kind];
    const i = this.slot.get(key)!;
    const last = list.pop()!;
    if (last !== key) {
      list[i] = last;
      this.slot.set(last, i);
    }
    this.slot.delete(key);
  }

  liveKeys(kind: Kind): string[] {
    return this.live[kind];
  }

  /** A random live key of at most `maxSize` bytes with no write in flight, or null if none came up. */
  randomLive(kind: Kind, random: () => number, maxSize = Infinity): Entry | null {
    const list = this.live[kind];
    for (let tries = 0; tries < 64 && list.length > 0; tries++) {
      const e = this.entries.get(list[Math.floor(random() * list.length)]!)!;
      if (e.pending === null && e.size <= maxSize) return e;
    }
    return null;
  }

  liveBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) if (!e.deleted) n += e.size;
    return n;
  }

  count(kind: Kind, deleted: boolean): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.kind === kind && e.deleted === deleted) n++;
    return n;
  }
}

// ---------------------------------------------------------------------------------------
// HTTP: one request, its body hashed, with a deadline

interface HttpResult {
  status: number;
  bytes: number;
  hash: string;
  /** The first 300 bytes of the body, for error messages and JSON answers (longer ones: `json`). */
  text: string;
  ms: number;
}

function http(port: number, agent: Agent | undefined, method: string, path: string, send: Iterable<Buffer> | null, size: number, timeoutMs = REQUEST_TIMEOUT_MS, keepText = 300): Promise<HttpResult> {
  return new Promise<HttpResult>((resolve, reject) => {
    const t0 = performance.now();
    const headers = send === null ? {} : { 'content-length': String(size), 'content-type': 'application/octet-stream' };
    const req = request({ host: '127.0.0.1', port, method, path, headers, ...(agent === undefined ? {} : { agent }) });
    const timer = setTimeout(() => req.destroy(new Error(`not done after ${timeoutMs / 1000} s`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(new Error(`${method} ${path}: ${err.message}`));
    };
    req.once('error', fail);
    req.once('response', (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let text = '';
      res.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
        if (text.length < keepText) text += d.subarray(0, keepText - text.length).toString('utf8');
      });
      res.once('error', fail);
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, bytes, hash: hash.digest('hex'), text, ms: performance.now() - t0 });
      });
    });
    if (send === null) req.end();
    else pipeline(Readable.from(send), req).catch((err: unknown) => req.destroy(err instanceof Error ? err : new Error(String(err))));
  });
}

function blobPath(key: string): string {
  return `/v1/blobs/${encodeURIComponent(key)}`;
}

async function json(port: number, method: string, path: string, timeoutMs: number): Promise<unknown> {
  const r = await http(port, undefined, method, path, null, 0, timeoutMs, 10 * MB);
  if (r.status !== 200) throw new Error(`${method} ${path}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return JSON.parse(r.text) as unknown;
}

// ---------------------------------------------------------------------------------------
// Writes through the model

/** A write's answer: applied, refused with BUSY (sent again), or anything else (its text). */
interface Sent {
  ok: boolean;
  busy: boolean;
  text: string;
}

interface WriteOutcome {
  ok: boolean;
  busy: number;
  error: string | null;
  ms: number;
}

/** PUT of a new value of `key`; retried on 503 BUSY (a write caught by a volume's retirement). */
async function putBlob(s: Server, agent: Agent, model: Model, key: string, size: number): Promise<WriteOutcome> {
  const seq = ++model.seq;
  const hash = createHash('sha256');
  for (const c of valueChunks(key, seq, size)) hash.update(c);
  const digest = hash.digest('hex');
  return write(model, key, digest, () => http(s.httpPort, agent, 'PUT', blobPath(key), valueChunks(key, seq, size), size).then((r) => ({ ok: r.status === 201, busy: r.status === 503 && r.text.includes('BUSY'), text: `HTTP ${r.status} ${r.text}` })), () => model.set(key, 'blob', size, digest));
}

async function setSmall(redis: Redis, model: Model, key: string): Promise<WriteOutcome> {
  const seq = ++model.seq;
  const value = Buffer.concat([...valueChunks(key, seq, SMALL_SIZE)]);
  const digest = sha(value);
  const send = (): Promise<Sent> =>
    redis.set(key, value).then(
      (r) => ({ ok: r === 'OK', busy: false, text: String(r) }),
      (err: Error) => ({ ok: false, busy: err.message.startsWith('BUSY'), text: err.message }),
    );
  return write(model, key, digest, send, () => model.set(key, 'small', SMALL_SIZE, digest));
}

async function deleteKey(s: Server, agent: Agent, redis: Redis, model: Model, e: Entry): Promise<WriteOutcome> {
  const send =
    e.kind === 'small'
      ? (): Promise<Sent> => redis.del(e.key).then((n) => ({ ok: n === 1, busy: false, text: `DEL answered ${n}` }), (err: Error) => ({ ok: false, busy: err.message.startsWith('BUSY'), text: err.message }))
      : (): Promise<Sent> => http(s.httpPort, agent, 'DELETE', blobPath(e.key), null, 0).then((r) => ({ ok: r.status === 204 || r.status === 200, busy: r.status === 503 && r.text.includes('BUSY'), text: `HTTP ${r.status} ${r.text}` }));
  return write(model, e.key, 'delete', send, () => model.delete(e.key));
}

/** One write: the key accepts old and new while it is in flight; the model changes on success. */
async function write(model: Model, key: string, pending: string, send: () => Promise<Sent>, apply: () => void): Promise<WriteOutcome> {
  const e = model.entries.get(key);
  if (e !== undefined) e.pending = pending;
  const t0 = performance.now();
  let busy = 0;
  try {
    for (;;) {
      const r = await send().catch((err: Error) => ({ ok: false, busy: false, text: err.message }));
      if (r.ok) {
        apply();
        return { ok: true, busy, error: null, ms: performance.now() - t0 };
      }
      if (r.busy && busy < BUSY_RETRIES) {
        busy++;
        continue;
      }
      // Unknown outcome: the old and the new value both stay acceptable.
      const now = model.entries.get(key);
      if (now !== undefined && pending !== 'delete') now.hashes.push(pending);
      return { ok: false, busy, error: `${key}: ${r.text.slice(0, 200)}`, ms: performance.now() - t0 };
    }
  } finally {
    const now = model.entries.get(key);
    if (now !== undefined) now.pending = null;
  }
}

// ---------------------------------------------------------------------------------------
// Fill and churn

interface Workload {
  blobs: number;
  small: number;
  filledBytes: number;
  overwritten: number;
  deleted: number;
  /** Bytes the churn turned into garbage: the old values overwritten and deleted. */
  churnedBytes: number;
  fillSeconds: number;
  churnSeconds: number;
}

async function fill(s: Server, redis: Redis, model: Model, opts: Options, random: () => number): Promise<Pick<Workload, 'blobs' | 'small' | 'filledBytes' | 'fillSeconds'>> {
  const sizes: number[] = [];
  for (let total = 0; total < opts.bytes; ) {
    const size = Math.min(logUniform(random, BLOB_MIN, BLOB_MAX), opts.bytes - total);
    sizes.push(Math.max(size, HEADER));
    total += size;
  }
  const t0 = performance.now();
  const agent = new Agent({ keepAlive: true, maxSockets: FILL_STREAMS });
  let next = 0;
  let smallDone = 0;
  const worker = async (): Promise<void> => {
    while (next < sizes.length) {
      const i = next++;
      await must(putBlob(s, agent, model, `blob:${i}`, sizes[i]!));
      // The small values are scattered among the blobs, so they land in every volume.
      const upTo = Math.floor(((i + 1) / sizes.length) * opts.smallKeys);
      const keys: string[] = [];
      while (smallDone < upTo) keys.push(`small:${smallDone++}`);
      await Promise.all(keys.map((k) => must(setSmall(redis, model, k))));
      if (i % 256 === 0) log(`    fill: ${i} of ${sizes.length} blobs`);
    }
  };
  await Promise.all(Array.from({ length: FILL_STREAMS }, worker));
  agent.destroy();
  return { blobs: sizes.length, small: opts.smallKeys, filledBytes: sizes.reduce((a, b) => a + b, 0) + opts.smallKeys * SMALL_SIZE, fillSeconds: (performance.now() - t0) / 1000 };
}

async function churn(s: Server, redis: Redis, model: Model, random: () => number): Promise<Pick<Workload, 'overwritten' | 'deleted' | 'churnedBytes' | 'churnSeconds'>> {
  const t0 = performance.now();
  const agent = new Agent({ keepAlive: true, maxSockets: FILL_STREAMS });
  const keys = shuffled([...model.liveKeys('blob'), ...model.liveKeys('small')], random);
  const overwrite = keys.slice(0, Math.round(keys.length * OVERWRITE_SHARE));
  const remove = keys.slice(overwrite.length, overwrite.length + Math.round(keys.length * DELETE_SHARE));
  const churnedBytes = [...overwrite, ...remove].reduce((n, k) => n + model.entries.get(k)!.size, 0);
  const sizes = overwrite.map((k) => (model.entries.get(k)!.kind === 'small' ? SMALL_SIZE : logUniform(random, BLOB_MIN, BLOB_MAX)));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < overwrite.length + remove.length) {
      const i = next++;
      const key = i < overwrite.length ? overwrite[i]! : remove[i - overwrite.length]!;
      const e = model.entries.get(key)!;
      if (i >= overwrite.length) await must(deleteKey(s, agent, redis, model, e));
      else if (e.kind === 'small') await must(setSmall(redis, model, key));
      else await must(putBlob(s, agent, model, key, sizes[i]!));
      if (i % 1024 === 0) log(`    churn: ${i} of ${overwrite.length + remove.length} keys`);
    }
  };
  await Promise.all(Array.from({ length: FILL_STREAMS }, worker));
  agent.destroy();
  return { overwritten: overwrite.length, deleted: remove.length, churnedBytes, churnSeconds: (performance.now() - t0) / 1000 };
}

async function must(w: Promise<WriteOutcome>): Promise<void> {
  const r = await w;
  if (!r.ok) throw new Error(`a write of the workload failed: ${r.error}`);
}

// ---------------------------------------------------------------------------------------
// The load: readers and writers, their samples by phase

type Phase = 'warm' | 'before' | 'during' | 'after' | 'tail';

interface PhaseStats {
  blobMs: number[];
  smallMs: number[];
  writeMs: number[];
  readBytes: number;
  writes: number;
  writeErrors: number;
  busy: number;
  /** Writer ticks skipped because WRITES_IN_FLIGHT were still out. */
  skipped: number;
  badReads: number;
  readErrors: number;
  /** Keys read and checked in this phase. */
  covered: Set<string>;
  seconds: number;
  masterCores: number | null;
  clientCores: number;
  /** Cores busy on the whole machine (/proc/stat): what other processes took shows beside ours. */
  machineCores: number | null;
  clientLoopP99Ms: number;
}

function newPhase(): PhaseStats {
  return { blobMs: [], smallMs: [], writeMs: [], readBytes: 0, writes: 0, writeErrors: 0, busy: 0, skipped: 0, badReads: 0, readErrors: 0, covered: new Set(), seconds: 0, masterCores: null, clientCores: NaN, machineCores: null, clientLoopP99Ms: NaN };
}

/**
 * Waits until the next read is due at `rate` per second (0: never waits). A reader that falls
 * behind does not catch up in a burst: it reads at once and keeps the rate from there.
 */
function pacer(rate: number): () => Promise<void> {
  let due = performance.now();
  return async () => {
    if (rate <= 0) return;
    due = Math.max(due + 1000 / rate, performance.now());
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  };
}

/** Busy CPU seconds of the whole machine since boot (every state but idle and iowait), or null. */
function machineBusySeconds(): number | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - fields[3]! - fields[4]!) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

class Load {
  phase: Phase = 'warm';
  readonly stats: Record<Phase, PhaseStats> = { warm: newPhase(), before: newPhase(), during: newPhase(), after: newPhase(), tail: newPhase() };
  readonly problems: string[] = [];
  private stopped = false;
  private running: Promise<void>[] = [];
  private order: Record<Kind, string[]> = { blob: [], small: [] };
  private cursor: Record<Kind, number> = { blob: 0, small: 0 };
  private phaseStart = 0;
  private cpuStart: number | null = null;
  private clientCpuStart = process.cpuUsage();
  private machineStart: number | null = null;
  private readonly loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private readonly agent: Agent;
  private readonly writeAgent: Agent;
  private readonly readers: Redis[] = [];

  constructor(
    private readonly s: Server,
    private readonly model: Model,
    private readonly writer: Redis,
    private readonly opts: Options,
    private readonly random: () => number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: opts.readers });
    this.writeAgent = new Agent({ keepAlive: true, maxSockets: WRITES_IN_FLIGHT });
  }

  start(): void {
    this.setPhase('warm');
    for (let i = 0; i < this.opts.readers; i++) this.running.push(this.blobReader());
    for (let i = 0; i < this.opts.smallReaders; i++) {
      const r = new Redis({ host: '127.0.0.1', port: this.s.port, maxRetriesPerRequest: 1 });
      this.readers.push(r);
      this.running.push(this.smallReader(r));
    }
    if (this.opts.writeRate > 0) this.running.push(this.writers());
  }

  /** Closes the current phase's clocks and starts `phase` with a fresh walk over the keys. */
  setPhase(phase: Phase): void {
    const old = this.stats[this.phase];
    if (this.phaseStart > 0) {
      old.seconds = (performance.now() - this.phaseStart) / 1000;
      const cpu = cpuSeconds([this.s.pid]);
      old.masterCores = cpu === null || this.cpuStart === null ? null : (cpu - this.cpuStart) / old.seconds;
      // The histogram's samples include its own timer interval: the delay is what is over it.
      old.clientLoopP99Ms = Math.max(0, this.loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS);
      const used = process.cpuUsage(this.clientCpuStart);
      old.clientCores = (used.user + used.system) / 1e6 / old.seconds;
      const machine = machineBusySeconds();
      old.machineCores = machine === null || this.machineStart === null ? null : (machine - this.machineStart) / old.seconds;
    }
    this.clientCpuStart = process.cpuUsage();
    this.machineStart = machineBusySeconds();
    this.phase = phase;
    this.phaseStart = performance.now();
    this.cpuStart = cpuSeconds([this.s.pid]);
    this.loop.reset();
    this.loop.enable();
    for (const kind of ['blob', 'small'] as const) {
      this.order[kind] = shuffled(this.model.liveKeys(kind), this.random);
      this.cursor[kind] = 0;
    }
  }

  async stop(): Promise<void> {
    this.setPhase('tail');
    this.stopped = true;
    await Promise.all(this.running);
    this.loop.disable();
    this.agent.destroy();
    this.writeAgent.destroy();
    for (const r of this.readers) r.disconnect();
  }

  /** The next key of the walk that is live and has no write in flight. */
  private nextKey(kind: Kind): Entry | null {
    const order = this.order[kind];
    for (let tries = 0; tries < 64 && order.length > 0; tries++) {
      const key = order[this.cursor[kind]++ % order.length]!;
      const e = this.model.entries.get(key)!;
      if (!e.deleted && e.pending === null) return e;
    }
    return this.model.randomLive(kind, this.random);
  }

  private async blobReader(): Promise<void> {
    for (const next = pacer(this.opts.readRate); !this.stopped; await next()) {
      const e = this.nextKey('blob');
      if (e === null) return;
      const phase = this.phase;
      const accept = new Set(e.hashes);
      const r = await http(this.s.httpPort, this.agent, 'GET', blobPath(e.key), null, 0).catch((err: Error) => err);
      const st = this.stats[phase];
      if (r instanceof Error) {
        this.problem(st, `GET ${e.key}: ${r.message}`, 'error');
        continue;
      }
      st.blobMs.push(r.ms);
      st.readBytes += r.bytes;
      this.check(st, e, accept, r.status === 404 ? null : r.status === 200 ? r.hash : `HTTP ${r.status} ${r.text}`);
    }
  }

  private async smallReader(redis: Redis): Promise<void> {
    for (const next = pacer(this.opts.smallReadRate); !this.stopped; await next()) {
      const e = this.nextKey('small');
      if (e === null) return;
      const phase = this.phase;
      const accept = new Set(e.hashes);
      const t0 = performance.now();
      const r = await redis.getBuffer(e.key).catch((err: Error) => err);
      const st = this.stats[phase];
      if (r instanceof Error) {
        this.problem(st, `GET ${e.key}: ${r.message}`, 'error');
        continue;
      }
      st.smallMs.push(performance.now() - t0);
      st.readBytes += r?.length ?? 0;
      this.check(st, e, accept, r === null ? null : sha(r));
    }
  }

  /** A read is right if it returned a value the key held at its start, or one written since. */
  private check(st: PhaseStats, e: Entry, accept: Set<string>, got: string | null): void {
    for (const h of e.hashes) accept.add(h);
    if (e.pending !== null) accept.add(e.pending);
    const ok = got === null ? e.deleted || e.pending === 'delete' || accept.has('delete') : accept.has(got);
    if (ok) st.covered.add(e.key);
    else this.problem(st, `${e.key}: read ${got === null ? 'nothing (404 / nil)' : got.startsWith('HTTP') ? got : `a value of SHA-256 ${got.slice(0, 16)}…`}, expected ${[...accept].map((h) => h.slice(0, 16)).join(' or ')}`, 'bad');
  }

  private problem(st: PhaseStats, text: string, kind: 'bad' | 'error'): void {
    if (kind === 'bad') st.badReads++;
    else st.readErrors++;
    if (this.problems.length < MAX_BAD_LISTED * 4) this.problems.push(`${this.phase}: ${text}`);
  }

  /** Paced writes, at most WRITES_IN_FLIGHT out; a tick that finds them all out is skipped. */
  private async writers(): Promise<void> {
    const period = 1000 / this.opts.writeRate;
    const inFlight = new Set<Promise<void>>();
    const t0 = performance.now();
    for (let tick = 0; !this.stopped; tick++) {
      const due = t0 + tick * period;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (this.stopped) break;
      if (inFlight.size >= WRITES_IN_FLIGHT) {
        this.stats[this.phase].skipped++;
        continue;
      }
      const p = this.writeOne(WRITE_CYCLE[tick % WRITE_CYCLE.length]!, tick).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
  }

  private async writeOne(op: (typeof WRITE_CYCLE)[number], tick: number): Promise<void> {
    const phase = this.phase;
    const size = logUniform(this.random, WRITE_MIN, WRITE_MAX);
    let r: WriteOutcome | null = null;
    if (op === 'new') r = await putBlob(this.s, this.writeAgent, this.model, `new:${tick}`, size);
    else if (op === 'small') {
      const e = this.model.randomLive('small', this.random);
      if (e !== null) r = await setSmall(this.writer, this.model, e.key);
    } else {
      const e = this.model.randomLive('blob', this.random, WRITE_MAX);
      if (e !== null) r = op === 'delete' ? await deleteKey(this.s, this.writeAgent, this.writer, this.model, e) : await putBlob(this.s, this.writeAgent, this.model, e.key, size);
    }
    if (r === null) return;
    const st = this.stats[phase];
    st.writes++;
    st.busy += r.busy;
    st.writeMs.push(r.ms);
    if (!r.ok) {
      st.writeErrors++;
      if (this.problems.length < MAX_BAD_LISTED * 4) this.problems.push(`${phase}: write ${r.error ?? ''}`);
    }
  }
}

// ---------------------------------------------------------------------------------------
// The vacuum, its progress, the space

interface VacuumReportJson {
  volume: number;
  moved: number;
  copied_bytes: number;
  changed: number;
  expired: number;
  freed_bytes: number;
  removed: boolean;
  duration_ms: number;
  errors: string[];
}

interface VacuumRun {
  wallSeconds: number;
  reports: VacuumReportJson[];
  copiedBytes: number;
  freedBytes: number;
  /** /v1/status polls that showed the vacuum's progress. */
  progressSeen: number;
  error: string | null;
}

/** VACUUM over TCP (one connection of its own: the reply comes when the vacuum is done). */
async function tcpVacuum(s: Server): Promise<{ volumes: VacuumReportJson[] }> {
  const redis = new Redis({ host: '127.0.0.1', port: s.port, maxRetriesPerRequest: 0, commandTimeout: VACUUM_TIMEOUT_MS });
  try {
    const reply = (await redis.call('VACUUM')) as unknown[][];
    return { volumes: reply.map(reportOf) };
  } finally {
    redis.disconnect();
  }
}

/** VACUUM's flat field/value array as the JSON of POST /v1/admin/vacuum. */
function reportOf(flat: unknown[]): VacuumReportJson {
  const f = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), flat[i + 1]);
  const n = (k: string): number => Number(f.get(k));
  const errors = f.get('errors');
  return { volume: n('volume'), moved: n('moved'), copied_bytes: n('copied_bytes'), changed: n('changed'), expired: n('expired'), freed_bytes: n('freed_bytes'), removed: n('removed') === 1, duration_ms: n('duration_ms'), errors: Array.isArray(errors) ? errors.map(String) : [] };
}

async function runVacuum(s: Server, via: 'tcp' | 'http'): Promise<VacuumRun> {
  const t0 = performance.now();
  let settled = false;
  const started = via === 'tcp' ? tcpVacuum(s) : json(s.httpPort, 'POST', '/v1/admin/vacuum', VACUUM_TIMEOUT_MS);
  const reply = started.finally(() => (settled = true));
  let progressSeen = 0;
  while (!settled) {
    await Promise.race([sleep(STATUS_POLL_MS), reply.catch(() => undefined)]);
    if (settled) break;
    alive(s);
    const status = (await json(s.httpPort, 'GET', '/v1/status', 30_000)) as { operations?: Array<Record<string, unknown>> };
    for (const op of status.operations ?? []) {
      progressSeen++;
      log(`    vacuum: volume ${String(op['target'])}, ${String(op['percent'])} % (${fmtMB(Number(op['done_bytes']))} of ${fmtMB(Number(op['total_bytes']))} MB), eta ${op['eta_seconds'] === null ? '?' : `${String(op['eta_seconds'])} s`}`);
    }
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  try {
    const reports = ((await reply) as { volumes: VacuumReportJson[] }).volumes;
    const copiedBytes = reports.reduce((n, r) => n + r.copied_bytes, 0);
    const freedBytes = reports.reduce((n, r) => n + r.freed_bytes, 0);
    for (const r of reports) log(`    vacuumed volume ${r.volume}: moved ${r.moved}, copied ${fmtMB(r.copied_bytes)} MB, changed ${r.changed}, freed ${fmtMB(r.freed_bytes)} MB, removed ${r.removed}, ${r.duration_ms} ms${r.errors.length > 0 ? `, errors: ${r.errors.join('; ')}` : ''}`);
    return { wallSeconds, reports, copiedBytes, freedBytes, progressSeen, error: null };
  } catch (err) {
    return { wallSeconds, reports: [], copiedBytes: 0, freedBytes: 0, progressSeen, error: (err as Error).message };
  }
}

interface Disk {
  /** du of the volume files (allocated blocks), and their lengths. */
  volumes: number;
  volumesApparent: number;
  volumeFiles: number;
  /** du of everything else in the data dir (WAL, index, registry). */
  other: number;
}

function diskUsage(dir: string): Disk {
  const d: Disk = { volumes: 0, volumesApparent: 0, volumeFiles: 0, other: 0 };
  const walk = (path: string, inVolumes: boolean): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const p = join(path, entry.name);
      if (entry.isDirectory()) walk(p, inVolumes || entry.name === 'volumes');
      else if (entry.isFile()) addFile(d, lstatSync(p), inVolumes);
    }
  };
  walk(dir, false);
  return d;
}

function addFile(d: Disk, st: Stats, inVolumes: boolean): void {
  if (!inVolumes) {
    d.other += st.blocks * 512;
    return;
  }
  d.volumes += st.blocks * 512;
  d.volumesApparent += st.size;
  d.volumeFiles++;
}

/** Volume files removed from the directory but still held open by the master: space not yet given back. */
function openDeleted(pid: number): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: 'utf8' });
      if (!link.includes('/volumes/') || !link.endsWith(' (deleted)')) continue;
      files++;
      bytes += statSync(`/proc/${pid}/fd/${fd}`).blocks * 512;
    }
  } catch {
    // A descriptor closed while we looked, or no /proc: what was counted stands.
  }
  return { files, bytes };
}

interface VolumeRow {
  id: number;
  size: number;
  garbage: number;
  live: number;
}

async function volinfo(redis: Redis): Promise<VolumeRow[]> {
  const rows = (await redis.call('VOLINFO')) as Array<[number, string, number, number, number, number]>;
  return rows.map(([id, , size, , garbage, live]) => ({ id: Number(id), size: Number(size), garbage: Number(garbage), live: Number(live) }));
}

function volumesLine(rows: VolumeRow[]): string {
  return rows.map((v) => `${v.id}: ${fmtMB(v.size)} MB, ${fmtMB(v.live)} live, ${fmtMB(v.garbage)} garbage`).join('; ');
}

function sumOf(rows: VolumeRow[], f: (r: VolumeRow) => number): number {
  return rows.reduce((n, r) => n + f(r), 0);
}

// ---------------------------------------------------------------------------------------
// Every live value by SHA-256, every deleted key gone

interface Verify {
  checked: number;
  bytes: number;
  bad: string[];
  deletedChecked: number;
  seconds: number;
}

async function verifyAll(s: Server, redis: Redis, model: Model): Promise<Verify> {
  const t0 = performance.now();
  const v: Verify = { checked: 0, bytes: 0, bad: [], deletedChecked: 0, seconds: 0 };
  const bad = (text: string): void => {
    if (v.bad.length < MAX_BAD_LISTED * 4) v.bad.push(text);
  };
  const all = [...model.entries.values()];
  const agent = new Agent({ keepAlive: true, maxSockets: VERIFY_STREAMS });
  const blobs = all.filter((e) => e.kind === 'blob');
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < blobs.length) {
      const e = blobs[next++]!;
      const r = await http(s.httpPort, agent, 'GET', blobPath(e.key), null, 0);
      v.bytes += r.bytes;
      if (e.deleted) {
        v.deletedChecked++;
        if (r.status !== 404) bad(`${e.key} was deleted, GET answers HTTP ${r.status}`);
      } else {
        v.checked++;
        if (r.status !== 200 || !e.hashes.includes(r.hash)) bad(`${e.key}: HTTP ${r.status}, SHA-256 ${r.hash.slice(0, 16)}…, expected ${e.hashes[0]!.slice(0, 16)}…`);
      }
    }
  };
  await Promise.all(Array.from({ length: VERIFY_STREAMS }, worker));
  agent.destroy();
  const small = all.filter((e) => e.kind === 'small');
  for (let i = 0; i < small.length; i += SMALL_PIPELINE) {
    const batch = small.slice(i, i + SMALL_PIPELINE);
    const values = await Promise.all(batch.map((e) => redis.getBuffer(e.key)));
    batch.forEach((e, j) => {
      const value = values[j] ?? null;
      if (e.deleted) {
        v.deletedChecked++;
        if (value !== null) bad(`${e.key} was deleted, GET answers a value`);
        return;
      }
      v.checked++;
      v.bytes += value?.length ?? 0;
      if (value === null || !e.hashes.includes(sha(value))) bad(`${e.key}: ${value === null ? 'nil' : 'wrong SHA-256'}`);
    });
  }
  v.seconds = (performance.now() - t0) / 1000;
  return v;
}

// ---------------------------------------------------------------------------------------
// One run: a master at one vacuum rate, the whole workload

interface Run {
  rate: number;
  workload: Workload;
  before: { disk: Disk; volumes: VolumeRow[] };
  after: { disk: Disk; volumes: VolumeRow[]; openDeleted: { files: number; bytes: number } };
  liveModelBytes: number;
  vacuum: VacuumRun;
  load: Record<'before' | 'during' | 'after', Omit<PhaseStats, 'covered'> & { covered: number; liveKeys: number }>;
  problems: string[];
  verify: Verify;
  verifyRestart: Verify | null;
  afterRestart: VolumeRow[] | null;
  warnings: string[];
  warningCount: number;
}

async function runOnce(opts: Options, rate: number): Promise<Run> {
  log(`vacuum rate ${rateName(rate)}: fresh master`);
  const dir = makeTempDir('brisedb-vacuum-bench-');
  const data = join(dir, 'data');
  const args = masterArgs(data, rate, opts);
  let s = await startMaster(args, opts.masterLog);
  let redis = new Redis({ host: '127.0.0.1', port: s.port, maxRetriesPerRequest: 1 });
  const model = new Model();
  const random = mulberry32(opts.seed); // seeded: sizes, orders and picks repeat run to run
  try {
    log(`  fill: ${fmtMB(opts.bytes)} MB of blobs (${BLOB_MIN / KB} KiB to ${BLOB_MAX / MB} MiB) and ${opts.smallKeys} values of 1 KiB`);
    const filled = await fill(s, redis, model, opts, random);
    log(`  churn: ${OVERWRITE_SHARE * 100} % of the keys overwritten, ${DELETE_SHARE * 100} % deleted`);
    const churned = await churn(s, redis, model, random);
    const workload: Workload = { ...filled, ...churned };
    log(`    fill ${filled.fillSeconds.toFixed(1)} s, churn ${churned.churnSeconds.toFixed(1)} s`);

    const load = new Load(s, model, redis, opts, random);
    load.start();
    await sleep(WARM_MS);
    log(`  before: readers and writers for ${opts.seconds} s, no vacuum`);
    load.setPhase('before');
    await sleep(opts.seconds * 1000);
    const before = { disk: diskUsage(data), volumes: await volinfo(redis) };
    log(`  during: ${opts.via === 'tcp' ? 'VACUUM over TCP' : 'POST /v1/admin/vacuum'} under the same load; volumes before: ${fmtMB(before.disk.volumes)} MB on disk, ${fmtMB(sumOf(before.volumes, (v) => v.live))} MB live`);
    const liveKeys = { before: model.liveKeys('blob').length + model.liveKeys('small').length, during: 0, after: 0 };
    load.setPhase('during');
    const vacuum = await runVacuum(s, opts.via);
    // The removed volume's handles close as the vacuum answers: the load stays for that too.
    await sleep(SETTLE_MS);
    liveKeys.during = model.liveKeys('blob').length + model.liveKeys('small').length;
    // The same load as long again with no vacuum: a control for what other processes on the
    // machine did to the latency meanwhile (after ≈ before says the change during is the vacuum's).
    log(`  after: readers and writers for ${opts.seconds} s more, no vacuum`);
    load.setPhase('after');
    await sleep(opts.seconds * 1000);
    liveKeys.after = model.liveKeys('blob').length + model.liveKeys('small').length;
    await load.stop();
    alive(s);

    const after = { disk: diskUsage(data), volumes: await volinfo(redis), openDeleted: openDeleted(s.pid) };
    log(`  after: volumes ${fmtMB(after.disk.volumes)} MB on disk; checking every value`);
    log(`    VOLINFO before: ${volumesLine(before.volumes)}; after: ${volumesLine(after.volumes)}`);
    const verify = await verifyAll(s, redis, model);
    log(`    ${verify.checked} live values checked, ${verify.deletedChecked} deleted keys, ${verify.bad.length} wrong, ${verify.seconds.toFixed(1)} s`);
    const warnings = [...s.warnings];
    let warningCount = s.warningCount;
    let verifyRestart: Verify | null = null;
    let afterRestart: VolumeRow[] | null = null;
    if (opts.restart) {
      log('  restart: the master stopped and started again on its data dir; every value checked again');
      redis.disconnect();
      await stopChild(s.child, 'SIGTERM', STOP_WAIT_MS);
      s = await startMaster(args, opts.masterLog);
      redis = new Redis({ host: '127.0.0.1', port: s.port, maxRetriesPerRequest: 1 });
      afterRestart = await volinfo(redis);
      verifyRestart = await verifyAll(s, redis, model);
      warnings.push(...s.warnings);
      warningCount += s.warningCount;
      log(`    ${verifyRestart.checked} live values checked, ${verifyRestart.bad.length} wrong`);
    }
    const phaseOut = (p: 'before' | 'during' | 'after'): Run['load']['before'] => ({ ...load.stats[p], covered: load.stats[p].covered.size, liveKeys: liveKeys[p] });
    return { rate, workload, before, after, liveModelBytes: model.liveBytes(), vacuum, load: { before: phaseOut('before'), during: phaseOut('during'), after: phaseOut('after') }, problems: load.problems, verify, verifyRestart, afterRestart, warnings, warningCount };
  } finally {
    redis.disconnect();
    await stopChild(s.child, 'SIGTERM', STOP_WAIT_MS);
    removeTempDir(dir);
  }
}

// ---------------------------------------------------------------------------------------
// Output

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The p-th percentile (nearest rank) of xs; NaN when empty. */
function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function fmtMB(bytes: number): string {
  return (bytes / MB).toLocaleString('en-US', { maximumFractionDigits: 0 });
}

function fmtMs(x: number): string {
  return Number.isNaN(x) ? 'n/a' : x >= 10 ? x.toFixed(0) : x.toFixed(2);
}

function readRateName(rate: number): string {
  return rate === 0 ? 'no pause (closed loop)' : `${rate} GETs/s each`;
}

function rateName(rate: number): string {
  return rate === 0 ? 'unlimited (0)' : `${rate} MB/s`;
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function spaceRow(r: Run): string[] {
  const ratio = r.after.disk.volumes / r.liveModelBytes;
  const liveIndex = sumOf(r.after.volumes, (v) => v.live);
  const garbageBefore = sumOf(r.before.volumes, (v) => v.garbage);
  const sizeBefore = sumOf(r.before.volumes, (v) => v.size);
  const verified = `${r.verify.checked - r.verify.bad.length} of ${r.verify.checked} OK, ${r.verify.deletedChecked} deleted gone${r.verifyRestart === null ? '' : `; after restart ${r.verifyRestart.checked - r.verifyRestart.bad.length} of ${r.verifyRestart.checked}`}`;
  return [
    rateName(r.rate),
    `${fmtMB(r.before.disk.volumes)} (${r.before.disk.volumeFiles} files, ${((100 * garbageBefore) / sizeBefore).toFixed(0)} % garbage)`,
    `${fmtMB(r.after.disk.volumes)} (${r.after.disk.volumeFiles} files, ${fmtMB(sumOf(r.after.volumes, (v) => v.garbage))} garbage)${r.after.openDeleted.files > 0 ? ` + ${fmtMB(r.after.openDeleted.bytes)} still open` : ''}`,
    `${fmtMB(r.liveModelBytes)} / ${fmtMB(liveIndex)}`,
    ratio.toFixed(3),
    ratio <= DISK_GOAL ? 'yes' : 'no',
    `${r.vacuum.wallSeconds.toFixed(1)} s`,
    `${fmtMB(r.vacuum.copiedBytes)} MB, ${(r.vacuum.copiedBytes / MB / r.vacuum.wallSeconds).toFixed(0)} MB/s; ${r.vacuum.reports.reduce((n, v) => n + v.moved, 0)} moved, ${r.vacuum.reports.reduce((n, v) => n + v.changed, 0)} lost to a write`,
    verified,
  ];
}

function latencyRows(r: Run): string[][] {
  const b = r.load.before;
  const d = r.load.during;
  const a = r.load.after;
  const row = (what: string, pick: (p: Run['load']['before']) => number[], goal: boolean): string[] => {
    const p99b = percentile(pick(b), 99);
    const p99d = percentile(pick(d), 99);
    const ratio = p99d / p99b;
    const cell = (xs: number[]): string => `${fmtMs(percentile(xs, 50))} / ${fmtMs(percentile(xs, 99))} / ${fmtMs(percentile(xs, 100))} (${xs.length})`;
    return [rateName(r.rate), what, cell(pick(b)), cell(pick(d)), cell(pick(a)), `${ratio.toFixed(2)}×`, goal ? (ratio <= LATENCY_GOAL ? 'yes' : 'no') : '—'];
  };
  return [
    row('GET blob (HTTP, 16 KiB–4 MiB, to last byte)', (p) => p.blobMs, true),
    row('GET 1 KiB (TCP, ioredis)', (p) => p.smallMs, true),
    row('writes (PUT 4–256 KiB, SET 1 KiB, DELETE)', (p) => p.writeMs, false),
  ];
}

function loadRow(r: Run): string[] {
  const cell = (p: Run['load']['before']): string =>
    `${p.seconds.toFixed(1)} s, ${(p.readBytes / MB / p.seconds).toFixed(0)} MB/s read, ${p.covered} of ${p.liveKeys} keys read, ${p.badReads} wrong, ${p.readErrors} read errors; ${p.writes} writes (${p.writeErrors} errors, ${p.busy} BUSY retried, ${p.skipped} ticks skipped); master ${p.masterCores === null ? 'n/a' : p.masterCores.toFixed(2)} cores, client ${p.clientCores.toFixed(2)}, whole machine ${p.machineCores === null ? 'n/a' : p.machineCores.toFixed(2)}; client loop p99 ${fmtMs(p.clientLoopP99Ms)} ms`;
  return [rateName(r.rate), cell(r.load.before), cell(r.load.during), cell(r.load.after)];
}

function header(opts: Options): string[] {
  const cpu = cpus();
  return [
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown cpu'}), ${(totalmem() / GiB).toFixed(1)} GiB RAM, node ${process.version}, temp dirs in ${tmpdir()}; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    `server: node cmd/master.js --sync always --vacuum-every 0 --vacuum-rate R${opts.maxVolumeSize === null ? '' : ` --max-volume-size ${opts.maxVolumeSize}`} (other flags default); one client process (this script) on the same machine`,
    `workload: ${fmtMB(opts.bytes)} MiB of blobs by HTTP PUT (log-uniform 16 KiB–4 MiB) + ${opts.smallKeys} × 1 KiB by SET; then ${OVERWRITE_SHARE * 100} % of the keys overwritten and ${DELETE_SHARE * 100} % deleted (seed ${opts.seed})`,
    `load (before: ${opts.seconds} s; during: the whole vacuum and ${SETTLE_MS / 1000} s after its answer; after: ${opts.seconds} s more, a control): ${opts.readers} HTTP readers at ${readRateName(opts.readRate)} + ${opts.smallReaders} TCP readers at ${readRateName(opts.smallReadRate)}, each value checked by SHA-256; writes paced at ${opts.writeRate}/s (new PUT, overwrite PUT, SET, DELETE), at most ${WRITES_IN_FLIGHT} in flight`,
    'disk: du of the volume files (allocated blocks); live: the model\'s value bytes / VOLINFO\'s live sum (needles: headers, keys, alignment) after the vacuum; MB = MiB',
  ];
}

function report(head: string[], runs: Run[]): string {
  const space = table(['vacuum rate', 'volumes before, MB', 'volumes after, MB', 'live after, MB (values / index)', 'after ÷ live values', `≤ ${DISK_GOAL}?`, 'vacuum wall time', 'copied', 'every value by SHA-256 after'], runs.map(spaceRow));
  const latency = table(['vacuum rate', 'measure', 'before p50 / p99 / max ms (samples)', 'during p50 / p99 / max ms (samples)', 'after (control) p50 / p99 / max ms', 'p99 during ÷ before', `≤ ${LATENCY_GOAL}×?`], runs.flatMap(latencyRows));
  const load = table(['vacuum rate', 'before', 'during', 'after'], runs.map(loadRow));
  const notes = runs.flatMap((r) => [
    ...r.problems.slice(0, MAX_BAD_LISTED).map((p) => `${rateName(r.rate)}: ${p}`),
    ...[...r.verify.bad, ...(r.verifyRestart?.bad ?? [])].slice(0, MAX_BAD_LISTED).map((p) => `${rateName(r.rate)}: verify: ${p}`),
    ...(r.vacuum.error === null ? [] : [`${rateName(r.rate)}: the vacuum failed: ${r.vacuum.error}`]),
    ...r.vacuum.reports.flatMap((v) => v.errors.map((e) => `${rateName(r.rate)}: vacuum of volume ${v.volume}: ${e}`)),
    ...(r.warningCount > 0 ? [`${rateName(r.rate)}: the master logged ${r.warningCount} line(s) at warn or above, first: ${r.warnings[0] ?? ''}`] : []),
    ...(r.vacuum.progressSeen === 0 ? [`${rateName(r.rate)}: /v1/status never showed the vacuum in operations`] : []),
    ...(r.after.openDeleted.files > 0 ? [`${rateName(r.rate)}: ${r.after.openDeleted.files} removed volume file(s) still open in the master after the vacuum (${fmtMB(r.after.openDeleted.bytes)} MB not given back)`] : []),
  ]);
  const lines = [...head, '', space, '', latency, '', load, ''];
  if (notes.length > 0) lines.push('worth a look:', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const head = header(opts);
  for (const line of head) log(line);
  const runs: Run[] = [];
  for (const rate of opts.rates) runs.push(await runOnce(opts, rate));
  process.stdout.write(`\n${report(head, runs)}`);
  if (opts.out !== null) {
    writeFileSync(opts.out, `${JSON.stringify({ header: head, runs }, null, 2)}\n`);
    log(`wrote ${opts.out}`);
  }
}

runBench('bench:vacuum', DEADLINE_MS, cleanup, main, log);
