// open(dir): the embedded database as the design has it: a supervisor in this thread, the
// volume writers, WAL committer, index and broker as actors on worker threads, and this
// thread as a front end speaking to them through ports. The lock on the data dir is held by
// this process for as long as the database is open.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { NodeFs } from '../runtime/fs.js';
import { systemClock } from '../runtime/clock.js';
import { Supervisor } from '../runtime/supervisor.js';
import type { ActorSpec } from '../runtime/topology.js';
import { CpuPool } from '../runtime/cpu_pool.js';
import { CPU_JOBS, type StoreJobs } from '../storage/cpu_jobs.js';
import { acquireLock } from '../storage/lock_file.js';
import { saveRegistry } from '../storage/registry.js';
import { VolumeReader } from '../storage/volume_reader.js';
import { storeTopology, volumeActorName } from '../actors/store_topology.js';
import { DEFAULT_LIMITS, type Database, type OpenOptions } from './api.js';
import { ActorBroker, ActorCommit, ActorIndex, ActorVolumes, ActorWalAdmin } from './actor_ports.js';
import { EngineDatabase } from './database.js';
import { Engine } from './engine.js';
import { driveDirs, isProcessAlive, registryOf } from './local.js';
import { LocalReader } from './local_ports.js';
import type { Ports } from './ports.js';

/** How often the TTL sweep runs, and how many buckets each slice looks at. */
const SWEEP_EVERY_MS = 100;
const SWEEP_BUCKETS = 1024;

export interface OpenedStore {
  db: Database;
  supervisor: Supervisor;
  engine: Engine;
}

export async function open(dir = 'brisedb-data', options: OpenOptions = {}): Promise<Database> {
  return (await openStore(dir, options)).db;
}

/** Extra actors (front ends) to run beside the store's, given the resolved drive roots. */
export type ExtraActors = (drives: string[], dataDir: string) => ActorSpec[];

/** open() with the supervisor and engine exposed, for the master and the tests. */
export async function openStore(dir: string, options: OpenOptions = {}, extra: ExtraActors = () => []): Promise<OpenedStore> {
  const fs = new NodeFs();
  const root = resolve(dir);
  const dirs = driveDirs(root, (options.drives ?? []).map((d) => resolve(d)));
  fs.mkdir(root);
  const lock = acquireLock(fs, root, { pid: process.pid, host: hostname(), nowMs: Date.now() }, isProcessAlive);
  const supervisor = new Supervisor([
    ...storeTopology({
      dir: root,
      drives: dirs,
      maxVolumeSize: options.maxVolumeSize ?? 2 ** 31,
      sync: options.sync ?? 'always',
      ...(options.indexBuckets ? { indexBuckets: options.indexBuckets } : {}),
    }),
    ...extra(dirs, root),
  ]);
  try {
    await supervisor.start();
  } catch (err) {
    await supervisor.stop().catch(() => undefined);
    lock.release();
    throw err;
  }
  const reader = new VolumeReader(fs, dirs);
  const broker = new ActorBroker(supervisor.peer('broker'));
  // The broker's registry is in memory: after a restart, send it our subscriptions again.
  supervisor.on('actor-restart', (event: { name: string }) => {
    if (event.name === 'broker') void broker.resubscribe().catch(() => undefined);
  });
  const volumes = new ActorVolumes(dirs.map((_, slot) => supervisor.peer(volumeActorName(slot))), dirs);
  const ports: Ports = {
    volumes,
    commit: new ActorCommit(supervisor.peer('wal')),
    index: new ActorIndex(supervisor.peer('index')),
    wal: new ActorWalAdmin(supervisor.peer('wal')),
    reader: new LocalReader(reader),
    broker,
  };
  const engine = new Engine(ports, { ...DEFAULT_LIMITS, ...options.limits }, systemClock);
  saveRegistry(fs, root, registryOf(dirs, await volumes.list()));
  const sweeper = startSweeper(engine);
  // CPU-heavy scans (scrub) run on a piscina pool, started on first use.
  let pool: CpuPool<StoreJobs> | null = null;
  const scrub = async () => {
    pool ??= new CpuPool<StoreJobs>(CPU_JOBS);
    const list = await volumes.list();
    return Promise.all(list.map((v) => pool!.run('scrubVolume', { path: reader.pathOf(v.id) })));
  };

  const closer = async (): Promise<void> => {
    clearInterval(sweeper);
    try {
      await pool?.destroy();
      saveRegistry(fs, root, registryOf(dirs, await volumes.list()));
    } finally {
      await supervisor.stop();
      reader.close();
      lock.release();
    }
  };
  const db = new EngineDatabase(engine, closer, async () => ({ actors: supervisor.status() }), scrub);
  return { db, supervisor, engine };
}

/** The background TTL sweep: a slice every 100 ms, never two at once. */
function startSweeper(engine: Engine): NodeJS.Timeout {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    engine
      .sweep(SWEEP_BUCKETS)
      .catch(() => undefined) // an actor restarting: the next slice retries
      .finally(() => {
        running = false;
      });
  }, SWEEP_EVERY_MS);
  timer.unref();
  return timer;
}
