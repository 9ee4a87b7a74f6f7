// The files of a data directory that are not volumes, and how the index is brought back up to
// date on open: the index file as last checkpointed, then every WAL record after its durable
// LSN replayed (docs/formats.md). Used by the index actor at start and when it has missed
// records, and by the tools that check a store (a rebuild from the WAL alone).
import { join } from 'node:path';
import { StoreError } from '../runtime/errors.js';
import type { Fs } from '../runtime/fs.js';
import { HashIndex } from './hash_index.js';
import { replayInto } from './wal_reader.js';

export const WAL_FILE = 'wal.log';
export const INDEX_FILE = 'index.hash';
/** The volume log's folder on its drive (docs/formats.md §Log volumes). */
export const LOG_DIR = 'log';
/** Present while a replica's full copy is written into the data dir (docs/replica.md). */
export const RESYNC_MARKER = 'resync';
/** Present while cmd/rebuild.js sets the old WAL and index aside and puts the rebuilt ones in. */
export const REBUILD_MARKER = 'rebuild';

/** The last LSN of the data dir's WAL (0 without one): a scan of the file, for tools and start-up checks. */
export function walLastLsn(fs: Fs, dir: string): number {
  const path = join(dir, WAL_FILE);
  return fs.exists(path) ? replayInto(fs, path, Number.MAX_SAFE_INTEGER, () => undefined).lastLsn : 0;
}

/** Whether a rebuild was cut short here: the data dir must not be opened until it is run again. */
export function rebuildPending(fs: Fs, dataDir: string): boolean {
  return fs.exists(join(dataDir, REBUILD_MARKER));
}

/** Whether a replica's full copy was cut short here: the data dir must not be opened as it is. */
export function resyncPending(fs: Fs, dataDir: string): boolean {
  return fs.exists(join(dataDir, RESYNC_MARKER));
}

/** Opens the index and brings it up to the WAL: the records after its durable LSN. */
export function recoverIndex(fs: Fs, dir: string, indexBuckets?: number, onRecord?: () => void): HashIndex {
  const index = HashIndex.open(fs, join(dir, INDEX_FILE), indexBuckets ? { initialBuckets: indexBuckets } : {});
  try {
    replayInto(fs, join(dir, WAL_FILE), index.appliedLsn, (record) => {
      index.apply(record);
      onRecord?.();
    });
  } catch (err) {
    index.close();
    throw err;
  }
  return index;
}

/**
 * Applies the records an index missed (they were committed while it was down) from the WAL
 * file, up to the one before `nextLsn`; CORRUPT when the file does not hold them all.
 */
export function fillIndexGap(fs: Fs, dir: string, index: HashIndex, nextLsn: number): void {
  replayInto(fs, join(dir, WAL_FILE), index.appliedLsn, (record) => {
    if (record.lsn < nextLsn) index.apply(record);
  });
  if (index.appliedLsn !== nextLsn - 1) {
    throw new StoreError('CORRUPT', `index at LSN ${index.appliedLsn} cannot reach LSN ${nextLsn - 1} from the WAL`);
  }
}

/**
 * The live state as the WAL alone gives it: a fresh index at `scratchPath`, replayed from LSN 0
 * (it grows as needed: start it small, `buckets`, for a small store).
 */
export function indexFromWal<T>(fs: Fs, dir: string, scratchPath: string, read: (index: HashIndex) => T, buckets?: number): T {
  if (fs.exists(scratchPath)) fs.unlink(scratchPath);
  const fresh = HashIndex.open(fs, scratchPath, buckets === undefined ? {} : { initialBuckets: buckets });
  try {
    replayInto(fs, join(dir, WAL_FILE), 0, (record) => {
      fresh.apply(record);
    });
    return read(fresh);
  } finally {
    fresh.close();
    fs.unlink(scratchPath);
  }
}
