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
// - liveCount counts present keys, expired or not, until they are deleted (like DBSIZE).
// Records with lsn <= appliedLsn are skipped (result []). Snapshot chunks (kind 1, all at
// lsn S): the first chunk with S > appliedLsn resets the index to empty (in memory; the
// disk is untouched until a checkpoint) and every chunk at S is applied. appliedLsn becomes
// S when the first kind-0 record after them arrives. Until then the index holds a partial
// snapshot that no LSN describes, so checkpoint() only flushes and startRebuild() waits.
//
// Growth and COMPACT rebuild into index.hash.tmp a slice of old buckets at a time; apply()
// writes to the old file and, when the key's old bucket is already copied, to the new one
// too. Reads use the old file until the swap. The rebuild keeps the newest non-tombstone
// entry of every key, expired or not, so the state (and liveCount) is exactly preserved;
// expired keys leave through the sweep (DEL_IF), which the WAL and replicas see.
import { canaries } from '../runtime/canary.js';
import { fsErrorCode, type FileHandle, type Fs } from '../runtime/fs.js';
import { globMatch, isMatchAll } from './glob.js';
import {
  corrupt,
  dataStart,
  decodeHeader,
  decodeHeads,
  DEFAULT_MAX_KEY_LENGTH,
  E_CRC,
  E_EXPIRES,
  E_FLAGS,
  E_HASH,
  E_KEYLEN,
  E_LENGTH,
  E_NEXT,
  E_MODIFIED,
  E_OFFSET,
  E_VOLUME,
  encodeEntry,
  encodeHeader,
  encodeHeadsFixed,
  ENTRY_ALIGN,
  ENTRY_HEADER_SIZE,
  entryCrc,
  entrySize,
  FLAG_TOMBSTONE,
  HEADER_SIZE,
  headerSlotOffset,
  HEADS_FIXED_SIZE,
  HEADS_PAIR_SIZE,
  isPowerOfTwo,
  MAX_BUCKETS,
  MAX_KEY_LENGTH_LIMIT,
  MIN_BUCKETS,
  nextPow2,
  readU64,
  writeU64,
  type EntryFields,
  type IndexHeader,
} from './hash_index_format.js';
import { crc32 } from './checksum.js';
import { keyHash } from './key_hash.js';
import { isLive, OpCode, SetFlag, type IndexEntry, type NeedleAddress, type Op, type WalRecord } from './types.js';
import { StoreError } from '../runtime/errors.js';

export interface HashIndexOptions {
  /** Bucket count of a new index: a power of two, default 65536. */
  initialBuckets?: number;
  /** Longest key accepted by apply(), default 4096, at most 65535. */
  maxKeyLength?: number;
}

const DEFAULT_BUCKETS = 65536;
/** Appended entries are buffered up to this many bytes, then written with one pwrite. */
const PENDING_CAPACITY = 1 << 20;
/** I/O chunk for the bucket array and the heads file. */
const IO_CHUNK = 1 << 20;
/** Clean heads between two dirty ones closer than this are written too (one run). */
const HEAD_GAP = 64;
const CHECKPOINT_DIRTY_BUCKETS = 16384;
const CHECKPOINT_ENTRY_BYTES = 64 * 1024 * 1024;
/** Walks (scan, sweep, rebuild) read this much per entry first; longer keys read again. */
const WALK_READ = 256;
/** Hard limit of buckets visited by one scan() call (empty buckets cost little). */
const SCAN_MAX_VISITS_PER_COUNT = 10;

/** Newest state of one key of a chain, as the walks return it: an entry's fields and its key. */
type ChainEntry = Omit<EntryFields, 'next'> & { key: Uint8Array };

/** One index file: its handle, its heads in memory, and the entries not yet written out. */
class IndexFile {
  readonly mask: number;
  readonly start: number;
  /** Logical end: where the next entry goes (pending bytes included). */
  end: number;
  /** Bytes before this offset have been handed to the OS. */
  flushedEnd: number;
  /** Entries end as of the last checkpoint (the header's E). */
  durableEnd: number;
  entryCount: number;
  /** Generation of the newest header written (or read) for this file. */
  generation = 0;
  readonly dirty: Uint32Array;
  dirtyCount = 0;
  private readonly pending = new Uint8Array(PENDING_CAPACITY);
  private readonly pendingView = new DataView(this.pending.buffer);
  private pendingLength = 0;

  constructor(
    readonly handle: FileHandle,
    readonly path: string,
    readonly buckets: number,
    readonly heads: Float64Array,
    end: number,
    entryCount: number,
  ) {
    this.mask = buckets - 1;
    this.start = dataStart(buckets);
    this.end = end;
    this.flushedEnd = end;
    this.durableEnd = end;
    this.entryCount = entryCount;
    this.dirty = new Uint32Array(Math.ceil(buckets / 32));
  }

  markDirty(bucket: number): void {
    const word = bucket >>> 5;
    const bit = 1 << (bucket & 31);
    if ((this.dirty[word]! & bit) === 0) {
      this.dirty[word] = this.dirty[word]! | bit;
      this.dirtyCount++;
    }
  }

  clearDirty(): void {
    this.dirty.fill(0);
    this.dirtyCount = 0;
  }

  /** Appends an entry at the head of `bucket`'s chain; returns its offset. */
  append(bucket: number, f: Omit<EntryFields, 'next'>, key: Uint8Array): number {
    const size = entrySize(key.length);
    if (this.pendingLength + size > PENDING_CAPACITY) this.flush();
    const at = this.end;
    const fields: EntryFields = { ...f, next: this.heads[bucket]! };
    encodeEntry(this.pending, this.pendingView, this.pendingLength, fields, key);
    this.pendingLength += size;
    this.end += size;
    this.entryCount++;
    this.heads[bucket] = at;
    this.markDirty(bucket);
    return at;
  }

  /** Writes the pending entries (unsynced). */
  flush(): void {
    if (this.pendingLength === 0) return;
    this.handle.write(this.pending.subarray(0, this.pendingLength), this.flushedEnd);
    this.flushedEnd += this.pendingLength;
    this.pendingLength = 0;
  }

  /** Reads dst.length bytes at pos (entries not yet flushed come from memory); returns the count. */
  read(dst: Uint8Array, pos: number): number {
    const len = Math.min(dst.length, this.end - pos);
    if (len <= 0) return 0;
    if (pos + len <= this.flushedEnd) return this.handle.read(dst, pos);
    if (pos >= this.flushedEnd) {
      const from = pos - this.flushedEnd;
      dst.set(this.pending.subarray(from, from + len));
      return len;
    }
    const head = this.flushedEnd - pos;
    const got = this.handle.read(dst.subarray(0, head), pos);
    if (got !== head) return got;
    dst.set(this.pending.subarray(0, len - head), head);
    return len;
  }
}

/** Reads of entries go through one reused buffer and one cached view per read length. */
class EntryReader {
  readonly buf = new Uint8Array(ENTRY_HEADER_SIZE + MAX_KEY_LENGTH_LIMIT + ENTRY_ALIGN);
  readonly view = new DataView(this.buf.buffer);
  private readonly views: Uint8Array[] = [];

  /** Reads an entry at pos with at least `want` bytes; checks its CRC; returns its key length. */
  load(file: IndexFile, pos: number, want: number): number {
    if (pos < file.start || pos >= file.end || pos % ENTRY_ALIGN !== 0) {
      throw corrupt(file.path, `chain points at ${pos}, outside the entries region`);
    }
    let got = file.read(this.sized(want), pos);
    if (got < ENTRY_HEADER_SIZE) throw corrupt(file.path, `entry at ${pos} is cut short`);
    const keyLength = this.view.getUint16(E_KEYLEN, true);
    const size = ENTRY_HEADER_SIZE + keyLength;
    if (got < size) {
      got = file.read(this.sized(size), pos);
      if (got < size) throw corrupt(file.path, `entry at ${pos} is cut short`);
    }
    if (!canaries.skipChecksum && this.view.getUint32(E_CRC, true) !== entryCrc(this.buf, 0, keyLength)) {
      throw corrupt(file.path, `entry at ${pos}: CRC mismatch`);
    }
    return keyLength;
  }

  /** The `next` pointer of the loaded entry at pos, checked to point backwards. */
  next(file: IndexFile, pos: number): number {
    const next = readU64(this.view, E_NEXT);
    if (next !== 0 && (next < 0 || next >= pos)) {
      throw corrupt(file.path, `entry at ${pos}: bad next pointer ${next}`);
    }
    return next;
  }

  keyEquals(key: Uint8Array): boolean {
    const buf = this.buf;
    for (let i = 0; i < key.length; i++) {
      if (buf[ENTRY_HEADER_SIZE + i] !== key[i]) return false;
    }
    return true;
  }

  u64(at: number, file: IndexFile): number {
    const v = readU64(this.view, at);
    if (v < 0) throw corrupt(file.path, 'entry field above 2^53');
    return v;
  }

  /** A copy of the loaded entry's fields and key. */
  toChainEntry(file: IndexFile, keyLength: number): ChainEntry {
    return {
      hash: this.view.getUint32(E_HASH, true),
      key: this.buf.slice(ENTRY_HEADER_SIZE, ENTRY_HEADER_SIZE + keyLength),
      flags: this.buf[E_FLAGS]!,
      volume: this.view.getUint32(E_VOLUME, true),
      offset: this.u64(E_OFFSET, file),
      length: this.u64(E_LENGTH, file),
      expiresAt: this.u64(E_EXPIRES, file),
      modified: this.view.getUint32(E_MODIFIED, true),
    };
  }

  private sized(length: number): Uint8Array {
    let v = this.views[length];
    if (v === undefined) {
      v = this.buf.subarray(0, length);
      this.views[length] = v;
    }
    return v;
  }
}

/** State of a rebuild into index.hash.tmp. */
interface Rebuild {
  file: IndexFile;
  /** Old buckets below this one have been copied. */
  cursor: number;
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
  private rebuild: Rebuild | undefined;
  private sweepCursor = 0;
  private failure: StoreError | undefined;
  /** Why the last rebuild was dropped, reported once by the next rebuildStep. */
  private rebuildFailure: StoreError | undefined;
  private closed = false;
  /** Whether index.hash.heads has a durable directory entry. */
  private headsFileDurable: boolean;

  private constructor(
    private readonly fs: Fs,
    private readonly path: string,
    main: IndexFile,
    header: IndexHeader,
    maxKeyLength: number,
    headsFileDurable: boolean,
  ) {
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
      const headsExists = fs.exists(headsPath(path));
      const { file, header } = loadFile(fs, path);
      return new HashIndex(fs, path, file, header, maxKeyLength, headsExists);
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
      if (pos === 0 || (this.reader.buf[E_FLAGS]! & FLAG_TOMBSTONE) !== 0) return undefined;
      const r = this.reader;
      const address: NeedleAddress = {
        volume: r.view.getUint32(E_VOLUME, true),
        offset: r.u64(E_OFFSET, this.main),
        length: r.u64(E_LENGTH, this.main),
      };
      return { key, address, expiresAt: r.u64(E_EXPIRES, this.main), modifiedAt: r.view.getUint32(E_MODIFIED, true) * 1000 };
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
    if (!Number.isInteger(cursor) || cursor < 0 || cursor >= 2 ** 32) {
      throw new StoreError('BAD_ARGUMENT', `invalid scan cursor ${cursor}`);
    }
    const wanted = Math.max(1, Math.min(count, 1_000_000));
    const all = match === undefined || isMatchAll(match);
    const mask = this.main.mask;
    const entries: IndexEntry[] = [];
    let v = cursor >>> 0;
    let visits = 0;
    try {
      do {
        for (const e of this.chainLatest(this.main, v & mask)) {
          if (!isLiveEntry(e, nowMs)) continue;
          if (all || globMatch(match!, e.key)) entries.push(toIndexEntry(e));
        }
        v = nextScanCursor(v, mask);
        visits++;
      } while (v !== 0 && entries.length < wanted && visits < wanted * SCAN_MAX_VISITS_PER_COUNT);
    } catch (err) {
      throw asStoreError(err, this.main.path);
    }
    return { cursor: v, entries };
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
        if (file.heads[b] === 0) continue;
        for (const e of this.chainLatest(file, b)) {
          if ((e.flags & FLAG_TOMBSTONE) === 0 && !isLive(e.expiresAt, nowMs)) {
            out.push({ key: e.key, volume: e.volume, offset: e.offset });
          }
        }
      }
    } catch (err) {
      throw asStoreError(err, file.path);
    }
    return out;
  }

  // ---- writes -----------------------------------------------------------------------------

  /** Applies one WAL record; returns one result per op (or [] when it was skipped). */
  apply(record: WalRecord): number[] {
    this.assertUsable();
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
    const results = this.guard(() => this.applyOps(record));
    this.applied = record.lsn;
    return results;
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
      if (lsn === this.durable && f.dirtyCount === 0 && f.end === f.durableEnd) return;
      f.handle.sync(); // 1: every entry appended so far is durable
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
    try {
      const tmp = tmpPath(this.path);
      if (this.fs.exists(tmp)) this.fs.unlink(tmp);
      const handle = this.fs.open(tmp, 'exclusive');
      const file = new IndexFile(handle, tmp, b, new Float64Array(b), dataStart(b), 0);
      this.rebuild = { file, cursor: 0 };
    } catch (err) {
      throw new StoreError(asStoreError(err, tmpPath(this.path)).code, `index rebuild not started: ${asStoreError(err, tmpPath(this.path)).message}`);
    }
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
    try {
      const stop = Math.min(this.main.buckets, rb.cursor + Math.max(1, maxBuckets));
      for (; rb.cursor < stop; rb.cursor++) this.copyBucket(rb.cursor, rb.file);
      rb.file.flush();
    } catch (err) {
      this.dropRebuild(err);
      const e = this.rebuildFailure!;
      this.rebuildFailure = undefined;
      throw new StoreError(e.code, `index rebuild dropped: ${e.message}`);
    }
    if (rb.cursor < this.main.buckets) return false;
    // The swap replaces the main file: a failure part-way fences (memory may be ahead of disk).
    return this.guard(() => {
      this.swapIn(rb.file);
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
      if (op.key.length === 0) throw new StoreError('KEY_EMPTY', 'empty key in a WAL record');
      if (op.key.length > this.maxKeyLength) {
        throw new StoreError('KEY_TOO_LONG', `key of ${op.key.length} bytes (limit ${this.maxKeyLength})`);
      }
    }
  }

  private applyOps(record: WalRecord): number[] {
    const results = new Array<number>(record.ops.length);
    for (let i = 0; i < record.ops.length; i++) results[i] = this.applyOp(record.ops[i]!, record.timeMs);
    this.main.flush();
    try {
      this.rebuild?.file.flush();
    } catch (err) {
      this.dropRebuild(err);
    }
    return results;
  }

  private applyOp(op: Op, timeMs: number): number {
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
        this.write(op.key, hash, { hash, flags: 0, volume: a.volume, offset: a.offset, length: a.length, expiresAt: op.expiresAt, modified });
        if (!present) this.live++;
        return 1;
      }
      case OpCode.Del:
        if (!present) return 0;
        this.writeTombstone(op.key, hash);
        return live ? 1 : 0;
      case OpCode.Expire: {
        if (!live) return 0;
        const volume = r.view.getUint32(E_VOLUME, true);
        const offset = r.u64(E_OFFSET, this.main);
        const length = r.u64(E_LENGTH, this.main);
        // An expiry change is no change of the value: the entry keeps its modified time.
        this.write(op.key, hash, { hash, flags: 0, volume, offset, length, expiresAt: op.expiresAt, modified: r.view.getUint32(E_MODIFIED, true) });
        return 1;
      }
      case OpCode.DelIf: {
        if (!present) return 0;
        if (r.view.getUint32(E_VOLUME, true) !== op.volume || r.u64(E_OFFSET, this.main) !== op.offset) return 0;
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
        this.write(op.key, hash, { hash, flags: 0, volume: a.volume, offset: a.offset, length: a.length, expiresAt: keep ? expiresAt : op.expiresAt, modified });
        if (!present) this.live++;
        return 1;
      }
      default:
        throw new StoreError('INTERNAL', `unknown op code ${(op as { code: unknown }).code}`);
    }
  }

  private writeTombstone(key: Uint8Array, hash: number): void {
    this.write(key, hash, { hash, flags: FLAG_TOMBSTONE, volume: 0, offset: 0, length: 0, expiresAt: 0, modified: 0 });
    this.live--;
  }

  /** Appends an entry to the index, and to the rebuild target when its bucket is copied. */
  private write(key: Uint8Array, hash: number, f: Omit<EntryFields, 'next'>): void {
    const bucket = hash & this.main.mask;
    this.main.append(bucket, f, key);
    const rb = this.rebuild;
    if (rb !== undefined && bucket < rb.cursor) {
      try {
        rb.file.append(hash & rb.file.mask, f, key);
      } catch (err) {
        this.dropRebuild(err);
      }
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
    const r = this.reader;
    const want = ENTRY_HEADER_SIZE + key.length;
    let pos = file.heads[hash & file.mask]!;
    while (pos !== 0) {
      const keyLength = r.load(file, pos, want);
      if (keyLength === key.length && r.view.getUint32(E_HASH, true) === hash && r.keyEquals(key)) return pos;
      pos = r.next(file, pos);
    }
    return 0;
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
    this.loadingLsn = lsn;
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

  private copyBucket(bucket: number, target: IndexFile): void {
    for (const e of this.chainLatest(this.main, bucket)) {
      if ((e.flags & FLAG_TOMBSTONE) !== 0) continue;
      target.append(e.hash & target.mask, e, e.key);
    }
  }

  /** Checkpoints the new file whole, renames it over index.hash, and makes it the index. */
  private swapIn(next: IndexFile): void {
    this.main.flush();
    next.flush();
    next.handle.sync();
    writeAllHeads(next);
    // Both slots: the file is new, and the next checkpoint must find a valid header in the
    // slot it does not write (a torn header write then falls back to this one).
    const header = this.headerOf(next, this.applied);
    writeHeader(next, header);
    writeHeader(next, { ...header, generation: header.generation + 1 });
    next.handle.sync();
    next.handle.close();
    this.fs.rename(tmpPath(this.path), this.path);
    if (!canaries.skipDirSync) this.fs.syncDir(dirOf(this.path));
    this.rebuild = undefined;
    this.main.handle.close();
    const handle = this.fs.open(this.path, 'write');
    const file = new IndexFile(handle, this.path, next.buckets, next.heads, next.end, next.entryCount);
    file.generation = next.generation;
    this.main = file;
    this.durable = this.applied;
    this.sweepCursor = 0;
  }

  private abortRebuild(): void {
    const rb = this.rebuild;
    if (rb === undefined) return;
    this.rebuild = undefined;
    rb.file.handle.close();
    if (this.fs.exists(rb.file.path)) this.fs.unlink(rb.file.path);
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
      throw e;
    }
  }
}

// ---- module helpers: files ------------------------------------------------------------------

function tmpPath(path: string): string {
  return `${path}.tmp`;
}

function headsPath(path: string): string {
  return `${path}.heads`;
}

function dirOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : path.slice(0, i);
}

/** Writes a header into the slot of its generation (never over the newest valid one). */
function writeHeader(f: IndexFile, header: IndexHeader): void {
  f.handle.write(encodeHeader(header), headerSlotOffset(header.generation));
  f.generation = header.generation;
}

function checkBucketCount(b: number): void {
  if (!isPowerOfTwo(b) || b < MIN_BUCKETS || b > MAX_BUCKETS) {
    throw new StoreError('BAD_ARGUMENT', `bucket count ${b} must be a power of two in ${MIN_BUCKETS}..${MAX_BUCKETS}`);
  }
}

/** A new empty index, created atomically: NAME.tmp, fsync, rename, fsync the directory. */
function createEmpty(fs: Fs, path: string, buckets: number): void {
  const tmp = tmpPath(path);
  const handle = fs.open(tmp, 'exclusive');
  try {
    const zeros = new Uint8Array(Math.min(IO_CHUNK, buckets * 8));
    for (let at = HEADER_SIZE; at < dataStart(buckets); at += zeros.length) handle.write(zeros, at);
    const header = { generation: 1, buckets, entriesEnd: dataStart(buckets), entryCount: 0, liveCount: 0, durableLsn: 0 };
    handle.write(encodeHeader(header), headerSlotOffset(header.generation));
    handle.sync();
  } finally {
    handle.close();
  }
  fs.rename(tmp, path);
  if (!canaries.skipDirSync) fs.syncDir(dirOf(path));
}

/** Reads and checks the header, redoes an interrupted checkpoint, truncates, loads heads. */
function loadFile(fs: Fs, path: string): { file: IndexFile; header: IndexHeader } {
  const handle = fs.open(path, 'write');
  try {
    const headerBuf = new Uint8Array(HEADER_SIZE);
    const got = handle.read(headerBuf, 0);
    let header = decodeHeader(headerBuf.subarray(0, got), path);
    const heads = readHeadsArray(handle, header.buckets, path);
    const redo = readNewerHeadsFile(fs, path, header);
    if (redo !== undefined) header = redo.header;
    const size = handle.size();
    if (size < header.entriesEnd) throw corrupt(path, `file is ${size} bytes, header says entries end at ${header.entriesEnd}`);
    if (size > header.entriesEnd) handle.truncate(header.entriesEnd);
    const file = new IndexFile(handle, path, header.buckets, heads, header.entriesEnd, header.entryCount);
    file.generation = header.generation;
    if (redo !== undefined) {
      for (let i = 0; i < redo.pairs.length; i += 2) {
        const b = redo.pairs[i]!;
        if (!Number.isInteger(b) || b < 0 || b >= header.buckets) throw corrupt(headsPath(path), `bad bucket ${b}`);
        heads[b] = redo.pairs[i + 1]!;
        file.markDirty(b);
      }
      writeListedHeads(file, 0); // step 3 again: exactly the heads listed in the file
      handle.sync();
      writeHeader(file, { ...header, generation: file.generation + 1 }); // step 4 again
      handle.sync();
      file.clearDirty();
    }
    checkHeads(file);
    return { file, header };
  } catch (err) {
    handle.close();
    throw err;
  }
}

/** The heads file when it is valid and newer than the header (an interrupted checkpoint). */
function readNewerHeadsFile(fs: Fs, path: string, header: IndexHeader): { header: IndexHeader; pairs: Float64Array } | undefined {
  const hp = headsPath(path);
  if (!fs.exists(hp)) return undefined;
  const h = decodeHeads(fs.readFile(hp));
  if (h === undefined || h.lsn <= header.durableLsn) return undefined;
  if (h.buckets !== header.buckets || h.entriesEnd < header.entriesEnd || h.entriesEnd % ENTRY_ALIGN !== 0) {
    throw corrupt(hp, `newer than ${path} (LSN ${h.lsn} > ${header.durableLsn}) but does not fit it`);
  }
  return {
    header: { generation: header.generation, buckets: h.buckets, entriesEnd: h.entriesEnd, entryCount: h.entryCount, liveCount: h.liveCount, durableLsn: h.lsn },
    pairs: h.pairs,
  };
}

function readHeadsArray(handle: FileHandle, buckets: number, path: string): Float64Array {
  const heads = new Float64Array(buckets);
  const chunk = new Uint8Array(Math.min(IO_CHUNK, buckets * 8));
  const view = new DataView(chunk.buffer);
  for (let b = 0; b < buckets; b += chunk.length / 8) {
    const got = handle.read(chunk, HEADER_SIZE + b * 8);
    if (got !== chunk.length) throw corrupt(path, 'bucket array is cut short');
    for (let i = 0; i < chunk.length / 8; i++) {
      // A head above 2^53 reads as -1: a garbled write that a redo may still repair;
      // checkHeads() rejects whatever is left after it.
      heads[b + i] = readU64(view, i * 8);
    }
  }
  return heads;
}

function checkHeads(file: IndexFile): void {
  for (let b = 0; b < file.buckets; b++) {
    const h = file.heads[b]!;
    if (h !== 0 && (h < file.start || h >= file.end || h % ENTRY_ALIGN !== 0)) {
      throw corrupt(file.path, `bucket ${b} points at ${h}, outside the entries region`);
    }
  }
}

/** Calls fn for every dirty bucket, in ascending order. */
function forEachDirty(f: IndexFile, fn: (bucket: number) => void): void {
  const words = f.dirty;
  for (let w = 0; w < words.length; w++) {
    let bits = words[w]!;
    while (bits !== 0) {
      const low = bits & -bits;
      fn(w * 32 + (31 - Math.clz32(low)));
      bits ^= low;
    }
  }
}

/**
 * The heads a checkpoint writes: every dirty bucket, plus the clean buckets in gaps of at
 * most `gap` between two dirty ones, so that step 3 writes long runs instead of one pwrite
 * per head. Every bucket written in step 3 is listed in the heads file, so a write torn or
 * garbled by a crash is always redone whole on open (clean heads included).
 */
function forEachListed(f: IndexFile, gap: number, fn: (bucket: number) => void): void {
  let prev = -1;
  forEachDirty(f, (b) => {
    if (prev >= 0 && b - prev - 1 <= gap) for (let g = prev + 1; g < b; g++) fn(g);
    fn(b);
    prev = b;
  });
}

function countListed(f: IndexFile): number {
  let n = 0;
  forEachListed(f, HEAD_GAP, () => n++);
  return n;
}

/** Step 3: the listed heads, from memory, in runs of consecutive buckets. */
function writeListedHeads(f: IndexFile, gap: number): void {
  const maxRun = IO_CHUNK / 8;
  let start = -1;
  let end = -1;
  forEachListed(f, gap, (b) => {
    if (start >= 0 && b === end && end - start < maxRun) {
      end++;
      return;
    }
    if (start >= 0) writeHeadRange(f, start, end);
    start = b;
    end = b + 1;
  });
  if (start >= 0) writeHeadRange(f, start, end);
}

function writeAllHeads(f: IndexFile): void {
  const step = IO_CHUNK / 8;
  for (let b = 0; b < f.buckets; b += step) writeHeadRange(f, b, Math.min(f.buckets, b + step));
}

function writeHeadRange(f: IndexFile, from: number, to: number): void {
  const buf = new Uint8Array((to - from) * 8);
  const view = new DataView(buf.buffer);
  for (let b = from; b < to; b++) writeU64(view, (b - from) * 8, f.heads[b]!);
  f.handle.write(buf, HEADER_SIZE + from * 8);
}

// ---- module helpers: values -----------------------------------------------------------------

function isLiveEntry(e: ChainEntry, nowMs: number): boolean {
  return (e.flags & FLAG_TOMBSTONE) === 0 && isLive(e.expiresAt, nowMs);
}

function toIndexEntry(e: ChainEntry): IndexEntry {
  return { key: e.key, address: { volume: e.volume, offset: e.offset, length: e.length }, expiresAt: e.expiresAt, modifiedAt: e.modified * 1000 };
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

/** Any error as a StoreError: file-system errors keep their errno in the message. */
function asStoreError(err: unknown, path: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = fsErrorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return new StoreError(code === 'ENOSPC' ? 'NO_SPACE' : 'IO_ERROR', `${path}: ${message}`);
}
