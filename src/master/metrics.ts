// The master's /metrics: every HTTP front end keeps its own prom-client registry (its thread's
// requests, bytes, latencies); main gathers them as JSON, aggregates them (prom-client's
// AggregatorRegistry, as for a cluster of processes) and adds the store's own gauges, read
// fresh at each scrape: actors and their restarts, volumes, the WAL, the index.
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { Supervisor } from '../runtime/supervisor.js';
import type { Database } from '../db/api.js';
import type { ReplicaRow } from '../runtime/replica_table.js';
import type { LinkView } from '../protocol/frontend_protocol.js';

interface WalStats {
  lastLsn: number;
  size: number;
  groups: number;
  records: number;
  commitSeconds: number;
  commitSecondsMax: number;
  fenced: string | null;
  volumeLog: { lastLsn: number; syncs: number; failed: string | null } | null;
}

/** What /metrics shows of replication: the link of a replica, or the replicas of a master. */
export interface ReplicationMetrics {
  link: LinkView | null;
  replicas: ReplicaRow[];
}

export async function masterMetrics(supervisor: Supervisor, db: Database, frontEnds: string[], replication?: () => ReplicationMetrics): Promise<string> {
  const perThread = await Promise.all(
    frontEnds.map((name) =>
      supervisor
        .control<{ metricsJson(): Promise<object[]> }>(name)
        .metricsJson()
        .catch(() => [] as object[]),
    ),
  );
  const http = AggregatorRegistry.aggregate(perThread);
  const store = await storeRegistry(supervisor, db);
  if (replication !== undefined) replicationGauges(store, replication(), await lastLsnOf(supervisor));
  return (await http.metrics()) + '\n' + (await store.metrics());
}

/** The WAL committer's last LSN (0 when it does not answer). */
async function lastLsnOf(supervisor: Supervisor): Promise<number> {
  const wal = await Promise.resolve(supervisor.control<{ stats(): { lastLsn: number } }>('wal').stats()).catch(() => null);
  return wal?.lastLsn ?? 0;
}

function replicationGauges(registry: Registry, r: ReplicationMetrics, lastLsn: number): void {
  const gauge = (name: string, help: string, labelNames: string[] = []): Gauge<string> => new Gauge({ name, help, labelNames, registers: [registry] });
  if (r.link !== null) {
    gauge('brisedb_replica_link_up', '1 while the replica streams from its master').set(r.link.status === 'up' ? 1 : 0);
    gauge('brisedb_replica_applied_lsn', 'The last LSN this replica applied').set(r.link.appliedLsn);
    gauge('brisedb_replica_lag_records', "Records between the master's last LSN (its last heartbeat) and this replica's").set(Math.max(0, r.link.masterLsn - r.link.appliedLsn));
    gauge('brisedb_replica_lag_ms', 'Time from the master committing the last record applied here to its apply').set(r.link.lagMs);
    gauge('brisedb_replica_full_resyncs', 'Full copies this replica took since start').set(r.link.fullResyncs);
    return;
  }
  gauge('brisedb_replicas_connected', 'Replicas streaming from this master').set(r.replicas.length);
  const lag = gauge('brisedb_replica_lag_records', 'Records a replica has not acknowledged yet', ['replica']);
  for (const row of r.replicas) lag.set({ replica: `${row.ip}:${row.port}` }, Math.max(0, lastLsn - row.ackedLsn));
}

async function storeRegistry(supervisor: Supervisor, db: Database): Promise<Registry> {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[] = []): Gauge<string> =>
    new Gauge({ name, help, labelNames, registers: [registry] });

  const up = gauge('brisedb_actor_up', 'Whether an actor is running (1) or not (0)', ['actor']);
  const restarts = gauge('brisedb_actor_restarts_total', 'Restarts of an actor by the supervisor', ['actor']);
  const inflight = gauge('brisedb_actor_inflight_requests', "Requests from main waiting on an actor (its mailbox, as main sees it)", ['actor']);
  for (const a of supervisor.status()) {
    up.set({ actor: a.name }, a.state === 'running' ? 1 : 0);
    restarts.set({ actor: a.name }, a.restarts);
    try {
      inflight.set({ actor: a.name }, supervisor.peer(a.name).inFlight);
    } catch {
      // an actor main does not talk to
    }
  }

  const heap = gauge('brisedb_actor_heap_used_bytes', "V8 heap in use on an actor's thread", ['actor']);
  const buffers = gauge('brisedb_actor_array_buffers_bytes', "ArrayBuffer memory held by an actor's thread", ['actor']);
  await Promise.all(
    supervisor.status().map(async (a) => {
      const m = await supervisor.control<{ memory(): NodeJS.MemoryUsage }>(a.name).memory().catch(() => null);
      if (m === null) return;
      heap.set({ actor: a.name }, m.heapUsed);
      buffers.set({ actor: a.name }, m.arrayBuffers);
    }),
  );
  const main = process.memoryUsage();
  heap.set({ actor: 'main' }, main.heapUsed);
  buffers.set({ actor: 'main' }, main.arrayBuffers);
  gauge('brisedb_process_rss_bytes', 'Resident memory of the whole master process').set(main.rss);

  const volumes = gauge('brisedb_volume_bytes', 'Bytes in a volume file', ['volume', 'drive']);
  const live = gauge('brisedb_volume_live_bytes', 'Bytes of a volume the index points at (live or expired, not yet swept)', ['volume', 'drive']);
  const garbage = gauge('brisedb_volume_garbage_bytes', 'Bytes of a volume no entry points at: overwritten, deleted, refused or aborted writes (what VACUUM gives back)', ['volume', 'drive']);
  for (const v of await db.volinfo().catch(() => [])) {
    volumes.set({ volume: String(v.id), drive: v.drive }, v.sizeBytes);
    live.set({ volume: String(v.id), drive: v.drive }, v.liveBytes);
    garbage.set({ volume: String(v.id), drive: v.drive }, v.garbageBytes);
  }

  const scrub = await db.lastScrub().catch(() => null);
  if (scrub !== null) {
    gauge('brisedb_needles_damaged', 'Needles a key points at that failed their checks in the last scrub with no good copy left (reads of those keys fail)').set(scrub.damaged);
    gauge('brisedb_scrub_repaired', 'Damaged needles the last scrub rewrote from a good member of their group').set(scrub.repaired);
    gauge('brisedb_scrub_last_success_timestamp_seconds', 'When the last scrub ended').set(Math.floor((scrub.startedAt + scrub.durationMs) / 1000));
  }

  const healthy = gauge('brisedb_group_member_healthy', 'A remote member of a volume group: 1 healthy (takes writes), 0 stale or repairing', ['group', 'server']);
  const lag = gauge('brisedb_group_member_lag_bytes', 'Bytes a remote member was behind the local member when last measured', ['group', 'server']);
  const repairs = new Counter({ name: 'brisedb_group_member_repairs_total', help: 'Repairs that copied bytes to a remote member since start-up', labelNames: ['group', 'server'], registers: [registry] });
  for (const g of await db.groups().catch(() => [])) {
    for (const m of g.members) {
      const labels = { group: String(g.id), server: m.url };
      healthy.set(labels, m.state === 'healthy' ? 1 : 0);
      lag.set(labels, m.lagBytes);
      repairs.inc(labels, m.repairs);
    }
  }

  const stats = (await db.stats().catch(() => ({}))) as { index?: { liveCount: number; bucketCount: number; entryCount: number; appliedLsn: number; durableLsn: number } };
  if (stats.index !== undefined) {
    gauge('brisedb_keys', 'Live keys (expired ones count until swept)').set(stats.index.liveCount);
    gauge('brisedb_index_buckets', 'Buckets of the on-disk hash index').set(stats.index.bucketCount);
    gauge('brisedb_index_entries', 'Entries in the index file (live or not)').set(stats.index.entryCount);
    gauge('brisedb_index_durable_lsn', 'LSN up to which the index is durable').set(stats.index.durableLsn);
  }
  const wal = await supervisor.control<{ stats(): WalStats }>('wal').stats().catch(() => null);
  if (wal !== null) {
    gauge('brisedb_wal_last_lsn', 'LSN of the last committed WAL record').set(wal.lastLsn);
    gauge('brisedb_wal_bytes', 'Size of wal.log').set(wal.size);
    gauge('brisedb_wal_group_commits_total', 'Group commits (one write, one fdatasync each)').set(wal.groups);
    gauge('brisedb_wal_records_total', 'Records committed').set(wal.records);
    gauge('brisedb_wal_commit_seconds_total', 'Time in group commits (write + fdatasync): over the commits count, the mean fsync latency').set(wal.commitSeconds);
    gauge('brisedb_wal_commit_seconds_max', 'Longest group commit (write + fdatasync) since start').set(wal.commitSecondsMax);
    gauge('brisedb_wal_fenced', '1 when a failed fsync has fenced the WAL (writes refused)').set(wal.fenced === null ? 0 : 1);
    const log = wal.volumeLog;
    if (log !== null) {
      gauge('brisedb_volume_log_last_lsn', 'LSN of the last record copied into the volume log (what cmd/rebuild.js rebuilds from)').set(log.lastLsn);
      gauge('brisedb_volume_log_failed', '1 when the volume log stopped after an error (the WAL goes on; restart to rebuild it)').set(log.failed === null ? 0 : 1);
    }
  }
  return registry;
}
