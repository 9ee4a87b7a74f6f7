// Test helper: the BriseDB master as a child process (`node cmd/master.js`) on a free port and
// a temp data dir, plus a raw RESP socket for byte-level tests.
// Owns: the children it started (by PID) and the temp dirs it made.
// Invariants:
// - every wait is bounded (start, stop, kill, reads), and a timeout names what it waited for;
// - a child is only ever signalled by its own PID (child.kill), never by name;
// - stopAll() in an `after` stops every child still running (SIGTERM, then SIGKILL past the
//   bound) and removes the temp dirs, so a failing test leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MASTER_JS = fileURLToPath(new URL('../../../cmd/master.js', import.meta.url));
const START_MS = 15_000;
const STOP_MS = 15_000;
/** A free port may be taken between probing and binding; retry that many times. */
const PORT_ATTEMPTS = 5;

export interface StartOptions {
  /** Reuse a data dir (restart after a kill); default: a fresh one under a temp dir. */
  dataDir?: string;
  /** Extra flags, e.g. ['--requirepass', 'pw']. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  startMs?: number;
}

export interface MasterProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly dataDir: string;
  stderr(): string;
  /** SIGTERM, wait for exit; SIGKILL if it takes longer than ms. Answers the exit code or signal. */
  stop(ms?: number): Promise<number | string>;
  /** SIGKILL now, wait for the exit. */
  kill(ms?: number): Promise<number | string>;
  exited(): boolean;
}

const running = new Set<MasterProcess>();
const tempDirs: string[] = [];

/** A fresh temp dir, removed by stopAll(). */
export function tempDir(prefix = 'brisedb-tcp-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts a master and waits for its `listening` log line. */
export async function startMaster(opts: StartOptions = {}): Promise<MasterProcess> {
  const dataDir = opts.dataDir ?? path.join(tempDir(), 'data');
  let last: Error | undefined;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freePort();
    try {
      return await launch(port, dataDir, opts);
    } catch (e) {
      last = e as Error;
      if (!/address already in use|EADDRINUSE/i.test(last.message)) throw last;
    }
  }
  throw last ?? new Error('could not start a master');
}

async function launch(port: number, dataDir: string, opts: StartOptions): Promise<MasterProcess> {
  const child = spawn(
    process.execPath,
    [MASTER_JS, '--addr', `127.0.0.1:${port}`, '--http', '', '--data', dataDir, ...(opts.args ?? [])],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, BRISEDB_LOG_LEVEL: 'info', BRISEDB_REQUIREPASS: undefined, ...opts.env },
    },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    // Keep the start of the log and a bounded tail: a long run must not grow it forever.
    err += d.toString('utf8');
    if (err.length > 256 * 1024) err = err.slice(0, 64 * 1024) + '\n...\n' + err.slice(-128 * 1024);
  });
  const exit = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const m: MasterProcess = {
    child,
    pid: child.pid ?? -1,
    port,
    dataDir,
    stderr: () => err,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    async stop(ms = STOP_MS) {
      if (!m.exited()) child.kill('SIGTERM');
      try {
        return await within(exit, ms, `master pid ${m.pid} to exit after SIGTERM`);
      } catch (e) {
        if (!m.exited()) child.kill('SIGKILL');
        await within(exit, STOP_MS, `master pid ${m.pid} to exit after SIGKILL`);
        throw e;
      } finally {
        running.delete(m);
      }
    },
    async kill(ms = STOP_MS) {
      if (!m.exited()) child.kill('SIGKILL');
      try {
        return await within(exit, ms, `master pid ${m.pid} to exit after SIGKILL`);
      } finally {
        running.delete(m);
      }
    },
  };
  running.add(m);
  try {
    await waitForListening(m, opts.startMs ?? START_MS);
  } catch (e) {
    await m.kill().catch(() => undefined);
    throw e;
  }
  return m;
}

async function waitForListening(m: MasterProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    for (const line of m.stderr().split('\n')) {
      if (!line.includes('"listening"')) continue;
      const parsed = JSON.parse(line) as { msg?: string; port?: number };
      if (parsed.msg === 'listening' && parsed.port === m.port) return;
    }
    if (m.exited()) throw new Error(`master exited before "listening": ${m.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no "listening" within ${ms} ms: ${m.stderr()}`);
    await sleep(20);
  }
}

/** For `after`: stops every master still running (by its PID) and removes the temp dirs. */
export async function stopAll(): Promise<void> {
  for (const m of [...running]) await m.stop().catch(() => undefined);
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** A raw TCP connection for byte-level checks: everything received, and the close. */
export interface RawConnection {
  readonly socket: net.Socket;
  send(data: string | Buffer): void;
  received(): Buffer;
  /** Waits until the bytes received satisfy `done` (bounded); answers them as latin1 text. */
  until(done: (text: string) => boolean, ms?: number, what?: string): Promise<string>;
  /** Waits until the server closes the connection (bounded). */
  closed(ms?: number): Promise<void>;
  isClosed(): boolean;
  destroy(): void;
}

export async function rawConnect(port: number, ms = 5000): Promise<RawConnection> {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let size = 0;
  let closed = false;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    size += d.length;
    wake();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    wake();
  });
  await within(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }),
    ms,
    `a connection to port ${port}`,
  );
  const received = (): Buffer => {
    // Concatenate once and keep the result, so polling a long stream stays linear.
    if (chunks.length !== 1) chunks.splice(0, chunks.length, Buffer.concat(chunks, size));
    return chunks[0]!;
  };
  const waitFor = (ready: () => boolean, limit: number, what: string): Promise<void> =>
    within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (!ready()) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
      limit,
      what,
    );
  return {
    socket,
    send: (data) => void socket.write(data),
    received,
    async until(done, limit = 5000, what = 'a reply') {
      try {
        await waitFor(() => done(received().toString('latin1')) || closed, limit, what);
      } catch (e) {
        throw new Error(`${(e as Error).message}; got ${JSON.stringify(received().toString('latin1').slice(0, 500))}`);
      }
      const text = received().toString('latin1');
      if (!done(text)) throw new Error(`connection closed before ${what}; got ${JSON.stringify(text.slice(0, 500))}`);
      return text;
    },
    closed: (limit = 5000) => waitFor(() => closed, limit, 'the server to close the connection'),
    isClosed: () => closed,
    destroy: () => socket.destroy(),
  };
}

/** Encodes a command as a RESP multibulk. */
export function resp(...args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Whether `path` is an executable on PATH (redis-cli, redis-benchmark...). */
export function hasProgram(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}
