// Rebuilding a data dir's WAL and index from its drives (cmd/rebuild.js; docs/formats.md §Log
// volumes, Rebuild): the WAL from the volume log, then the index from that WAL, then a check
// that every key's volume is on a drive.
// Invariants:
// - nothing is deleted: the old wal.log and index files are renamed to `*.before-rebuild-STAMP`
//   before the new WAL is renamed in, and the directory is fsynced after;
// - a crash at any step leaves a data dir that opens as before, or that an open refuses until
//   this is run again: before the renames, the old files as they were (and a stale wal.log.tmp
//   the next open removes); from the first rename until the new index is checkpointed, the
//   marker `rebuild` (written and synced first) makes an open refuse, and a rerun finishes;
// - a WAL that reads whole and is at least as far as the volume log is not replaced unless forced.
import { join } from 'node:path';
import type { Fs } from '../runtime/fs.js';
import { VOLUMES_DIR } from './drive_volumes.js';
import { writeWalFromLog, type LogRebuildReport } from './log_rebuild.js';
import { readLogPointer } from './log_pointer.js';
import { INDEX_FILE, LOG_DIR, REBUILD_MARKER, WAL_FILE, rebuildPending, recoverIndex } from './store_files.js';
import { volumeFileName } from './volume_format.js';
import { io, scanWal } from './wal_reader.js';

export interface RebuildOptions {
  /** Drives (absolute) that may hold the volume log and volumes, besides the data dir. */
  drives: readonly string[];
  /** Replace a WAL that reads whole and is not behind the volume log. */
  force: boolean;
  /** Suffix of the names the old files are kept under. */
  stamp: string;
  nowMs: number;
  /** Called as it goes: reading the volume log (bytes), then replaying into the index (records). */
  progress?: (phase: 'log' | 'index', done: number, total: number) => void;
}

export interface RebuildResult {
  log: LogRebuildReport;
  /** The old WAL's state: null when there was none; its last LSN and whether it read whole. */
  oldWal: { lastLsn: number; whole: boolean; error?: string } | null;
  /** False when the WAL was whole and not behind (nothing replaced: see `force`). */
  replaced: boolean;
  keptAs: string[];
  /** Keys in the rebuilt index, and those whose volume file is on none of the drives. */
  keys: number;
  keysWithoutVolume: number;
  missingVolumes: number[];
}

/** Rebuilds `dir`'s wal.log and index.hash from the volume log on its drives. */
export function rebuildStore(fs: Fs, dir: string, options: RebuildOptions): RebuildResult {
  const drives = [dir, ...options.drives.filter((d) => d !== dir)];
  const walPath = join(dir, WAL_FILE);
  const oldWal = inspectWal(fs, walPath);
  // The drives' log/ folders, and the one the data dir's pointer names (a --log-drive).
  const pointed = readLogPointer(fs, dir);
  const logDirs = [...new Set([...(pointed === null ? [] : [pointed]), ...drives.map((d) => join(d, LOG_DIR))])];
  const log = writeWalFromLog(fs, logDirs, walPath, (done, total) => options.progress?.('log', done, total));
  const tmpPath = `${walPath}.tmp`;
  // A rebuild cut short is finished whatever the WAL left there looks like.
  const resumed = rebuildPending(fs, dir);
  if (oldWal !== null && oldWal.whole && oldWal.lastLsn >= log.lastLsn && !options.force && !resumed) {
    io(tmpPath, () => fs.unlink(tmpPath));
    return { log, oldWal, replaced: false, keptAs: [], keys: 0, keysWithoutVolume: 0, missingVolumes: [] };
  }
  const keptAs: string[] = [];
  // From here until the new index is in, an open refuses the data dir (the marker): half of the
  // old files (an index without its heads file, a WAL without its index) must not be opened.
  if (!resumed) writeMarker(fs, dir);
  for (const name of [WAL_FILE, INDEX_FILE, `${INDEX_FILE}.heads`, `${INDEX_FILE}.usage`]) {
    const path = join(dir, name);
    if (!io(path, () => fs.exists(path))) continue;
    const kept = `${path}.before-rebuild-${options.stamp}`;
    io(path, () => fs.rename(path, kept));
    keptAs.push(kept);
  }
  io(walPath, () => fs.rename(tmpPath, walPath));
  io(dir, () => fs.syncDir(dir));
  const records = log.snapshotChunks + log.records;
  let applied = 0;
  const check = checkVolumes(fs, dir, drives, options.nowMs, () => options.progress?.('index', ++applied, records));
  const marker = join(dir, REBUILD_MARKER);
  io(marker, () => fs.unlink(marker));
  io(dir, () => fs.syncDir(dir));
  return { log, oldWal, replaced: true, keptAs, ...check };
}

/** The marker, durable before the first rename. */
function writeMarker(fs: Fs, dir: string): void {
  const path = join(dir, REBUILD_MARKER);
  const file = io(path, () => fs.open(path, 'create'));
  try {
    io(path, () => file.write(new TextEncoder().encode('a rebuild (node cmd/rebuild.js) is putting a rebuilt wal.log and index in place\n'), 0));
    io(path, () => file.sync());
  } finally {
    file.close();
  }
  io(dir, () => fs.syncDir(dir));
}

function inspectWal(fs: Fs, walPath: string): RebuildResult['oldWal'] {
  if (!io(walPath, () => fs.exists(walPath))) return null;
  try {
    const scan = scanWal(fs, walPath);
    const lastLsn = scan.records.at(-1)?.lsn ?? scan.snapshotLsn;
    return { lastLsn, whole: scan.validEnd === scan.fileSize };
  } catch (err) {
    return { lastLsn: 0, whole: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Rebuilds the index from the new WAL (and checkpoints it), then finds keys without a volume file. */
function checkVolumes(fs: Fs, dir: string, drives: readonly string[], nowMs: number, onRecord: () => void): Pick<RebuildResult, 'keys' | 'keysWithoutVolume' | 'missingVolumes'> {
  const index = recoverIndex(fs, dir, undefined, onRecord);
  const missing = new Set<number>();
  const found = new Set<number>();
  let keys = 0;
  let keysWithoutVolume = 0;
  try {
    for (const e of index.entries(nowMs)) {
      keys += 1;
      const v = e.address.volume;
      if (!found.has(v) && !missing.has(v)) {
        const there = drives.some((d) => fs.exists(join(d, VOLUMES_DIR, volumeFileName(v))));
        (there ? found : missing).add(v);
      }
      if (missing.has(v)) keysWithoutVolume += 1;
    }
    index.checkpoint();
  } finally {
    index.close();
  }
  return { keys, keysWithoutVolume, missingVolumes: [...missing].sort((a, b) => a - b) };
}
