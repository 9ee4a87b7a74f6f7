// The blob listing route: GET and HEAD /v1/blobs/?prefix=&delimiter=&cursor=&limit= (docs/http.md
// §Listing). Keys under a prefix with their size, ETag, Last-Modified and Content-Type, and,
// with a delimiter, the "folders" below the prefix rolled up into common prefixes, as S3's
// ListObjectsV2 answers them, so a client browses `dir/` like a folder.
//
// The index is a hash table, not a sorted tree, so a listing walks it with the index scan (the
// prefix becomes a MATCH pattern the index filters on) and sorts each page by key bytes:
// - order is by key within a page, not across pages;
// - the cursor is the index scan cursor (opaque to clients: a decimal string), so following it
//   yields every key present throughout exactly once while the index does not grow, and at
//   least once across a growth (dictScan's promise);
// - a common prefix rolls up the keys of its page only: one that has keys on several pages
//   comes on each of them, and a client merges them (no bounded state could dedupe them).
// A page gathers at most `limit` index entries, so keys plus common prefixes <= limit.
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Engine } from '../db/engine.js';
import { cheapEtag } from './blob_info.js';
import { formatTtlSeconds, httpDate, parseCount, parseQuery } from '../protocol/http_params.js';
import { INTERNAL_TEXT, reportInternal } from '../runtime/errors.js';
import { valueLengthOf, type IndexEntry } from '../storage/types.js';
import { gatherEntries, jsonKey } from './http_api.js';
import { BLOB_PREFIX, type BlobContext } from './http_blobs.js';
import { statusLine, statusOfCode, watchAbort, type ResponseState } from './http_util.js';

export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 10_000;
/** One character of any script in UTF-8; S3 tools use '/'. */
export const MAX_DELIMITER_BYTES = 4;
/** Index scan cursors are 32-bit. */
const MAX_CURSOR = 2 ** 32 - 1;

/** One listed key, as the JSON answer carries it. */
export interface ListedEntry {
  /** UTF-8 text when the key is valid UTF-8, else percent-encoded (as /v1/keys). */
  key: string;
  size: number;
  /** The content ETag; null for a value without a stored digest too large to hash for a listing. */
  etag: string | null;
  /** IMF-fixdate of the write, null when the index does not know it. */
  last_modified: string | null;
  content_type: string;
  /** Seconds left to live, rounded up; -1: no expiry (as X-Brise-TTL). */
  ttl: number;
}

/** What a listing knows of a key besides its index entry: from its needle's metadata. */
export interface EntryDetails {
  etag: string | null;
  contentType: string;
}

/** Values without a stored digest are hashed for a listing only up to this size. */
const LIST_HASH_UP_TO = 1024 * 1024;

/** The details of each entry, read from its needle's metadata section (one small read each). */
export async function entryDetails(engine: Engine, entries: IndexEntry[]): Promise<Map<IndexEntry, EntryDetails>> {
  const out = new Map<IndexEntry, EntryDetails>();
  await Promise.all(entries.map(async (e) => {
    const { etag, meta } = await cheapEtag(engine, e, LIST_HASH_UP_TO);
    const contentType = meta?.headers.find(([n]) => n === 'Content-Type')?.[1] ?? 'application/octet-stream';
    out.set(e, { etag, contentType });
  }));
  return out;
}

/** What a listing says of one key: the one place that does. */
export function describeEntry(key: Uint8Array, entry: IndexEntry, nowMs: number, details: EntryDetails | undefined): ListedEntry {
  const modified = entry.modifiedAt ?? 0;
  return {
    key: jsonKey(key),
    size: valueLengthOf(entry.address, key.length),
    etag: details?.etag ?? null,
    last_modified: modified > 0 ? httpDate(modified) : null,
    content_type: details?.contentType ?? 'application/octet-stream',
    ttl: formatTtlSeconds(entry.expiresAt, nowMs),
  };
}

export interface ListQuery {
  prefix: Buffer;
  /** Empty: no roll-up. */
  delimiter: Buffer;
  /** 0: from the start. */
  cursor: number;
  limit: number;
}

type Parsed = { ok: true; query: ListQuery } | { ok: false; code: string; message: string };

/** The query of a listing; `+` is a space (form decoding), so a key's `+` is sent as %2B. */
export function parseListQuery(raw: string | undefined, maxKeyLength: number): Parsed {
  const q = parseQuery(raw);
  const prefix = Buffer.from(q.get('prefix') ?? '', 'utf8');
  if (prefix.length > maxKeyLength) return bad('BAD_REQUEST', `prefix longer than the longest key (${maxKeyLength} bytes)`);
  const delimiter = Buffer.from(q.get('delimiter') ?? '', 'utf8');
  if (delimiter.length > MAX_DELIMITER_BYTES) return bad('BAD_REQUEST', `delimiter longer than ${MAX_DELIMITER_BYTES} bytes`);
  const limit = parseCount(q.get('limit'), DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
  if (!limit.ok) return bad('BAD_REQUEST', limit.message.replace('count', 'limit'));
  const cursor = parseCursor(q.get('cursor') ?? '');
  if (cursor === null) return bad('BAD_CURSOR', 'cursor must be the next_cursor of the last page, or empty to start');
  return { ok: true, query: { prefix, delimiter, cursor, limit: limit.n } };
}

/** The answer of one page, from its entries in any order. */
export function listingBody(q: ListQuery, entries: IndexEntry[], nextCursor: number, nowMs: number, details: Map<IndexEntry, EntryDetails>): Record<string, unknown> {
  const sorted = [...entries].sort((a, b) => Buffer.compare(a.key, b.key));
  const keys: ListedEntry[] = [];
  const commonPrefixes: string[] = [];
  for (const e of sorted) {
    const rolled = commonPrefixOf(e.key, q.prefix, q.delimiter);
    if (rolled === null) keys.push(describeEntry(e.key, e, nowMs, details.get(e)));
    // Sorted keys that share a common prefix are adjacent: comparing with the last one dedupes.
    else if (commonPrefixes[commonPrefixes.length - 1] !== rolled) commonPrefixes.push(rolled);
  }
  return {
    prefix: jsonKey(q.prefix),
    delimiter: jsonKey(q.delimiter),
    keys,
    common_prefixes: commonPrefixes,
    next_cursor: nextCursor === 0 ? null : String(nextCursor),
    truncated: nextCursor !== 0,
  };
}

/** GET (head = false) and HEAD of the listing. */
export function listBlobs(res: HttpResponse, req: HttpRequest, ctx: BlobContext, head: boolean): void {
  const startedAt = ctx.now();
  const method = head ? 'HEAD' : 'GET';
  const state = watchAbort(res);
  const parsed = parseListQuery(req.getQuery(), ctx.maxKeyLength);
  if (!parsed.ok) {
    answer(res, state, 400, { error: parsed.message, code: parsed.code }, head);
    ctx.observe('list', method, 400, 0, 0, startedAt);
    return;
  }
  const q = parsed.query;
  const page = gatherEntries(ctx.engine.ports.index, {
    cursor: q.cursor,
    count: q.limit,
    match: q.prefix.length === 0 ? undefined : prefixPattern(q.prefix),
    now: () => ctx.now(),
    gone: () => state.aborted,
  });
  const described = page.then(async (p) => {
    const listed = p.entries.filter((e) => commonPrefixOf(e.key, q.prefix, q.delimiter) === null);
    return { p, details: await entryDetails(ctx.engine, listed) };
  });
  void described.then(
    ({ p, details }) => {
      const bytes = answer(res, state, 200, listingBody(q, p.entries, p.cursor, ctx.now(), details), head);
      ctx.observe('list', method, 200, 0, bytes, startedAt);
    },
    (err: unknown) => {
      const status = answerFailure(res, state, err, head);
      ctx.observe('list', method, status, 0, 0, startedAt);
    },
  );
}

/** Registers GET and HEAD of the listing, each behind `wrap` (the front end's guard). */
export function registerListing(
  app: TemplatedApp,
  wrap: (route: string, handler: (res: HttpResponse, req: HttpRequest) => void) => (res: HttpResponse, req: HttpRequest) => void,
  ctx: BlobContext,
): void {
  // A static route wins over the blob routes' wildcard `/v1/blobs/*` in uWS, whatever the order.
  app.get(BLOB_PREFIX, wrap('list', (res, req) => listBlobs(res, req, ctx, false)));
  app.head(BLOB_PREFIX, wrap('list', (res, req) => listBlobs(res, req, ctx, true)));
}

// ---- private helpers ----

function bad(code: string, message: string): Parsed {
  return { ok: false, code, message };
}

function parseCursor(text: string): number | null {
  if (text === '') return 0;
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n <= MAX_CURSOR ? n : null;
}

const GLOB_SPECIAL = new Set([0x2a, 0x3f, 0x5b, 0x5d, 0x5c]); // * ? [ ] \

/** `prefix*` as an index MATCH pattern, the prefix's glob characters escaped. */
export function prefixPattern(prefix: Uint8Array): Buffer {
  const out: number[] = [];
  for (const b of prefix) {
    if (GLOB_SPECIAL.has(b)) out.push(0x5c);
    out.push(b);
  }
  out.push(0x2a);
  return Buffer.from(out);
}

/** `prefix + part + delimiter` when the key holds the delimiter after the prefix, else null. */
function commonPrefixOf(key: Uint8Array, prefix: Buffer, delimiter: Buffer): string | null {
  if (delimiter.length === 0) return null;
  const at = Buffer.from(key.buffer, key.byteOffset, key.byteLength).indexOf(delimiter, prefix.length);
  return at < 0 ? null : jsonKey(key.subarray(0, at + delimiter.length));
}

/** A JSON answer; for HEAD its status and headers alone (RFC 9110 §9.3.2). Answers the body bytes. */
function answer(res: HttpResponse, state: ResponseState, status: number, body: unknown, head: boolean): number {
  if (state.aborted || state.done) return 0;
  state.done = true;
  const json = JSON.stringify(body);
  const length = Buffer.byteLength(json, 'utf8');
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'application/json');
    if (head) res.endWithoutBody(length);
    else res.end(json);
  });
  return head ? 0 : length;
}

/** A thrown error as an answer, as sendFailure does (a bug's message is logged, not sent). */
function answerFailure(res: HttpResponse, state: ResponseState, err: unknown, head: boolean): number {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
  if (code === 'INTERNAL') reportInternal(err);
  const message = code === 'INTERNAL' ? INTERNAL_TEXT : typeof e.message === 'string' ? e.message : String(err);
  const status = statusOfCode(code);
  answer(res, state, status, { error: message, code }, head);
  return status;
}
