// Test helper: a BriseDB read-only replica as a child process (`node cmd/replica.js`) on free
// loopback ports, following a master given as "host:port"; also the promoted program
// (`--promote`), and a master restarted on the port and data dir it had (startMasterAt). Like master_process.ts: started, stopped (SIGTERM) and killed (-9) by its own
// PID, its stderr (pino JSON lines) kept for the test to read.
// Owns: the children it started; the data dirs are the caller's (tempDir of master_process.ts).
// Invariants: every wait is bounded and a timeout names what it waited for; stopAllReplicas()
// in an `after` ends every child still running, so a failing test leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MASTER_JS, endChild, freePort, sleep, tempDir } from './master_process.js';

export const REPLICA_JS = fileURLToPath(new URL('../../../cmd/replica.js', import.meta.url));
const START_MS = 30_000;
const STOP_MS = 15_000;
const PORT_ATTEMPTS = 5;
const LOG_KEEP = 512 * 1024;

export interface ReplicaOptions {
  /** "host:port" of the master's TCP port (or of a proxy in front of it). */
  master?: string;
  /** Start `--promote` instead (a master on a new history); `master` is then ignored. */
  promote?: boolean;
  dataDir?: string;
  /** Keep this TCP port (a restart); default a free one. */
  port?: number;
  http?: boolean;
  /** Keep this HTTP port (a restart). */
  httpPort?: number;
  args?: string[];
  startMs?: number;
}

export interface ReplicaProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly httpPort: number;
  readonly dataDir: string;
  stderr(): string;
  /** The parsed JSON log lines so far (lines that are not JSON are skipped). */
  logs(): Array<Record<string, unknown>>;
  /** Whether a log line whose msg contains `text` was written. */
  logged(text: string): boolean;
  /** Waits (bounded) until a log line whose msg contains `text` appears past `from` lines. */
  waitLog(text: string, ms?: number, from?: number): Promise<Record<string, unknown>>;
  stop(ms?: number): Promise<number | string>;
  kill(ms?: number): Promise<number | string>;
  exited(): boolean;
  readonly exit: Promise<number | string>;
}

const running = new Set<ReplicaProcess>();
/** Every child spawned and still running, from its spawn on (before its listening line). */
const spawned = new Map<number, string>();

/** PIDs and data dirs of the children still running, including those not listening yet. */
export function startedPids(): Array<{ pid: number; dataDir: string }> {
  return [...spawned].map(([pid, dataDir]) => ({ pid, dataDir }));
}

export async function startReplica(opts: ReplicaOptions): Promise<ReplicaProcess> {
  const dataDir = opts.dataDir ?? path.join(tempDir('brisedb-replica-'), 'data');
  let last: Error | undefined;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = opts.port ?? (await freePort());
    let httpPort = 0;
    if (opts.http === true) {
      httpPort = opts.httpPort ?? (await freePort());
      if (httpPort === port) continue;
    }
    try {
      return await launch(port, httpPort, dataDir, opts);
    } catch (e) {
      last = e as Error;
      if (!/address already in use|EADDRINUSE/i.test(last.message) || opts.port !== undefined) throw last;
    }
  }
  throw last ?? new Error('could not start a replica');
}

/**
 * A master (`node cmd/master.js`) on a port and data dir the test chooses: a master restarted
 * after a kill -9 where its replicas expect it (master_process.ts always takes a new port).
 */
export async function startMasterAt(opts: { port: number; dataDir: string; http?: boolean; httpPort?: number; args?: string[] }): Promise<ReplicaProcess> {
  return launch(opts.port, opts.http === true ? opts.httpPort ?? (await freePort()) : 0, opts.dataDir, { ...opts, program: 'master' });
}

async function launch(port: number, httpPort: number, dataDir: string, opts: ReplicaOptions & { program?: 'master' }): Promise<ReplicaProcess> {
  const isMaster = opts.program === 'master';
  const role = isMaster ? [MASTER_JS] : opts.promote === true ? [REPLICA_JS, '--promote'] : [REPLICA_JS, '--master', opts.master ?? ''];
  const http = opts.http === true ? ['--http', `127.0.0.1:${httpPort}`, '--http-threads', '1'] : ['--http', ''];
  const child = spawn(process.execPath, [...role, '--addr', `127.0.0.1:${port}`, ...http, '--data', dataDir, ...(opts.args ?? [])], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, BRISEDB_LOG_LEVEL: 'info', BRISEDB_REQUIREPASS: undefined, BRISEDB_MASTERAUTH: undefined },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString('utf8');
    // The start and a bounded tail: a long run must not grow it forever.
    if (err.length > LOG_KEEP) err = err.slice(0, 64 * 1024) + '\n...\n' + err.slice(-(LOG_KEEP / 2));
  });
  if (child.pid !== undefined) spawned.set(child.pid, dataDir);
  const exit = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      spawned.delete(child.pid ?? -1);
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const logs = (): Array<Record<string, unknown>> => parseLines(err);
  const r: ReplicaProcess = {
    child,
    pid: child.pid ?? -1,
    port,
    httpPort,
    dataDir,
    exit,
    stderr: () => err,
    logs,
    logged: (text) => logs().some((l) => typeof l['msg'] === 'string' && l['msg'].includes(text)),
    async waitLog(text, ms = 15_000, from = 0) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = logs().slice(from).find((l) => typeof l['msg'] === 'string' && l['msg'].includes(text));
        if (hit !== undefined) return hit;
        if (Date.now() > deadline) throw new Error(`replica pid ${r.pid}: no log "${text}" within ${ms} ms; log tail: ${err.slice(-3000)}`);
        await sleep(50);
      }
    },
    exited,
    stop: (ms = STOP_MS) => endChild(child, exit, `replica pid ${r.pid}`, 'SIGTERM', ms).finally(() => running.delete(r)),
    kill: (ms = STOP_MS) => endChild(child, exit, `replica pid ${r.pid}`, 'SIGKILL', ms).finally(() => running.delete(r)),
  };
  running.add(r);
  try {
    await waitForListening(r, opts.startMs ?? START_MS, isMaster ? 'listening' : opts.promote === true ? 'listening (promoted: a master)' : 'listening (a read-only replica)');
  } catch (e) {
    await r.kill().catch(() => undefined);
    throw e;
  }
  return r;
}

/** The 'listening (a read-only replica)' line (or the promoted or master one) naming this port. */
async function waitForListening(r: ReplicaProcess, ms: number, want: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (r.logs().some((l) => l['msg'] === want && l['port'] === r.port)) return;
    if (r.exited()) throw new Error(`replica exited before "${want}": ${r.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no "${want}" within ${ms} ms: ${r.stderr().slice(-4000)}`);
    await sleep(25);
  }
}

function parseLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by the bounded log, or not ours
    }
  }
  return out;
}

/** For `after`: ends every replica still running (SIGTERM, then SIGKILL past the bound). */
export async function stopAllReplicas(): Promise<void> {
  for (const r of [...running]) await r.stop().catch(() => undefined);
}
