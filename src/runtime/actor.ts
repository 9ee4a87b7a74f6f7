// The actor runtime: binds an actor (made by its factory) to the thread it runs in. The same
// runtime runs a factory on a worker thread in production (actor_worker.ts) and in the calling
// thread under the in-thread host (host.ts), where the tests run the shipped actors over a
// simulated file system and virtual time.
//
// An actor is `factory(env) -> { handle, invariants, control, stop }`: no module state, and
// nothing reached for: files, time, timers and its neighbours come in `env`.
//
// Owns: the start-up handshake with the supervisor (init -> factory -> READY with the protocol
// it speaks), the Peers to every neighbour and to main, routing every request to
// actor.handle(from, ...), the comlink control port, re-wiring when a neighbour restarts,
// invariant checks, and ordered shutdown.
// Invariants:
// - Before the factory has finished, and once shutdown has begun, requests are refused with
//   ACTOR_DOWN at once (the supervisor hands out ports before READY so that the factory can
//   call its dependencies; a request the other way must fail fast, not wait behind recovery).
// - With invariant checks on, actor.invariants() runs after every message (and after the
//   answer of an async handler); a violation crashes the actor as a failed assertion would.
// - Shutdown lets in-flight requests finish (bounded), runs actor.stop, flushes every outbox
//   and exits 0. A failed factory reports its error and exits 1.
// - env.peer(x) is one Peer object for the life of the incarnation; re-wiring swaps its port.
import type { TransferListItem } from 'node:worker_threads';
import * as Comlink from 'comlink';
import type { Clock } from './clock.js';
import { StoreError, installComlinkErrorCodes, toWireError } from './errors.js';
import type { Fs } from './fs.js';
import { Peer } from './peer.js';
import type { PortLike } from './port.js';
import type { Scheduler } from './scheduler.js';
import type { ActorMessage, InitMessage, SupervisorMessage } from './topology.js';

/** What an actor is given from outside: the seams a simulation replaces. */
export interface ActorSeams {
  readonly fs: Fs;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
}

export interface ActorEnv<C = unknown> extends ActorSeams {
  readonly name: string;
  /** Structured-cloned from the spec. */
  readonly config: C;
  /** A neighbour declared in the topology: a stable object across its restarts. */
  peer(name: string): Peer;
  /** The channel to the supervisor's thread. */
  readonly main: Peer;
  /** Ends this actor now, as an uncaught error would; the supervisor restarts it. */
  crash(err: unknown): void;
}

/** A protocol an actor serves, checked against what the wiring expects at the handshake. */
export interface ProtocolId {
  name: string;
  version: number;
}

export interface Actor {
  /** The protocol this actor answers (checked at start against the spec's). */
  readonly protocol?: ProtocolId;
  /** One exhaustive dispatch over the actor's message union. */
  handle(from: string, body: unknown, blobs: ArrayBuffer[]): unknown;
  /** Throws when the actor's state breaks a rule it promises; run after every message in tests. */
  invariants?(): void;
  /** Exposed with comlink on the control port (stats, checkpoint ...). */
  readonly control?: Record<string, (...args: never[]) => unknown>;
  stop?(): void | Promise<void>;
}

export type ActorFactory<C = unknown> = (env: ActorEnv<C>) => Actor | Promise<Actor>;

/** How the runtime reaches the thread it runs in. */
export interface ActorLink {
  post(msg: ActorMessage): void;
  /** The thread ends with this code (process.exit in a worker). */
  exit(code: number): void;
  /** The thread dies of err, as an uncaught error ends it. */
  crash(err: unknown): void;
  /** Something went wrong that ends nothing (a failed stop hook): for the log. */
  warn(message: string): void;
}

/** 'every-message' in tests; 'sampled' (every 1024th message) where a check is not free. */
export type InvariantMode = 'every-message' | 'sampled' | 'off';
const SAMPLE_EVERY = 1024;

/** How long shutdown waits for in-flight requests before running the stop hook anyway. */
export const DRAIN_TIMEOUT_MS = 5_000;

type Phase = 'starting' | 'running' | 'stopping' | 'dead';

/** Starts an actor: the factory runs now; the supervisor's messages go to the returned runtime. */
export function startActor<C>(factory: ActorFactory<C>, init: InitMessage, link: ActorLink, seams: ActorSeams): ActorRuntime<C> {
  const runtime = new ActorRuntime(factory, init, link, seams);
  runtime.start();
  return runtime;
}

export class ActorRuntime<C = unknown> {
  private phase: Phase = 'starting';
  private readonly peers = new Map<string, Peer>();
  private readonly main: Peer;
  /** Built in for every actor: its thread's own heap and buffer memory. */
  private readonly controlApi: Record<string, unknown> = { memory: () => process.memoryUsage() };
  private actor: Actor | null = null;
  private inFlight = 0;
  private handled = 0;
  private drained: (() => void) | null = null;
  private initDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly factory: ActorFactory<C>,
    private readonly init: InitMessage,
    private readonly link: ActorLink,
    private readonly seams: ActorSeams,
  ) {
    for (const [name, port] of Object.entries(init.peers)) this.peers.set(name, this.route(new Peer(name, port)));
    this.main = this.route(new Peer('main', init.main));
    installComlinkErrorCodes(Comlink.transferHandlers);
    // Exposed now, filled once the factory returns: a call before that answers "not a function".
    Comlink.expose(this.controlApi, portEndpoint(init.control));
  }

  start(): void {
    this.initDone = this.runFactory();
  }

  /** A message from the supervisor on the thread's own channel. */
  onSupervisor(msg: SupervisorMessage): void {
    switch (msg.t) {
      case 'rewire':
        return this.onRewire(msg.peer, msg.port);
      case 'peer-down':
        return this.peers.get(msg.peer)?.markDown(msg.message);
      case 'shutdown':
        void this.onShutdown();
        return;
      case 'crash':
        // As a bug would: the thread dies of an uncaught error, outside any handler.
        this.link.crash(new Error(`${this.init.name} crashed on purpose (fault injection)`));
        return;
      case 'init':
        throw new StoreError('INTERNAL', `${this.init.name} got a second init message`);
      default:
        return assertNever(msg);
    }
  }

  /** The thread is gone (in-thread host): nothing of this incarnation may run or answer again. */
  die(): void {
    this.phase = 'dead';
    for (const peer of this.peers.values()) peer.close();
    this.main.close();
  }

  private async runFactory(): Promise<void> {
    let actor: Actor;
    try {
      actor = await this.factory(this.env());
      checkProtocol(this.init, actor);
    } catch (err) {
      if (this.phase === 'dead') return;
      this.link.post({ t: 'init-failed', error: toWireError(err) });
      this.link.exit(1);
      return;
    }
    if (this.phase === 'dead') return;
    this.actor = actor;
    Object.assign(this.controlApi, actor.control ?? {});
    if (this.phase === 'starting') this.phase = 'running';
    this.link.post({ t: 'ready', ...(actor.protocol ? { protocol: actor.protocol } : {}) });
  }

  private env(): ActorEnv<C> {
    const name = this.init.name;
    return {
      name,
      config: this.init.config as C,
      fs: this.seams.fs,
      clock: this.seams.clock,
      scheduler: this.seams.scheduler,
      main: this.main,
      peer: (peerName: string): Peer => {
        const p = this.peers.get(peerName);
        if (!p) throw new StoreError('BAD_ARGUMENT', `${name} does not talk to ${peerName}: add it to talksTo`);
        return p;
      },
      crash: (err: unknown) => this.link.crash(err),
    };
  }

  // ---- requests ------------------------------------------------------------------------------

  private route(peer: Peer): Peer {
    const from = peer.name;
    peer.onRequest((body, blobs) => this.onRequest(from, body, blobs));
    return peer;
  }

  private onRequest(from: string, body: unknown, blobs: ArrayBuffer[]): unknown {
    const actor = this.actor;
    if (this.phase !== 'running' || actor === null) {
      throw new StoreError('ACTOR_DOWN', `${this.init.name} is down (${this.phase})`);
    }
    let result: unknown;
    try {
      result = actor.handle(from, body, blobs);
    } finally {
      this.checkInvariants(actor);
    }
    if (!(result instanceof Promise)) return result;
    this.inFlight++;
    return result.finally(() => {
      this.inFlight--;
      if (this.inFlight === 0 && this.drained) this.drained();
      this.checkInvariants(actor);
    });
  }

  private checkInvariants(actor: Actor): void {
    const mode = this.init.invariants;
    if (mode === 'off' || actor.invariants === undefined || this.phase === 'dead') return;
    this.handled++;
    if (mode === 'sampled' && this.handled % SAMPLE_EVERY !== 0) return;
    try {
      actor.invariants();
    } catch (err) {
      // A broken invariant is a programmer error: crash, as a failed assertion would.
      this.link.crash(new StoreError('INTERNAL', `${this.init.name}: invariant violated: ${toWireError(err).message}`));
    }
  }

  // ---- supervisor messages -------------------------------------------------------------------

  private onRewire(peerName: string, port: PortLike): void {
    const peer = this.peers.get(peerName);
    if (!peer) {
      port.close();
      throw new StoreError('INTERNAL', `${this.init.name} was re-wired to ${peerName}, which is not its neighbour`);
    }
    peer.replacePort(port);
  }

  private async onShutdown(): Promise<void> {
    await this.initDone;
    if (this.phase === 'stopping' || this.phase === 'dead') return;
    this.phase = 'stopping';
    await this.drain();
    // The last handlers' answers are queued on microtasks after they settle: let them be.
    await nextTurn(this.seams.scheduler);
    let code = 0;
    try {
      await this.actor?.stop?.();
    } catch (err) {
      this.link.warn(`${this.init.name}: stop hook failed: ${toWireError(err).message}`);
      code = 1;
    }
    await nextTurn(this.seams.scheduler);
    for (const peer of this.peers.values()) peer.flush();
    this.main.flush();
    this.link.exit(code);
  }

  private drain(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.seams.scheduler.after(DRAIN_TIMEOUT_MS, resolve);
      this.drained = () => {
        timer.cancel();
        resolve();
      };
    });
  }
}

/** The default export of an actor module, checked to be a function. */
export async function loadFactory(href: string): Promise<ActorFactory> {
  const mod = (await import(href)) as { default?: unknown };
  if (typeof mod.default !== 'function') {
    throw new StoreError('BAD_ARGUMENT', `${href} has no actor factory as its default export`);
  }
  return mod.default as ActorFactory;
}

/** The wiring expects a protocol version; an actor of another build must not start. */
function checkProtocol(init: InitMessage, actor: Actor): void {
  const want = init.protocol;
  if (want === undefined) return;
  const got = actor.protocol;
  if (got === undefined || got.name !== want.name || got.version !== want.version) {
    const have = got === undefined ? 'none' : `${got.name} v${got.version}`;
    throw new StoreError('BAD_ARGUMENT', `${init.name}: the wiring expects protocol ${want.name} v${want.version}, the actor speaks ${have}`);
  }
}

function nextTurn(scheduler: Scheduler): Promise<void> {
  return new Promise((resolve) => scheduler.defer(resolve));
}

/** comlink's Endpoint over a port (comlink's own node adapter is not an ES export). */
export function portEndpoint(port: PortLike): Comlink.Endpoint {
  const wrapped = new Map<unknown, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: readonly unknown[]) => {
      port.postMessage(message, (transfer ?? []) as TransferListItem[]);
    },
    addEventListener: (_type: string, listener: unknown) => {
      const l = (data: unknown): void => deliver(listener, data);
      wrapped.set(listener, l);
      port.on('message', l);
    },
    removeEventListener: (_type: string, listener: unknown) => {
      const l = wrapped.get(listener);
      if (l) port.off('message', l);
      wrapped.delete(listener);
    },
  };
}

/** Calls a DOM-style listener (a function or an object with handleEvent) with {data}. */
export function deliver(listener: unknown, data: unknown): void {
  const event = { data };
  if (typeof listener === 'function') (listener as (e: unknown) => void)(event);
  else (listener as { handleEvent(e: unknown): void }).handleEvent(event);
}

function assertNever(msg: never): never {
  throw new StoreError('INTERNAL', `unknown supervisor message ${JSON.stringify(msg)}`);
}
