// Rebuilding wal.log from the volume log (docs/formats.md §Log volumes, Rebuild): the newest
// generation with a base file, read in file order, its records taken in LSN order until the
// first one missing, written as a fresh WAL. What cmd/rebuild.js does first; the index is then
// rebuilt from that WAL as a lost index always is (store_files.recoverIndex).
// Invariants:
// - the output is written to `${walPath}.tmp`, fsynced, and renamed over wal.log only by the
//   caller, after it has set the old files aside: a crash leaves them as they were;
// - a record is never taken out of order: snapshot chunks (kind 1, lsn S) only before the first
//   kind-0 record, then S+1, S+2, ...; a record already taken is skipped, the first gap ends it;
// - files are read needle by needle, never whole; the WAL is written as it is read.
import type { FileHandle, Fs } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';
import { decodeRecord, encodeWalHeader } from './wal_format.js';
import type { WalRecord } from './types.js';
import { io } from './wal_reader.js';
import { listLogVolumes, scanLogVolume, type LogVolumeFile } from './log_volume_reader.js';

export interface LogRebuildReport {
  /** The generation read (its WAL snapshot LSN), or null when no log volume was found. */
  baseLsn: number | null;
  files: string[];
  snapshotChunks: number;
  records: number;
  /** The last LSN taken: the rebuilt WAL ends there. */
  lastLsn: number;
  /** Damaged regions stepped over (each one a torn or damaged needle). */
  damagedRegions: number;
  /** Records found past the first missing LSN: they cannot be applied without the ones before. */
  dropped: { count: number; firstLsn: number; lastLsn: number } | null;
  /** Files named as log volumes whose superblock does not read. */
  unreadable: string[];
  walBytes: number;
}

/** The generation to read: the newest base (highest snapshot LSN, then id) and the files after it. */
export function chooseGeneration(fs: Fs, dirs: readonly string[]): { files: LogVolumeFile[]; unreadable: string[] } {
  let best: LogVolumeFile[] = [];
  const unreadable: string[] = [];
  for (const dir of dirs) {
    if (!io(dir, () => fs.exists(dir))) continue;
    const listed = listLogVolumes(fs, dir);
    unreadable.push(...listed.unreadable);
    const { files } = listed;
    for (const base of files) {
      if (!base.superblock.base) continue;
      const bestBase = best[0]?.superblock;
      // Across drives ids are not comparable (the log drive changed when a drive was added):
      // the newest base of the highest snapshot LSN is the one the committer wrote last.
      const better = bestBase === undefined || base.superblock.baseLsn > bestBase.baseLsn ||
        (base.superblock.baseLsn === bestBase.baseLsn && (base.superblock.createdAt > bestBase.createdAt ||
          (base.superblock.createdAt === bestBase.createdAt && base.superblock.id > bestBase.id)));
      if (!better) continue;
      // Every later file of the generation, up to the next base: a missing or unreadable file
      // in between leaves a gap that RecordOrder reports (the records after it are dropped).
      const nextBase = files.find((f) => f.superblock.base && f.superblock.id > base.superblock.id)?.superblock.id ?? Infinity;
      best = files.filter((f) => f.superblock.id >= base.superblock.id && f.superblock.id < nextBase && f.superblock.baseLsn === base.superblock.baseLsn);
    }
  }
  return { files: best, unreadable };
}

/** Takes records in the order of the log; counts what it must drop. */
class RecordOrder {
  lastLsn: number;
  snapshotChunks = 0;
  records = 0;
  dropped: { count: number; firstLsn: number; lastLsn: number } | null = null;
  private seenBatch = false;

  constructor(private readonly baseLsn: number) {
    this.lastLsn = baseLsn;
  }

  /** Whether the record is the next one of the log (to be written). */
  take(lsn: number, kind: 0 | 1): boolean {
    if (this.dropped !== null) {
      if (lsn > this.lastLsn) this.drop(lsn);
      return false;
    }
    if (kind === 1) {
      if (this.seenBatch || lsn !== this.baseLsn) return false;
      this.snapshotChunks += 1;
      return true;
    }
    if (lsn <= this.lastLsn) return false;
    if (lsn !== this.lastLsn + 1) {
      this.drop(lsn);
      return false;
    }
    this.seenBatch = true;
    this.lastLsn = lsn;
    this.records += 1;
    return true;
  }

  private drop(lsn: number): void {
    if (this.dropped === null) this.dropped = { count: 0, firstLsn: lsn, lastLsn: lsn };
    this.dropped.count += 1;
    this.dropped.firstLsn = Math.min(this.dropped.firstLsn, lsn);
    this.dropped.lastLsn = Math.max(this.dropped.lastLsn, lsn);
  }
}

/**
 * Writes `${walPath}.tmp` from the volume log in `dirs` and fsyncs it. Returns what it read;
 * NOT_FOUND (nothing written) when no generation is there.
 */
export function writeWalFromLog(fs: Fs, dirs: readonly string[], walPath: string, onProgress?: (doneBytes: number, totalBytes: number) => void): LogRebuildReport {
  const { files, unreadable } = chooseGeneration(fs, dirs);
  const first = files[0];
  if (first === undefined) {
    throw new StoreError('NOT_FOUND', `no log volume with a base file in ${dirs.join(', ')}: nothing to rebuild from`);
  }
  const baseLsn = first.superblock.baseLsn;
  const order = new RecordOrder(baseLsn);
  const tmpPath = `${walPath}.tmp`;
  if (io(tmpPath, () => fs.exists(tmpPath))) io(tmpPath, () => fs.unlink(tmpPath));
  const out = io(tmpPath, () => fs.open(tmpPath, 'exclusive'));
  let end = 0;
  const write = (bytes: Uint8Array): void => {
    io(tmpPath, () => out.write(bytes, end));
    end += bytes.length;
  };
  let damagedRegions = 0;
  try {
    write(encodeWalHeader(baseLsn));
    const sizes = files.map((f) => sizeOf(fs, f.path));
    const total = sizes.reduce((a, b) => a + b, 0);
    let before = 0;
    files.forEach((f, i) => {
      damagedRegions += copyFile(fs, f.path, order, write, (at) => onProgress?.(before + at, total));
      before += sizes[i]!;
    });
    io(tmpPath, () => out.sync());
  } catch (err) {
    closeAndRemove(fs, out, tmpPath);
    throw err;
  }
  out.close();
  return {
    baseLsn,
    files: files.map((f) => f.path),
    snapshotChunks: order.snapshotChunks,
    records: order.records,
    lastLsn: order.lastLsn,
    damagedRegions,
    dropped: order.dropped,
    unreadable,
    walBytes: end,
  };
}

/** Copies one file's records that the order takes; returns the damaged regions stepped over. */
function copyFile(fs: Fs, path: string, order: RecordOrder, write: (bytes: Uint8Array) => void, progress: (at: number) => void): number {
  const it = scanLogVolume(fs, path, true);
  for (;;) {
    const next = it.next();
    if (next.done === true) return next.value.skipped;
    const { frames } = next.value;
    progress(next.value.offset + frames.length);
    for (let at = 0; at < frames.length; ) {
      const res = decodeRecord(frames, at);
      // The needle's CRC held, so its frames are what the committer wrote: a frame that does
      // not decode is a bug, not damage; nothing after it in this needle can be placed.
      if (!res.ok) throw new StoreError('CORRUPT', `${path}: a log needle at ${next.value.offset} holds a frame that does not decode (${res.reason})`);
      if (order.take(res.record.lsn, res.record.kind)) write(frames.subarray(at, at + res.size));
      at += res.size;
    }
  }
}

/** Records a restore takes at most (a damaged WAL tail is one group commit, not a history). */
const RESTORE_MAX_RECORDS = 65_536;

/**
 * The records after `afterLsn` that the volume log in `dir` holds for the WAL whose snapshot LSN
 * is `baseLsn`, consecutive from afterLsn + 1 ([] when none, or when the generation is another
 * WAL's). The WAL committer appends them when open had to cut wal.log's tail: the volume log is
 * written only after a group's fdatasync, so a record in it was durable in the WAL, and a cut
 * tail that it holds was damage, not an unsynced write.
 */
export function logRecordsAfter(fs: Fs, dir: string, baseLsn: number, afterLsn: number): WalRecord[] {
  const { files } = chooseGeneration(fs, [dir]);
  if (files[0]?.superblock.baseLsn !== baseLsn) return [];
  const out: WalRecord[] = [];
  for (const f of files) {
    const it = scanLogVolume(fs, f.path, true);
    for (let next = it.next(); next.done !== true; next = it.next()) {
      const { frames, firstLsn, records } = next.value;
      if (firstLsn + records - 1 <= afterLsn) continue;
      for (let at = 0; at < frames.length; ) {
        const res = decodeRecord(frames, at);
        if (!res.ok) break;
        at += res.size;
        const want = afterLsn + out.length + 1;
        if (res.record.kind !== 0 || res.record.lsn < want) continue;
        if (res.record.lsn > want || out.length >= RESTORE_MAX_RECORDS) return out;
        out.push(res.record);
      }
    }
  }
  return out;
}

function sizeOf(fs: Fs, path: string): number {
  const file = io(path, () => fs.open(path, 'read'));
  try {
    return io(path, () => file.size());
  } finally {
    file.close();
  }
}

function closeAndRemove(fs: Fs, file: FileHandle, path: string): void {
  try {
    file.close();
    if (fs.exists(path)) fs.unlink(path);
  } catch {
    // The first error is the one to report; a stale .tmp is removed by the next run or open.
  }
}
