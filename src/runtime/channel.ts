// A Peer seen through one protocol: requests of the union M, each answered with the reply its
// tag names in R (src/protocol/*_protocol.ts declare both). `call(msg)` is typed by the message
// it sends, so a caller that expects another reply, or sends a message the protocol does not
// have, does not compile: the types of the wire are checked at both ends of each call.
import type { Peer, RequestOptions } from './peer.js';

/** A protocol's messages carry their tag in `t`; its replies are keyed by tag. */
export type Tagged = { t: number };

export class Channel<M extends Tagged, R extends { [K in M['t']]: unknown }> {
  constructor(readonly peer: Peer) {}

  call<T extends M>(msg: T, options?: RequestOptions): Promise<R[T['t']]> {
    return this.peer.call<R[T['t']]>(msg, options);
  }

  /** call() with blobs in the answer (e.g. buffers handed back). */
  request<T extends M>(msg: T, options?: RequestOptions): Promise<{ body: R[T['t']]; blobs: ArrayBuffer[] }> {
    return this.peer.request<R[T['t']]>(msg, options);
  }

  /** One-way (no answer). */
  send(msg: M, blobs?: ArrayBuffer[]): void {
    this.peer.send(msg, blobs);
  }
}
