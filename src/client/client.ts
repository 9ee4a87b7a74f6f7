// The TypeScript client of BriseDB: typed methods over RESP to the master's TCP port. It also
// works against Redis for the commands both have (everything but COUNT and BEGIN/COMMIT/
// ROLLBACK). Owns one command connection; each subscription gets a connection of its own.
//
// Invariants:
// - Requests pipeline: a method sends at once and many may be in flight; replies are matched
//   in order (connection.ts). Calls made in one turn leave in one write.
// - A lost connection rejects every pending request with ConnectionError; none is re-sent
//   (its outcome is unknown). The next call reconnects, unless a transaction was open: a
//   fresh connection would silently run the rest of the transaction outside it. Then every
//   call rejects with TRANSACTION_LOST until rollback() has been called once per open level
//   (the server already discarded them; rollback() only says the caller knows).
// - Transaction depth counts BEGINs the server acknowledged minus COMMIT/ROLLBACKs it
//   acknowledged, on this client's methods. BEGIN sent through command() is not tracked.
import type { RespReplyParserLimits, RespValue } from '../protocol/resp_reply_parser.js';
import { ConnectionError } from './errors.js';
import { openSession, parseAddress, type Bytes, type Connection, type Endpoint, type SessionOptions } from './connection.js';
import { Pipeline } from './pipeline.js';
import { Subscription } from './subscriber.js';
import * as v from './values.js';

export type { Bytes } from './connection.js';
export type { Message } from './subscriber.js';
export type { ScanPage } from './values.js';
export { Pipeline, Subscription };
export { BriseError, ClientError, ConnectionError, LimitError, TimeoutError } from './errors.js';
export { signUrl } from './sign_url.js';

export interface DialOptions {
  /** AUTH password (requirepass). */
  password?: string;
  /** ACL user name, for servers that have them (sent with the password). */
  username?: string;
  /** Time to establish the connection (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Time from sending a command to its reply; 0 = none (default 0). */
  commandTimeoutMs?: number;
  /** Speak RESP3 (HELLO 3) instead of RESP2. */
  resp3?: boolean;
  /** Requests in flight on the connection before a call is refused (default 10000). */
  maxInFlight?: number;
  /** Bounds on replies (default: 512 MB bulks, 1 GB held); past them the connection closes with PROTOCOL_ERROR. */
  replyLimits?: Partial<RespReplyParserLimits>;
  /** Reconnect on the next call after the connection was lost outside a transaction (default true). */
  reconnect?: boolean;
}

export interface ScanOptions {
  match?: Bytes;
  count?: number;
}

const DEFAULTS = { connectTimeoutMs: 5000, commandTimeoutMs: 0, maxInFlight: 10_000 } as const;
/** How long close() waits for the replies of requests already sent. */
const CLOSE_GRACE_MS = 5000;

export class Client {
  private conn: Connection;
  private connecting: Promise<Connection> | null = null;
  private depth = 0;
  private transactionLost = false;
  private closedByUser = false;
  private readonly subscriptions = new Set<Subscription>();

  private constructor(
    readonly endpoint: Endpoint,
    private readonly options: SessionOptions,
    private readonly reconnect: boolean,
    conn: Connection,
  ) {
    this.conn = this.adopt(conn);
  }

  /** Connects to 'host:port' or ':port' (default 127.0.0.1:6380), authenticates if asked. */
  static async dial(addr = '127.0.0.1:6380', options: DialOptions = {}): Promise<Client> {
    const endpoint = parseAddress(addr);
    const session: SessionOptions = {
      connectTimeoutMs: positive(options.connectTimeoutMs, DEFAULTS.connectTimeoutMs, 'connectTimeoutMs'),
      commandTimeoutMs: options.commandTimeoutMs === 0 ? 0 : positive(options.commandTimeoutMs, DEFAULTS.commandTimeoutMs, 'commandTimeoutMs'),
      maxInFlight: positive(options.maxInFlight, DEFAULTS.maxInFlight, 'maxInFlight'),
      password: options.password,
      username: options.username,
      resp3: options.resp3 ?? false,
      replyLimits: options.replyLimits,
    };
    const conn = await openSession(endpoint, session);
    return new Client(endpoint, session, options.reconnect ?? true, conn);
  }

  /** Open transaction levels (BEGIN acknowledged, not yet committed or rolled back). */
  get transactionDepth(): number {
    return this.depth;
  }

  // --- strings -------------------------------------------------------------------------

  async set(key: Bytes, value: Bytes): Promise<void> {
    v.expectOk(await this.call(['SET', key, value]));
  }

  /** SET with a time to live in whole seconds (SET key value EX seconds). */
  async setEX(key: Bytes, value: Bytes, seconds: number): Promise<void> {
    v.expectOk(await this.call(['SET', key, value, 'EX', wholeNumber(seconds, 'seconds')]));
  }

  async get(key: Bytes): Promise<Buffer | null> {
    return v.asBufferOrNull(await this.call(['GET', key]));
  }

  async getString(key: Bytes): Promise<string | null> {
    return (await this.get(key))?.toString('utf8') ?? null;
  }

  async mget(...keys: Bytes[]): Promise<(Buffer | null)[]> {
    return v.asNullableBufferArray(await this.call(['MGET', ...keys]));
  }

  /** Sets several keys at once: an object, a Map or a list of [key, value] pairs. */
  async mset(entries: Record<string, Bytes> | Iterable<readonly [Bytes, Bytes]>): Promise<void> {
    const pairs = isIterable(entries) ? [...entries] : Object.entries(entries);
    v.expectOk(await this.call(['MSET', ...pairs.flat()]));
  }

  /** BriseDB only: how many live keys hold exactly this value. */
  async count(value: Bytes): Promise<number> {
    return v.asInteger(await this.call(['COUNT', value]));
  }

  // --- keys ------------------------------------------------------------------------------

  /** Deletes keys; resolves with how many existed. */
  async delete(...keys: Bytes[]): Promise<number> {
    return v.asInteger(await this.call(['DEL', ...keys]));
  }

  async exists(...keys: Bytes[]): Promise<number> {
    return v.asInteger(await this.call(['EXISTS', ...keys]));
  }

  /** Seconds to live: -1 = no expiry, -2 = no such key. */
  async ttl(key: Bytes): Promise<number> {
    return v.asInteger(await this.call(['TTL', key]));
  }

  /** Milliseconds to live: -1 = no expiry, -2 = no such key. */
  async pttl(key: Bytes): Promise<number> {
    return v.asInteger(await this.call(['PTTL', key]));
  }

  /** Sets a time to live; false when the key does not exist. */
  async expire(key: Bytes, seconds: number): Promise<boolean> {
    return v.asBoolean(await this.call(['EXPIRE', key, wholeNumber(seconds, 'seconds')]));
  }

  async pexpire(key: Bytes, milliseconds: number): Promise<boolean> {
    return v.asBoolean(await this.call(['PEXPIRE', key, wholeNumber(milliseconds, 'milliseconds')]));
  }

  /** Removes a time to live; false when there was none (or no key). */
  async persist(key: Bytes): Promise<boolean> {
    return v.asBoolean(await this.call(['PERSIST', key]));
  }

  /** The keys matching a glob pattern (bounded by the server). */
  async keys(pattern: Bytes): Promise<Buffer[]> {
    return v.asBufferArray(await this.call(['KEYS', pattern]));
  }

  /** One page of SCAN: start at cursor '0', stop when the returned cursor is '0'. */
  async scan(cursor: string | number, options: ScanOptions = {}): Promise<v.ScanPage> {
    const args: Bytes[] = ['SCAN', String(cursor)];
    if (options.match !== undefined) args.push('MATCH', options.match);
    if (options.count !== undefined) args.push('COUNT', wholeNumber(options.count, 'count'));
    return v.asScanPage(await this.call(args));
  }

  /** Every key, a SCAN page at a time (a key may come twice if the keyspace changes, as in Redis). */
  async *scanIterator(options: ScanOptions = {}): AsyncGenerator<Buffer, void, undefined> {
    let cursor = '0';
    do {
      const page = await this.scan(cursor, options);
      cursor = page.cursor;
      yield* page.keys;
    } while (cursor !== '0');
  }

  async dbsize(): Promise<number> {
    return v.asInteger(await this.call(['DBSIZE']));
  }

  /** 'PONG', or the message echoed back. */
  async ping(message?: Bytes): Promise<string> {
    return v.asString(await this.call(message === undefined ? ['PING'] : ['PING', message]));
  }

  // --- transactions ----------------------------------------------------------------------

  /** Opens a (nested) transaction level: later writes are seen by this client only until the outermost commit. */
  async begin(): Promise<void> {
    v.expectOk(await this.call(['BEGIN']));
    this.depth++;
  }

  /** Closes the innermost level into its parent; the outermost commit writes everything atomically. */
  async commit(): Promise<void> {
    v.expectOk(await this.call(['COMMIT']));
    this.depth = Math.max(0, this.depth - 1);
  }

  /** Discards the innermost level. After a lost connection it only closes the level locally. */
  async rollback(): Promise<void> {
    if (this.transactionLost) {
      this.depth = Math.max(0, this.depth - 1);
      if (this.depth === 0) this.transactionLost = false;
      return;
    }
    v.expectOk(await this.call(['ROLLBACK']));
    this.depth = Math.max(0, this.depth - 1);
  }

  // --- pub/sub ---------------------------------------------------------------------------

  /** Posts a message; resolves with the number of subscribers that received it. */
  async publish(channel: Bytes, message: Bytes): Promise<number> {
    return v.asInteger(await this.call(['PUBLISH', channel, message]));
  }

  /** Subscribes on a connection of its own; resolves once the server confirmed every channel. */
  subscribe(...channels: Bytes[]): Promise<Subscription> {
    return this.openSubscription('subscribe', channels);
  }

  /** Subscribes to glob patterns; messages carry the pattern that matched. */
  psubscribe(...patterns: Bytes[]): Promise<Subscription> {
    return this.openSubscription('psubscribe', patterns);
  }

  // --- the rest --------------------------------------------------------------------------

  /** Queues commands to send in one write with exec(). */
  pipeline(): Pipeline {
    return new Pipeline((list) => this.callMany(list));
  }

  /**
   * A signed, expiring URL of the HTTP API, made by the master with its --http-token (SIGN):
   * the path and query to append to the HTTP base URL. `target` is a blob key for GET, HEAD and
   * PUT, or a WebSocket path and query for WS. Offline, with the token: signUrl().
   */
  async sign(method: 'GET' | 'HEAD' | 'PUT' | 'WS', target: Bytes, seconds: number): Promise<string> {
    return v.asString(await this.call(['SIGN', method, target, wholeNumber(seconds, 'seconds')]));
  }

  /** Any command, for what the typed methods do not cover; resolves with the raw reply. */
  command(args: readonly Bytes[]): Promise<RespValue> {
    return this.call(args);
  }

  /**
   * Waits for the replies of requests already sent (up to `graceMs`, default 5 s), then closes
   * the connection and every subscription. Requests still unanswered reject with CLIENT_CLOSED.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.closedByUser) return;
    this.closedByUser = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.conn.close(options.graceMs ?? CLOSE_GRACE_MS);
  }

  // --- private ---------------------------------------------------------------------------

  private call(args: readonly Bytes[]): Promise<RespValue> {
    // The common case stays synchronous so that calls made in one turn share one write.
    if (this.usable()) return this.conn.call(args);
    return this.connection().then((conn) => conn.call(args));
  }

  private callMany(list: readonly (readonly Bytes[])[]): Promise<RespValue>[] {
    if (this.usable()) return this.conn.callMany(list);
    const ready = this.connection();
    const sent = ready.then((conn) => conn.callMany(list));
    return list.map((_, i) => sent.then((replies) => replies[i]!));
  }

  private usable(): boolean {
    return !this.conn.closed && !this.closedByUser && !this.transactionLost;
  }

  /** The live connection, reconnecting when allowed; rejects with why it is not allowed. */
  private connection(): Promise<Connection> {
    if (this.closedByUser) return Promise.reject(new ConnectionError('CLIENT_CLOSED', 'the client was closed'));
    if (this.transactionLost) {
      return Promise.reject(new ConnectionError('TRANSACTION_LOST', `the connection was lost inside a transaction (${this.depth} level(s) open): call rollback() for each`));
    }
    if (!this.conn.closed) return Promise.resolve(this.conn);
    if (!this.reconnect) return Promise.reject(new ConnectionError('CONNECTION_LOST', 'the connection was lost and reconnect is off'));
    this.connecting ??= openSession(this.endpoint, this.options).then(
      (conn) => {
        this.connecting = null;
        if (this.closedByUser) conn.destroy(new ConnectionError('CLIENT_CLOSED', 'the client was closed'));
        return (this.conn = this.adopt(conn));
      },
      (err: unknown) => {
        this.connecting = null;
        throw err;
      },
    );
    return this.connecting;
  }

  private adopt(conn: Connection): Connection {
    conn.onClose = () => {
      if (conn === this.conn && this.depth > 0 && !this.closedByUser) this.transactionLost = true;
    };
    return conn;
  }

  private async openSubscription(kind: 'subscribe' | 'psubscribe', names: Bytes[]): Promise<Subscription> {
    if (this.closedByUser) throw new ConnectionError('CLIENT_CLOSED', 'the client was closed');
    const sub = await Subscription.open(this.endpoint, this.options, kind, names);
    this.subscriptions.add(sub);
    sub.onClosed = () => this.subscriptions.delete(sub);
    return sub;
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function wholeNumber(value: number, name: string): string {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${name} must be an integer, got ${value}`);
  return String(value);
}

function isIterable(value: object): value is Iterable<readonly [Bytes, Bytes]> {
  return Symbol.iterator in value;
}
