// The non-blob routes of the HTTP front end: key listing, scan, status and metrics. Listing is
// bounded (a KEYS over HTTP never builds an unbounded answer: it says when it stopped).
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Engine } from '../db/engine.js';
import { encodeBlobKey } from '../protocol/http_keys.js';
import { parseCount, parseQuery } from '../protocol/http_params.js';
import type { ActorStatusLine } from '../protocol/frontend_protocol.js';
import { sendError, sendFailure, sendJson, statusLine, watchAbort } from './http_util.js';

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

/** Index scan rounds one /v1/scan request may take while it gathers `count` keys. */
const SCAN_ROUNDS = 64;

/**
 * One page of /v1/scan: index scans (each visits a bounded slice of buckets, as Redis' SCAN)
 * until `count` keys are gathered, the scan ends, or SCAN_ROUNDS rounds have run, so a page
 * is rarely empty while the index is mostly empty buckets; the cursor stays exact.
 */
async function scanPage(ctx: ApiContext, cursor: number, count: number, match: Uint8Array | undefined): Promise<{ cursor: number; keys: string[] }> {
  const keys: string[] = [];
  let next = cursor;
  for (let round = 0; round < SCAN_ROUNDS; round++) {
    const page = await ctx.engine.ports.index.scan(next, count - keys.length, match);
    for (const e of page.entries) keys.push(jsonKey(e.key));
    next = page.cursor;
    if (next === 0 || keys.length >= count) break;
  }
  return { cursor: next, keys };
}

export function status(res: HttpResponse, _req: HttpRequest, ctx: ApiContext): void {
  const startedAt = ctx.now();
  const state = watchAbort(res);
  void Promise.all([ctx.engine.ports.volumes.list(), ctx.engine.ports.index.stats(), ctx.actors()]).then(
    ([volumes, index, actors]) => {
      const down = actors.filter((a) => a.state !== 'running');
      sendJson(res, state, 200, {
        status: down.length === 0 ? 'ok' : 'degraded',
        uptime_seconds: Math.floor((ctx.now() - ctx.startedAt) / 1000),
        wal: { last_lsn: index.appliedLsn, index_durable_lsn: index.durableLsn },
        index: { keys: index.liveCount, buckets: index.bucketCount, entries: index.entryCount, rebuilding: index.rebuilding },
        volumes: volumes.map((v) => ({ id: v.id, group: v.group, drive: v.drive, size_bytes: v.sizeBytes })),
        actors: actors.map((a) => ({ name: a.name, thread: a.threadId, state: a.state, restarts: a.restarts })),
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
