// One RESP connection of the client: a socket, a reply parser, the queue of requests waiting
// for their replies, and the write batching. It knows nothing of commands; client.ts and
// subscriber.ts give it argument vectors and read RespValues back.
//
// Invariants:
// - Replies are matched to requests in order: the queue holds every request sent and not yet
//   answered, including timed-out ones (their slot stays, marked settled, so their late reply
//   is read and dropped instead of being handed to the next request).
// - At most `maxInFlight` slots; past it a call rejects with LimitError and sends nothing.
// - Every call settles exactly once: by its reply, its timeout, or the connection's end. When
//   the connection ends, for whatever reason, every unsettled request rejects with a
//   ConnectionError in the same turn: nothing ever hangs on a dead socket.
// - Writes made in one turn of the event loop leave in one batch (cork, uncork on nextTick),
//   so a pipeline of N commands costs one writev, not N syscalls.
// - Unsolicited values (RESP3 push frames; RESP2 pub/sub messages when nothing is pending) go
//   to `onPush`; with no handler they mean the stream is out of step, and the connection is
//   closed rather than risk giving a request someone else's reply.
import * as net from 'node:net';
import { RespError, RespPush, RespReplyParser, type RespReplyParserLimits, type RespValue } from '../protocol/resp_reply_parser.js';
import { encodeCommand } from '../protocol/resp_writer.js';
import { BriseError, ConnectionError, LimitError, TimeoutError } from './errors.js';

export type Bytes = Uint8Array | string;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface ConnectionOptions {
  /** Time to establish the TCP connection. */
  readonly connectTimeoutMs: number;
  /** Time from sending a command to its reply; 0 = no limit. */
  readonly commandTimeoutMs: number;
  /** Requests sent and not yet answered on this connection. */
  readonly maxInFlight: number;
  /** Bounds on what the server may send (bulk size, aggregate count, nesting, bytes held). */
  readonly replyLimits?: Partial<RespReplyParserLimits> | undefined;
}

export const DEFAULT_PORT = 6380;

interface Pending {
  readonly resolve: (value: RespValue) => void;
  readonly reject: (err: Error) => void;
  /** Date.now() past which the request times out; Infinity when there is no limit. */
  readonly deadline: number;
  settled: boolean;
}

/** Parses 'host:port', ':port', '[v6]:port', 'host' (default port 6380). */
export function parseAddress(addr: string): Endpoint {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr);
  if (bracket) return { host: bracket[1]!, port: parsePort(bracket[2], addr) };
  const colon = addr.lastIndexOf(':');
  if (colon < 0) return { host: addr === '' ? '127.0.0.1' : addr, port: DEFAULT_PORT };
  if (addr.indexOf(':') !== colon) return { host: addr, port: DEFAULT_PORT }; // a bare IPv6 address
  const host = addr.slice(0, colon);
  return { host: host === '' ? '127.0.0.1' : host, port: parsePort(addr.slice(colon + 1), addr) };
}

function parsePort(text: string | undefined, addr: string): number {
  if (text === undefined || text === '') return DEFAULT_PORT;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`bad port in address '${addr}'`);
  return port;
}

export class Connection {
  /** Values nobody asked for: push frames, and pub/sub messages of a subscriber connection. */
  onPush: ((value: RespValue) => void) | null = null;
  /** Called once when the connection ends, with the reason (CLIENT_CLOSED when asked to). */
  onClose: ((err: ConnectionError) => void) | null = null;

  private readonly parser: RespReplyParser;
  private readonly queue: Pending[] = [];
  private head = 0;
  private corked = false;
  private timer: NodeJS.Timeout | null = null;
  private ended: ConnectionError | null = null;
  private socketError: Error | null = null;
  /** Set by close(): called when the last pending reply has arrived. */
  private onIdle: (() => void) | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly options: ConnectionOptions,
    readonly endpoint: Endpoint,
  ) {
    this.parser = new RespReplyParser(options.replyLimits);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.socketError = err;
    });
    socket.on('close', () => this.fail(lostError(this.socketError)));
  }

  /** Opens a TCP connection; rejects with ConnectionError (refused) or TimeoutError. */
  static open(endpoint: Endpoint, options: ConnectionOptions): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: endpoint.host, port: endpoint.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TimeoutError('CONNECT_TIMEOUT', `connect to ${show(endpoint)} timed out after ${options.connectTimeoutMs} ms`));
      }, options.connectTimeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new ConnectionError('CONNECTION_REFUSED', `cannot connect to ${show(endpoint)}: ${err.message}`, { cause: err }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new Connection(socket, options, endpoint));
      });
    });
  }

  get closed(): boolean {
    return this.ended !== null;
  }

  get inFlight(): number {
    return this.queue.length - this.head;
  }

  /** Sends a command; resolves with its reply, rejects with BriseError on an error reply. */
  call(args: readonly Bytes[]): Promise<RespValue> {
    if (this.ended) return Promise.reject(this.ended);
    if (this.inFlight >= this.options.maxInFlight) {
      return Promise.reject(new LimitError('TOO_MANY_IN_FLIGHT', `more than ${this.options.maxInFlight} requests in flight on one connection`));
    }
    return new Promise((resolve, reject) => {
      const timeout = this.options.commandTimeoutMs;
      this.queue.push({ resolve, reject, deadline: timeout > 0 ? Date.now() + timeout : Infinity, settled: false });
      this.write(args);
      if (timeout > 0 && this.timer === null) this.armTimer();
    });
  }

  /**
   * Sends many commands in one batch, or none of them: past the in-flight limit every one
   * rejects with LimitError, so a pipeline is never half sent.
   */
  callMany(list: readonly (readonly Bytes[])[]): Promise<RespValue>[] {
    if (!this.ended && this.inFlight + list.length > this.options.maxInFlight) {
      const err = new LimitError('TOO_MANY_IN_FLIGHT', `${list.length} commands would pass the limit of ${this.options.maxInFlight} in flight`);
      return list.map(() => Promise.reject(err));
    }
    return list.map((args) => this.call(args));
  }

  /** Sends a command whose replies are not queued: they arrive through onPush (SUBSCRIBE). */
  send(args: readonly Bytes[]): void {
    if (this.ended) throw this.ended;
    this.write(args);
  }

  /** Stops reading (a slow consumer): TCP backpressure then reaches the server. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /**
   * Closes gracefully: requests already sent get their replies (up to `graceMs`), then the
   * socket ends. Anything still pending after that rejects with CLIENT_CLOSED.
   */
  async close(graceMs: number): Promise<void> {
    if (this.ended) return;
    if (this.inFlight > 0) await this.drained(graceMs);
    this.fail(new ConnectionError('CLIENT_CLOSED', 'the client was closed'));
  }

  /** Ends the connection now: every pending request rejects with `err`. */
  destroy(err: ConnectionError): void {
    this.fail(err);
  }

  private write(args: readonly Bytes[]): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(encodeCommand(args));
  }

  private onData(chunk: Buffer): void {
    this.parser.push(chunk);
    for (;;) {
      let next: { value: RespValue } | null;
      try {
        next = this.parser.next();
      } catch (err) {
        this.fail(new ConnectionError('PROTOCOL_ERROR', `bad reply from ${show(this.endpoint)}: ${messageOf(err)}`, { cause: err }));
        return;
      }
      if (next === null || this.ended) return;
      this.dispatch(next.value);
    }
  }

  private dispatch(value: RespValue): void {
    if (value instanceof RespPush) {
      this.onPush?.(value);
      return;
    }
    const pending = this.queue[this.head];
    if (pending === undefined) {
      if (this.onPush) this.onPush(value);
      else this.fail(new ConnectionError('PROTOCOL_ERROR', `unsolicited reply from ${show(this.endpoint)}`));
      return;
    }
    this.shift();
    if (pending.settled) return; // timed out earlier: its late reply is dropped here
    pending.settled = true;
    if (value instanceof RespError) pending.reject(new BriseError(value.message, value.code));
    else pending.resolve(value);
  }

  private shift(): void {
    this.queue[this.head] = undefined as unknown as Pending; // let the closures be collected
    this.head++;
    // Compact now and then rather than shift() per reply (O(n) each on a long pipeline).
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
      this.onIdle?.();
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  /** One timer for the whole queue: deadlines grow in queue order, so the oldest is next. */
  private armTimer(): void {
    const next = this.firstUnsettled();
    if (next === undefined || next.deadline === Infinity) return;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, next.deadline - Date.now()));
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = null;
    const now = Date.now();
    for (let i = this.head; i < this.queue.length; i++) {
      const pending = this.queue[i]!;
      if (pending.settled) continue;
      if (pending.deadline > now) break;
      pending.settled = true;
      pending.reject(new TimeoutError('COMMAND_TIMEOUT', `no reply from ${show(this.endpoint)} within ${this.options.commandTimeoutMs} ms`));
    }
    this.armTimer();
  }

  private firstUnsettled(): Pending | undefined {
    for (let i = this.head; i < this.queue.length; i++) if (!this.queue[i]!.settled) return this.queue[i];
    return undefined;
  }

  private drained(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        clearTimeout(timer);
        this.onIdle = null;
        resolve();
      };
      timer = setTimeout(finish, graceMs);
      this.onIdle = finish;
    });
  }

  private fail(err: ConnectionError): void {
    if (this.ended) return;
    this.ended = err;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const pending = this.queue.slice(this.head);
    this.queue.length = 0;
    this.head = 0;
    for (const p of pending) {
      if (p.settled) continue;
      p.settled = true;
      p.reject(err);
    }
    this.socket.destroy();
    this.onIdle?.();
    this.onClose?.(err);
  }
}

function lostError(cause: Error | null): ConnectionError {
  const why = cause ? `: ${cause.message}` : '';
  return new ConnectionError('CONNECTION_LOST', `connection lost${why}`, cause ? { cause } : undefined);
}

function show(endpoint: Endpoint): string {
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}


export interface SessionOptions extends ConnectionOptions {
  readonly password?: string | undefined;
  readonly username?: string | undefined;
  /** Speak RESP3 (HELLO 3): pub/sub messages come as push frames. */
  readonly resp3: boolean;
}

/**
 * Opens a connection and authenticates / switches protocol before anything else is sent. The
 * whole dial, handshake included, is bounded by connectTimeoutMs: a server that accepts and
 * never answers fails the dial with CONNECT_TIMEOUT instead of hanging it.
 */
export async function openSession(endpoint: Endpoint, options: SessionOptions): Promise<Connection> {
  const started = Date.now();
  const conn = await Connection.open(endpoint, options);
  const handshake = handshakeCommand(options);
  if (handshake === null) return conn;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const left = Math.max(0, options.connectTimeoutMs - (Date.now() - started));
    timer = setTimeout(() => reject(new TimeoutError('CONNECT_TIMEOUT', `no answer to ${handshake[0]} from ${show(endpoint)} within ${options.connectTimeoutMs} ms`)), left);
  });
  try {
    await Promise.race([conn.call(handshake), timeout]);
  } catch (err) {
    conn.destroy(new ConnectionError('CLIENT_CLOSED', 'handshake failed'));
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return conn;
}

function handshakeCommand(options: SessionOptions): string[] | null {
  const { password, username } = options;
  if (options.resp3) return password === undefined ? ['HELLO', '3'] : ['HELLO', '3', 'AUTH', username ?? 'default', password];
  if (password === undefined) return null;
  return username === undefined ? ['AUTH', password] : ['AUTH', username, password];
}
