// The supervisor, on the main thread: starts the actors in dependency order, wires one
// channel per edge of the topology, watches every actor's thread, restarts a failed actor
// one-for-one with backoff inside a restart budget (OTP: 5 in 10 s), and stops everything in
// reverse order. Where an actor runs is its host's business (host.ts): a worker thread each in
// production, or all in the calling thread over simulated seams in the tests; the supervision
// is the same code either way.
// Invariants:
// - A request to an actor that is down never hangs: when its worker errors or exits, every
//   Peer connected to it (main's, and each live neighbour's, told by a 'peer-down' message)
//   fails its pending requests with ACTOR_DOWN at once and refuses new ones until re-wired.
// - Each (re)start of an actor gets fresh channels for all its edges; the other side of each
//   is handed to the live neighbour ('rewire') and to main's stable Peer (replacePort) when
//   the worker is spawned, so its init can call its dependencies. Until init is done the
//   actor's runtime itself refuses requests with ACTOR_DOWN (actor.ts).
// - Past the budget the actor is 'given-up' and stays down; requests to it fail fast.
// - After stop() no worker, port or timer of ours keeps the process alive.
import type { TransferListItem } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import * as Comlink from 'comlink';
import { deliver } from './actor.js';
import { StoreError, comlinkErrorPayload, fromWireError, installComlinkErrorCodes, type WireError } from './errors.js';
import { Peer } from './peer.js';
import type { PortLike } from './port.js';
import { workerHost, type ActorHost, type ActorThread } from './host.js';
import type { Timer } from './scheduler.js';
import {
  DEFAULT_RESTART,
  indexSpecs,
  neighbours,
  startOrder,
  talksToMain,
  type ActorMessage,
  type ActorSpec,
  type RestartPolicy,
  type SupervisorMessage,
} from './topology.js';

export type ActorState = 'starting' | 'running' | 'restarting' | 'stopped' | 'given-up';

export interface SupervisorOptions {
  /** Where the actors run: worker threads (default) or the calling thread (tests). */
  host?: ActorHost;
  /** How long an actor may take from spawn to READY. Default 10 s. */
  readyTimeoutMs?: number;
  /** Delay before restart number `attempt` (1-based, within the budget window). */
  backoffMs?: (attempt: number) => number;
  /** How long stop() waits for an actor to exit before terminating it. Default 10 s. */
  stopTimeoutMs?: number;
  /** Timeout of a comlink control call. Default 30 s. */
  controlTimeoutMs?: number;
}

export interface ActorStatus {
  name: string;
  threadId: number;
  restarts: number;
  state: ActorState;
}

export interface ActorExitEvent {
  name: string;
  code: number;
  error?: string;
}

/** How long stop() waits for the last answers of an actor that exited to arrive. */
const STOP_ANSWERS_MS = 1000;

/** How long kill() lets an actor crash by itself before terminating its thread. */
const KILL_GRACE_MS = 2000;

/** 50 ms, doubling, at most 2 s. */
export function defaultBackoff(attempt: number): number {
  return Math.min(2_000, 50 * 2 ** Math.max(0, attempt - 1));
}

interface Slot {
  readonly spec: ActorSpec;
  readonly name: string;
  readonly neighbours: string[];
  readonly policy: RestartPolicy;
  readonly mainPeer: Peer;
  readonly control: ControlEndpoint;
  remote: unknown;
  state: ActorState;
  worker: ActorThread | null;
  threadId: number;
  /** Bumped at each spawn; events of an older incarnation are ignored. */
  incarnation: number;
  /** The last incarnation whose death has been handled. */
  downIncarnation: number;
  everReady: boolean;
  restarts: number;
  /** Times of the restarts inside the budget window. */
  restartTimes: number[];
  restartTimer: Timer | null;
  lastError: string | null;
  /** The code of the error its factory failed with: a failed start is reported with it (CORRUPT...). */
  initErrorCode: string | null;
  /** stop() told it to shut down (its exit is the plan, and it answered what it had). */
  stopRequested: boolean;
  ready: { resolve(): void; reject(err: Error): void } | null;
  exited: Promise<void>;
  markExited: () => void;
}

export class Supervisor extends EventEmitter {
  private readonly slots = new Map<string, Slot>();
  private readonly order: string[];
  private readonly readyTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly backoff: (attempt: number) => number;
  private readonly host: ActorHost;
  private started = false;
  private stopping = false;
  private stopped: Promise<void> | null = null;

  constructor(specs: ActorSpec[], options: SupervisorOptions = {}) {
    super();
    indexSpecs(specs);
    this.order = startOrder(specs);
    this.readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.backoff = options.backoffMs ?? defaultBackoff;
    this.host = options.host ?? workerHost;
    const controlTimeoutMs = options.controlTimeoutMs ?? 30_000;
    const edges = neighbours(specs);
    for (const spec of specs) {
      this.slots.set(spec.name, newSlot(spec, edges.get(spec.name) ?? [], controlTimeoutMs, this.host));
    }
    installComlinkErrorCodes(Comlink.transferHandlers);
  }

  // ---- API -----------------------------------------------------------------------------------

  /** Starts every actor in dependency order, each READY before the next. */
  async start(): Promise<void> {
    if (this.started) throw new StoreError('BAD_ARGUMENT', 'supervisor already started');
    this.started = true;
    try {
      for (const name of this.order) {
        if (this.stopping) throw new StoreError('CLOSED', 'supervisor stopped during start');
        const slot = this.slot(name);
        await this.spawn(slot);
        slot.everReady = true;
        slot.state = 'running';
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Main's Peer to an actor that lists 'main' in talksTo: one object across restarts. */
  peer(name: string): Peer {
    const slot = this.slot(name);
    if (!talksToMain(slot.spec)) {
      throw new StoreError('BAD_ARGUMENT', `actor ${name} does not talk to main: add 'main' to its talksTo`);
    }
    return slot.mainPeer;
  }

  /** comlink proxy to the actor's onControl api; calls fail with ACTOR_DOWN while it is down. */
  control<T>(name: string): Comlink.Remote<T> {
    const slot = this.slot(name);
    slot.remote ??= Comlink.wrap<T>(slot.control);
    return slot.remote as Comlink.Remote<T>;
  }

  status(): ActorStatus[] {
    return [...this.slots.values()].map((s) => ({
      name: s.name,
      threadId: s.threadId,
      restarts: s.restarts,
      state: s.state,
    }));
  }

  /**
   * Kills an actor's thread (fault injection in tests, and an operator's last resort for a stuck
   * actor); the supervisor then restarts it as usual. First as a bug would: an uncaught error
   * inside the thread (so an actor that must close native handles before its thread ends, as
   * uWebSockets.js must, can); if the thread is still there after a bound, it is terminated.
   * Resolves once the thread has exited.
   */
  async kill(name: string): Promise<void> {
    const slot = this.slot(name);
    const worker = slot.worker;
    if (worker === null) return;
    const exited = slot.exited;
    worker.postMessage({ t: 'crash' } satisfies SupervisorMessage);
    const timer = this.host.scheduler.after(KILL_GRACE_MS, () => void worker.terminate());
    try {
      await exited;
    } finally {
      timer.cancel();
    }
  }

  /**
   * Every actor dies at once, as in a process killed by SIGKILL or a power cut: no stop hook
   * runs, nothing is flushed, nothing restarts. For the in-thread host's simulated crashes.
   */
  halt(): void {
    this.stopping = true;
    this.stopped ??= Promise.resolve();
    for (const slot of this.slots.values()) {
      slot.restartTimer?.cancel();
      slot.restartTimer = null;
      const worker = slot.worker;
      slot.worker = null;
      void worker?.terminate();
      slot.mainPeer.markDown(`${slot.name} is down (halted)`);
      slot.control.close();
      slot.state = 'stopped';
    }
  }

  /** Reverse dependency order: 'shutdown' to each, wait for its exit (terminate after a timeout). */
  stop(): Promise<void> {
    this.stopping = true;
    this.stopped ??= this.stopAll();
    return this.stopped;
  }

  // ---- start and restart ---------------------------------------------------------------------

  private spawn(slot: Slot): Promise<void> {
    const inc = ++slot.incarnation;
    slot.lastError = null;
    slot.initErrorCode = null;
    slot.state = slot.everReady ? 'restarting' : 'starting';
    let worker: ActorThread;
    try {
      worker = this.host.spawn(slot.spec);
    } catch (err) {
      slot.lastError = describe(err);
      queueMicrotask(() => this.onExit(slot, inc, -1));
      return this.readyPromise(slot, inc);
    }
    slot.worker = worker;
    slot.threadId = worker.threadId;
    slot.exited = new Promise((resolve) => (slot.markExited = resolve));
    worker.on('message', (msg: ActorMessage) => this.onActorMessage(slot, inc, msg));
    worker.on('error', (err) => {
      slot.lastError = describe(err);
      this.onDown(slot, inc);
    });
    worker.on('exit', (code) => this.onExit(slot, inc, code));
    const ready = this.readyPromise(slot, inc);
    worker.postMessage(...this.initMessage(slot));
    return ready;
  }

  /** The init message; hands the other end of each fresh channel to main and live neighbours. */
  private initMessage(slot: Slot): [SupervisorMessage, PortLike[]] {
    const peers: Record<string, PortLike | null> = {};
    const transfer: PortLike[] = [];
    for (const other of slot.neighbours) {
      const o = this.slot(other);
      if (!this.isLive(o) || o.worker === null) {
        peers[other] = null; // wired when `other` (re)starts
        continue;
      }
      const ch = this.host.channel();
      peers[other] = ch.port1;
      transfer.push(ch.port1);
      const rewire: SupervisorMessage = { t: 'rewire', peer: slot.name, port: ch.port2 };
      o.worker.postMessage(rewire, [ch.port2]);
    }
    const main = this.host.channel();
    slot.mainPeer.replacePort(main.port1);
    const control = this.host.channel();
    slot.control.replacePort(control.port1);
    transfer.push(main.port2, control.port2);
    const init: SupervisorMessage = {
      t: 'init',
      name: slot.name,
      module: slot.spec.module.href,
      config: slot.spec.config,
      peers,
      main: main.port2,
      control: control.port2,
      invariants: this.host.invariants,
      ...(slot.spec.protocol ? { protocol: slot.spec.protocol } : {}),
    };
    return [init, transfer];
  }

  private readyPromise(slot: Slot, inc: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = this.host.scheduler.after(this.readyTimeoutMs, () => {
        slot.lastError = `not ready within ${this.readyTimeoutMs} ms`;
        void slot.worker?.terminate();
      });
      slot.ready = {
        resolve: () => {
          timer.cancel();
          resolve();
        },
        reject: (err) => {
          timer.cancel();
          reject(err);
        },
      };
    }).finally(() => {
      if (slot.incarnation === inc) slot.ready = null;
    });
  }

  private onActorMessage(slot: Slot, inc: number, msg: ActorMessage): void {
    if (slot.incarnation !== inc) return;
    switch (msg.t) {
      case 'ready':
        slot.ready?.resolve();
        return;
      case 'init-failed':
        slot.lastError = `init failed: ${msg.error.code}: ${msg.error.message}`;
        slot.initErrorCode = msg.error.code;
        return;
      default:
        return assertNever(msg);
    }
  }

  /** First sign of death (error or exit): everything waiting on the actor fails now. */
  private onDown(slot: Slot, inc: number): void {
    if (slot.downIncarnation >= inc) return;
    slot.downIncarnation = inc;
    const why = this.stopping ? 'stopped' : 'restarting';
    this.markDownEverywhere(slot, `${slot.name} is down (${why})`);
  }

  private onExit(slot: Slot, inc: number, code: number): void {
    if (slot.incarnation !== inc) return;
    this.onDown(slot, inc);
    slot.worker = null;
    slot.markExited();
    const event: ActorExitEvent = { name: slot.name, code };
    if (slot.lastError !== null) event.error = slot.lastError;
    this.emit('actor-exit', event);
    slot.ready?.reject(
      fromWireError({ code: slot.initErrorCode ?? 'ACTOR_DOWN', message: `actor ${slot.name} failed to start: ${slot.lastError ?? `exit code ${code}`}` }),
    );
    if (this.stopping || !slot.everReady) {
      if (slot.state !== 'given-up') slot.state = 'stopped';
      return;
    }
    this.scheduleRestart(slot);
  }

  private scheduleRestart(slot: Slot): void {
    const now = this.host.clock.now();
    const { maxRestarts, withinMs } = slot.policy;
    slot.restartTimes = slot.restartTimes.filter((t) => now - t < withinMs);
    if (slot.restartTimes.length >= maxRestarts) {
      this.giveUp(slot);
      return;
    }
    slot.restartTimes.push(now);
    slot.restarts++;
    const attempt = slot.restartTimes.length;
    slot.state = 'restarting';
    slot.restartTimer = this.host.scheduler.after(this.backoff(attempt), this.restartNow(slot, attempt), true);
  }

  private restartNow(slot: Slot, attempt: number): () => void {
    return () => {
      slot.restartTimer = null;
      if (this.stopping) return;
      this.spawn(slot).then(
        () => {
          slot.state = 'running';
          this.emit('actor-restart', { name: slot.name, attempt });
        },
        // A failed restart exits, and its exit schedules the next attempt or gives up.
        () => undefined,
      );
    };
  }

  private giveUp(slot: Slot): void {
    slot.state = 'given-up';
    const { maxRestarts, withinMs } = slot.policy;
    this.markDownEverywhere(
      slot,
      `${slot.name} is down (given up after ${maxRestarts} restarts within ${withinMs} ms)`,
    );
    this.emit('actor-given-up', { name: slot.name, error: slot.lastError });
  }

  private markDownEverywhere(slot: Slot, message: string): void {
    // An actor told to stop answered what it had in flight before it exited, but its exit may
    // be seen before those answers arrive on main's port (two channels, no order between them):
    // main's Peer then ends when its port closes, after the answers, not now.
    if (!(this.stopping && slot.stopRequested)) slot.mainPeer.markDown(message);
    slot.control.markDown(message);
    for (const other of slot.neighbours) {
      const o = this.slot(other);
      if (!this.isLive(o) || o.worker === null) continue;
      const down: SupervisorMessage = { t: 'peer-down', peer: slot.name, message };
      o.worker.postMessage(down);
    }
  }

  // ---- stop ----------------------------------------------------------------------------------

  private async stopAll(): Promise<void> {
    for (const slot of this.slots.values()) {
      slot.restartTimer?.cancel();
      slot.restartTimer = null;
    }
    for (const name of [...this.order].reverse()) await this.stopOne(this.slot(name));
    for (const slot of this.slots.values()) {
      slot.mainPeer.close();
      slot.control.close();
      slot.state = 'stopped';
    }
  }

  private async stopOne(slot: Slot): Promise<void> {
    const worker = slot.worker;
    if (worker === null) return;
    slot.mainPeer.expectDown(`${slot.name} is down (stopped)`);
    slot.stopRequested = true;
    const shutdown: SupervisorMessage = { t: 'shutdown' };
    worker.postMessage(shutdown);
    const timer = this.host.scheduler.after(this.stopTimeoutMs, () => void worker.terminate());
    await slot.exited;
    timer.cancel();
    // The answers it posted before exiting are still on their way on main's port: let them land
    // (bounded) before the port is closed.
    await slot.mainPeer.whenIdle(this.host.scheduler, STOP_ANSWERS_MS);
  }

  // ---- helpers -------------------------------------------------------------------------------

  private slot(name: string): Slot {
    const slot = this.slots.get(name);
    if (!slot) throw new StoreError('BAD_ARGUMENT', `no actor named ${name}`);
    return slot;
  }

  /** Has a worker that has not died: it can take a port or a peer-down message. */
  private isLive(slot: Slot): boolean {
    return slot.worker !== null && slot.downIncarnation < slot.incarnation;
  }
}

function newSlot(spec: ActorSpec, edges: string[], controlTimeoutMs: number, host: ActorHost): Slot {
  return {
    spec,
    name: spec.name,
    neighbours: edges,
    policy: spec.restart ?? DEFAULT_RESTART,
    mainPeer: new Peer(spec.name, null),
    control: new ControlEndpoint(spec.name, controlTimeoutMs, host),
    remote: null,
    state: 'stopped',
    worker: null,
    threadId: -1,
    incarnation: 0,
    downIncarnation: 0,
    everReady: false,
    restarts: 0,
    restartTimes: [],
    restartTimer: null,
    lastError: null,
    initErrorCode: null,
    stopRequested: false,
    ready: null,
    exited: Promise.resolve(),
    markExited: () => undefined,
  };
}

/**
 * comlink's Endpoint on main's side of an actor's control port, stable across restarts (one
 * comlink proxy per actor). comlink itself never gives up on a call, so this end tracks the
 * ids of calls in flight and answers them itself with ACTOR_DOWN when the actor dies, and
 * with TIMEOUT when it does not answer.
 */
class ControlEndpoint implements Comlink.Endpoint {
  private port: PortLike | null = null;
  private downMessage: string;
  private readonly listeners = new Set<unknown>();
  private readonly waiting = new Map<string, Timer>();

  constructor(
    private readonly name: string,
    private readonly timeoutMs: number,
    private readonly host: ActorHost,
  ) {
    this.downMessage = `${name} is down (not started)`;
  }

  postMessage(message: unknown, transfer?: readonly unknown[]): void {
    const id = idOf(message);
    const port = this.port;
    if (port === null) {
      const err: WireError = { code: 'ACTOR_DOWN', message: this.downMessage };
      if (id !== null) queueMicrotask(() => this.emitFault(id, err));
      return;
    }
    if (id !== null) {
      const timer = this.host.scheduler.after(this.timeoutMs, () => {
        this.waiting.delete(id);
        this.emitFault(id, { code: 'TIMEOUT', message: `${this.name} did not answer a control call within ${this.timeoutMs} ms` });
      });
      this.waiting.set(id, timer);
    }
    port.postMessage(message, (transfer ?? []) as TransferListItem[]);
  }

  addEventListener(_type: string, listener: unknown): void {
    this.listeners.add(listener);
  }

  removeEventListener(_type: string, listener: unknown): void {
    this.listeners.delete(listener);
  }

  replacePort(port: PortLike): void {
    this.markDown(`${this.name} is down (restarting)`);
    this.port = port;
    port.on('message', (data: unknown) => {
      if (this.port !== port) return;
      const id = idOf(data);
      if (id !== null) {
        const timer = this.waiting.get(id);
        if (timer === undefined) return; // answered already (timed out)
        timer.cancel();
        this.waiting.delete(id);
      }
      this.emit(data);
    });
  }

  markDown(message: string): void {
    this.downMessage = message;
    const port = this.port;
    this.port = null;
    if (port) port.close();
    const ids = [...this.waiting.keys()];
    for (const id of ids) {
      this.waiting.get(id)?.cancel();
      this.waiting.delete(id);
      this.emitFault(id, { code: 'ACTOR_DOWN', message });
    }
  }

  close(): void {
    this.markDown(`${this.name}: supervisor stopped`);
  }

  private emitFault(id: string, err: WireError): void {
    this.emit({ id, type: 'HANDLER', name: 'throw', value: comlinkErrorPayload(err) });
  }

  private emit(data: unknown): void {
    for (const l of [...this.listeners]) deliver(l, data);
  }
}

function idOf(message: unknown): string | null {
  if (typeof message !== 'object' || message === null) return null;
  const id = (message as { id?: unknown }).id;
  return typeof id === 'string' ? id : null;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function assertNever(msg: never): never {
  throw new StoreError('INTERNAL', `unknown actor message ${JSON.stringify(msg)}`);
}
