// The blob routes of the HTTP front end: PUT, GET, HEAD and DELETE of /v1/blobs/{key}.
// Bodies stream both ways in constant memory:
// - PUT: uWS hands the body in chunks; they queue (bounded) for the engine's put, which streams
//   them to the volume writer, and the socket is paused while the queue is full; the needle's
//   region is reserved from Content-Length up front, so a body without one is 411 (HTTP lets a
//   server require it); 201 only once the needle is fsynced and the WAL record committed.
// - GET: the engine streams the value through its read port into one reused buffer, and each
//   chunk is written with tryEnd; when the socket is full the loop waits for onWritable. A
//   full-body GET has the needle's CRC checked as it goes, and the connection is cut instead
//   of finishing a response whose bytes do not match. No route here opens a volume file.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Condition, Engine } from '../db/engine.js';
import { valueLengthOf, type IndexEntry } from '../storage/types.js';
import { decodeBlobKey } from '../protocol/http_keys.js';
import { contentRange, multipartByteranges, parseRange, unsatisfiedRange, type ByteRange } from '../protocol/http_range.js';
import { formatTtlSeconds, httpDate, parseContentLength, parseQuery, parseTtl } from '../protocol/http_params.js';
import { etagOf, ifMatchPasses, ifNoneMatchHits, parseEtagAddress, parsePreconditions } from '../protocol/http_etag.js';
import { sendError, sendFailure, statusLine, watchAbort, type ResponseState } from './http_util.js';
import { streamChunks } from '../runtime/buffer_pool.js';
import { StoreError } from '../runtime/errors.js';

export const BLOB_PREFIX = '/v1/blobs/';
/** Body bytes queued for the volume writer before the socket is paused. */
const BODY_HIGH_WATER = 3 * 1024 * 1024;
const BODY_LOW_WATER = 1024 * 1024;
/** GET reads this much per chunk, into one reused buffer. */
const READ_CHUNK = 1024 * 1024;
/** Chunks written in one go before yielding to other connections. */
const CHUNKS_PER_TURN = 16;

export interface BlobContext {
  engine: Engine;
  maxKeyLength: number;
  maxBodySize: number;
  now(): number;
  /** Called once per answered request, for metrics. */
  observe(route: string, method: string, status: number, bytesIn: number, bytesOut: number, startedAt: number): void;
}

// ---- PUT --------------------------------------------------------------------------------

/**
 * The request body as an async iterable for the volume writer, with back-pressure. uWS reuses a
 * chunk's memory after its callback, so the bytes are copied, straight into 1 MiB buffers of
 * the thread's stream pool, which the volume writer hands back: a body of any size moves
 * through a few recycled buffers.
 */
class BodyQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private filling: Uint8Array | null = null;
  private used = 0;
  private queued = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private paused = false;
  received = 0;

  constructor(private readonly res: HttpResponse) {}

  push(chunk: ArrayBuffer, last: boolean): void {
    const bytes = new Uint8Array(chunk);
    let at = 0;
    while (at < bytes.length) {
      this.filling ??= new Uint8Array(streamChunks.take());
      const n = Math.min(this.filling.length - this.used, bytes.length - at);
      this.filling.set(bytes.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === this.filling.length) this.seal();
    }
    this.received += bytes.length;
    if (last) {
      if (this.filling !== null && this.used > 0) this.seal();
      this.ended = true;
    }
    if (!this.paused && this.queued > BODY_HIGH_WATER && !last) {
      this.paused = true;
      this.res.pause();
    }
    this.wakeUp();
  }

  private seal(): void {
    const full = this.used === this.filling!.length ? this.filling! : this.filling!.subarray(0, this.used);
    this.chunks.push(full);
    this.queued += full.length;
    this.filling = null;
    this.used = 0;
  }

  fail(err: Error): void {
    this.failure = err;
    this.wakeUp();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        this.queued -= chunk.length;
        if (this.paused && this.queued < BODY_LOW_WATER && this.failure === null) {
          this.paused = false;
          this.res.resume();
        }
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

export function putBlob(res: HttpResponse, req: HttpRequest, ctx: BlobContext): void {
  const startedAt = ctx.now();
  const url = req.getUrl();
  const query = parseQuery(req.getQuery());
  const lengthHeader = req.getHeader('content-length');
  const preconditions = parsePreconditions(req.getHeader('if-match') || undefined, req.getHeader('if-none-match') || undefined);
  const body = new BodyQueue(res);
  const state = watchAbort(res, () => body.fail(new StoreError('ABORTED', 'the client went away during the upload')));
  const answer = (status: number, code: string, message: string): void => {
    // The body was not read: close the connection after the answer so the client stops sending.
    if (state.aborted || state.done) return;
    state.done = true;
    res.cork(() => {
      res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ error: message, code }), true);
    });
    ctx.observe('blobs', 'PUT', status, 0, 0, startedAt);
  };
  const key = decodeBlobKey(url.slice(BLOB_PREFIX.length), ctx.maxKeyLength);
  if (!key.ok) return answer(key.status, key.code, key.message);
  const length = parseContentLength(lengthHeader || undefined);
  if (!length.ok) return answer('tooLarge' in length && length.tooLarge ? 413 : 400, 'tooLarge' in length && length.tooLarge ? 'VALUE_TOO_LARGE' : 'BAD_REQUEST', length.message);
  if (length.length === null) {
    return answer(411, 'LENGTH_REQUIRED', 'a PUT needs a Content-Length: the blob\'s place on disk is reserved from it before the body streams in');
  }
  if (length.length > ctx.maxBodySize) {
    return answer(413, 'VALUE_TOO_LARGE', `body of ${length.length} bytes; the limit is ${ctx.maxBodySize}`);
  }
  let expiresAt = 0;
  const ttl = query.get('ttl');
  if (ttl !== null) {
    const parsed = parseTtl(ttl);
    if (!parsed.ok) return answer(400, 'BAD_TTL', parsed.message);
    expiresAt = ctx.now() + parsed.ms;
  }
  res.onData((chunk, last) => body.push(chunk, last));
  void resolveCondition(ctx, key.key, preconditions)
    .then((condition) => {
      if (condition === 'bad') {
        answer(412, 'PRECONDITION_FAILED', 'If-Match names no entity tag the blob has');
        body.fail(new StoreError('ABORTED', 'precondition failed'));
        return 412;
      }
      return storeBody(res, state, ctx, key.key, length.length!, expiresAt, condition, body);
    })
    .then(
      (status) => ctx.observe('blobs', 'PUT', status, body.received, 0, startedAt),
      (err: unknown) => {
        if (!state.aborted) sendFailure(res, state, err);
        ctx.observe('blobs', 'PUT', state.aborted ? 499 : 500, body.received, 0, startedAt);
      },
    );
}

/**
 * The write's condition. An If-Match with several tags cannot be one compare-and-set, so the
 * current tag is looked up: if it is in the list, the write is conditioned on it (and still
 * fails atomically if the blob changes meanwhile); if not, 412 at once.
 */
async function resolveCondition(ctx: BlobContext, key: Buffer, p: ReturnType<typeof parsePreconditions>): Promise<Condition | 'bad'> {
  const c = conditionOf(p);
  if (c !== 'bad' || p.ifMatch === null || p.ifMatch.tags.length < 2) return c;
  const entry = await ctx.engine.lookupLive(key);
  if (entry === undefined) return 'bad';
  const current = etagOf(entry.address.volume, entry.address.offset);
  return ifMatchPasses(p.ifMatch, current) ? { kind: 'at', volume: entry.address.volume, offset: entry.address.offset } : 'bad';
}

/** What If-Match / If-None-Match ask of the write: none, create-only, or compare-and-set. */
function conditionOf(p: ReturnType<typeof parsePreconditions>): Condition | 'bad' {
  if (p.ifNoneMatch !== null && p.ifNoneMatch.any) return { kind: 'absent' };
  if (p.ifMatch !== null) {
    if (p.ifMatch.any) return { kind: 'present' };
    const tag = p.ifMatch.tags.length === 1 ? p.ifMatch.tags[0] : undefined;
    const at = tag === undefined ? null : parseEtagAddress(tag);
    return at === null ? 'bad' : { kind: 'at', volume: at.volume, offset: at.offset };
  }
  return { kind: 'none' };
}

async function storeBody(
  res: HttpResponse,
  state: ResponseState,
  ctx: BlobContext,
  key: Buffer,
  size: number,
  expiresAt: number,
  condition: Condition,
  body: BodyQueue,
): Promise<number> {
  const { applied, address } = await ctx.engine.put(key, { size, source: body }, { expiresAt, condition });
  if (!applied) {
    sendError(res, state, 412, 'PRECONDITION_FAILED', 'the precondition (If-Match / If-None-Match) does not hold for the stored blob');
    return 412;
  }
  // A PUT is a SET to keyspace notifications, whichever front end it came through.
  ctx.engine.notify(expiresAt === 0 ? [{ event: 'set', key }] : [{ event: 'set', key }, { event: 'expire', key }]);
  if (state.aborted || state.done) return 499;
  state.done = true;
  const etag = etagOf(address.volume, address.offset);
  res.cork(() => {
    res.writeStatus(statusLine(201)).writeHeader('ETag', etag).writeHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ key: key.toString('utf8'), size, etag }));
  });
  return 201;
}

// ---- GET / HEAD ---------------------------------------------------------------------------

export function getBlob(res: HttpResponse, req: HttpRequest, ctx: BlobContext, head: boolean): void {
  const startedAt = ctx.now();
  const method = head ? 'HEAD' : 'GET';
  const url = req.getUrl();
  const rangeHeader = req.getHeader('range') || undefined;
  const preconditions = parsePreconditions(req.getHeader('if-match') || undefined, req.getHeader('if-none-match') || undefined);
  const state = watchAbort(res);
  const key = decodeBlobKey(url.slice(BLOB_PREFIX.length), ctx.maxKeyLength);
  if (!key.ok) {
    sendError(res, state, key.status, key.code, key.message);
    ctx.observe('blobs', method, key.status, 0, 0, startedAt);
    return;
  }
  void ctx.engine.lookupLive(key.key).then(
    (entry) => {
      const status = answerBlob(res, state, ctx, key.key, entry, rangeHeader, preconditions, head);
      ctx.observe('blobs', method, status.code, 0, status.bytes, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('blobs', method, 500, 0, 0, startedAt);
    },
  );
}

function answerBlob(
  res: HttpResponse,
  state: ResponseState,
  ctx: BlobContext,
  key: Buffer,
  entry: IndexEntry | undefined,
  rangeHeader: string | undefined,
  preconditions: ReturnType<typeof parsePreconditions>,
  head: boolean,
): { code: number; bytes: number } {
  if (state.aborted) return { code: 499, bytes: 0 };
  if (entry === undefined) {
    sendError(res, state, 404, 'NOT_FOUND', `no blob named ${JSON.stringify(key.toString('utf8'))}`);
    return { code: 404, bytes: 0 };
  }
  const size = valueLengthOf(entry.address, key.length);
  const etag = etagOf(entry.address.volume, entry.address.offset);
  const headers = blobHeaders(entry, size, etag, ctx.now());
  if (preconditions.ifMatch !== null && !ifMatchPasses(preconditions.ifMatch, etag)) {
    sendError(res, state, 412, 'PRECONDITION_FAILED', 'If-Match does not hold');
    return { code: 412, bytes: 0 };
  }
  if (ifNoneMatchHits(preconditions.ifNoneMatch, etag)) {
    state.done = true;
    res.cork(() => {
      res.writeStatus(statusLine(304));
      for (const [n, v] of headers) res.writeHeader(n, v);
      res.endWithoutBody();
    });
    return { code: 304, bytes: 0 };
  }
  const range = parseRange(rangeHeader, size);
  if (range.kind === 'unsatisfiable') {
    sendError(res, state, 416, 'RANGE_NOT_SATISFIABLE', `no part of the range is inside the blob (${size} bytes)`, { 'Content-Range': unsatisfiedRange(size) });
    return { code: 416, bytes: 0 };
  }
  if (range.kind === 'multi') return sendMultipart(res, state, ctx, entry, size, range.ranges, headers, head);
  const part: ByteRange = range.kind === 'single' ? range.range : { start: 0, end: size - 1 };
  const status = range.kind === 'single' ? 206 : 200;
  const length = size === 0 ? 0 : part.end - part.start + 1;
  state.done = true;
  if (head) {
    res.cork(() => {
      res.writeStatus(statusLine(status));
      for (const [n, v] of headers) res.writeHeader(n, v);
      if (status === 206) res.writeHeader('Content-Range', contentRange(part, size));
      res.endWithoutBody(length);
    });
    return { code: status, bytes: 0 };
  }
  res.cork(() => {
    res.writeStatus(statusLine(status));
    for (const [n, v] of headers) res.writeHeader(n, v);
    if (status === 206) res.writeHeader('Content-Range', contentRange(part, size));
  });
  streamPieces(res, state, ctx, entry, size === 0 ? [] : [{ start: part.start, length }], length);
  return { code: status, bytes: length };
}

function blobHeaders(entry: IndexEntry, size: number, etag: string, nowMs: number): [string, string][] {
  const headers: [string, string][] = [
    ['Content-Type', 'application/octet-stream'],
    ['Accept-Ranges', 'bytes'],
    ['ETag', etag],
    ['X-Brise-Size', String(size)],
    ['X-Brise-TTL', String(formatTtlSeconds(entry.expiresAt, nowMs))],
  ];
  if (entry.modifiedAt !== undefined && entry.modifiedAt > 0) headers.push(['Last-Modified', httpDate(entry.modifiedAt)]);
  return headers;
}

/** Several ranges: multipart/byteranges, each part streamed from disk. */
function sendMultipart(
  res: HttpResponse,
  state: ResponseState,
  ctx: BlobContext,
  entry: IndexEntry,
  size: number,
  ranges: ByteRange[],
  headers: [string, string][],
  head: boolean,
): { code: number; bytes: number } {
  const mp = multipartByteranges(ranges, size, 'application/octet-stream');
  state.done = true;
  res.cork(() => {
    res.writeStatus(statusLine(206));
    for (const [n, v] of headers) if (n !== 'Content-Type') res.writeHeader(n, v);
    res.writeHeader('Content-Type', `multipart/byteranges; boundary=${mp.boundary}`);
    if (head) res.endWithoutBody(mp.totalLength);
  });
  if (head) return { code: 206, bytes: 0 };
  const pieces: Piece[] = [];
  for (const part of mp.parts) {
    pieces.push({ bytes: part.head });
    pieces.push({ start: part.range.start, length: part.range.end - part.range.start + 1 });
  }
  pieces.push({ bytes: mp.tail });
  streamPieces(res, state, ctx, entry, pieces, mp.totalLength);
  return { code: 206, bytes: mp.totalLength };
}

/** A piece of a response body: literal bytes, or a range of the value. */
type Piece = { bytes: Buffer } | { start: number; length: number };

/**
 * Streams the pieces with tryEnd through one reused read buffer: the next chunk is asked of the
 * engine only once the previous one is wholly handed to uWS (the buffer is then free again).
 * The read port checks a whole value's CRC before its last chunk leaves; a read that fails
 * after the headers are out cuts the connection, so a damaged value never arrives as a
 * complete response. Yields to other connections every few chunks.
 */
function streamPieces(res: HttpResponse, state: ResponseState, ctx: BlobContext, entry: IndexEntry, pieces: Piece[], total: number): void {
  if (total === 0) {
    res.cork(() => res.end());
    return;
  }
  const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, total));
  const writer = new BodyWriter(res, state, total);
  const send = async (): Promise<void> => {
    let chunks = 0;
    for (const p of pieces) {
      if ('bytes' in p) {
        if (!(await writer.write(p.bytes))) return;
        continue;
      }
      for await (const chunk of ctx.engine.stream(entry, p.start, p.length, buf)) {
        if (!(await writer.write(chunk))) return; // the client went away; the read stops here
        if (++chunks % CHUNKS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    }
  };
  send().catch(() => {
    // Headers are out: the only honest signal left is to cut the connection.
    if (!state.aborted) res.close();
  });
}

/**
 * Hands chunks of a body of known length to uWS with tryEnd. When uWS takes only part of one,
 * the rest is offered again from onWritable; write() resolves once the chunk is wholly taken
 * (true) or the client is gone (false).
 */
class BodyWriter {
  private waiting: { chunk: Uint8Array; start: number; resolve: (taken: boolean) => void } | null = null;

  constructor(
    private readonly res: HttpResponse,
    private readonly state: ResponseState,
    private readonly total: number,
  ) {
    res.onWritable(() => this.retry());
    state.onAbort = () => {
      const w = this.waiting;
      this.waiting = null;
      w?.resolve(false);
    };
  }

  write(chunk: Uint8Array): Promise<boolean> | boolean {
    if (this.state.aborted) return false;
    let start = 0;
    let taken = false;
    this.res.cork(() => {
      start = this.res.getWriteOffset();
      const [ok, done] = this.res.tryEnd(chunk, this.total);
      taken = ok || done;
    });
    if (taken) return true;
    return new Promise((resolve) => (this.waiting = { chunk, start, resolve }));
  }

  /** onWritable: offer what is left of the waiting chunk; true tells uWS it went out. */
  private retry(): boolean {
    const w = this.waiting;
    if (w === null || this.state.aborted) return true;
    const sent = this.res.getWriteOffset() - w.start;
    const [ok, done] = this.res.tryEnd(w.chunk.subarray(sent), this.total);
    if (ok || done) {
      this.waiting = null;
      w.resolve(true);
    }
    return ok || done;
  }
}

// ---- DELETE ---------------------------------------------------------------------------------

export function deleteBlob(res: HttpResponse, req: HttpRequest, ctx: BlobContext): void {
  const startedAt = ctx.now();
  const state = watchAbort(res);
  const key = decodeBlobKey(req.getUrl().slice(BLOB_PREFIX.length), ctx.maxKeyLength);
  if (!key.ok) {
    sendError(res, state, key.status, key.code, key.message);
    ctx.observe('blobs', 'DELETE', key.status, 0, 0, startedAt);
    return;
  }
  void ctx.engine.delete([key.key]).then(
    (count) => {
      const found = count === 1;
      if (found) {
        if (!state.aborted && !state.done) {
          state.done = true;
          res.cork(() => res.writeStatus(statusLine(204)).endWithoutBody());
        }
      } else {
        sendError(res, state, 404, 'NOT_FOUND', `no blob named ${JSON.stringify(key.key.toString('utf8'))}`);
      }
      ctx.observe('blobs', 'DELETE', found ? 204 : 404, 0, 0, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('blobs', 'DELETE', 500, 0, 0, startedAt);
    },
  );
}

