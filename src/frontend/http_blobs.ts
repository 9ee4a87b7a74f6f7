// The blob read routes of the HTTP front end: GET, HEAD and DELETE of /v1/blobs/{key} (PUT is
// in http_put.ts). Bodies stream in constant memory:
// - GET: the engine streams the value through its read port into one reused buffer, and each
//   chunk is written with tryEnd; when the socket is full the loop waits for onWritable. A
//   full-body GET has the needle's CRC checked as it goes, and the connection is cut instead
//   of finishing a response whose bytes do not match. No route here opens a volume file.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Engine } from '../db/engine.js';
import { OpCode, valueLengthOf, type IndexEntry } from '../storage/types.js';
import { decodeBlobKey } from '../protocol/http_keys.js';
import { contentRange, multipartByteranges, parseRange, unsatisfiedRange, type ByteRange } from '../protocol/http_range.js';
import { formatTtlSeconds, httpDate } from '../protocol/http_params.js';
import { metaResponseHeaders, reprDigest } from '../protocol/blob_meta.js';
import { blobInfo, infoOfNeedle, type BlobInfo } from './blob_info.js';
import { evaluateConditions, hasWritePreconditions, readConditionalHeaders, type ConditionalHeaders, type ConditionVerdict, type Validators } from '../protocol/http_conditions.js';
import { sendError, sendFailure, statusLine, watchAbort, type ResponseState } from './http_util.js';
import { BodyWriter } from './body_writer.js';

export const BLOB_PREFIX = '/v1/blobs/';
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
  /**
   * The key's live entry asked of the index synchronously (sync_slot.ts): the entry, 'absent',
   * or null when the index did not answer at once (ask by message). Absent: no such fast path.
   */
  lookupNow?(key: Buffer): IndexEntry | 'absent' | null;
  /**
   * Read-your-writes (X-Brise-Min-LSN, docs/replica.md): resolves with the LSN this server's
   * reads show once it is at least `lsn`, or null when it is not within the bounded wait.
   */
  waitForLsn?(lsn: number): Promise<number | null>;
}

/** A GET that names an LSN waits for this server to show it (a replica behind its master). */
export const MIN_LSN_HEADER = 'x-brise-min-lsn';
/** On a write's answer: an LSN at or after the write's (a replica at it shows the write). */
export const LSN_HEADER = 'X-Brise-LSN';

/** Values up to this size may be answered before the handler returns (see answerNow). */
const ANSWER_NOW_MAX = 1024 * 1024;
/** Room for the needle of such a value with a long key and metadata; longer ones read fresh. */
const SCRATCH_BYTES = ANSWER_NOW_MAX + 128 * 1024;
/**
 * The needles answerNow reads, one after another, on this thread: a fresh megabyte per 1 MB GET
 * cost more than the read itself (each new buffer's pages fault in, and die in the next GC).
 * Safe to reuse because everything answerNow does with the bytes is synchronous and uWS copies
 * what end() cannot send at once (test/http_scratch.test.ts holds it to that).
 */
let scratch: Buffer | null = null;

// ---- GET / HEAD ---------------------------------------------------------------------------

export function getBlob(res: HttpResponse, req: HttpRequest, ctx: BlobContext, head: boolean): void {
  const startedAt = ctx.now();
  const method = head ? 'HEAD' : 'GET';
  const url = req.getUrl();
  const conditions = readConditionalHeaders((name) => req.getHeader(name));
  const state = watchAbort(res);
  const key = decodeBlobKey(url.slice(BLOB_PREFIX.length), ctx.maxKeyLength);
  if (!key.ok) {
    sendError(res, state, key.status, key.code, key.message);
    ctx.observe('blobs', method, key.status, 0, 0, startedAt);
    return;
  }
  const minLsn = req.getHeader(MIN_LSN_HEADER);
  if (minLsn !== '') return getAfterLsn(res, state, ctx, key.key, conditions, head, startedAt, minLsn);
  if (answerNow(res, state, ctx, key.key, conditions, head, startedAt)) return;
  lookupAndAnswer(res, state, ctx, key.key, conditions, head, startedAt);
}

/** X-Brise-Min-LSN: 400 when it is not an LSN, 503 LAGGING when not reached in time, else the GET. */
function getAfterLsn(res: HttpResponse, state: ResponseState, ctx: BlobContext, key: Buffer, conditions: ConditionalHeaders, head: boolean, startedAt: number, header: string): void {
  const method = head ? 'HEAD' : 'GET';
  const lsn = /^[0-9]{1,15}$/.test(header) ? Number(header) : NaN;
  if (!Number.isSafeInteger(lsn)) {
    sendError(res, state, 400, 'BAD_ARGUMENT', `X-Brise-Min-LSN ${JSON.stringify(header.slice(0, 64))} is not an LSN`);
    ctx.observe('blobs', method, 400, 0, 0, startedAt);
    return;
  }
  const wait = ctx.waitForLsn?.(lsn) ?? Promise.resolve(lsn);
  void wait.then(
    (applied) => {
      if (applied !== null) return lookupAndAnswer(res, state, ctx, key, conditions, head, startedAt);
      sendError(res, state, 503, 'LAGGING', `this server has not reached LSN ${lsn} within its wait; retry, or read from the master`);
      ctx.observe('blobs', method, 503, 0, 0, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('blobs', method, 500, 0, 0, startedAt);
    },
  );
}

function lookupAndAnswer(res: HttpResponse, state: ResponseState, ctx: BlobContext, key: Buffer, conditions: ConditionalHeaders, head: boolean, startedAt: number): void {
  const method = head ? 'HEAD' : 'GET';
  const found = ctx.engine.lookupLive(key).then(async (entry) => ({ entry, info: entry === undefined ? null : await blobInfo(ctx.engine, entry) }));
  void found.then(
    ({ entry, info }) => {
      const status = answerBlob(res, state, ctx, key, entry, info, conditions, head);
      ctx.observe('blobs', method, status.code, 0, status.bytes, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('blobs', method, 500, 0, 0, startedAt);
    },
  );
}

/**
 * A GET or HEAD answered before its handler returns, when the index answers the lookup at once
 * and the value is small enough to read whole: uWS closes a connection whose next request it
 * parses while an answer is still to come, so only answers made here keep pipelined requests
 * (and the answers already made for them) alive. Everything else takes the message path.
 */
function answerNow(
  res: HttpResponse,
  state: ResponseState,
  ctx: BlobContext,
  key: Buffer,
  conditions: ConditionalHeaders,
  head: boolean,
  startedAt: number,
): boolean {
  const found = ctx.lookupNow?.(key) ?? null;
  if (found === null) return false;
  const method = head ? 'HEAD' : 'GET';
  if (found === 'absent') {
    const status = answerBlob(res, state, ctx, key, undefined, null, conditions, head);
    ctx.observe('blobs', method, status.code, 0, 0, startedAt);
    return true;
  }
  if (valueLengthOf(found.address, key.length) > ANSWER_NOW_MAX) return false;
  scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
  const needle = ctx.engine.readNow(found, scratch);
  if (needle === null) return false;
  const info = infoOfNeedle(found, needle.meta, needle.value);
  const status = answerBlob(res, state, ctx, key, found, info, conditions, head, needle.value);
  ctx.observe('blobs', method, status.code, 0, status.bytes, startedAt);
  return true;
}

function answerBlob(
  res: HttpResponse,
  state: ResponseState,
  ctx: BlobContext,
  key: Buffer,
  entry: IndexEntry | undefined,
  info: BlobInfo | null,
  conditions: ConditionalHeaders,
  head: boolean,
  value?: Uint8Array,
): { code: number; bytes: number } {
  if (state.aborted) return { code: 499, bytes: 0 };
  if (entry === undefined || info === null) {
    sendError(res, state, 404, 'NOT_FOUND', `no blob named ${JSON.stringify(key.toString('utf8'))}`);
    return { code: 404, bytes: 0 };
  }
  const size = valueLengthOf(entry.address, key.length);
  const headers = blobHeaders(entry, size, info, ctx.now());
  // RFC 9110 §13.2.2; a 304 carries the header fields the 200 would (§15.4.5).
  const verdict = evaluateConditions(head ? 'HEAD' : 'GET', conditions, validatorsOf(entry, info.etag), ctx.now());
  if (verdict.kind === 'failed') {
    sendError(res, state, 412, 'PRECONDITION_FAILED', `${verdict.header} does not hold`);
    return { code: 412, bytes: 0 };
  }
  if (verdict.kind === 'not-modified') {
    state.done = true;
    res.cork(() => {
      res.writeStatus(statusLine(304));
      for (const [n, v] of headers) res.writeHeader(n, v);
      res.endWithoutBody();
    });
    return { code: 304, bytes: 0 };
  }
  // A stale If-Range drops the Range: the whole current body with 200, never a part of it.
  const range = parseRange(verdict.useRange ? conditions.range : undefined, size);
  if (range.kind === 'unsatisfiable') {
    sendError(res, state, 416, 'RANGE_NOT_SATISFIABLE', `no part of the range is inside the blob (${size} bytes)`, { 'Content-Range': unsatisfiedRange(size) });
    return { code: 416, bytes: 0 };
  }
  if (range.kind === 'multi') return sendMultipart(res, state, ctx, entry, size, range.ranges, headers, head, contentTypeOf(headers), value);
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
  const writeHead = (): void => {
    res.writeStatus(statusLine(status));
    for (const [n, v] of headers) res.writeHeader(n, v);
    if (status === 206) res.writeHeader('Content-Range', contentRange(part, size));
  };
  streamPieces(res, state, ctx, entry, size === 0 ? [] : [{ start: part.start, length }], length, writeHead, value);
  return { code: status, bytes: length };
}

/**
 * The headers of a 200 (and of the 206, 304 and HEAD that stand for it): the representation
 * headers the PUT stored (Content-Type defaults to application/octet-stream), user metadata,
 * the content ETag and digests, size and TTL.
 */
function blobHeaders(entry: IndexEntry, size: number, info: BlobInfo, nowMs: number): [string, string][] {
  const headers: [string, string][] = [
    ...metaResponseHeaders(info.meta),
    ['Accept-Ranges', 'bytes'],
    ['ETag', info.etag],
    ['Repr-Digest', reprDigest(info.sha256)],
    ['X-Brise-Size', String(size)],
    ['X-Brise-TTL', String(formatTtlSeconds(entry.expiresAt, nowMs))],
  ];
  if (entry.modifiedAt !== undefined && entry.modifiedAt > 0) headers.push(['Last-Modified', httpDate(entry.modifiedAt)]);
  return headers;
}

/**
 * The validators conditions are judged on: the ETag and the Last-Modified the 200 shows.
 * modifiedAt has 1 s resolution and nothing records whether a key changed twice within one
 * second, so Last-Modified is never a strong validator here (RFC 9110 §8.8.2.2): If-Range with
 * a date always sends the whole body.
 */
function validatorsOf(entry: IndexEntry, etag: string): Validators {
  const modified = entry.modifiedAt !== undefined && entry.modifiedAt > 0 ? entry.modifiedAt : null;
  return { etag, lastModified: modified, lastModifiedStrong: false };
}

function contentTypeOf(headers: [string, string][]): string {
  return headers.find(([n]) => n === 'Content-Type')?.[1] ?? 'application/octet-stream';
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
  contentType: string,
  value?: Uint8Array,
): { code: number; bytes: number } {
  const mp = multipartByteranges(ranges, size, contentType);
  state.done = true;
  const writeHead = (): void => {
    res.writeStatus(statusLine(206));
    for (const [n, v] of headers) if (n !== 'Content-Type') res.writeHeader(n, v);
    res.writeHeader('Content-Type', `multipart/byteranges; boundary=${mp.boundary}`);
  };
  if (head) {
    res.cork(() => {
      writeHead();
      res.endWithoutBody(mp.totalLength);
    });
    return { code: 206, bytes: 0 };
  }
  const pieces: Piece[] = [];
  for (const part of mp.parts) {
    pieces.push({ bytes: part.head });
    pieces.push({ start: part.range.start, length: part.range.end - part.range.start + 1 });
  }
  pieces.push({ bytes: mp.tail });
  streamPieces(res, state, ctx, entry, pieces, mp.totalLength, writeHead, value);
  return { code: 206, bytes: mp.totalLength };
}

/** A piece of a response body: literal bytes, or a range of the value. */
type Piece = { bytes: Buffer } | { start: number; length: number };

/**
 * Streams the pieces with tryEnd through one reused read buffer: the next chunk is asked of the
 * engine only once the previous one is wholly handed to uWS (the buffer is then free again).
 * The status and headers (writeHead) go out with the first body bytes, not before: a read that
 * fails before them (a damaged value of up to a chunk: its CRC is checked before its last chunk
 * leaves) is answered with an error status, never a 200 cut short; one that fails after them
 * cuts the connection short of the Content-Length, so a damaged value never arrives as a
 * complete response. Yields to other connections every few chunks.
 */
function streamPieces(res: HttpResponse, state: ResponseState, ctx: BlobContext, entry: IndexEntry, pieces: Piece[], total: number, writeHead: () => void, value?: Uint8Array): void {
  if (total === 0 || value !== undefined) {
    // Nothing to read, or the value is in memory (read whole, CRCs checked): one end().
    const parts = value === undefined ? [] : pieces.map((p) => ('bytes' in p ? p.bytes : value.subarray(p.start, p.start + p.length)));
    const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
    res.cork(() => {
      writeHead();
      res.end(body);
    });
    return;
  }
  const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, total));
  const writer = new BodyWriter(res, state, total);
  let headed = false;
  // Literal bytes before the first bytes of the value (a multipart part's head) wait for them.
  let held: Buffer[] = [];
  const write = async (chunk: Buffer | Uint8Array): Promise<boolean> => {
    if (!headed) {
      headed = true;
      res.cork(writeHead);
      for (const b of held) if (!(await writer.write(b))) return false;
      held = [];
    }
    return writer.write(chunk);
  };
  const send = async (): Promise<void> => {
    let chunks = 0;
    for (const p of pieces) {
      if ('bytes' in p) {
        if (!headed) held.push(p.bytes);
        else if (!(await write(p.bytes))) return;
        continue;
      }
      for await (const chunk of ctx.engine.stream(entry, p.start, p.length, buf)) {
        if (!(await write(chunk))) return; // the client went away; the read stops here
        if (++chunks % CHUNKS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    }
  };
  send().catch((err: unknown) => {
    if (state.aborted) return;
    if (!headed) {
      // Nothing is out yet: an honest error status instead of the 200 or 206.
      state.done = false;
      sendFailure(res, state, err);
      return;
    }
    // Headers are out: the only honest signal left is to cut the connection.
    res.close();
  });
}

// ---- DELETE ---------------------------------------------------------------------------------

export function deleteBlob(res: HttpResponse, req: HttpRequest, ctx: BlobContext): void {
  const startedAt = ctx.now();
  const conditions = readConditionalHeaders((name) => req.getHeader(name));
  const state = watchAbort(res);
  const key = decodeBlobKey(req.getUrl().slice(BLOB_PREFIX.length), ctx.maxKeyLength);
  if (!key.ok) {
    sendError(res, state, key.status, key.code, key.message);
    ctx.observe('blobs', 'DELETE', key.status, 0, 0, startedAt);
    return;
  }
  const deleted = hasWritePreconditions(conditions) ? deleteIf(ctx, key.key, conditions) : deleteAny(ctx, key.key);
  void deleted.then(
    (outcome) => {
      if (outcome === 204) {
        if (!state.aborted && !state.done) {
          state.done = true;
          res.cork(() => res.writeStatus(statusLine(204)).writeHeader(LSN_HEADER, String(ctx.engine.lastWriteLsn)).endWithoutBody());
        }
      } else if (outcome === 404) {
        sendError(res, state, 404, 'NOT_FOUND', `no blob named ${JSON.stringify(key.key.toString('utf8'))}`);
      } else {
        sendError(res, state, 412, 'PRECONDITION_FAILED', outcome.failed);
      }
      ctx.observe('blobs', 'DELETE', typeof outcome === 'number' ? outcome : 412, 0, 0, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('blobs', 'DELETE', 500, 0, 0, startedAt);
    },
  );
}

/**
 * For the write routes (PUT, DELETE): the verdict of the request's conditions on the key's
 * current entry (undefined: the key has none). When it is 'proceed', the write must be made
 * conditional on `guard`: 'same' → only if that entry's needle is still the key's (SET_IF /
 * DEL_IF at its address), 'absent' → only if the key is still absent, 'none' → unconditional.
 */
export async function judgeWrite(
  engine: Engine,
  method: 'PUT' | 'DELETE',
  conditions: ConditionalHeaders,
  entry: IndexEntry | undefined,
  nowMs: number,
): Promise<ConditionVerdict> {
  const current = entry === undefined ? null : validatorsOf(entry, (await blobInfo(engine, entry)).etag);
  return evaluateConditions(method, conditions, current, nowMs);
}

type DeleteOutcome = 204 | 404 | { failed: string };

/** A conditional DELETE is judged again this many times when the blob changes under it. */
const DELETE_ATTEMPTS = 3;

function deleteAny(ctx: BlobContext, key: Buffer): Promise<DeleteOutcome> {
  return ctx.engine.delete([key]).then((count) => (count === 1 ? 204 : 404));
}

/**
 * A DELETE with If-Match / If-Unmodified-Since / If-None-Match: judged on the current blob, then
 * a DEL_IF of that very needle, so the judgement and the delete are one atomic step in the
 * index: a blob replaced in between is never deleted on its predecessor's validators; the new
 * one is judged afresh instead. A failed precondition deletes nothing.
 */
async function deleteIf(ctx: BlobContext, key: Buffer, conditions: ConditionalHeaders): Promise<DeleteOutcome> {
  for (let attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
    const entry = await ctx.engine.lookupLive(key);
    // RFC 9110 §13.2.1: without its conditions this DELETE would be 404, so they are not asked.
    if (entry === undefined) return 404;
    const { volume, offset } = entry.address;
    const verdict = await judgeWrite(ctx.engine, 'DELETE', conditions, entry, ctx.now());
    if (verdict.kind !== 'proceed') return { failed: `${verdict.kind === 'failed' ? verdict.header : 'If-None-Match'} does not hold` };
    if (verdict.guard === 'none') return deleteAny(ctx, key); // every field was ignored (a bad date)
    const { results } = await ctx.engine.write([], [{ code: OpCode.DelIf, key, volume, offset }]);
    if (results[0] === 1) {
      ctx.engine.notify([{ event: 'del', key }]);
      return 204;
    }
  }
  return { failed: `the blob changed ${DELETE_ATTEMPTS} times while its preconditions were judged; nothing was deleted` };
}

