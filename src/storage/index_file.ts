// The files of the hash index (docs/formats.md §Hash index): one index file in memory and on
// disk (IndexFile: its heads, its dirty-bucket bitmap, the entries not yet written out), the
// reader of its entries (EntryReader: one reused buffer, every entry CRC-checked), and the file
// operations of open, create and checkpoint (the header slots, the heads file, the bucket
// array). hash_index.ts is the index built on them; index_rebuild.ts rebuilds into a new one.
import { canaries } from '../runtime/canary.js';
import { StoreError } from '../runtime/errors.js';
import { fsErrorCode, type FileHandle, type Fs } from '../runtime/fs.js';
import {
  corrupt,
  dataStart,
  decodeHeader,
  decodeHeads,
  E_CRC,
  E_EXPIRES,
  E_FLAGS,
  E_HASH,
  E_KEYLEN,
  E_LENGTH,
  E_MODIFIED,
  E_NEXT,
  E_OFFSET,
  E_VOLUME,
  encodeEntry,
  encodeHeader,
  ENTRY_ALIGN,
  ENTRY_HEADER_SIZE,
  FLAG_TOMBSTONE,
  entryCrc,
  entrySize,
  HEADER_SIZE,
  headerSlotOffset,
  isPowerOfTwo,
  MAX_BUCKETS,
  MAX_KEY_LENGTH_LIMIT,
  MIN_BUCKETS,
  readNeedleLength,
  readU64,
  writeU64,
  type EntryFields,
  type IndexHeader,
} from './hash_index_format.js';
import { needleAddress, type IndexEntry } from './types.js';
import { BucketBits } from './bucket_bits.js';

/** Appended entries are buffered up to this many bytes, then written with one pwrite. */
const PENDING_CAPACITY = 1 << 20;
const PENDING_INITIAL = 64 * 1024;
/** The entry reader's buffer: room for the longest entry, allocated as entries need it. */
const READER_MAX = ENTRY_HEADER_SIZE + MAX_KEY_LENGTH_LIMIT + ENTRY_ALIGN;
const READER_INITIAL = 4096;
/** I/O chunk for the bucket array and the heads file. */
export const IO_CHUNK = 1 << 20;
/** Clean heads between two dirty ones closer than this are written too (one run). */
export const HEAD_GAP = 64;
/** Walks (scan, sweep, rebuild) read this much per entry first; longer keys read again. */
export const WALK_READ = 256;

/** Newest state of one key of a chain, as the walks return it: an entry's fields and its key. */
export type ChainEntry = Omit<EntryFields, 'next'> & { key: Uint8Array };

/** One index file: its handle, its heads in memory, and the entries not yet written out. */
export class IndexFile {
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
  readonly dirty: BucketBits;
  dirtyCount = 0;
  /**
   * A bit per bucket: set when an entry with an expiry is appended, cleared when the TTL sweep
   * walks the chain and finds no key with one. Memory only: a file opened with entries starts
   * with every bit set, so the first full pass of the sweep is what clears them; one with none
   * (created, or a rebuild's new file, whose bits the main file adopts) starts exact. Without
   * it the sweep read every chain of a store whose keys have no TTL, ten times a second,
   * forever (measured: 5% of a core on an idle master holding 100,000 keys).
   */
  private readonly mayExpire: BucketBits;
  /**
   * Which keys a bucket's chain may hold, in 16 bits per bucket (two bits of each key's hash,
   * keyFilterBits: a tiny Bloom filter), so that a write of a new key reads no chain: a bulk
   * load spent most of the index thread in those reads. Memory only, and only the index's own
   * (front ends walk as before). Exact from the start for a file with no entries (created, or
   * rebuilt, which adopts its new file's); for a file opened with entries, each bucket's bits are
   * learnt by the first walk that reads its whole chain (a miss), and until then it is walked.
   * Bits are only ever added, or replaced by what a whole walk saw: never one too few.
   */
  private readonly keyBits: Uint16Array;
  private readonly keyBitsKnown: BucketBits;
  // Grows on demand up to PENDING_CAPACITY: a small index (a rebuild check, a fresh store)
  // does not pay for a whole megabyte per open file.
  private pending = new Uint8Array(PENDING_INITIAL);
  private pendingView = new DataView(this.pending.buffer);
  private pendingLength = 0;

  constructor(
    readonly handle: FileHandle,
    readonly path: string,
    readonly buckets: number,
    public heads: Float64Array,
    end: number,
    entryCount: number,
  ) {
    this.mask = buckets - 1;
    this.start = dataStart(buckets);
    this.end = end;
    this.flushedEnd = end;
    this.durableEnd = end;
    this.entryCount = entryCount;
    this.dirty = new BucketBits(buckets, false);
    // No entry at all: every chain is empty, and what each may hold is known (nothing).
    const empty = end === this.start;
    this.mayExpire = new BucketBits(buckets, !empty);
    this.keyBits = new Uint16Array(buckets);
    this.keyBitsKnown = new BucketBits(buckets, empty);
  }

  /** False only when the key (of hash `hash`) is certainly not in the bucket's chain. */
  mayHoldKey(bucket: number, hash: number): boolean {
    if (!this.keyBitsKnown.has(bucket)) return true;
    const bits = keyFilterBits(hash);
    return (this.keyBits[bucket]! & bits) === bits;
  }

  /** A walk read the bucket's whole chain: its keys' bits are exactly `bits`. */
  learnKeys(bucket: number, bits: number): void {
    this.keyBits[bucket] = bits;
    this.keyBitsKnown.set(bucket);
  }

  /**
   * A rebuild's new file becomes the main one: what it knows of its chains (key bits, expiry
   * bits) comes along, so a growth in the middle of a bulk load costs no walk afterwards.
   */
  adoptChainBits(from: IndexFile): void {
    if (from.buckets !== this.buckets) {
      throw new StoreError('INTERNAL', `chain bits of ${from.buckets} buckets given to a file of ${this.buckets}`);
    }
    this.keyBits.set(from.keyBits);
    this.keyBitsKnown.copyFrom(from.keyBitsKnown);
    this.mayExpire.copyFrom(from.mayExpire);
  }

  /** False only when no key of the bucket's chain had an expiry at the sweep's last walk, nor since. */
  mayHaveExpiry(bucket: number): boolean {
    return this.mayExpire.has(bucket);
  }

  /** The sweep walked the bucket and found no key with an expiry. */
  noExpiryIn(bucket: number): void {
    this.mayExpire.clear(bucket);
  }

  markDirty(bucket: number): void {
    if (this.dirty.set(bucket)) this.dirtyCount++;
  }

  clearDirty(): void {
    this.dirty.fill(false);
    this.dirtyCount = 0;
  }

  /** Appends an entry at the head of `bucket`'s chain; returns its offset. */
  append(bucket: number, f: Omit<EntryFields, 'next'>, key: Uint8Array): number {
    const size = entrySize(key.length);
    if (this.pendingLength + size > PENDING_CAPACITY) this.flush();
    if (this.pendingLength + size > this.pending.length) this.growPending(this.pendingLength + size);
    const at = this.end;
    const fields: EntryFields = { ...f, next: this.heads[bucket]! };
    encodeEntry(this.pending, this.pendingView, this.pendingLength, fields, key);
    this.pendingLength += size;
    this.end += size;
    this.entryCount++;
    this.heads[bucket] = at;
    this.markDirty(bucket);
    if (f.expiresAt !== 0) this.mayExpire.set(bucket);
    this.keyBits[bucket] = this.keyBits[bucket]! | keyFilterBits(f.hash);
    return at;
  }

  private growPending(needed: number): void {
    const next = new Uint8Array(Math.min(PENDING_CAPACITY, Math.max(needed, 2 * this.pending.length)));
    next.set(this.pending.subarray(0, this.pendingLength));
    this.pending = next;
    this.pendingView = new DataView(next.buffer);
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

/**
 * The bits of a key's hash in its bucket's key filter (IndexFile.keyBits): two of 16, from the
 * top of a Fibonacci hash of it, which every bit of the hash reaches, so keys of one bucket
 * (whose low bits are all the same) still differ there.
 */
export function keyFilterBits(hash: number): number {
  const m = Math.imul(hash, 0x9e3779b1) >>> 0;
  return (1 << (m >>> 28)) | (1 << ((m >>> 24) & 15));
}

/**
 * Walks the chain from `head` for `key` (of hash `hash`): the position of its newest entry, left
 * loaded in `r`, or 0. The index's lookups and a front end's (shared_heads.ts) are this walk.
 * After a miss, `r.chainKeyBits` holds the key-filter bits of every entry the walk read: the
 * whole chain's.
 */
export function findInChain(r: EntryReader, source: EntrySource, head: number, key: Uint8Array, hash: number): number {
  const want = ENTRY_HEADER_SIZE + key.length;
  let pos = head;
  let seen = 0;
  while (pos !== 0) {
    const keyLength = r.load(source, pos, want);
    const entryHash = r.view.getUint32(E_HASH, true);
    if (keyLength === key.length && entryHash === hash && r.keyEquals(key)) return pos;
    seen |= keyFilterBits(entryHash);
    pos = r.next(source, pos);
  }
  r.chainKeyBits = seen;
  return 0;
}

/** What an entry reader reads from: an index file, or a front end's read-only view of one. */
export interface EntrySource {
  /** Where the entry region starts (entries are at or past it). */
  readonly start: number;
  /** Where it ends (no entry at or past it). */
  readonly end: number;
  readonly path: string;
  read(dst: Uint8Array, pos: number): number;
}

/** Reads of entries go through one reused buffer and one cached view per read length. */
export class EntryReader {
  // Grows to the longest entry read (at most a 64 KiB key): most keys are short.
  buf = new Uint8Array(READER_INITIAL);
  view = new DataView(this.buf.buffer);
  /** After findInChain missed: the key-filter bits of the whole chain it walked. */
  chainKeyBits = 0;
  private views: Uint8Array[] = [];

  /** Reads an entry at pos with at least `want` bytes; checks its CRC; returns its key length. */
  load(file: EntrySource, pos: number, want: number): number {
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
  next(file: EntrySource, pos: number): number {
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

  u64(at: number, file: EntrySource): number {
    const v = readU64(this.view, at);
    if (v < 0) throw corrupt(file.path, 'entry field above 2^53');
    return v;
  }

  /** The loaded entry as an IndexEntry under `key` (its own key), or undefined for a tombstone. */
  entryOf(file: EntrySource, key: Uint8Array): IndexEntry | undefined {
    if ((this.buf[E_FLAGS]! & FLAG_TOMBSTONE) !== 0) return undefined;
    const { length, meta } = this.needleLength(file);
    const address = needleAddress(this.view.getUint32(E_VOLUME, true), this.u64(E_OFFSET, file), length, meta);
    return { key, address, expiresAt: this.u64(E_EXPIRES, file), modifiedAt: this.view.getUint32(E_MODIFIED, true) * 1000 };
  }

  /** A copy of the loaded entry's fields and key. */
  toChainEntry(file: EntrySource, keyLength: number): ChainEntry {
    return {
      hash: this.view.getUint32(E_HASH, true),
      key: this.buf.slice(ENTRY_HEADER_SIZE, ENTRY_HEADER_SIZE + keyLength),
      flags: this.buf[E_FLAGS]!,
      volume: this.view.getUint32(E_VOLUME, true),
      offset: this.u64(E_OFFSET, file),
      ...this.needleLength(file),
      expiresAt: this.u64(E_EXPIRES, file),
      modified: this.view.getUint32(E_MODIFIED, true),
    };
  }

  /** The loaded entry's needle length and metadata length. */
  needleLength(file: EntrySource): { length: number; meta: number } {
    const v = readNeedleLength(this.view, E_LENGTH);
    if (v === null) throw corrupt(file.path, 'entry length field out of range');
    return v;
  }

  private sized(length: number): Uint8Array {
    if (length > this.buf.length) {
      this.buf = new Uint8Array(Math.min(READER_MAX, Math.max(length, 2 * this.buf.length)));
      this.view = new DataView(this.buf.buffer);
      this.views = [];
    }
    let v = this.views[length];
    if (v === undefined) {
      v = this.buf.subarray(0, length);
      this.views[length] = v;
    }
    return v;
  }
}


export function tmpPath(path: string): string {
  return `${path}.tmp`;
}

export function headsPath(path: string): string {
  return `${path}.heads`;
}

export function dirOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : path.slice(0, i);
}

/** Writes a header into the slot of its generation (never over the newest valid one). */
export function writeHeader(f: IndexFile, header: IndexHeader): void {
  f.handle.write(encodeHeader(header), headerSlotOffset(header.generation));
  f.generation = header.generation;
}

export function checkBucketCount(b: number): void {
  if (!isPowerOfTwo(b) || b < MIN_BUCKETS || b > MAX_BUCKETS) {
    throw new StoreError('BAD_ARGUMENT', `bucket count ${b} must be a power of two in ${MIN_BUCKETS}..${MAX_BUCKETS}`);
  }
}

/** A new empty index, created atomically: NAME.tmp, fsync, rename, fsync the directory. */
export function createEmpty(fs: Fs, path: string, buckets: number): void {
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
export function loadFile(fs: Fs, path: string): { file: IndexFile; header: IndexHeader } {
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

/**
 * The heads a checkpoint writes: every dirty bucket, plus the clean buckets in gaps of at
 * most `gap` between two dirty ones, so that step 3 writes long runs instead of one pwrite
 * per head. Every bucket written in step 3 is listed in the heads file, so a write torn or
 * garbled by a crash is always redone whole on open (clean heads included).
 */
export function forEachListed(f: IndexFile, gap: number, fn: (bucket: number) => void): void {
  let prev = -1;
  f.dirty.forEach((b) => {
    if (prev >= 0 && b - prev - 1 <= gap) for (let g = prev + 1; g < b; g++) fn(g);
    fn(b);
    prev = b;
  });
}

export function countListed(f: IndexFile): number {
  let n = 0;
  forEachListed(f, HEAD_GAP, () => n++);
  return n;
}

/** Step 3: the listed heads, from memory, in runs of consecutive buckets. */
export function writeListedHeads(f: IndexFile, gap: number): void {
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

export function writeAllHeads(f: IndexFile): void {
  const step = IO_CHUNK / 8;
  for (let b = 0; b < f.buckets; b += step) writeHeadRange(f, b, Math.min(f.buckets, b + step));
}

function writeHeadRange(f: IndexFile, from: number, to: number): void {
  const buf = new Uint8Array((to - from) * 8);
  const view = new DataView(buf.buffer);
  for (let b = from; b < to; b++) writeU64(view, (b - from) * 8, f.heads[b]!);
  f.handle.write(buf, HEADER_SIZE + from * 8);
}

/** Any error as a StoreError: file-system errors keep their errno in the message. */
export function asStoreError(err: unknown, path: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = fsErrorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return new StoreError(code === 'ENOSPC' ? 'NO_SPACE' : 'IO_ERROR', `${path}: ${message}`);
}
