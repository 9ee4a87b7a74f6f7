// A TCP front end: a node:net server speaking RESP (uWebSockets.js cannot serve raw TCP), on
// its own worker thread. With reusePort (Node 22.12+) several of them share one port, one per
// core; on Node 20 there is one. When `--text-addr` is set, a second server on that port speaks
// the seed's line protocol (text_connection.ts) over the same engine and command table.
// Owns: the listening socket, the client connections, their sessions, the counters of INFO.
// It reaches the data through its own engine over the channels to the volume writers, the
// WAL committer, the index and the broker, and reads committed needle bytes straight from the
// volume files.
// Invariants: at most `maxClients` connections, RESP and line protocol together (past it: an
// error and a close, as Redis);
// stop() stops accepting, lets every connection finish the burst it is running, then closes.
import { createServer, type Server, type Socket } from 'node:net';
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import type { Limits } from '../db/api.js';
import { EngineDatabase } from '../db/database.js';
import { Engine } from '../db/engine.js';
import type { TcpLimits } from '../protocol/tcp_limits.js';
import { RespConnection, type FrontEndStats } from '../frontend/resp_connection.js';
import { TextConnection } from '../frontend/text_connection.js';
import { WalFeed } from '../db/wal_feed.js';
import { WAL_ACTOR } from '../protocol/store_actors.js';
import type { ClientState, ServerState } from '../frontend/server_commands.js';
import { CommandStats } from '../frontend/command_stats.js';
import { infoText, type InfoSource } from '../frontend/info_text.js';
import { frontEndEngine, storeAdmin } from './front_end.js';
import { FrontEndMsg, MainMsg, type ActorStatusLine, type FrontEndReplies, type FrontEndToMain, type MainToFrontEnd } from '../protocol/frontend_protocol.js';
import { LiveConfig, type Settings } from '../frontend/live_config.js';
import { Channel } from '../runtime/channel.js';
import { StoreError } from '../runtime/errors.js';
import type { LocalGroup } from '../storage/registry.js';
import type { RoleFlag } from '../db/read_only.js';
import { ReplicationHub } from '../frontend/replication_hub.js';
import { ReplicaTable, createReplicaTable } from '../runtime/replica_table.js';
import { replicationInfo, type ReplicationState } from '../frontend/replication_commands.js';
import { loadHistory } from '../storage/history.js';

export interface TcpFrontendConfig {
  host: string;
  port: number;
  /** The seed's line protocol (`--text-addr`); null: off. */
  text: { host: string; port: number } | null;
  reusePort: boolean;
  limits: TcpLimits;
  requirepass: string | null;
  /** The HTTP token SIGN signs URLs with (absent or null: no token, SIGN refuses). */
  httpToken?: string | null;
  /** The volume groups and the drive of each. */
  groups: LocalGroup[];
  dataDir: string;
  sync: 'always' | 'none';
  /** Bytes of this thread's needle cache (--needle-cache-size; 0: none); absent: the default. */
  needleCacheBytes?: number;
  /** What CONFIG GET answers. */
  configView: Record<string, string>;
  engineLimits?: Partial<Limits>;
  startedAt: number;
  /** A replica's front end: write commands are refused (READONLY) until a promotion. */
  replica?: boolean;
  /** Every thread's replicas and the min-replicas settings (runtime/replica_table.ts); this thread's rows are `thread`'s. */
  replicaTable?: SharedArrayBuffer;
  thread?: number;
  /** The index's bucket heads in shared memory: lookups on this thread (storage/shared_heads.ts). */
  indexHeads?: SharedArrayBuffer;
}


interface State {
  env: ActorEnv<TcpFrontendConfig>;
  config: TcpFrontendConfig;
  settings: Settings;
  server: Server;
  /** The line-protocol server, when configured. */
  textServer: Server | null;
  textPort: number | null;
  engine: Engine;
  /** Closes what the engine of this thread opened. */
  closeEngine(): void;
  connections: Set<RespConnection | TextConnection>;
  clients: Map<number, ClientState>;
  stats: FrontEndStats;
  port: number;
  serverState: ServerState;
  /** This thread's database: VACUUM and the operations go through it to main. */
  db: EngineDatabase;
}

const createTcpFrontend: ActorFactory<TcpFrontendConfig> = async (env) => {
  const config = env.config;
  let nextSubscriber = 1;
  const table = new ReplicaTable(config.replicaTable ?? createReplicaTable(1));
  const role: RoleFlag = { readOnly: config.replica === true, replicas: table };
  const { engine, reader, close: closeEngine } = frontEndEngine(env, config.groups, config.engineLimits ?? {}, role, config);
  const broker = engine.ports.broker;
  const db = new EngineDatabase(engine, async () => undefined, async () => ({}), undefined, storeAdmin(env));
  const clients = new Map<number, ClientState>();
  const stats: FrontEndStats = {
    connectionsReceived: 0,
    commandsProcessed: 0,
    rejectedConnections: 0,
    protocolErrors: 0,
    netInputBytes: 0,
    netOutputBytes: 0,
    commands: new CommandStats(),
  };
  const connections = new Set<RespConnection | TextConnection>();
  // The live settings: CONFIG SET changes them for every connection of this thread, and the
  // keyspace notifications for every thread of the master (through main).
  const settings: Settings = { limits: { ...config.limits }, requirepass: config.requirepass, notifyKeyspaceEvents: 0, replicas: table };
  const fixed = { bind: config.host, port: config.port, dir: config.dataDir, appendfsync: config.sync === 'always' ? 'always' : 'no' };
  let notifyFlags = 0;
  const live = new LiveConfig(settings, fixed, () => {
    for (const conn of connections) conn.applySettings();
    if (settings.notifyKeyspaceEvents !== notifyFlags) {
      notifyFlags = engine.notifyFlags = settings.notifyKeyspaceEvents;
      // Every other thread emits notifications too (HTTP writes, the TTL sweep): main tells them.
      void new Channel<FrontEndToMain, FrontEndReplies>(env.main).call({ t: FrontEndMsg.Configure, notifyKeyspaceEvents: notifyFlags }).catch(() => undefined);
    }
  });
  const serverState: ServerState = {
    get requirepass() {
      return settings.requirepass;
    },
    httpToken: config.httpToken ?? null,
    readOnly: () => role.readOnly,
    replication: replicationState(env, engine, table),
    settings: live,
    clients,
    info: (sections) => infoText(infoSource(s), sections),
    resetStats: () => {
      stats.commands.reset();
      stats.commandsProcessed = 0;
      stats.connectionsReceived = 0;
      stats.rejectedConnections = 0;
      stats.protocolErrors = 0;
      stats.netInputBytes = 0;
      stats.netOutputBytes = 0;
    },
  };
  // Half-open: a client that shuts down its write side still gets the replies to what it sent.
  const server = createServer({ allowHalfOpen: true }, (socket) => accept(socket));
  const accept = (socket: Socket): void => {
    if (connections.size >= settings.limits.maxClients) {
      stats.rejectedConnections += 1;
      socket.end('-ERR max number of clients reached\r\n');
      return;
    }
    const conn = new RespConnection(socket, {
      db,
      broker,
      server: serverState,
      limits: settings.limits,
      stats,
      clients,
      nextSubscriberId: () => nextSubscriber++,
      replication,
    });
    connections.add(conn);
    socket.on('close', () => connections.delete(conn));
  };
  // One WAL feed per thread (it handles the WAL peer's pushes), made when REPLICATE or a
  // replica (BRISE.SYNC) first asks.
  let walFeed: WalFeed | null = null;
  const replication = new ReplicationHub({
    fs: env.fs,
    dataDir: config.dataDir,
    feed: () => (walFeed ??= new WalFeed(env.peer(WAL_ACTOR))),
    volumePath: (id) => reader.pathOf(id),
    lastLsn: () => engine.ports.wal.lastLsn(),
    syncPoint: async () => (await engine.ports.commit.commit([])).lsn,
    now: () => env.clock.now(),
    groupIds: config.groups.map((g) => g.id),
    event: (e) => void new Channel<FrontEndToMain, FrontEndReplies>(env.main).call({ t: FrontEndMsg.ReplicaEvent, ...e }).catch(() => undefined),
    readOnly: () => role.readOnly,
    table,
    thread: config.thread ?? 0,
  });
  const port = await listen(server, config);
  const acceptText = (socket: Socket): void => {
    if (connections.size >= settings.limits.maxClients) {
      stats.rejectedConnections += 1;
      socket.end('-ERR max number of clients reached\n');
      return;
    }
    const conn = new TextConnection(socket, {
      db,
      broker,
      server: serverState,
      limits: settings.limits,
      stats,
      walFeed: () => (walFeed ??= new WalFeed(env.peer(WAL_ACTOR))),
      nextSubscriberId: () => nextSubscriber++,
    });
    connections.add(conn);
    socket.on('close', () => connections.delete(conn));
  };
  let textServer: Server | null = null;
  let textPort: number | null = null;
  if (config.text !== null) {
    textServer = createServer({ allowHalfOpen: true }, (socket) => acceptText(socket));
    try {
      textPort = await listen(textServer, { ...config, host: config.text.host, port: config.text.port });
    } catch (err) {
      server.close();
      throw err;
    }
  }
  const s: State = { env, config, settings, server, textServer, textPort, engine, closeEngine, connections, clients, stats, port, serverState, db };
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
      if (msg.t !== MainMsg.Configure) throw new StoreError('BAD_ARGUMENT', 'a TCP front end takes no requests but Configure, Promoted and Forget');
      notifyFlags = engine.notifyFlags = settings.notifyKeyspaceEvents = msg.notifyKeyspaceEvents;
      return null;
    },
    control: {
      address: () => ({ host: config.host, port: s.port }),
      textAddress: () => (config.text === null ? null : { host: config.text.host, port: s.textPort }),
      stats: () => {
        const { commands, ...counters } = s.stats;
        return { ...counters, errorReplies: commands.totalErrorReplies, connectedClients: s.clients.size };
      },
    },
    stop: () => stop(s),
  };
};
export default createTcpFrontend;

/** What ROLE, WAIT, INFO replication and the LSN commands read on this thread. */
function replicationState(env: ActorEnv<TcpFrontendConfig>, engine: Engine, table: ReplicaTable): ReplicationState {
  const toMain = new Channel<FrontEndToMain, FrontEndReplies>(env.main);
  return {
    table,
    link: () => toMain.call({ t: FrontEndMsg.Replication }).catch(() => null),
    lastLsn: () => engine.ports.wal.lastLsn(),
    writeLsn: () => engine.lastWriteLsn,
    appliedLsn: async () => (await engine.ports.index.stats()).appliedLsn,
    promote: () => toMain.call({ t: FrontEndMsg.Promote }),
    now: () => env.clock.now(),
  };
}

function listen(server: Server, config: TcpFrontendConfig): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new StoreError('BAD_ARGUMENT', `cannot listen on ${config.host}:${config.port}: ${why}`));
    };
    server.once('error', onError);
    const options = { host: config.host, port: config.port, ...(config.reusePort ? { reusePort: true } : {}) };
    server.listen(options, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : config.port);
    });
  });
}

async function stop(s: State): Promise<void> {
  const closed = (server: Server | null): Promise<void> => new Promise((resolve) => (server === null ? resolve() : server.close(() => resolve())));
  const both = Promise.all([closed(s.server), closed(s.textServer)]);
  for (const conn of s.connections) void conn.shutdown();
  await both;
  s.closeEngine();
}

// ---- INFO -------------------------------------------------------------------------------

function infoSource(s: State): InfoSource {
  return {
    port: s.port,
    startedAt: s.config.startedAt,
    now: s.env.clock.now(),
    dataDir: s.config.dataDir,
    sync: s.config.sync,
    connectedClients: s.clients.size,
    maxClients: s.settings.limits.maxClients,
    pubsubClients: [...s.clients.values()].filter((c) => c.subscriptions > 0).length,
    stats: s.stats,
    index: () => s.engine.ports.index.stats(),
    dbsize: () => s.engine.ports.index.dbsize(),
    operations: () => s.db.operations(),
    pubsub: async () => {
      const [channels, patterns] = await Promise.all([
        s.engine.ports.broker.introspect({ what: 'channels' }),
        s.engine.ports.broker.introspect({ what: 'numpat' }),
      ]).catch(() => [null, null]);
      if (channels === null) return null;
      return { channels: (channels as Uint8Array[]).length, patterns: patterns as number };
    },
    replication: () => replicationInfo(s.serverState.replication!, loadHistory(s.env.fs, s.config.dataDir)),
    actors: async () => {
      const toMain = new Channel<FrontEndToMain, FrontEndReplies>(s.env.main);
      const lines = await toMain.call({ t: FrontEndMsg.Status }).catch(() => [] as ActorStatusLine[]);
      return lines.map((a) => `actor_${a.name}:thread=${a.threadId},state=${a.state},restarts=${a.restarts}`);
    },
  };
}
