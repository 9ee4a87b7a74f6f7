// Test helper: a volume server as a child process (`node cmd/volume-server.js`) on a port the OS
// picks (`--addr 127.0.0.1:0`, read back from its `listening` line), a temp data dir, and the
// bytes a master would send it (needles, regions, X-Brise-Auth).
// Owns: the children it started (by PID) and the temp dirs it made.
// Invariants: every wait is bounded and names what it waited for; a child is only ever
// signalled by its own PID; stopAllVolumeServers() in an `after` stops every child still
// running and removes the temp dirs.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from '../../src/storage/checksum.js';
import { alignUp, encodeNeedleHeader, encodeTrailer, volumeFileName } from '../../src/storage/volume_format.js';
import { AUTH_HEADER, signVolumeRequest } from '../../src/protocol/volume_auth.js';
import { sleep, within } from './master_process.js';

export const VOLUME_SERVER_JS = fileURLToPath(new URL('../../../cmd/volume-server.js', import.meta.url));
const START_MS = 15_000;
const STOP_MS = 15_000;

export interface VolumeServerOptions {
  /** Reuse a data dir (a restart); default: a fresh temp dir. */
  dataDir?: string;
  /** --secret; default none (loopback). */
  secret?: string;
  /** Extra flags, e.g. ['--drives', 'a,b']. */
  args?: string[];
  /** --http-threads (default 1: keeps a test machine calm). */
  httpThreads?: number;
}

export interface VolumeServer {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** http://127.0.0.1:port */
  readonly base: string;
  readonly dataDir: string;
  stderr(): string;
  /** SIGTERM, wait; SIGKILL past the bound. Answers the exit code or signal. */
  stop(ms?: number): Promise<number | string>;
  /** SIGKILL now, wait for the exit. */
  kill(ms?: number): Promise<number | string>;
  exited(): boolean;
  /** The file of volume `id` on the first drive. */
  volumePath(id: number): string;
}

const running = new Set<VolumeServer>();
const tempDirs: string[] = [];

export function volumeTempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brise-vs-'));
  tempDirs.push(dir);
  return dir;
}

/** Starts a volume server and waits for its `listening` line. */
export async function startVolumeServer(opts: VolumeServerOptions = {}): Promise<VolumeServer> {
  const dataDir = opts.dataDir ?? path.join(volumeTempDir(), 'data');
  const args = [VOLUME_SERVER_JS, '--addr', '127.0.0.1:0', '--data', dataDir, '--http-threads', String(opts.httpThreads ?? 1), ...(opts.secret === undefined ? [] : ['--secret', opts.secret]), ...(opts.args ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BRISEDB_LOG_LEVEL: 'info', BRISEDB_VOLUME_SECRET: undefined } });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString('utf8');
    if (err.length > 256 * 1024) err = err.slice(0, 64 * 1024) + '\n...\n' + err.slice(-128 * 1024);
  });
  const exit = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const finish = async (signal: NodeJS.Signals, ms: number): Promise<number | string> => {
    if (!exited()) child.kill(signal);
    try {
      return await within(exit, ms, `volume server pid ${child.pid} to exit after ${signal}`);
    } catch (e) {
      if (!exited()) child.kill('SIGKILL');
      await within(exit, STOP_MS, `volume server pid ${child.pid} to exit after SIGKILL`);
      throw e;
    } finally {
      running.delete(server);
    }
  };
  let port = 0;
  const server: VolumeServer = {
    child,
    pid: child.pid ?? -1,
    get port() {
      return port;
    },
    get base() {
      return `http://127.0.0.1:${port}`;
    },
    dataDir,
    stderr: () => err,
    exited,
    stop: (ms = STOP_MS) => finish('SIGTERM', ms),
    kill: (ms = STOP_MS) => finish('SIGKILL', ms),
    volumePath: (id) => path.join(dataDir, 'volumes', volumeFileName(id)),
  };
  running.add(server);
  try {
    port = await waitForListening(server, START_MS);
  } catch (e) {
    await server.kill().catch(() => undefined);
    throw e;
  }
  return server;
}

async function waitForListening(s: VolumeServer, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    for (const line of s.stderr().split('\n')) {
      if (!line.includes('"listening"')) continue;
      const parsed = JSON.parse(line) as { msg?: string; port?: number };
      if (parsed.msg === 'listening' && typeof parsed.port === 'number' && parsed.port > 0) return parsed.port;
    }
    if (s.exited()) throw new Error(`volume server exited before "listening": ${s.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no "listening" within ${ms} ms: ${s.stderr()}`);
    await sleep(20);
  }
}

/** For `after`: stops every volume server still running (by PID) and removes the temp dirs. */
export async function stopAllVolumeServers(): Promise<void> {
  for (const s of [...running]) await s.stop().catch(() => undefined);
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** The X-Brise-Auth header of a request (target: path and query exactly as sent). */
export function authHeaders(secret: string, method: string, target: string, nowMs = Date.now()): Record<string, string> {
  return { [AUTH_HEADER]: signVolumeRequest(secret, method, target, nowMs) };
}

/** A whole version-1 needle's bytes (header, key, value, trailer), as a master writes it. */
export function needleBytes(key: string, value: Uint8Array): Buffer {
  const header = encodeNeedleHeader(Buffer.from(key), value.length, 0, 0);
  const trailer = encodeTrailer(crc32(value, crc32(header)));
  return Buffer.concat([header, value, trailer]);
}

/** Needles each followed by its zero padding: the bytes of a volume region. */
export function regionOf(needles: Buffer[]): Buffer {
  return Buffer.concat(needles.flatMap((n) => [n, Buffer.alloc(alignUp(n.length) - n.length)]));
}

/** A volume server's answer: its status and JSON body (`{}` when empty). */
export interface VolumeAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** One request to a volume server (bounded), its JSON answer parsed. */
export async function callVolumeServer(base: string, method: string, target: string, body?: Buffer, headers: Record<string, string> = {}): Promise<VolumeAnswer> {
  const res = await fetch(base + target, { method, headers, ...(body === undefined ? {} : { body }), signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** The length of volume `id` on the server (its stat must answer 200). */
export async function volumeLength(base: string, id: number): Promise<number> {
  const r = await callVolumeServer(base, 'GET', `/v1/volumes/${id}`);
  if (r.status !== 200) throw new Error(`stat of volume ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body['length'] as number;
}
