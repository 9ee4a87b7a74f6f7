// `npm run bench:replica`: what read-only replicas cost and how far they trail (issue 12). In one
// run, on this machine, against servers this script starts:
//   1. lag of 1 KB SETs written at a paced 1,000 and 10,000 writes/s, two replicas attached;
//   2. lag of 1 KB SETs (1,000/s) while 64 MB blobs are PUT to the master over HTTP, and the
//      lag of each blob itself;
//   3. the master's throughput with 0 and with 2 replicas attached: redis-benchmark SET of 1 KB
//      (-c 50) and sequential HTTP PUTs of 1 MB, the two masters alternating run by run so
//      both see the same machine conditions; the cost is 1 - with / without.
// Prints a table with the goals of issue 12 beside the figures (p99 lag under 100 ms at
// 10,000 writes/s; under 10 % throughput cost).
//
// How lag is measured. Each replica serves the WebSocket stream of its WAL (/v1/wal, JSON
// frames), which pushes every record the replica has applied, with its keys. The script
// follows both replicas' streams and, for every write, takes the time the master's reply
// (+OK, or the PUT's 201) reached the script and the time the record with that key reached the
// script from each replica, both on this process's monotonic clock. lag = the second minus the
// first, one sample per (write, replica). It includes the stream's own delivery (an upper
// bound on "applied"); a record seen before the master's reply is counted as 0 and reported.
// The client's own event-loop delay (p99) is printed beside it, as it inflates both times.
// A cross-check free of the OK's path: the same arrival in Date.now() minus the record's own
// time (the master's commit, a ms clock of the same machine).
// The writes go over WRITER_CONNECTIONS connections with one SET in flight on each, never
// pipelined: the master's TCP front end flushes a connection's replies only when its input
// runs dry (or past 64 KB of replies), so on a connection that always has a next command
// waiting the OKs leave late, in bunches, and "from the OK" would read as lag below zero.
//
// Invariants this script keeps:
// - Like for like: both masters run the same program and flags (--sync always); replicas run
//   --sync always as well. After each run on the master with replicas, the next run waits
//   (bounded) until both replicas applied the master's last LSN, so catching up never spills
//   into the other master's run.
// - Every write is accounted for: the script waits (bounded) for every key to reach both
//   replicas and reports how many never did; each phase ends with a GET of its last key on
//   each replica, compared with the value written.
// - Bounded: writes in flight, every phase's length, every wait and request; the whole run has
//   a deadline; every child is stopped by its own PID (SIGTERM, then SIGKILL) on success,
//   error, SIGINT and SIGTERM, and every temp dir is removed.
//
// Flags: --quick (short runs, a smoke check), --out FILE (the figures as JSON),
//        --replica-dir DIR (the replicas' data under DIR, e.g. /dev/shm: on this one-disk
//        machine three stores otherwise fsync on the same device, which a master and replicas
//        on their own machines do not; this separates that from what replication itself costs).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { children, cpuSeconds, keepTail, makeTempDir, removeTempDir, runBench, stopChild, tempDirs, track } from './children.js';
import { body } from './pattern_body.js';

const MB = 2 ** 20;
const VALUE_SIZE = 1024;
const BLOB_SIZE = 64 * MB;
const PUT_SIZE = MB;
const RATES = [1000, 10_000] as const;
const BLOB_PHASE_RATE = 1000;
const LAG_GOAL_MS = 100;
const LAG_GOAL_RATE = 10_000;
/** A paced phase counts as reaching its rate at this share of it. */
const RATE_REACHED = 0.95;
const COST_GOAL = 0.1;
const CLIENTS = 50;
const KEYSPACE = 100_000;
/** Connections of the paced writer, each with one SET in flight: the writes in flight, at most. */
const WRITER_CONNECTIONS = 200;
/** The blob phase ends when its PUTs do, or after this. */
const MAX_BLOB_PHASE_MS = 300_000;
/** A paced phase may overrun its length by this much before the writer gives up sending. */
const PHASE_OVERRUN_MS = 10_000;
const ANSWER_WAIT_MS = 30_000;
const APPLY_WAIT_MS = 60_000;
const CATCH_UP_WAIT_MS = 120_000;
const START_WAIT_MS = 60_000;
const STOP_WAIT_MS = 20_000;
const RUN_TIMEOUT_MS = 180_000;
const REQUEST_TIMEOUT_MS = 120_000;
const WS_RECONNECTS = 20;
const DEADLINE_MS = 20 * 60_000;
const MASTER_JS = fileURLToPath(new URL('../../cmd/master.js', import.meta.url));
const REPLICA_JS = fileURLToPath(new URL('../../cmd/replica.js', import.meta.url));

interface Options {
  quick: boolean;
  out: string | null;
  /** Where the replicas keep their data (null: temp dirs on the master's disk). */
  replicaDir: string | null;
  /** Length of each paced phase. */
  seconds: number;
  blobs: number;
  /** Throughput: runs per side, SETs per redis-benchmark run, PUTs per run. */
  repeat: number;
  sets: number;
  puts: number;
}

function parseOptions(argv: string[]): Options {
  const known = new Set(['--quick', '--out', '--replica-dir']);
  for (const a of argv) if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown flag ${a} (flags: --quick, --out FILE, --replica-dir DIR)`);
  const value = (name: string): string | null => {
    const i = argv.indexOf(name);
    if (i < 0) return null;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name}: missing its value`);
    return v;
  };
  const quick = argv.includes('--quick');
  const common = { quick, out: value('--out'), replicaDir: value('--replica-dir') };
  return quick
    ? { ...common, seconds: 2, blobs: 1, repeat: 1, sets: 10_000, puts: 8 }
    : { ...common, seconds: 10, blobs: 4, repeat: 3, sets: 100_000, puts: 64 };
}

// ---------------------------------------------------------------------------------------
// Servers: a master or a replica as a child process, its ports read from its `listening' line

interface Server {
  name: string;
  child: ChildProcess;
  pid: number;
  port: number;
  httpPort: number;
  dir: string;
  /** Last lines of its log, for the error message when it dies. */
  tail: string[];
  /** Log lines at warn level or above (bounded), the surprises of the run. */
  warnings: string[];
  warningCount: number;
}

const servers: Server[] = [];
const MAX_WARNINGS = 20;

async function startServer(name: string, program: string, args: string[], under: string | null = null): Promise<Server> {
  const dir = under === null ? makeTempDir(`brisedb-replica-bench-${name}-`) : makeTempDirUnder(under, `brisedb-replica-bench-${name}-`);
  const argv = [program, '--addr', '127.0.0.1:0', '--data', join(dir, 'data'), '--sync', 'always', '--log-level', 'info', ...args];
  const child = track(spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const server: Server = { name, child, pid: child.pid ?? -1, port: 0, httpPort: 0, dir, tail: [], warnings: [], warningCount: 0 };
  servers.push(server);
  let onListening: () => void = () => undefined;
  const listening = new Promise<void>((resolve) => (onListening = resolve));
  keepTail(child.stdout, server.tail);
  keepTail(child.stderr, server.tail, (line) => onLogLine(server, line, onListening));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not listening after ${START_WAIT_MS / 1000} s\n${server.tail.join('\n')}`)), START_WAIT_MS);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it listened:\n${server.tail.join('\n')}`));
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
    return; // not one of our log lines; the tail keeps it for an error message
  }
  if (typeof entry.msg === 'string' && entry.msg.startsWith('listening') && typeof entry.port === 'number') {
    server.port = entry.port;
    server.httpPort = typeof entry.httpPort === 'number' ? entry.httpPort : 0;
    onListening();
  }
  if (typeof entry.level === 'number' && entry.level >= 40) {
    server.warningCount++;
    if (server.warnings.length < MAX_WARNINGS) server.warnings.push(line.slice(0, 400));
  }
}

function startMaster(name: string): Promise<Server> {
  return startServer(name, MASTER_JS, ['--http', '127.0.0.1:0']);
}

function startReplica(name: string, master: Server, under: string | null): Promise<Server> {
  return startServer(name, REPLICA_JS, ['--master', `127.0.0.1:${master.port}`, '--http', '127.0.0.1:0', '--http-threads', '1'], under);
}

/** A temp dir under `parent` (--replica-dir, e.g. /dev/shm), removed with the others. */
function makeTempDirUnder(parent: string, prefix: string): string {
  const dir = mkdtempSync(join(parent, prefix));
  tempDirs.add(dir);
  return dir;
}

async function stopServer(server: Server): Promise<void> {
  await stopChild(server.child, 'SIGTERM', STOP_WAIT_MS);
  removeTempDir(server.dir);
}

function alive(server: Server): void {
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    throw new Error(`${server.name} (pid ${server.pid}) died (${server.child.exitCode ?? server.child.signalCode}):\n${server.tail.join('\n')}`);
  }
}

let cleaning: Promise<void> | null = null;

/** Stops every child by its PID and removes every temp dir; idempotent. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const w of watchers.splice(0)) w.close();
    await Promise.all([...children].map((c) => stopChild(c, 'SIGTERM', STOP_WAIT_MS)));
    for (const dir of [...tempDirs]) removeTempDir(dir);
  })();
  return cleaning;
}

// ---------------------------------------------------------------------------------------
// RESP: one command, its whole reply (a line or a bulk string)

function command(port: number, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error(`${args[0]}: no reply in ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => socket.write(respCommand(args)));
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const reply = parseReply(data);
      if (reply === undefined) return;
      clearTimeout(timer);
      socket.destroy();
      if (reply instanceof Error) reject(new Error(`${args[0]}: ${reply.message}`));
      else resolve(reply);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function respCommand(args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A whole reply, an Error for `-ERR`, or undefined while incomplete; a nil bulk is ''. */
function parseReply(data: Buffer): string | Error | undefined {
  const end = data.indexOf('\r\n');
  if (end < 0) return undefined;
  const line = data.subarray(1, end).toString('latin1');
  if (data[0] === 0x2d) return new Error(line);
  if (data[0] !== 0x24) return line;
  const length = Number(line);
  if (length < 0) return '';
  if (data.length < end + 2 + length + 2) return undefined;
  return data.subarray(end + 2, end + 2 + length).toString('latin1');
}

/** The store's last applied LSN (INFO persistence, wal_last_lsn): a master's or a replica's. */
async function lastLsn(server: Server): Promise<number> {
  const text = await command(server.port, ['INFO', 'persistence']);
  const m = /wal_last_lsn:(\d+)/.exec(text);
  if (m === null) throw new Error(`${server.name}: INFO persistence has no wal_last_lsn`);
  return Number(m[1]);
}

/** Waits (bounded) until every replica applied the master's last LSN; answers how long it took. */
async function caughtUp(master: Server, replicas: Server[], what: string): Promise<number> {
  const t0 = performance.now();
  const target = await lastLsn(master);
  for (;;) {
    const behind: string[] = [];
    for (const r of replicas) {
      alive(r);
      const lsn = await lastLsn(r);
      if (lsn < target) behind.push(`${r.name} at ${lsn}`);
    }
    if (behind.length === 0) return performance.now() - t0;
    if (performance.now() - t0 > CATCH_UP_WAIT_MS) throw new Error(`${what}: replicas not at the master's LSN ${target} after ${CATCH_UP_WAIT_MS / 1000} s: ${behind.join(', ')}`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------------------
// The replicas' WAL streams: every key applied, with the time it reached this process

/** What a phase listens for: its 1 KB writes by index, its blobs by key. */
interface Tracker {
  prefix: string;
  /** Per replica, the time each write's record arrived (NaN until then). */
  applied: Float64Array[];
  /** Per replica, Date.now() at arrival minus the record's own time (the master's commit, ms). */
  sinceCommit: Float64Array[];
  /** Per replica, the time each blob's record arrived. */
  blobs: Map<string, number>[];
}

let tracking: Tracker | null = null;

interface WalOp {
  op?: string;
  key?: string;
  encoding?: string;
}

class WalWatcher {
  private ws: WebSocket | null = null;
  private closing = false;
  private reconnects = 0;
  lastLsn = 0;
  /** Closes the server made, each with its code and reason: a surprise worth reporting. */
  readonly drops: string[] = [];

  constructor(
    readonly replica: Server,
    private readonly index: number,
  ) {}

  /** Opens the stream (live from now, or from lastLsn + 1 after a drop); resolves once open. */
  open(): Promise<void> {
    const from = this.lastLsn > 0 ? `&from=${this.lastLsn + 1}` : '';
    const ws = new WebSocket(`ws://127.0.0.1:${this.replica.httpPort}/v1/wal?format=json${from}`);
    this.ws = ws;
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (!binary) this.onRecord(data.toString('utf8'));
    });
    ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString('utf8')));
    ws.on('error', () => undefined); // the close that follows reports it
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.replica.name}: /v1/wal not open after 10 s`)), 10_000);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once('close', () => {
        clearTimeout(timer);
        reject(new Error(`${this.replica.name}: /v1/wal closed before it opened`));
      });
    });
  }

  close(): void {
    this.closing = true;
    this.ws?.terminate();
  }

  private onRecord(text: string): void {
    const now = performance.now();
    const record = JSON.parse(text) as { lsn: number; time: number; ops: WalOp[] };
    const sinceCommit = Date.now() - record.time;
    this.lastLsn = Math.max(this.lastLsn, record.lsn);
    const t = tracking;
    if (t === null) return;
    for (const op of record.ops) {
      const key = op.key;
      if (key === undefined || op.encoding !== undefined) continue;
      if (key.startsWith(t.prefix)) {
        const i = Number(key.slice(t.prefix.length));
        const applied = t.applied[this.index];
        if (applied !== undefined && Number.isInteger(i) && i >= 0 && i < applied.length && Number.isNaN(applied[i])) {
          applied[i] = now;
          t.sinceCommit[this.index]?.set([sinceCommit], i);
        }
      } else if (key.startsWith(BLOB_PREFIX)) {
        const blobs = t.blobs[this.index];
        if (blobs !== undefined && !blobs.has(key)) blobs.set(key, now);
      }
    }
  }

  private onClose(code: number, reason: string): void {
    if (this.closing) return;
    this.drops.push(`${code} ${reason}`);
    log(`    ${this.replica.name}: /v1/wal closed (${code} ${reason}); resuming from LSN ${this.lastLsn + 1}`);
    if (this.reconnects++ >= WS_RECONNECTS) return;
    setTimeout(() => void this.open().catch((err: unknown) => this.drops.push(`reopen: ${String(err)}`)), 100).unref();
  }
}

const watchers: WalWatcher[] = [];
const BLOB_PREFIX = 'blob:';

// ---------------------------------------------------------------------------------------
// The paced writer: 1 KB SETs at a fixed rate, one in flight per connection

interface PhaseResult {
  name: string;
  rate: number;
  sent: number;
  ok: number;
  errors: number;
  firstError: string | null;
  /** OKs per second from the first send to the last OK. */
  rateReached: number;
  /** send → OK, ms. */
  writeP50: number;
  writeP99: number;
  /** master OK → replica applied, ms, both replicas' samples together. */
  lagP50: number;
  lagP99: number;
  lagMax: number;
  lagP99ByReplica: number[];
  /** The same pairs from the record's own time (the master's commit, ms clock): a cross-check free of the OK's path. */
  commitLagP50: number;
  commitLagP99: number;
  /** Lag p50 in each tenth of the phase, in write order: a replica falling behind shows as a rise. */
  lagByTenth: number[];
  /** (write, replica) pairs never seen on the replica's stream within the wait. */
  missing: number;
  /** Pairs seen on the replica before the master's OK reached the script (counted as 0). */
  early: number;
  /** The client's own event-loop delay during the phase, p99 in ms. */
  loopDelayP99: number;
  blobs: BlobResult | null;
}

interface BlobResult {
  count: number;
  size: number;
  /** Each blob's PUT time, s, and its lag, ms (both replicas). */
  putSeconds: number[];
  lag: number[];
}

/**
 * One connection of the writer, with at most one SET in flight: the master flushes a
 * connection's replies when its input runs dry, so a pipelined stream of paced writes would
 * hold its OKs back (see the header) and the lag would be measured from a late OK.
 */
class Conn {
  private inFlight = -1;
  private buffered = '';

  constructor(
    readonly socket: Socket,
    private readonly onAnswer: (conn: Conn, i: number, error: string | null) => void,
  ) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
  }

  get idle(): boolean {
    return this.inFlight < 0;
  }

  send(i: number, frame: Buffer): void {
    this.inFlight = i;
    this.socket.write(frame);
  }

  /** A SET answers one line: +OK or -ERR ... */
  private onData(chunk: string): void {
    this.buffered += chunk;
    const end = this.buffered.indexOf('\r\n');
    if (end < 0) return;
    const line = this.buffered.slice(0, end);
    this.buffered = this.buffered.slice(end + 2);
    const i = this.inFlight;
    this.inFlight = -1;
    if (i >= 0) this.onAnswer(this, i, line.startsWith('+') ? null : line);
  }
}

async function openConns(port: number, onAnswer: (conn: Conn, i: number, error: string | null) => void): Promise<Conn[]> {
  const conns: Conn[] = [];
  for (let c = 0; c < WRITER_CONNECTIONS; c++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined); // a write error shows as an answer that never comes
    conns.push(new Conn(socket, onAnswer));
  }
  return conns;
}

function value(i: number): Buffer {
  const v = Buffer.alloc(VALUE_SIZE, 0x61 + (i % 26));
  v.write(`${i}:`, 0, 'latin1');
  return v;
}

/**
 * One paced phase: `rate` SETs a second for `seconds` (or until `until` resolves, when given),
 * then every answer and every replica's record of every write, each wait bounded. A write is
 * due at i / rate s; it leaves on the first idle connection (at once when one is idle, else
 * as soon as one answers), so past what the connections carry the rate reached drops.
 */
async function pacedPhase(name: string, master: Server, replicas: Server[], rate: number, seconds: number, until: Promise<BlobResult> | null): Promise<PhaseResult> {
  const capacity = Math.round(rate * (until === null ? seconds : MAX_BLOB_PHASE_MS / 1000));
  const prefix = `lag:${name}:`;
  const sentAt = new Float64Array(capacity).fill(NaN);
  const okAt = new Float64Array(capacity).fill(NaN);
  const series = (): Float64Array[] => replicas.map(() => new Float64Array(capacity).fill(NaN));
  const tracker: Tracker = { prefix, applied: series(), sinceCommit: series(), blobs: replicas.map(() => new Map()) };
  let answered = 0;
  let errors = 0;
  let firstError: string | null = null;
  let sent = 0;
  let t0 = 0;
  let sending = true;
  const due = (): number => Math.min(capacity, Math.floor((rate * (performance.now() - t0)) / 1000));
  const sendOn = (conn: Conn): void => {
    sentAt[sent] = performance.now();
    conn.send(sent, respCommand(['SET', `${prefix}${sent}`, value(sent)]));
    sent++;
  };
  const conns = await openConns(master.port, (conn, i, error) => {
    answered++;
    if (error === null) okAt[i] = performance.now();
    else {
      errors++;
      firstError ??= error;
    }
    if (sending && sent < due()) sendOn(conn);
  });
  const loop = monitorEventLoopDelay({ resolution: 5 });
  tracking = tracker;
  loop.enable();
  let blobs: BlobResult | null = null;
  try {
    let done = false;
    void until?.then(
      () => (done = true),
      () => (done = true),
    );
    t0 = performance.now();
    const stopAt = t0 + (until === null ? seconds * 1000 + PHASE_OVERRUN_MS : MAX_BLOB_PHASE_MS);
    while (sent < capacity && !done && performance.now() < stopAt) {
      for (const conn of conns) {
        if (sent >= due()) break;
        if (conn.idle) sendOn(conn);
      }
      await sleep(1);
      alive(master);
    }
    sending = false;
    if (until !== null) blobs = await until;
    await waitFor(() => answered >= sent, ANSWER_WAIT_MS, `${name}: the master's answers to ${sent} SETs`);
    await waitFor(() => tracker.applied.every((a) => countSeen(a, okAt, sent) === countOk(okAt, sent)), APPLY_WAIT_MS, `${name}: the replicas' records`).catch((err: unknown) => log(`    ${String(err)}`));
    await checkLastValue(replicas, prefix, sent, okAt);
  } finally {
    sending = false;
    loop.disable();
    tracking = null;
    for (const c of conns) c.socket.destroy();
  }
  return summarize(name, rate, sent, sentAt, okAt, tracker, errors, firstError, loop.percentile(99) / 1e6, blobs, replicas);
}

function countOk(okAt: Float64Array, n: number): number {
  let c = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(okAt[i] ?? NaN)) c++;
  return c;
}

function countSeen(applied: Float64Array, okAt: Float64Array, n: number): number {
  let c = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(okAt[i] ?? NaN) && !Number.isNaN(applied[i] ?? NaN)) c++;
  return c;
}

/** The last write acknowledged, read back from each replica over TCP: the record was applied, not just streamed. */
async function checkLastValue(replicas: Server[], prefix: string, sent: number, okAt: Float64Array): Promise<void> {
  let last = sent - 1;
  while (last >= 0 && Number.isNaN(okAt[last] ?? NaN)) last--;
  if (last < 0) return;
  const want = value(last).toString('latin1');
  for (const r of replicas) {
    const got = await command(r.port, ['GET', `${prefix}${last}`]);
    if (got !== want) throw new Error(`${r.name}: GET ${prefix}${last} answered ${got.length} bytes that differ from the ${want.length} written`);
  }
}

function summarize(name: string, rate: number, sent: number, sentAt: Float64Array, okAt: Float64Array, t: Tracker, errors: number, firstError: string | null, loopDelayP99: number, blobs: BlobResult | null, replicas: Server[]): PhaseResult {
  const write: number[] = [];
  const lag: number[] = [];
  const byReplica: number[][] = replicas.map(() => []);
  const sinceCommit: number[] = [];
  const tenths: number[][] = Array.from({ length: 10 }, () => []);
  let missing = 0;
  let early = 0;
  let lastOk = 0;
  for (let i = 0; i < sent; i++) {
    const ok = okAt[i] ?? NaN;
    if (Number.isNaN(ok)) continue;
    lastOk = Math.max(lastOk, ok);
    write.push(ok - (sentAt[i] ?? ok));
    t.applied.forEach((applied, r) => {
      const at = applied[i] ?? NaN;
      if (Number.isNaN(at)) return void missing++;
      if (at < ok) early++;
      const ms = Math.max(0, at - ok);
      lag.push(ms);
      byReplica[r]?.push(ms);
      tenths[Math.min(9, Math.floor((10 * i) / sent))]?.push(ms);
      sinceCommit.push(t.sinceCommit[r]?.[i] ?? NaN);
    });
  }
  const seconds = (lastOk - (sentAt[0] ?? lastOk)) / 1000;
  return {
    name,
    rate,
    sent,
    ok: write.length,
    errors,
    firstError,
    rateReached: seconds > 0 ? write.length / seconds : 0,
    writeP50: percentile(write, 50),
    writeP99: percentile(write, 99),
    lagP50: percentile(lag, 50),
    lagP99: percentile(lag, 99),
    lagMax: percentile(lag, 100),
    lagP99ByReplica: byReplica.map((xs) => percentile(xs, 99)),
    commitLagP50: percentile(sinceCommit, 50),
    commitLagP99: percentile(sinceCommit, 99),
    lagByTenth: tenths.map((xs) => percentile(xs, 50)),
    missing,
    early,
    loopDelayP99,
    blobs,
  };
}

// ---------------------------------------------------------------------------------------
// HTTP PUT, streamed, with a deadline

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function put(port: number, key: string, size: number, seed: number): Promise<void> {
  const path = `/v1/blobs/${encodeURIComponent(key)}`;
  return new Promise<void>((resolve, reject) => {
    const headers = { 'content-length': String(size), 'content-type': 'application/octet-stream' };
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path, agent, headers });
    const timer = setTimeout(() => req.destroy(new Error(`not done after ${REQUEST_TIMEOUT_MS / 1000} s`)), REQUEST_TIMEOUT_MS);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(new Error(`PUT ${path}: ${err.message}`));
    };
    req.once('error', fail);
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text = (text + d).slice(0, 300)));
      res.once('error', fail);
      res.once('end', () => {
        clearTimeout(timer);
        if (res.statusCode === 201) resolve();
        else reject(new Error(`PUT ${path}: HTTP ${res.statusCode} ${text}`));
      });
    });
    // An early answer (413, 503) can end the upload; the response handler reports that one.
    pipeline(Readable.from(body(size, seed)), req).catch((err: unknown) => req.destroy(err instanceof Error ? err : new Error(String(err))));
  });
}

/** The blobs of phase 2, one after another; each one's lag from its 201 to each replica's record. */
async function putBlobs(master: Server, count: number, tracker: () => Tracker | null): Promise<BlobResult> {
  const putSeconds: number[] = [];
  const okAt = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const key = `${BLOB_PREFIX}${i}`;
    const t0 = performance.now();
    await put(master.httpPort, key, BLOB_SIZE, i);
    okAt.set(key, performance.now());
    putSeconds.push((performance.now() - t0) / 1000);
    log(`    PUT ${key} (64 MB): ${putSeconds[i]?.toFixed(2)} s`);
  }
  const t = tracker();
  const seen = (): boolean => t !== null && t.blobs.every((m) => [...okAt.keys()].every((k) => m.has(k)));
  await waitFor(seen, APPLY_WAIT_MS, 'the blobs on both replicas').catch((err: unknown) => log(`    ${String(err)}`));
  const lag: number[] = [];
  for (const m of t?.blobs ?? []) for (const [key, ok] of okAt) if (m.has(key)) lag.push(Math.max(0, (m.get(key) ?? ok) - ok));
  return { count, size: BLOB_SIZE, putSeconds, lag };
}

// ---------------------------------------------------------------------------------------
// Throughput: 0 replicas against 2, alternating

interface Side {
  name: '0 replicas' | '2 replicas';
  master: Server;
  replicas: Server[];
}

interface ThroughputRun {
  side: string;
  value: number;
  /** CPU seconds of the master and its replicas over wall seconds. */
  cores: number | null;
  /**
   * The master's own CPU seconds per unit (per SET, per MB), or null: what feeding the replicas
   * costs the master itself, apart from the cores the replicas take from it on this machine.
   */
  masterCpuPerUnit: number | null;
  /** How long the replicas took to apply the master's last LSN after the run, ms. */
  catchUpMs: number | null;
}

interface ThroughputResult {
  test: string;
  unit: string;
  without: number;
  with: number;
  cost: number;
  runs: ThroughputRun[];
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-100_000)));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-100_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') reject(new Error(`${cmd}: no result after ${timeoutMs / 1000} s (killed)`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** SETs/s of one redis-benchmark run (its --csv row "SET"). */
async function redisBenchmark(master: Server, requests: number): Promise<number> {
  const args = ['-h', '127.0.0.1', '-p', String(master.port), '-t', 'set', '-d', String(VALUE_SIZE), '-c', String(CLIENTS), '-r', String(KEYSPACE), '-n', String(requests), '--csv'];
  const res = await run('redis-benchmark', args, RUN_TIMEOUT_MS);
  // redis-benchmark exits 1 on an error reply, so errors answered fast never count as throughput.
  if (res.code !== 0) throw new Error(`redis-benchmark ${args.join(' ')}: exit ${res.code}\n${res.stderr.trim()}\n${res.stdout.trim()}`);
  const row = res.stdout.split('\n').find((l) => l.startsWith('"SET"'));
  const rps = Number(row?.split(',')[1]?.replace(/"/g, ''));
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`redis-benchmark: no SET rate in\n${res.stdout}`);
  return rps;
}

/** MB/s of `count` sequential 1 MB PUTs. */
async function putRun(master: Server, count: number, run: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await put(master.httpPort, `put:${run}:${i}`, PUT_SIZE, run * count + i);
  return (count * PUT_SIZE) / MB / ((performance.now() - t0) / 1000);
}

async function measureSide(side: Side, what: string, measure: () => Promise<number>): Promise<ThroughputRun> {
  const pids = [side.master, ...side.replicas].map((s) => s.pid);
  const cpu0 = cpuSeconds(pids);
  const own0 = cpuSeconds([side.master.pid]);
  const t0 = performance.now();
  const v = await measure();
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(pids);
  const own1 = cpuSeconds([side.master.pid]);
  const cores = cpu0 === null || cpu1 === null ? null : (cpu1 - cpu0) / wall;
  const masterCpuPerUnit = own0 === null || own1 === null ? null : (own1 - own0) / (v * wall);
  const catchUpMs = side.replicas.length === 0 ? null : await caughtUp(side.master, side.replicas, `${what} on ${side.name}`);
  for (const s of [side.master, ...side.replicas]) alive(s);
  return { side: side.name, value: v, cores, masterCpuPerUnit, catchUpMs };
}

async function throughput(sides: Side[], test: string, unit: string, opts: Options, measure: (master: Server, run: number) => Promise<number>): Promise<ThroughputResult> {
  const runs: ThroughputRun[] = [];
  for (let rep = 0; rep < opts.repeat; rep++) {
    // The order rotates each repeat, so neither side always runs on a warmer machine.
    for (const side of rep % 2 === 0 ? sides : [...sides].reverse()) {
      const r = await measureSide(side, test, () => measure(side.master, rep));
      runs.push(r);
      const extra = `${r.cores === null ? '' : `, ${r.cores.toFixed(2)} cores`}${r.catchUpMs === null ? '' : `, replicas caught up ${r.catchUpMs.toFixed(0)} ms after`}`;
      log(`    ${test} ${side.name}: ${fmtNumber(r.value)} ${unit}${extra}`);
    }
  }
  const without = median(runs.filter((r) => r.side === '0 replicas').map((r) => r.value));
  const withReplicas = median(runs.filter((r) => r.side === '2 replicas').map((r) => r.value));
  return { test, unit, without, with: withReplicas, cost: 1 - withReplicas / without, runs };
}


// ---------------------------------------------------------------------------------------
// Helpers and output

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(ready: () => boolean, ms: number, what: string): Promise<void> {
  const until = performance.now() + ms;
  while (!ready()) {
    if (performance.now() > until) throw new Error(`${what}: not done after ${ms / 1000} s`);
    await sleep(10);
  }
}

/** The p-th percentile (nearest rank) of xs; NaN when empty. */
function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

function median(xs: number[]): number {
  return percentile(xs, 50);
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function fmtNumber(x: number): string {
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1);
}

function fmtMs(x: number): string {
  return Number.isNaN(x) ? 'n/a' : x >= 10 ? x.toFixed(0) : x.toFixed(1);
}

function phaseLine(p: PhaseResult): string {
  return `    ${p.name}: ${fmtNumber(p.rateReached)} SETs/s reached of ${p.rate}, lag p50 ${fmtMs(p.lagP50)} ms, p99 ${fmtMs(p.lagP99)} ms, max ${fmtMs(p.lagMax)} ms, ${p.missing} missing; from the commit p50 ${fmtMs(p.commitLagP50)} / p99 ${fmtMs(p.commitLagP99)} ms; p50 by tenth of the phase: ${p.lagByTenth.map(fmtMs).join(' ')}`;
}

function lagRow(p: PhaseResult): string[] {
  const reached = p.rateReached >= p.rate * RATE_REACHED;
  const load = p.blobs === null ? `${p.rate.toLocaleString('en-US')} SETs/s` : `${p.rate.toLocaleString('en-US')} SETs/s + ${p.blobs.count} × 64 MB PUT`;
  const goal = p.rate === LAG_GOAL_RATE && p.blobs === null ? `p99 < ${LAG_GOAL_MS} ms` : '—';
  const met = goal === '—' ? '—' : reached && p.lagP99 < LAG_GOAL_MS && p.missing === 0 ? 'yes' : 'no';
  const notes = [`${p.ok.toLocaleString('en-US')} OK`, p.errors > 0 ? `${p.errors} errors (${p.firstError ?? ''})` : '', p.missing > 0 ? `${p.missing} never applied` : '', p.early > 0 ? `${p.early} seen before the OK` : '', `client loop p99 ${fmtMs(p.loopDelayP99)} ms`].filter((s) => s !== '');
  return [
    `1 KB SET lag, ${load}`,
    `${fmtNumber(p.rateReached)}/s${reached ? '' : ' (rate not reached)'}`,
    fmtMs(p.lagP50),
    fmtMs(p.lagP99),
    `${fmtMs(p.lagMax)} (${p.lagP99ByReplica.map(fmtMs).join(' / ')})`,
    `${fmtMs(p.commitLagP50)} / ${fmtMs(p.commitLagP99)}`,
    `${fmtMs(p.writeP50)} / ${fmtMs(p.writeP99)}`,
    goal,
    met,
    notes.join('; '),
  ];
}

function blobRow(p: PhaseResult): string[] | null {
  const b = p.blobs;
  if (b === null) return null;
  const mbps = b.putSeconds.map((s) => b.size / MB / s);
  return ['64 MB blob lag (PUT 201 → replica)', `${fmtNumber(median(mbps))} MB/s per PUT`, fmtMs(percentile(b.lag, 50)), fmtMs(percentile(b.lag, 99)), fmtMs(percentile(b.lag, 100)), '—', `${median(b.putSeconds).toFixed(2)} s per PUT`, '—', '—', `${b.lag.length} of ${b.count * 2} (blob, replica) seen`];
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function lagTable(phases: PhaseResult[]): string {
  const rows = phases.flatMap((p) => [lagRow(p), blobRow(p)].filter((r): r is string[] => r !== null));
  return table(['measure', 'rate reached', 'lag p50 ms', 'lag p99 ms', 'lag max ms (p99 per replica)', 'from the commit p50 / p99 ms', 'master OK p50 / p99 ms', 'goal', 'met?', 'notes'], rows);
}

function throughputTable(results: ThroughputResult[]): string {
  const cores = (t: ThroughputResult, side: string): string => {
    const xs = t.runs.filter((r) => r.side === side && r.cores !== null).map((r) => r.cores ?? 0);
    return xs.length === 0 ? 'n/a' : median(xs).toFixed(2);
  };
  const ownCpu = (t: ThroughputResult, side: string): string => {
    const xs = t.runs.filter((r) => r.side === side && r.masterCpuPerUnit !== null).map((r) => r.masterCpuPerUnit ?? 0);
    return xs.length === 0 ? 'n/a' : t.unit === 'MB/s' ? `${(median(xs) * 1e3).toFixed(2)} ms/MB` : `${(median(xs) * 1e6).toFixed(0)} µs/SET`;
  };
  const rows = results.map((t) => {
    const catchUp = t.runs.flatMap((r) => (r.catchUpMs === null ? [] : [r.catchUpMs]));
    return [t.test, `${fmtNumber(t.without)} ${t.unit}`, `${fmtNumber(t.with)} ${t.unit}`, `${(t.cost * 100).toFixed(1)} %`, `< ${COST_GOAL * 100} %`, t.cost < COST_GOAL ? 'yes' : 'no', `${cores(t, '0 replicas')} / ${cores(t, '2 replicas')}`, `${ownCpu(t, '0 replicas')} / ${ownCpu(t, '2 replicas')}`, `${fmtMs(percentile(catchUp, 100))} ms`];
  });
  return table(['test', '0 replicas', '2 replicas', 'cost', 'goal', 'met?', `cores busy of ${cpus().length} (master / master + replicas)`, "master's own CPU per unit (0 / 2 replicas)", 'replicas caught up after a run, max'], rows);
}

function header(opts: Options): string[] {
  const cpu = cpus();
  return [
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown cpu'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}, temp dirs in ${tmpdir()}`,
    `servers: node cmd/master.js --sync always (HTTP threads: its default); 2 × node cmd/replica.js --sync always --http-threads 1, on this machine, their data ${opts.replicaDir === null ? 'in temp dirs on the same disk as the master' : `under ${opts.replicaDir}`}; one client process (this script)`,
    `lag: 1 KB SETs paced at a fixed rate for ${opts.seconds} s over ${WRITER_CONNECTIONS} connections, one SET in flight on each; lag = the master's OK reaching this script → the replica's /v1/wal record of that key reaching it, both replicas' samples together; "from the commit": the same arrival, Date.now() minus the record's time (the master's commit, ms)`,
    `throughput: redis-benchmark -t set -d ${VALUE_SIZE} -c ${CLIENTS} -r ${KEYSPACE} -n ${opts.sets}; ${opts.puts} sequential 1 MB HTTP PUTs (keep-alive); median of ${opts.repeat} run(s) per side, the sides alternating; cost = 1 - with / without`,
  ];
}

/** A phase whose lag kept rising: the replicas applied more slowly than the master committed. */
function fellBehind(p: PhaseResult): string[] {
  const first = p.lagByTenth[0] ?? NaN;
  const peak = Math.max(...p.lagByTenth.filter((x) => !Number.isNaN(x)));
  if (!(peak > LAG_GOAL_MS && peak > 4 * first)) return [];
  return [`${p.name}: the lag p50 rose from ${fmtMs(first)} ms in the first tenth of the phase to ${fmtMs(peak)} ms: the replicas applied more slowly than the master committed`];
}

function surprises(ws: WalWatcher[]): string[] {
  const lines: string[] = [];
  for (const s of servers) {
    if (s.warningCount > 0) lines.push(`${s.name}: ${s.warningCount} log line(s) at warn or above, first: ${s.warnings[0] ?? ''}`);
  }
  for (const w of ws) if (w.drops.length > 0) lines.push(`${w.replica.name}: /v1/wal closed ${w.drops.length} time(s): ${w.drops.slice(0, 3).join('; ')}`);
  return lines;
}

// ---------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const head = header(opts);
  for (const line of head) log(line);
  log('starting two masters (one alone, one with two replicas)');
  const alone = await startMaster('master-alone');
  const master = await startMaster('master');
  const replicas = [await startReplica('replica-1', master, opts.replicaDir), await startReplica('replica-2', master, opts.replicaDir)];
  await command(master.port, ['SET', 'warm', 'x']);
  await caughtUp(master, replicas, 'at start');

  const sides: Side[] = [
    { name: '0 replicas', master: alone, replicas: [] },
    { name: '2 replicas', master, replicas },
  ];
  log('throughput, 0 against 2 replicas');
  const results = [
    await throughput(sides, 'SET 1 KB (redis-benchmark -c 50)', 'SETs/s', opts, (m) => redisBenchmark(m, opts.sets)),
    await throughput(sides, 'PUT 1 MB (HTTP, sequential)', 'MB/s', opts, (m, rep) => putRun(m, opts.puts, rep)),
  ];
  await stopServer(alone);

  log('lag, two replicas attached');
  for (const [i, r] of replicas.entries()) watchers.push(new WalWatcher(r, i));
  for (const w of watchers) await w.open();
  await sleep(200); // both streams live before the first write
  const phases: PhaseResult[] = [];
  for (const rate of RATES) {
    const p = await pacedPhase(`r${rate}`, master, replicas, rate, opts.seconds, null);
    phases.push(p);
    log(phaseLine(p));
    await caughtUp(master, replicas, `after ${rate}/s`);
  }
  const blobs = putBlobs(master, opts.blobs, () => tracking);
  const p = await pacedPhase('blobs', master, replicas, BLOB_PHASE_RATE, opts.seconds, blobs);
  phases.push(p);
  log(phaseLine(p));
  await caughtUp(master, replicas, 'after the blobs');

  const notes = [...surprises(watchers), ...phases.flatMap(fellBehind)];
  await cleanup();
  const lag = lagTable(phases);
  const tput = throughputTable(results);
  const goalsMet = [...phases.filter((x) => x.rate === LAG_GOAL_RATE && x.blobs === null).map((x) => x.rateReached >= x.rate * RATE_REACHED && x.lagP99 < LAG_GOAL_MS && x.missing === 0), ...results.map((t) => t.cost < COST_GOAL)];
  process.stdout.write(`\n${head.join('\n')}\n\n${lag}\n\n${tput}\n`);
  process.stdout.write(`\ngoals met: ${goalsMet.filter(Boolean).length} of ${goalsMet.length} (lag p99 under ${LAG_GOAL_MS} ms at ${LAG_GOAL_RATE.toLocaleString('en-US')} writes/s; replicas cost the master under ${COST_GOAL * 100} % of its throughput)\n`);
  if (notes.length > 0) process.stdout.write(`\nworth a look:\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
  if (opts.out !== null) {
    writeFileSync(opts.out, `${JSON.stringify({ header: head, options: opts, lag: phases, throughput: results, notes }, null, 2)}\n`);
    log(`wrote ${opts.out}`);
  }
}

runBench('bench:replica', DEADLINE_MS, cleanup, main, log);
