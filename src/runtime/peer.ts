// One end of a MessageChannel between two actors (or an actor and the main thread).
// Owns: request ids and the promises waiting on them, their timeouts, the outbox of the
// current event-loop turn, and the wire form of envelopes.
//
// Wire form: each postMessage carries one frame `[batch, desc, pack, ...big]`: `batch` is an
// ArrayBuffer of exactly the CBOR bytes of an array of envelopes (codec.ts); blobs are never
// CBOR-encoded (DESIGN §1): those of 64 KiB or more are transferred whole (`big`), smaller
// ones are copied into one packed ArrayBuffer (`pack`), because transferring many small
// buffers costs more than copying them; `desc` locates each blob. Envelopes are positional
// 5-tuples `[kind, id, payload, blobStart, blobCount]` (positional arrays are the cheapest CBOR form,
// DESIGN §6), kinds numbered in EnvelopeKind and never renumbered.
//
// Invariants:
// - Everything queued to one Peer within one turn leaves in ONE postMessage (flush on a
//   microtask): a thread hop costs ~20 µs, batching is how it is paid back (DESIGN §6).
// - Every request settles exactly once: a reply, a fault, its timeout, QUEUE_FULL at the
//   door, or ACTOR_DOWN when the port is null, replaced, closed, or failed. None hangs.
// - Pending requests never exceed maxInFlight.
// - A reply is only sent on the port its request came in on (ports carry a generation);
//   after replacePort, answers for the old incarnation of the other side are dropped.
import type { PortLike } from './port.js';
import type { Scheduler } from './scheduler.js';
import { decodeBatch, encodeBatch } from './codec.js';
import { fromWireError, toWireError, type WireError, StoreError } from './errors.js';

/** Envelope kinds on the wire. Never renumber; a retired number is never reused. */
export const EnvelopeKind = {
  Request: 0,
  Reply: 1,
  Fault: 2,
  Send: 3,
} as const;

type Kind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

/** A request: the other side answers with a Reply or a Fault carrying the same id. */
export type RequestEnvelope = [kind: 0, id: number, body: unknown, blobStart: number, blobCount: number];
export type ReplyEnvelope = [kind: 1, id: number, body: unknown, blobStart: number, blobCount: number];
export type FaultEnvelope = [kind: 2, id: number, error: WireError, blobStart: number, blobCount: number];
/** One-way: no id (0), no answer. */
export type SendEnvelope = [kind: 3, id: 0, body: unknown, blobStart: number, blobCount: number];
export type Envelope = RequestEnvelope | ReplyEnvelope | FaultEnvelope | SendEnvelope;

/** Return one of these from a handler to answer with blobs beside the body. */
export class Reply {
  constructor(
    readonly body: unknown,
    readonly blobs: ArrayBuffer[] = [],
  ) {}
}

export type RequestHandler = (body: unknown, blobs: ArrayBuffer[]) => unknown | Promise<unknown> | Reply;

export interface RequestOptions {
  /** Default 30000. */
  timeoutMs?: number;
  /** Transferred: the caller's ArrayBuffers are detached once sent. */
  blobs?: ArrayBuffer[];
}

export interface PeerOptions {
  /** Requests awaiting an answer; past it, request() rejects with QUEUE_FULL. Default 100_000. */
  maxInFlight?: number;
}

export interface PeerStats {
  /** postMessage calls made: one per flushed batch (plus the rare isolation retries). */
  posts: number;
  /** Envelopes sent (requests, replies, faults, one-way). */
  sent: number;
  /** Envelopes received. */
  received: number;
  inFlight: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
/** Blobs smaller than this travel copied into the frame's one packed buffer. */
export const PACK_BELOW = 64 * 1024;
export const DEFAULT_MAX_IN_FLIGHT = 100_000;
/** Longest timeout accepted: setTimeout overflows at 2^31-1 ms and fires at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;

interface Pending {
  resolve: (value: never) => void;
  reject: (err: StoreError) => void;
  /** Its bucket in `deadlines`. */
  bucket: number;
  timeoutMs: number;
  /** The `t` of the body, for error messages. */
  type: string;
  /** call(): resolve with the body only. */
  bodyOnly: boolean;
}

export class Peer {
  readonly name: string;
  private port: PortLike | null = null;
  /** Bumped on every port change: a reply computed for an older port is dropped. */
  private generation = 0;
  private downMessage: string;
  /** What pending and new requests are told when the port closes under us. */
  private closeMessage: string;
  private closed = false;
  private handler: RequestHandler | null = null;
  private readonly rewireListeners: (() => void)[] = [];
  private readonly maxInFlight: number;
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  /** Called when `pending` empties (whenIdle). */
  private readonly idleWaiters = new Set<() => void>();
  private readonly deadlines = new Deadlines(this.onTimeout.bind(this));
  // The outbox of this turn: envelopes and, beside each, its blobs (null when none).
  private outEnvs: Envelope[] = [];
  private outBlobs: (ArrayBuffer[] | null)[] = [];
  private flushScheduled = false;
  private flushMode: 'microtask' | 'turn' = 'microtask';
  private readonly counters = { posts: 0, sent: 0, received: 0 };

  constructor(name: string, port: PortLike | null, options: PeerOptions = {}) {
    this.name = name;
    this.downMessage = `${name} is down (restarting)`;
    this.closeMessage = this.downMessage;
    const max = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    if (!Number.isInteger(max) || max < 1) {
      throw new StoreError('BAD_ARGUMENT', `peer ${name}: maxInFlight must be a positive integer, got ${max}`);
    }
    this.maxInFlight = max;
    if (port) this.attach(port);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** True when a port is attached (the other side is believed alive). */
  get connected(): boolean {
    return this.port !== null;
  }

  stats(): PeerStats {
    return { ...this.counters, inFlight: this.pending.size };
  }

  // ---- API: senders -------------------------------------------------------------------------

  request<T = unknown>(body: unknown, options?: RequestOptions): Promise<{ body: T; blobs: ArrayBuffer[] }> {
    return this.startRequest(body, options, false);
  }

  /** request() without blobs in the answer: resolves with the body. */
  call<T = unknown>(body: unknown, options?: RequestOptions): Promise<T> {
    return this.startRequest(body, options, true);
  }

  /** One-way: no answer, no id. Dropped (not thrown) when the other side is down. */
  send(body: unknown, blobs?: ArrayBuffer[]): void {
    if (this.port === null) return;
    this.enqueue([EnvelopeKind.Send, 0, body, 0, 0], blobs);
  }

  /** The handler for requests and one-way messages (its return value is ignored for those). */
  onRequest(handler: RequestHandler): void {
    this.handler = handler;
  }

  // ---- API: wiring, used by the supervisor and the actor runtime ----------------------------

  /** Re-wire after the other side restarted: pending requests on the old port fail first. */
  replacePort(port: PortLike): void {
    if (this.closed) {
      port.close();
      return;
    }
    this.detachPort(`${this.name} is down (restarting)`);
    this.closeMessage = `${this.name} is down (restarting)`;
    this.attach(port);
    for (const listener of this.rewireListeners) listener();
  }

  /**
   * Called after every re-wiring: the other side is a fresh incarnation, so state it kept in
   * memory for us (subscriptions, open streams) is gone and must be sent again.
   */
  onRewire(listener: () => void): void {
    this.rewireListeners.push(listener);
  }

  /** Announces why the port will close (the supervisor is stopping the other side). */
  expectDown(message: string): void {
    this.closeMessage = message;
  }

  /**
   * The other side is gone: fail pending requests with ACTOR_DOWN `message`, drop the port and
   * the unsent outbox, and reject new requests at once with the same message until replacePort.
   */
  markDown(message = `${this.name} is down (restarting)`): void {
    this.detachPort(message);
    this.downMessage = message;
  }

  /** Reject every pending request now (the supervisor saw the other side die). */
  fail(code: string, message: string): void {
    if (this.pending.size === 0) return;
    const err = fromWireError({ code, message });
    const all = [...this.pending.values()];
    this.pending.clear();
    this.deadlines.clear();
    for (const p of all) p.reject(err);
    this.noteIdle();
  }

  private noteIdle(): void {
    if (this.pending.size !== 0 || this.idleWaiters.size === 0) return;
    for (const w of [...this.idleWaiters]) w();
  }

  /**
   * Resolves once no request is pending (answered, failed, or the port closed), or after
   * `boundMs`, whichever comes first.
   */
  async whenIdle(scheduler: Scheduler, boundMs: number): Promise<void> {
    if (this.pending.size === 0) return;
    await new Promise<void>((resolve) => {
      const timer = scheduler.after(boundMs, () => done());
      const done = (): void => {
        timer.cancel();
        this.idleWaiters.delete(done);
        resolve();
      };
      this.idleWaiters.add(done);
    });
  }

  /** Send what is queued now instead of at the end of the turn (before a worker exits). */
  flush(): void {
    this.flushScheduled = false;
    if (this.outEnvs.length === 0) return;
    const envs = this.outEnvs;
    const blobLists = this.outBlobs;
    this.outEnvs = [];
    this.outBlobs = [];
    const port = this.port;
    if (port === null) {
      this.failUnsent(envs, `${this.downMessage}`);
      return;
    }
    try {
      this.post(port, envs, blobLists);
    } catch {
      // One bad message (not encodable, a detached or twice-listed blob) must not sink the
      // batch: resend one by one and fail only the culprits.
      this.postOneByOne(port, envs, blobLists);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    this.detachPort(`${this.name}: peer closed`, 'CLOSED');
    this.downMessage = `${this.name}: peer closed`;
  }

  // ---- private: sending ---------------------------------------------------------------------

  private startRequest<R>(body: unknown, options: RequestOptions | undefined, bodyOnly: boolean): Promise<R> {
    if (this.closed) return Promise.reject(new StoreError('CLOSED', this.downMessage));
    if (this.port === null) return Promise.reject(new StoreError('ACTOR_DOWN', this.downMessage));
    if (this.pending.size >= this.maxInFlight) {
      return Promise.reject(
        new StoreError('QUEUE_FULL', `${this.name}: ${this.pending.size} requests in flight (limit ${this.maxInFlight})`),
      );
    }
    const timeoutMs = options?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMEOUT_MS)) {
      return Promise.reject(new StoreError('BAD_ARGUMENT', `${this.name}: timeoutMs must be in (0, 2^31), got ${timeoutMs}`));
    }
    const id = ++this.nextId;
    return new Promise<R>((resolve, reject) => {
      const bucket = this.deadlines.add(id, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject, bucket, timeoutMs, type: typeOf(body), bodyOnly });
      this.enqueue([EnvelopeKind.Request, id, body, 0, 0], options?.blobs);
    });
  }

  private onTimeout(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(new StoreError('TIMEOUT', `${this.name} did not answer '${p.type}' within ${p.timeoutMs} ms`));
    this.noteIdle();
  }

  private enqueue(env: Envelope, blobs: ArrayBuffer[] | undefined): void {
    this.outEnvs.push(env);
    this.outBlobs.push(blobs && blobs.length > 0 ? blobs : null);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (this.flushMode === 'microtask') queueMicrotask(this.scheduledFlush);
      else setImmediate(this.scheduledFlush);
    }
  }

  /**
   * When the outbox leaves: 'microtask' (default) at the end of the current task; 'turn' at the
   * end of the event-loop turn (setImmediate), so that what every socket read of one poll
   * phase asked for goes out in one postMessage. A front end with many connections wants
   * 'turn': each client's request arrives in its own task, and a hop per request is the cost
   * batching is there to pay back (DESIGN §6).
   */
  setFlushMode(mode: 'microtask' | 'turn'): void {
    this.flushMode = mode;
  }

  private readonly scheduledFlush = (): void => {
    if (this.flushScheduled) this.flush();
  };

  /** Encodes and posts one frame; throws (having posted nothing) when it cannot. */
  private post(port: PortLike, envs: Envelope[], blobLists: (ArrayBuffer[] | null)[]): void {
    // Small blobs are copied into one packed buffer: transferring each of many small
    // ArrayBuffers costs ~2 µs apiece, far more than copying them (measured: 50 blobs of 3 B
    // took 116 µs a round trip transferred, 15 µs packed). Large ones are transferred whole.
    let packBytes = 0;
    for (const blobs of blobLists) if (blobs !== null) for (const b of blobs) if (b.byteLength < PACK_BELOW) packBytes += b.byteLength;
    const pack = packBytes > 0 ? new Uint8Array(packBytes) : null;
    const big: ArrayBuffer[] = [];
    const desc: number[] = [];
    let at = 0;
    let logical = 0;
    for (let i = 0; i < envs.length; i++) {
      const env = envs[i]!;
      const blobs = blobLists[i];
      env[3] = logical;
      env[4] = blobs === null ? 0 : blobs.length;
      if (blobs === null) continue;
      for (const b of blobs) {
        if (b.byteLength < PACK_BELOW) {
          // An empty blob (SET k "") takes no room in the pack, and there may be no pack at all.
          if (b.byteLength > 0) pack!.set(new Uint8Array(b), at);
          desc.push(at, b.byteLength);
          at += b.byteLength;
        } else {
          desc.push(-1, big.length);
          big.push(b);
        }
        logical++;
      }
    }
    const bytes = encodeBatch(envs);
    const transfer: ArrayBuffer[] = [bytes.buffer as ArrayBuffer, ...big];
    if (pack !== null) transfer.push(pack.buffer);
    port.postMessage([bytes.buffer, desc, pack?.buffer ?? null, ...big], transfer);
    this.counters.posts++;
    this.counters.sent += envs.length;
  }

  private postOneByOne(port: PortLike, envs: Envelope[], blobLists: (ArrayBuffer[] | null)[]): void {
    for (let i = 0; i < envs.length; i++) {
      try {
        this.post(port, [envs[i]], [blobLists[i]]);
      } catch (err) {
        this.unsendable(port, envs[i], err);
      }
    }
  }

  /** The envelope could not be sent: tell whoever waits on it, so nothing hangs. */
  private unsendable(port: PortLike, env: Envelope, err: unknown): void {
    const why = toWireError(err).message;
    if (env[0] === EnvelopeKind.Request) {
      // A message that cannot be encoded is our bug, never the client's: INTERNAL (logged, not shown).
      this.settleLocal(env[1], new StoreError('INTERNAL', `cannot send '${typeOf(env[2])}' to ${this.name}: ${why}`));
    } else if (env[0] === EnvelopeKind.Reply || env[0] === EnvelopeKind.Fault) {
      const fault: WireError = { code: 'INTERNAL', message: `the answer to request ${env[1]} could not be sent: ${why}` };
      try {
        this.post(port, [[EnvelopeKind.Fault, env[1], fault, 0, 0]], [null]);
      } catch {
        process.emitWarning(`${this.name}: ${fault.message}`);
      }
    } else {
      process.emitWarning(`${this.name}: one-way '${typeOf(env[2])}' dropped: ${why}`);
    }
  }

  private failUnsent(envs: Envelope[], message: string): void {
    for (const env of envs) {
      if (env[0] === EnvelopeKind.Request) this.settleLocal(env[1], new StoreError('ACTOR_DOWN', message));
    }
  }

  private settleLocal(id: number, err: StoreError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.deadlines.remove(id, p.bucket);
    p.reject(err);
    this.noteIdle();
  }

  // ---- private: the port ---------------------------------------------------------------------

  private attach(port: PortLike): void {
    const generation = ++this.generation;
    this.port = port;
    port.on('message', (frame: unknown) => {
      if (this.generation === generation) this.onFrame(frame, generation);
    });
    // The other end closed (its thread died or it closed the port): nothing on this port will
    // ever be answered, so fail now rather than at each timeout.
    port.once('close', () => {
      if (this.generation === generation && !this.closed) this.markDown(this.closeMessage);
    });
  }

  private detachPort(message: string, code: 'ACTOR_DOWN' | 'CLOSED' = 'ACTOR_DOWN'): void {
    this.generation++;
    const port = this.port;
    this.port = null;
    this.outEnvs = [];
    this.outBlobs = [];
    this.flushScheduled = false;
    this.fail(code, message);
    if (port) {
      port.removeAllListeners('message');
      port.close();
    }
  }

  // ---- private: receiving --------------------------------------------------------------------

  private onFrame(frame: unknown, generation: number): void {
    if (!Array.isArray(frame) || frame.length === 0 || !(frame[0] instanceof ArrayBuffer)) {
      process.emitWarning(`${this.name}: dropped a message that is not a batch frame`);
      return;
    }
    let envs: unknown[];
    try {
      envs = decodeBatch(new Uint8Array(frame[0]));
    } catch (err) {
      // Both ends are this build, so this is a bug; the requests in the frame time out.
      process.emitWarning(`${this.name}: dropped an undecodable batch: ${toWireError(err).message}`);
      return;
    }
    this.counters.received += envs.length;
    for (const raw of envs) {
      const env = raw as Envelope;
      const blobs = env[4] === 0 ? [] : blobsOf(frame, env[3], env[4]);
      this.dispatch(env, blobs, generation);
      // A handler may have re-wired or closed this peer; the rest of the frame is stale.
      if (this.generation !== generation) return;
    }
  }

  private dispatch(env: Envelope, blobs: ArrayBuffer[], generation: number): void {
    switch (env[0]) {
      case EnvelopeKind.Request:
        return this.onRequestEnvelope(env[1], env[2], blobs, generation);
      case EnvelopeKind.Reply:
        return this.onReply(env[1], env[2], blobs);
      case EnvelopeKind.Fault:
        return this.onFault(env[1], env[2]);
      case EnvelopeKind.Send:
        return this.onSend(env[2], blobs);
      default:
        return unknownKind(env[0]);
    }
  }

  private onReply(id: number, body: unknown, blobs: ArrayBuffer[]): void {
    const p = this.pending.get(id);
    if (!p) return; // timed out or failed already: the answer is late, not wrong
    this.pending.delete(id);
    this.deadlines.remove(id, p.bucket);
    p.resolve((p.bodyOnly ? body : { body, blobs }) as never);
    this.noteIdle();
  }

  private onFault(id: number, error: WireError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.deadlines.remove(id, p.bucket);
    p.reject(fromWireError(error));
    this.noteIdle();
  }

  private onRequestEnvelope(id: number, body: unknown, blobs: ArrayBuffer[], generation: number): void {
    const handler = this.handler;
    if (handler === null) {
      this.answerFault(id, { code: 'INTERNAL', message: `no handler for requests from ${this.name}` }, generation);
      return;
    }
    let result: unknown;
    try {
      result = handler(body, blobs);
    } catch (err) {
      this.answerFault(id, toWireError(err), generation);
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        (value) => this.answer(id, value, generation),
        (err: unknown) => this.answerFault(id, toWireError(err), generation),
      );
    } else {
      this.answer(id, result, generation);
    }
  }

  private onSend(body: unknown, blobs: ArrayBuffer[]): void {
    const handler = this.handler;
    if (handler === null) return;
    const report = (err: unknown): void => {
      process.emitWarning(`${this.name}: one-way '${typeOf(body)}' failed: ${toWireError(err).message}`);
    };
    try {
      const result = handler(body, blobs);
      if (isPromiseLike(result)) result.then(undefined, report);
    } catch (err) {
      report(err);
    }
  }

  private answer(id: number, value: unknown, generation: number): void {
    if (generation !== this.generation) return;
    if (value instanceof Reply) this.enqueue([EnvelopeKind.Reply, id, value.body, 0, 0], value.blobs);
    else this.enqueue([EnvelopeKind.Reply, id, value, 0, 0], undefined);
  }

  private answerFault(id: number, error: WireError, generation: number): void {
    if (generation !== this.generation) return;
    this.enqueue([EnvelopeKind.Fault, id, error, 0, 0], undefined);
  }
}

/** The message type for errors: bodies are objects with a `t` field by convention. */
export function typeOf(body: unknown): string {
  if (typeof body === 'object' && body !== null) {
    const t = (body as { t?: unknown }).t;
    if (typeof t === 'string' || typeof t === 'number') return String(t);
  }
  return typeof body;
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** Exhaustiveness check at compile time; at run time a bad kind is dropped with a warning. */
function unknownKind(kind: never): void {
  process.emitWarning(`dropped an envelope of unknown kind ${String(kind as Kind)}`);
}

// ---- timeouts ---------------------------------------------------------------------------------

/** Timeouts fire up to this much late: the price of one timer per Peer instead of per request. */
export const TIMEOUT_GRAIN_MS = 10;

/**
 * Request deadlines grouped in buckets of TIMEOUT_GRAIN_MS, with one timer per Peer armed
 * for the earliest bucket. A Node timer per request (create, unref, clear) cost about as much
 * as the rest of a batched round trip together; a Set add/delete is a fraction of it. Buckets
 * are kept in a min-heap of their keys, so any mix of timeout values works.
 */
class Deadlines {
  private readonly buckets = new Map<number, Set<number>>();
  private readonly heap: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;

  constructor(private readonly onExpire: (id: number) => void) {}

  /** Registers id; returns its bucket key (pass it to remove). */
  add(id: number, timeoutMs: number): number {
    const key = Math.ceil((performance.now() + timeoutMs) / TIMEOUT_GRAIN_MS);
    let set = this.buckets.get(key);
    if (set === undefined) {
      set = new Set();
      this.buckets.set(key, set);
      heapPush(this.heap, key);
      if (key < this.armedFor) this.arm(key);
    }
    set.add(id);
    return key;
  }

  remove(id: number, key: number): void {
    const set = this.buckets.get(key);
    if (set === undefined) return;
    set.delete(id);
    // An emptied bucket goes now, so the timer never wakes for a bucket with nothing in it
    // (its key stays in the heap and is skipped).
    if (set.size === 0) this.buckets.delete(key);
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
    this.buckets.clear();
    this.heap.length = 0;
  }

  private arm(key: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = key;
    this.timer = setTimeout(this.fire, Math.max(1, key * TIMEOUT_GRAIN_MS - performance.now()));
    // A pending request must not keep a process alive by itself; the port does that.
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.armedFor = Infinity;
    const now = performance.now();
    while (this.heap.length > 0 && this.heap[0] * TIMEOUT_GRAIN_MS <= now) {
      const key = heapPop(this.heap);
      const set = this.buckets.get(key);
      this.buckets.delete(key);
      if (set) for (const id of set) this.onExpire(id);
    }
    while (this.heap.length > 0 && !this.buckets.has(this.heap[0])) heapPop(this.heap);
    if (this.heap.length > 0) this.arm(this.heap[0]);
  };
}

function heapPush(heap: number[], v: number): void {
  let i = heap.push(v) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= v) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = v;
}

function heapPop(heap: number[]): number {
  const top = heap[0];
  const last = heap.pop() as number;
  if (heap.length === 0) return top;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= heap.length) break;
    const c = l + 1 < heap.length && heap[l + 1] < heap[l] ? l + 1 : l;
    if (heap[c] >= last) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = last;
  return top;
}

/**
 * The blobs [start, start + count) of a frame `[batch, desc, pack, ...big]`: desc holds, per
 * blob, (offset, length) in the packed buffer, or (-1, index) of a transferred big one. A
 * packed blob is handed out as its own ArrayBuffer (a copy), so receivers may keep it.
 */
function blobsOf(frame: unknown[], start: number, count: number): ArrayBuffer[] {
  const desc = frame[1] as number[];
  const pack = frame[2] as ArrayBuffer | null;
  const out: ArrayBuffer[] = [];
  for (let k = start; k < start + count; k++) {
    const a = desc[2 * k]!;
    const b = desc[2 * k + 1]!;
    out.push(a === -1 ? (frame[3 + b] as ArrayBuffer) : b === 0 ? new ArrayBuffer(0) : pack!.slice(a, a + b));
  }
  return out;
}
