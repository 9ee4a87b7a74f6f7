// Where actors run. The Supervisor asks its host for an actor's "thread" and for the channels
// between threads; everything else (start order, handshake, re-wiring, restarts, stop) is the
// Supervisor's and the actor runtime's, the same code for both hosts:
// - workerHost: one worker thread per actor (production), node's channels, timers and clock.
// - InThreadHost: every actor in the calling thread, over the seams it is given (a simulated
//   file system, a ManualClock, a ManualScheduler), joined by loopback channels that clone and
//   transfer as postMessage does. The crash/recovery tests run the shipped actors this way,
//   deterministically from a seed. An in-thread actor "dies" as a thread does: its timers and
//   deferred work stop, its ports close (so every neighbour sees it go), and, when it died of an
//   error, 'error' then 'exit' are emitted to the supervisor.
import { EventEmitter } from 'node:events';
import { MessageChannel, Worker } from 'node:worker_threads';
import { loadFactory, startActor, type ActorLink, type ActorRuntime, type ActorSeams, type InvariantMode } from './actor.js';
import { systemClock, type Clock } from './clock.js';
import { StoreError, toWireError } from './errors.js';
import type { Fs } from './fs.js';
import { loopbackChannel, type PortLike } from './port.js';
import { ScopedScheduler, systemScheduler, type Scheduler } from './scheduler.js';
import type { ActorMessage, ActorSpec, InitMessage, SupervisorMessage } from './topology.js';

/** What the Supervisor needs of a thread running one actor (a node Worker has all of it). */
export interface ActorThread {
  readonly threadId: number;
  postMessage(msg: SupervisorMessage, transfer?: readonly unknown[]): void;
  on(event: 'message', listener: (msg: ActorMessage) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
  terminate(): unknown;
}

export interface ActorHost {
  readonly clock: Clock;
  /** The supervisor's own timers (ready timeouts, restart backoff). */
  readonly scheduler: Scheduler;
  /** How often actors check their invariants. */
  readonly invariants: InvariantMode;
  spawn(spec: ActorSpec): ActorThread;
  channel(): { port1: PortLike; port2: PortLike };
}

const ACTOR_WORKER = new URL('./actor_worker.js', import.meta.url);
const MAX_WARNINGS = 100;

/** Production: a worker thread per actor. Invariants are checked on a sample of messages. */
export const workerHost: ActorHost = {
  clock: systemClock,
  scheduler: systemScheduler,
  invariants: 'sampled',
  spawn: () => new Worker(ACTOR_WORKER),
  channel: () => new MessageChannel(),
};

export interface InThreadSeams {
  fs: Fs;
  clock: Clock;
  scheduler: Scheduler;
}

/** An actor that died of an error in the in-thread host (tests assert there are none). */
export interface InThreadCrash {
  name: string;
  error: string;
}

/** Every actor in the calling thread, over the given seams (see the top of the file). */
export class InThreadHost implements ActorHost {
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly crashes: InThreadCrash[] = [];
  /** What the actors warned about (the last MAX_WARNINGS): a simulated crash makes stop hooks fail. */
  readonly warnings: string[] = [];
  private nextThreadId = -1;

  constructor(
    private readonly seams: InThreadSeams,
    readonly invariants: InvariantMode = 'every-message',
  ) {
    this.clock = seams.clock;
    this.scheduler = seams.scheduler;
  }

  spawn(spec: ActorSpec): ActorThread {
    return new InThreadActor(spec.name, this.nextThreadId--, this.seams, {
      crashed: (crash) => this.crashes.push(crash),
      warned: (message) => {
        this.warnings.push(message);
        if (this.warnings.length > MAX_WARNINGS) this.warnings.shift();
      },
    });
  }

  channel(): { port1: PortLike; port2: PortLike } {
    return loopbackChannel(this.scheduler);
  }
}

class InThreadActor extends EventEmitter implements ActorThread {
  private runtime: ActorRuntime | null = null;
  private readonly early: SupervisorMessage[] = [];
  private readonly scope: ScopedScheduler;
  /** Every port handed to this actor: a dead thread's ports close. */
  private readonly ports: PortLike[] = [];
  private booting = false;
  private ended = false;

  constructor(
    private readonly name: string,
    readonly threadId: number,
    private readonly seams: InThreadSeams,
    private readonly report: { crashed(crash: InThreadCrash): void; warned(message: string): void },
  ) {
    super();
    this.scope = new ScopedScheduler(seams.scheduler, (err) => this.end(1, err));
  }

  /** Supervisor -> actor: by reference (ports travel as objects), on the next turn. */
  postMessage(msg: SupervisorMessage): void {
    this.seams.scheduler.defer(() => this.receive(msg));
  }

  terminate(): void {
    this.end(1, null);
  }

  private receive(msg: SupervisorMessage): void {
    if (this.ended) {
      closeGiven(msg);
      return;
    }
    this.keepPorts(msg);
    if (this.runtime !== null) this.runtime.onSupervisor(msg);
    else if (msg.t === 'init' && !this.booting) void this.boot(msg);
    else this.early.push(msg);
  }

  private async boot(init: InitMessage): Promise<void> {
    this.booting = true;
    const link: ActorLink = {
      // Posted before the end is delivered (as a worker's last messages are), after it never.
      post: (m) => {
        if (!this.ended) this.seams.scheduler.defer(() => this.emit('message', m));
      },
      exit: (code) => this.end(code, null),
      // A turn later, as a thread dies of a throw after its handler has answered.
      crash: (err) => this.seams.scheduler.defer(() => this.end(1, err ?? new Error('crashed'))),
      warn: (message) => this.report.warned(message),
    };
    try {
      const factory = await loadFactory(init.module);
      if (this.ended) return;
      const seams: ActorSeams = { fs: this.seams.fs, clock: this.seams.clock, scheduler: this.scope };
      this.runtime = startActor(factory, init, link, seams);
    } catch (err) {
      link.post({ t: 'init-failed', error: toWireError(err) });
      link.exit(1);
      return;
    }
    for (const msg of this.early.splice(0)) this.runtime.onSupervisor(msg);
  }

  private keepPorts(msg: SupervisorMessage): void {
    if (msg.t === 'init') {
      for (const p of Object.values(msg.peers)) if (p !== null) this.ports.push(p);
      this.ports.push(msg.main, msg.control);
    } else if (msg.t === 'rewire') {
      this.ports.push(msg.port);
    }
  }

  /** The thread ends: nothing of it runs again; `err` when it died of an error. */
  private end(code: number, err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.scope.close();
    this.runtime?.die();
    for (const p of this.ports) p.close();
    const error = err === null ? null : err instanceof Error ? err : new StoreError('INTERNAL', toWireError(err).message);
    if (error !== null) this.report.crashed({ name: this.name, error: `${error.name}: ${error.message}` });
    this.seams.scheduler.defer(() => {
      if (error !== null) this.emit('error', error);
      this.emit('exit', code);
    });
  }
}

/** Ports sent to a thread that is gone are closed, as the transfer to a dead worker would. */
function closeGiven(msg: SupervisorMessage): void {
  if (msg.t === 'rewire') msg.port.close();
  if (msg.t === 'init') {
    for (const p of Object.values(msg.peers)) p?.close();
    msg.main.close();
    msg.control.close();
  }
}
