// The on-disk hash index: key → needle address (docs/formats.md §Hash index). It owns
// index.hash, index.hash.heads and index.hash.tmp. Memory per index is the bucket heads
// (B × 8 bytes, a Float64Array: offsets below 2^53 are exact) and a dirty-bucket bitmap;
// nothing per key. Keys and entries stay on disk and are read with one pread per chain entry.
//
// Invariants (crash safety is the point of this file):
// - A head on disk never points at an entry that is not durable: heads change in memory
//   only; a checkpoint fsyncs the entries before any head that names them is written, and
//   the bucket array is only written after the same heads are durable in index.hash.heads
//   (a double-write buffer), so a torn bucket-array write is redone on open.
// - The header's LSN is written only after everything it covers is fsynced; it never goes
//   back. Entries past the header's E were never checkpointed and are cut off on open.
// - Every entry read is CRC-checked (unless canaries.skipChecksum); a bad one is a CORRUPT
//   error, never a miss. A chain pointer must point backwards in the file, so a chain ends.
// - After an I/O failure while mutating (apply, checkpoint, rebuild) the index is fenced:
//   every later call fails with the first error. The owner reopens it and replays the WAL.
//
// Op semantics (the WAL op table; "live" = present, not a tombstone, and
// expiresAt == 0 || expiresAt > record.timeMs; "present" = newest entry is not a tombstone):
// - SET → 1. The key is live at the new address. liveCount +1 when it was not present.
// - DEL → 1 if live, else 0. A present but expired key is still deleted (tombstone,
//   liveCount -1) and answers 0, as Redis does for a DEL of an expired key.
// - EXPIRE → 1 if live (a new entry: same address, new expiry, 0 = persist), else 0.
// - DEL_IF(volume, offset) → when present at exactly that address: tombstone, liveCount -1,
//   and 1, whether or not it has expired (it is what the TTL sweep and lazy expiry log, and
//   they delete expired keys); else 0.
// - MOVE_IF(key, from volume, from offset, address) → when present at exactly (from volume,
//   from offset), expired or not: the key points at the new address with the same expiry and
//   the same modified time (vacuum's copy), and 1; else 0.
// - RETIRE(volume) → 1 when no entry points into the volume (it joins the retired set), else 0.
// - A record with a SET, SET_IF or MOVE_IF whose needle is in a retired volume (or in one that
//   the record itself retires) applies nothing: those ops answer RESULT_VOLUME_RETIRED, the
//   others 0. Judged before the guards, from the retired set alone, so a replay agrees.
// - liveCount counts present keys, expired or not, until they are deleted (like DBSIZE).
// - The live bytes of each volume (volume_usage.ts) follow the entries: a SET adds the new
//   needle and drops the key's old one, a delete drops it, a MOVE_IF moves it, a FLUSH or a
//   snapshot's reset clears them. They and the retired set are saved in index.hash.usage before
//   each checkpoint's heads and each rebuild swap, tagged with the LSN; open loads them when the
//   tag is the header's LSN, and recounts the live bytes from the entries otherwise.
// Records with lsn <= appliedLsn are skipped (result []). Snapshot chunks (kind 1, all at
// lsn S): the first chunk with S > appliedLsn resets the index to empty (in memory; the
// disk is untouched until a checkpoint) and every chunk at S is applied. appliedLsn becomes
// S when the first kind-0 record after them arrives. Until then the index holds a partial
// snapshot that no LSN describes, so checkpoint() only flushes and startRebuild() waits.
//
// Growth and COMPACT rebuild into index.hash.tmp a slice of old buckets at a time
// (index_rebuild.ts); apply() writes to the old file and, when the key's old bucket is already
// copied, to the new one too. Reads use the old file until the swap. The rebuild keeps the
// newest non-tombstone entry of every key, expired or not, so the state (and liveCount) is
// exactly preserved; expired keys leave through the sweep (DEL_IF), which the WAL and replicas
// see. The files themselves (one index file, its entry reader, open and checkpoint steps) are
// index_file.ts.
import { canaries } from '../runtime/canary.js';
import { StoreError } from '../runtime/errors.js';
import type { Fs } from '../runtime/fs.js';
import { crc32 } from './checksum.js';
import { globMatch, isMatchAll } from './glob.js';
import {
  DEFAULT_MAX_KEY_LENGTH,
  E_EXPIRES,
  E_FLAGS,
  E_HASH,
  E_MODIFIED,
  E_OFFSET,
  E_VOLUME,
  encodeHeadsFixed,
  FLAG_TOMBSTONE,
  HEADS_FIXED_SIZE,
  HEADS_PAIR_SIZE,
  MAX_BUCKETS,
  MAX_KEY_LENGTH_LIMIT,
  nextPow2,
  writeU64,
  type EntryFields,
  type IndexHeader,
} from './hash_index_format.js';
import {
  asStoreError,
  checkBucketCount,
  countListed,
  createEmpty,
  dirOf,
  EntryReader,
  findInChain,
  forEachListed,
  HEAD_GAP,
  headsPath,
  IndexFile,
  IO_CHUNK,
  loadFile,
  tmpPath,
  WALK_READ,
  writeHeader,
  writeListedHeads,
  type ChainEntry,
} from './index_file.js';
import { IndexRebuild } from './index_rebuild.js';
import { keyHash } from './key_hash.js';
import type { SharedHeadsWriter } from './shared_heads.js';
import {
  GuardKind,
  isLive,
  needleAddress,
  OpCode,
  opNeedle,
  RESULT_VOLUME_RETIRED,
  SetFlag,
  type GuardOp,
  type IndexEntry,
  type KeyOp,
  type MoveIfOp,
  type Op,
  type WalRecord,
} from './types.js';
import { loadUsage, saveUsage, usagePath, VolumeUsageLedger, type VolumeUsageReport } from './volume_usage.js';

export interface HashIndexOptions {
  /** Bucket count of a new index: a power of two, default 65536. */
  initialBuckets?: number;
  /** Longest key accepted by apply(), default 4096, at most 65535. */
  maxKeyLength?: number;
}

const DEFAULT_BUCKETS = 65536;
const CHECKPOINT_DIRTY_BUCKETS = 16384;
const CHECKPOINT_ENTRY_BYTES = 64 * 1024 * 1024;
/**
 * Limits of one scan() call: non-empty buckets read, per key asked (as Redis' count * 10), and
 * empty buckets stepped over (a look at a head in memory each, so a sparse or empty index is
 * walked in one call, as Redis walks its small table: SCAN of 5 keys answers them at once).
 */
const SCAN_MAX_VISITS_PER_COUNT = 10;
const SCAN_MAX_EMPTY_STEPS = 1 << 20;
/** Limit of one volumeEntries() call: non-empty buckets read. */
const VOLUME_ENTRIES_MAX_BUCKETS = 1 << 16;

/** An entry that points into a volume asked for (vacuum): what IndexMsg.VolumeEntries answers. */
export interface VolumeEntryFound {
  key: Uint8Array;
  volume: number;
  offset: number;
  length: number;
  /** Metadata length (0: none). */
  meta: number;
  expiresAt: number;
}

export class HashIndex {
  private main: IndexFile;
  private readonly reader = new EntryReader();
  private readonly maxKeyLength: number;
  private applied: number;
  private durable: number;
  private live: number;
  /** The snapshot LSN being loaded (kind-1 chunks), or -1. */
  private loadingLsn = -1;
  private rebuild: IndexRebuild | undefined;
  private sweepCursor = 0;
  private failure: StoreError | undefined;
  /** Why the last rebuild was dropped, reported once by the next rebuildStep. */
  private rebuildFailure: StoreError | undefined;
  private closed = false;
  /** Whether index.hash.heads has a durable directory entry. */
  private headsFileDurable: boolean;
  /** Live bytes per volume, retired volumes. */
  private usage: VolumeUsageLedger;
  /** The LSN index.hash.usage describes, or -1 when it describes none this index vouches for. */
  private usageSavedLsn: number;
  /** The heads front ends read (shared_heads.ts), once share() has handed them out. */
  private shared: SharedHeadsWriter | undefined;
  /**
   * Makes the needles of these volumes durable (the index actor fdatasyncs their files). Called
   * before durableLsn passes the records that named them: a record may carry its needles as
   * redo needles instead of their volume being synced (wal_redo.ts). Unset (the tools that
   * build an index to read it, or to leave it to a later open): nothing is synced.
   */
  syncVolumes: ((volumes: readonly number[]) => void) | undefined;
  /** Volumes named by SETs applied since durableLsn last moved. */
  private readonly needleVolumes = new Set<number>();

  private constructor(
    private readonly fs: Fs,
    private readonly path: string,
    main: IndexFile,
    header: IndexHeader,
    maxKeyLength: number,
    headsFileDurable: boolean,
    usage: VolumeUsageLedger,
    usageCurrent: boolean,
  ) {
    this.usage = usage;
    this.usageSavedLsn = usageCurrent ? header.durableLsn : -1;
    this.main = main;
    this.applied = header.durableLsn;
    this.durable = header.durableLsn;
    this.live = header.liveCount;
    this.maxKeyLength = maxKeyLength;
    this.headsFileDurable = headsFileDurable;
  }

  // ---- open -------------------------------------------------------------------------------

  /**
   * Opens (or creates) the index at `path`. Redoes an interrupted checkpoint, cuts off the
   * entries that were never checkpointed, and loads the heads. The owner then replays the
   * WAL records after `durableLsn` through apply().
   */
  static open(fs: Fs, path: string, options: HashIndexOptions = {}): HashIndex {
    const maxKeyLength = options.maxKeyLength ?? DEFAULT_MAX_KEY_LENGTH;
    if (!Number.isInteger(maxKeyLength) || maxKeyLength < 1 || maxKeyLength > MAX_KEY_LENGTH_LIMIT) {
      throw new StoreError('BAD_ARGUMENT', `maxKeyLength must be 1..${MAX_KEY_LENGTH_LIMIT}`);
    }
    const buckets = options.initialBuckets ?? DEFAULT_BUCKETS;
    checkBucketCount(buckets);
    try {
      if (fs.exists(tmpPath(path))) fs.unlink(tmpPath(path)); // a rebuild that died
      if (!fs.exists(path)) createEmpty(fs, path, buckets);
      const { file, header } = loadFile(fs, path);
      const { ledger, current } = VolumeUsageLedger.fromFile(loadUsage(fs, usagePath(path)), header.durableLsn);
      // An index.hash.heads found here may have been created by a process that died before
      // it synced the directory: the first checkpoint of this open syncs it, once.
      const index = new HashIndex(fs, path, file, header, maxKeyLength, false, ledger, current);
      try {
        if (!current) index.recountUsage();
      } catch (err) {
        file.handle.close();
        throw err;
      }
      return index;
    } catch (err) {
      throw asStoreError(err, path);
    }
  }

  // ---- reads ------------------------------------------------------------------------------

  /** The live entry of a key at `nowMs`, or undefined. The entry's key is the caller's. */
  get(key: Uint8Array, nowMs: number): IndexEntry | undefined {
    const e = this.getRaw(key);
    return e !== undefined && isLive(e.expiresAt, nowMs) ? e : undefined;
  }

  /** The newest non-tombstone entry of a key, expired or not (lazy expiry logs a DEL_IF). */
  getRaw(key: Uint8Array): IndexEntry | undefined {
    this.assertUsable();
    if (key.length === 0 || key.length > MAX_KEY_LENGTH_LIMIT) return undefined;
    try {
      const pos = this.find(this.main, key, keyHash(key));
      return pos === 0 ? undefined : this.reader.entryOf(this.main, key);
    } catch (err) {
      throw asStoreError(err, this.main.path);
    }
  }

  get appliedLsn(): number {
    return this.applied;
  }
  get durableLsn(): number {
    return this.durable;
  }
  get liveCount(): number {
    return this.live;
  }
  get bucketCount(): number {
    return this.main.buckets;
  }
  get entryCount(): number {
    return this.main.entryCount;
  }
  get rebuilding(): boolean {
    return this.rebuild !== undefined;
  }

  /**
   * One step of a SCAN. The cursor walks buckets in reverse-binary order (Redis's dictScan),
   * so a key present for the whole scan is returned at least once even across a growth
   * swap, and exactly once when the bucket count does not change. 0 = done.
   */
  scan(cursor: number, count: number, nowMs: number, match?: Uint8Array): { cursor: number; entries: IndexEntry[] } {
    this.assertUsable();
    checkCursor(cursor);
    const wanted = Math.max(1, Math.min(count, 1_000_000));
    const all = match === undefined || isMatchAll(match);
    const entries: IndexEntry[] = [];
    const next = this.walkBuckets(cursor, wanted * SCAN_MAX_VISITS_PER_COUNT, (chain) => {
      for (const e of chain) {
        if (!isLiveEntry(e, nowMs)) continue;
        if (all || globMatch(match!, e.key)) entries.push(toIndexEntry(e));
      }
      return entries.length < wanted;
    });
    return { cursor: next, entries };
  }

  /**
   * Walks buckets from `cursor` in reverse-binary order (Redis's dictScan: a growth swap between
   * two calls skips no bucket), handing each non-empty bucket's newest entries to `take`, until
   * `take` answers false, `maxVisits` non-empty buckets were read, or the walk is done. Answers
   * the next cursor (0: done).
   */
  private walkBuckets(cursor: number, maxVisits: number, take: (chain: ChainEntry[]) => boolean): number {
    const mask = this.main.mask;
    const heads = this.main.heads;
    let v = cursor >>> 0;
    let visits = 0;
    let empty = 0;
    let more = true;
    try {
      do {
        if (heads[v & mask] === 0) {
          empty++;
        } else {
          more = take(this.chainLatest(this.main, v & mask));
          visits++;
        }
        v = nextScanCursor(v, mask);
      } while (v !== 0 && more && visits < maxVisits && empty < SCAN_MAX_EMPTY_STEPS);
    } catch (err) {
      throw asStoreError(err, this.main.path);
    }
    return v;
  }

  /** Live bytes per volume (volumes with 0 left out) and the retired volumes. */
  volumeUsage(): VolumeUsageReport {
    this.assertUsable();
    return this.usage.report();
  }

  /** An error naming a retired volume that still has live bytes (never, unless a bug). */
  checkUsage(): void {
    const v = this.usage.retiredWithLiveBytes();
    if (v !== undefined) throw new StoreError('INTERNAL', `retired volume ${v} has ${this.usage.bytesOf(v)} live bytes`);
  }

  /**
   * One slice of vacuum's walk: the newest present entry (live or expired) of every key whose
   * needle is in `volumes`, from at most `maxBuckets` non-empty buckets, in SCAN's cursor order
   * (so a growth swap between slices skips no bucket). 0 = done.
   */
  volumeEntries(volumes: readonly number[], cursor: number, maxBuckets: number): { cursor: number; entries: VolumeEntryFound[] } {
    this.assertUsable();
    checkCursor(cursor);
    const wanted = new Set(volumes);
    if (wanted.size === 0) return { cursor: 0, entries: [] };
    const limit = Math.max(1, Math.min(Math.floor(maxBuckets) || 1, VOLUME_ENTRIES_MAX_BUCKETS));
    const entries: VolumeEntryFound[] = [];
    const next = this.walkBuckets(cursor, limit, (chain) => {
      for (const e of chain) {
        if ((e.flags & FLAG_TOMBSTONE) !== 0 || !wanted.has(e.volume)) continue;
        entries.push({ key: e.key, volume: e.volume, offset: e.offset, length: e.length, meta: e.meta, expiresAt: e.expiresAt });
      }
      return true;
    });
    return { cursor: next, entries };
  }

  /** Every live entry, streamed bucket by bucket. Do not interleave with rebuildStep(). */
  *entries(nowMs: number): IterableIterator<IndexEntry> {
    this.assertUsable();
    const file = this.main;
    for (let b = 0; b < file.buckets; b++) {
      if (this.main !== file || this.closed) {
        throw new StoreError('ABORTED', `${this.path}: the index was swapped during iteration`);
      }
      if (file.heads[b] === 0) continue;
      let chain: ChainEntry[];
      try {
        chain = this.chainLatest(file, b);
      } catch (err) {
        throw asStoreError(err, file.path);
      }
      for (const e of chain) if (isLiveEntry(e, nowMs)) yield toIndexEntry(e);
    }
  }

  /** The TTL sweep: the next `maxBuckets` buckets' present-but-expired keys. */
  expiredSlice(nowMs: number, maxBuckets: number): { key: Uint8Array; volume: number; offset: number }[] {
    this.assertUsable();
    const file = this.main;
    const out: { key: Uint8Array; volume: number; offset: number }[] = [];
    const n = Math.min(Math.max(1, maxBuckets), file.buckets);
    try {
      for (let i = 0; i < n; i++) {
        const b = this.sweepCursor % file.buckets;
        this.sweepCursor = (b + 1) % file.buckets;
        if (file.heads[b] === 0 || !file.mayHaveExpiry(b)) continue;
        let expiring = false;
        for (const e of this.chainLatest(file, b)) {
          if ((e.flags & FLAG_TOMBSTONE) !== 0 || e.expiresAt === 0) continue;
          expiring = true;
          if (!isLive(e.expiresAt, nowMs)) out.push({ key: e.key, volume: e.volume, offset: e.offset });
        }
        if (!expiring) file.noExpiryIn(b);
      }
    } catch (err) {
      throw asStoreError(err, file.path);
    }
    return out;
  }

  // ---- writes -----------------------------------------------------------------------------

  /**
   * From now on the main file's heads live in the writer's shared memory, and every change a
   * lookup could see is marked there (a seqlock), so front ends may look keys up on their own.
   * Called by the owner once the index is current (after its replay). When the heads do not
   * fit, the index keeps its own array and front ends keep asking it.
   */
  share(writer: SharedHeadsWriter): void {
    this.assertUsable();
    this.shareHeadsOf(this.main, writer);
  }

  /** Applies one WAL record; returns one result per op (or [] when it was skipped). */
  apply(record: WalRecord): number[] {
    this.assertUsable();
    const shared = this.shared;
    if (shared === undefined) return this.applyRecord(record);
    shared.invalidate();
    try {
      return this.applyRecord(record);
    } finally {
      // A fenced index leaves readers falling back: they get its error from it.
      if (this.failure === undefined) shared.end();
    }
  }

  private applyRecord(record: WalRecord): number[] {
    if (record.kind === 1) {
      if (record.lsn !== this.loadingLsn) {
        const current = this.loadingLsn >= 0 ? this.loadingLsn : this.applied;
        if (record.lsn <= current) return [];
        this.validateOps(record.ops);
        this.guard(() => this.resetForSnapshot(record.lsn));
      } else {
        this.validateOps(record.ops);
      }
      return this.guard(() => this.applyOps(record));
    }
    if (this.loadingLsn >= 0) {
      // The first committed record after the snapshot: the snapshot is whole.
      this.applied = this.loadingLsn;
      this.loadingLsn = -1;
    }
    if (record.lsn <= this.applied) return [];
    this.validateOps(record.ops);
    for (const op of record.ops) if (op.code === OpCode.Set || op.code === OpCode.SetIf) this.needleVolumes.add(op.address.volume);
    const results = this.guard(() => this.applyOps(record));
    this.applied = record.lsn;
    return results;
  }

  /** Before durableLsn moves up to appliedLsn: the needles of the records it passes, durable. */
  private syncNeedleVolumes(): void {
    if (this.needleVolumes.size === 0) return;
    this.syncVolumes?.([...this.needleVolumes]);
    this.needleVolumes.clear();
  }

  /** True when enough has changed since the last checkpoint to be worth one. */
  needsCheckpoint(): boolean {
    if (this.loadingLsn >= 0 || this.failure !== undefined || this.closed) return false;
    const f = this.main;
    return f.dirtyCount > CHECKPOINT_DIRTY_BUCKETS || f.end - f.durableEnd > CHECKPOINT_ENTRY_BYTES;
  }

  /**
   * Makes everything applied so far durable and moves durableLsn to appliedLsn, in the four
   * steps of docs/formats.md. While a snapshot is loading it only writes entries out.
   */
  checkpoint(): void {
    this.assertUsable();
    this.guard(() => {
      const f = this.main;
      f.flush();
      if (this.loadingLsn >= 0) return;
      const lsn = this.applied;
      if (lsn === this.durable && f.dirtyCount === 0 && f.end === f.durableEnd) {
        // Nothing new, but live bytes recounted at open are saved, so the next open loads them.
        if (this.usageSavedLsn !== lsn) this.saveUsage(lsn);
        return;
      }
      this.syncNeedleVolumes(); // 0: the needles of the records this checkpoint passes
      f.handle.sync(); // 1: every entry appended so far is durable
      // Before any LSN can reach the heads file or the header: a sidecar is never older than
      // the header after a crash (a newer one still gives the retired set at the header's LSN).
      if (this.usageSavedLsn !== lsn) this.saveUsage(lsn);
      if (f.dirtyCount > 0) {
        this.writeHeadsFile(f, lsn); // 2: the dirty heads, durable in the double-write buffer
        writeListedHeads(f, HEAD_GAP); // 3: the bucket array
        f.handle.sync();
      }
      writeHeader(f, this.headerOf(f, lsn)); // 4: the header
      f.handle.sync();
      f.clearDirty();
      f.durableEnd = f.end;
      this.durable = lsn;
    });
  }

  // ---- growth and compaction --------------------------------------------------------------

  needsGrowth(): boolean {
    return this.main.entryCount > 2 * this.main.buckets && this.main.buckets < MAX_BUCKETS;
  }

  /**
   * Starts rebuilding into index.hash.tmp with `buckets` buckets (default
   * nextPow2(max(2 × liveCount, B))) and only the newest entry of each present key. Does
   * nothing when a rebuild is already running or a snapshot is loading.
   */
  startRebuild(buckets?: number): void {
    this.assertUsable();
    if (this.rebuild !== undefined || this.loadingLsn >= 0) return;
    const b = buckets ?? Math.min(MAX_BUCKETS, nextPow2(Math.max(2 * this.live, this.main.buckets)));
    checkBucketCount(b);
    // Creating the new file touches nothing of the main one: a failure is the rebuild's alone.
    this.rebuild = IndexRebuild.start(this.fs, this.path, b);
  }

  /**
   * Copies up to `maxBuckets` more old buckets. Returns true when the rebuild is done and
   * the new file has been swapped in (or when no rebuild is running).
   */
  rebuildStep(maxBuckets: number): boolean {
    this.assertUsable();
    if (this.rebuildFailure !== undefined) {
      const err = this.rebuildFailure;
      this.rebuildFailure = undefined;
      throw new StoreError(err.code, `index rebuild dropped: ${err.message}`);
    }
    const rb = this.rebuild;
    if (rb === undefined) return true;
    // Copying writes only the new file: a failure there drops the rebuild, not the index.
    let copied: boolean;
    try {
      copied = rb.copy(this.main.buckets, maxBuckets, (bucket) => this.chainLatest(this.main, bucket));
    } catch (err) {
      this.dropRebuild(err);
      const e = this.rebuildFailure!;
      this.rebuildFailure = undefined;
      throw new StoreError(e.code, `index rebuild dropped: ${e.message}`);
    }
    if (!copied) return false;
    // The swap replaces the main file: a failure part-way fences (memory may be ahead of disk).
    return this.guard(() => {
      this.swapIn(rb);
      return true;
    });
  }

  /** The failure that fenced the index, if any: every later call fails with it until reopened. */
  get fenced(): StoreError | undefined {
    return this.failure;
  }

  /** Writes out pending entries and closes the files (no checkpoint: the owner decides). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shared?.invalidate();
    try {
      if (this.failure === undefined) this.main.flush();
    } finally {
      this.main.handle.close();
      this.abortRebuild();
    }
  }

  // ---- private: applying ops --------------------------------------------------------------

  private validateOps(ops: Op[]): void {
    for (const op of ops) {
      if (op.code === OpCode.Flush || op.code === OpCode.Retire) continue;
      if (op.key.length === 0) throw new StoreError('KEY_EMPTY', 'empty key in a WAL record');
      if (op.key.length > this.maxKeyLength) {
        throw new StoreError('KEY_TOO_LONG', `key of ${op.key.length} bytes (limit ${this.maxKeyLength})`);
      }
    }
  }

  private applyOps(record: WalRecord): number[] {
    // A needle in a retired volume: its write was placed before the volume was given up.
    const refused = this.retiredNeedles(record.ops);
    if (refused !== undefined) return refused;
    const results = new Array<number>(record.ops.length).fill(0);
    // Guards first, all of them: one that fails means nothing of the record applies.
    let held = true;
    for (let i = 0; i < record.ops.length; i++) {
      const op = record.ops[i]!;
      if (op.code !== OpCode.Guard) continue;
      results[i] = this.guardHolds(op, record.timeMs) ? 1 : 0;
      held &&= results[i] === 1;
    }
    if (!held) return results;
    for (let i = 0; i < record.ops.length; i++) {
      const op = record.ops[i]!;
      if (op.code === OpCode.Guard) continue;
      if (op.code === OpCode.Flush) results[i] = this.flushAll();
      else if (op.code === OpCode.Retire) results[i] = this.usage.retire(op.volume, record.lsn) ? 1 : 0;
      else results[i] = this.applyOp(op, record.timeMs);
    }
    this.main.flush();
    try {
      this.rebuild?.flush();
    } catch (err) {
      this.dropRebuild(err);
    }
    return results;
  }

  /**
   * The results of a record that points a key into a retired volume, or into a volume the
   * record itself retires (a retired volume must stay empty): RESULT_VOLUME_RETIRED for those
   * ops, 0 for the others. undefined when the record may apply.
   */
  private retiredNeedles(ops: readonly Op[]): number[] | undefined {
    let retiring: number[] | undefined;
    for (const op of ops) if (op.code === OpCode.Retire) (retiring ??= []).push(op.volume);
    let results: number[] | undefined;
    for (let i = 0; i < ops.length; i++) {
      const a = opNeedle(ops[i]!);
      if (a === undefined || !(this.usage.isRetired(a.volume) || retiring?.includes(a.volume) === true)) continue;
      results ??= new Array<number>(ops.length).fill(0);
      results[i] = RESULT_VOLUME_RETIRED;
    }
    return results;
  }

  /** A guard (GuardKind): the key not live, live at this entry, or still at this entry. */
  private guardHolds(op: GuardOp, timeMs: number): boolean {
    const pos = this.find(this.main, op.key, keyHash(op.key));
    const r = this.reader;
    const present = pos !== 0 && (r.buf[E_FLAGS]! & FLAG_TOMBSTONE) === 0;
    const expiresAt = present ? r.u64(E_EXPIRES, this.main) : 0;
    const live = present && isLive(expiresAt, timeMs);
    if (op.kind === GuardKind.Absent) return !live;
    if (op.kind === GuardKind.Live && !live) return false;
    const same = present && expiresAt === op.expiresAt && r.view.getUint32(E_VOLUME, true) === op.volume && r.u64(E_OFFSET, this.main) === op.offset;
    // Same: the entry read has expired since, and the key is not live: its deletion by the
    // sweep is no write; only a new live value is.
    return same || (op.kind === GuardKind.Same && !live && !isLive(op.expiresAt, timeMs));
  }

  /**
   * FLUSH: every bucket emptied (their entries become garbage in the file, dropped by the next
   * rebuild), the rebuild in progress emptied the same way. Answers 1.
   */
  private flushAll(): number {
    const f = this.main;
    for (let b = 0; b < f.buckets; b++) {
      if (f.heads[b] !== 0) {
        f.heads[b] = 0;
        f.markDirty(b);
      }
    }
    try {
      this.rebuild?.clear();
    } catch (err) {
      this.dropRebuild(err);
    }
    this.live = 0;
    this.usage.clearLive();
    return 1;
  }

  private applyOp(op: KeyOp, timeMs: number): number {
    const hash = keyHash(op.key);
    const pos = this.find(this.main, op.key, hash);
    const r = this.reader;
    const present = pos !== 0 && (r.buf[E_FLAGS]! & FLAG_TOMBSTONE) === 0;
    const expiresAt = present ? r.u64(E_EXPIRES, this.main) : 0;
    const live = present && isLive(expiresAt, timeMs);
    // Deterministic on replay: the record's commit time, not the clock.
    const modified = Math.floor(timeMs / 1000);
    switch (op.code) {
      case OpCode.Set: {
        const a = op.address;
        if (present) this.uncount();
        this.usage.add(a.volume, a.length);
        this.write(op.key, hash, { hash, flags: 0, volume: a.volume, offset: a.offset, length: a.length, meta: a.meta ?? 0, expiresAt: op.expiresAt, modified: op.modifiedSec ?? modified });
        if (!present) this.live++;
        return 1;
      }
      case OpCode.Del:
        if (!present) return 0;
        this.uncount();
        this.writeTombstone(op.key, hash);
        return live ? 1 : 0;
      case OpCode.Expire: {
        if (!live) return 0;
        const volume = r.view.getUint32(E_VOLUME, true);
        const offset = r.u64(E_OFFSET, this.main);
        const { length, meta } = r.needleLength(this.main);
        // An expiry change is no change of the value: the entry keeps its modified time.
        this.write(op.key, hash, { hash, flags: 0, volume, offset, length, meta, expiresAt: op.expiresAt, modified: r.view.getUint32(E_MODIFIED, true) });
        return 1;
      }
      case OpCode.DelIf: {
        if (!present) return 0;
        if (r.view.getUint32(E_VOLUME, true) !== op.volume || r.u64(E_OFFSET, this.main) !== op.offset) return 0;
        this.uncount();
        this.writeTombstone(op.key, hash);
        return 1;
      }
      case OpCode.SetIf: {
        if ((op.flags & SetFlag.Nx) !== 0 && live) return 0;
        if ((op.flags & SetFlag.Xx) !== 0 && !live) return 0;
        if ((op.flags & SetFlag.IfAt) !== 0) {
          if (!live || r.view.getUint32(E_VOLUME, true) !== op.expectVolume || r.u64(E_OFFSET, this.main) !== op.expectOffset) return 0;
        }
        const keep = (op.flags & SetFlag.KeepTtl) !== 0 && live;
        const a = op.address;
        if (present) this.uncount();
        this.usage.add(a.volume, a.length);
        this.write(op.key, hash, { hash, flags: 0, volume: a.volume, offset: a.offset, length: a.length, meta: a.meta ?? 0, expiresAt: keep ? expiresAt : op.expiresAt, modified });
        if (!present) this.live++;
        return 1;
      }
      case OpCode.MoveIf:
        return present ? this.moveIf(op, hash) : 0;
      default:
        throw new StoreError('INTERNAL', `unknown op code ${(op as { code: unknown }).code}`);
    }
  }

  /**
   * MOVE_IF of a present key (its entry left in the reader by find): only from exactly the old
   * needle; the copy keeps the expiry and the modified time (the value did not change).
   */
  private moveIf(op: MoveIfOp, hash: number): number {
    const r = this.reader;
    if (r.view.getUint32(E_VOLUME, true) !== op.fromVolume || r.u64(E_OFFSET, this.main) !== op.fromOffset) return 0;
    const expiresAt = r.u64(E_EXPIRES, this.main);
    const modified = r.view.getUint32(E_MODIFIED, true);
    this.uncount();
    const a = op.address;
    this.usage.add(a.volume, a.length);
    this.write(op.key, hash, { hash, flags: 0, volume: a.volume, offset: a.offset, length: a.length, meta: a.meta ?? 0, expiresAt, modified });
    return 1;
  }

  /** The key's present entry, left in the reader by find(), no longer counts toward its volume. */
  private uncount(): void {
    const r = this.reader;
    this.usage.remove(r.view.getUint32(E_VOLUME, true), r.needleLength(this.main).length);
  }

  /** Live bytes from the entries themselves (the sidecar was missing, stale or damaged). */
  private recountUsage(): void {
    const f = this.main;
    this.usage.clearLive();
    for (let b = 0; b < f.buckets; b++) {
      if (f.heads[b] === 0) continue;
      for (const e of this.chainLatest(f, b)) if ((e.flags & FLAG_TOMBSTONE) === 0) this.usage.add(e.volume, e.length);
    }
  }

  private writeTombstone(key: Uint8Array, hash: number): void {
    this.write(key, hash, { hash, flags: FLAG_TOMBSTONE, volume: 0, offset: 0, length: 0, meta: 0, expiresAt: 0, modified: 0 });
    this.live--;
  }

  /** Appends an entry to the index, and to the rebuild target when its bucket is copied. */
  private write(key: Uint8Array, hash: number, f: Omit<EntryFields, 'next'>): void {
    const bucket = hash & this.main.mask;
    this.main.append(bucket, f, key);
    try {
      this.rebuild?.mirror(bucket, f, key);
    } catch (err) {
      this.dropRebuild(err);
    }
  }

  /**
   * A failure on the rebuild's own file (ENOSPC on index.hash.tmp, say) drops the rebuild, not
   * the index: the main file is untouched by it. The next rebuildStep reports the failure, so
   * whoever waits on the rebuild (COMPACT, growth) hears it.
   */
  private dropRebuild(err: unknown): void {
    this.rebuildFailure = asStoreError(err, tmpPath(this.path));
    try {
      this.abortRebuild();
    } catch {
      // the temp file is removed on the next start if not now
    }
  }

  /**
   * Walks the chain of key's bucket; returns the offset of the newest entry of the key (its
   * fields left in the reader) or 0. Reads exactly 56 + k bytes per entry; compares the
   * stored hash and length before the key bytes.
   */
  private find(file: IndexFile, key: Uint8Array, hash: number): number {
    const bucket = hash & file.mask;
    const head = file.heads[bucket]!;
    if (head === 0) {
      file.learnKeys(bucket, 0); // an empty chain is known whole
      return 0;
    }
    // A new key (most keys of a bulk load) is known absent here without reading its chain.
    if (!file.mayHoldKey(bucket, hash)) return 0;
    const pos = findInChain(this.reader, file, head, key, hash);
    if (pos === 0) file.learnKeys(bucket, this.reader.chainKeyBits);
    return pos;
  }

  /** The newest entry of every key in a bucket's chain (tombstones included), newest first. */
  private chainLatest(file: IndexFile, bucket: number): ChainEntry[] {
    const r = this.reader;
    const out: ChainEntry[] = [];
    let pos = file.heads[bucket]!;
    while (pos !== 0) {
      const keyLength = r.load(file, pos, WALK_READ);
      const hash = r.view.getUint32(E_HASH, true);
      let seen = false;
      for (const e of out) {
        if (e.hash === hash && e.key.length === keyLength && r.keyEquals(e.key)) {
          seen = true;
          break;
        }
      }
      if (!seen) out.push(r.toChainEntry(file, keyLength));
      pos = r.next(file, pos);
    }
    return out;
  }

  /** The first snapshot chunk: the index becomes empty, in memory only. */
  private resetForSnapshot(lsn: number): void {
    this.abortRebuild();
    const f = this.main;
    for (let b = 0; b < f.buckets; b++) {
      if (f.heads[b] !== 0) {
        f.heads[b] = 0;
        f.markDirty(b);
      }
    }
    this.live = 0;
    this.usage.clearLive();
    this.loadingLsn = lsn;
  }

  private saveUsage(lsn: number): void {
    saveUsage(this.fs, usagePath(this.path), this.usage.toFile(lsn));
    this.usageSavedLsn = lsn;
  }

  // ---- private: checkpoint ----------------------------------------------------------------

  private headerOf(f: IndexFile, lsn: number): IndexHeader {
    return { generation: f.generation + 1, buckets: f.buckets, entriesEnd: f.end, entryCount: f.entryCount, liveCount: this.live, durableLsn: lsn };
  }

  /** Step 2: the dirty heads, with what the header will say, in index.hash.heads; fsynced. */
  private writeHeadsFile(f: IndexFile, lsn: number): void {
    const path = headsPath(this.path);
    const handle = this.fs.open(path, 'create');
    try {
      handle.truncate(0);
      const fixed = encodeHeadsFixed(
        { buckets: f.buckets, lsn, entriesEnd: f.end, entryCount: f.entryCount, liveCount: this.live },
        countListed(f),
      );
      handle.write(fixed, 0);
      let crc = crc32(fixed);
      let at = HEADS_FIXED_SIZE;
      const chunk = new Uint8Array(IO_CHUNK);
      const view = new DataView(chunk.buffer);
      let used = 0;
      const emit = (): void => {
        const part = chunk.subarray(0, used);
        handle.write(part, at);
        crc = crc32(part, crc);
        at += used;
        used = 0;
      };
      forEachListed(f, HEAD_GAP, (b) => {
        if (used + HEADS_PAIR_SIZE > chunk.length) emit();
        writeU64(view, used, b);
        writeU64(view, used + 8, f.heads[b]!);
        used += HEADS_PAIR_SIZE;
      });
      if (used > 0) emit();
      const tail = new Uint8Array(4);
      new DataView(tail.buffer).setUint32(0, crc, true);
      handle.write(tail, at);
      handle.sync();
    } finally {
      handle.close();
    }
    if (!this.headsFileDurable) {
      // A heads file whose directory entry is lost would let a torn bucket array go unrepaired.
      if (!canaries.skipDirSync) this.fs.syncDir(dirOf(this.path));
      this.headsFileDurable = true;
    }
  }

  // ---- private: rebuild -------------------------------------------------------------------

  /** The rebuilt file, checkpointed whole at the applied LSN, becomes the index. */
  private swapIn(rb: IndexRebuild): void {
    // Before the rename: a reader that opens index.hash from here on must not trust old heads.
    this.shared?.invalidate();
    this.main.flush();
    // Before the rename, as a checkpoint saves it before its header (see checkpoint()).
    if (this.usageSavedLsn !== this.applied) this.saveUsage(this.applied);
    this.syncNeedleVolumes();
    const file = rb.swapIn(this.fs, this.path, { liveCount: this.live, durableLsn: this.applied });
    this.rebuild = undefined;
    this.main.handle.close();
    this.main = file;
    this.durable = this.applied;
    this.sweepCursor = 0;
    if (this.shared !== undefined) this.shareHeadsOf(file, this.shared);
  }

  /**
   * `file`'s heads move into the writer's shared memory and the change ends; heads too big to
   * share stay the index's own, and readers fall back from then on (seq stays odd).
   */
  private shareHeadsOf(file: IndexFile, writer: SharedHeadsWriter): void {
    const view = writer.adopt(file.heads);
    if (view === null) {
      this.shared = undefined;
      return;
    }
    file.heads = view;
    this.shared = writer;
    writer.end();
  }

  private abortRebuild(): void {
    const rb = this.rebuild;
    if (rb === undefined) return;
    this.rebuild = undefined;
    rb.abort(this.fs);
  }

  // ---- private: failure -------------------------------------------------------------------

  private assertUsable(): void {
    if (this.closed) throw new StoreError('CLOSED', `${this.path} is closed`);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Runs a mutation; any error fences the index (its memory may be ahead of its file). */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      const e = asStoreError(err, this.path);
      this.failure = new StoreError(e.code, `index fenced after a failure: ${e.message}`);
      this.shared?.invalidate();
      throw e;
    }
  }
}

// ---- module helpers: values -----------------------------------------------------------------

function isLiveEntry(e: ChainEntry, nowMs: number): boolean {
  return (e.flags & FLAG_TOMBSTONE) === 0 && isLive(e.expiresAt, nowMs);
}

function toIndexEntry(e: ChainEntry): IndexEntry {
  return { key: e.key, address: needleAddress(e.volume, e.offset, e.length, e.meta), expiresAt: e.expiresAt, modifiedAt: e.modified * 1000 };
}

function checkCursor(cursor: number): void {
  if (!Number.isInteger(cursor) || cursor < 0 || cursor >= 2 ** 32) {
    throw new StoreError('BAD_ARGUMENT', `invalid scan cursor ${cursor}`);
  }
}

function reverseBits32(v: number): number {
  v = ((v >>> 1) & 0x55555555) | ((v & 0x55555555) << 1);
  v = ((v >>> 2) & 0x33333333) | ((v & 0x33333333) << 2);
  v = ((v >>> 4) & 0x0f0f0f0f) | ((v & 0x0f0f0f0f) << 4);
  v = ((v >>> 8) & 0x00ff00ff) | ((v & 0x00ff00ff) << 8);
  return ((v >>> 16) | (v << 16)) >>> 0;
}

/** Redis dictScan's cursor step: increment the reversed cursor over the masked bits. */
function nextScanCursor(v: number, mask: number): number {
  v = (v | ~mask) >>> 0;
  v = reverseBits32(v);
  v = (v + 1) >>> 0;
  return reverseBits32(v);
}
