// The channel seam: what Peer, the actor runtime and the supervisor need of a MessagePort,
// and a loopback pair that provides it inside one thread, so the in-thread host can run the
// shipped actors with the shipped Peer code between them.
//
// A loopback message is structured-cloned with its transfer list, as postMessage does between
// threads: transferred ArrayBuffers are detached on the sending side and the receiver gets its
// own copy, so an actor that keeps a buffer it sent fails here as it would in production. It
// is delivered on the scheduler's defer (the next event-loop turn), never synchronously.
// Messages that arrive before a 'message' listener is attached wait for one, as a MessagePort
// queues them until it is started. Closing either end closes both and emits 'close' on each.
import type { TransferListItem } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import type { Scheduler } from './scheduler.js';

export interface PortLike {
  postMessage(value: unknown, transfer?: readonly TransferListItem[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
  removeAllListeners(event?: 'message' | 'close'): unknown;
  close(): void;
}

export class LoopbackPort extends EventEmitter implements PortLike {
  other: LoopbackPort | null = null;
  private closed = false;
  /** Delivered before anyone listened. */
  private held: unknown[] = [];

  constructor(private readonly scheduler: Scheduler) {
    super();
    this.on('newListener', (event: string) => {
      if (event !== 'message' || this.held.length === 0) return;
      const held = this.held;
      this.held = [];
      this.scheduler.defer(() => {
        for (const m of held) this.receive(m);
      });
    });
  }

  postMessage(value: unknown, transfer: readonly TransferListItem[] = []): void {
    const other = this.other;
    if (this.closed || other === null || other.closed) return;
    const copy: unknown = structuredClone(value, { transfer: transfer as TransferListItem[] });
    this.scheduler.defer(() => other.receive(copy));
  }

  private receive(message: unknown): void {
    if (this.closed) return;
    if (this.listenerCount('message') === 0) this.held.push(message);
    else this.emit('message', message);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.scheduler.defer(() => this.emit('close'));
    this.other?.close();
  }
}

export function loopbackChannel(scheduler: Scheduler): { port1: LoopbackPort; port2: LoopbackPort } {
  const port1 = new LoopbackPort(scheduler);
  const port2 = new LoopbackPort(scheduler);
  port1.other = port2;
  port2.other = port1;
  return { port1, port2 };
}
