// The whole engine in the calling thread, on an injected Fs and Clock: the crash/recovery
// property tests run it on a simulated file system, and tools use it where threads would only
// add cost. Recovery order on open is the same as the actors' (lock, volumes, WAL with its torn
// tail cut, index with the WAL records after its durable LSN replayed).
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../runtime/clock.js';
import type { Fs } from '../runtime/fs.js';
import { DriveVolumes } from '../storage/drive_volumes.js';
import { HashIndex } from '../storage/hash_index.js';
import { acquireLock } from '../storage/lock_file.js';
import { saveRegistry } from '../storage/registry.js';
import { VolumeReader } from '../storage/volume_reader.js';
import { replayInto } from '../storage/wal_reader.js';
import { WalWriter } from '../storage/wal_writer.js';
import type { Database, OpenOptions } from './api.js';
import { DEFAULT_LIMITS } from './api.js';
import { mapKey } from './bytes.js';
import { scrubVolume } from '../storage/volume_scrub.js';
import { EngineDatabase } from './database.js';
import { Engine } from './engine.js';
import { LocalBroker, LocalCommit, LocalIndex, LocalReader, LocalVolumes, LocalWalAdmin, readVerifiedValue } from './local_ports.js';
import type { Ports } from './ports.js';

export interface LocalOpenOptions extends OpenOptions {
  fs: Fs;
  clock: Clock;
  dir: string;
  pid?: number;
  isAlive?: (pid: number) => boolean;
}

export type DumpedState = Map<string, { value: Buffer; expiresAt: number }>;

export interface LocalDatabase extends Database {
  /** One slice of background work: TTL sweep, index checkpoint when due, a rebuild step. */
  maintenance(): Promise<void>;
  /** Simulates process death: no flush, no close; the object is unusable afterwards. */
  abandon(): void;
  /** The live state as rebuilt from scratch: a fresh index replayed from the whole WAL. */
  rebuildCheck(): Promise<DumpedState>;
  /** Every live key with its value, read through the index. */
  dump(): Promise<DumpedState>;
}

export const WAL_FILE = 'wal.log';
export const INDEX_FILE = 'index.hash';

/** Opens the index and brings it up to the WAL: the records after its durable LSN. */
export function recoverIndex(fs: Fs, dir: string, indexBuckets?: number): HashIndex {
  const index = HashIndex.open(fs, join(dir, INDEX_FILE), indexBuckets ? { initialBuckets: indexBuckets } : {});
  replayInto(fs, join(dir, WAL_FILE), index.appliedLsn, (record) => {
    index.apply(record);
  });
  return index;
}

export function driveDirs(dir: string, drives: string[] = []): string[] {
  return [dir, ...drives];
}

export async function openLocal(options: LocalOpenOptions): Promise<LocalDatabase> {
  const { fs, clock, dir } = options;
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const policy = options.sync ?? 'always';
  fs.mkdir(dir);
  const lock = acquireLock(fs, dir, { pid: options.pid ?? process.pid, host: hostname(), nowMs: clock.now() }, options.isAlive ?? isProcessAlive);
  const dirs = driveDirs(dir, options.drives);
  const maxVolumeSize = options.maxVolumeSize ?? 2 ** 31;
  let drives: DriveVolumes[];
  let wal: WalWriter;
  let index: HashIndex;
  try {
    drives = dirs.map((d, slot) => DriveVolumes.open(fs, { dir: d, slot, maxVolumeSize, clock }));
    wal = WalWriter.open(fs, join(dir, WAL_FILE), { sync: policy });
    index = recoverIndex(fs, dir, options.indexBuckets);
  } catch (err) {
    // A store that cannot recover must not keep its data dir locked against the next try
    // (and a failing release must not hide why the open failed).
    try {
      lock.release();
    } catch {
      // the open's own error is the one to report
    }
    throw err;
  }
  const reader = new VolumeReader(fs, dirs);
  const volumes = new LocalVolumes(drives, dirs, policy);
  const ports: Ports = {
    volumes,
    commit: new LocalCommit(wal, index, clock),
    index: new LocalIndex(index, clock),
    wal: new LocalWalAdmin(fs, join(dir, WAL_FILE), wal, clock),
    reader: new LocalReader(reader),
    broker: new LocalBroker(),
  };
  const engine = new Engine(ports, limits, clock);
  let dead = false;

  const closer = async (): Promise<void> => {
    if (dead) return;
    dead = true;
    saveRegistry(fs, dir, registryOf(dirs, await volumes.list()));
    index.checkpoint();
    index.close();
    wal.close();
    reader.close();
    for (const d of drives) d.close();
    lock.release();
  };

  const db = new EngineDatabase(
    engine,
    closer,
    async () => ({ wal: { lastLsn: wal.lastLsn, snapshotLsn: wal.snapshotLsn, size: wal.size } }),
    async () => (await volumes.list()).map((v) => scrubVolume({ path: reader.pathOf(v.id) }, fs)),
  );

  const dumpIndex = (idx: HashIndex): DumpedState => {
    const out: DumpedState = new Map();
    for (const e of idx.entries(clock.now())) {
      out.set(mapKey(e.key), { value: Buffer.from(readVerifiedValue(reader, e.address, e.key)), expiresAt: e.expiresAt });
    }
    return out;
  };

  return Object.assign(db, {
    async maintenance(): Promise<void> {
      await engine.sweep(256);
      if (index.rebuilding) index.rebuildStep(256);
      else if (index.needsGrowth()) index.startRebuild();
      if (index.needsCheckpoint()) index.checkpoint();
    },
    abandon(): void {
      dead = true;
    },
    async dump(): Promise<DumpedState> {
      return dumpIndex(index);
    },
    async rebuildCheck(): Promise<DumpedState> {
      const path = join(dir, 'rebuild-check.hash');
      if (fs.exists(path)) fs.unlink(path);
      const fresh = HashIndex.open(fs, path, {});
      try {
        replayInto(fs, join(dir, WAL_FILE), 0, (record) => {
          fresh.apply(record);
        });
        return dumpIndex(fresh);
      } finally {
        fresh.close();
        fs.unlink(path);
      }
    },
  });
}

export function registryOf(dirs: string[], volumes: { id: number; drive: string }[]) {
  const entries: Record<string, { drive: number }> = {};
  for (const v of volumes) entries[String(v.id)] = { drive: Math.max(0, dirs.indexOf(v.drive)) };
  return { version: 1 as const, drives: dirs, volumes: entries };
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}
