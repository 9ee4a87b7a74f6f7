// runMaster: the master process's composition. The store's actors (volume writers, WAL
// committer, index, broker) and the TCP front ends run as actors under one supervisor in this
// (main) thread; main itself serves no client: it supervises, answers the front ends' status
// requests (INFO actors), logs actor deaths and restarts, and stops everything in order.
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { openStore } from '../wiring/open.js';
import type { ActorSpec } from '../runtime/topology.js';
import type { Supervisor } from '../runtime/supervisor.js';
import { storeActorNames, volumeActorName } from '../protocol/store_actors.js';
import { MEMBER_EVENT, VolumeMsg, type MemberEvent, type VolumeReplies, type VolumeRequest } from '../protocol/volume_protocol.js';
import { Channel } from '../runtime/channel.js';
import type { TcpFrontendConfig } from '../actors/tcp_frontend.js';
import type { HttpFrontendConfig } from '../actors/http_frontend.js';
import { createSyncSlot } from '../runtime/sync_slot.js';
import { createSharedHeads } from '../storage/shared_heads.js';
import { DEFAULT_LIMITS } from '../db/api.js';
import { masterMetrics } from './metrics.js';
import { FrontEndMsg, MainMsg, type FrontEndToMain, type LinkView, type MainToFrontEnd } from '../protocol/frontend_protocol.js';
import { StoreError } from '../runtime/errors.js';
import { ReplicaTable, createReplicaTable } from '../runtime/replica_table.js';
import type { MasterConfig } from './master_config.js';
import type { LocalGroup } from '../storage/registry.js';
import { assertPortFree, freePort } from '../runtime/listen.js';
import { assertUwsLoads } from '../frontend/uws_load.js';
import { logActors } from '../wiring/actor_log.js';

export interface RunningMaster {
  readonly tcpPort: number;
  readonly tcpHost: string;
  /** null when HTTP is disabled. */
  readonly httpPort: number | null;
  /** The line protocol's port (`--text-addr`); null when it is off. */
  readonly textPort: number | null;
  /** Stops accepting, lets in-flight commands finish, syncs, stops every actor. */
  stop(): Promise<void>;
  /** Resolves if the store dies for good (an actor given up). */
  readonly done: Promise<void>;
  /** The actors' supervisor: status, and kill() for fault injection in tests (in-process masters only). */
  readonly supervisor?: Supervisor;
}

export function tcpActorName(i: number): string {
  return `tcp-${i}`;
}

export function httpActorName(i: number): string {
  return `http-${i}`;
}

/** Node's net module gained reusePort in 22.12 (and 23.1): only then can threads share a port. */
export function supportsReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** What turns runMaster into a read-only replica's server (src/replica/replica.ts). */
export interface ReplicaRole {
  /** The master's volume groups, each on one of this replica's drives. */
  groups: LocalGroup[];
  /** The link's state, for ROLE, INFO replication and /v1/status. */
  link(): LinkView | null;
  /** REPLICAOF NO ONE: stops following and starts a new history; the store takes writes after. */
  promote(): Promise<{ history: string; lsn: number }>;
}

export async function runMaster(config: MasterConfig, log: Logger, role: ReplicaRole | null = null): Promise<RunningMaster> {
  const startedAt = Date.now();
  const threads = supportsReusePort() ? Math.max(1, Math.min(config.tcpThreads, availableParallelism())) : 1;
  const textAddr = config.textAddr ?? null;
  // Every TCP thread serves the line protocol too; a port 0 must become one port for all of them.
  const text = textAddr === null ? null : { host: textAddr.host, port: textAddr.port === 0 && threads > 1 ? await freePort(textAddr.host) : textAddr.port };
  // Every thread's replicas and the min-replicas settings, in shared memory (runtime/replica_table.ts).
  const replicaTable = createReplicaTable(threads);
  const table = new ReplicaTable(replicaTable);
  if (config.minReplicas !== undefined) {
    table.minReplicasToWrite = config.minReplicas.toWrite;
    table.minReplicasMaxLag = config.minReplicas.maxLagSeconds;
  }
  // The index's bucket heads, shared with every front end: a GET looks its key up on its own
  // thread (storage/shared_heads.ts).
  const indexHeads = createSharedHeads();
  const tcpSpecs = (groups: LocalGroup[], dataDir: string): ActorSpec[] => {
    const store = storeActorNames(groups);
    return Array.from({ length: threads }, (_, i) => {
      const cfg: TcpFrontendConfig = {
        host: config.addr.host,
        port: config.addr.port,
        text,
        reusePort: threads > 1,
        limits: config.tcpLimits,
        requirepass: config.requirepass,
        // SIGN makes URLs the HTTP front ends accept: it signs with their token.
        httpToken: config.httpAddr === null ? null : config.httpToken,
        groups,
        dataDir,
        sync: config.sync,
        ...(config.needleCacheBytes === undefined ? {} : { needleCacheBytes: config.needleCacheBytes }),
        configView: configView(config),
        startedAt,
        replica: role !== null,
        replicaTable,
        thread: i,
        indexHeads,
      };
      return { name: tcpActorName(i), module: new URL('../actors/tcp_frontend.js', import.meta.url), config: cfg, dependsOn: store, talksTo: ['main', ...store] };
    });
  };
  const http = config.httpAddr;
  const httpThreads = http === null ? 0 : Math.max(1, config.httpThreads);
  // Several HTTP threads share one port; a port 0 must become one concrete port for all.
  const httpPort = http === null ? 0 : http.port === 0 && httpThreads > 1 ? await freePort(http.host) : http.port;
  // One shared-memory lookup slot per HTTP thread: a GET answered before its handler returns
  // keeps pipelined requests working under uWS (runtime/sync_slot.ts).
  const lookupSlots = Array.from({ length: httpThreads }, () => createSyncSlot());
  const httpSpecs = (groups: LocalGroup[], dataDir: string): ActorSpec[] => {
    if (http === null) return [];
    const store = storeActorNames(groups);
    return Array.from({ length: httpThreads }, (_, i) => {
      const cfg: HttpFrontendConfig = {
        host: http.host,
        port: httpPort,
        groups,
        dataDir,
        sync: config.sync,
        ...(config.needleCacheBytes === undefined ? {} : { needleCacheBytes: config.needleCacheBytes }),
        token: config.httpToken,
        ...(config.httpCorsOrigins === undefined ? {} : { corsOrigins: config.httpCorsOrigins }),
        maxBodySize: config.maxBodySize,
        maxKeyLength: DEFAULT_LIMITS.maxKeyLength,
        wsMaxBackpressure: 16 * 1024 * 1024,
        startedAt,
        lookupSlot: lookupSlots[i]!,
        indexHeads,
        replica: role !== null,
        replicaTable,
      };
      return { name: httpActorName(i), module: new URL('../actors/http_frontend.js', import.meta.url), config: cfg, dependsOn: store, talksTo: ['main', ...store] };
    });
  };
  // uWebSockets.js (and node:net with reusePort) bind with SO_REUSEPORT, which would let a
  // second master silently share the port and receive half the requests: an exclusive bind
  // first makes "address in use" an error here too.
  if (http !== null) await assertUwsLoads('the HTTP API', '; start with --http "" to run without HTTP');
  if (http !== null && httpPort !== 0) await assertPortFree(http.host, httpPort, 'HTTP');
  if (threads > 1 && config.addr.port !== 0) await assertPortFree(config.addr.host, config.addr.port, 'TCP');
  if (threads > 1 && text !== null) await assertPortFree(text.host, text.port, 'the line protocol');
  const { db, supervisor, groups, startBackground, events } = await openStore(
    config.dataDir,
    {
      drives: config.drives,
      ...(config.logDrive === undefined ? {} : { logDrive: config.logDrive }),
      maxVolumeSize: config.maxVolumeSize,
      sync: config.sync,
      lookupSlots,
      sharedHeads: indexHeads,
      volumeServers: config.volumeServers,
      replicationFactor: config.replicationFactor,
      volumeSecret: config.volumeSecret ?? null,
      ...(role === null ? {} : { replicaGroups: role.groups }),
      ...(config.scrub === undefined ? {} : { scrubRateBytesPerSec: config.scrub.rateMBps * 1024 * 1024, autoScrubEveryMs: config.scrub.everySeconds * 1000 }),
      ...(config.vacuum === undefined ? {} : { vacuum: { threshold: config.vacuum.thresholdPercent / 100, rateBytesPerSec: config.vacuum.rateMBps * 1024 * 1024 }, autoVacuumEveryMs: config.vacuum.everySeconds * 1000 }),
      ...(config.autoCompact === undefined ? {} : { autoCompact: config.autoCompact }),
    },
    (groups, dataDir) => [...tcpSpecs(groups, dataDir), ...httpSpecs(groups, dataDir)],
  );
  logMemberEvents(supervisor, groups, log);
  const httpNames = Array.from({ length: httpThreads }, (_, i) => httpActorName(i));
  const frontEnds = [...Array.from({ length: threads }, (_, i) => tcpActorName(i)), ...httpNames];
  // A removed volume's space comes back once every thread has closed its handle on it.
  events.volumesRemoved = (volumes) => {
    const forget: MainToFrontEnd = { t: MainMsg.Forget, volumes };
    for (const name of frontEnds) void supervisor.peer(name).call(forget).catch(() => undefined);
    log.info({ volumes }, 'vacuum removed volumes');
  };
  events.vacuumed = (reports, auto) => {
    for (const r of reports) {
      const fields = { volume: r.volume, automatic: auto, moved: r.moved, copiedBytes: r.copiedBytes, changed: r.changed, expired: r.expired, freedBytes: r.freedBytes, removed: r.removed, durationMs: r.durationMs };
      if (r.errors.length === 0) log.info(fields, 'vacuumed a volume');
      else log.warn({ ...fields, errors: r.errors.slice(0, 5) }, 'vacuum of a volume did not finish');
    }
  };
  events.damaged = (damaged) => {
    for (const d of damaged.slice(0, 20)) log.error({ volume: d.volume, offset: d.offset, key: Buffer.from(d.key).toString('utf8'), error: d.error }, 'scrub: a damaged needle with no good copy; reads of its key fail until it is written again');
  };
  for (const name of frontEnds) {
    supervisor.peer(name).onRequest((body) => {
      const msg = body as FrontEndToMain;
      if (msg.t === FrontEndMsg.Status) return supervisor.status();
      if (msg.t === FrontEndMsg.Metrics) return masterMetrics(supervisor, db, httpNames, () => ({ link: role?.link() ?? null, replicas: table.list() }));
      if (msg.t === FrontEndMsg.Replication) return role?.link() ?? null;
      if (msg.t === FrontEndMsg.Vacuum) return db.vacuum(msg.volume);
      if (msg.t === FrontEndMsg.Operations) return db.operations();
      if (msg.t === FrontEndMsg.Scrub) return db.scrub(msg.wait);
      if (msg.t === FrontEndMsg.LastScrub) return db.lastScrub();
      if (msg.t === FrontEndMsg.Compact) return db.compact().then(() => null);
      if (msg.t === FrontEndMsg.ReplicaEvent) {
        const fields = { replica: msg.replica, detail: msg.detail };
        if (msg.what === 'continue') log.info(fields, 'replica connected: it continues from its LSN');
        else if (msg.what === 'fullresync') log.info(fields, 'replica connected: it takes a full copy');
        else if (msg.what === 'refused') log.warn(fields, 'replica refused');
        else log.info(fields, 'replica gone');
        return null;
      }
      if (msg.t === FrontEndMsg.Promote) {
        if (role === null) throw new StoreError('BAD_ARGUMENT', 'this server is a master already');
        return role.promote().then(async (done) => {
          // From now on a master: every front end takes writes (before REPLICAOF answers, so the
          // client's next write is taken), and this thread sweeps expired keys.
          role = null;
          const promoted: MainToFrontEnd = { t: MainMsg.Promoted };
          await Promise.all(frontEnds.map((other) => supervisor.peer(other).call(promoted).catch(() => undefined)));
          startBackground();
          return done;
        });
      }
      if (msg.t === FrontEndMsg.Configure) {
        // A setting of the whole master: this thread's engine (the TTL sweep) and every front end.
        db.configure({ notifyKeyspaceEvents: msg.notifyKeyspaceEvents });
        const out: MainToFrontEnd = { t: MainMsg.Configure, notifyKeyspaceEvents: msg.notifyKeyspaceEvents };
        for (const other of frontEnds) if (other !== name) void supervisor.peer(other).call(out).catch(() => undefined);
      }
      return null;
    });
  }
  const actors = logActors(supervisor, log);
  const address = await supervisor.control<{ address(): { host: string; port: number } }>(tcpActorName(0)).address();
  const httpAddress = http === null ? null : await supervisor.control<{ address(): { host: string; port: number } }>(httpActorName(0)).address();
  const textAddress = text === null ? null : await supervisor.control<{ textAddress(): { host: string; port: number } | null }>(tcpActorName(0)).textAddress();
  return {
    tcpPort: address.port,
    tcpHost: address.host,
    httpPort: httpAddress?.port ?? null,
    textPort: textAddress?.port ?? null,
    stop: () => {
      actors.stopping();
      return db.close();
    },
    done: actors.done,
    supervisor,
  };
}

/** What CONFIG GET answers: what clients and redis-benchmark ask; never the password. */
function configView(config: MasterConfig): Record<string, string> {
  return {
    bind: config.addr.host,
    port: String(config.addr.port),
    dir: config.dataDir,
    save: '',
    appendonly: 'yes',
    appendfsync: config.sync === 'always' ? 'always' : 'no',
    databases: '1',
    maxclients: String(config.tcpLimits.maxClients),
    timeout: String(config.tcpLimits.idleTimeoutSeconds),
    'proto-max-bulk-len': String(config.tcpLimits.maxBulkLength),
    'client-query-buffer-limit': String(config.tcpLimits.maxQueryBuffer),
    maxmemory: '0',
    'maxmemory-policy': 'noeviction',
    'replica-read-only': 'yes',
  };
}

/**
 * The group writers tell main when a remote member turns stale or healthy again: a log line
 * each (a server down, a wrong secret, a repair), so an operator sees it without polling.
 */
function logMemberEvents(supervisor: Supervisor, groups: readonly LocalGroup[], log: Logger): void {
  for (const g of groups) {
    if ((g.servers ?? []).length === 0) continue;
    supervisor.peer(volumeActorName(g.id)).onRequest((body) => {
      const e = body as MemberEvent;
      if (e.t !== MEMBER_EVENT) return null;
      if (e.state === 'stale') log.warn({ group: e.group, server: e.server, error: e.error }, 'volume server member stale: its group takes no writes until it is repaired');
      else log.info({ group: e.group, server: e.server, copiedBytes: e.copied }, 'volume server member healthy');
      return null;
    });
  }
  // Events sent while the store was starting found no listener: what is still wrong a moment
  // after start (a server down, a wrong secret) is logged once from the writers' own view.
  const replicated = groups.filter((g) => (g.servers ?? []).length > 0);
  if (replicated.length === 0) return;
  const timer = setTimeout(() => {
    for (const g of replicated) {
      void new Channel<VolumeRequest, VolumeReplies>(supervisor.peer(volumeActorName(g.id)))
        .call({ t: VolumeMsg.Members })
        .then((members) => {
          for (const m of members) if (m.state !== 'healthy') log.warn({ group: g.id, server: m.url, state: m.state, error: m.lastError }, 'volume server member not healthy after start: its group takes no writes until it is repaired');
        })
        .catch(() => undefined);
    }
  }, START_CHECK_MS);
  timer.unref();
}

/** How long after start the members' states are looked at once (the first repair passes ran). */
const START_CHECK_MS = 3_000;
