// `npm run bench:cluster`: what replication costs. PUT and GET of 1 MB and 64 MB (MB = 2^20
// bytes) from one client against three servers started by this script, in one run, the order
// rotating each run so that all see the same machine conditions:
//   rf 2:  the master with --replication-factor 2 over two local volume servers (two groups,
//          each the master's drive and one server: every byte written twice, acknowledged when
//          both have it);
//   rf 1:  the same master program alone (no servers), the anchor;
//   nginx: nginx as a WebDAV blob server (PUT, sendfile GET), as minikeyvalue runs its volumes.
// Prints one table: op, size, each side's req/s and MB/s, the rf 2 / rf 1 time ratio, the
// cores each side kept busy (the client, master, servers and nginx share the machine) and the
// goals of issue 11 (rf 2 costs at most 1.3x the time of rf 1 on PUT; a GET is read from the
// master's local member, so it costs nothing extra).
//
// Invariants this script keeps:
// - Like for like: both masters run the same flags (--sync, --http-threads); the volume
//   servers sync as the master asks. nginx never fsyncs, so with the default --sync always it
//   is a ceiling, not a peer (--sync none is the like-for-like run).
// - The replicated writes are real: before the timed runs every member is healthy; after the
//   PUTs every member is healthy again (none fell behind and was written around) and every
//   volume file on each server equals the master's own up to its length (the server's copy
//   may end in at most 7 bytes of zero padding).
// - Constant client memory: bodies stream from 16 pre-made 1 MiB blocks of a seeded pattern;
//   GET bodies go to a byte-counting sink; each (size, side) is read back once by SHA-256.
// - Bounded: every request has a deadline and an idle timeout, waits are bounded, the whole
//   run has a deadline; every child is stopped by its own PID on success, error, SIGINT and
//   SIGTERM (the test helpers own them), and every temp dir is removed.
//
// Flags: --quick (fewer runs), --sync always|none (both masters and the volume servers;
//        default always), --repeat N (runs per side and size; default 5), --json out.json,
//        --server-dir DIR (the volume servers' data under DIR, e.g. /dev/shm: on this one-disk
//        machine, rf 2 otherwise writes and fsyncs every byte twice on the same device, which a
//        cluster of machines does not; this measures what replication itself costs).
import { spawnSync } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, rmSync, openSync, readSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cpuSeconds, runBench } from './children.js';
import { sleep, startMaster, stopAll, tempDir, type MasterProcess } from '../test/helpers/master_process.js';
import { startNginx, stopAllNginx, type NginxProcess } from '../test/helpers/nginx.js';
import { startVolumeServer, stopAllVolumeServers, type VolumeServer } from '../test/helpers/volume_server_process.js';
import { parseVolumeFileName, VOLUME_SEQ_BITS, VOLUME_SUPERBLOCK_SIZE } from '../src/storage/volume_format.js';
import { body, expectedHash } from './pattern_body.js';

const MB = 2 ** 20;
const SIDES = ['rf1', 'rf2', 'nginx'] as const;
const OPS = ['PUT', 'GET'] as const;
type Side = (typeof SIDES)[number];
type Op = (typeof OPS)[number];

interface Options {
  quick: boolean;
  sync: 'always' | 'none';
  repeat: number;
  json: string | null;
  /** Where the volume servers keep their data (null: a temp dir on the same disk). */
  serverDir: string | null;
}

/** A server under test, as the client sees it. */
interface Target {
  side: Side;
  label: string;
  port: number;
  agent: Agent;
  path: (key: string) => string;
  /** The processes that serve this side (rf 2: the master and its volume servers), for their CPU time. */
  pids: number[];
}

interface Run {
  seconds: number;
  requests: number;
  bytes: number;
  /** CPU seconds the side's processes used during the run; null where there is no /proc. */
  cpu: number | null;
}

interface Cell {
  /** Medians over the runs. */
  mbps: number;
  rps: number;
  /** Cores the side's processes kept busy (CPU seconds / wall seconds), or null. */
  cores: number | null;
  runs: Run[];
}

interface SizeResult {
  size: number;
  count: number;
  cells: Record<Op, Record<Side, Cell>>;
}

/** Requests per timed run, by size: enough to last a second or more on a slow disk, few enough for ~3 min in all. */
const COUNTS: Record<number, number> = { [MB]: 64, [64 * MB]: 4 };
const QUICK_COUNTS: Record<number, number> = { [MB]: 8, [64 * MB]: 1 };
const SIZES = [MB, 64 * MB];
/** GETs are several times faster than PUTs: a GET run reads the keys this many times, so it lasts as long. */
const GET_PASSES = 4;
const WARM_UP = 4;
const PUT_GOAL = 1.3;
/** "Reads cost nothing extra", with the run-to-run noise of a shared 2-core machine. */
const GET_GOAL = 1.1;
/** Padding a member's copy may have past the master's file: the last needle's, at most 7 bytes. */
const MAX_PAD = 7;
const HEALTHY_WAIT_MS = 30_000;
const REQUEST_BASE_TIMEOUT_MS = 30_000;
const REQUEST_IDLE_TIMEOUT_MS = 60_000;
const DEADLINE_MS = 10 * 60_000;

// ---------------------------------------------------------------------------------------
// Flags and header

function parseOptions(argv: string[]): Options {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  const sync = value('--sync') ?? 'always';
  if (sync !== 'always' && sync !== 'none') throw new Error(`--sync: "${sync}" is not always or none`);
  const rawRepeat = value('--repeat');
  const repeat = rawRepeat === undefined ? (quick ? 1 : 5) : Number(rawRepeat);
  if (!Number.isInteger(repeat) || repeat <= 0) throw new Error(`--repeat: "${rawRepeat}" is not a positive integer`);
  return { quick, sync, repeat, json: value('--json') ?? null, serverDir: value('--server-dir') ?? null };
}

function countFor(size: number, opts: Options): number {
  return (opts.quick ? QUICK_COUNTS : COUNTS)[size] ?? 1;
}

function nginxVersion(): string {
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error !== undefined) throw new Error('nginx not found; install it with: sudo apt-get install -y nginx (Debian/Ubuntu)');
  return /nginx\/(\S+)/.exec(r.stderr)?.[1] ?? 'unknown';
}

function header(opts: Options, nginx: string): string[] {
  const cpu = cpus();
  const counts = SIZES.map((s) => `${fmtSize(s)}: ${countFor(s, opts)} PUT or ${countFor(s, opts) * GET_PASSES} GET × ${opts.repeat} runs`).join(', ');
  return [
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown cpu'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}, nginx ${nginx}, temp dirs in ${tmpdir()}`,
    `rf 2: node cmd/master.js --replication-factor 2 --volume-servers <2 volume servers on this machine> --sync ${opts.sync}; rf 1: the same master without servers; both --http-threads ${availableParallelism()}`,
    `nginx: one process, WebDAV PUT (body spilled to a temp file, renamed into place, never fsynced), sendfile GET, access_log off`,
    `single client, keep-alive, sequential requests, bodies streamed, a Content-Length on every PUT (MB = 2^20 bytes): ${counts}; ${WARM_UP} warm-up PUT+GET of 1 MB per side; median of the runs, the side order rotating each run; rf 2 / rf 1: the median of the ratios of the same run`,
  ];
}

// ---------------------------------------------------------------------------------------
// Servers: the test helpers start them on free loopback ports and stop them by PID

interface Cluster {
  rf1: MasterProcess;
  rf2: MasterProcess;
  servers: VolumeServer[];
  nginx: NginxProcess;
  targets: Target[];
}

function serverDir(under: string, i: number): string {
  const dir = mkdtempSync(join(under, `brisedb-bench-vs${i}-`));
  serverDirs.push(dir);
  return join(dir, 'data');
}

async function startCluster(opts: Options): Promise<Cluster> {
  const masterArgs = ['--sync', opts.sync];
  const httpThreads = availableParallelism();
  const serverOptions = (i: number): Parameters<typeof startVolumeServer>[0] => ({
    args: ['--sync', opts.sync],
    ...(opts.serverDir === null ? {} : { dataDir: serverDir(opts.serverDir, i) }),
  });
  const servers = [await startVolumeServer(serverOptions(0)), await startVolumeServer(serverOptions(1))];
  const rf2 = await startMaster({
    http: true,
    httpThreads,
    args: [...masterArgs, '--volume-servers', servers.map((s) => s.base).join(','), '--replication-factor', '2'],
  });
  const rf1 = await startMaster({ http: true, httpThreads, args: masterArgs });
  const root = join(tempDir('brisedb-cluster-bench-nginx-'), 'volume');
  mkdirSync(root);
  const nginx = await startNginx([{ name: 'dav', config: (port) => davSite(port, root) }]);
  const blobPath = (key: string): string => `/v1/blobs/${encodeURIComponent(key)}`;
  const targets: Target[] = [
    { side: 'rf1', label: 'rf 1', port: rf1.httpPort, agent: newAgent(), path: blobPath, pids: [rf1.pid] },
    { side: 'rf2', label: 'rf 2', port: rf2.httpPort, agent: newAgent(), path: blobPath, pids: [rf2.pid, ...servers.map((s) => s.pid)] },
    { side: 'nginx', label: 'nginx', port: nginx.ports.dav ?? 0, agent: newAgent(), path: (key) => `/${encodeURIComponent(key)}`, pids: [nginx.pid] },
  ];
  return { rf1, rf2, servers, nginx, targets };
}

/** minikeyvalue's volume server (WebDAV PUT/DELETE, sendfile GET) as a site of the test helper's nginx. */
function davSite(port: number, root: string): string {
  return `server {
    listen 127.0.0.1:${port};
    access_log off;
    sendfile on;
    sendfile_max_chunk 1024k;
    tcp_nopush on;
    tcp_nodelay on;
    location / {
        root ${root};
        client_max_body_size 0;
        client_body_buffer_size 16k;
        dav_methods PUT DELETE;
        dav_access user:rw;
        create_full_put_path on;
    }
}
`;
}

function newAgent(): Agent {
  // One connection per server, kept alive: the runs measure transfer, not set-up.
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

/** nginx first (its root is in a temp dir of the masters' helper), then the masters (they call the servers), then the servers. */
async function cleanup(): Promise<void> {
  await stopAllNginx();
  await stopAll();
  await stopAllVolumeServers();
  for (const dir of serverDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** The servers' data dirs made under --server-dir (the helpers remove only their own). */
const serverDirs: string[] = [];

// ---------------------------------------------------------------------------------------
// The replicas: healthy members, and their bytes equal to the master's

interface Member {
  server: string;
  state: string;
  lag_bytes: number;
}

interface Group {
  id: number;
  members: Member[];
}

async function groupsOf(master: MasterProcess): Promise<Group[]> {
  const res = await fetch(`http://127.0.0.1:${master.httpPort}/v1/status`, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`GET /v1/status: HTTP ${res.status}`);
  const body = (await res.json()) as { groups?: Group[] };
  return body.groups ?? [];
}

/** Waits (bounded) until the rf 2 master has groups and every member is healthy with no lag. */
async function allHealthy(master: MasterProcess, what: string): Promise<Group[]> {
  const until = Date.now() + HEALTHY_WAIT_MS;
  let last = 'no answer';
  for (;;) {
    try {
      const groups = await groupsOf(master);
      const members = groups.flatMap((g) => g.members);
      if (members.length > 0 && members.every((m) => m.state === 'healthy' && m.lag_bytes === 0)) return groups;
      last = JSON.stringify(groups);
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > until) throw new Error(`rf 2 ${what}: members not all healthy after ${HEALTHY_WAIT_MS / 1000} s: ${last}`);
    await sleep(100);
  }
}

/** Every volume file of the master with data, compared with its copy on each member server. */
function checkReplicas(master: MasterProcess, servers: VolumeServer[], groups: Group[]): number {
  const dir = join(master.dataDir, 'volumes');
  let compared = 0;
  for (const name of readdirSync(dir)) {
    const id = parseVolumeFileName(name);
    if (id === null) continue;
    const local = join(dir, name);
    if (statSync(local).size <= VOLUME_SUPERBLOCK_SIZE) continue; // nothing written yet: a member creates it with the first write
    const group = groups.find((g) => g.id === Math.floor(id / 2 ** VOLUME_SEQ_BITS));
    if (group === undefined) throw new Error(`volume ${name}: its group is not in /v1/status`);
    for (const m of group.members) {
      const server = servers.find((s) => s.base === m.server);
      if (server === undefined) throw new Error(`group ${group.id}: member ${m.server} is not a server of this bench`);
      sameBytes(local, server.volumePath(id));
      compared++;
    }
  }
  if (compared === 0) throw new Error('rf 2: no replicated volume file to compare');
  return compared;
}

/** `copy` equals `local` up to local's length, then at most MAX_PAD zero bytes. */
function sameBytes(local: string, copy: string): void {
  const a = openSync(local, 'r');
  const b = openSync(copy, 'r');
  try {
    const n = statSync(local).size;
    const m = statSync(copy).size;
    if (m < n || m > n + MAX_PAD) throw new Error(`${copy}: ${m} bytes, the master's ${local} ${n}`);
    const x = Buffer.allocUnsafe(4 * MB);
    const y = Buffer.allocUnsafe(4 * MB);
    for (let at = 0; at < m; at += x.length) {
      const want = Math.min(x.length, m - at);
      const gotA = readSync(a, x, 0, Math.min(want, Math.max(0, n - at)), at);
      const gotB = readSync(b, y, 0, want, at);
      if (gotB !== want || !x.subarray(0, gotA).equals(y.subarray(0, gotA)) || y.subarray(gotA, gotB).some((byte) => byte !== 0)) {
        throw new Error(`${copy} differs from the master's ${local} in the ${fmtMb(at)} MiB block at ${at}`);
      }
    }
  } finally {
    closeSync(a);
    closeSync(b);
  }
}

// ---------------------------------------------------------------------------------------
// HTTP, streamed both ways, each request with a deadline and an idle timeout

function requestTimeoutMs(size: number): number {
  return REQUEST_BASE_TIMEOUT_MS + Math.ceil(size / (10 * MB)) * 1000;
}

/** Runs `start` with a settle-once resolve/reject and a deadline that destroys the request. */
function bounded(what: string, size: number, start: (ok: () => void, fail: (err: Error) => void, guard: (req: ReturnType<typeof request>) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const ok = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve();
    };
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${what}: ${err.message}`));
    };
    start(ok, fail, (req) => {
      const ms = requestTimeoutMs(size);
      timer = setTimeout(() => req.destroy(new Error(`not done after ${ms / 1000} s`)), ms);
      req.setTimeout(REQUEST_IDLE_TIMEOUT_MS, () => req.destroy(new Error(`idle for ${REQUEST_IDLE_TIMEOUT_MS / 1000} s`)));
      req.once('error', fail);
    });
  });
}

/** The start of an error answer, for the message. */
function readSome(res: IncomingMessage, max = 300): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += text.length < max ? d.slice(0, max - text.length) : ''));
    res.once('end', () => resolve(text));
    res.once('error', () => resolve(text));
  });
}

function put(t: Target, key: string, size: number, seed: number): Promise<void> {
  const path = t.path(key);
  return bounded(`PUT ${path} (${t.label})`, size, (ok, fail, guard) => {
    const headers = { 'content-length': String(size), 'content-type': 'application/octet-stream' };
    const req = request({ host: '127.0.0.1', port: t.port, method: 'PUT', path, agent: t.agent, headers });
    guard(req);
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      // BriseDB answers 201 when every member has the bytes; nginx 201 (new) or 204 (replaced).
      readSome(res).then((text) => (status === 201 || status === 204 ? ok() : fail(new Error(`HTTP ${status} ${text}`))), fail);
    });
    // An early answer (413, 503) can end the upload; the response handler reports that one.
    pipeline(Readable.from(body(size, seed)), req).catch((err: unknown) => req.destroy(err instanceof Error ? err : new Error(String(err))));
  });
}

/** Streams the body to a sink, counting bytes (and hashing them when `hash` is given). */
function get(t: Target, key: string, size: number, hash: Hash | null): Promise<void> {
  const path = t.path(key);
  return bounded(`GET ${path} (${t.label})`, size, (ok, fail, guard) => {
    const req = request({ host: '127.0.0.1', port: t.port, method: 'GET', path, agent: t.agent });
    guard(req);
    req.once('response', (res) => {
      if (res.statusCode !== 200) {
        readSome(res).then((text) => fail(new Error(`HTTP ${res.statusCode} ${text}`)), fail);
        return;
      }
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash?.update(chunk);
      });
      res.once('error', fail);
      res.once('end', () => (bytes === size ? ok() : fail(new Error(`${bytes} bytes, expected ${size}`))));
    });
    req.end();
  });
}

// ---------------------------------------------------------------------------------------
// Runs

function keyOf(size: number, i: number): string {
  return `bench-${size / MB}m-${i}`;
}

/** A PUT run writes keys 0..count-1 once; a GET run reads them GET_PASSES times. */
async function timedRun(t: Target, op: Op, size: number, count: number, seedBase: number): Promise<Run> {
  const requests = op === 'PUT' ? count : count * GET_PASSES;
  const cpu0 = cpuSeconds(t.pids);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) {
    if (op === 'PUT') await put(t, keyOf(size, i), size, seedBase + i);
    else await get(t, keyOf(size, i % count), size, null);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = cpuSeconds(t.pids);
  return { seconds, requests, bytes: requests * size, cpu: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0 };
}


async function warmUp(targets: Target[]): Promise<void> {
  for (const t of targets) {
    for (let i = 0; i < WARM_UP; i++) {
      await put(t, `warm-${i}`, MB, 1000 + i);
      await get(t, `warm-${i}`, MB, null);
    }
  }
}

/** Key 0 as last written, read back from each side and compared by SHA-256. */
async function verify(targets: Target[], size: number, seed: number): Promise<void> {
  const expected = expectedHash(size, seed);
  for (const t of targets) {
    const h = createHash('sha256');
    await get(t, keyOf(size, 0), size, h);
    const got = h.digest('hex');
    if (got !== expected) throw new Error(`GET ${keyOf(size, 0)} from ${t.label}: SHA-256 ${got}, expected ${expected}`);
  }
  log(`    ${fmtSize(size)}: SHA-256 of the body read back equal on every side (${expected.slice(0, 16)}…)`);
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

async function runSize(c: Cluster, size: number, opts: Options): Promise<SizeResult> {
  const count = countFor(size, opts);
  const runs: Record<Op, Record<Side, Run[]>> = { PUT: { rf1: [], rf2: [], nginx: [] }, GET: { rf1: [], rf2: [], nginx: [] } };
  log(`${fmtSize(size)}: ${count} request(s) per run, ${opts.repeat} run(s) per side`);
  for (const op of OPS) {
    for (let rep = 0; rep < opts.repeat; rep++) {
      for (const t of rotate(c.targets, rep)) {
        const r = await timedRun(t, op, size, count, rep * count);
        runs[op][t.side].push(r);
        log(`    ${op} ${fmtSize(size)} ${t.label}: ${fmtMbps(r.bytes / MB / r.seconds)}, ${fmtRps(r.requests / r.seconds)}${r.cpu === null ? '' : `, ${(r.cpu / r.seconds).toFixed(2)} cores`}`);
      }
    }
    if (op === 'PUT') {
      await verify(c.targets, size, (opts.repeat - 1) * count);
      const groups = await allHealthy(c.rf2, `after the ${fmtSize(size)} PUTs`);
      const files = checkReplicas(c.rf2, c.servers, groups);
      log(`    rf 2: every member healthy, no lag; ${files} member volume file(s) equal to the master's`);
    }
  }
  const cellOf = (rs: Run[]): Cell => {
    const cores = rs.flatMap((r) => (r.cpu === null ? [] : [r.cpu / r.seconds]));
    return { mbps: median(rs.map((r) => r.bytes / MB / r.seconds)), rps: median(rs.map((r) => r.requests / r.seconds)), cores: cores.length === 0 ? null : median(cores), runs: rs };
  };
  const cells = (op: Op): Record<Side, Cell> => ({ rf1: cellOf(runs[op].rf1), rf2: cellOf(runs[op].rf2), nginx: cellOf(runs[op].nginx) });
  return { size, count, cells: { PUT: cells('PUT'), GET: cells('GET') } };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

// ---------------------------------------------------------------------------------------
// Output

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function fmtSize(size: number): string {
  return `${size / MB} MB`;
}

function fmtMb(n: number): string {
  return (n / MB).toFixed(0);
}

function fmtMbps(x: number): string {
  return `${x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)} MB/s`;
}

function fmtRps(x: number): string {
  return `${x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2)} req/s`;
}

interface Row {
  op: Op;
  size: string;
  rf1: string;
  rf2: string;
  /** rf 2's time per request over rf 1's. */
  ratio: number;
  nginx: string;
  goal: string;
  met: boolean;
  /** Cores busy during the runs: rf 1's master, rf 2's master and servers, nginx. */
  cores: string;
}

function rowsOf(r: SizeResult): Row[] {
  const cell = (c: Cell): string => `${fmtRps(c.rps)} · ${fmtMbps(c.mbps)}`;
  return OPS.map((op) => {
    const cs = r.cells[op];
    const ratio = pairedRatio(cs.rf2.runs, cs.rf1.runs);
    const goal = op === 'PUT' ? PUT_GOAL : GET_GOAL;
    const cores = SIDES.map((side) => cs[side].cores?.toFixed(2) ?? 'n/a').join(' / ');
    return { op, size: fmtSize(r.size), rf1: cell(cs.rf1), rf2: cell(cs.rf2), ratio, nginx: cell(cs.nginx), goal: `≤ ${goal.toFixed(1)}×`, met: ratio <= goal, cores };
  });
}

/**
 * The median over the runs of rf 2's time over rf 1's in the same run: the two ran next to
 * each other, so a slow spell of the machine (others' tests, the page cache flushing) weighs
 * on both sides of one ratio rather than on one side of the medians.
 */
function pairedRatio(rf2: Run[], rf1: Run[]): number {
  return median(rf2.map((r, i) => r.seconds / r.requests / ((rf1[i]?.seconds ?? NaN) / (rf1[i]?.requests ?? NaN))));
}

function table(rows: Row[]): string {
  const head = ['op', 'size', 'rf 1', 'rf 2', 'rf 2 / rf 1 time', 'nginx', 'goal', 'met?', `cores busy (rf 1 / rf 2 / nginx) of ${cpus().length}`];
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const body = rows.map((r) => line([r.op, r.size, r.rf1, r.rf2, `${r.ratio.toFixed(2)}×`, r.nginx, r.goal, r.met ? 'yes' : 'no', r.cores]));
  return [line(head), line(head.map(() => '---')), ...body].join('\n');
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const head = header(opts, nginxVersion());
  for (const line of head) log(line);
  log('starting two volume servers, the rf 2 and rf 1 masters and nginx');
  const cluster = await startCluster(opts);
  await allHealthy(cluster.rf2, 'at start');
  await warmUp(cluster.targets);
  const sizes: SizeResult[] = [];
  for (const size of SIZES) sizes.push(await runSize(cluster, size, opts));
  await cleanup();
  const rows = sizes.flatMap(rowsOf);
  process.stdout.write(`\n${head.join('\n')}\n\n${table(rows)}\n`);
  process.stdout.write(`\ngoals met: ${rows.filter((r) => r.met).length} of ${rows.length} (PUT: rf 2 at most ${PUT_GOAL}× the time of rf 1; GET: at most ${GET_GOAL}×, reads come from the master's local member)\n`);
  if (opts.json !== null) {
    writeFileSync(opts.json, `${JSON.stringify({ header: head, options: opts, sizes, rows }, null, 2)}\n`);
    log(`wrote ${opts.json}`);
  }
}

runBench('bench:cluster', DEADLINE_MS, cleanup, main, log);
