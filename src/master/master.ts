// runMaster: the master process's composition. The store's actors (volume writers, WAL
// committer, index, broker) and the TCP front ends run as actors under one supervisor in this
// (main) thread; main itself serves no client: it supervises, answers the front ends' status
// requests (INFO actors), logs actor deaths and restarts, and stops everything in order.
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { openStore } from '../db/open.js';
import type { ActorSpec } from '../runtime/topology.js';
import { storeActorNames } from '../actors/store_topology.js';
import type { TcpFrontendConfig } from '../actors/tcp_frontend.js';
import { FrontEndMsg, type FrontEndToMain } from '../protocol/frontend_protocol.js';
import type { MasterConfig } from './master_config.js';

export interface RunningMaster {
  readonly tcpPort: number;
  readonly tcpHost: string;
  /** Stops accepting, lets in-flight commands finish, syncs, stops every actor. */
  stop(): Promise<void>;
  /** Resolves if the store dies for good (an actor given up). */
  readonly done: Promise<void>;
}

export function tcpActorName(i: number): string {
  return `tcp-${i}`;
}

/** Node's net module gained reusePort in 22.12 (and 23.1): only then can threads share a port. */
export function supportsReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

export async function runMaster(config: MasterConfig, log: Logger): Promise<RunningMaster> {
  const startedAt = Date.now();
  const threads = supportsReusePort() ? Math.max(1, Math.min(config.tcpThreads, availableParallelism())) : 1;
  const tcpSpecs = (drives: string[], dataDir: string): ActorSpec[] => {
    const store = storeActorNames(drives.length);
    return Array.from({ length: threads }, (_, i) => {
      const cfg: TcpFrontendConfig = {
        host: config.addr.host,
        port: config.addr.port,
        reusePort: threads > 1,
        limits: config.tcpLimits,
        requirepass: config.requirepass,
        drives,
        dataDir,
        sync: config.sync,
        configView: configView(config),
        startedAt,
      };
      return { name: tcpActorName(i), module: new URL('../actors/tcp_frontend.js', import.meta.url), config: cfg, dependsOn: store, talksTo: ['main', ...store] };
    });
  };
  const { db, supervisor } = await openStore(
    config.dataDir,
    { drives: config.drives, maxVolumeSize: config.maxVolumeSize, sync: config.sync },
    tcpSpecs,
  );
  for (let i = 0; i < threads; i++) {
    supervisor.peer(tcpActorName(i)).onRequest((body) => {
      if ((body as FrontEndToMain).t === FrontEndMsg.Status) return supervisor.status();
      return null;
    });
  }
  let givenUp: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (givenUp = resolve));
  let stopping = false;
  supervisor.on('actor-exit', (e: { name: string; code?: number; error?: string }) => {
    // Exits during an ordered stop are the plan, not a death.
    if (stopping) log.debug({ actor: e.name, code: e.code }, 'actor stopped');
    else log.error({ actor: e.name, code: e.code, error: e.error }, 'actor died');
  });
  supervisor.on('actor-restart', (e: { name: string; attempt: number }) => log.warn({ actor: e.name, attempt: e.attempt }, 'actor restarted'));
  supervisor.on('actor-given-up', (e: { name: string }) => {
    log.fatal({ actor: e.name }, 'actor keeps dying: given up');
    givenUp();
  });
  const address = await supervisor.control<{ address(): { host: string; port: number } }>(tcpActorName(0)).address();
  return {
    tcpPort: address.port,
    tcpHost: address.host,
    stop: () => {
      stopping = true;
      return db.close();
    },
    done,
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
