// The WebSocket endpoints of the HTTP front end (uWebSockets.js):
//   /v1/subscribe?channels=a,b&patterns=news.*   pub/sub through the broker (every front end's
//                                                 publishes reach every subscriber)
//   /v1/wal?from=LSN[&format=json]               the committed WAL, from an LSN, then live
//   /v1/status                                   long operations' progress and a summary
//                                                 (ws_status.ts; given ctx.status)
// Owns: per socket, its subscriber id and subscriptions, or its WAL follow and the ack it holds
// back while the socket is backed up.
// Invariants:
//  - a socket is never used after its close handler ran (uWS throws on that): every async path
//    checks `closed` first, and close releases what the socket held (subscriptions, the follow,
//    a held-back ack);
//  - the WAL stream has no gap and no duplicate: each record is one frame carrying its LSN; a
//    frame uWS would drop (backpressure limit) closes the socket instead, so a client that sees
//    LSN n can resume with from=n+1;
//  - memory per socket is bounded: the WAL feed is acknowledged only while the socket's buffer
//    is under a watermark (maxBackpressure / 4), so at most one batch lands above it; a socket
//    whose buffer passes maxBackpressure anyway is closed with 1008 "slow consumer ..." (uWS's
//    own maxBackpressure/closeOnBackpressureLimit, set higher, are the backstop); pub/sub
//    deliveries cannot be held back, so a subscriber past maxBackpressure is closed the same way;
//  - client frames are bounded by maxPayload (uWS closes past it) and a socket holds at most
//    MAX_SUBSCRIPTIONS channels and patterns; a bad frame gets an error frame, not a close.
import { Buffer, isUtf8 } from 'node:buffer';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_socket_context_t } from 'uWebSockets.js';
import type { BrokerPort, Delivery } from '../db/ports.js';
import { WAL_FOLLOW_END, type FollowHandle, type WalFeed } from '../db/wal_feed.js';
import { encodePayload } from '../storage/wal_format.js';
import { GuardKind, OpCode, type Op, type WalRecord } from '../storage/types.js';
import { INTERNAL_TEXT, reportInternal } from '../runtime/errors.js';
import { registerStatusStream, type StatusSource } from './ws_status.js';

export interface WsContext {
  broker: BrokerPort;
  walFeed: WalFeed;
  nextSubscriberId(): number;
  /** The token check; false answers the upgrade with 401. */
  authorize(req: HttpRequest): boolean;
  /**
   * In place of authorize when given: the Origin check (CORS) and the token or a signed URL;
   * null admits the socket, else the refusal (its status line, code and message).
   */
  admit?(req: HttpRequest): { status: string; code: string; message: string } | null;
  /** Bytes a socket may have buffered before it is closed as a slow consumer (e.g. 16 MiB). */
  maxBackpressure: number;
  /** Largest frame a client may send (e.g. 1 MiB). */
  maxPayload: number;
  idleTimeoutSeconds: number;
  /** The sources of GET /v1/status (the ApiContext): given, /v1/status also upgrades to a stream. */
  status?: StatusSource;
}

/** Channels plus patterns one socket may hold. */
export const MAX_SUBSCRIPTIONS = 1024;
/** Longest channel or pattern name, in bytes. */
export const MAX_NAME_BYTES = 4096;
export const SLOW_CONSUMER_CODE = 1008;
/** Close codes: the server failed (1011); the request was refused (1008: policy). */
const INTERNAL_ERROR_CODE = 1011;
/** A WebSocket close reason is at most 123 bytes. */
const MAX_REASON_BYTES = 123;

interface SubscribeSocket {
  kind: 'subscribe';
  id: number;
  closed: boolean;
  /** What the query asked for, subscribed on open. */
  initialChannels: Uint8Array[];
  initialPatterns: Uint8Array[];
  channels: Set<string>;
  patterns: Set<string>;
}

interface WalSocket {
  kind: 'wal';
  closed: boolean;
  from: number;
  json: boolean;
  follow: FollowHandle | null;
  /** Resolves the held-back ack (set while the buffer is above the watermark). */
  resume: (() => void) | null;
}

class BadRequest extends Error {}

export function registerWebSockets(app: TemplatedApp, ctx: WsContext): void {
  const limits = {
    maxPayloadLength: ctx.maxPayload,
    idleTimeout: ctx.idleTimeoutSeconds,
    // The backstop only: our own check closes at ctx.maxBackpressure with a reason first. A
    // send uWS drops past its limit is answered by closing (a gap in the WAL stream is never
    // allowed), and closeOnBackpressureLimit makes uWS close it too.
    maxBackpressure: 2 * ctx.maxBackpressure + 1024 * 1024,
    closeOnBackpressureLimit: 1,
    sendPingsAutomatically: true,
  };
  app.ws<SubscribeSocket>('/v1/subscribe', {
    ...limits,
    upgrade: (res, req, context) => upgrade(res, req, context, ctx, () => subscribeData(req, ctx)),
    open: (ws) => openSubscribe(ws, ws.getUserData(), ctx),
    message: (ws, message, isBinary) => onSubscribeFrame(ws, ws.getUserData(), ctx, message, isBinary),
    close: (ws) => closeSubscribe(ws.getUserData(), ctx),
  });
  app.ws<WalSocket>('/v1/wal', {
    ...limits,
    upgrade: (res, req, context) => upgrade(res, req, context, ctx, () => walData(req)),
    open: (ws) => openWal(ws, ws.getUserData(), ctx),
    message: (ws) => sendJson(ws, ws.getUserData(), ctx, { error: 'the WAL stream takes no frames', code: 'BAD_FRAME' }),
    drain: (ws) => onWalDrain(ws, ws.getUserData(), ctx),
    close: (ws) => closeWal(ws.getUserData()),
  });
  if (ctx.status !== undefined) {
    registerStatusStream(app, ctx.status, { limits, upgrade: (res, req, context, data) => upgrade(res, req, context, ctx, data), refuse });
  }
}

// ---- upgrade ----------------------------------------------------------------------------------

/**
 * Checks the token and builds the socket's data from the request: uWS's req is valid only
 * during this synchronous call, so everything open() needs is copied here.
 */
function upgrade<T>(res: HttpResponse, req: HttpRequest, context: us_socket_context_t, ctx: WsContext, data: () => T): void {
  const refusal = ctx.admit !== undefined ? ctx.admit(req) : ctx.authorize(req) ? null : UNAUTHORIZED;
  if (refusal !== null) {
    refuse(res, refusal.status, refusal.code, refusal.message);
    return;
  }
  let userData: T;
  try {
    userData = data();
  } catch (err) {
    // A bug here answers 500 and is logged; it must not take the HTTP front end down.
    if (!(err instanceof BadRequest)) {
      reportInternal(err);
      refuse(res, '500 Internal Server Error', 'INTERNAL', INTERNAL_TEXT);
      return;
    }
    refuse(res, '400 Bad Request', 'BAD_ARGUMENT', err.message);
    return;
  }
  res.upgrade(
    userData,
    req.getHeader('sec-websocket-key'),
    req.getHeader('sec-websocket-protocol'),
    req.getHeader('sec-websocket-extensions'),
    context,
  );
}

const UNAUTHORIZED = { status: '401 Unauthorized', code: 'UNAUTHORIZED', message: 'this server needs Authorization: Bearer <token>' };

function refuse(res: HttpResponse, status: string, code: string, message: string): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('Content-Type', 'application/json');
    if (status.startsWith('401')) res.writeHeader('WWW-Authenticate', 'Bearer');
    res.end(JSON.stringify({ error: message, code }));
  });
}

function queryOf(req: HttpRequest): URLSearchParams {
  return new URLSearchParams(req.getQuery() ?? '');
}

function subscribeData(req: HttpRequest, ctx: WsContext): SubscribeSocket {
  const q = queryOf(req);
  const channels = names(q.get('channels'));
  const patterns = names(q.get('patterns'));
  if (channels.length + patterns.length > MAX_SUBSCRIPTIONS) {
    throw new BadRequest(`more than ${MAX_SUBSCRIPTIONS} channels and patterns`);
  }
  return {
    kind: 'subscribe',
    id: ctx.nextSubscriberId(),
    closed: false,
    initialChannels: channels.map(utf8),
    initialPatterns: patterns.map(utf8),
    channels: new Set(),
    patterns: new Set(),
  };
}

/** A comma-separated list; empty items are skipped. */
function names(list: string | null): string[] {
  if (list === null) return [];
  const out = list.split(',').filter((s) => s.length > 0);
  for (const n of out) checkName(n);
  return out;
}

function checkName(name: string): void {
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new BadRequest(`a channel or pattern is longer than ${MAX_NAME_BYTES} bytes`);
}

function walData(req: HttpRequest): WalSocket {
  const q = queryOf(req);
  const fromText = q.get('from');
  let from = WAL_FOLLOW_END;
  if (fromText !== null && fromText !== '') {
    if (!/^\d{1,16}$/.test(fromText) || !Number.isSafeInteger(Number(fromText))) {
      throw new BadRequest(`from=${fromText.slice(0, 40)}: an LSN is a non-negative integer`);
    }
    from = Number(fromText);
  }
  const format = q.get('format') ?? 'cbor';
  if (format !== 'cbor' && format !== 'json') throw new BadRequest(`format=${format.slice(0, 40)}: cbor or json`);
  return { kind: 'wal', closed: false, from, json: format === 'json', follow: null, resume: null };
}

// ---- /v1/subscribe ----------------------------------------------------------------------------

function openSubscribe(ws: WebSocket<SubscribeSocket>, d: SubscribeSocket, ctx: WsContext): void {
  if (d.initialChannels.length + d.initialPatterns.length === 0) return;
  void subscribe(ws, d, ctx, d.initialChannels, d.initialPatterns);
  d.initialChannels = [];
  d.initialPatterns = [];
}

async function subscribe(ws: WebSocket<SubscribeSocket>, d: SubscribeSocket, ctx: WsContext, channels: Uint8Array[], patterns: Uint8Array[]): Promise<void> {
  const fresh = (names: Uint8Array[], have: Set<string>): number => names.filter((n) => !have.has(text(n))).length;
  if (d.channels.size + d.patterns.size + fresh(channels, d.channels) + fresh(patterns, d.patterns) > MAX_SUBSCRIPTIONS) {
    sendJson(ws, d, ctx, { error: `a socket holds at most ${MAX_SUBSCRIPTIONS} channels and patterns`, code: 'LIMIT' });
    return;
  }
  // Recorded before the await, so a close meanwhile unsubscribes them too.
  const added = { channels: channels.map(text).filter((n) => !d.channels.has(n)), patterns: patterns.map(text).filter((n) => !d.patterns.has(n)) };
  for (const c of added.channels) d.channels.add(c);
  for (const p of added.patterns) d.patterns.add(p);
  try {
    await ctx.broker.subscribe(d.id, channels, patterns, (delivery) => deliver(ws, d, ctx, delivery));
  } catch (err) {
    for (const c of added.channels) d.channels.delete(c);
    for (const p of added.patterns) d.patterns.delete(p);
    sendError(ws, d, ctx, err);
    return;
  }
  if (d.closed) {
    // Closed while subscribing: close() unsubscribed what it knew, which may have raced ahead.
    ctx.broker.unsubscribe(d.id).catch(() => undefined);
    return;
  }
  sendJson(ws, d, ctx, { op: 'subscribed', channels: channels.map(text), patterns: patterns.map(text), count: d.channels.size + d.patterns.size });
}

async function unsubscribe(ws: WebSocket<SubscribeSocket>, d: SubscribeSocket, ctx: WsContext, channels?: Uint8Array[], patterns?: Uint8Array[]): Promise<void> {
  const all = channels === undefined && patterns === undefined;
  const gone = { channels: all ? [...d.channels] : (channels ?? []).map(text), patterns: all ? [...d.patterns] : (patterns ?? []).map(text) };
  for (const c of gone.channels) d.channels.delete(c);
  for (const p of gone.patterns) d.patterns.delete(p);
  try {
    await ctx.broker.unsubscribe(d.id, channels, patterns);
  } catch (err) {
    sendError(ws, d, ctx, err);
    return;
  }
  sendJson(ws, d, ctx, { op: 'unsubscribed', ...gone, count: d.channels.size + d.patterns.size });
}

function deliver(ws: WebSocket<SubscribeSocket>, sd: SubscribeSocket, ctx: WsContext, d: Delivery): void {
  if (sd.closed) return;
  const binary = !isUtf8(d.channel) || !isUtf8(d.payload) || (d.pattern !== undefined && !isUtf8(d.pattern));
  // Base64 for all three when any is not UTF-8, so one field says how to read the frame.
  const enc = binary ? (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64') : text;
  const frame: Record<string, string> = { channel: enc(d.channel), payload: enc(d.payload) };
  if (d.pattern !== undefined) frame.pattern = enc(d.pattern);
  if (binary) frame.encoding = 'base64';
  sendJson(ws, sd, ctx, frame);
}

function onSubscribeFrame(ws: WebSocket<SubscribeSocket>, d: SubscribeSocket, ctx: WsContext, message: ArrayBuffer, isBinary: boolean): void {
  let frame: ClientFrame;
  try {
    // The ArrayBuffer is valid only during this call: parsed now, nothing kept of it.
    frame = parseFrame(message, isBinary);
  } catch (err) {
    sendJson(ws, d, ctx, { error: err instanceof Error ? err.message : String(err), code: 'BAD_FRAME' });
    return;
  }
  switch (frame.op) {
    case 'subscribe':
      void subscribe(ws, d, ctx, frame.channels ?? [], frame.patterns ?? []);
      return;
    case 'unsubscribe':
      void unsubscribe(ws, d, ctx, frame.channels, frame.patterns);
      return;
    case 'publish':
      ctx.broker.publish(frame.channel, frame.payload).then(
        (receivers) => sendJson(ws, d, ctx, { op: 'published', receivers }),
        (err: unknown) => sendError(ws, d, ctx, err),
      );
      return;
    case 'ping':
      sendJson(ws, d, ctx, { op: 'pong' });
      return;
  }
}

function closeSubscribe(d: SubscribeSocket, ctx: WsContext): void {
  d.closed = true;
  if (d.channels.size + d.patterns.size > 0) ctx.broker.unsubscribe(d.id).catch(() => undefined);
  d.channels.clear();
  d.patterns.clear();
}

// ---- client frames ----------------------------------------------------------------------------

type ClientFrame =
  | { op: 'subscribe'; channels?: Uint8Array[]; patterns?: Uint8Array[] }
  | { op: 'unsubscribe'; channels?: Uint8Array[]; patterns?: Uint8Array[] }
  | { op: 'publish'; channel: Uint8Array; payload: Uint8Array }
  | { op: 'ping' };

/** Throws an Error whose message is what the client is told. */
export function parseFrame(message: ArrayBuffer, isBinary: boolean): ClientFrame {
  if (isBinary) throw new Error('frames are JSON text');
  const bytes = new Uint8Array(message);
  if (!isUtf8(bytes)) throw new Error('the frame is not valid UTF-8');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new Error('the frame is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('a frame is a JSON object with an "op"');
  const o = v as Record<string, unknown>;
  const base64 = o.encoding === 'base64';
  if (o.encoding !== undefined && !base64) throw new Error('"encoding" is "base64" or absent');
  switch (o.op) {
    case 'subscribe':
    case 'unsubscribe': {
      const channels = nameList(o.channels, 'channels', base64);
      const patterns = nameList(o.patterns, 'patterns', base64);
      if (o.op === 'subscribe' && (channels?.length ?? 0) + (patterns?.length ?? 0) === 0) {
        throw new Error('subscribe needs "channels" or "patterns"');
      }
      return { op: o.op, ...(channels ? { channels } : {}), ...(patterns ? { patterns } : {}) };
    }
    case 'publish':
      return { op: 'publish', channel: field(o.channel, 'channel', base64), payload: field(o.payload, 'payload', base64) };
    case 'ping':
      return { op: 'ping' };
    default:
      throw new Error(`unknown op ${JSON.stringify(o.op)?.slice(0, 40) ?? 'undefined'}: subscribe, unsubscribe, publish or ping`);
  }
}

function nameList(v: unknown, what: string, base64: boolean): Uint8Array[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new Error(`"${what}" is an array of strings`);
  if (v.length > MAX_SUBSCRIPTIONS) throw new Error(`more than ${MAX_SUBSCRIPTIONS} ${what}`);
  return v.map((n) => {
    const b = field(n, what, base64);
    if (b.length === 0 || b.length > MAX_NAME_BYTES) throw new Error(`a name in "${what}" is empty or longer than ${MAX_NAME_BYTES} bytes`);
    return b;
  });
}

function field(v: unknown, what: string, base64: boolean): Uint8Array {
  if (typeof v !== 'string') throw new Error(`"${what}" is a string`);
  return base64 ? Buffer.from(v, 'base64') : utf8(v);
}

// ---- /v1/wal ----------------------------------------------------------------------------------

function openWal(ws: WebSocket<WalSocket>, d: WalSocket, ctx: WsContext): void {
  // The committer may hold 4x the socket's limit for us while we hold back acks (16 MiB gives
  // its default of 64 MiB); past it, it drops the feed and we close as a slow consumer.
  const limits = { maxLagBytes: lagBound(ctx) };
  ctx.walFeed.follow(d.from, (records) => sendRecords(ws, d, ctx, records), (why) => onWalEnd(ws, d, ctx, why), limits).then(
    (handle) => {
      if (d.closed) handle.cancel();
      else d.follow = handle;
    },
    (err: unknown) => {
      if (d.closed) return;
      const e = err as { code?: unknown; message?: unknown };
      const refused = e.code === 'BAD_ARGUMENT';
      const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
      if (code === 'INTERNAL') reportInternal(err);
      ws.end(refused ? SLOW_CONSUMER_CODE : INTERNAL_ERROR_CODE, reason(`${code}: ${code === 'INTERNAL' ? INTERNAL_TEXT : String(e.message ?? err)}`));
    },
  );
}

/**
 * One frame per record. Resolves (and so lets the feed acknowledge the batch) at once while
 * the socket's buffer is under the watermark, otherwise on drain: a slow client slows its feed.
 */
function sendRecords(ws: WebSocket<WalSocket>, d: WalSocket, ctx: WsContext, records: WalRecord[]): Promise<void> | void {
  if (d.closed) return;
  let ok = true;
  ws.cork(() => {
    for (const r of records) {
      const status = d.json ? ws.send(JSON.stringify(recordJson(r)), false) : ws.send(encodePayload(r), true);
      // uWS may have closed it (closeOnBackpressureLimit): then it must not be touched again.
      if (d.closed || status === 2 || ws.getBufferedAmount() > ctx.maxBackpressure) {
        ok = false;
        return;
      }
    }
  });
  if (!ok) {
    closeSlow(ws, d, ctx);
    return;
  }
  if (ws.getBufferedAmount() <= watermark(ctx)) return;
  return new Promise<void>((resolve) => {
    d.resume = resolve;
  });
}

function onWalDrain(ws: WebSocket<WalSocket>, d: WalSocket, ctx: WsContext): void {
  if (d.resume !== null && ws.getBufferedAmount() <= watermark(ctx)) {
    const resume = d.resume;
    d.resume = null;
    resume();
  }
}

function onWalEnd(ws: WebSocket<WalSocket>, d: WalSocket, ctx: WsContext, why: string | null): void {
  if (d.closed || why === null) return;
  // The committer dropped us for lagging or not acknowledging: that is a slow consumer too.
  if (why.startsWith('QUEUE_FULL')) ws.end(SLOW_CONSUMER_CODE, `slow consumer: more than ${lagBound(ctx)} bytes behind the WAL`);
  else if (why.startsWith('TIMEOUT')) ws.end(SLOW_CONSUMER_CODE, reason(`slow consumer: ${why}`));
  else ws.end(INTERNAL_ERROR_CODE, reason(why));
}

function closeWal(d: WalSocket): void {
  d.closed = true;
  d.follow?.cancel();
  d.follow = null;
  // Let the feed's consumer loop finish; the ack it then sends is for a cancelled follow.
  const resume = d.resume;
  d.resume = null;
  resume?.();
}

function lagBound(ctx: WsContext): number {
  return 4 * ctx.maxBackpressure;
}

function watermark(ctx: WsContext): number {
  return Math.floor(ctx.maxBackpressure / 4);
}

function closeSlow(ws: WebSocket<WalSocket> | WebSocket<SubscribeSocket>, d: { closed: boolean }, ctx: WsContext): void {
  if (d.closed) return;
  ws.end(SLOW_CONSUMER_CODE, reason(`slow consumer: more than ${ctx.maxBackpressure} bytes buffered`));
}

// ---- JSON form of a WAL record ----------------------------------------------------------------

export function recordJson(r: WalRecord): Record<string, unknown> {
  return { lsn: r.lsn, time: r.timeMs, kind: r.kind, ops: r.ops.map(opJson) };
}

function opJson(op: Op): Record<string, unknown> {
  if (op.code === OpCode.Flush) return { op: 'flush' };
  if (op.code === OpCode.Retire) return { op: 'retire', volume: op.volume };
  const key = isUtf8(op.key) ? { key: text(op.key) } : { key: Buffer.from(op.key).toString('base64'), encoding: 'base64' };
  switch (op.code) {
    case OpCode.Set:
      return { op: 'set', ...key, ...op.address, expiresAt: op.expiresAt };
    case OpCode.Del:
      return { op: 'del', ...key };
    case OpCode.Expire:
      return { op: 'expire', ...key, expiresAt: op.expiresAt };
    case OpCode.DelIf:
      return { op: 'delIf', ...key, volume: op.volume, offset: op.offset };
    case OpCode.SetIf:
      return {
        op: 'setIf',
        ...key,
        ...op.address,
        expiresAt: op.expiresAt,
        flags: op.flags,
        expectVolume: op.expectVolume,
        expectOffset: op.expectOffset,
      };
    case OpCode.MoveIf:
      return { op: 'moveIf', ...key, fromVolume: op.fromVolume, fromOffset: op.fromOffset, ...op.address };
    case OpCode.Guard:
      return op.kind === GuardKind.Absent
        ? { op: 'guard', ...key, kind: 'absent' }
        : { op: 'guard', ...key, kind: op.kind === GuardKind.Live ? 'live' : 'same', volume: op.volume, offset: op.offset, expiresAt: op.expiresAt };
  }
}

// ---- helpers ----------------------------------------------------------------------------------

/**
 * Sends a JSON text frame (corked: it may run outside a uWS callback, after an await); closes
 * a socket whose buffer passed the limit. `d` is the socket's data, kept by the caller because
 * a closed uWS socket throws on every call, getUserData included.
 */
function sendJson(ws: WebSocket<SubscribeSocket> | WebSocket<WalSocket>, d: { closed: boolean }, ctx: WsContext, value: unknown): void {
  if (d.closed) return;
  const frame = JSON.stringify(value);
  let status = 0;
  ws.cork(() => {
    status = ws.send(frame, false);
  });
  if (d.closed || status === 2 || ws.getBufferedAmount() > ctx.maxBackpressure) closeSlow(ws, d, ctx);
}

function sendError(ws: WebSocket<SubscribeSocket>, d: SubscribeSocket, ctx: WsContext, err: unknown): void {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
  if (code === 'INTERNAL') reportInternal(err);
  sendJson(ws, d, ctx, { error: code === 'INTERNAL' ? INTERNAL_TEXT : String(e.message ?? err), code });
}

/** A close reason cut to the 123 bytes the protocol allows, on a character boundary. */
function reason(s: string): string {
  let out = s;
  while (Buffer.byteLength(out) > MAX_REASON_BYTES) out = out.slice(0, -1);
  return out;
}

function utf8(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

function text(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
}
