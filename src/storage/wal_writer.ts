// The appending side of wal.log (docs/formats.md §WAL): open with recovery, group commit, fence.
// Owns: the open write handle of wal.log, lastLsn, the file size, the fence.
// Invariants:
//  - the file holds exactly `size` bytes of valid log: header then records lsn S+1..lastLsn
//    (after open the torn tail is cut; after each commit the batch is appended whole);
//  - a batch is one write and (policy 'always') one fdatasync; its records get consecutive
//    LSNs and are returned only once durable;
//  - a failed write or sync is final: the WAL is fenced and every later commit throws
//    WAL_FENCED without touching the file, because after a failed fsync the kernel may have
//    dropped the dirty pages and a retry could report success for data that is gone;
//  - a WAL whose header is bad is never reset: open throws CORRUPT.
import * as nodePath from 'node:path';
import { canaries } from '../runtime/canary.js';
import type { FileHandle, Fs } from '../runtime/fs.js';
import { fsErrorCode } from '../runtime/fs.js';
import { type Op, type RedoNeedle, type WalRecord } from './types.js';
import { WAL_HEADER_SIZE, encodeRecord, encodeWalHeader } from './wal_format.js';
import { findValidRecordAfter, io, scanFrames, type WalScanEnd } from './wal_reader.js';
import { StoreError } from '../runtime/errors.js';

/** A group commit larger than this is refused (the committer cuts its batches below it). */
export const WAL_MAX_BATCH_BYTES = 256 * 1024 * 1024;

export interface WalOptions {
  sync: 'always' | 'none';
}

export interface CommitRequest {
  ops: Op[];
  timeMs: number;
  /** Needles of these ops written but not synced: the record carries them (WalRecord.redo). */
  redo?: RedoNeedle[];
}

/** What open found and cut: the actor reports a non-empty cut loudly. */
export interface WalRecovery {
  /** Bytes removed from the end of the file (a torn or corrupt tail). */
  truncatedBytes: number;
  stopReason?: string;
  /** True when open created the file. */
  created: boolean;
}

export class WalWriter {
  private fence: StoreError | null = null;
  private closed = false;
  private lastBatch: Uint8Array = new Uint8Array(0);

  private constructor(
    readonly path: string,
    private readonly options: WalOptions,
    private file: FileHandle,
    private end: number,
    private last: number,
    private snapshot: number,
    readonly recovery: WalRecovery,
  ) {}

  /**
   * Opens wal.log, creating it when missing (atomically: a crash never leaves a wal.log
   * without a full header), removing a stale wal.log.tmp, and cutting a torn tail.
   */
  static open(fs: Fs, path: string, options: WalOptions): WalWriter {
    const tmp = `${path}.tmp`;
    if (io(tmp, () => fs.exists(tmp))) io(tmp, () => fs.unlink(tmp));
    const created = !io(path, () => fs.exists(path));
    if (created) createEmpty(fs, path);
    const end = scanToEnd(fs, path);
    if (end.validEnd < end.fileSize) refuseMidLogDamage(fs, path, end);
    const file = io(path, () => fs.open(path, 'write'));
    try {
      if (end.validEnd < end.fileSize) {
        io(path, () => file.truncate(end.validEnd));
        io(path, () => file.sync());
      }
    } catch (err) {
      file.close();
      throw err;
    }
    const recovery: WalRecovery = { truncatedBytes: end.fileSize - end.validEnd, created };
    if (end.stopReason !== undefined) recovery.stopReason = end.stopReason;
    return new WalWriter(path, options, file, end.validEnd, end.lastLsn, end.snapshotLsn, recovery);
  }

  get lastLsn(): number {
    return this.last;
  }

  get snapshotLsn(): number {
    return this.snapshot;
  }

  /** Bytes of valid log in the file (where the next record goes). */
  get size(): number {
    return this.end;
  }

  get fenced(): StoreError | null {
    return this.fence;
  }

  /** The frames the last commit or appendVerbatim wrote (the volume log copies them). */
  get lastBatchBytes(): Uint8Array {
    return this.lastBatch;
  }

  /**
   * Group commit: one record per request, consecutive LSNs, one write, one fdatasync. Returns
   * the records once durable. Throws BATCH_TOO_LARGE / BAD_ARGUMENT before writing anything,
   * WAL_FENCED when this or an earlier write or sync failed.
   */
  commit(batch: CommitRequest[], options: { sync: boolean } = { sync: true }): WalRecord[] {
    this.assertWritable();
    if (batch.length === 0) return [];
    const first = this.last + 1;
    const records = batch.map((req, i): WalRecord => {
      const record: WalRecord = { lsn: first + i, timeMs: req.timeMs, kind: 0, ops: req.ops, batchFirstLsn: first };
      if (req.redo !== undefined && req.redo.length > 0) record.redo = req.redo;
      return record;
    });
    const bytes = this.encodeBatch(records);
    try {
      this.file.write(bytes, this.end);
      // canary skipFsync: the one place the WAL's group commit syncs.
      if (options.sync && this.options.sync === 'always' && !canaries.skipFsync) this.file.sync();
    } catch (err) {
      throw this.fenceWith(err);
    }
    this.end += bytes.length;
    this.last += records.length;
    this.lastBatch = bytes;
    return records;
  }

  /**
   * A replica's group commit (docs/replica.md): its master's records, with the master's LSNs
   * and times, as one write and one fdatasync. They must follow this log's last LSN one by one
   * (BAD_ARGUMENT otherwise, nothing written): a replica applies every record once, in order.
   * batchFirstLsn is this file's own (the group this write makes), not the master's.
   */
  appendVerbatim(incoming: readonly WalRecord[]): WalRecord[] {
    this.assertWritable();
    if (incoming.length === 0) return [];
    const first = this.last + 1;
    const records = incoming.map((r, i): WalRecord => {
      if (r.kind !== 0 || r.lsn !== first + i) {
        throw new StoreError('BAD_ARGUMENT', `replicated record ${r.lsn} (kind ${r.kind}) does not follow LSN ${first + i - 1}`);
      }
      return { lsn: r.lsn, timeMs: r.timeMs, kind: 0, ops: r.ops, batchFirstLsn: first };
    });
    const bytes = this.encodeBatch(records);
    try {
      this.file.write(bytes, this.end);
      if (this.options.sync === 'always' && !canaries.skipFsync) this.file.sync();
    } catch (err) {
      throw this.fenceWith(err);
    }
    this.end += bytes.length;
    this.last += records.length;
    this.lastBatch = bytes;
    return records;
  }

  /** fdatasync of what commit({sync: false}) wrote (only the answerBeforeSync canary does that). */
  syncNow(): void {
    this.assertWritable();
    if (this.options.sync !== 'always') return;
    try {
      this.file.sync();
    } catch (err) {
      throw this.fenceWith(err);
    }
  }

  /**
   * Compaction swapped a new file in at this.path: append to it from now on. The new file holds
   * the same records after `snapshotLsn`, so lastLsn does not change.
   */
  adoptCompacted(file: FileHandle, size: number, snapshotLsn: number): void {
    this.assertWritable();
    if (snapshotLsn > this.last || snapshotLsn < this.snapshot || size < WAL_HEADER_SIZE) {
      throw new StoreError('INTERNAL', `compacted WAL does not fit: S=${snapshotLsn} size=${size}, writer S=${this.snapshot} last=${this.last}`);
    }
    const old = this.file;
    this.file = file;
    this.end = size;
    this.snapshot = snapshotLsn;
    try {
      old.close();
    } catch {
      // The old inode is already replaced and unlinked; failing to close it loses nothing.
    }
  }

  /** Fences the WAL from outside (compaction's directory fsync failed after the swap). */
  fenceWith(err: unknown): StoreError {
    if (this.fence === null) {
      const errno = fsErrorCode(err) ?? (err instanceof Error ? err.message : String(err));
      this.fence = new StoreError('WAL_FENCED', `WAL fenced after a failed fsync/write of ${this.path}: ${errno}; restart to recover`);
    }
    return this.fence;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.file.close();
  }

  private assertWritable(): void {
    if (this.fence !== null) throw this.fence;
    if (this.closed) throw new StoreError('CLOSED', `WAL ${this.path} is closed`);
  }

  private encodeBatch(records: WalRecord[]): Uint8Array {
    const frames = records.map(encodeRecord);
    let total = 0;
    for (const f of frames) total += f.length;
    if (total > WAL_MAX_BATCH_BYTES) {
      throw new StoreError('BATCH_TOO_LARGE', `WAL batch of ${records.length} records is ${total} bytes, over ${WAL_MAX_BATCH_BYTES}`);
    }
    if (frames.length === 1) return frames[0]!;
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const f of frames) {
      bytes.set(f, at);
      at += f.length;
    }
    return bytes;
  }
}

/** Writes a fresh log (header, S = 0) as path.tmp, syncs it, renames it in, syncs the dir. */
function createEmpty(fs: Fs, path: string): void {
  const tmp = `${path}.tmp`;
  const file = io(tmp, () => fs.open(tmp, 'exclusive'));
  try {
    io(tmp, () => file.write(encodeWalHeader(0), 0));
    io(tmp, () => file.sync());
  } finally {
    file.close();
  }
  io(path, () => fs.rename(tmp, path));
  syncParent(fs, path);
}

/** fsync of the directory holding path (skipped only by the skipDirSync canary). */
export function syncParent(fs: Fs, path: string): void {
  // canary skipDirSync: WAL creation and the compacted WAL's rename.
  if (canaries.skipDirSync) return;
  const dir = nodePath.dirname(path);
  io(dir, () => fs.syncDir(dir));
}

/** Scans the whole log (validating every record) and returns where it ends. */
function scanToEnd(fs: Fs, path: string): WalScanEnd {
  const it = scanFrames(fs, path);
  for (;;) {
    const next = it.next();
    if (next.done === true) return next.value;
  }
}

/**
 * A torn tail (the unsynced end of the last group commit) is cut; damage in the MIDDLE of the
 * log is not: the records after it were acknowledged, and cutting them would lose them in
 * silence. As Redis refuses an AOF corrupt in the middle, open refuses, names the place, and
 * leaves the file untouched for `node cmd/check-wal.js` (which reports, and with --fix cuts
 * after a backup, as an operator's explicit choice).
 */
function refuseMidLogDamage(fs: Fs, path: string, end: WalScanEnd): void {
  // Only a record of a LATER group commit proves the damaged one was synced; valid records of
  // the same (last, unsynced) group can survive a power loss around a garbled sector.
  const after = findValidRecordAfter(fs, path, end.validEnd, end.lastLsn + 1);
  if (after === null) return;
  throw new StoreError(
    'CORRUPT',
    `${path} is damaged in the middle: the record at offset ${end.validEnd} (after LSN ${end.lastLsn}) is unreadable ` +
      `(${end.stopReason ?? 'bad record'}), but valid records follow (LSN ${after.lsn} at offset ${after.offset}). ` +
      `Refusing to start rather than drop acknowledged writes; run node cmd/rebuild.js --data <dir> to rebuild the WAL from the volume log ` +
      `(nothing lost), or node cmd/check-wal.js --data <dir> to inspect (--fix cuts the log there after a backup, dropping what follows).`,
  );
}
