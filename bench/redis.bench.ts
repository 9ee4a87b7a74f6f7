// `npm run bench:redis`: BriseDB against redis-server, both driven by redis-benchmark (from
// Debian) in the same run, alternating BriseDB, Redis, BriseDB, Redis... so both see the same
// machine conditions. SET and GET, 50 clients, pipeline 1 and 16, values of 3 B, 1 KB and
// 64 KB, random keys (-r). Prints ops/s, the ratio BriseDB/Redis and the goals of issue 3.
//
// Invariants this script keeps:
// - Same promise on both sides: the SET runs use a redis-server with `appendonly yes,
//   appendfsync always` (durable before the reply) against a master with `--sync always`;
//   the GET runs use a redis-server without persistence.
// - Each (test, size) group gets fresh servers with fresh temp dirs, removed afterwards, so
//   no group sees another's keys and disk and memory stay bounded (a byte budget per run and
//   a smaller keyspace for big values).
// - Everything is bounded: every child process has a timeout, the whole run has a deadline,
//   and every child is stopped by its own PID on success, error, SIGINT and SIGTERM.
//
// Flags: --quick (short runs, smaller keyspace, 1 repeat), --requests N (fixed -n for every
//        measured run instead of sizing it to --seconds), --repeat N (default 2; the median is
//        reported), --seconds S (target length of a measured run, default 3),
//        --json out.json (also write the table as JSON).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, connect } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { children, keepTail, makeTempDir, removeTempDir, runBench, stopChild, tempDirs, track } from './children.js';

type Test = 'SET' | 'GET' | 'INCR' | 'PIPE';
const TESTS: readonly Test[] = ['SET', 'GET', 'INCR', 'PIPE'];
type ServerName = 'brisedb' | 'redis';

interface Options {
  quick: boolean;
  requests: number | null;
  repeat: number;
  seconds: number;
  json: string | null;
  tests: Test[];
}

interface Server {
  name: ServerName;
  port: number;
  child: ChildProcess;
  dir: string;
  /** Last lines of the server's output, for the error message when it dies. */
  tail: string[];
}

interface Measured {
  /** ops/s of each repeat, in run order. */
  runs: number[];
  median: number;
  /** -n of the measured runs. */
  requests: number;
}

interface Row {
  test: Test;
  size: number;
  pipeline: number;
  keyspace: number;
  brisedb: Measured;
  redis: Measured;
  ratio: number;
  goal: number;
  met: boolean;
}

const CLIENTS = 50;
const SIZES = [3, 1024, 65536] as const;
const PIPELINES = [1, 16] as const;
const KEYSPACE = 100_000;
const QUICK_KEYSPACE = 10_000;
/** Values held by one server at once are at most this (keyspace × size): 8192 keys of 64 KB. */
const MEMORY_BUDGET = 512 * 1024 * 1024;
/** Bytes one measured run may write (requests × size): bounds disk (AOF, volumes) per run. */
const RUN_BYTE_BUDGET = 1024 * 1024 * 1024;
const MAX_REQUESTS = 10_000_000;
const MIN_REQUESTS = 1000;
const SERVER_START_TIMEOUT_MS = 30_000;
const SERVER_STOP_TIMEOUT_MS = 30_000;
const RUN_TIMEOUT_MS = 180_000;
const CALIBRATION_TIMEOUT_MS = 60_000;
const DEADLINE_MS = 40 * 60_000;
const INSTALL_HINT = 'install them with: sudo apt-get install redis-server redis-tools (Debian/Ubuntu)';

const REDIS_FLAGS: Record<Test, string[]> = {
  SET: ['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
  GET: ['--appendonly', 'no', '--save', ''],
  INCR: ['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
  PIPE: ['--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
};
/** INCR runs one hot key (-r 1): every client updates the same counter, the worst case of a read-modify-write. */
const INCR_KEYSPACE = 1;
/** PIPE: a bulk load, `redis-cli --pipe` of this many SETs of distinct keys (issue 14: 1,000,000). */
const PIPE_SETS = 1_000_000;
const QUICK_PIPE_SETS = 100_000;
/** PIPE's values: a session token's size. */
const PIPE_VALUE_SIZE = 100;
const PIPE_TIMEOUT_MS = 10 * 60_000;

// Every child and temp dir the script made, so that cleanup can reach them from anywhere.

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
  const quick = argv.includes('--quick');
  const requests = positive('--requests', value('--requests'));
  return {
    quick,
    requests: requests === null ? null : Math.floor(requests),
    repeat: Math.floor(positive('--repeat', value('--repeat')) ?? (quick ? 1 : 2)),
    seconds: positive('--seconds', value('--seconds')) ?? (quick ? 0.5 : 3),
    json: value('--json') ?? null,
    tests: testsOf(value('--tests')),
  };
}

function testsOf(raw: string | undefined): Test[] {
  if (raw === undefined) return [...TESTS];
  const names = raw.split(',').map((t) => t.trim().toUpperCase());
  const bad = names.filter((t) => !(TESTS as readonly string[]).includes(t));
  if (bad.length > 0 || names.length === 0) throw new Error(`--tests: "${raw}" is not a list of ${TESTS.join(', ')}`);
  return names as Test[];
}

// ---------------------------------------------------------------------------------------
// Tools and machine

/** The first line of `cmd --version`, or null when the program is not installed. */
function toolVersion(cmd: string): string | null {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined || r.status !== 0) return null;
  return r.stdout.trim().split('\n')[0] ?? '';
}

function requireTools(): string {
  const missing = ['redis-server', 'redis-benchmark', 'redis-cli'].filter((cmd) => toolVersion(cmd) === null);
  if (missing.length > 0) {
    process.stderr.write(`bench:redis: ${missing.join(' and ')} not found; ${INSTALL_HINT}\n`);
    process.exit(1);
  }
  const version = toolVersion('redis-server') ?? '';
  return /v=(\S+)/.exec(version)?.[1] ?? version;
}

function machineLine(redisVersion: string): string {
  const cpu = cpus();
  const model = cpu[0]?.model.trim() ?? 'unknown cpu';
  const gib = (totalmem() / 2 ** 30).toFixed(1);
  return `machine: ${cpu.length} cores (${model}), ${gib} GiB RAM, node ${process.version}, redis ${redisVersion}, temp dirs in ${tmpdir()}`;
}

// ---------------------------------------------------------------------------------------
// Child processes


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
// One RESP command over a socket (readiness and DBSIZE); replies on one line only.

function command(port: number, args: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => socket.destroy(new Error(`${args[0]}: no reply in ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    socket.on('data', (chunk: string) => {
      data += chunk;
      const end = data.indexOf('\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      socket.destroy();
      const line = data.slice(0, end);
      if (line.startsWith('-')) reject(new Error(`${args[0]}: ${line.slice(1)}`));
      else resolve(line.slice(1));
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function dbsize(port: number): Promise<number> {
  return Number(await command(port, ['DBSIZE']));
}

// ---------------------------------------------------------------------------------------
// Servers

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
function awaitStart<T>(server: Pick<Server, 'child' | 'tail'>, what: string, ready: Promise<T>): Promise<T> {
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

/** The master on a port it picks itself (`--addr 127.0.0.1:0`), read back from its `listening` log line. */
async function startBriseDB(): Promise<Server> {
  const dir = makeTempDir('brisedb-bench-');
  const master = fileURLToPath(new URL('../../cmd/master.js', import.meta.url));
  const args = [master, '--addr', '127.0.0.1:0', '--http', '', '--data', dir, '--sync', 'always', '--log-level', 'info'];
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const tail: string[] = [];
  let onPort: (port: number) => void = () => undefined;
  const portSeen = new Promise<number>((resolve) => (onPort = resolve));
  keepTail(child.stdout, tail);
  keepTail(child.stderr, tail, (line) => {
    if (!line.includes('"listening"')) return;
    try {
      const port = (JSON.parse(line) as { port?: unknown }).port;
      if (typeof port === 'number') onPort(port);
    } catch {
      // not a log line of ours; the timeout reports a master that never listens
    }
  });
  const port = await awaitStart({ child, tail }, 'brisedb master', portSeen);
  await awaitStart({ child, tail }, 'brisedb master', command(port, ['PING']));
  return { name: 'brisedb', port, child, dir, tail };
}

async function startRedis(test: Test): Promise<Server> {
  const dir = makeTempDir('redis-bench-');
  // A free port can be taken between the probe and the bind: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', '--logfile', '', ...REDIS_FLAGS[test]];
    const child = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    const tail: string[] = [];
    keepTail(child.stdout, tail);
    keepTail(child.stderr, tail);
    try {
      await awaitStart({ child, tail }, 'redis-server', waitForPing(port, child));
      return { name: 'redis', port, child, dir, tail };
    } catch (err) {
      await stopChild(child, 'SIGKILL', 1000);
      if (attempt >= 3) throw err;
    }
  }
}

/** PING until it answers (the server may still be binding). */
async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) return new Promise(() => undefined); // awaitStart reports the exit
    try {
      if ((await command(port, ['PING'], 1000)) === 'PONG') return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopServer(server: Server): Promise<void> {
  await stopChild(server.child, 'SIGTERM', SERVER_STOP_TIMEOUT_MS);
  removeTempDir(server.dir);
}

// ---------------------------------------------------------------------------------------
// redis-benchmark

interface BenchRun {
  test: Test;
  size: number;
  pipeline: number;
  keyspace: number;
  requests: number;
}

/** ops/s of one redis-benchmark run, from its --csv output ("test","rps",...). */
async function benchmark(server: Server, r: BenchRun, timeoutMs = RUN_TIMEOUT_MS): Promise<number> {
  const args = ['-h', '127.0.0.1', '-p', String(server.port), '-t', r.test.toLowerCase(), '-c', String(CLIENTS), '-P', String(r.pipeline), '-d', String(r.size), '-r', String(r.keyspace), '-n', String(r.requests), '--csv'];
  const res = await run('redis-benchmark', args, timeoutMs);
  const where = `redis-benchmark ${args.join(' ')} against ${server.name}`;
  // redis-benchmark prints "Error from server: ..." and exits 1 when a reply is an error, so a
  // server answering errors fast is never counted as throughput.
  if (res.code !== 0) throw new Error(`${where}: exit ${res.code}\n${res.stderr.trim()}\n${res.stdout.trim()}`);
  const rps = parseCsv(res.stdout, r.test);
  if (rps === null) throw new Error(`${where}: no "${r.test}" row in\n${res.stdout}`);
  return rps;
}

function parseCsv(text: string, test: string): number | null {
  const rows = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('"'))
    .map((line) => line.split(',').map((cell) => cell.replace(/^"|"$/g, '')));
  const header = rows.find((cells) => cells[0] === 'test');
  const col = header?.indexOf('rps') ?? -1;
  const row = rows.find((cells) => cells[0] === test);
  if (col < 0 || row === undefined) return null;
  const rps = Number(row[col]);
  return Number.isFinite(rps) && rps > 0 ? rps : null;
}

/** The most requests one run may send: the hard cap, and for SET the byte budget (GETs write nothing). */
function requestCap(test: Test, size: number): number {
  if (test === 'GET') return MAX_REQUESTS;
  return Math.max(MIN_REQUESTS, Math.min(MAX_REQUESTS, Math.floor(RUN_BYTE_BUDGET / size)));
}

/**
 * Warm-up and sizing in one: short runs, growing 4× until one lasts `minSeconds`; returns the
 * rate of the last. Warms the master's JIT and both servers' caches before the measured runs.
 */
async function calibrate(server: Server, base: Omit<BenchRun, 'requests'>, minSeconds: number): Promise<number> {
  const cap = requestCap(base.test, base.size);
  let requests = Math.min(cap, base.size >= 65536 ? 200 : base.pipeline > 1 ? 8000 : 2000);
  for (let i = 0; ; i++) {
    const rps = await benchmark(server, { ...base, requests }, CALIBRATION_TIMEOUT_MS);
    if (requests / rps >= minSeconds || i >= 4 || requests >= cap) return rps;
    requests = Math.min(cap, requests * 4);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

// ---------------------------------------------------------------------------------------
// Goals (issue 3): the most specific rule wins: 64 KB SET ≥ 1.5× at any pipeline depth, then
// -P 16 ≥ 0.6×, then SET ≥ 1.0× and GET ≥ 0.8×.

function goalFor(test: Test, size: number, pipeline: number): number {
  if (test === 'PIPE') return 0.5; // issue 14: redis-cli --pipe ≥ 0.5× Redis appendfsync always
  if (test === 'SET' && size >= 65536) return 1.5;
  if (pipeline > 1) return 0.6;
  return test === 'GET' ? 0.8 : 1.0;
}

// ---------------------------------------------------------------------------------------
// Groups: fresh servers per (test, size); each pipeline depth calibrated, then measured
// alternating BriseDB, Redis, BriseDB, Redis...

function keyspaceFor(test: Test, size: number, opts: Options): number {
  if (test === 'INCR') return INCR_KEYSPACE;
  return Math.min(opts.quick ? QUICK_KEYSPACE : KEYSPACE, Math.floor(MEMORY_BUDGET / size));
}

async function populate(servers: Server[], size: number, keyspace: number): Promise<void> {
  // Random keys: 2 × keyspace SETs reach about 86% of them (1 - e^-2), the same share on both
  // servers, so both GET runs see the same hit rate. keyspace × size ≤ MEMORY_BUDGET bounds it.
  for (const server of servers) {
    const requests = 2 * keyspace;
    await benchmark(server, { test: 'SET', size, pipeline: 16, keyspace, requests });
    log(`    populated ${server.name}: ${await dbsize(server.port)} keys`);
  }
}

// ---------------------------------------------------------------------------------------
// PIPE: a bulk load with `redis-cli --pipe` (one client, every SET sent without waiting), on
// fresh servers each run, alternating; every reply is counted (redis-cli prints errors and
// replies) and a run with an error or a missing reply fails.

/** Writes `n` SETs of distinct keys (`key:<i>`, a PIPE_VALUE_SIZE value) as RESP, in chunks. */
function writePipeFile(path: string, n: number): void {
  const value = 'v'.repeat(PIPE_VALUE_SIZE);
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < n; i += 10_000) {
      let chunk = '';
      for (let j = i; j < Math.min(n, i + 10_000); j++) {
        const key = `key:${j}`;
        chunk += `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${PIPE_VALUE_SIZE}\r\n${value}\r\n`;
      }
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
}

/** ops/s of one `redis-cli --pipe < file` of `n` SETs, after checking every reply came and none was an error. */
function pipeLoad(server: Server, file: string, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const input = openSync(file, 'r');
    const started = process.hrtime.bigint();
    const child = track(spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port), '--pipe'], { stdio: [input, 'pipe', 'pipe'] }));
    closeSync(input);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), PIPE_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const counted = /errors: (\d+), replies: (\d+)/.exec(out);
      if (code !== 0 || counted === null || Number(counted[1]) !== 0 || Number(counted[2]) !== n) {
        reject(new Error(`redis-cli --pipe of ${n} SETs against ${server.name}: exit ${code}, wanted errors: 0, replies: ${n}\n${out.trim()}`));
      } else resolve(n / seconds);
    });
  });
}

async function runPipe(opts: Options): Promise<Row> {
  const n = opts.requests ?? (opts.quick ? QUICK_PIPE_SETS : PIPE_SETS);
  const dir = makeTempDir('brise-pipe-');
  try {
    const file = join(dir, 'sets.resp');
    writePipeFile(file, n);
    log(`PIPE: redis-cli --pipe of ${fmtOps(n)} SETs (${PIPE_VALUE_SIZE} B values, distinct keys), fresh servers each run`);
    const runs = new Map<ServerName, number[]>([['brisedb', []], ['redis', []]]);
    for (let rep = 0; rep < opts.repeat; rep++) {
      for (const start of [startBriseDB, () => startRedis('PIPE')]) {
        const server = await start();
        try {
          const rps = await pipeLoad(server, file, n);
          const keys = await dbsize(server.port);
          if (keys !== n) throw new Error(`${server.name} holds ${keys} keys after a bulk load of ${n}`);
          runs.get(server.name)?.push(rps);
          log(`    PIPE ${server.name}: ${fmtOps(rps)} SETs/s (${(n / rps).toFixed(2)} s)`);
        } finally {
          await stopServer(server);
        }
      }
    }
    const measured = (name: ServerName): Measured => ({ runs: runs.get(name) ?? [], median: median(runs.get(name) ?? []), requests: n });
    const brisedb = measured('brisedb');
    const redis = measured('redis');
    const ratio = brisedb.median / redis.median;
    const goal = goalFor('PIPE', PIPE_VALUE_SIZE, 0);
    return { test: 'PIPE', size: PIPE_VALUE_SIZE, pipeline: 0, keyspace: n, brisedb, redis, ratio, goal, met: ratio >= goal };
  } finally {
    removeTempDir(dir);
  }
}

async function runGroup(test: Test, size: number, opts: Options): Promise<Row[]> {
  const keyspace = keyspaceFor(test, size, opts);
  log(`${test} ${fmtSize(size)} (-r ${keyspace}): starting servers`);
  const servers: Server[] = [];
  try {
    servers.push(await startBriseDB());
    servers.push(await startRedis(test));
    if (test === 'GET') await populate(servers, size, keyspace);
    const rows: Row[] = [];
    for (const pipeline of PIPELINES) rows.push(await measurePair(servers, { test, size, pipeline, keyspace }, opts));
    return rows;
  } finally {
    for (const server of servers) await stopServer(server);
  }
}

async function measurePair(servers: Server[], base: Omit<BenchRun, 'requests'>, opts: Options): Promise<Row> {
  const requests = new Map<ServerName, number>();
  for (const server of servers) {
    const rps = await calibrate(server, base, Math.min(0.5, opts.seconds / 2));
    // At least 8 pipelines per client, or a run measures connection set-up more than commands.
    const floor = Math.max(MIN_REQUESTS, CLIENTS * base.pipeline * 8);
    const sized = Math.max(floor, Math.round(rps * opts.seconds));
    requests.set(server.name, Math.min(requestCap(base.test, base.size), opts.requests ?? sized));
  }
  const runs = new Map<ServerName, number[]>(servers.map((s) => [s.name, []]));
  for (let rep = 0; rep < opts.repeat; rep++) {
    for (const server of servers) {
      const rps = await benchmark(server, { ...base, requests: requests.get(server.name) ?? MIN_REQUESTS });
      runs.get(server.name)?.push(rps);
      log(`    ${base.test} ${fmtSize(base.size)} -P ${base.pipeline} ${server.name}: ${fmtOps(rps)} ops/s (-n ${requests.get(server.name)})`);
    }
  }
  const measured = (name: ServerName): Measured => {
    const xs = runs.get(name) ?? [];
    return { runs: xs, median: median(xs), requests: requests.get(name) ?? 0 };
  };
  const brisedb = measured('brisedb');
  const redis = measured('redis');
  const ratio = brisedb.median / redis.median;
  const goal = goalFor(base.test, base.size, base.pipeline);
  return { test: base.test, size: base.size, pipeline: base.pipeline, keyspace: base.keyspace, brisedb, redis, ratio, goal, met: ratio >= goal };
}

// ---------------------------------------------------------------------------------------
// Output

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function fmtSize(size: number): string {
  return size >= 1024 ? `${size / 1024} KB` : `${size} B`;
}

function fmtOps(ops: number): string {
  return Math.round(ops).toLocaleString('en-US');
}

function table(rows: Row[]): string {
  const head = ['test', 'size', 'pipeline', 'BriseDB ops/s', 'Redis ops/s', 'ratio BriseDB/Redis', 'goal', 'met?'];
  const body = rows.map((r) => [r.test, r.test === 'INCR' ? 'hot key' : fmtSize(r.size), r.test === 'PIPE' ? `--pipe, ${fmtOps(r.keyspace)} SETs` : `-P ${r.pipeline}`, fmtOps(r.brisedb.median), fmtOps(r.redis.median), `${r.ratio.toFixed(2)}×`, `≥ ${r.goal.toFixed(1)}×`, r.met ? 'yes' : 'no']);
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

function header(redisVersion: string, opts: Options): string[] {
  const keyspaces = SIZES.map((s) => `${fmtSize(s)}: ${keyspaceFor('SET', s, opts)}`).join(', ');
  return [
    machineLine(redisVersion),
    'fsync: BriseDB --sync always (group commit) for every test; Redis SET and INCR runs appendonly yes + appendfsync always, save ""; Redis GET runs appendonly no, save ""',
    `INCR: one hot key (-r ${INCR_KEYSPACE}) updated by all ${CLIENTS} clients: every INCR reads, adds and commits a guarded record`,
    `PIPE: redis-cli --pipe of ${fmtOps(opts.requests ?? (opts.quick ? QUICK_PIPE_SETS : PIPE_SETS))} SETs of distinct keys, ${PIPE_VALUE_SIZE} B values, Redis appendfsync always; ops/s = SETs / wall time, every reply counted`,
    `redis-benchmark -c ${CLIENTS}, keyspace -r (${keyspaces}), GET keys populated first (2 × keyspace SETs), ` +
      `${opts.requests === null ? `-n sized to ~${opts.seconds} s per run` : `-n ${opts.requests}`} (at most ${RUN_BYTE_BUDGET / 2 ** 20} MiB written per SET run), ` +
      `median of ${opts.repeat} run(s) per server, alternating BriseDB/Redis`,
  ];
}

// ---------------------------------------------------------------------------------------
// Cleanup and main

let cleaning: Promise<void> | null = null;

/** Stops every child by its PID and removes every temp dir; idempotent. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c, 'SIGTERM', 5000)));
    for (const dir of [...tempDirs]) removeTempDir(dir);
  })();
  return cleaning;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const redisVersion = requireTools();
  const head = header(redisVersion, opts);
  for (const line of head) log(line);

  const rows: Row[] = [];
  for (const test of opts.tests) {
    // INCR's value is the counter itself: one row per pipeline depth, no sizes.
    if (test === 'PIPE') rows.push(await runPipe(opts));
    else for (const size of test === 'INCR' ? [3] : SIZES) rows.push(...(await runGroup(test, size, opts)));
  }
  await cleanup();

  process.stdout.write(`\n${head.join('\n')}\n\n${table(rows)}\n`);
  const met = rows.filter((r) => r.met).length;
  process.stdout.write(`\ngoals met: ${met} of ${rows.length}\n`);
  if (opts.json !== null) {
    writeFileSync(opts.json, `${JSON.stringify({ header: head, options: opts, rows }, null, 2)}\n`);
    log(`wrote ${opts.json}`);
  }
}

runBench('bench:redis', DEADLINE_MS, cleanup, main, log);
