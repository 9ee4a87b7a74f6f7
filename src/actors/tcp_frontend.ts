// A TCP front end: a node:net server speaking RESP (uWebSockets.js cannot serve raw TCP), on
// its own worker thread. With reusePort (Node 22.12+) several of them share one port, one per
// core; on Node 20 there is one.
// Owns: the listening socket, the client connections, their sessions, the counters of INFO.
// It reaches the data through its own engine over the channels to the volume writers, the
// WAL committer, the index and the broker, and reads committed needle bytes straight from the
// volume files.
// Invariants: at most `maxClients` connections (past it: an error and a close, as Redis);
// stop() stops accepting, lets every connection finish the burst it is running, then closes.
import { createServer, type Server, type Socket } from 'node:net';
import { cpus, hostname, totalmem } from 'node:os';
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import type { Limits } from '../db/api.js';
import { EngineDatabase } from '../db/database.js';
import { Engine } from '../db/engine.js';
import type { TcpLimits } from '../protocol/tcp_limits.js';
import { RespConnection, type FrontEndStats } from '../frontend/resp_connection.js';
import { BRISEDB_VERSION, INFO_SECTIONS, REDIS_COMPAT_VERSION, type ClientState, type ServerState } from '../frontend/server_commands.js';
import { frontEndEngine } from './front_end.js';
import { FrontEndMsg, type ActorStatusLine, type FrontEndReplies, type FrontEndToMain } from '../protocol/frontend_protocol.js';
import { Channel } from '../runtime/channel.js';
import { StoreError } from '../runtime/errors.js';
import type { LocalGroup } from '../storage/registry.js';

export interface TcpFrontendConfig {
  host: string;
  port: number;
  reusePort: boolean;
  limits: TcpLimits;
  requirepass: string | null;
  /** The volume groups and the drive of each. */
  groups: LocalGroup[];
  dataDir: string;
  sync: 'always' | 'none';
  /** What CONFIG GET answers. */
  configView: Record<string, string>;
  engineLimits?: Partial<Limits>;
  startedAt: number;
}


interface State {
  env: ActorEnv<TcpFrontendConfig>;
  config: TcpFrontendConfig;
  server: Server;
  engine: Engine;
  /** Closes what the engine of this thread opened. */
  closeEngine(): void;
  connections: Set<RespConnection>;
  clients: Map<number, ClientState>;
  stats: FrontEndStats;
  port: number;
}

const createTcpFrontend: ActorFactory<TcpFrontendConfig> = async (env) => {
  const config = env.config;
  let nextSubscriber = 1;
  const { engine, close: closeEngine } = frontEndEngine(env, config.groups, config.engineLimits);
  const broker = engine.ports.broker;
  const db = new EngineDatabase(engine, async () => undefined, async () => ({}));
  const clients = new Map<number, ClientState>();
  const stats: FrontEndStats = { connectionsReceived: 0, commandsProcessed: 0, rejectedConnections: 0, protocolErrors: 0 };
  const connections = new Set<RespConnection>();
  const serverState: ServerState = {
    requirepass: config.requirepass,
    config: config.configView,
    clients,
    info: (sections) => infoText(s, sections),
  };
  // Half-open: a client that shuts down its write side still gets the replies to what it sent.
  const server = createServer({ allowHalfOpen: true }, (socket) => accept(socket));
  const accept = (socket: Socket): void => {
    if (connections.size >= config.limits.maxClients) {
      stats.rejectedConnections += 1;
      socket.end('-ERR max number of clients reached\r\n');
      return;
    }
    const conn = new RespConnection(socket, {
      db,
      broker,
      server: serverState,
      limits: config.limits,
      stats,
      clients,
      nextSubscriberId: () => nextSubscriber++,
    });
    connections.add(conn);
    socket.on('close', () => connections.delete(conn));
  };
  const port = await listen(server, config);
  const s: State = { env, config, server, engine, closeEngine, connections, clients, stats, port };
  return {
    // Nothing asks a front end for anything: clients reach it over TCP.
    handle: () => {
      throw new StoreError('BAD_ARGUMENT', 'a TCP front end takes no requests');
    },
    control: {
      address: () => ({ host: config.host, port: s.port }),
      stats: () => ({ ...s.stats, connectedClients: s.clients.size }),
    },
    stop: () => stop(s),
  };
};
export default createTcpFrontend;

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
  await new Promise<void>((resolve) => {
    s.server.close(() => resolve());
    for (const conn of s.connections) void conn.shutdown();
  });
  s.closeEngine();
}

// ---- INFO -------------------------------------------------------------------------------

async function infoText(s: State, wanted: string[]): Promise<string> {
  const all = wanted.length === 0 || wanted.includes('all') || wanted.includes('everything') || wanted.includes('default');
  const sections = all ? [...INFO_SECTIONS] : INFO_SECTIONS.filter((name) => wanted.includes(name));
  const parts: string[] = [];
  for (const name of sections) parts.push(`# ${name[0]!.toUpperCase()}${name.slice(1)}\r\n${(await infoSection(s, name)).join('\r\n')}\r\n`);
  return parts.join('\r\n');
}

async function infoSection(s: State, name: (typeof INFO_SECTIONS)[number]): Promise<string[]> {
  const uptime = Math.floor((s.env.clock.now() - s.config.startedAt) / 1000);
  switch (name) {
    case 'server':
      return [
        `redis_version:${REDIS_COMPAT_VERSION}`,
        `brisedb_version:${BRISEDB_VERSION}`,
        'redis_mode:standalone',
        `os:${process.platform} ${process.arch}`,
        `arch_bits:64`,
        `process_id:${process.pid}`,
        `node_version:${process.versions.node}`,
        `tcp_port:${s.port}`,
        `uptime_in_seconds:${uptime}`,
        `uptime_in_days:${Math.floor(uptime / 86400)}`,
        `hostname:${hostname()}`,
        `data_dir:${s.config.dataDir}`,
      ];
    case 'clients':
      return [`connected_clients:${s.clients.size}`, `maxclients:${s.config.limits.maxClients}`, `blocked_clients:0`];
    case 'memory': {
      const m = process.memoryUsage();
      return [
        `used_memory:${m.heapUsed + m.external}`,
        `used_memory_human:${mb(m.heapUsed + m.external)}`,
        `used_memory_rss:${m.rss}`,
        `used_memory_rss_human:${mb(m.rss)}`,
        `total_system_memory:${totalmem()}`,
        `total_system_memory_human:${mb(totalmem())}`,
      ];
    }
    case 'persistence': {
      const index = await s.engine.ports.index.stats();
      return [
        'loading:0',
        'aof_enabled:1',
        `aof_fsync:${s.config.sync === 'always' ? 'always' : 'no'}`,
        `wal_last_lsn:${index.appliedLsn}`,
        `index_durable_lsn:${index.durableLsn}`,
        `index_buckets:${index.bucketCount}`,
        `index_rebuilding:${index.rebuilding ? 1 : 0}`,
      ];
    }
    case 'stats':
      return [
        `total_connections_received:${s.stats.connectionsReceived}`,
        `total_commands_processed:${s.stats.commandsProcessed}`,
        `rejected_connections:${s.stats.rejectedConnections}`,
        `total_error_replies_protocol:${s.stats.protocolErrors}`,
      ];
    case 'replication': {
      const index = await s.engine.ports.index.stats();
      return ['role:master', 'connected_slaves:0', `master_repl_offset:${index.appliedLsn}`];
    }
    case 'keyspace':
      return [`db0:keys=${await s.engine.ports.index.dbsize()}`];
    case 'actors': {
      const toMain = new Channel<FrontEndToMain, FrontEndReplies>(s.env.main);
      const lines = await toMain.call({ t: FrontEndMsg.Status }).catch(() => [] as ActorStatusLine[]);
      return [`cpus:${cpus().length}`, ...lines.map((a) => `actor_${a.name}:thread=${a.threadId},state=${a.state},restarts=${a.restarts}`)];
    }
  }
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(2)}M`;
}
