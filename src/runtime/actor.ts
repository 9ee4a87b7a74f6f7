// The actor runtime inside a worker: binds an actor module (ActorDefinition) to its thread.
// Owns: the start-up handshake with the supervisor (init message -> def.init -> READY), the
// Peers to every neighbour and to main, routing every request to def.onRequest(from, ...),
// the comlink control port, re-wiring when a neighbour restarts, and ordered shutdown.
// Invariants:
// - Before init has finished, and once shutdown has begun, requests are refused with
//   ACTOR_DOWN at once (the supervisor hands out ports before READY so that init can call
//   its dependencies; a request the other way must fail fast, not wait behind recovery).
// - Shutdown lets in-flight requests finish (bounded), then runs def.stop, flushes every
//   outbox and exits 0. A failed init reports its error and exits 1.
// - ctx.peer(x) is one Peer object for the life of this thread; re-wiring swaps its port.
import { isMainThread, parentPort, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { installComlinkErrorCodes, toWireError, StoreError } from './errors.js';
import { Peer } from './peer.js';
import type { ActorMessage, SupervisorMessage } from './topology.js';

export interface ActorContext {
  readonly name: string;
  /** Structured-cloned from the spec. */
  readonly config: unknown;
  /** A neighbour declared in the topology: a stable object across its restarts. */
  peer(name: string): Peer;
  /** Exposed with comlink on the control port (stats, compact, checkpoint ...). */
  onControl(api: Record<string, (...args: never[]) => unknown>): void;
  /** The channel to the supervisor/main thread. */
  readonly main: Peer;
}

export interface ActorDefinition {
  init(ctx: ActorContext): Promise<void> | void;
  onRequest(from: string, body: unknown, blobs: ArrayBuffer[]): unknown | Promise<unknown>;
  stop?(): Promise<void> | void;
}

/** How long shutdown waits for in-flight requests before running the stop hook anyway. */
export const DRAIN_TIMEOUT_MS = 5_000;

type Phase = 'starting' | 'running' | 'stopping';

/** Call at the bottom of an actor module. */
export function runActor(def: ActorDefinition): void {
  if (isMainThread || parentPort === null) {
    throw new StoreError('BAD_ARGUMENT', 'runActor must run in a worker started by the Supervisor');
  }
  const parent = parentPort;
  parent.once('message', (msg: SupervisorMessage) => {
    if (msg.t !== 'init') throw new StoreError('INTERNAL', `expected the init message first, got ${msg.t}`);
    new ActorRuntime(def, parent, msg).start();
  });
}

class ActorRuntime {
  private phase: Phase = 'starting';
  private readonly peers = new Map<string, Peer>();
  private readonly main: Peer;
  /** Built in for every actor: this thread's own heap and buffer memory (process-wide RSS aside). */
  private readonly controlApi: Record<string, unknown> = { memory: () => process.memoryUsage() };
  private inFlight = 0;
  private drained: (() => void) | null = null;
  private initDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly def: ActorDefinition,
    private readonly parent: MessagePort,
    private readonly init: Extract<SupervisorMessage, { t: 'init' }>,
  ) {
    for (const [name, port] of Object.entries(init.peers)) this.peers.set(name, this.route(new Peer(name, port)));
    this.main = this.route(new Peer('main', init.main));
    installComlinkErrorCodes(Comlink.transferHandlers);
    // Exposed now, filled by onControl: a call that comes before init answers "not a function".
    Comlink.expose(this.controlApi, nodeEndpoint(init.control));
  }

  start(): void {
    this.parent.on('message', (msg: SupervisorMessage) => this.onSupervisor(msg));
    this.initDone = this.runInit();
  }

  private async runInit(): Promise<void> {
    try {
      await this.def.init(this.context());
    } catch (err) {
      this.post({ t: 'init-failed', error: toWireError(err) });
      process.exit(1);
    }
    if (this.phase === 'starting') this.phase = 'running';
    this.post({ t: 'ready' });
  }

  private context(): ActorContext {
    const name = this.init.name;
    return {
      name,
      config: this.init.config,
      main: this.main,
      peer: (peerName: string): Peer => {
        const p = this.peers.get(peerName);
        if (!p) throw new StoreError('BAD_ARGUMENT', `${name} does not talk to ${peerName}: add it to talksTo`);
        return p;
      },
      onControl: (api) => {
        Object.assign(this.controlApi, api);
      },
    };
  }

  // ---- requests ------------------------------------------------------------------------------

  private route(peer: Peer): Peer {
    const from = peer.name;
    peer.onRequest((body, blobs) => this.onRequest(from, body, blobs));
    return peer;
  }

  private onRequest(from: string, body: unknown, blobs: ArrayBuffer[]): unknown {
    if (this.phase !== 'running') {
      throw new StoreError('ACTOR_DOWN', `${this.init.name} is down (${this.phase})`);
    }
    const result = this.def.onRequest(from, body, blobs);
    if (!(result instanceof Promise)) return result;
    this.inFlight++;
    return result.finally(this.requestDone);
  }

  private readonly requestDone = (): void => {
    this.inFlight--;
    if (this.inFlight === 0 && this.drained) this.drained();
  };

  // ---- supervisor messages -------------------------------------------------------------------

  private onSupervisor(msg: SupervisorMessage): void {
    switch (msg.t) {
      case 'rewire':
        return this.onRewire(msg.peer, msg.port);
      case 'peer-down':
        return this.peers.get(msg.peer)?.markDown(msg.message);
      case 'shutdown':
        void this.onShutdown();
        return;
      case 'crash':
        // Thrown outside any handler: the thread dies of an uncaught error, as with a real bug.
        setImmediate(() => {
          throw new Error(`${this.init.name} crashed on purpose (fault injection)`);
        });
        return;
      case 'init':
        throw new StoreError('INTERNAL', `${this.init.name} got a second init message`);
      default:
        return assertNever(msg);
    }
  }

  private onRewire(peerName: string, port: MessagePort): void {
    const peer = this.peers.get(peerName);
    if (!peer) {
      port.close();
      throw new StoreError('INTERNAL', `${this.init.name} was re-wired to ${peerName}, which is not its neighbour`);
    }
    peer.replacePort(port);
  }

  private async onShutdown(): Promise<void> {
    await this.initDone;
    if (this.phase === 'stopping') return;
    this.phase = 'stopping';
    await this.drain();
    // The last handlers' answers are queued on microtasks after they settle: let them be.
    await nextTurn();
    let code = 0;
    try {
      await this.def.stop?.();
    } catch (err) {
      process.emitWarning(`${this.init.name}: stop hook failed: ${toWireError(err).message}`);
      code = 1;
    }
    await nextTurn();
    for (const peer of this.peers.values()) peer.flush();
    this.main.flush();
    process.exit(code);
  }

  private drain(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, DRAIN_TIMEOUT_MS);
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private post(msg: ActorMessage): void {
    this.parent.postMessage(msg);
  }
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** comlink's Endpoint over a node MessagePort (comlink's own adapter is not an ES export). */
function nodeEndpoint(port: MessagePort): Comlink.Endpoint {
  const wrapped = new Map<unknown, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: readonly unknown[]) => {
      port.postMessage(message, (transfer ?? []) as never);
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
