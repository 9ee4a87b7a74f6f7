// The volume log's writer (docs/formats.md §Log volumes): a second copy of every committed WAL
// record, in log volumes on the log drive, from which cmd/rebuild.js rebuilds the WAL and the
// index when both are lost. Driven by the WAL committer, on its thread.
// Owns: the log directory, the open handle of the current log volume, the generation being built.
// Invariants:
// - the current generation copies the WAL: its records are the WAL's snapshot chunks and then
//   consecutive LSNs S+1.. up to lastLsn, appended in the order they were committed;
// - it never fails a commit: its first error (a full or failing log drive) disables it, is
//   reported once (failed), and the WAL goes on; the next open builds a new generation;
// - a generation's base is written whole as a .tmp, fsynced and renamed in before any older
//   generation is deleted, so the newest base always starts a readable copy;
// - with sync 'always' the current file is fdatasynced by syncIfDirty (the committer calls it at
//   most once a second), never on the commit path.
import { join } from 'node:path';
import type { Fs } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';
import { LOG_VOLUME_ROTATE_BYTES, splitFrames } from './log_volume_format.js';
import { listLogVolumes, scanLogVolume, type LogVolumeFile } from './log_volume_reader.js';
import { FrameBatch, GenerationBuilder, LogFile, copyWal, createLogFile, type VolumeLogOptions, type WalPosition } from './log_generation.js';
import { decodeRecord } from './wal_format.js';
import { io, scanFrames } from './wal_reader.js';
import { syncParent } from './wal_writer.js';

export type { VolumeLogOptions, WalPosition } from './log_generation.js';

export interface VolumeLogStats {
  dir: string;
  baseLsn: number;
  lastLsn: number;
  fileId: number;
  syncs: number;
  failed: string | null;
}

export class VolumeLog {
  private current: LogFile | null;
  private failure: string | null = null;
  private syncs = 0;
  private dirSyncDue = false;
  /** A new generation being written (by a WAL compaction): no rotation meanwhile (ids). */
  private building: GenerationBuilder | null = null;

  /** Use open(); the module's helpers build one. */
  constructor(
    private readonly fs: Fs,
    readonly dir: string,
    private readonly options: VolumeLogOptions,
    current: LogFile,
    private baseLsn: number,
    private last: number,
  ) {
    this.current = current;
  }

  /**
   * Opens the log in `dir` and brings it up to the WAL: appends what the current generation
   * lacks, or builds a new generation from wal.log when the current one does not match it.
   */
  static open(fs: Fs, dir: string, wal: WalPosition, options: VolumeLogOptions): VolumeLog {
    io(dir, () => fs.mkdir(dir));
    for (const name of io(dir, () => fs.readdir(dir))) {
      if (name.endsWith('.data.tmp')) io(dir, () => fs.unlink(join(dir, name)));
    }
    const resumed = resume(fs, dir, wal, options);
    const log = resumed ?? fromWal(fs, dir, wal, options);
    log.dropOlderFiles();
    log.catchUp(wal);
    return log;
  }

  get lastLsn(): number {
    return this.last;
  }

  /** Why the log stopped taking records, or null while it works. */
  get failed(): string | null {
    return this.failure;
  }

  /** The frames of one group commit (records firstLsn, firstLsn+1, ...), written, not synced. */
  append(frames: Uint8Array, firstLsn: number): void {
    this.guard(() => {
      if (firstLsn !== this.last + 1) throw new StoreError('INTERNAL', `volume log at LSN ${this.last} was given LSN ${firstLsn}`);
      let lsn = firstLsn;
      for (const [start, end, count] of splitFrames(frames)) {
        this.writable().appendNeedle(frames.subarray(start, end), lsn, count);
        lsn += count;
      }
      this.last = lsn - 1;
      this.rotateIfFull();
    });
  }

  /** fdatasync of what was appended since the last one (sync 'always'); the committer's timer. */
  syncIfDirty(): void {
    this.guard(() => {
      const file = this.current;
      if (this.options.sync !== 'always' || file === null) return;
      if (file.dirty) {
        file.sync();
        this.syncs += 1;
      }
      if (this.dirSyncDue) {
        this.dirSyncDue = false;
        syncParent(this.fs, file.path);
      }
    });
  }

  /**
   * A WAL compaction to snapshot LSN `baseLsn` begins: the next generation is written as it
   * goes, from the frames the compaction writes (a FrameSink), so that adopting it costs no copy
   * of the new WAL. null when the log has failed.
   */
  beginGeneration(baseLsn: number): GenerationBuilder | null {
    if (this.failure !== null) return null;
    this.abandonGeneration();
    try {
      this.building = new GenerationBuilder(this.fs, this.dir, baseLsn, this.options);
    } catch (err) {
      this.fail(err);
    }
    return this.building;
  }

  /**
   * The compacted WAL was swapped in: the generation built alongside becomes the current one and
   * the older ones are deleted. Without one (or when it does not reach the WAL's last LSN) a new
   * generation is copied from wal.log (rebase).
   */
  adoptGeneration(wal: WalPosition): void {
    const built = this.building;
    this.building = null;
    this.guard(() => {
      if (built === null || built.failed || built.baseLsn !== wal.snapshotLsn) {
        built?.abort();
        this.rebase(wal);
        return;
      }
      this.switchTo(built.seal(), wal.snapshotLsn, built.lastLsn);
      if (this.last !== wal.lastLsn) throw new StoreError('INTERNAL', `the new volume log generation ends at LSN ${this.last}, the WAL at ${wal.lastLsn}`);
    });
  }

  /** The compaction was given up: its generation's tmp is removed. */
  abandonGeneration(): void {
    const built = this.building;
    this.building = null;
    built?.abort();
  }

  /** A new generation copied from the whole of wal.log (open, or a compaction built none). */
  rebase(wal: WalPosition): void {
    this.guard(() => {
      const built = copyWal(this.fs, this.dir, wal, this.options);
      this.switchTo(built.seal(), wal.snapshotLsn, built.lastLsn);
    });
  }

  stats(): VolumeLogStats {
    return { dir: this.dir, baseLsn: this.baseLsn, lastLsn: this.last, fileId: this.current?.id ?? 0, syncs: this.syncs, failed: this.failure };
  }

  close(): void {
    this.abandonGeneration();
    if (this.failure === null) this.syncIfDirty();
    this.closeCurrent();
  }

  // ---- helpers ----

  private switchTo(file: LogFile, baseLsn: number, lastLsn: number): void {
    this.closeCurrent();
    this.current = file;
    this.baseLsn = baseLsn;
    this.last = lastLsn;
    this.dropOlderFiles();
  }

  /** Appends the WAL's records after this.last (open, after a crash or a stop). */
  private catchUp(wal: WalPosition): void {
    if (this.last >= wal.lastLsn) return;
    const batch = new FrameBatch((frames, firstLsn) => this.append(frames, firstLsn));
    const it = scanFrames(this.fs, wal.path);
    for (let next = it.next(); next.done !== true; next = it.next()) {
      const { record, frame } = next.value;
      if (record.kind === 0 && record.lsn > this.last && record.lsn <= wal.lastLsn) batch.add(frame, record.lsn);
    }
    batch.flush();
    this.syncIfDirty();
    if (this.failure === null && this.last !== wal.lastLsn) {
      this.fail(new StoreError('INTERNAL', `volume log caught up to LSN ${this.last}, the WAL is at ${wal.lastLsn}`));
    }
  }

  private rotateIfFull(): void {
    const file = this.writable();
    // The new generation's base took the next id: this file grows until it is adopted.
    if (this.building !== null || file.end < (this.options.rotateBytes ?? LOG_VOLUME_ROTATE_BYTES)) return;
    if (this.options.sync === 'always') file.sync();
    const next = createLogFile(this.fs, this.dir, file.id + 1, this.baseLsn, false, this.options.now);
    this.closeCurrent();
    this.current = next;
    this.dirSyncDue = true;
  }

  /** Deletes the files of older generations (ids below the current base's). */
  private dropOlderFiles(): void {
    this.guard(() => {
      const { files, unreadable } = listLogVolumes(this.fs, this.dir);
      const baseId = baseIdOf(files, this.writable().id);
      let dropped = false;
      for (const f of files) {
        if (f.superblock.id < baseId) {
          io(f.path, () => this.fs.unlink(f.path));
          dropped = true;
        }
      }
      for (const path of unreadable) {
        io(path, () => this.fs.unlink(path));
        dropped = true;
      }
      if (dropped) io(this.dir, () => this.fs.syncDir(this.dir));
    });
  }

  private writable(): LogFile {
    if (this.current === null) throw new StoreError('CLOSED', `volume log ${this.dir} is closed`);
    return this.current;
  }

  private closeCurrent(): void {
    const file = this.current;
    this.current = null;
    try {
      file?.file.close();
    } catch {
      // Closing a log file that failed loses nothing more: the WAL holds every record.
    }
  }

  private guard(fn: () => void): void {
    if (this.failure !== null) return;
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err.message : String(err);
    this.closeCurrent();
  }
}

/** A log whose only generation is a fresh copy of wal.log. */
function fromWal(fs: Fs, dir: string, wal: WalPosition, options: VolumeLogOptions): VolumeLog {
  const built = copyWal(fs, dir, wal, options);
  return new VolumeLog(fs, dir, options, built.seal(), wal.snapshotLsn, built.lastLsn);
}

/** The id of the newest base at or below `id` (the base of the file `id` belongs to). */
function baseIdOf(files: readonly LogVolumeFile[], id: number): number {
  let base = id;
  for (const f of files) if (f.superblock.base && f.superblock.id <= id) base = f.superblock.id;
  return base;
}

/**
 * Opens the newest generation for appending when it copies this WAL (same snapshot LSN, not
 * ahead of it): its newest file's torn tail is cut. null when there is none that fits.
 */
function resume(fs: Fs, dir: string, wal: WalPosition, options: VolumeLogOptions): VolumeLog | null {
  const { files } = listLogVolumes(fs, dir);
  const bases = files.filter((f) => f.superblock.base);
  const base = bases[bases.length - 1];
  if (base === undefined || base.superblock.baseLsn !== wal.snapshotLsn) return null;
  const generation = files.filter((f) => f.superblock.id >= base.superblock.id);
  if (generation.some((f, i) => f.superblock.baseLsn !== wal.snapshotLsn || f.superblock.id !== base.superblock.id + i)) return null;
  const newest = generation[generation.length - 1]!;
  const tail = scanTail(fs, newest.path, wal.snapshotLsn);
  const lastLsn = tail.lastLsn ?? (generation.length > 1 ? lastLsnOfFile(fs, generation[generation.length - 2]!.path) : wal.snapshotLsn);
  if (lastLsn === null || lastLsn > wal.lastLsn) return null;
  const file = io(newest.path, () => fs.open(newest.path, 'write'));
  try {
    if (tail.validEnd < tail.fileSize) {
      io(newest.path, () => file.truncate(tail.validEnd));
      io(newest.path, () => file.sync());
    }
  } catch (err) {
    file.close();
    throw err;
  }
  const current = new LogFile(newest.superblock.id, newest.path, file, tail.validEnd);
  return new VolumeLog(fs, dir, options, current, wal.snapshotLsn, lastLsn);
}

/** The LSN of the last record in a file's intact needles (null when it holds none). */
function scanTail(fs: Fs, path: string, baseLsn: number): { lastLsn: number | null; validEnd: number; fileSize: number } {
  let last: Uint8Array | null = null;
  const it = scanLogVolume(fs, path, false);
  for (;;) {
    const next = it.next();
    if (next.done === true) return { lastLsn: last === null ? null : lastLsnIn(last, baseLsn), validEnd: next.value.validEnd, fileSize: next.value.fileSize };
    last = next.value.frames;
  }
}

function lastLsnOfFile(fs: Fs, path: string): number | null {
  return scanTail(fs, path, 0).lastLsn;
}

/** The LSN of the last frame in a needle's frames. */
function lastLsnIn(frames: Uint8Array, baseLsn: number): number {
  let at = 0;
  let lsn = baseLsn;
  while (at < frames.length) {
    const res = decodeRecord(frames, at);
    if (!res.ok) throw new StoreError('CORRUPT', `a log needle's frames do not decode (${res.reason}) at ${at}`);
    lsn = res.record.lsn;
    at += res.size;
  }
  return lsn;
}

