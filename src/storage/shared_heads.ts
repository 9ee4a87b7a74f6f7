// The index's bucket heads in shared memory, so that a front end looks a key up on its own
// thread (two reads: the head here, the entry from index.hash) instead of a round trip to the
// index actor. The index actor stays the only writer; readers only ever read.
//
// Layout of the SharedArrayBuffer (growable; docs/formats.md §"Shared bucket heads"):
//   Int32 words [seq, epoch, buckets, 0], zero up to byte 64, then B × Float64 heads (the
//   offsets of index.hash, exactly the heads the index keeps: the index's own array IS this
//   memory while it is shared).
//
// Invariants (a seqlock):
// - seq is odd while the index changes anything a lookup reads (a record being applied, a
//   rebuild swapped in, a restart's recovery, a close or a failure) and even in between; it
//   starts odd, so nothing is read before the index has published;
// - an entry is in index.hash (written with pwrite, unsynced) before seq turns even, and
//   entries are never rewritten in place: a head read between two equal even seqs leads to
//   entries that are all in the file;
// - epoch changes whenever index.hash becomes another file (open, growth swap): a reader
//   reopens the path and rereads B;
// - so a lookup that saw the same even seq before and after is exactly a lookup the index
//   thread could have made between two records; any other outcome (odd, changed, an error)
//   falls back to the message, which is always right.
import { StoreError } from '../runtime/errors.js';
import type { FileHandle, Fs } from '../runtime/fs.js';
import { dataStart, MAX_KEY_LENGTH_LIMIT } from './hash_index_format.js';
import { EntryReader, findInChain, type EntrySource } from './index_file.js';
import { keyHash } from './key_hash.js';
import { isLive, type Lookup } from './types.js';
import { INDEX_FILE } from './store_files.js';
import { join } from 'node:path';

const SEQ = 0;
const EPOCH = 1;
const BUCKETS = 2;
const HEADS_AT = 64;
/** The most memory the heads may take (B ≤ 2^28 buckets); past it the index is not shared. */
const MAX_BYTES = 2 ** 31;

/** Growable SharedArrayBuffer (ES2024; Node 20+), which this build's lib does not declare. */
type GrowableSab = SharedArrayBuffer & { grow(bytes: number): void; readonly maxByteLength: number };

/** The memory, made once by whoever wires the index and the front ends (it crosses in configs). */
export function createSharedHeads(): SharedArrayBuffer {
  const Ctor = SharedArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => SharedArrayBuffer;
  const sab = new Ctor(HEADS_AT, { maxByteLength: MAX_BYTES });
  new Int32Array(sab, 0, 4)[SEQ] = 1;
  return sab;
}

/** The index thread's side: marks changes, and hands out the heads array to write through. */
export class SharedHeadsWriter {
  private readonly ctrl: Int32Array;
  private seq: number;

  constructor(private readonly sab: SharedArrayBuffer) {
    this.ctrl = new Int32Array(sab, 0, 4);
    this.seq = Atomics.load(this.ctrl, SEQ) | 1;
  }

  /** A change begins (seq odd): readers fall back from now on, until end(). */
  invalidate(): void {
    if ((this.seq & 1) === 0) this.seq++;
    Atomics.store(this.ctrl, SEQ, this.seq);
  }

  /** The change is whole and in the file (seq even again). */
  end(): void {
    if ((this.seq & 1) === 1) this.seq = (this.seq + 1) | 0;
    Atomics.store(this.ctrl, SEQ, this.seq);
  }

  /**
   * `heads` copied into shared memory, as the array the index must write through from now on;
   * or null when they do not fit (the index keeps its own array and readers keep falling back).
   * Leaves seq odd: the caller ends the change once the file is in place.
   */
  adopt(heads: Float64Array): Float64Array | null {
    this.invalidate();
    const bytes = HEADS_AT + heads.length * 8;
    const sab = this.sab as GrowableSab;
    if (bytes > sab.maxByteLength) return null;
    if (sab.byteLength < bytes) sab.grow(bytes);
    const view = new Float64Array(sab, HEADS_AT, heads.length);
    view.set(heads);
    Atomics.store(this.ctrl, BUCKETS, heads.length);
    Atomics.add(this.ctrl, EPOCH, 1);
    return view;
  }
}

/** A front end's read-only view of index.hash. One per thread; not shared. */
export class SharedIndexReader {
  private readonly ctrl: Int32Array;
  private readonly reader = new EntryReader();
  private epoch = -1;
  private source: FileSource | null = null;
  private heads: Float64Array | null = null;
  private mask = 0;

  constructor(
    private readonly sab: SharedArrayBuffer,
    private readonly fs: Fs,
    private readonly path: string,
    private readonly now: () => number,
  ) {
    this.ctrl = new Int32Array(sab, 0, 4);
  }

  /** The reader of `dataDir`'s index.hash. */
  static of(sab: SharedArrayBuffer, fs: Fs, dataDir: string, now: () => number): SharedIndexReader {
    return new SharedIndexReader(sab, fs, join(dataDir, INDEX_FILE), now);
  }

  /** The key's state, or null: the index is changing or not shared, and the caller must ask it. */
  lookup(key: Uint8Array): Lookup | null {
    const seq = Atomics.load(this.ctrl, SEQ);
    if ((seq & 1) === 1 || key.length === 0 || key.length > MAX_KEY_LENGTH_LIMIT) return null;
    try {
      const found = this.find(key);
      return Atomics.load(this.ctrl, SEQ) === seq ? found : null;
    } catch {
      // A file swapped or cut under the read, or damage: the index gives the real answer.
      return null;
    }
  }

  /** Every key's state from one stable view (as one LookupMany), or null. */
  lookupMany(keys: Uint8Array[]): Lookup[] | null {
    const seq = Atomics.load(this.ctrl, SEQ);
    if ((seq & 1) === 1) return null;
    const out: Lookup[] = [];
    try {
      for (const key of keys) {
        if (key.length === 0 || key.length > MAX_KEY_LENGTH_LIMIT) return null;
        out.push(this.find(key));
      }
    } catch {
      return null;
    }
    return Atomics.load(this.ctrl, SEQ) === seq ? out : null;
  }

  close(): void {
    this.source?.handle.close();
    this.source = null;
    this.heads = null;
  }

  /** What the index's onLookup answers: the live entry, an expired one's address, or nothing. */
  private find(key: Uint8Array): Lookup {
    const { source, heads } = this.current();
    const hash = keyHash(key);
    if (findInChain(this.reader, source, heads[hash & this.mask]!, key, hash) === 0) return {};
    const entry = this.reader.entryOf(source, key);
    if (entry === undefined) return {};
    if (!isLive(entry.expiresAt, this.now())) return { expired: { volume: entry.address.volume, offset: entry.address.offset } };
    return { entry };
  }

  /** The file and heads of the current epoch, reopened when the index has moved on. */
  private current(): { source: FileSource; heads: Float64Array } {
    const epoch = Atomics.load(this.ctrl, EPOCH);
    if (epoch !== this.epoch || this.source === null || this.heads === null) {
      this.close();
      const buckets = Atomics.load(this.ctrl, BUCKETS);
      if (buckets <= 0 || this.sab.byteLength < HEADS_AT + buckets * 8) throw new StoreError('NOT_FOUND', 'no heads published');
      this.heads = new Float64Array(this.sab, HEADS_AT, buckets);
      this.mask = buckets - 1;
      this.source = new FileSource(this.fs.open(this.path, 'read'), this.path, dataStart(buckets));
      this.epoch = epoch;
    }
    return { source: this.source, heads: this.heads };
  }
}

/** index.hash read through a handle of its own: entries only, no end known (a short read fails). */
class FileSource implements EntrySource {
  readonly end = Number.MAX_SAFE_INTEGER;
  constructor(
    readonly handle: FileHandle,
    readonly path: string,
    readonly start: number,
  ) {}

  read(dst: Uint8Array, pos: number): number {
    return this.handle.read(dst, pos);
  }
}
