// Test helper: the BriseDB master as a child process (`node cmd/master.js`) on a free port and
// a temp data dir, plus a raw RESP socket for byte-level tests. HTTP is off (`--http ''`)
// unless a test asks for it with `http: true` (then on its own free port, `httpPort`).
// Owns: the children it started (by PID) and the temp dirs it made.
// Invariants:
// - every wait is bounded (start, stop, kill, reads), and a timeout names what it waited for;
// - a child is only ever signalled by its own PID (child.kill), never by name;
// - stopAll() in an `after` stops every child still running (SIGTERM, then SIGKILL past the
//   bound) and removes the temp dirs, so a failing test leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
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
  /** Serve HTTP on a free loopback port (default false: `--http ''`). */
  http?: boolean;
  /** `--http-threads` when http is on (default 1: keeps a test machine calm). */
  httpThreads?: number;
}

export interface MasterProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** The HTTP port the master reported in its `listening` line; 0 when HTTP is off. */
  readonly httpPort: number;
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

/**
 * A port free now, picked at random below the kernel's ephemeral range (32768+). Why not
 * listen(0): test files run two at a time, and the kernel hands a port just released by one to
 * the other; uWebSockets.js binds with SO_REUSEPORT, so two servers started from the same port
 * SHARE it and answer each other's requests (a crash test once read another test's status).
 * A random pick among 12,000 ports makes that collision rare; the probe bind is exclusive.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canBind(port)) return port;
  }
  throw new Error('no free port in 20000-31999 after 50 tries');
}

async function canBind(port: number): Promise<boolean> {
  const server = net.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => server.close(() => resolve()));
  return ok;
}

/** Starts a master and waits for its `listening` log line. */
export async function startMaster(opts: StartOptions = {}): Promise<MasterProcess> {
  const dataDir = opts.dataDir ?? path.join(tempDir(), 'data');
  let last: Error | undefined;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freePort();
    const httpPort = opts.http === true ? await freePortOtherThan(port) : 0;
    try {
      return await launch(port, httpPort, dataDir, opts);
    } catch (e) {
      last = e as Error;
      if (!/address already in use|EADDRINUSE/i.test(last.message)) throw last;
    }
  }
  throw last ?? new Error('could not start a master');
}

/** A free port that is not `taken` (two probes in a row may answer the same port). */
async function freePortOtherThan(taken: number): Promise<number> {
  for (let i = 0; i < PORT_ATTEMPTS; i++) {
    const p = await freePort();
    if (p !== taken) return p;
  }
  throw new Error(`no free port other than ${taken}`);
}

function httpArgs(httpPort: number, opts: StartOptions): string[] {
  if (opts.http !== true) return ['--http', ''];
  return ['--http', `127.0.0.1:${httpPort}`, '--http-threads', String(opts.httpThreads ?? 1)];
}

async function launch(port: number, httpPort: number, dataDir: string, opts: StartOptions): Promise<MasterProcess> {
  const child = spawn(
    process.execPath,
    [MASTER_JS, '--addr', `127.0.0.1:${port}`, ...httpArgs(httpPort, opts), '--data', dataDir, ...(opts.args ?? [])],
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
    httpPort,
    dataDir,
    stderr: () => err,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop: (ms = STOP_MS) => endChild(child, exit, `master pid ${m.pid}`, 'SIGTERM', ms).finally(() => running.delete(m)),
    kill: (ms = STOP_MS) => endChild(child, exit, `master pid ${m.pid}`, 'SIGKILL', ms).finally(() => running.delete(m)),
  };
  running.add(m);
  try {
    const reported = await waitForListening(m, opts.startMs ?? START_MS);
    if (opts.http === true && reported !== httpPort) {
      throw new Error(`master reported httpPort ${String(reported)}, asked for ${httpPort}: ${m.stderr()}`);
    }
  } catch (e) {
    await m.kill().catch(() => undefined);
    throw e;
  }
  return m;
}

/** Waits for the `listening` line of this master; answers the httpPort it reports (or null). */
async function waitForListening(m: MasterProcess, ms: number): Promise<number | null> {
  const deadline = Date.now() + ms;
  for (;;) {
    for (const line of m.stderr().split('\n')) {
      if (!line.includes('"listening"')) continue;
      const parsed = JSON.parse(line) as { msg?: string; port?: number; httpPort?: number | null };
      if (parsed.msg === 'listening' && parsed.port === m.port) return parsed.httpPort ?? null;
    }
    if (m.exited()) throw new Error(`master exited before "listening": ${m.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no "listening" within ${ms} ms: ${m.stderr()}`);
    await sleep(20);
  }
}

/**
 * Ends a child by its PID: the signal, then its exit within `ms`; a SIGTERM not obeyed in time
 * is followed by SIGKILL (and the wait still fails: a stop that hangs is a bug to see).
 */
export async function endChild(child: ChildProcess, exit: Promise<number | string>, what: string, signal: 'SIGTERM' | 'SIGKILL', ms: number): Promise<number | string> {
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  if (!exited()) child.kill(signal);
  try {
    return await within(exit, ms, `${what} to exit after ${signal}`);
  } catch (e) {
    if (signal === 'SIGKILL') throw e;
    if (!exited()) child.kill('SIGKILL');
    await within(exit, STOP_MS, `${what} to exit after SIGKILL`);
    throw e;
  }
}

/** A master with HTTP on a free port and its base URL: the `before` of the HTTP test files. */
export async function startHttpMaster(opts: StartOptions = {}): Promise<{ m: MasterProcess; base: string }> {
  const m = await startMaster({ ...opts, http: true });
  return { m, base: `http://127.0.0.1:${m.httpPort}` };
}

/** For `after`: stops every master still running (by its PID) and removes the temp dirs. */
export async function stopAll(): Promise<void> {
  for (const m of [...running]) await m.stop().catch(() => undefined);
  for (const w of [...samplers]) await w.terminate().catch(() => undefined);
  samplers.clear();
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

// ---- HTTP helpers (for the HTTP API tests; everything bounded) ----------------------------

/** The master's resident set in bytes (VmRSS of /proc/<pid>/status); 0 if it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

/**
 * Samples a process's RSS every `everyMs` until stopped; answers the samples (bytes). The
 * sampling runs on a worker thread, so a test busy generating or hashing a body on its main
 * thread does not stretch the interval (and miss a peak).
 */
export function sampleRss(pid: number, everyMs = 50): { stop(): Promise<number[]> } {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const read = () => {
      try { const m = /VmRSS:\\s+(\\d+)\\s+kB/.exec(fs.readFileSync('/proc/' + workerData.pid + '/status', 'utf8'));
        return m === null ? 0 : Number(m[1]) * 1024; } catch { return 0; }
    };
    const samples = [read()];
    const timer = setInterval(() => samples.push(read()), workerData.everyMs);
    parentPort.once('message', () => { clearInterval(timer); samples.push(read()); parentPort.postMessage(samples); });
  `;
  const worker = new Worker(code, { eval: true, workerData: { pid, everyMs } });
  // A sampler whose stop() a failing test never reaches must not keep its file alive: unref'd,
  // and terminated by stopAll() with the masters.
  worker.unref();
  samplers.add(worker);
  return {
    async stop() {
      const answer = once(worker, 'message') as Promise<[number[]]>;
      worker.postMessage('stop');
      try {
        const [samples] = await within(answer, 5000, 'the RSS sampler');
        return samples;
      } finally {
        samplers.delete(worker);
        await worker.terminate();
      }
    },
  };
}

/** RSS samplers not stopped yet (a test failed before it stopped its own). */
const samplers = new Set<Worker>();

/**
 * A deterministic byte source of any length, never held whole: byte i is a function of
 * (seed, i). A 1 MiB base block from a xorshift generator, each block k XORed with a word
 * that depends on k, so no two blocks repeat and any slice can be rebuilt for a Range check.
 */
export const PATTERN_BLOCK = 1024 * 1024;

function patternBase(seed: number): Uint32Array {
  const base = new Uint32Array(PATTERN_BLOCK / 4);
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < base.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    base[i] = x;
  }
  return base;
}

const baseCache = new Map<number, Uint32Array>();

/** Block k of the pattern (PATTERN_BLOCK bytes, a fresh buffer). */
export function patternBlock(seed: number, k: number): Buffer {
  let base = baseCache.get(seed);
  if (base === undefined) {
    base = patternBase(seed);
    baseCache.set(seed, base);
  }
  const out = new Uint32Array(base.length);
  const mask = (Math.imul(k + 1, 0x85ebca6b) ^ (k >>> 7)) >>> 0;
  for (let i = 0; i < base.length; i++) out[i] = base[i]! ^ mask;
  return Buffer.from(out.buffer);
}

/** Bytes [start, start + length) of the pattern. */
export function patternSlice(seed: number, start: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let at = 0;
  while (at < length) {
    const pos = start + at;
    const k = Math.floor(pos / PATTERN_BLOCK);
    const within = pos - k * PATTERN_BLOCK;
    const n = Math.min(PATTERN_BLOCK - within, length - at);
    patternBlock(seed, k).copy(out, at, within, within + n);
    at += n;
  }
  return out;
}

/** The first `size` bytes of the pattern as a stream of blocks (constant memory). */
export async function* patternChunks(seed: number, size: number): AsyncGenerator<Buffer> {
  for (let at = 0, k = 0; at < size; at += PATTERN_BLOCK, k++) {
    const block = patternBlock(seed, k);
    yield size - at >= PATTERN_BLOCK ? block : block.subarray(0, size - at);
  }
}

export interface StreamedReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Bytes of the body received, and their SHA-256 in hex (the body itself is not kept). */
  length: number;
  sha256: string;
  /** The body, when `keep` was asked (small bodies only). */
  body: Buffer;
}

export interface StreamedRequest {
  method: string;
  port: number;
  path: string;
  headers?: http.OutgoingHttpHeaders;
  /** Sent with Content-Length `size` (set it in headers); chunks are written with back-pressure. */
  body?: AsyncIterable<Buffer>;
  /** Keep the response body in memory (small bodies only). */
  keep?: boolean;
  ms?: number;
}

/**
 * One HTTP request over a fresh connection (node:http, no keep-alive), the request body
 * streamed from an async iterable and the response body hashed as it arrives: moves a body of
 * any size in constant memory on the client side.
 */
export function streamRequest(r: StreamedRequest): Promise<StreamedReply> {
  const work = new Promise<StreamedReply>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: r.port, path: r.path, method: r.method, headers: r.headers, agent: false });
    req.once('error', reject);
    req.once('response', (res) => {
      const hash = createHash('sha256');
      const kept: Buffer[] = [];
      let length = 0;
      res.on('data', (d: Buffer) => {
        hash.update(d);
        length += d.length;
        if (r.keep === true) kept.push(d);
      });
      res.once('error', reject);
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, length, sha256: hash.digest('hex'), body: Buffer.concat(kept) }),
      );
    });
    void (async () => {
      try {
        if (r.body !== undefined) {
          for await (const chunk of r.body) {
            if (!req.write(chunk)) await once(req, 'drain');
          }
        }
        req.end();
      } catch (e) {
        req.destroy(e as Error);
      }
    })();
  });
  return within(work, r.ms ?? 60_000, `${r.method} ${r.path}`);
}

/** SHA-256 in hex of everything an async iterable yields. */
export async function sha256Of(chunks: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of chunks) hash.update(c);
  return hash.digest('hex');
}

export interface MultipartPart {
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Splits a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 §5.1.1) into its parts; throws
 * when the framing is wrong (no boundary parameter, a missing close delimiter, a part without
 * the blank line after its headers). Written for the tests, independent of the server's code.
 */
export function parseMultipart(body: Buffer, contentType: string): MultipartPart[] {
  const m = /^multipart\/byteranges;\s*boundary=("?)([^";]+)\1\s*$/i.exec(contentType);
  if (m === null) throw new Error(`not multipart/byteranges with a boundary: ${contentType}`);
  const delimiter = Buffer.from(`\r\n--${m[2]!}`, 'latin1');
  // The first delimiter may open the body without the CRLF before it.
  const text = Buffer.concat([Buffer.from('\r\n'), body]);
  const cuts: number[] = [];
  for (let at = text.indexOf(delimiter); at >= 0; at = text.indexOf(delimiter, at + delimiter.length)) cuts.push(at);
  if (cuts.length < 2) throw new Error('fewer than two delimiters');
  if (cuts[0] !== 0) throw new Error('text before the first delimiter');
  const last = cuts[cuts.length - 1]!;
  const closing = text.subarray(last + delimiter.length).toString('latin1');
  if (!/^--(\r\n)?$/.test(closing)) throw new Error(`bad close delimiter: ${JSON.stringify(closing.slice(0, 40))}`);
  const parts: MultipartPart[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const seg = text.subarray(cuts[i]! + delimiter.length, cuts[i + 1]!);
    if (seg[0] !== 0x0d || seg[1] !== 0x0a) throw new Error('no CRLF after a delimiter');
    const blank = seg.indexOf('\r\n\r\n', 2);
    if (blank < 0) throw new Error('a part without the blank line after its headers');
    const headers: Record<string, string> = {};
    const head = seg.subarray(2, blank).toString('latin1');
    for (const line of head === '' ? [] : head.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon < 0) throw new Error(`bad part header ${JSON.stringify(line)}`);
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    parts.push({ headers, body: Buffer.from(seg.subarray(blank + 4)) });
  }
  return parts;
}
