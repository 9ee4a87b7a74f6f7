// The non-blob routes of the HTTP front end: key listing, scan, status and metrics. Listing is
// bounded (a KEYS over HTTP never builds an unbounded answer: it says when it stopped).
import { volumeUsage } from '../db/volume_usage.js';
import { percentDone, type Progress, type ScrubSummary, type VacuumReport } from '../protocol/operations.js';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Engine } from '../db/engine.js';
import { encodeBlobKey } from '../protocol/http_keys.js';
import { parseCount, parseQuery } from '../protocol/http_params.js';
import type { ActorStatusLine } from '../protocol/frontend_protocol.js';
import type { IndexPort } from '../db/ports.js';
import { keyHash } from '../storage/key_hash.js';
import type { IndexEntry } from '../storage/types.js';
import { sendError, sendFailure, sendJson, statusLine, statusOfFailure, watchAbort } from './http_util.js';

/** Keys one /v1/keys answer holds at most; past it `truncated` is true (use /v1/scan). */
export const MAX_KEYS_ANSWER = 10_000;
const SCAN_PAGE = 1000;
const MAX_SCAN_COUNT = 10_000;

export interface ApiContext {
  engine: Engine;
  now(): number;
  startedAt: number;
  /** The supervisor's view of the actors (asked of main). */
  actors(): Promise<ActorStatusLine[]>;
  /** Prometheus text for the whole master (aggregated by main). */
  metrics(): Promise<string>;
  observe(route: string, method: string, status: number, bytesIn: number, bytesOut: number, startedAt: number): void;
  /** The `replication` object of /v1/status (docs/replica.md); absent: not shown. */
  replication?(): Promise<{ healthy: boolean; view: Record<string, unknown> }>;
  /** Runs a vacuum (main runs it for the whole master) and answers its reports. */
  vacuum?(volume?: number): Promise<VacuumReport[]>;
  /** The long operations in progress. */
  operations?(): Promise<Progress[]>;
  /** The last scrub's summary. */
  lastScrub?(): Promise<ScrubSummary | null>;
}

/** A key in JSON: UTF-8 text when it is valid UTF-8, else percent-encoded (as in URLs). */
export function jsonKey(key: Uint8Array): string {
  const text = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8');
  return Buffer.from(text, 'utf8').equals(key) ? text : encodeBlobKey(key);
}

export function listKeys(res: HttpResponse, req: HttpRequest, ctx: ApiContext): void {
  const startedAt = ctx.now();
  const query = parseQuery(req.getQuery());
  const state = watchAbort(res);
  const pattern = query.get('pattern') ?? '*';
  const limit = parseCount(query.get('limit'), MAX_KEYS_ANSWER, MAX_KEYS_ANSWER);
  if (!limit.ok) {
    sendError(res, state, 400, 'BAD_REQUEST', limit.message);
    ctx.observe('keys', 'GET', 400, 0, 0, startedAt);
    return;
  }
  void (async () => {
    const keys: string[] = [];
    let cursor = 0;
    let truncated = false;
    do {
      const page = await ctx.engine.ports.index.scan(cursor, SCAN_PAGE, Buffer.from(pattern, 'utf8'));
      for (const e of page.entries) {
        if (keys.length >= limit.n) {
          truncated = true;
          break;
        }
        keys.push(jsonKey(e.key));
      }
      cursor = page.cursor;
    } while (cursor !== 0 && !truncated && !state.aborted);
    return { keys, count: keys.length, truncated };
  })().then(
    (body) => {
      sendJson(res, state, 200, body);
      ctx.observe('keys', 'GET', 200, 0, 0, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('keys', 'GET', 500, 0, 0, startedAt);
    },
  );
}

export function scanKeys(res: HttpResponse, req: HttpRequest, ctx: ApiContext): void {
  const startedAt = ctx.now();
  const query = parseQuery(req.getQuery());
  const state = watchAbort(res);
  const cursorText = query.get('cursor') ?? '0';
  const cursor = Number(cursorText);
  if (!/^[0-9]{1,16}$/.test(cursorText) || !Number.isSafeInteger(cursor)) {
    sendError(res, state, 400, 'BAD_CURSOR', `cursor must be what the last scan answered, got ${JSON.stringify(cursorText)}`);
    ctx.observe('scan', 'GET', 400, 0, 0, startedAt);
    return;
  }
  const count = parseCount(query.get('count'), 100, MAX_SCAN_COUNT);
  if (!count.ok) {
    sendError(res, state, 400, 'BAD_REQUEST', count.message);
    ctx.observe('scan', 'GET', 400, 0, 0, startedAt);
    return;
  }
  const match = query.get('match') ?? query.get('pattern');
  void scanPage(ctx, cursor, count.n, match === null ? undefined : Buffer.from(match, 'utf8')).then(
    (page) => {
      sendJson(res, state, 200, { next_cursor: page.cursor, keys: page.keys, count: page.keys.length });
      ctx.observe('scan', 'GET', 200, 0, 0, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('scan', 'GET', 500, 0, 0, startedAt);
    },
  );
}

/** One page of /v1/scan: up to `count` keys, none twice (see gatherEntries). */
async function scanPage(ctx: ApiContext, cursor: number, count: number, match: Uint8Array | undefined): Promise<{ cursor: number; keys: string[] }> {
  const page = await gatherEntries(ctx.engine.ports.index, { cursor, count, match, now: () => ctx.now() });
  return { cursor: page.cursor, keys: page.entries.map((e) => jsonKey(e.key)) };
}

// ---- pages of the index scan (shared by /v1/scan and the blob listing) ----------------------

/** How long a page keeps gathering once it holds a key (an index full of deleted keys). */
const PAGE_BUDGET_MS = 1000;
/**
 * The most an index scan round is asked for while it finds nothing (see gatherEntries): its
 * visits grow with it, and so does the reply should it then find a dense stretch of keys.
 */
const MAX_ROUND_ASK = 1024;

export interface PageRequest {
  /** An index scan cursor: 0 starts, a page's `cursor` goes on. */
  cursor: number;
  count: number;
  match: Uint8Array | undefined;
  now(): number;
  /** True when nobody waits for the page any more (the client went away). */
  gone?(): boolean;
}

/** Entries of one page and the cursor that goes on after them (0: the scan is done). */
export interface EntryPage {
  cursor: number;
  entries: IndexEntry[];
}

/**
 * One page of at most `count` live entries from `cursor` on, each key once, and a cursor that
 * a client follows to see every key present throughout at least once (exactly once while the
 * index does not grow), as Redis' SCAN. Why it is more than one index scan (defect 5:
 * `cursor=0&count=2` over 7 keys answered no keys and cursor 160):
 * - an index scan reads at most 10 × count non-empty buckets (Redis' COUNT is work, not
 *   keys), and buckets hold deleted and expired entries until a rebuild, so over such an
 *   index or a selective MATCH one round finds little or nothing: rounds go on until the page
 *   is full or the scan ends, asking for more each round that found nothing;
 * - an index scan answers whole buckets, so it may go past count: the page ends before the
 *   bucket that would overflow it, and the cursor is that bucket (the cursor of bucket b in
 *   dictScan order is b, and b = keyHash(key) & (B - 1), docs/formats.md §Hash index). Only a
 *   first bucket holding more than count keys makes a page longer than count: a cursor cannot
 *   point inside a bucket.
 * B is asked before the first round: the index only grows, and a cursor made with a smaller B
 * is one the larger table resumes at or before (keys may come again on the next page, never
 * missed). A page that filled exactly looks ahead for a key, so the last page is not empty.
 */
export async function gatherEntries(index: IndexPort, req: PageRequest): Promise<EntryPage> {
  const mask = (await index.stats()).bucketCount - 1;
  const entries: IndexEntry[] = [];
  const seen = new Set<string>();
  const started = req.now();
  let next = req.cursor;
  let ask = req.count;
  while (entries.length < req.count) {
    if (req.gone?.() === true) break;
    if (entries.length > 0 && req.now() - started > PAGE_BUDGET_MS) break;
    const round = await index.scan(next, ask, req.match);
    const fresh = round.entries.filter((e) => !seen.has(keyId(e.key)));
    const room = req.count - entries.length;
    const taken = wholeBuckets(fresh, room, mask, entries.length === 0);
    for (const e of fresh.slice(0, taken)) {
      seen.add(keyId(e.key));
      entries.push(e);
    }
    if (taken < fresh.length) {
      next = resumeCursor(fresh[taken]!, mask, next);
      return { cursor: next, entries };
    }
    next = round.cursor;
    if (next === 0) return { cursor: 0, entries };
    ask = round.entries.length === 0 ? Math.max(ask, Math.min(ask * 4, MAX_ROUND_ASK)) : req.count - entries.length;
  }
  return { cursor: entries.length >= req.count ? await lookAhead(index, next, req, started) : next, entries };
}

/** How many of `entries` (in scan order) fit in `room` as whole buckets; at least one bucket when `first`. */
function wholeBuckets(entries: IndexEntry[], room: number, mask: number, first: boolean): number {
  let i = 0;
  while (i < entries.length) {
    const bucket = keyHash(entries[i]!.key) & mask;
    let j = i + 1;
    while (j < entries.length && (keyHash(entries[j]!.key) & mask) === bucket) j++;
    if (j > room && !(first && i === 0)) break;
    i = j;
  }
  return i;
}

/**
 * The cursor of the bucket of `e`. It is never 0 (0 is "done"): bucket 0 comes first in the
 * walk, so it is never left behind after another bucket of the same round; should it be,
 * the page goes on from where this round started (some keys come twice, none are lost).
 */
function resumeCursor(e: IndexEntry, mask: number, roundStart: number): number {
  const bucket = keyHash(e.key) & mask;
  return bucket !== 0 ? bucket : roundStart;
}

/**
 * 0 when nothing live (or matching) is left after `cursor`, else `cursor`: rounds asking more
 * each time (deleted keys may lie between), until one finds a key, the walk ends, or the
 * page's time is up (then the next page may be the empty last one).
 */
async function lookAhead(index: IndexPort, cursor: number, req: PageRequest, started: number): Promise<number> {
  let at = cursor;
  for (let ask = 1; at !== 0 && req.now() - started <= PAGE_BUDGET_MS; ask = Math.min(ask * 8, MAX_ROUND_ASK)) {
    const peek = await index.scan(at, ask, req.match);
    if (peek.entries.length > 0) return cursor;
    at = peek.cursor;
  }
  return at === 0 ? 0 : cursor;
}

function keyId(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export function status(res: HttpResponse, _req: HttpRequest, ctx: ApiContext): void {
  const startedAt = ctx.now();
  const state = watchAbort(res);
  const replication = ctx.replication?.() ?? Promise.resolve(null);
  const operations = ctx.operations?.().catch(() => []) ?? Promise.resolve([]);
  const scrub = ctx.lastScrub?.().catch(() => null) ?? Promise.resolve(null);
  void Promise.all([volumeUsage(ctx.engine.ports), ctx.engine.ports.index.stats(), ctx.actors(), ctx.engine.ports.volumes.groupInfo(), replication, operations, scrub]).then(
    ([volumes, index, actors, groups, repl, ops, lastScrub]) => {
      const down = actors.filter((a) => a.state !== 'running');
      const stale = groups.some((g) => g.members.some((m) => m.state !== 'healthy'));
      // Values the last scrub found damaged with no good copy: reads of them error.
      const damaged = (lastScrub?.damaged ?? 0) > 0;
      sendJson(res, state, 200, {
        status: down.length === 0 && !stale && !damaged && repl?.healthy !== false ? 'ok' : 'degraded',
        uptime_seconds: Math.floor((ctx.now() - ctx.startedAt) / 1000),
        wal: { last_lsn: index.appliedLsn, index_durable_lsn: index.durableLsn },
        index: { keys: index.liveCount, buckets: index.bucketCount, entries: index.entryCount, rebuilding: index.rebuilding },
        volumes: volumes.map((v) => ({ id: v.id, group: v.group, drive: v.drive, size_bytes: v.sizeBytes, live_bytes: v.liveBytes, garbage_bytes: v.garbageBytes, ...(v.retired ? { retired: true } : {}) })),
        groups: groups.map((g) => ({
          id: g.id,
          drive: g.drive,
          writable: g.writable,
          members: g.members.map((m) => ({ server: m.url, state: m.state, lag_bytes: m.lagBytes, repairs: m.repairs, last_error: m.lastError })),
        })),
        actors: actors.map((a) => ({ name: a.name, thread: a.threadId, state: a.state, restarts: a.restarts })),
        operations: ops.map(progressJson),
        scrub: lastScrub === null ? null : scrubJson(lastScrub),
        ...(repl === null ? {} : { replication: repl.view }),
      });
      ctx.observe('status', 'GET', 200, 0, 0, startedAt);
    },
    (err: unknown) => sendFailure(res, state, err),
  );
}

export function metrics(res: HttpResponse, _req: HttpRequest, ctx: ApiContext): void {
  const state = watchAbort(res);
  // Counted before it is built, so a scrape sees itself (as Prometheus exporters do).
  ctx.observe('metrics', 'GET', 200, 0, 0, ctx.now());
  void ctx.metrics().then(
    (text) => {
      if (state.aborted || state.done) return;
      state.done = true;
      res.cork(() => {
        res.writeStatus(statusLine(200)).writeHeader('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
        res.end(text);
      });
    },
    (err: unknown) => sendFailure(res, state, err),
  );
}

/** A long operation as /v1/status shows it: percent done, bytes, ETA. */
export function progressJson(p: Progress): Record<string, unknown> {
  const percent = percentDone(p);
  const amounts = p.unit === 'keys' ? { done_keys: p.doneBytes, total_keys: p.totalBytes } : { done_bytes: p.doneBytes, total_bytes: p.totalBytes };
  return { operation: p.operation, target: p.target, percent, ...amounts, started_at: new Date(p.startedAt).toISOString(), eta_seconds: p.etaMs < 0 ? null : Math.ceil(p.etaMs / 1000) };
}

/**
 * POST /v1/admin/vacuum[?volume=N]: runs a vacuum and answers its reports when it is done (a
 * call while one runs joins it). 200 with the reports; 400 for a bad volume id.
 */
export function vacuum(res: HttpResponse, req: HttpRequest, ctx: ApiContext): void {
  const startedAt = ctx.now();
  const state = watchAbort(res);
  const query = parseQuery(req.getQuery());
  const raw = query.get('volume');
  const volume = raw === null ? undefined : Number(raw);
  // What it does not understand is refused, never taken for "every volume": a typo (?vol=3), a
  // second volume, or a body (the volume goes in the query string).
  const unknown = [...query.keys()].find((k) => k !== 'volume');
  const refusal =
    unknown !== undefined ? `unknown parameter ${JSON.stringify(unknown.slice(0, 40))}: the only one is ?volume=ID`
    : query.getAll('volume').length > 1 ? 'one ?volume= at a time'
    : hasBody(req) ? 'this route takes no body: the volume goes in the query string (?volume=ID)'
    : raw !== null && (!/^[0-9]{1,15}$/.test(raw) || !Number.isSafeInteger(volume)) ? `volume must be a volume id (VOLINFO lists them), not ${JSON.stringify(raw.slice(0, 40))}`
    : null;
  if (refusal !== null) {
    // A body left unread must not be parsed as the next request: the connection closes.
    sendError(res, state, 400, 'BAD_ARGUMENT', refusal, {}, hasBody(req));
    ctx.observe('vacuum', 'POST', 400, 0, 0, startedAt);
    return;
  }
  if (ctx.vacuum === undefined) {
    sendError(res, state, 501, 'NOT_IMPLEMENTED', 'this server does not vacuum');
    return;
  }
  ctx.vacuum(volume).then(
    (reports) => {
      sendJson(res, state, 200, { volumes: reports.map(reportJson) });
      ctx.observe('vacuum', 'POST', 200, 0, 0, startedAt);
    },
    (err: unknown) => {
      sendFailure(res, state, err);
      ctx.observe('vacuum', 'POST', statusOfFailure(err), 0, 0, startedAt);
    },
  );
}

/** The last scrub as /v1/status shows it; `damaged` lists the keys with no good copy left. */
function scrubJson(s: ScrubSummary): Record<string, unknown> {
  return {
    started_at: new Date(s.startedAt).toISOString(), duration_ms: s.durationMs, volumes: s.volumes, needles: s.needles, bytes: s.bytes,
    invalid: s.invalid, unreferenced: s.unreferenced, repaired: s.repaired, damaged: s.damaged,
    damaged_needles: s.damagedNeedles.map((d) => ({ key: jsonKey(d.key), volume: d.volume, offset: d.offset, length: d.length, error: d.error })),
    errors: s.errors,
  };
}

function hasBody(req: HttpRequest): boolean {
  return (req.getHeader('content-length') || '0') !== '0' || req.getHeader('transfer-encoding') !== '';
}

function reportJson(r: VacuumReport): Record<string, unknown> {
  return { volume: r.volume, group: r.group, moved: r.moved, copied_bytes: r.copiedBytes, changed: r.changed, expired: r.expired, freed_bytes: r.freedBytes, removed: r.removed, duration_ms: r.durationMs, errors: r.errors };
}
