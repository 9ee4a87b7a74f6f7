// The PUT route of the HTTP front end: PUT /v1/blobs/{key}. The body streams in constant
// memory: uWS hands it in chunks; they queue (bounded) for the engine's put, which streams them
// to the volume writer, and the socket is paused while the queue is full; the needle's region
// is reserved from Content-Length up front, so a body without one is 411 (HTTP lets a server
// require it); 201 only once the needle is fsynced and the WAL record committed.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Condition } from '../db/engine.js';
import { decodeBlobKey } from '../protocol/http_keys.js';
import { parseContentLength, parseQuery, parseTtl } from '../protocol/http_params.js';
import { etagOf, ifMatchPasses, parseEtagAddress, parsePreconditions } from '../protocol/http_etag.js';
import { sendError, sendFailure, statusLine, watchAbort, type ResponseState } from './http_util.js';
import { streamChunks } from '../runtime/buffer_pool.js';
import { StoreError } from '../runtime/errors.js';
import { BLOB_PREFIX, type BlobContext } from './http_blobs.js';

/** Body bytes queued for the volume writer before the socket is paused. */
const BODY_HIGH_WATER = 3 * 1024 * 1024;
const BODY_LOW_WATER = 1024 * 1024;

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
