// The PUT route of the HTTP front end: PUT /v1/blobs/{key}. The body streams in constant
// memory: uWS hands it in chunks; they queue (bounded, http_body.ts) for the engine's put, which
// streams them to the volume writer, and the socket is paused while the queue is full. With a
// Content-Length the needle's region is reserved up front; a chunked body that ends within the
// queue is stored the same way, and a longer one streams into a stream volume (drive_volumes.ts)
// without being held or written twice. 201 only once the needle is fsynced and the WAL record
// committed. What the headers decide (key, length, TTL, preconditions) is decided before a byte
// is written.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Condition } from '../db/engine.js';
import { decodeBlobKey } from '../protocol/http_keys.js';
import { parseContentLength, parseQuery, parseTtl } from '../protocol/http_params.js';
import { hasWritePreconditions, readConditionalHeaders, type ConditionalHeaders } from '../protocol/http_conditions.js';
import { etagOfDigest, metaFromHeaders, type BlobMeta } from '../protocol/blob_meta.js';
import { parseExpectedDigests } from '../protocol/http_digest.js';
import { NO_EXPECTED_DIGESTS, UploadDigest } from '../protocol/upload_digest.js';
import { sendError, sendFailure, statusLine, statusOfFailure, watchAbort, type ResponseState } from './http_util.js';
import { BodyQueue } from './http_body.js';
import { valueLengthOf } from '../storage/types.js';
import { StoreError } from '../runtime/errors.js';
import { BLOB_PREFIX, LSN_HEADER, judgeWrite, type BlobContext } from './http_blobs.js';

/** A body that sends nothing for this long (while the server is not the one holding it) is 408. */
export const UPLOAD_STALL_MS = 8_000;

export function putBlob(res: HttpResponse, req: HttpRequest, ctx: BlobContext): void {
  const startedAt = ctx.now();
  const url = req.getUrl();
  const query = parseQuery(req.getQuery());
  const lengthHeader = req.getHeader('content-length');
  const chunked = /\bchunked\b/i.test(req.getHeader('transfer-encoding'));
  const conditions = readConditionalHeaders((name) => req.getHeader(name));
  const all: [string, string][] = [];
  req.forEach((name, value) => all.push([name, value]));
  const meta = metaFromHeaders(all);
  const expected = parseExpectedDigests((name) => req.getHeader(name));
  const digest = new UploadDigest(expected.ok ? expected.value : NO_EXPECTED_DIGESTS);
  const body = new BodyQueue(res, (bytes) => digest.update(bytes));
  // A client that goes once its body is whole does not take the write with it (see BodyQueue).
  const state = watchAbort(res, () => {
    if (!body.complete) body.fail(new StoreError('ABORTED', 'the client went away during the upload'));
  });
  // Every request is counted once, with the status it got: the first answer made decides it.
  let counted = false;
  const count = (status: number): void => {
    if (counted) return;
    counted = true;
    ctx.observe('blobs', 'PUT', status, body.received, 0, startedAt);
  };
  const answer = (status: number, code: string, message: string): void => {
    // The body was not (wholly) read: close after the answer, so the client stops sending.
    if (state.aborted || state.done) return;
    state.done = true;
    res.cork(() => {
      res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ error: message, code }), true);
    });
    count(status);
  };
  const key = decodeBlobKey(url.slice(BLOB_PREFIX.length), ctx.maxKeyLength);
  if (!key.ok) return answer(key.status, key.code, key.message);
  if (!meta.ok) return answer(400, 'BAD_METADATA', meta.message);
  if (!expected.ok) return answer(400, 'BAD_DIGEST', expected.message);
  const length = parseContentLength(lengthHeader || undefined);
  if (!length.ok) return answer('tooLarge' in length && length.tooLarge ? 413 : 400, 'tooLarge' in length && length.tooLarge ? 'VALUE_TOO_LARGE' : 'BAD_REQUEST', length.message);
  if (length.length === null && !chunked) {
    return answer(411, 'LENGTH_REQUIRED', 'a PUT needs a Content-Length or Transfer-Encoding: chunked');
  }
  if (length.length !== null && length.length > ctx.maxBodySize) {
    return answer(413, 'VALUE_TOO_LARGE', `body of ${length.length} bytes; the limit is ${ctx.maxBodySize}`);
  }
  let expiresAt = 0;
  const ttl = query.get('ttl');
  if (ttl !== null) {
    const parsed = parseTtl(ttl);
    if (!parsed.ok) return answer(400, 'BAD_TTL', parsed.message);
    expiresAt = ctx.now() + parsed.ms;
  }
  const tooLarge = (): void => {
    answer(413, 'VALUE_TOO_LARGE', `body past ${ctx.maxBodySize} bytes, the limit`);
    body.fail(new StoreError('VALUE_TOO_LARGE', 'the upload passed the maximum body size'));
  };
  res.onData((chunk, last) => {
    body.push(chunk, last, ctx.now());
    if (body.received > ctx.maxBodySize) tooLarge();
  });
  const stall = watchStall(body, ctx, () => {
    answer(408, 'REQUEST_TIMEOUT', `no body bytes for ${UPLOAD_STALL_MS / 1000} s; the upload is dropped`);
    body.fail(new StoreError('TIMEOUT', 'the upload stalled'));
  });
  const upload: Upload = { key: key.key, size: length.length, expiresAt, body, meta: meta.value, digest };
  void decideCondition(ctx, key.key, conditions)
    .then((condition) => {
      if (condition === 'refused') {
        // Judged before a byte is written: a refused PUT costs the volume nothing.
        answer(412, 'PRECONDITION_FAILED', 'the precondition (If-Match / If-None-Match) does not hold for the stored blob');
        body.fail(new StoreError('ABORTED', 'precondition failed'));
        return 412;
      }
      return storeBody(res, state, ctx, upload, condition);
    })
    .then(
      (status) => count(status),
      (err: unknown) => {
        if (!state.aborted) sendFailure(res, state, err);
        count(state.aborted ? 499 : statusOfFailure(err));
      },
    )
    .finally(() => clearTimeout(stall.timer));
}

/** What is being stored: `size` null for a chunked body (known once it has all arrived). */
interface Upload {
  key: Buffer;
  size: number | null;
  expiresAt: number;
  body: BodyQueue;
  /** What the needle's metadata section holds (digests added when the body has ended). */
  meta: BlobMeta;
  digest: UploadDigest;
}

/**
 * A 408 for a client that stops sending mid-body (uWS would otherwise close the socket without a
 * word after about 10 s). The clock runs only while the server waits on the client: not while
 * the socket is paused for back-pressure, nor once the body is whole.
 */
function watchStall(body: BodyQueue, ctx: BlobContext, onStall: () => void): { timer: ReturnType<typeof setTimeout> | undefined } {
  const watch: { timer: ReturnType<typeof setTimeout> | undefined } = { timer: undefined };
  body.lastChunkAt = ctx.now();
  const check = (): void => {
    if (body.complete || body.failed) return;
    const idle = ctx.now() - body.lastChunkAt;
    if (body.holding || idle < UPLOAD_STALL_MS) {
      watch.timer = setTimeout(check, body.holding ? UPLOAD_STALL_MS : UPLOAD_STALL_MS - idle);
      return;
    }
    onStall();
  };
  watch.timer = setTimeout(check, UPLOAD_STALL_MS);
  return watch;
}

/**
 * The write's condition, judged against the blob as it is now, before a byte of the body is
 * written: a PUT that will be refused is refused at once ('refused': 412, nothing written).
 * One that may go ahead is conditioned on exactly what was seen (the needle it names, or the
 * key's absence), so it still fails atomically, at commit, if the blob changes meanwhile
 * (RFC 9110 §13.2.1: evaluated after the headers; the server must not act on a stale check).
 */
async function decideCondition(ctx: BlobContext, key: Buffer, conditions: ConditionalHeaders): Promise<Condition | 'refused'> {
  if (!hasWritePreconditions(conditions)) return { kind: 'none' };
  const entry = await ctx.engine.lookupLive(key);
  const verdict = await judgeWrite(ctx.engine, 'PUT', conditions, entry, ctx.now());
  if (verdict.kind !== 'proceed') return 'refused';
  if (verdict.guard === 'none') return { kind: 'none' };
  return entry === undefined ? { kind: 'absent' } : { kind: 'at', volume: entry.address.volume, offset: entry.address.offset };
}

async function storeBody(res: HttpResponse, state: ResponseState, ctx: BlobContext, upload: Upload, condition: Condition): Promise<number> {
  const { key, expiresAt, body } = upload;
  if (body.failed) return 499; // refused or gone before the store began: nothing to write
  if (upload.size === null) await body.whenSettled();
  // A chunked body that ended within the queue has a known size: a needle like any other. One
  // still streaming goes to a stream volume, whatever its final length (docs/formats.md).
  const size = upload.size ?? (body.complete ? body.received : null);
  const value = size === null ? { size: null, source: body } : { size, source: body };
  // The section's length is fixed now; its digests are filled in (and checked) at the end.
  const meta = upload.digest.metaSource(upload.meta);
  const { applied, address } = await ctx.engine.put(key, value, { expiresAt, condition, meta });
  if (!applied) {
    sendError(res, state, 412, 'PRECONDITION_FAILED', 'the precondition (If-Match / If-None-Match) does not hold for the stored blob');
    return 412;
  }
  // A PUT is a SET to keyspace notifications, whichever front end it came through.
  ctx.engine.notify(expiresAt === 0 ? [{ event: 'set', key }] : [{ event: 'set', key }, { event: 'expire', key }]);
  if (state.aborted || state.done) return 499;
  state.done = true;
  const etag = etagOfDigest(upload.digest.digest!);
  const stored = valueLengthOf(address, key.length);
  res.cork(() => {
    res.writeStatus(statusLine(201)).writeHeader('ETag', etag).writeHeader(LSN_HEADER, String(ctx.engine.lastWriteLsn)).writeHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ key: key.toString('utf8'), size: stored, etag }));
  });
  return 201;
}
