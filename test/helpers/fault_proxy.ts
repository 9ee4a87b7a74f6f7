// A TCP proxy that tests put between a client and a server (the master and a volume server, in
// the distributed tests of issues 11 and 12) to inject network faults: delay, blackhole, a reset
// or a clean close after N bytes, one flipped byte, an HTTP error status answered by the proxy
// itself, refused connections.
// Owns: its listening socket, every accepted and outgoing socket, every timer it starts; close()
// ends all of them.
// Invariants: bytes are forwarded in order, with back-pressure (a slow reader pauses the other
// side; the delay queue pauses its source past DELAY_QUEUE_MAX bytes), so memory stays bounded;
// a fault changes only what it names; after close() nothing of the proxy keeps the process alive.
//
// Fault changes and live connections (a master keeps pooled keep-alive connections, so a fault
// that touched only new connections would miss them):
// - none / delay / reset / truncate / flip apply to live connections too; their byte offsets
//   count, per connection and direction, from the moment the fault reached that connection;
// - blackhole stops live connections forwarding (what they carried is dropped, so they stay
//   black even when the fault is lifted; new connections pass again);
// - status / refuse destroy live connections, so that from set() on no request reaches the target.
// `set(fault, { live: false })` leaves live connections as they are.
import * as net from 'node:net';

export type Direction = 'toServer' | 'toClient';

/** Where an offset of a positional fault starts: the first byte seen, or the first byte after
 * the first HTTP head ("\r\n\r\n") seen in that direction (so a test can name a body byte
 * without knowing the head's length). */
export type Origin = 'stream' | 'body';

export type Fault =
  | { kind: 'none' }
  | { kind: 'delay'; ms: number }
  | { kind: 'blackhole' }
  | { kind: 'reset'; afterBytes: number; direction: Direction; origin?: Origin }
  | { kind: 'truncate'; afterBytes: number; direction: Direction; origin?: Origin }
  | { kind: 'flip'; atByte: number; direction: Direction; mask?: number; origin?: Origin }
  /** `body` replaces the default JSON body `{"error": ..., "code": ...}`; `errorCode` its code. */
  | { kind: 'status'; code: number; body?: string; errorCode?: string }
  | { kind: 'refuse' };

export interface FaultProxyStats {
  accepted: number;
  active: number;
  /** Bytes written towards the target / the client. */
  bytesToServer: number;
  bytesToClient: number;
  /** Bytes read and dropped (blackhole, after a truncation or reset, a status answer's request). */
  bytesDropped: number;
  /** The most bytes ever held in one connection's delay queue (bounded by DELAY_QUEUE_MAX + a chunk). */
  peakQueuedBytes: number;
  faults: {
    delayedChunks: number;
    blackholed: number;
    resets: number;
    truncations: number;
    flips: number;
    statusAnswers: number;
    refused: number;
  };
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** "host:port", the address to give the client instead of the target's. */
  readonly address: string;
  set(fault: Fault, options?: { live?: boolean }): void;
  current(): Fault;
  /** Changes the fault every `everyMs` to one of `faults`, drawn from a seeded generator, until
   * the returned stop function or close() is called. */
  setRandom(seed: number, faults: readonly Fault[], everyMs: number): () => void;
  stats(): FaultProxyStats;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  target: { host: string; port: number };
  listenHost?: string;
}

/** Past this many bytes in a delay queue, its source is paused (resumed below half). */
const DELAY_QUEUE_MAX = 1024 * 1024;
/** A status answer reads at most this much request head before it answers anyway. */
const STATUS_HEAD_MAX = 64 * 1024;
/** How long a connection may linger after the proxy ended it (truncate, status) before it is destroyed. */
const LINGER_MS = 5_000;
/** Bound of close(): the listening socket's close callback waits no longer than this. */
const CLOSE_BOUND_MS = 2_000;
const HEAD_END = Buffer.from('\r\n\r\n');

type Mode = 'pass' | 'blackhole' | 'status' | 'closing';

interface Lane {
  dir: Direction;
  src: net.Socket;
  dst: net.Socket;
  /** Counted bytes since the current positional fault reached this lane. */
  seen: number;
  bodyStarted: boolean;
  /** The last 3 bytes before the body started, to find a head end split across chunks. */
  tail: Buffer;
  flipped: boolean;
  queue: Array<{ chunk: Buffer; due: number }>;
  queued: number;
  timer: NodeJS.Timeout | null;
  waitingDrain: boolean;
  /** Why the source is paused; it resumes only when no reason is left. */
  pausedBy: Set<'dst' | 'delay'>;
  srcEnded: boolean;
}

interface Conn {
  client: net.Socket;
  server: net.Socket | null;
  mode: Mode;
  fault: Fault;
  lanes: Lane[];
  head: Buffer[];
  headBytes: number;
  linger: NodeJS.Timeout | null;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const proxy = new Proxy(options);
  await proxy.listen(options.listenHost ?? '127.0.0.1');
  return proxy;
}

class Proxy implements FaultProxy {
  host = '';
  port = 0;
  private fault: Fault = { kind: 'none' };
  private readonly conns = new Set<Conn>();
  private readonly server: net.Server;
  private readonly counters: FaultProxyStats = {
    accepted: 0, active: 0, bytesToServer: 0, bytesToClient: 0, bytesDropped: 0, peakQueuedBytes: 0,
    faults: { delayedChunks: 0, blackholed: 0, resets: 0, truncations: 0, flips: 0, statusAnswers: 0, refused: 0 },
  };
  private randomTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: FaultProxyOptions) {
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.onAccept(socket));
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  listen(host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, host, () => {
        this.server.off('error', reject);
        const addr = this.server.address() as net.AddressInfo;
        this.host = host;
        this.port = addr.port;
        resolve();
      });
    });
  }

  set(fault: Fault, options: { live?: boolean } = {}): void {
    checkFault(fault);
    this.fault = fault;
    if (options.live === false) return;
    for (const conn of [...this.conns]) this.applyLive(conn, fault);
  }

  current(): Fault {
    return this.fault;
  }

  setRandom(seed: number, faults: readonly Fault[], everyMs: number): () => void {
    if (faults.length === 0 || !(everyMs > 0)) throw new RangeError('setRandom needs faults and everyMs > 0');
    this.stopRandom();
    const next = seededIndexes(seed, faults.length);
    const step = (): void => {
      this.set(faults[next()]!);
      this.randomTimer = setTimeout(step, everyMs);
      // The chaos schedule alone never keeps a test process alive.
      this.randomTimer.unref();
    };
    step();
    return () => this.stopRandom();
  }

  stats(): FaultProxyStats {
    return { ...this.counters, active: this.conns.size, faults: { ...this.counters.faults } };
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.stopRandom();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of [...this.conns]) this.finish(conn, 'destroy');
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => { bound = setTimeout(resolve, CLOSE_BOUND_MS); })]);
    clearTimeout(bound);
  }

  private stopRandom(): void {
    if (this.randomTimer) clearTimeout(this.randomTimer);
    this.randomTimer = null;
  }

  // --- accepting ---

  private onAccept(client: net.Socket): void {
    this.counters.accepted++;
    client.on('error', () => undefined);
    const fault = this.fault;
    if (fault.kind === 'refuse' || this.closing) {
      this.counters.faults.refused++;
      hardClose(client);
      return;
    }
    const conn: Conn = { client, server: null, mode: 'pass', fault, lanes: [], head: [], headBytes: 0, linger: null };
    this.conns.add(conn);
    client.on('close', (hadError) => this.onSocketClose(conn, client, hadError));
    if (fault.kind === 'blackhole') {
      this.blackhole(conn);
    } else if (fault.kind === 'status') {
      conn.mode = 'status';
      client.on('data', (chunk: Buffer) => this.onStatusData(conn, chunk));
    } else {
      this.connectTarget(conn);
    }
  }

  private connectTarget(conn: Conn): void {
    const { client } = conn;
    client.pause();
    const server = net.connect({ ...this.options.target, allowHalfOpen: true });
    conn.server = server;
    server.on('error', () => undefined);
    server.on('close', (hadError) => this.onSocketClose(conn, server, hadError));
    server.once('connect', () => {
      if (conn.mode !== 'pass') return;
      conn.lanes = [this.lane(conn, 'toServer', client, server), this.lane(conn, 'toClient', server, client)];
      client.resume();
    });
  }

  private lane(conn: Conn, dir: Direction, src: net.Socket, dst: net.Socket): Lane {
    const lane: Lane = {
      dir, src, dst, seen: 0, bodyStarted: false, tail: Buffer.alloc(0), flipped: false,
      queue: [], queued: 0, timer: null, waitingDrain: false, pausedBy: new Set(), srcEnded: false,
    };
    src.on('data', (chunk: Buffer) => this.onLaneData(conn, lane, chunk));
    src.on('end', () => {
      lane.srcEnded = true;
      this.endIfFlushed(conn, lane);
    });
    return lane;
  }

  // --- fault changes on live connections ---

  private applyLive(conn: Conn, fault: Fault): void {
    if (conn.mode === 'closing' || conn.mode === 'status') return;
    if (fault.kind === 'status' || fault.kind === 'refuse') {
      this.finish(conn, 'destroy');
      return;
    }
    if (conn.mode === 'blackhole') return;
    if (fault.kind === 'blackhole') {
      this.blackhole(conn);
      return;
    }
    conn.fault = fault;
    for (const lane of conn.lanes) {
      lane.seen = 0;
      lane.bodyStarted = false;
      lane.tail = Buffer.alloc(0);
      lane.flipped = false;
    }
  }

  private blackhole(conn: Conn): void {
    conn.mode = 'blackhole';
    conn.fault = { kind: 'blackhole' };
    this.counters.faults.blackholed++;
    for (const lane of conn.lanes) this.dropQueue(lane);
    for (const socket of sockets(conn)) {
      // Read and drop everything, so neither peer is held by back-pressure: it just never hears back.
      socket.removeAllListeners('data');
      socket.on('data', (chunk: Buffer) => { this.counters.bytesDropped += chunk.length; });
      socket.resume();
    }
  }

  // --- forwarding ---

  private onLaneData(conn: Conn, lane: Lane, chunk: Buffer): void {
    if (conn.mode !== 'pass') {
      this.counters.bytesDropped += chunk.length;
      return;
    }
    const fault = conn.fault;
    if ((fault.kind === 'reset' || fault.kind === 'truncate' || fault.kind === 'flip') && fault.direction === lane.dir) {
      this.positional(conn, lane, fault, chunk);
      return;
    }
    this.forward(conn, lane, chunk);
  }

  private positional(conn: Conn, lane: Lane, fault: Fault & { kind: 'reset' | 'truncate' | 'flip' }, chunk: Buffer): void {
    const start = countedFrom(lane, fault.origin ?? 'stream', chunk);
    if (start < 0) {
      this.forward(conn, lane, chunk);
      return;
    }
    const counted = chunk.length - start;
    if (fault.kind === 'flip') {
      let out = chunk;
      if (!lane.flipped && fault.atByte >= lane.seen && fault.atByte < lane.seen + counted) {
        out = Buffer.from(chunk);
        const at = start + fault.atByte - lane.seen;
        out[at] = out[at]! ^ (fault.mask ?? 0xff);
        lane.flipped = true;
        this.counters.faults.flips++;
      }
      lane.seen += counted;
      this.forward(conn, lane, out);
      return;
    }
    if (lane.seen + counted < fault.afterBytes) {
      lane.seen += counted;
      this.forward(conn, lane, chunk);
      return;
    }
    const cut = start + fault.afterBytes - lane.seen;
    lane.seen = fault.afterBytes;
    this.counters.bytesDropped += chunk.length - cut;
    this.forward(conn, lane, chunk.subarray(0, cut));
    if (fault.kind === 'reset') this.counters.faults.resets++;
    else this.counters.faults.truncations++;
    this.finishAfterFlush(conn, lane, fault.kind === 'reset' ? 'reset' : 'end');
  }

  private forward(conn: Conn, lane: Lane, chunk: Buffer): void {
    if (chunk.length === 0) return;
    const delay = conn.fault.kind === 'delay' ? conn.fault.ms : 0;
    if (delay > 0 || lane.queue.length > 0 || lane.waitingDrain) {
      // Still behind a queue (a delay just lifted, or the reader is slow): keep the order.
      if (delay > 0) this.counters.faults.delayedChunks++;
      lane.queue.push({ chunk, due: Date.now() + delay });
      lane.queued += chunk.length;
      this.counters.peakQueuedBytes = Math.max(this.counters.peakQueuedBytes, lane.queued);
      if (lane.queued > DELAY_QUEUE_MAX) pauseFor(lane, 'delay');
      this.schedule(conn, lane);
      return;
    }
    this.write(conn, lane, chunk);
  }

  /** Writes towards the lane's destination; false when the destination wants a drain first. */
  private write(conn: Conn, lane: Lane, chunk: Buffer): boolean {
    if (lane.dir === 'toServer') this.counters.bytesToServer += chunk.length;
    else this.counters.bytesToClient += chunk.length;
    if (lane.dst.write(chunk)) return true;
    pauseFor(lane, 'dst');
    lane.waitingDrain = true;
    lane.dst.once('drain', () => {
      lane.waitingDrain = false;
      resumeFor(lane, 'dst');
      this.schedule(conn, lane);
    });
    return false;
  }

  private schedule(conn: Conn, lane: Lane): void {
    if (lane.timer || lane.waitingDrain || conn.mode !== 'pass') return;
    const head = lane.queue[0];
    if (!head) {
      this.endIfFlushed(conn, lane);
      return;
    }
    lane.timer = setTimeout(() => {
      lane.timer = null;
      this.flush(conn, lane);
    }, Math.max(0, head.due - Date.now()));
  }

  private flush(conn: Conn, lane: Lane): void {
    const now = Date.now();
    while (lane.queue.length > 0 && lane.queue[0]!.due <= now && conn.mode === 'pass') {
      const { chunk } = lane.queue.shift()!;
      lane.queued -= chunk.length;
      if (!this.write(conn, lane, chunk)) break;
    }
    if (lane.queued <= DELAY_QUEUE_MAX / 2) resumeFor(lane, 'delay');
    this.schedule(conn, lane);
  }

  /** A half-close is passed on once everything before it was written. */
  private endIfFlushed(conn: Conn, lane: Lane): void {
    if (conn.mode !== 'pass') return;
    if (lane.srcEnded && lane.queue.length === 0 && !lane.waitingDrain && !lane.dst.destroyed) lane.dst.end();
  }

  private dropQueue(lane: Lane): void {
    if (lane.timer) clearTimeout(lane.timer);
    lane.timer = null;
    this.counters.bytesDropped += lane.queued;
    lane.queue = [];
    lane.queued = 0;
  }

  // --- status answers ---

  private onStatusData(conn: Conn, chunk: Buffer): void {
    this.counters.bytesDropped += chunk.length;
    if (conn.mode !== 'status') return;
    conn.head.push(chunk);
    conn.headBytes += chunk.length;
    const head = Buffer.concat(conn.head);
    conn.head = [head];
    if (head.indexOf(HEAD_END) < 0 && conn.headBytes < STATUS_HEAD_MAX) return;
    const fault = conn.fault;
    if (fault.kind !== 'status') return;
    conn.mode = 'closing';
    conn.head = [];
    const method = head.subarray(0, head.indexOf(0x20)).toString('latin1');
    conn.client.end(statusResponse(fault, method === 'HEAD'));
    this.counters.faults.statusAnswers++;
    // The request body (if any) is read and dropped until the client closes, so it is not reset
    // by unread bytes while it reads the answer; the linger bounds a client that never closes.
    this.linger(conn);
  }

  // --- ending connections ---

  private finishAfterFlush(conn: Conn, lane: Lane, how: 'reset' | 'end'): void {
    conn.mode = 'closing';
    for (const other of conn.lanes) if (other !== lane) this.dropQueue(other);
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      this.finish(conn, how);
    };
    const land = (): void => {
      if (how === 'end') return done();
      // A reset discards what the kernel has not sent yet: wait until the prefix is handed over
      // (bounded: a peer that does not read would hold the write callback forever).
      lane.dst.write(Buffer.alloc(0), done);
      setTimeout(done, 1_000).unref();
    };
    if (lane.timer) clearTimeout(lane.timer);
    lane.timer = null;
    if (lane.queue.length === 0) return land();
    // The prefix is still queued (a delay, a slow reader): it keeps its delay, then the fault lands.
    const last = lane.queue[lane.queue.length - 1]!;
    lane.timer = setTimeout(() => {
      lane.timer = null;
      for (const { chunk } of lane.queue) this.write(conn, lane, chunk);
      lane.queue = [];
      lane.queued = 0;
      land();
    }, Math.max(0, last.due - Date.now()));
  }

  private finish(conn: Conn, how: 'reset' | 'end' | 'destroy'): void {
    conn.mode = 'closing';
    for (const lane of conn.lanes) this.dropQueue(lane);
    for (const socket of sockets(conn)) {
      if (how === 'reset') hardClose(socket);
      else if (how === 'destroy') socket.destroy();
      else {
        socket.removeAllListeners('data');
        socket.on('data', (chunk: Buffer) => { this.counters.bytesDropped += chunk.length; });
        socket.resume();
        socket.end();
      }
    }
    if (how === 'end') this.linger(conn);
  }

  private linger(conn: Conn): void {
    if (conn.linger) return;
    conn.linger = setTimeout(() => this.finish(conn, 'destroy'), LINGER_MS);
    conn.linger.unref();
  }

  private onSocketClose(conn: Conn, socket: net.Socket, hadError: boolean): void {
    const other = socket === conn.client ? conn.server : conn.client;
    if (hadError && other && !other.destroyed && conn.mode === 'pass') {
      // An aborted peer is passed on as an abort, not as a clean end the other side could trust.
      hardClose(other);
    }
    if (sockets(conn).every((s) => s.destroyed)) {
      this.conns.delete(conn);
      for (const lane of conn.lanes) this.dropQueue(lane);
      if (conn.linger) clearTimeout(conn.linger);
    } else if (other && !other.destroyed && conn.mode === 'pass' && !hadError) {
      // The peer closed without a half-close we could pass on (e.g. destroyed): close after flushing.
      this.linger(conn);
    }
  }
}

// --- helpers ---

function sockets(conn: Conn): net.Socket[] {
  return conn.server ? [conn.client, conn.server] : [conn.client];
}

/** A TCP reset (RST) where Node has it (>= 16.17 / 18.3), a plain destroy otherwise. */
function hardClose(socket: net.Socket): void {
  if (socket.destroyed) return;
  const withReset = socket as net.Socket & { resetAndDestroy?: () => net.Socket };
  try {
    if (typeof withReset.resetAndDestroy === 'function') withReset.resetAndDestroy();
    else socket.destroy();
  } catch {
    socket.destroy();
  }
}

function pauseFor(lane: Lane, reason: 'dst' | 'delay'): void {
  lane.pausedBy.add(reason);
  lane.src.pause();
}

function resumeFor(lane: Lane, reason: 'dst' | 'delay'): void {
  if (!lane.pausedBy.delete(reason) || lane.pausedBy.size > 0) return;
  if (!lane.src.destroyed) lane.src.resume();
}

/** The index in `chunk` where counted bytes start, or -1 if none of it is counted yet. */
function countedFrom(lane: Lane, origin: Origin, chunk: Buffer): number {
  if (origin === 'stream' || lane.bodyStarted) return 0;
  const joined = Buffer.concat([lane.tail, chunk]);
  const at = joined.indexOf(HEAD_END);
  if (at < 0) {
    lane.tail = joined.subarray(Math.max(0, joined.length - 3));
    return -1;
  }
  lane.bodyStarted = true;
  return at + HEAD_END.length - lane.tail.length;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
  507: 'Insufficient Storage',
};
const ERROR_CODE: Record<number, string> = { 503: 'UNAVAILABLE', 507: 'NO_SPACE' };

function statusResponse(fault: Fault & { kind: 'status' }, isHead: boolean): Buffer {
  const code = fault.errorCode ?? ERROR_CODE[fault.code] ?? 'FAULT_INJECTED';
  const body = Buffer.from(
    fault.body ?? JSON.stringify({ error: `fault proxy: answered ${fault.code} without the server`, code }),
  );
  const head = [
    `HTTP/1.1 ${fault.code} ${STATUS_TEXT[fault.code] ?? 'Fault'}`,
    'Content-Type: application/json',
    `Content-Length: ${body.length}`,
    'Connection: close',
    '', '',
  ].join('\r\n');
  return isHead ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

function checkFault(fault: Fault): void {
  const nonNegative = (n: number, what: string): void => {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`fault proxy: ${what} must be an integer >= 0, got ${n}`);
  };
  switch (fault.kind) {
    case 'none':
    case 'blackhole':
    case 'refuse':
      return;
    case 'delay':
      return nonNegative(fault.ms, 'delay ms');
    case 'reset':
    case 'truncate':
      return nonNegative(fault.afterBytes, 'afterBytes');
    case 'flip':
      nonNegative(fault.atByte, 'atByte');
      if (fault.mask !== undefined && (fault.mask < 1 || fault.mask > 255 || !Number.isInteger(fault.mask))) {
        throw new RangeError(`fault proxy: a flip's mask must be 1..255, got ${fault.mask}`);
      }
      return;
    case 'status':
      if (!Number.isInteger(fault.code) || fault.code < 100 || fault.code > 599) {
        throw new RangeError(`fault proxy: status code must be 100..599, got ${fault.code}`);
      }
      return;
    default:
      return assertNever(fault);
  }
}

function assertNever(x: never): never {
  throw new Error(`fault proxy: unknown fault ${JSON.stringify(x)}`);
}

/** mulberry32: a seeded float in [0, 1), so a chaos run replays from its seed. */
export function seededFloats(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Indexes in [0, n) from a seeded generator (mulberry32), so a chaos run replays from its seed. */
export function seededIndexes(seed: number, n: number): () => number {
  const next = seededFloats(seed);
  return () => Math.floor(next() * n);
}
