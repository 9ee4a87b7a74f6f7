// A subscription: a dedicated connection in subscriber mode, read as an async iterator of
// messages. Dedicated because a RESP connection that subscribes can no longer run ordinary
// commands (RESP2), and because one slow reader must not stall the client's other requests.
//
// Invariants:
// - open() resolves only once the server confirmed every channel or pattern asked for, so a
//   PUBLISH sent after it is received (the server registered the subscription first).
// - Bounded memory: past `highWater` unread messages the socket is paused (TCP backpressure
//   then reaches the server, which applies its own output limit); it resumes at `lowWater`.
// - close() ends the iteration cleanly (done); a connection lost by other means ends it
//   with that ConnectionError, after the messages already received have been read.
// - Leaving a `for await` early (break, throw) closes the subscription.
import type { RespValue } from '../protocol/resp_reply_parser.js';
import { ConnectionError, TimeoutError } from './errors.js';
import { openSession, type Bytes, type Connection, type Endpoint, type SessionOptions } from './connection.js';
import * as v from './values.js';

export interface Message {
  readonly channel: Buffer;
  readonly payload: Buffer;
  /** The pattern that matched, for a message received through psubscribe. */
  readonly pattern?: Buffer;
}

export type SubscribeKind = 'subscribe' | 'psubscribe';

const HIGH_WATER = 1024;
const LOW_WATER = 256;

export class Subscription implements AsyncIterable<Message> {
  /** Told once when the subscription ends, however it ends (the client forgets it then). */
  onClosed: (() => void) | null = null;
  private readonly buffered: Message[] = [];
  private waiter: { resolve: (r: IteratorResult<Message>) => void; reject: (err: Error) => void } | null = null;
  private unconfirmed: number;
  private confirm: { resolve: () => void; reject: (err: Error) => void } | null = null;
  private ended: ConnectionError | null = null;
  private paused = false;

  private constructor(
    private readonly conn: Connection,
    readonly kind: SubscribeKind,
    readonly names: readonly Buffer[],
  ) {
    this.unconfirmed = names.length;
    conn.onPush = (value) => this.onValue(value);
    conn.onClose = (err) => this.onEnd(err);
  }

  /** Opens a connection and subscribes; resolves once every name is confirmed. */
  static async open(endpoint: Endpoint, options: SessionOptions, kind: SubscribeKind, names: readonly Bytes[]): Promise<Subscription> {
    if (names.length === 0) throw new RangeError(`${kind} needs at least one name`);
    const conn = await openSession(endpoint, options);
    const sub = new Subscription(conn, kind, names.map((n) => Buffer.from(n)));
    try {
      await sub.confirmed(options.commandTimeoutMs);
    } catch (err) {
      conn.destroy(new ConnectionError('CLIENT_CLOSED', `${kind} failed`));
      throw err;
    }
    return sub;
  }

  get closed(): boolean {
    return this.ended !== null;
  }

  /** Ends the subscription and its connection; a pending next() resolves as done. */
  async close(): Promise<void> {
    this.conn.destroy(new ConnectionError('CLIENT_CLOSED', 'the subscription was closed'));
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  /** The next message; done after close(); rejects once the connection was lost otherwise. */
  next(): Promise<IteratorResult<Message>> {
    const message = this.buffered.shift();
    if (message !== undefined) {
      if (this.paused && this.buffered.length <= LOW_WATER) {
        this.paused = false;
        this.conn.resume();
      }
      return Promise.resolve({ done: false, value: message });
    }
    if (this.ended) {
      if (this.ended.code === 'CLIENT_CLOSED') return Promise.resolve({ done: true, value: undefined });
      return Promise.reject(this.ended);
    }
    if (this.waiter) return Promise.reject(new Error('one reader at a time: await the previous next()'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private confirmed(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => reject(new TimeoutError('COMMAND_TIMEOUT', `${this.kind} not confirmed within ${timeoutMs} ms`)), timeoutMs) : null;
      const done = (err?: Error): void => {
        if (timer) clearTimeout(timer);
        this.confirm = null;
        if (err) reject(err);
        else resolve();
      };
      this.confirm = { resolve: () => done(), reject: done };
      this.conn.send([this.kind.toUpperCase(), ...this.names]);
    });
  }

  private onValue(value: RespValue): void {
    if (v.isErrorReply(value)) {
      const err = v.asBriseError(value);
      if (this.confirm) this.confirm.reject(err);
      else this.conn.destroy(new ConnectionError('PROTOCOL_ERROR', `error on a subscription: ${err.message}`, { cause: err }));
      return;
    }
    const parts = v.pushItems(value);
    const kind = v.asString(parts[0] ?? null).toLowerCase();
    if (kind === 'message' && parts.length === 3) this.deliver({ channel: v.asBuffer(parts[1]!), payload: v.asBuffer(parts[2]!) });
    else if (kind === 'pmessage' && parts.length === 4) {
      this.deliver({ pattern: v.asBuffer(parts[1]!), channel: v.asBuffer(parts[2]!), payload: v.asBuffer(parts[3]!) });
    } else if (kind === this.kind) this.onConfirmation();
    // Anything else (unsubscribe confirmations, pong, a future push type) is not ours to act on.
  }

  private onConfirmation(): void {
    this.unconfirmed--;
    if (this.unconfirmed === 0) this.confirm?.resolve();
  }

  private deliver(message: Message): void {
    if (this.waiter) {
      const { resolve } = this.waiter;
      this.waiter = null;
      resolve({ done: false, value: message });
      return;
    }
    this.buffered.push(message);
    if (!this.paused && this.buffered.length >= HIGH_WATER) {
      this.paused = true;
      this.conn.pause();
    }
  }

  private onEnd(err: ConnectionError): void {
    this.ended = err;
    this.onClosed?.();
    this.confirm?.reject(err);
    const waiter = this.waiter;
    this.waiter = null;
    if (!waiter) return;
    if (err.code === 'CLIENT_CLOSED') waiter.resolve({ done: true, value: undefined });
    else waiter.reject(err);
  }
}
