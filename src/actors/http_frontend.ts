// An HTTP front end: one uWebSockets.js app on its own worker thread. Several of them listen on
// the same port (uSockets binds with SO_REUSEPORT, so this works on Node 20 too) and the kernel
// spreads connections over them: one per core.
// Owns: its app and listening socket, its metrics registry, its WebSocket clients.
// It reaches the data through its own engine over the channels to the store's actors and reads
// committed needle bytes straight from the volume files.
// Invariants: every request is answered or its connection closed; a body is never held whole
// in memory; with a token configured, nothing is served without `Authorization: Bearer`.
import type { SharedIndexReader } from '../storage/shared_heads.js';
import type { Lookup } from '../db/ports.js';
import uWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { WalFeed } from '../db/wal_feed.js';
import { parseBearer, tokenMatches } from '../protocol/http_params.js';
import { FrontEndMsg, MainMsg, type FrontEndReplies, type FrontEndToMain, type LinkView, type MainToFrontEnd } from '../protocol/frontend_protocol.js';
import { Channel } from '../runtime/channel.js';
import { BLOB_PREFIX, deleteBlob, getBlob, type BlobContext } from '../frontend/http_blobs.js';
import { putBlob } from '../frontend/http_put.js';
import { registerListing } from '../frontend/http_listing.js';
import { listKeys, metrics, scanKeys, status, vacuum, type ApiContext } from '../frontend/http_api.js';
import { HttpMetrics } from '../frontend/http_metrics.js';
import { allowedMethods, headWithoutBody, refuseBadFraming, sendError, unrouted, watchAbort } from '../frontend/http_util.js';
import { registerWebSockets } from '../frontend/ws_routes.js';
import { admitWebSocket, answerPreflight, corsPolicy, sendRefusal, withCors } from '../frontend/http_cors.js';
import { requestAccess, type Access } from '../protocol/url_signing.js';
import { frontEndEngine, storeAdmin } from './front_end.js';
import type { RoleFlag } from '../db/read_only.js';
import { ReplicaTable, createReplicaTable } from '../runtime/replica_table.js';
import { waitUntilApplied } from '../frontend/replication_commands.js';

/** /v1/status's replication object: the link of a replica, or the replicas of a master. */
function replicationStatus(link: LinkView | null, table: ReplicaTable, lastLsn: number, nowMs: number): { healthy: boolean; view: Record<string, unknown> } {
  if (link !== null) {
    return {
      healthy: link.status === 'up',
      view: {
        role: 'replica',
        master: `${link.masterHost}:${link.masterPort}`,
        link_status: link.status,
        history: link.history,
        applied_lsn: link.appliedLsn,
        master_lsn: link.masterLsn,
        lag_records: Math.max(0, link.masterLsn - link.appliedLsn),
        lag_ms: link.lagMs,
        last_io_ms_ago: link.lastIoMsAgo,
        full_resyncs: link.fullResyncs,
        last_error: link.lastError,
      },
    };
  }
  const replicas = table.list().map((r) => ({ ip: r.ip, port: r.port, state: r.state, acked_lsn: r.ackedLsn, lag_records: Math.max(0, lastLsn - r.ackedLsn), last_ack_ms_ago: r.ackedAt === 0 ? null : nowMs - r.ackedAt }));
  // Writes refused for too few good replicas: the master is not doing its job, whatever else holds.
  const refusal = table.writeRefusal(nowMs);
  return {
    healthy: refusal === null,
    view: { role: 'master', last_lsn: lastLsn, writable: refusal === null, ...(refusal === null ? {} : { not_writable: refusal }), min_replicas_to_write: table.minReplicasToWrite, min_replicas_max_lag: table.minReplicasMaxLag, replicas },
  };
}

/** How long a GET with X-Brise-Min-LSN waits for this server to show that LSN (then 503 LAGGING). */
const MIN_LSN_WAIT_MS = 5_000;
import { StoreError } from '../runtime/errors.js';
import { SyncSlotClient } from '../runtime/sync_slot.js';
import { decodeLookupReply } from '../protocol/index_protocol.js';
import type { IndexEntry, SyncPolicy } from '../storage/types.js';
import { lookupOf } from '../db/actor_ports.js';
import { GroupReader } from '../db/group_reader.js';
import type { LocalGroup } from '../storage/registry.js';

export interface HttpFrontendConfig {
  host: string;
  port: number;
  /** A replica's front end: PUT, DELETE and the other writes answer 403 READONLY until a promotion. */
  replica?: boolean;
  /** The master's replicas and min-replicas settings (runtime/replica_table.ts), read-only here. */
  replicaTable?: SharedArrayBuffer;
  /** The volume groups and the drive of each. */
  groups: LocalGroup[];
  dataDir: string;
  /** The store's sync policy (--sync): under 'always' small values ride in their WAL record. */
  sync: SyncPolicy;
  /** Bytes of this thread's needle cache (--needle-cache-size; 0: none); absent: the default. */
  needleCacheBytes?: number;
  /** null: no token required. */
  token: string | null;
  /** Origins whose pages may call the API (CORS; '*' = any); absent or empty: CORS off. */
  corsOrigins?: string[];
  maxBodySize: number;
  maxKeyLength: number;
  /** WebSocket consumers buffered past this many bytes are closed as too slow. */
  wsMaxBackpressure: number;
  startedAt: number;
  /** Shared with the index actor: synchronous lookups for GET and HEAD (sync_slot.ts). */
  lookupSlot?: SharedArrayBuffer;
  /** The index's bucket heads in shared memory: lookups on this thread (storage/shared_heads.ts). */
  indexHeads?: SharedArrayBuffer;
}

interface State {
  env: ActorEnv<HttpFrontendConfig>;
  app: TemplatedApp;
  socket: us_listen_socket;
  port: number;
  /** Closes what the engine of this thread opened. */
  closeEngine(): void;
  metrics: HttpMetrics;
}

const createHttpFrontend: ActorFactory<HttpFrontendConfig> = async (env) => {
  const config = env.config;
  let nextSubscriber = 1;
  const role: RoleFlag = { readOnly: config.replica === true, replicas: new ReplicaTable(config.replicaTable ?? createReplicaTable(1)) };
  const { engine, reader, needles, shared, close: closeEngine } = frontEndEngine(env, config.groups, { maxKeyLength: config.maxKeyLength }, role, config);
  const ports = engine.ports;
  const httpMetrics = new HttpMetrics();
  if (needles instanceof GroupReader) httpMetrics.watchReads(needles.counts);
  const now = (): number => env.clock.now();
  const toMain = new Channel<FrontEndToMain, FrontEndReplies>(env.main);
  const observe = (route: string, method: string, code: number, bytesIn: number, bytesOut: number, startedAt: number): void =>
    httpMetrics.observe(route, method, code, bytesIn, bytesOut, startedAt, now());
  const blobs: BlobContext = { engine, maxKeyLength: config.maxKeyLength, maxBodySize: config.maxBodySize, now, observe };
  if (config.lookupSlot !== undefined) blobs.lookupNow = lookupNowOf(new SyncSlotClient(config.lookupSlot), shared);
  blobs.waitForLsn = async (lsn) => {
    const r = await waitUntilApplied(async () => (await ports.index.stats()).appliedLsn, lsn, MIN_LSN_WAIT_MS, now);
    return r.ok ? r.applied : null;
  };
  const api: ApiContext = {
    engine,
    now,
    startedAt: config.startedAt,
    observe,
    actors: () => toMain.call({ t: FrontEndMsg.Status }),
    metrics: () => toMain.call({ t: FrontEndMsg.Metrics }),
    replication: async () => replicationStatus(await toMain.call({ t: FrontEndMsg.Replication }).catch(() => null), role.replicas!, await ports.wal.lastLsn(), now()),
    vacuum: (volume) => storeAdmin(env).vacuum(volume),
    operations: () => toMain.call({ t: FrontEndMsg.Operations }),
    lastScrub: () => toMain.call({ t: FrontEndMsg.LastScrub }),
  };
  const authorized = (req: HttpRequest): boolean =>
    config.token === null || tokenMatches(parseBearer(req.getHeader('authorization') || undefined), config.token);
  const cors = corsPolicy(config.corsOrigins);
  // The token, or a signed URL (docs/http.md: browsers cannot send a header with a link).
  const accessOf = (req: HttpRequest, websocket: boolean): Access =>
    requestAccess(config.token, { method: req.getMethod(), path: req.getUrl(), query: req.getQuery(), authorization: req.getHeader('authorization') || undefined, websocket }, Math.floor(now() / 1000), config.maxKeyLength);
  const guard = (route: string, handler: (res: HttpResponse, req: HttpRequest) => void) => (res: HttpResponse, req: HttpRequest) => {
    // Before anything is written: every response of this request then carries the CORS headers.
    if (cors !== null) withCors(res, req, cors);
    headWithoutBody(res, req);
    if (refuseBadFraming(res, req)) return void observe(route, req.getMethod().toUpperCase(), 400, 0, 0, now());
    const access = accessOf(req, false);
    if (!access.ok) {
      const method = req.getMethod().toUpperCase();
      sendRefusal(res, access.status, access.code, access.message);
      observe(route, method, access.status, 0, 0, now());
      return;
    }
    handler(res, req);
  };

  const app = uWS.App();
  app.put(`${BLOB_PREFIX}*`, guard('blobs', (res, req) => putBlob(res, req, blobs)));
  app.get(`${BLOB_PREFIX}*`, guard('blobs', (res, req) => getBlob(res, req, blobs, false)));
  app.head(`${BLOB_PREFIX}*`, guard('blobs', (res, req) => getBlob(res, req, blobs, true)));
  app.del(`${BLOB_PREFIX}*`, guard('blobs', (res, req) => deleteBlob(res, req, blobs)));
  registerListing(app, guard, blobs);
  app.get('/v1/keys', guard('keys', (res, req) => listKeys(res, req, api)));
  app.get('/v1/scan', guard('scan', (res, req) => scanKeys(res, req, api)));
  app.get('/v1/status', guard('status', (res, req) => status(res, req, api)));
  app.get('/metrics', guard('metrics', (res, req) => metrics(res, req, api)));
  app.post('/v1/admin/vacuum', guard('vacuum', (res, req) => vacuum(res, req, api)));
  // HEAD wherever GET (RFC 9110 §9.3.2): the same handler; headWithoutBody drops the body.
  app.head('/v1/keys', guard('keys', (res, req) => listKeys(res, req, api)));
  app.head('/v1/scan', guard('scan', (res, req) => scanKeys(res, req, api)));
  app.head('/v1/status', guard('status', (res, req) => status(res, req, api)));
  app.head('/metrics', guard('metrics', (res, req) => metrics(res, req, api)));
  registerWebSockets(app, {
    broker: ports.broker,
    walFeed: new WalFeed(env.peer('wal')),
    nextSubscriberId: () => nextSubscriber++,
    authorize: authorized,
    admit: (req) => admitWebSocket(req, cors, accessOf(req, true)),
    maxBackpressure: config.wsMaxBackpressure,
    maxPayload: 1024 * 1024,
    idleTimeoutSeconds: 120,
    status: api,
  });
  // Preflights need no token: browsers send them without credentials.
  if (cors !== null) {
    app.options('/*', (res, req) => {
      // The same table as the 405's Allow; a URL no route serves allows nothing but OPTIONS.
      const methods = allowedMethods(req.getUrl(), false) ?? [];
      observe('preflight', 'OPTIONS', answerPreflight(res, req, cors, methods), 0, 0, now());
    });
  }
  app.any('/*', (res, req) => {
    if (cors !== null) withCors(res, req, cors);
    headWithoutBody(res, req);
    const a = unrouted(req.getCaseSensitiveMethod(), req.getUrl(), cors !== null);
    if (refuseBadFraming(res, req)) return void observe(a.route, a.method, 400, 0, 0, now());
    sendError(res, watchAbort(res), a.status, a.code, a.message, a.headers);
    // Unknown routes and methods share labels, so a scanner cannot grow the metrics without bound.
    observe(a.route, a.method, a.status, 0, 0, now());
  });

  let socket: us_listen_socket;
  try {
    socket = await listen(app, config);
  } catch (err) {
    // A worker must not exit with uWS handles open on its loop (Node aborts the process).
    app.close();
    throw err;
  }
  const s: State = { env, app, socket, port: uWS.us_socket_local_port(socket), closeEngine, metrics: httpMetrics };
  // A thread that dies with uWS handles open aborts the whole process (Node asserts on them):
  // so an uncaught error closes the app first, then ends this thread; the supervisor restarts
  // it, one-for-one, and the other front ends never notice.
  process.on('uncaughtException', (err) => {
    try {
      uWS.us_listen_socket_close(socket);
      app.close();
    } catch {
      // closing is best effort: the exit below must happen
    }
    process.stderr.write(`http front end crashed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
  return {
    // Main tells every front end the settings that are the whole master's (CONFIG SET).
    handle: (_from, body) => {
      const msg = body as MainToFrontEnd;
      if (msg.t === MainMsg.Promoted) {
        role.readOnly = false;
        return null;
      }
      if (msg.t === MainMsg.Forget) {
        for (const v of msg.volumes) reader.forget(v);
        return null;
      }
      if (msg.t !== MainMsg.Configure) throw new StoreError('BAD_ARGUMENT', 'an HTTP front end takes no requests but Configure, Promoted and Forget');
      engine.notifyFlags = msg.notifyKeyspaceEvents;
      return null;
    },
    control: {
      address: () => ({ host: config.host, port: s.port }),
      metricsJson: () => s.metrics.json(),
    },
    stop: () => stop(s),
  };
};
export default createHttpFrontend;

/**
 * How long a GET may hold this thread waiting for the index's synchronous answer before it asks
 * by message instead. The index answers between its messages, in tens of microseconds when it is
 * idle; a long wait means it is busy (a large apply, a rebuild slice). The wait is paid at most
 * once per busy spell: after a timeout the slot stays with the index until it answers, and the
 * GETs meanwhile go by message at once (SyncSlotClient.call returns null without waiting).
 */
const LOOKUP_NOW_MS = 20;

/** The synchronous lookup (the shared heads, else the shared slot), as BlobContext.lookupNow. */
function lookupNowOf(slot: SyncSlotClient, shared: SharedIndexReader | undefined): (key: Buffer) => IndexEntry | 'absent' | null {
  const bySlot = (key: Buffer): Lookup | null => {
    const bytes = slot.call(key, LOOKUP_NOW_MS);
    const r = bytes === null ? undefined : decodeLookupReply(bytes);
    return r === undefined ? null : lookupOf(key, r);
  };
  return (key) => {
    const found = shared?.lookup(key) ?? bySlot(key);
    if (found === null) return null;
    // An expired entry: the message path logs its deletion (lazy expiry) and answers 404.
    if (found.expired !== undefined) return null;
    return found.entry ?? 'absent';
  };
}

function listen(app: TemplatedApp, config: HttpFrontendConfig): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(config.host, config.port, (socket) => {
      if (socket) resolve(socket);
      else reject(new StoreError('BAD_ARGUMENT', `cannot listen on ${config.host}:${config.port} for HTTP: address in use or not allowed`));
    });
  });
}

function stop(s: State): void {
  // Stop accepting, then close every socket of the app: a worker must not exit with uWS
  // handles open on its loop (Node aborts the whole process on that).
  uWS.us_listen_socket_close(s.socket);
  s.app.close();
  s.closeEngine();
}
