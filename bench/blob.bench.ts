// `npm run bench:blob`: BriseDB's HTTP blob API against nginx used as a blob volume server the
// way minikeyvalue uses it (WebDAV PUT/DELETE, sendfile for GET), in the same run, alternating
// BriseDB --sync always, BriseDB --sync none, nginx, ... so all see the same machine conditions.
// PUT and GET of 1 MB, 64 MB and 1 GB values (MB = 2^20 bytes) from one client, MB/s and
// requests/s; the master's RSS (peak, and growth during each run); GET 1 MB under 64
// concurrent connections (wrk) against --http-threads 1, --http-threads N (cores) and nginx.
// Prints one table with the ratios and the goals of issue 4.
//
// Invariants this script keeps:
// - Fsync policy stated and matched: nginx never fsyncs a PUT (the data is in the page cache
//   when it answers 201/204); BriseDB's default `--sync always` fsyncs before its 201, so every
//   size also runs against a master with `--sync none`, the like-for-like column.
// - Constant client memory: bodies are streamed from 16 pre-made 1 MiB blocks of a seeded
//   pattern (never a whole value in memory); GET bodies go to a byte-counting sink; each
//   (size, server) is checked once by SHA-256 against the pattern, outside the timed runs.
// - Each size gets fresh servers with fresh temp dirs, removed afterwards, so disk stays
//   bounded (1 GB needs a few GB: checked with statfs first, skipped with a message if short).
// - Everything is bounded: every request and child process has a timeout, the whole run a
//   deadline; every child is stopped by its own PID (nginx's workers too) on success, error,
//   SIGINT and SIGTERM, and every temp dir is removed.
//
// Flags: --quick (fewer and shorter runs), --sizes 1mb,64mb,1gb (default all three),
//        --repeat N (runs per server and size; default 5, 3, 2 by size), --wrk-seconds S
//        (default 5), --json out.json (also write the results as JSON).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { mkdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { createServer } from 'node:net';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { children, keepTail, makeTempDir, removeTempDir, runBench, stopChild, tempDirs, track } from './children.js';
import { body, expectedHash } from './pattern_body.js';

const MB = 2 ** 20;
const GB = 2 ** 30;

type Side = 'always' | 'none' | 'nginx';
type Op = 'PUT' | 'GET';

interface Options {
  quick: boolean;
  sizes: number[];
  repeat: number | null;
  wrkSeconds: number;
  json: string | null;
}

interface Server {
  label: string;
  kind: 'brisedb' | 'nginx';
  port: number;
  child: ChildProcess;
  dir: string;
  /** Last lines of the server's output, for the error message when it dies. */
  tail: string[];
  agent: Agent;
  /** The request path of a key: BriseDB's route, or minikeyvalue's two-level nginx layout. */
  path: (key: string) => string;
}

/** How one size is measured: requests per timed run and runs per server. */
interface Plan {
  count: number;
  repeat: number;
}

interface RssRun {
  /** VmRSS just before the run, bytes. */
  before: number;
  /** Highest VmRSS sampled during the run, bytes. */
  peak: number;
}

interface RunStat {
  seconds: number;
  requests: number;
  bytes: number;
  rss: RssRun | null;
}

interface Cell {
  /** Medians over the runs. */
  mbps: number;
  rps: number;
  runs: RunStat[];
}

interface SizeResult {
  size: number;
  plan: Plan;
  cells: Record<Op, Record<Side, Cell>>;
  /** Per BriseDB side: RSS figures of its master (null where there is no /proc). */
  rss: Record<'always' | 'none', RssSummary | null>;
}

interface RssSummary {
  /** The highest RSS seen. */
  peak: number;
  /** The largest growth within one run: the goal's figure. */
  growth: number;
  /** Growth in the master's first timed run (its one-time ramp included) and the largest in the later ones. */
  first: number;
  later: number | null;
}

interface WrkCell {
  label: string;
  rps: number;
  mbps: number;
  runs: number[];
  /** Cores the master used during the runs (CPU seconds / wall seconds), BriseDB only. */
  cores: number | null;
  refused: string | null;
}

interface Row {
  measure: string;
  brisedb: string;
  reference: string;
  ratio: string;
  goal: string;
  met: 'yes' | 'no' | '—';
}

const SIZE_NAMES: Record<string, number> = { '1mb': MB, '64mb': 64 * MB, '1gb': GB };
const PLANS: Record<number, Plan> = { [MB]: { count: 64, repeat: 5 }, [64 * MB]: { count: 4, repeat: 3 }, [GB]: { count: 1, repeat: 2 } };
const QUICK_PLANS: Record<number, Plan> = { [MB]: { count: 16, repeat: 2 }, [64 * MB]: { count: 2, repeat: 2 }, [GB]: { count: 1, repeat: 1 } };
const SIDES: Side[] = ['always', 'none', 'nginx'];
const WRK_CONNECTIONS = 64;
const WRK_THREADS = 2;
const MIN_FREE_FOR_1GB = 4 * GB;
const RSS_SAMPLE_MS = 50;
const RSS_GOAL = 64 * MB;
const SERVER_START_TIMEOUT_MS = 30_000;
const SERVER_STOP_TIMEOUT_MS = 20_000;
/** A request may take this long plus one second per 10 MB (slow fsyncs on a busy VM). */
const REQUEST_BASE_TIMEOUT_MS = 30_000;
const REQUEST_IDLE_TIMEOUT_MS = 60_000;
const DEADLINE_MS = 45 * 60_000;
const INSTALL_HINT = 'install them with: sudo apt-get install -y nginx wrk (Debian/Ubuntu)';

// Every child and temp dir the script made, so that cleanup can reach them from anywhere.
/** PIDs of nginx workers, stopped by PID if they outlive their master. */
const strayPids = new Set<number>();

// ---------------------------------------------------------------------------------------
// Flags

function parseOptions(argv: string[]): Options {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const positive = (name: string, raw: string | undefined): number | null => {
    if (raw === undefined) return null;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: "${raw}" is not a positive number`);
    return n;
  };
  const sizes = (value('--sizes') ?? '1mb,64mb,1gb').split(',').map((s) => {
    const size = SIZE_NAMES[s.trim().toLowerCase()];
    if (size === undefined) throw new Error(`--sizes: "${s}" is not one of ${Object.keys(SIZE_NAMES).join(', ')}`);
    return size;
  });
  const quick = argv.includes('--quick');
  const repeat = positive('--repeat', value('--repeat'));
  return {
    quick,
    sizes,
    repeat: repeat === null ? null : Math.floor(repeat),
    wrkSeconds: positive('--wrk-seconds', value('--wrk-seconds')) ?? (quick ? 2 : 5),
    json: value('--json') ?? null,
  };
}

function planFor(size: number, opts: Options): Plan {
  const plan = (opts.quick ? QUICK_PLANS : PLANS)[size] ?? { count: 1, repeat: 1 };
  return { count: plan.count, repeat: opts.repeat ?? plan.repeat };
}

// ---------------------------------------------------------------------------------------
// Tools and machine

function requireTools(): { nginx: string; wrk: string } {
  const nginx = spawnSync('nginx', ['-v'], { encoding: 'utf8', timeout: 10_000 });
  const wrk = spawnSync('wrk', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  // `wrk --version` prints its banner and exits 1; only a missing program is an error.
  const missing = [nginx.error !== undefined ? 'nginx' : null, wrk.error !== undefined ? 'wrk' : null].filter((m) => m !== null);
  if (missing.length > 0) {
    process.stderr.write(`bench:blob: ${missing.join(' and ')} not found; ${INSTALL_HINT}\n`);
    process.exit(1);
  }
  const dav = spawnSync('nginx', ['-V'], { encoding: 'utf8', timeout: 10_000 });
  if (!`${dav.stdout}${dav.stderr}`.includes('http_dav_module')) {
    process.stderr.write('bench:blob: this nginx has no http_dav_module (PUT/DELETE); Debian\'s nginx package has it\n');
    process.exit(1);
  }
  return {
    nginx: /nginx\/(\S+)/.exec(nginx.stderr)?.[1] ?? 'unknown',
    wrk: /wrk (\S+)/.exec(`${wrk.stdout}${wrk.stderr}`)?.[1] ?? 'unknown',
  };
}

function machineLine(versions: { nginx: string; wrk: string }): string {
  const cpu = cpus();
  const model = cpu[0]?.model.trim() ?? 'unknown cpu';
  const gib = (totalmem() / GB).toFixed(1);
  return `machine: ${cpu.length} cores (${model}), ${gib} GiB RAM, node ${process.version}, nginx ${versions.nginx}, wrk ${versions.wrk}, temp dirs in ${tmpdir()}`;
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

// ---------------------------------------------------------------------------------------
// Child processes: bench/children.ts


function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The PIDs of a process's children (nginx's workers), from /proc; empty where there is no /proc. */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killStrays(): void {
  for (const pid of strayPids) {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    strayPids.delete(pid);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves when `ready` resolves, rejects when the child exits first or after the timeout. */
function awaitStart<T>(server: { child: ChildProcess; tail: string[] }, what: string, ready: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not ready after ${SERVER_START_TIMEOUT_MS / 1000} s\n${server.tail.join('\n')}`)), SERVER_START_TIMEOUT_MS);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready:\n${server.tail.join('\n')}`));
    };
    server.child.once('exit', onExit);
    ready.then(
      (value) => {
        clearTimeout(timer);
        server.child.off('exit', onExit);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion, killing it after `timeoutMs` (then it rejects). */
function run(cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${cmd} ${args.join(' ')}: no result after ${timeoutMs / 1000} s (killed)`));
      else resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------
// Servers

function newAgent(): Agent {
  // One connection per server, kept alive: the single-client runs measure transfer, not set-up.
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

interface BriseOptions {
  label: string;
  sync: 'always' | 'none';
  /** null: the master's default (the number of cores). */
  httpThreads: number | null;
}

/** The master on ports it picks itself (`:0`), read back from its `listening` log line (`httpPort`). */
async function startBriseDB(o: BriseOptions): Promise<Server> {
  const dir = makeTempDir('brisedb-blob-bench-');
  const master = fileURLToPath(new URL('../../cmd/master.js', import.meta.url));
  const args = [master, '--addr', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data', join(dir, 'data'), '--sync', o.sync, '--log-level', 'info'];
  if (o.httpThreads !== null) args.push('--http-threads', String(o.httpThreads));
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const tail: string[] = [];
  let onPort: (port: number | null) => void = () => undefined;
  const portSeen = new Promise<number | null>((resolve) => (onPort = resolve));
  keepTail(child.stdout, tail);
  keepTail(child.stderr, tail, (line) => {
    if (!line.includes('"listening"')) return;
    try {
      const port = (JSON.parse(line) as { httpPort?: unknown }).httpPort;
      onPort(typeof port === 'number' ? port : null);
    } catch {
      // not a log line of ours; the timeout reports a master that never listens
    }
  });
  try {
    const port = await awaitStart({ child, tail }, `brisedb master (${o.label})`, portSeen);
    if (port === null) throw new Error(`brisedb master (${o.label}) listens without HTTP (httpPort null): is the HTTP API built?\n${tail.join('\n')}`);
    const server: Server = { label: o.label, kind: 'brisedb', port, child, dir, tail, agent: newAgent(), path: (key) => `/v1/blobs/${encodeURIComponent(key)}` };
    return server;
  } catch (err) {
    await stopChild(child, 'SIGKILL', 1000);
    removeTempDir(dir);
    throw err;
  }
}

/**
 * minikeyvalue's volume server config (its `volume` script), with every path inside `dir`.
 * worker_processes auto (one per core), as minikeyvalue runs it. client_body_buffer_size 16k,
 * nginx's own default on 64-bit, so a body larger than that spills to client_body_temp_path
 * and is renamed into place, as in minikeyvalue; nothing is fsynced.
 */
function nginxConfig(dir: string, port: number, runAsRoot: boolean): string {
  return `# generated by bench/blob.bench.ts
${runAsRoot ? 'user root;\n' : ''}daemon off;
master_process on;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  multi_accept on;
  accept_mutex off;
  worker_connections 4096;
}
http {
  sendfile on;
  sendfile_max_chunk 1024k;
  tcp_nopush on;
  tcp_nodelay on;
  open_file_cache off;
  server_tokens off;
  default_type application/octet-stream;
  access_log off;
  client_body_temp_path ${dir}/body_temp;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  server {
    listen 127.0.0.1:${port} default_server backlog=4096;
    location / {
      root ${dir}/volume;
      disable_symlinks off;
      client_max_body_size 0;
      client_body_buffer_size 16k;
      dav_methods PUT DELETE;
      dav_access group:rw all:r;
      create_full_put_path on;
    }
  }
}
`;
}

async function startNginx(): Promise<Server> {
  const dir = makeTempDir('nginx-blob-bench-');
  mkdirSync(join(dir, 'volume'));
  // As root, nginx's workers would become `nobody` and could not write into a 0700 temp dir.
  const runAsRoot = process.getuid?.() === 0;
  for (let attempt = 1; ; attempt++) {
    // A free port can be taken between the probe and the bind: try a few.
    const port = await freePort();
    writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port, runAsRoot));
    const args = ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
    const child = track(spawn('nginx', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const tail: string[] = [];
    keepTail(child.stdout, tail);
    keepTail(child.stderr, tail);
    const server: Server = { label: 'nginx', kind: 'nginx', port, child, dir, tail, agent: newAgent(), path: nginxPath };
    try {
      await awaitStart({ child, tail }, 'nginx', waitForHttp(port, child));
      return server;
    } catch (err) {
      await stopChild(child, 'SIGKILL', 1000);
      if (attempt >= 3) {
        removeTempDir(dir);
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${readTail(join(dir, 'error.log'))}`);
      }
    }
  }
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-10).join('\n');
  } catch {
    return '';
  }
}

/** minikeyvalue's layout: two levels of directories from the key's hash, created by the PUT. */
function nginxPath(key: string): string {
  const h = createHash('md5').update(key).digest('hex');
  return `/${h.slice(0, 2)}/${h.slice(2, 4)}/${encodeURIComponent(key)}`;
}

/** Any HTTP answer to HEAD / means the server is up (nginx says 404 or 403). */
async function waitForHttp(port: number, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) return new Promise(() => undefined); // awaitStart reports the exit
    const up = await new Promise<boolean>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'HEAD', path: '/', timeout: 1000 }, (res) => {
        res.resume();
        resolve(true);
      });
      req.once('timeout', () => req.destroy());
      req.once('error', () => resolve(false));
      req.end();
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopServer(server: Server): Promise<void> {
  server.agent.destroy();
  const pid = server.child.pid;
  // nginx's workers are children of its master: remembered first, killed by PID if they outlive it.
  if (server.kind === 'nginx' && pid !== undefined) for (const w of childPids(pid)) strayPids.add(w);
  await stopChild(server.child, server.kind === 'nginx' ? 'SIGQUIT' : 'SIGTERM', SERVER_STOP_TIMEOUT_MS);
  await waitGone([...strayPids], 2000);
  killStrays();
  removeTempDir(server.dir);
}

async function waitGone(pids: number[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (pids.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}

// ---------------------------------------------------------------------------------------
// HTTP requests, streamed both ways, each with a deadline and an idle timeout

function requestTimeoutMs(size: number): number {
  return REQUEST_BASE_TIMEOUT_MS + Math.ceil(size / (10 * MB)) * 1000;
}

/** Settles a promise once, clearing the request's deadline. */
function settleOnce(resolve: () => void, reject: (err: Error) => void, timer: NodeJS.Timeout): { ok: () => void; fail: (err: Error) => void } {
  let done = false;
  return {
    ok: () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    },
    fail: (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(err);
    },
  };
}

/** The start of an error response's body, for the message. */
function readSome(res: IncomingMessage, max = 300): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      if (text.length < max) text += d.slice(0, max - text.length);
    });
    res.once('end', () => resolve(text));
    res.once('error', () => resolve(text));
  });
}

function put(server: Server, key: string, size: number, seed: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const path = server.path(key);
    const req = request({ host: '127.0.0.1', port: server.port, method: 'PUT', path, agent: server.agent, headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' } });
    const timer = setTimeout(() => req.destroy(new Error(`PUT ${path} (${server.label}): no answer after ${requestTimeoutMs(size) / 1000} s`)), requestTimeoutMs(size));
    const s = settleOnce(resolve, reject, timer);
    req.setTimeout(REQUEST_IDLE_TIMEOUT_MS, () => req.destroy(new Error(`PUT ${path} (${server.label}): idle for ${REQUEST_IDLE_TIMEOUT_MS / 1000} s`)));
    req.once('error', (err) => s.fail(new Error(`PUT ${path} (${server.label}): ${err.message}`)));
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      readSome(res).then((text) => {
        // BriseDB answers 201 when durable; nginx 201 for a new file, 204 for a replaced one.
        if (status === 201 || status === 204 || status === 200) s.ok();
        else s.fail(new Error(`PUT ${path} (${server.label}): HTTP ${status} ${text}`));
      }, s.fail);
    });
    pipeline(Readable.from(body(size, seed)), req).catch((err: unknown) => {
      // An early answer (413, 5xx) can end the upload; the response handler reports that one.
      req.destroy(err instanceof Error ? err : new Error(String(err)));
    });
  });
}

/** Streams the body to a sink, counting bytes (and hashing them when `hash` is given). */
function get(server: Server, key: string, size: number, hash: Hash | null): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const path = server.path(key);
    const req = request({ host: '127.0.0.1', port: server.port, method: 'GET', path, agent: server.agent });
    const timer = setTimeout(() => req.destroy(new Error(`GET ${path} (${server.label}): not done after ${requestTimeoutMs(size) / 1000} s`)), requestTimeoutMs(size));
    const s = settleOnce(resolve, reject, timer);
    req.setTimeout(REQUEST_IDLE_TIMEOUT_MS, () => req.destroy(new Error(`GET ${path} (${server.label}): idle for ${REQUEST_IDLE_TIMEOUT_MS / 1000} s`)));
    req.once('error', (err) => s.fail(new Error(`GET ${path} (${server.label}): ${err.message}`)));
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        readSome(res).then((text) => s.fail(new Error(`GET ${path} (${server.label}): HTTP ${status} ${text}`)), s.fail);
        return;
      }
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash?.update(chunk);
      });
      res.once('error', (err) => s.fail(new Error(`GET ${path} (${server.label}): ${err.message}`)));
      res.once('end', () => {
        if (bytes === size) s.ok();
        else s.fail(new Error(`GET ${path} (${server.label}): ${bytes} bytes, expected ${size}`));
      });
    });
    req.end();
  });
}

// ---------------------------------------------------------------------------------------
// The master's RSS (/proc/<pid>/status VmRSS) and CPU time (/proc/<pid>/stat); the master is
// one process with worker threads, so these cover all its actors and front ends.

function readRss(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

/** Samples VmRSS every 50 ms until stopped; null where there is no /proc. */
function sampleRss(pid: number | undefined): () => RssRun | null {
  const before = pid === undefined ? null : readRss(pid);
  if (pid === undefined || before === null) return () => null;
  let peak = before;
  const timer = setInterval(() => {
    const rss = readRss(pid);
    if (rss !== null && rss > peak) peak = rss;
  }, RSS_SAMPLE_MS);
  return () => {
    clearInterval(timer);
    const last = readRss(pid);
    if (last !== null && last > peak) peak = last;
    return { before, peak };
  };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime of a process in seconds, or null. */
function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Single-client runs: `count` sequential requests of one size

function keyOf(size: number, i: number): string {
  return `bench-${size / MB}m-${i}`;
}

async function timedRun(server: Server, op: Op, size: number, plan: Plan, seedBase: number): Promise<RunStat> {
  const stopRss = server.kind === 'brisedb' ? sampleRss(server.child.pid) : () => null;
  const t0 = process.hrtime.bigint();
  try {
    for (let i = 0; i < plan.count; i++) {
      if (op === 'PUT') await put(server, keyOf(size, i), size, seedBase + i);
      else await get(server, keyOf(size, i), size, null);
    }
  } catch (err) {
    stopRss(); // no sampler outlives its run
    throw err;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, requests: plan.count, bytes: plan.count * size, rss: stopRss() };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function cellOf(runs: RunStat[]): Cell {
  return { mbps: median(runs.map((r) => r.bytes / MB / r.seconds)), rps: median(runs.map((r) => r.requests / r.seconds)), runs };
}

/** Bytes a size group may put on disk: each master keeps every version it was sent (append-only volumes), nginx one file plus its body temp file. */
function diskNeeded(size: number, plan: Plan): number {
  return (2 * plan.repeat * plan.count + plan.count + 1) * size + 2 * (size + 64 * MB);
}

async function runSize(size: number, opts: Options): Promise<SizeResult | null> {
  const plan = planFor(size, opts);
  const free = freeBytes(tmpdir());
  const need = Math.max(size >= GB ? MIN_FREE_FOR_1GB : 0, diskNeeded(size, plan));
  if (free < need) {
    log(`${fmtSize(size)}: skipped, ${fmtBytes(free)} free in ${tmpdir()} and this size needs ${fmtBytes(need)}`);
    return null;
  }
  log(`${fmtSize(size)}: ${plan.count} request(s) per run, ${plan.repeat} run(s) per server; starting servers`);
  const servers: Record<Side, Server | null> = { always: null, none: null, nginx: null };
  try {
    servers.always = await startBriseDB({ label: 'brisedb --sync always', sync: 'always', httpThreads: null });
    servers.none = await startBriseDB({ label: 'brisedb --sync none', sync: 'none', httpThreads: null });
    servers.nginx = await startNginx();
    const all = SIDES.map((side) => [side, servers[side] as Server] as const);
    await warmUp(all.map(([, s]) => s));
    const runs = { PUT: emptyRuns(), GET: emptyRuns() };
    for (const op of ['PUT', 'GET'] as const) {
      for (let rep = 0; rep < plan.repeat; rep++) {
        // The order rotates each run, so that no side always follows the same writer (dirty pages, fsyncs).
        for (const [side, server] of rotate(all, rep)) {
          const r = await timedRun(server, op, size, plan, rep * plan.count);
          runs[op][side].push(r);
          log(`    ${op} ${fmtSize(size)} ${server.label}: ${fmtMbps(r.bytes / MB / r.seconds)}, ${fmtRps(r.requests / r.seconds)}${r.rss === null ? '' : `, RSS ${fmtBytes(r.rss.before)} → peak ${fmtBytes(r.rss.peak)}`}`);
        }
      }
      if (op === 'PUT') await verify(all.map(([, s]) => s), size, (plan.repeat - 1) * plan.count);
    }
    const cells = { PUT: cellsOf(runs.PUT), GET: cellsOf(runs.GET) };
    return { size, plan, cells, rss: { always: rssOf(runs, 'always'), none: rssOf(runs, 'none') } };
  } finally {
    for (const side of SIDES) {
      const server = servers[side];
      if (server !== null) await stopServer(server);
    }
  }
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function emptyRuns(): Record<Side, RunStat[]> {
  return { always: [], none: [], nginx: [] };
}

function cellsOf(runs: Record<Side, RunStat[]>): Record<Side, Cell> {
  return { always: cellOf(runs.always), none: cellOf(runs.none), nginx: cellOf(runs.nginx) };
}

function rssOf(runs: Record<Op, Record<Side, RunStat[]>>, side: 'always' | 'none'): RssSummary | null {
  // In run order: every PUT run of this master came before its GET runs.
  const rs = [...runs.PUT[side], ...runs.GET[side]].map((r) => r.rss).filter((r) => r !== null);
  const [head, ...rest] = rs;
  if (head === undefined) return null;
  const growth = (r: RssRun): number => r.peak - r.before;
  return {
    peak: Math.max(...rs.map((r) => r.peak)),
    growth: Math.max(...rs.map(growth)),
    first: growth(head),
    later: rest.length === 0 ? null : Math.max(...rest.map(growth)),
  };
}

/** A few untimed 1 MB PUTs and GETs per server: connections open, JIT warm, files created. */
async function warmUp(servers: Server[]): Promise<void> {
  for (const server of servers) {
    for (let i = 0; i < 4; i++) {
      await put(server, `warm-${i}`, MB, 1000 + i);
      await get(server, `warm-${i}`, MB, null);
    }
  }
}

/** Key 0 as last written (seed), read back once per server and compared by SHA-256. */
async function verify(servers: Server[], size: number, seed: number): Promise<void> {
  const expected = expectedHash(size, seed);
  for (const server of servers) {
    const h = createHash('sha256');
    await get(server, keyOf(size, 0), size, h);
    const got = h.digest('hex');
    if (got !== expected) throw new Error(`GET ${keyOf(size, 0)} from ${server.label}: SHA-256 ${got}, expected ${expected} (the body is not what was PUT)`);
  }
  log(`    ${fmtSize(size)}: SHA-256 of the body read back equal on all servers (${expected.slice(0, 16)}…)`);
}

// ---------------------------------------------------------------------------------------
// GET 1 MB under many concurrent connections: wrk against --http-threads 1, N and nginx

interface WrkResult {
  rps: number;
  cores: number | null;
}

async function wrk(server: Server, key: string, seconds: number): Promise<WrkResult> {
  const url = `http://127.0.0.1:${server.port}${server.path(key)}`;
  const args = ['-c', String(WRK_CONNECTIONS), '-t', String(WRK_THREADS), '-d', `${seconds}s`, '--timeout', '10s', url];
  const cpu0 = server.kind === 'brisedb' ? cpuSeconds(server.child.pid) : null;
  const t0 = Date.now();
  const res = await run('wrk', args, (seconds + 60) * 1000);
  const cpu1 = server.kind === 'brisedb' ? cpuSeconds(server.child.pid) : null;
  const where = `wrk ${args.join(' ')} (${server.label})`;
  if (res.code !== 0) throw new Error(`${where}: exit ${res.code}\n${res.stderr.trim()}\n${res.stdout.trim()}`);
  // Errors answered fast must never count as throughput.
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(res.stdout);
  if (non2xx !== null) throw new Error(`${where}: ${non2xx[1]} error responses\n${res.stdout}`);
  const socketErrors = /Socket errors: (.*)/.exec(res.stdout);
  if (socketErrors !== null) log(`    ${server.label}: wrk socket errors: ${socketErrors[1]}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(res.stdout)?.[1]);
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`${where}: no Requests/sec in\n${res.stdout}`);
  const cores = cpu0 === null || cpu1 === null ? null : (cpu1 - cpu0) / ((Date.now() - t0) / 1000);
  return { rps, cores };
}

/** The master's own last words from a failed start (its last log line, or its `msg`), on one line. */
function startFailure(err: unknown): string {
  const lines = (err instanceof Error ? err.message : String(err)).split('\n').filter((l) => l.trim() !== '');
  const last = lines[lines.length - 1] ?? 'no reason given';
  try {
    const msg = (JSON.parse(last) as { msg?: unknown }).msg;
    if (typeof msg === 'string') return msg;
  } catch {
    // a plain line, as the master prints for bad flags
  }
  return last.trim();
}

async function runWrk(opts: Options): Promise<{ one: WrkCell; many: WrkCell; nginx: WrkCell; threads: number }> {
  const threads = availableParallelism();
  log(`GET 1 MB, wrk -c ${WRK_CONNECTIONS} -t ${WRK_THREADS} -d ${opts.wrkSeconds}s: starting servers`);
  const started: Server[] = [];
  const cells: WrkCell[] = [];
  try {
    const specs = [
      { label: 'brisedb --http-threads 1', httpThreads: 1 },
      { label: `brisedb --http-threads ${threads}`, httpThreads: threads },
    ];
    const servers: Array<Server | null> = [];
    for (const spec of specs) {
      try {
        const s = await startBriseDB({ label: spec.label, sync: 'none', httpThreads: spec.httpThreads });
        started.push(s);
        servers.push(s);
        cells.push({ label: spec.label, rps: 0, mbps: 0, runs: [], cores: null, refused: null });
      } catch (err) {
        // Node 20 without reusePort may refuse N threads: reported in the table, not fatal.
        const line = startFailure(err);
        log(`    ${spec.label}: did not start: ${line}`);
        servers.push(null);
        cells.push({ label: spec.label, rps: 0, mbps: 0, runs: [], cores: null, refused: line.slice(0, 200) });
      }
    }
    const nginx = await startNginx();
    started.push(nginx);
    servers.push(nginx);
    cells.push({ label: 'nginx', rps: 0, mbps: 0, runs: [], cores: null, refused: null });
    const key = 'wrk-1m';
    for (const s of servers) if (s !== null) await put(s, key, MB, 7);
    const repeat = opts.repeat ?? (opts.quick ? 1 : 2);
    const cores: number[][] = servers.map(() => []);
    for (let rep = 0; rep < repeat; rep++) {
      for (const [i, s] of rotate([...servers.entries()], rep)) {
        if (s === null) continue;
        const r = await wrk(s, key, opts.wrkSeconds);
        cells[i]?.runs.push(r.rps);
        if (r.cores !== null) cores[i]?.push(r.cores);
        log(`    GET 1 MB ×${WRK_CONNECTIONS} ${s.label}: ${fmtRps(r.rps)}, ${fmtMbps(r.rps)}${r.cores === null ? '' : `, master used ${r.cores.toFixed(2)} cores`}`);
      }
    }
    for (const [i, c] of cells.entries()) {
      c.rps = median(c.runs);
      c.mbps = c.rps; // 1 MB bodies: MB/s equals requests/s
      const cs = cores[i] ?? [];
      c.cores = cs.length === 0 ? null : median(cs);
    }
    const [one, many, ng] = cells as [WrkCell, WrkCell, WrkCell];
    return { one, many, nginx: ng, threads };
  } finally {
    for (const s of started) await stopServer(s);
  }
}

// ---------------------------------------------------------------------------------------
// Output

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function fmtSize(size: number): string {
  return size >= GB ? `${size / GB} GB` : `${size / MB} MB`;
}

function fmtBytes(n: number): string {
  return n >= 10 * GB ? `${(n / GB).toFixed(1)} GB` : `${(n / MB).toFixed(0)} MB`;
}

function fmtMb(n: number): string {
  return `${(n / MB).toFixed(1)} MB`;
}

function fmtMbps(x: number): string {
  return `${x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)} MB/s`;
}

function fmtRps(x: number): string {
  return `${x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2)} req/s`;
}

function ratioRow(measure: string, b: { mbps: number; rps: number }, r: { mbps: number; rps: number }, refLabel: string, goal: number): Row {
  const ratio = b.mbps / r.mbps;
  return {
    measure,
    brisedb: `${fmtMbps(b.mbps)} · ${fmtRps(b.rps)}`,
    reference: `${refLabel} ${fmtMbps(r.mbps)} · ${fmtRps(r.rps)}`,
    ratio: `${ratio.toFixed(2)}×`,
    goal: `≥ ${goal.toFixed(1)}×`,
    met: ratio >= goal ? 'yes' : 'no',
  };
}

function sizeRows(r: SizeResult): Row[] {
  const rows: Row[] = [];
  for (const op of ['PUT', 'GET'] as const) {
    for (const side of ['always', 'none'] as const) {
      rows.push(ratioRow(`${op} ${fmtSize(r.size)}, --sync ${side}`, r.cells[op][side], r.cells[op].nginx, 'nginx', 1.0));
    }
  }
  for (const side of ['always', 'none'] as const) {
    const rss = r.rss[side];
    const isGoal = r.size >= GB;
    rows.push({
      measure: `master RSS, PUT+GET ${fmtSize(r.size)}, --sync ${side}`,
      brisedb: rss === null ? 'n/a (no /proc)' : `peak ${fmtBytes(rss.peak)}; growth +${fmtMb(rss.first)} in the first run${rss.later === null ? '' : `, +${fmtMb(rss.later)} in later ones`}`,
      reference: '—',
      ratio: '—',
      goal: isGoal ? `growth < ${RSS_GOAL / MB} MB` : '—',
      met: !isGoal || rss === null ? '—' : rss.growth < RSS_GOAL ? 'yes' : 'no',
    });
  }
  return rows;
}

function wrkRows(w: { one: WrkCell; many: WrkCell; nginx: WrkCell; threads: number }): Row[] {
  const cellText = (c: WrkCell): string => (c.refused !== null ? `refused: ${c.refused}` : `${fmtRps(c.rps)}${c.cores === null ? '' : ` (${c.cores.toFixed(1)} cores)`}`);
  const measure = (what: string): string => `GET 1 MB, wrk -c ${WRK_CONNECTIONS}, ${what}`;
  const row = (what: string, b: WrkCell, ref: WrkCell, refLabel: string, goal: number | null): Row => {
    const ok = b.refused === null && ref.refused === null;
    const ratio = ok ? b.rps / ref.rps : NaN;
    return {
      measure: measure(what),
      brisedb: cellText(b),
      reference: `${refLabel} ${cellText(ref)}`,
      ratio: ok ? `${ratio.toFixed(2)}×` : '—',
      goal: goal === null ? '—' : `≥ ${goal.toFixed(1)}×`,
      met: goal === null ? '—' : ok && ratio >= goal ? 'yes' : 'no',
    };
  };
  return [
    row('--http-threads 1 vs nginx', w.one, w.nginx, 'nginx', 1.0),
    row(`--http-threads ${w.threads} vs nginx`, w.many, w.nginx, 'nginx', 1.0),
    row(`--http-threads ${w.threads} vs 1`, w.many, w.one, '1 thread', 1.5),
  ];
}

/** Whether this Node accepted N HTTP threads (uWebSockets.js binds with SO_REUSEPORT itself, so even Node 20 should). */
function threadsNote(w: { one: WrkCell; many: WrkCell; threads: number }): string {
  const head = `--http-threads ${w.threads} on Node ${process.version}`;
  if (w.many.refused !== null) return `${head}: refused (${w.many.refused})`;
  const cores = (c: WrkCell): string => (c.cores === null ? '' : `${c.cores.toFixed(2)} cores`);
  return `${head}: accepted; the master used ${cores(w.many)} under wrk (--http-threads 1: ${cores(w.one) || 'n/a'})`;
}

function table(rows: Row[]): string {
  const head = ['measure', 'BriseDB', 'reference', 'ratio', 'goal', 'met?'];
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map((r) => line([r.measure, r.brisedb, r.reference, r.ratio, r.goal, r.met]))].join('\n');
}

function header(versions: { nginx: string; wrk: string }, opts: Options): string[] {
  const plans = opts.sizes.map((s) => `${fmtSize(s)}: ${planFor(s, opts).count} req × ${planFor(s, opts).repeat} runs`).join(', ');
  return [
    machineLine(versions),
    'fsync: nginx never fsyncs a PUT (the body is in the page cache, renamed into place, when it answers 201/204); ' +
      'BriseDB --sync always fsyncs before its 201; BriseDB --sync none does not (the like-for-like column)',
    `nginx: minikeyvalue's volume config, worker_processes auto (${availableParallelism()}), dav_methods PUT DELETE, create_full_put_path on, ` +
      'client_body_buffer_size 16k (bodies spill to a temp file), sendfile on, tcp_nopush on, access_log off',
    `BriseDB: node cmd/master.js, default --http-threads (cores) for the single-client rows; wrk rows with --sync none`,
    `single client, keep-alive, sequential requests, bodies streamed (MB = 2^20 bytes): ${plans}; median of the runs, alternating BriseDB always, BriseDB none, nginx (the order rotating each run)`,
  ];
}

// ---------------------------------------------------------------------------------------
// Cleanup and main

let cleaning: Promise<void> | null = null;

/** Stops every child by its PID (and nginx's workers) and removes every temp dir; idempotent. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(
      [...children].map((c) => {
        if (c.pid !== undefined) for (const w of childPids(c.pid)) strayPids.add(w);
        return stopChild(c, 'SIGTERM', 5000);
      }),
    );
    await waitGone([...strayPids], 2000);
    killStrays();
    for (const dir of [...tempDirs]) removeTempDir(dir);
  })();
  return cleaning;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const versions = requireTools();
  const head = header(versions, opts);
  for (const line of head) log(line);

  const sizes: SizeResult[] = [];
  const skipped: number[] = [];
  for (const size of opts.sizes) {
    const r = await runSize(size, opts);
    if (r === null) skipped.push(size);
    else sizes.push(r);
  }
  const w = await runWrk(opts);
  await cleanup();

  const rows = [...sizes.flatMap(sizeRows), ...wrkRows(w)];
  process.stdout.write(`\n${head.join('\n')}\n\n${table(rows)}\n`);
  process.stdout.write(`\n${threadsNote(w)}\n`);
  if (skipped.length > 0) process.stdout.write(`\nskipped (not enough free disk): ${skipped.map(fmtSize).join(', ')}\n`);
  const goals = rows.filter((r) => r.met !== '—');
  process.stdout.write(`\ngoals met: ${goals.filter((r) => r.met === 'yes').length} of ${goals.length}\n`);
  if (opts.json !== null) {
    writeFileSync(opts.json, `${JSON.stringify({ header: head, options: opts, sizes, wrk: w, rows }, null, 2)}\n`);
    log(`wrote ${opts.json}`);
  }
}

runBench('bench:blob', DEADLINE_MS, cleanup, main, log);
