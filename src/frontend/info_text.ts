// INFO of a TCP front end, in Redis' sections, order and field names where they apply (so that
// redis-cli, redis_exporter and INFO parsers read it), plus BriseDB's own `actors` section.
// `INFO` and `INFO default` answer the default sections; `all` adds commandstats (and
// latencystats, which is empty here); `everything` is `all`; names may be combined.
import { cpus, hostname, totalmem } from 'node:os';
import type { IndexStats } from '../db/ports.js';
import type { FrontEndStats } from './command_stats.js';
import { percentDone, type Progress } from '../protocol/operations.js';
import { BRISEDB_VERSION, REDIS_COMPAT_VERSION } from './server_commands.js';

/** What INFO reads from its front end. */
export interface InfoSource {
  port: number;
  startedAt: number;
  now: number;
  dataDir: string;
  sync: 'always' | 'none';
  connectedClients: number;
  maxClients: number;
  pubsubClients: number;
  stats: FrontEndStats;
  index(): Promise<IndexStats>;
  dbsize(): Promise<number>;
  /** The broker's counts; null when the broker does not answer (INFO still answers). */
  pubsub(): Promise<{ channels: number; patterns: number } | null>;
  actors(): Promise<string[]>;
  /** INFO replication's lines (replication_commands.ts); absent: a master without replication wired. */
  replication?(): Promise<string[]>;
  /** The long operations in progress (a vacuum), asked of main; absent: none shown. */
  operations?(): Promise<Progress[]>;
}

const DEFAULT_SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'modules', 'errorstats', 'cluster', 'keyspace', 'operations', 'actors'];
const ALL_SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'modules', 'commandstats', 'errorstats', 'cluster', 'keyspace', 'operations', 'actors'];

/** The sections asked for, in Redis' order; unknown names are left out (as Redis does). */
export function infoSections(wanted: string[]): string[] {
  if (wanted.length === 0) return DEFAULT_SECTIONS;
  const set = new Set<string>();
  for (const w of wanted) {
    if (w === 'all' || w === 'everything') ALL_SECTIONS.forEach((s) => set.add(s));
    else if (w === 'default') DEFAULT_SECTIONS.forEach((s) => set.add(s));
    else set.add(w);
  }
  return ALL_SECTIONS.filter((s) => set.has(s));
}

export async function infoText(src: InfoSource, wanted: string[]): Promise<string> {
  const parts: string[] = [];
  for (const name of infoSections(wanted)) {
    const title = name === 'cpu' ? 'CPU' : name === 'modules' ? 'Modules' : `${name[0]!.toUpperCase()}${name.slice(1)}`;
    const lines = await section(src, name);
    parts.push(`# ${title}\r\n${lines.map((l) => `${l}\r\n`).join('')}`);
  }
  return parts.join('\r\n');
}

async function section(src: InfoSource, name: string): Promise<string[]> {
  const uptime = Math.floor((src.now - src.startedAt) / 1000);
  switch (name) {
    case 'server':
      return [
        `redis_version:${REDIS_COMPAT_VERSION}`,
        `brisedb_version:${BRISEDB_VERSION}`,
        'redis_mode:standalone',
        `os:${process.platform} ${process.arch}`,
        'arch_bits:64',
        'multiplexing_api:libuv',
        `process_id:${process.pid}`,
        `node_version:${process.versions.node}`,
        `tcp_port:${src.port}`,
        `server_time_usec:${Math.floor(src.now * 1000)}`,
        `uptime_in_seconds:${uptime}`,
        `uptime_in_days:${Math.floor(uptime / 86400)}`,
        `hostname:${hostname()}`,
        `data_dir:${src.dataDir}`,
      ];
    case 'clients':
      return [
        `connected_clients:${src.connectedClients}`,
        `maxclients:${src.maxClients}`,
        'blocked_clients:0',
        `pubsub_clients:${src.pubsubClients}`,
      ];
    case 'memory': {
      const m = process.memoryUsage();
      return [
        `used_memory:${m.heapUsed + m.external}`,
        `used_memory_human:${human(m.heapUsed + m.external)}`,
        `used_memory_rss:${m.rss}`,
        `used_memory_rss_human:${human(m.rss)}`,
        `total_system_memory:${totalmem()}`,
        `total_system_memory_human:${human(totalmem())}`,
        'maxmemory:0',
        'maxmemory_policy:noeviction',
      ];
    }
    case 'persistence': {
      const index = await src.index();
      return [
        'loading:0',
        'rdb_changes_since_last_save:0',
        'aof_enabled:1',
        `aof_fsync:${src.sync === 'always' ? 'always' : 'no'}`,
        `wal_last_lsn:${index.appliedLsn}`,
        `index_durable_lsn:${index.durableLsn}`,
        `index_buckets:${index.bucketCount}`,
        `index_rebuilding:${index.rebuilding ? 1 : 0}`,
      ];
    }
    case 'stats': {
      const s = src.stats;
      const ps = await src.pubsub();
      return [
        `total_connections_received:${s.connectionsReceived}`,
        `total_commands_processed:${s.commandsProcessed}`,
        `total_net_input_bytes:${s.netInputBytes}`,
        `total_net_output_bytes:${s.netOutputBytes}`,
        `rejected_connections:${s.rejectedConnections}`,
        ...(ps === null ? [] : [`pubsub_channels:${ps.channels}`, `pubsub_patterns:${ps.patterns}`]),
        `total_error_replies:${s.commands.totalErrorReplies}`,
        `total_error_replies_protocol:${s.protocolErrors}`,
      ];
    }
    case 'replication': {
      if (src.replication !== undefined) return src.replication();
      const index = await src.index();
      return ['role:master', 'connected_slaves:0', `master_repl_offset:${index.appliedLsn}`];
    }
    case 'cpu': {
      const u = process.cpuUsage();
      return [`used_cpu_sys:${seconds(u.system)}`, `used_cpu_user:${seconds(u.user)}`, 'used_cpu_sys_children:0.000000', 'used_cpu_user_children:0.000000'];
    }
    case 'modules':
      return [];
    case 'commandstats':
      return src.stats.commands.commandLines();
    case 'errorstats':
      return src.stats.commands.errorLines();
    case 'cluster':
      return ['cluster_enabled:0'];
    case 'keyspace': {
      const keys = await src.dbsize();
      return keys === 0 ? [] : [`db0:keys=${keys}`];
    }
    case 'operations':
      return operationLines(await (src.operations?.() ?? Promise.resolve([])).catch(() => []));
    case 'actors':
      return [`cpus:${cpus().length}`, ...(await src.actors())];
    default:
      return [];
  }
}

/** BriseDB's own section: each long operation in progress with its percent, bytes and ETA. */
function operationLines(ops: Progress[]): string[] {
  const lines = [`operations_in_progress:${ops.length}`];
  for (const p of ops) {
    const percent = percentDone(p).toFixed(1);
    const eta = p.etaMs < 0 ? -1 : Math.ceil(p.etaMs / 1000);
    const unit = p.unit ?? 'bytes';
    lines.push(`${p.operation}:target=${p.target},percent=${percent},done_${unit}=${p.doneBytes},total_${unit}=${p.totalBytes},eta_seconds=${eta}`);
  }
  return lines;
}

/** Microseconds as Redis prints CPU seconds: "%ld.%06ld". */
function seconds(us: number): string {
  return `${Math.floor(us / 1e6)}.${String(Math.floor(us % 1e6)).padStart(6, '0')}`;
}

/** Bytes as Redis' bytesToHuman: B, K, M, G with two decimals. */
function human(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(2)}K`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(2)}M`;
  return `${(bytes / 1024 ** 3).toFixed(2)}G`;
}
