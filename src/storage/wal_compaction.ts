// Compaction of wal.log (docs/formats.md §WAL, Compaction) while writes go on.
// Owns: wal.log.tmp from construction until finish renames it over wal.log (or abort removes it).
// Protocol: the WAL actor calls step() between group commits until it returns true, then
// finish() once; finish is synchronous, so no commit can land between its copy of the tail
// and the swap.
// Invariants:
//  - the tmp file is a valid WAL at all times after the header: header with S, the volumes
//    retired at or before S (one snapshot chunk of RETIRE ops, when there are any: the index
//    rebuilt from this WAL refuses writes into them as the live one did), snapshot chunks
//    (kind 1, lsn S, <= 4096 SET ops, payload well under WAL_MAX_PAYLOAD), then, from finish,
//    the frames of the live WAL with lsn > S copied byte for byte;
//  - the live snapshot is pulled from its iterable step by step, never held whole;
//  - wal.log is replaced only after the tmp is fsynced, and the directory is fsynced after the
//    rename; a crash leaves either the old or the new log (plus maybe a stale tmp, removed on
//    open);
//  - finish refuses to swap when the live WAL does not read back to exactly the writer's
//    size and lastLsn (no record is ever dropped by a swap).
import type { Clock } from '../runtime/clock.js';
import type { FileHandle, Fs } from '../runtime/fs.js';
import { OpCode, type IndexEntry, type Op, type SetOp } from './types.js';
import { WAL_MAX_PAYLOAD, WAL_SNAPSHOT_CHUNK_OPS, encodeRecord, encodeWalHeader } from './wal_format.js';
import { WAL_READ_CHUNK, io, scanFrames } from './wal_reader.js';
import { syncParent, type WalWriter } from './wal_writer.js';
import { StoreError } from '../runtime/errors.js';

/** A chunk is cut before its estimated payload passes this (long keys), far below the max. */
const CHUNK_BYTES_SOFT_LIMIT = WAL_MAX_PAYLOAD / 4;
/** CBOR bytes of a SET op besides its key: array head, code, 6 numbers of up to 9 bytes, key head. */
const SET_OP_OVERHEAD = 64;
/** The largest step the actor may ask for; bounds the memory of one step. */
export const WAL_COMPACTION_MAX_STEP_OPS = 1 << 20;

type Phase = 'snapshot' | 'ready' | 'finished' | 'aborted';

/**
 * Takes a copy of every frame the compaction writes after the header, in order (the volume log's
 * next generation, log_volume.ts). It must not throw: its failures are its own.
 */
export interface FrameSink {
  add(frame: Uint8Array, lsn: number): void;
}

export class WalCompaction {
  readonly tmpPath: string;
  private readonly file: FileHandle;
  private readonly live: Iterator<SetOp>;
  private phase: Phase = 'snapshot';
  // Where the next bytes go in the tmp; the header is the first append.
  private end = 0;
  private snapshotOps = 0;

  constructor(
    private readonly fs: Fs,
    readonly walPath: string,
    readonly snapshotLsn: number,
    live: Iterable<SetOp>,
    private readonly timeMs: number,
    retired: readonly number[] = [],
    private readonly copy: FrameSink | null = null,
  ) {
    this.tmpPath = `${walPath}.tmp`;
    const tmp = this.tmpPath;
    if (io(tmp, () => fs.exists(tmp))) io(tmp, () => fs.unlink(tmp));
    this.file = io(tmp, () => fs.open(tmp, 'exclusive'));
    this.live = live[Symbol.iterator]();
    this.guard(() => this.append(encodeWalHeader(snapshotLsn)));
    for (let i = 0; i < retired.length; i += WAL_SNAPSHOT_CHUNK_OPS) {
      const ops: Op[] = retired.slice(i, i + WAL_SNAPSHOT_CHUNK_OPS).map((volume) => ({ code: OpCode.Retire, volume }));
      this.guard(() => this.appendFrame(encodeRecord({ lsn: snapshotLsn, timeMs, kind: 1, ops }), snapshotLsn));
    }
  }

  /** Ops written into the snapshot so far. */
  get opsWritten(): number {
    return this.snapshotOps;
  }

  /**
   * Writes up to maxOps more live keys as snapshot chunks; true when the live set is exhausted.
   * On any failure the compaction is aborted (tmp removed) and the error rethrown typed.
   */
  step(maxOps: number): boolean {
    if (this.phase === 'ready') return true;
    this.assertPhase('snapshot');
    if (!Number.isSafeInteger(maxOps) || maxOps < 1 || maxOps > WAL_COMPACTION_MAX_STEP_OPS) {
      throw new StoreError('BAD_ARGUMENT', `compaction step of ${maxOps} ops (1..${WAL_COMPACTION_MAX_STEP_OPS})`);
    }
    return this.guard(() => {
      let left = maxOps;
      while (left > 0) {
        const chunk = this.pullChunk(Math.min(left, WAL_SNAPSHOT_CHUNK_OPS));
        if (chunk.length > 0) this.writeChunk(chunk);
        left -= chunk.length;
        if (this.phase === 'ready') return true;
      }
      return false;
    });
  }

  /**
   * Copies the live WAL's records after S, fsyncs, renames over wal.log, fsyncs the directory
   * and hands the new file to the writer. The writer's lastLsn does not change.
   */
  finish(writer: WalWriter): void {
    this.assertPhase('ready');
    this.guard(() => {
      this.checkWriter(writer);
      this.copyTail(writer);
      io(this.tmpPath, () => this.file.sync());
      io(this.walPath, () => this.fs.rename(this.tmpPath, this.walPath));
    });
    this.phase = 'finished';
    writer.adoptCompacted(this.file, this.end, this.snapshotLsn);
    try {
      syncParent(this.fs, this.walPath);
    } catch (err) {
      // The rename may not be durable: after a crash the old log could come back without the
      // commits that follow. Refuse further commits rather than acknowledge them.
      throw writer.fenceWith(err);
    }
  }

  /** Removes the tmp; a no-op once finished or aborted. */
  abort(): void {
    if (this.phase === 'finished' || this.phase === 'aborted') return;
    this.phase = 'aborted';
    try {
      this.file.close();
    } finally {
      const tmp = this.tmpPath;
      if (io(tmp, () => this.fs.exists(tmp))) io(tmp, () => this.fs.unlink(tmp));
    }
  }

  // ---- helpers ----

  /** Up to n SET ops from the live set, fewer when a chunk grows large or the set ends. */
  private pullChunk(n: number): SetOp[] {
    const chunk: SetOp[] = [];
    let bytes = 0;
    while (chunk.length < n && bytes < CHUNK_BYTES_SOFT_LIMIT) {
      const next = this.live.next();
      if (next.done === true) {
        this.phase = 'ready';
        break;
      }
      const op = next.value;
      if (op.code !== OpCode.Set) {
        throw new StoreError('BAD_ARGUMENT', `compaction live set yielded op code ${String(op.code)}, not SET`);
      }
      chunk.push(op);
      bytes += op.key.length + SET_OP_OVERHEAD;
    }
    return chunk;
  }

  private writeChunk(ops: SetOp[]): void {
    this.appendFrame(encodeRecord({ lsn: this.snapshotLsn, timeMs: this.timeMs, kind: 1, ops }), this.snapshotLsn);
    this.snapshotOps += ops.length;
  }

  /** One record's frame, to the tmp and to the copy. */
  private appendFrame(frame: Uint8Array, lsn: number): void {
    this.append(frame);
    this.copy?.add(frame, lsn);
  }

  private append(bytes: Uint8Array): void {
    io(this.tmpPath, () => this.file.write(bytes, this.end));
    this.end += bytes.length;
  }

  private checkWriter(writer: WalWriter): void {
    if (writer.fenced !== null) throw writer.fenced;
    if (writer.path !== this.walPath) {
      throw new StoreError('INTERNAL', `compaction of ${this.walPath} finished with the writer of ${writer.path}`);
    }
    if (this.snapshotLsn > writer.lastLsn || this.snapshotLsn < writer.snapshotLsn) {
      throw new StoreError(
        'INTERNAL',
        `compaction snapshot LSN ${this.snapshotLsn} is outside the writer's [${writer.snapshotLsn}, ${writer.lastLsn}]`,
      );
    }
  }

  /** Appends the frames of kind-0 records with lsn > S from the live WAL, in 4 MiB writes. */
  private copyTail(writer: WalWriter): void {
    const out = new Uint8Array(WAL_READ_CHUNK);
    let used = 0;
    const flush = (): void => {
      if (used > 0) this.append(out.subarray(0, used));
      used = 0;
    };
    const frames = scanFrames(this.fs, this.walPath, WAL_READ_CHUNK, writer.size);
    for (;;) {
      const next = frames.next();
      if (next.done === true) {
        const end = next.value;
        if (end.validEnd !== writer.size || end.lastLsn !== writer.lastLsn) {
          throw new StoreError(
            'CORRUPT',
            `live WAL ${this.walPath} reads back to ${end.validEnd} bytes and LSN ${end.lastLsn} ` +
              `(${end.stopReason ?? 'end'}), the writer holds ${writer.size} and ${writer.lastLsn}; compaction aborted`,
          );
        }
        break;
      }
      const { record, frame } = next.value;
      if (record.kind !== 0 || record.lsn <= this.snapshotLsn) continue;
      this.copy?.add(frame, record.lsn);
      if (used + frame.length > out.length) flush();
      if (frame.length > out.length) this.append(frame);
      else {
        out.set(frame, used);
        used += frame.length;
      }
    }
    flush();
  }

  /** Runs fn; on failure aborts (removing the tmp) and rethrows the error typed. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      try {
        this.abort();
      } catch {
        // The first error is the one to report; a tmp left behind is removed on next open.
      }
      throw err instanceof StoreError ? err : new StoreError('INTERNAL', `WAL compaction: ${String(err)}`);
    }
  }

  private assertPhase(want: Phase): void {
    if (this.phase !== want) {
      throw new StoreError('INTERNAL', `WAL compaction is ${this.phase}, expected ${want}`);
    }
  }
}

// ---- driving a compaction from chunks of a snapshot -------------------------------------

/** A pull source for WalCompaction fed chunk by chunk by the engine. */
export class ChunkFeed implements Iterable<SetOp> {
  private readonly queue: SetOp[] = [];
  private done = false;

  push(entries: IndexEntry[]): void {
    for (const e of entries) {
      const op: SetOp = { code: OpCode.Set, key: e.key, address: e.address, expiresAt: e.expiresAt };
      // The value's own write time, so that its Last-Modified does not become the COMPACT's.
      if (e.modifiedAt !== undefined) op.modifiedSec = Math.floor(e.modifiedAt / 1000);
      this.queue.push(op);
    }
  }

  end(): void {
    this.done = true;
  }

  get available(): number {
    return this.queue.length;
  }

  *[Symbol.iterator](): Iterator<SetOp> {
    for (;;) {
      const op = this.queue.shift();
      if (op !== undefined) {
        yield op;
        continue;
      }
      if (this.done) return;
      // The compaction asked for more than was fed: a programming error in the driver.
      throw new StoreError('INTERNAL', 'WAL compaction read past the fed snapshot');
    }
  }
}

/** Drives a WalCompaction from engine calls: begin, chunks, finish. */
export class WalCompactionDriver {
  private compaction: WalCompaction | null = null;
  private feed: ChunkFeed | null = null;

  constructor(private readonly fs: Fs, private readonly walPath: string, private readonly clock: Clock) {}

  begin(snapshotLsn: number, retired: readonly number[] = [], copy: FrameSink | null = null): void {
    if (this.compaction !== null) throw new StoreError('BAD_ARGUMENT', 'a WAL compaction is already running');
    this.feed = new ChunkFeed();
    this.compaction = new WalCompaction(this.fs, this.walPath, snapshotLsn, this.feed, this.clock.now(), retired, copy);
  }

  chunk(entries: IndexEntry[]): void {
    const { compaction, feed } = this.running();
    feed.push(entries);
    if (feed.available > 0) compaction.step(feed.available);
  }

  finish(wal: WalWriter): void {
    const { compaction, feed } = this.running();
    feed.end();
    while (!compaction.step(4096)) {
      // drain what is left of the snapshot
    }
    compaction.finish(wal);
    this.compaction = null;
    this.feed = null;
  }

  abort(): void {
    this.compaction?.abort();
    this.compaction = null;
    this.feed = null;
  }

  private running(): { compaction: WalCompaction; feed: ChunkFeed } {
    if (this.compaction === null || this.feed === null) throw new StoreError('BAD_ARGUMENT', 'no WAL compaction is running');
    return { compaction: this.compaction, feed: this.feed };
  }
}
