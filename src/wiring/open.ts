// Opening a store: the supervisor and the store's actors (volume writers, WAL committer, index,
// broker), and this thread as a front end speaking to them through the engine's ports. One
// function for both hosts:
// - open(dir): actors on worker threads, node's file system and timers (the embedded API, the
//   master, the REPL);
// - openInThread(...) (in_thread.ts): the same actors in the calling thread over the seams it is
//   given (the crash/recovery suites: a simulated file system and virtual time).
// The lock on the data dir is held for as long as the store is open.
import { createSharedHeads, SharedIndexReader } from '../storage/shared_heads.js';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { systemClock, type Clock } from '../runtime/clock.js';
import { CpuPool } from '../runtime/cpu_pool.js';
import { NodeFs, type Fs } from '../runtime/fs.js';
import { workerHost, type ActorHost } from '../runtime/host.js';
import { ScopedScheduler, systemScheduler, type Scheduler } from '../runtime/scheduler.js';
import { Supervisor } from '../runtime/supervisor.js';
import { StoreError } from '../runtime/errors.js';
import { replaceFileAtomically } from '../storage/atomic_file.js';
import type { ActorSpec } from '../runtime/topology.js';
import { CPU_JOBS, type StoreJobs } from '../storage/cpu_jobs.js';
import { acquireLock, type LockHandle } from '../storage/lock_file.js';
import { loadRegistry, registryOf, resolveGroups, saveRegistry, type LocalGroup } from '../storage/registry.js';
import { VolumeReader } from '../storage/volume_reader.js';
import { loadOrStartHistory } from '../storage/history.js';
import { INDEX_FILE, LOG_DIR, WAL_FILE, rebuildPending, resyncPending } from '../storage/store_files.js';
import { chooseGeneration } from '../storage/log_rebuild.js';
import { redoNeedles } from '../storage/wal_redo.js';
import type { ScrubInput, ScrubReport } from '../storage/volume_scrub.js';
import { BROKER_ACTOR, WAL_ACTOR } from '../protocol/store_actors.js';
import { AutoCompactor, DEFAULT_AUTO_COMPACT } from '../db/auto_compact.js';
import { DEFAULT_LIMITS, type Database, type OpenOptions } from '../db/api.js';
import { ActorBroker, actorPorts } from '../db/actor_ports.js';
import { EngineDatabase } from '../db/database.js';
import { DriveReader } from '../db/drive_reader.js';
import { groupReader } from '../db/group_reader.js';
import { VolumeClient } from '../remote/volume_client.js';
import { Engine } from '../db/engine.js';
import { DEFAULT_VACUUM, Vacuum, type Progress, type VacuumReport } from '../db/vacuum.js';
import { READONLY_TEXT } from '../db/read_only.js';
import { DEFAULT_SCRUB, Scrub } from '../db/scrub.js';
import type { StoreAdmin } from '../db/database.js';
import type { DamagedNeedle } from '../protocol/operations.js';
import { storeTopology, type StoreTopologyConfig } from './store_topology.js';

/** The master's epoch (fencing of volume servers), in the data dir. */
const EPOCH_FILE = 'epoch';

/** How often the TTL sweep runs, and how many buckets each slice looks at. */
const SWEEP_EVERY_MS = 100;
const SWEEP_BUCKETS = 1024;
/** How often the automatic vacuum looks for sealed volumes over the threshold. */
const AUTO_VACUUM_EVERY_MS = 60_000;
/** How often a background scrub reads everything (at its rate). */
const AUTO_SCRUB_EVERY_MS = 24 * 3600_000;

export interface OpenedStore {
  db: Database;
  supervisor: Supervisor;
  engine: Engine;
  /** The volume groups and the drive of each (from vol-registry.json and the configured drives). */
  groups: LocalGroup[];
  /** Stops this thread's background work (the TTL sweep) without closing anything. */
  halt(): void;
  /** Starts the background work a replica's store does not run (the TTL sweep, the vacuum): a promotion. */
  startBackground(): void;
  /** What the vacuum and the scrub tell: the master sets these to hear them. */
  events: StoreEvents;
}

export interface StoreEvents {
  /** Volumes a vacuum removed (the master has every front end close its handles). */
  volumesRemoved?(volumes: number[]): void;
  /** What a vacuum run did, automatic or asked for (the master logs it). */
  vacuumed?(reports: VacuumReport[], auto: boolean): void;
  /** Damaged needles a scrub found and could not repair (the master logs them). */
  damaged?(needles: DamagedNeedle[]): void;
}

/** Extra actors (front ends) to run beside the store's, given the resolved volume groups. */
export type ExtraActors = (groups: LocalGroup[], dataDir: string) => ActorSpec[];

/** Where and on what a store runs: the defaults are production's. */
export interface StoreSeams {
  fs: Fs;
  clock: Clock;
  scheduler: Scheduler;
  host: ActorHost;
  /** Scrubs the volumes (production: on the CPU pool). */
  scrub?: Scrubber;
  pid: number;
  isAlive: (pid: number) => boolean;
}

export function productionSeams(): StoreSeams {
  return { fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, host: workerHost, pid: process.pid, isAlive: isProcessAlive };
}

export async function open(dir = 'brisedb-data', options: OpenOptions = {}): Promise<Database> {
  // Lookups of this thread read the index's heads in shared memory (storage/shared_heads.ts).
  return (await openStore(dir, { sharedHeads: createSharedHeads(), ...options })).db;
}

/** open() with the supervisor and engine exposed, for the master and the tests. */
export async function openStore(dir: string, options: OpenOptions = {}, extra: ExtraActors = () => [], seams: StoreSeams = productionSeams()): Promise<OpenedStore> {
  const { fs } = seams;
  const root = resolve(dir);
  fs.mkdir(root);
  const lock = acquireLock(fs, root, { pid: seams.pid, host: hostname(), nowMs: seams.clock.now() }, seams.isAlive);
  const undo: (() => Promise<void> | void)[] = [() => lock.release()];
  try {
    // The registry is authoritative: a drive keeps its group however --drives is ordered.
    const replication = { servers: options.volumeServers ?? [], factor: options.replicationFactor ?? 1 };
    // A replica's full copy cut short holds part of a store: opened, it would look whole.
    if (rebuildPending(fs, root)) {
      throw new StoreError('CORRUPT', `${root}: a rebuild (node cmd/rebuild.js) was cut short here (the file 'rebuild' is there): run it again to finish it: node cmd/rebuild.js --data ${dir}`);
    }
    if (resyncPending(fs, root)) {
      throw new StoreError('CORRUPT', `${root}: a replica's full copy from its master was cut short here (the file 'resync' is there); this copy is incomplete: start the replica again to finish it (node cmd/replica.js --master HOST:PORT --data ${dir}), or remove the data dir`);
    }
    // The replication history (docs/replica.md): made once, here, before any front end can serve
    // a replica (a replica's comes from its master, written by its resync).
    if (options.replicaGroups === undefined) loadOrStartHistory(fs, root);
    const groups = options.replicaGroups ?? resolveGroups(loadRegistry(fs, root), [root, ...(options.drives ?? []).map((d) => resolve(d))], replication);
    refuseLostWal(fs, root, logDirOf(root, groups, options.logDrive));
    // Before any volume writer appends: the needles that records carry, back at their places.
    redoNeedles(fs, root, new Map(groups.map((g) => [g.id, g.dir])));
    // Each start of a master with volume servers is a new epoch, above any its servers have
    // seen: they refuse the writes of any master started before it (docs/volume-server.md).
    const epoch = replication.servers.length > 0 ? nextEpoch(fs, root, await highestServerEpoch(replication.servers, options.volumeSecret ?? null)) : 0;
    const supervisor = new Supervisor([...storeTopology({ ...topologyOf(root, groups, options), epoch }), ...extra(groups, root)], { host: seams.host });
    undo.unshift(() => supervisor.stop());
    await supervisor.start();
    const reader = new VolumeReader(fs, groups);
    undo.unshift(() => reader.close());
    const sharedIndex = options.sharedHeads === undefined ? undefined : SharedIndexReader.of(options.sharedHeads, fs, root, () => seams.clock.now());
    undo.unshift(() => sharedIndex?.close());
    const ports = actorPorts((name) => supervisor.peer(name), groups, groupReader((name) => supervisor.peer(name), groups, new DriveReader(reader)), options.sync ?? 'always', sharedIndex);
    // The broker's registry is in memory: after a restart (READY again), send it our subscriptions.
    supervisor.on('actor-restart', (event: { name: string }) => {
      if (event.name === BROKER_ACTOR) void (ports.broker as ActorBroker).resubscribe().catch(() => undefined);
    });
    saveRegistry(fs, root, registryOf(groups, await ports.volumes.list()));
    const engine = new Engine(ports, { ...DEFAULT_LIMITS, ...options.limits }, seams.clock);
    return assemble({ engine, supervisor, reader, sharedIndex, groups, lock, root, seams, replica: options.replicaGroups !== undefined, options });
  } catch (err) {
    // A store that cannot start leaves nothing running and its data dir unlocked.
    for (const step of undo) await Promise.resolve().then(step).catch(() => undefined);
    throw err;
  }
}

function topologyOf(root: string, groups: LocalGroup[], options: OpenOptions): StoreTopologyConfig {
  return {
    dir: root,
    groups,
    maxVolumeSize: options.maxVolumeSize ?? 2 ** 31,
    sync: options.sync ?? 'always',
    volumeSecret: options.volumeSecret ?? null,
    ...(options.indexBuckets ? { indexBuckets: options.indexBuckets } : {}),
    ...(options.lookupSlots ? { lookupSlots: options.lookupSlots } : {}),
    ...(options.sharedHeads ? { sharedHeads: options.sharedHeads } : {}),
    logDir: logDirOf(root, groups, options.logDrive),
  };
}

/**
 * A data dir that lost its wal.log but not the rest must not start as a fresh store: the WAL
 * committer would create an empty WAL, the index would be ahead of it (and skip the records it
 * then acknowledges), and the volume log, ahead of the WAL, would be replaced. Either state
 * left there (index.hash, or a volume log with a generation) says the WAL was lost.
 */
function refuseLostWal(fs: Fs, root: string, logDir: string): void {
  if (fs.exists(join(root, WAL_FILE))) return;
  const index = fs.exists(join(root, INDEX_FILE));
  const log = chooseGeneration(fs, [logDir]).files.length > 0;
  if (!index && !log) return;
  throw new StoreError(
    'CORRUPT',
    `${root}: wal.log is missing, but ${index ? 'index.hash' : `the volume log (${logDir})`} is there: the WAL was lost. ` +
      `Rebuild it from the volume log: node cmd/rebuild.js --data ${root} (or, to start an empty store, remove index.hash* and ${logDir})`,
  );
}

/** The volume log's directory: `log/` on the chosen drive (docs/formats.md §Log volumes). */
export function logDirOf(root: string, groups: readonly LocalGroup[], logDrive?: string): string {
  if (logDrive !== undefined) return join(resolve(logDrive), LOG_DIR);
  const last = [...groups].sort((a, b) => a.id - b.id).at(-1);
  return join(last !== undefined && groups.length > 1 ? last.dir : root, LOG_DIR);
}

/** The started store as a Database: its background sweep, its scrub, and how it closes. */
function assemble(parts: { engine: Engine; supervisor: Supervisor; reader: VolumeReader; sharedIndex: SharedIndexReader | undefined; groups: LocalGroup[]; lock: LockHandle; root: string; seams: StoreSeams; replica: boolean; options: OpenOptions }): OpenedStore {
  const { engine, supervisor, reader, groups, lock, root, seams, options } = parts;
  // This thread's own background work stops with the store (or dies with it in a simulated crash).
  const background = new ScopedScheduler(seams.scheduler, (err) => process.emitWarning(`store background work failed: ${String(err)}`));
  const events: StoreEvents = {};
  const removed = (volumes: number[]): void => {
    for (const v of volumes) reader.forget(v);
    events.volumesRemoved?.(volumes);
  };
  const vacuum = new Vacuum(engine.ports, seams.clock, background, { ...DEFAULT_VACUUM, ...options.vacuum }, removed, (reports, auto) => events.vacuumed?.(reports, auto));
  const scrubSettings = { rateBytesPerSec: options.scrubRateBytesPerSec ?? DEFAULT_SCRUB.rateBytesPerSec };
  const scrubFile = async (path: string, expect: number[]): Promise<ScrubReport> => (await scrub([{ path, expect }]))[0]!;
  const scrubber = new Scrub(engine.ports, scrubFile, (id) => reader.pathOf(id), seams.clock, background, scrubSettings, (needles) => events.damaged?.(needles));
  let sweeping = false;
  const startBackground = (): void => {
    if (sweeping || closed) return;
    sweeping = true;
    // The background TTL sweep: a slice every 100 ms.
    everyAlone(background, SWEEP_EVERY_MS, () => engine.sweep(SWEEP_BUCKETS));
    startAutoVacuum(vacuum, background, options.autoVacuumEveryMs ?? AUTO_VACUUM_EVERY_MS);
    const scrubEvery = options.autoScrubEveryMs ?? AUTO_SCRUB_EVERY_MS;
    if (scrubEvery > 0) background.every(scrubEvery, () => void scrubber.run().catch(() => undefined));
    const walSize = async (): Promise<number> => (await supervisor.control<{ stats(): { size: number } }>(WAL_ACTOR).stats()).size;
    const compactor = new AutoCompactor({ ...DEFAULT_AUTO_COMPACT, ...options.autoCompact }, walSize, () => engine.compact());
    everyAlone(background, options.autoCompact?.everyMs ?? DEFAULT_AUTO_COMPACT.everyMs, () => compactor.check());
  };
  const scrub = seams.scrub ?? scrubOnPool();
  const volumes = engine.ports.volumes;
  let closed = false;
  const closer = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    // A vacuum or scrub running ends at its next step and answers why, before the actors it uses
    // stop (or the background timers its paced pauses wait for are cancelled under it).
    const closing = new StoreError('CLOSED', 'the store is closing');
    await Promise.all([vacuum.stop(closing), scrubber.stop(closing)]);
    background.close();
    engine.stopTimers();
    try {
      await scrub.close?.();
      saveRegistry(seams.fs, root, registryOf(groups, await volumes.list()));
    } finally {
      await supervisor.stop();
      reader.close();
      parts.sharedIndex?.close();
      lock.release();
    }
  };
  const verify = async (): Promise<ScrubReport[]> => scrub((await volumes.list()).map((v) => ({ path: reader.pathOf(v.id) })));
  // A replica's volumes are its master's, byte for byte: only a master (or a promoted replica) vacuums.
  const readOnly = (): Promise<never> => Promise.reject(new StoreError('READONLY', READONLY_TEXT));
  const admin: StoreAdmin = {
    vacuum: (volume?: number) => (sweeping ? vacuum.run(volume) : readOnly()),
    // A repair writes (a copy and a move): a replica's scrub waits for its promotion too.
    scrub: async (wait: boolean) => {
      if (!sweeping) return readOnly();
      const started = !scrubber.inProgress;
      const running = scrubber.run();
      return { started, summary: wait ? await running : null };
    },
    lastScrub: async () => scrubber.lastSummary(),
    operations: async () => [vacuum.progress(), scrubber.progress(), engine.compactProgress()].filter((p): p is Progress => p !== null),
  };
  const db = new EngineDatabase(engine, closer, async () => ({ actors: supervisor.status() }), verify, admin);
  const halt = (): void => {
    closed = true;
    background.close();
    engine.stopTimers();
  };
  if (!parts.replica) startBackground();
  return { db, supervisor, engine, groups, halt, startBackground, events };
}

/** The automatic vacuum: sealed volumes over the threshold, looked for every `everyMs` (a look while a run goes joins it). */
function startAutoVacuum(vacuum: Vacuum, scheduler: Scheduler, everyMs: number): void {
  if (everyMs <= 0) return;
  scheduler.every(everyMs, () => void vacuum.run(undefined, true).catch(() => undefined)); // an actor restarting: the next look retries
}

/**
 * `run` every `everyMs`, never two at once (a tick while one runs is skipped). A failure (an
 * actor restarting, a COMPACT refused) is left to the next tick, which retries.
 */
function everyAlone(scheduler: Scheduler, everyMs: number, run: () => Promise<unknown>): void {
  let running = false;
  scheduler.every(everyMs, () => {
    if (running) return;
    running = true;
    run()
      .catch(() => undefined)
      .finally(() => {
        running = false;
      });
  });
}

/** Checks every needle of the volumes at `paths`; `close` frees what it started. */
export type Scrubber = ((volumes: ScrubInput[]) => Promise<ScrubReport[]>) & { close?: () => Promise<void> };

/** CPU-heavy scans (scrub) run on a piscina pool, started on first use. */
function scrubOnPool(): Scrubber {
  let pool: CpuPool<StoreJobs> | null = null;
  const scrub: Scrubber = async (inputs) => {
    pool ??= new CpuPool<StoreJobs>(CPU_JOBS);
    const p = pool;
    return Promise.all(inputs.map((input) => p.run('scrubVolume', input)));
  };
  scrub.close = async () => {
    await pool?.destroy();
  };
  return scrub;
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

/**
 * The highest epoch the reachable servers have seen (0 when none answers within a second): a
 * master copied from an older data dir, or a second master, still starts above the one writing.
 */
async function highestServerEpoch(servers: readonly string[], secret: string | null): Promise<number> {
  const epochs = await Promise.all(
    servers.map(async (base) => {
      const client = new VolumeClient({ base, secret, epoch: 0, idleMs: 1_000, maxSockets: 1 });
      try {
        const epoch = (await client.health())['epoch'];
        return typeof epoch === 'number' && Number.isSafeInteger(epoch) ? epoch : 0;
      } catch {
        return 0; // down now: it learns the new epoch from the first write or repair
      } finally {
        client.close();
      }
    }),
  );
  return Math.max(0, ...epochs);
}

/** The master's epoch file: read, raised above `floor` and made durable before anything is written. */
function nextEpoch(fs: Fs, root: string, floor: number): number {
  const path = join(root, EPOCH_FILE);
  let last = 0;
  if (fs.exists(path)) {
    const n = Number(new TextDecoder().decode(fs.readFile(path)).trim());
    if (!Number.isSafeInteger(n) || n < 0) throw new StoreError('CORRUPT', `${path}: not an epoch`);
    last = n;
  }
  const epoch = Math.max(last, floor) + 1;
  replaceFileAtomically(fs, path, new TextEncoder().encode(`${epoch}\n`));
  return epoch;
}
