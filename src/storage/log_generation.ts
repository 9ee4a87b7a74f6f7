// A generation of the volume log being written (docs/formats.md §Log volumes): its base file as a
// .tmp, frame by frame (from a WAL compaction as it writes, or a copy of wal.log), then sealed
// (fsynced, renamed in); and the one open log file a generation appends to. Used by log_volume.ts.
// Invariants:
// - a log needle holds whole frames, at most LOG_NEEDLE_MAX_VALUE bytes of them (one bigger frame
//   alone), at most LOG_NEEDLE_MAX_RECORDS;
// - a base is visible under its name only once whole and durable (tmp, fsync, rename, dir fsync).
import { join } from 'node:path';
import type { FileHandle, Fs } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';
import { alignUp, VOLUME_SUPERBLOCK_SIZE } from './volume_format.js';
import { LOG_NEEDLE_MAX_RECORDS, LOG_NEEDLE_MAX_VALUE, encodeLogNeedle, encodeLogSuperblock, logVolumeFileName } from './log_volume_format.js';
import { listLogVolumes } from './log_volume_reader.js';
import { io, scanFrames } from './wal_reader.js';
import { syncParent } from './wal_writer.js';
import type { FrameSink } from './wal_compaction.js';

export interface VolumeLogOptions {
  sync: 'always' | 'none';
  /** A file takes no more needles past this size (tests make it small). */
  rotateBytes?: number;
  /** The time written into superblocks (the actor's clock; default Date.now). */
  now?: () => number;
}

/** Where the WAL stands when the log opens: the log is brought up to it. */
export interface WalPosition {
  path: string;
  snapshotLsn: number;
  lastLsn: number;
}

/** One log volume open for appending at `end`. */
export class LogFile {
  dirty = false;

  constructor(readonly id: number, readonly path: string, readonly file: FileHandle, public end: number) {}

  /** Appends the frames as one log needle (8-byte aligned); the caller cuts them to size. */
  appendNeedle(frames: Uint8Array, firstLsn: number, records: number): void {
    const at = alignUp(this.end);
    const needle = encodeLogNeedle(frames, firstLsn, records);
    io(this.path, () => this.file.write(needle, at));
    this.end = at + needle.length;
    this.dirty = true;
  }

  sync(): void {
    io(this.path, () => this.file.sync());
    this.dirty = false;
  }
}

/** Collects frames into needles of at most LOG_NEEDLE_MAX_VALUE bytes. */
export class FrameBatch {
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private firstLsn = 0;

  constructor(private readonly emit: (frames: Uint8Array, firstLsn: number, count: number) => void) {}

  /** `frame` is copied: a scan's frame is a view valid until its next step. */
  add(frame: Uint8Array, lsn: number): void {
    if (this.parts.length > 0 && (this.bytes + frame.length > LOG_NEEDLE_MAX_VALUE || this.parts.length === LOG_NEEDLE_MAX_RECORDS)) this.flush();
    if (this.parts.length === 0) this.firstLsn = lsn;
    this.parts.push(frame.slice());
    this.bytes += frame.length;
  }

  flush(): void {
    if (this.parts.length === 0) return;
    const out = new Uint8Array(this.bytes);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    const count = this.parts.length;
    this.parts = [];
    this.bytes = 0;
    this.emit(out, this.firstLsn, count);
  }
}

/** A new generation's base written from the whole of wal.log (not yet sealed). */
export function copyWal(fs: Fs, dir: string, wal: WalPosition, options: VolumeLogOptions): GenerationBuilder {
  const built = new GenerationBuilder(fs, dir, wal.snapshotLsn, options);
  try {
    const it = scanFrames(fs, wal.path);
    for (let next = it.next(); next.done !== true; next = it.next()) {
      const { record, frame } = next.value;
      if (record.kind === 0 && record.lsn > wal.lastLsn) break;
      built.add(frame, record.lsn);
    }
  } catch (err) {
    built.abort();
    throw err;
  }
  return built;
}

/**
 * A generation's base, written as `log-N.data.tmp` frame by frame (a WAL compaction's FrameSink,
 * or a copy of wal.log), then sealed: fsynced and renamed in. add() never throws: a failure is
 * kept, and seal() reports it.
 */
export class GenerationBuilder implements FrameSink {
  private readonly tmp: LogFile;
  private readonly finalPath: string;
  private readonly batch: FrameBatch;
  private failure: unknown = null;
  private state: 'open' | 'sealed' | 'aborted' = 'open';
  /** The last kind-0 LSN added (the base LSN while only snapshot chunks came). */
  lastLsn: number;

  constructor(private readonly fs: Fs, dir: string, readonly baseLsn: number, options: VolumeLogOptions) {
    const { files } = listLogVolumes(fs, dir);
    const id = (files[files.length - 1]?.superblock.id ?? 0) + 1;
    this.finalPath = join(dir, logVolumeFileName(id));
    const tmpPath = `${this.finalPath}.tmp`;
    if (io(tmpPath, () => fs.exists(tmpPath))) io(tmpPath, () => fs.unlink(tmpPath));
    this.tmp = createLogFile(fs, dir, id, baseLsn, true, options.now, tmpPath);
    this.batch = new FrameBatch((frames, firstLsn, count) => this.tmp.appendNeedle(frames, firstLsn, count));
    this.lastLsn = baseLsn;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  add(frame: Uint8Array, lsn: number): void {
    if (this.failure !== null || this.state !== 'open') return;
    try {
      this.batch.add(frame, lsn);
      if (lsn > this.baseLsn) this.lastLsn = lsn;
    } catch (err) {
      this.failure = err;
    }
  }

  /** fsync, rename in, fsync the directory: the generation's base is there, whole. */
  seal(): LogFile {
    if (this.failure !== null) {
      this.abort();
      throw this.failure;
    }
    if (this.state !== 'open') throw new StoreError('INTERNAL', `volume log generation ${this.finalPath} is ${this.state}`);
    try {
      this.batch.flush();
      this.tmp.sync();
      io(this.tmp.path, () => this.fs.rename(this.tmp.path, this.finalPath));
      syncParent(this.fs, this.finalPath);
    } catch (err) {
      this.abort();
      throw err;
    }
    this.state = 'sealed';
    return new LogFile(this.tmp.id, this.finalPath, this.tmp.file, this.tmp.end);
  }

  /** Closes and removes the tmp; a no-op once sealed or aborted. */
  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    try {
      this.tmp.file.close();
      if (this.fs.exists(this.tmp.path)) this.fs.unlink(this.tmp.path);
    } catch {
      // A stale .tmp is removed by the next open.
    }
  }
}

export function createLogFile(fs: Fs, dir: string, id: number, baseLsn: number, base: boolean, now = Date.now, path = join(dir, logVolumeFileName(id))): LogFile {
  const file = io(path, () => fs.open(path, 'exclusive'));
  try {
    io(path, () => file.write(encodeLogSuperblock({ id, createdAt: now(), baseLsn, base }), 0));
  } catch (err) {
    file.close();
    throw err;
  }
  return new LogFile(id, path, file, VOLUME_SUPERBLOCK_SIZE);
}
