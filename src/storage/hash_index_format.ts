// The bytes of index.hash and index.hash.heads (docs/formats.md §Hash index): constants,
// encoders and decoders shared by every reader and writer of the index, and nothing else.
// All integers are little-endian; u64 fields hold offsets and times below 2^53, read as two
// u32 halves (a value at or above 2^53 is corrupt by definition). CRCs are zlib.crc32.
import { crc32 } from './checksum.js';
import { StoreError } from '../runtime/errors.js';

/** CRC-32 (IEEE) as Node computes it; `previous` continues a running CRC. */

export const INDEX_MAGIC = 'BRISEIDX';
export const HEADS_MAGIC = 'BRISEHDS';
export const INDEX_VERSION = 1;
export const HEADS_VERSION = 1;
export const HEADER_SIZE = 4096;
export const HEADER_CRC_OFFSET = 56;

export const ENTRY_HEADER_SIZE = 56;
export const ENTRY_ALIGN = 8;
export const FLAG_TOMBSTONE = 1;
/** The format's hard key limit: the key length is a u16. */
export const MAX_KEY_LENGTH_LIMIT = 65535;
export const DEFAULT_MAX_KEY_LENGTH = 4096;

export const MIN_BUCKETS = 16;
/** 2^28 heads are 2 GiB of memory: beyond any sane use of one index. */
export const MAX_BUCKETS = 2 ** 28;

// Entry field offsets.
export const E_NEXT = 0;
export const E_HASH = 8;
export const E_KEYLEN = 12;
export const E_FLAGS = 14;
export const E_VOLUME = 16;
/** Modified at: the commit time (seconds since the epoch) of the write the entry records. */
export const E_MODIFIED = 20;
export const E_OFFSET = 24;
/**
 * Needle length (bits 0..46) and the needle's metadata length (bits 47..61): a needle is shorter
 * than 2^47 bytes, so the u64 has room, and the entry CRC covers both. Entries written before
 * metadata existed have zeros there.
 */
export const E_LENGTH = 32;
const LENGTH_HIGH_BITS = 15;
export const E_EXPIRES = 40;
export const E_CRC = 48;

/** Heads file: fixed part, then n × (bucket u64, head u64), then CRC-32 of all before. */
export const HEADS_FIXED_SIZE = 64;
export const HEADS_PAIR_SIZE = 16;

const TWO32 = 2 ** 32;
const MAX_SAFE_HI = 2 ** 21; // hi half of any u64 below 2^53

export interface IndexHeader {
  /** Bumped at every header write; the write goes to slot generation % 2 (see headerSlotOffset). */
  generation: number;
  buckets: number;
  entriesEnd: number;
  entryCount: number;
  liveCount: number;
  durableLsn: number;
}

export interface HeadsFile {
  buckets: number;
  lsn: number;
  entriesEnd: number;
  entryCount: number;
  liveCount: number;
  /** Pairs (bucket, head), in order. */
  pairs: Float64Array;
}

export function corrupt(path: string, what: string): StoreError {
  return new StoreError('CORRUPT', `${path}: ${what}`);
}

export function writeU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % TWO32, true);
  view.setUint32(at + 4, Math.floor(value / TWO32), true);
}

/** Reads a u64 below 2^53; returns -1 when it is not (the caller reports corruption). */
export function readU64(view: DataView, at: number): number {
  const hi = view.getUint32(at + 4, true);
  if (hi >= MAX_SAFE_HI) return -1;
  return hi * TWO32 + view.getUint32(at, true);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Offset of the first entry: after the header and the bucket array (8-aligned). */
export function dataStart(buckets: number): number {
  return HEADER_SIZE + buckets * 8;
}

export function entrySize(keyLength: number): number {
  return (ENTRY_HEADER_SIZE + keyLength + ENTRY_ALIGN - 1) & ~(ENTRY_ALIGN - 1);
}

/**
 * The header lives twice in the 4096-byte header region, at 0 and at HEADER_SLOT_SIZE, and a
 * write goes to the slot of its generation's parity, as LMDB keeps two meta pages: a crash
 * that tears or garbles the header being written leaves the other slot, one checkpoint older,
 * intact (and index.hash.heads brings it forward).
 */
export const HEADER_SLOT_SIZE = 2048;
/** Bytes of one header slot that are written and covered by its CRC. */
export const HEADER_SLOT_USED = HEADER_CRC_OFFSET + 4;

export function headerSlotOffset(generation: number): number {
  return (generation % 2) * HEADER_SLOT_SIZE;
}

/** One header slot (HEADER_SLOT_USED bytes), to be written at headerSlotOffset(h.generation). */
export function encodeHeader(h: IndexHeader): Uint8Array {
  const buf = new Uint8Array(HEADER_SLOT_USED);
  const view = new DataView(buf.buffer);
  buf.set(Buffer.from(INDEX_MAGIC, 'latin1'), 0);
  view.setUint32(8, INDEX_VERSION, true);
  view.setUint32(12, h.generation, true);
  writeU64(view, 16, h.buckets);
  writeU64(view, 24, h.entriesEnd);
  writeU64(view, 32, h.entryCount);
  writeU64(view, 40, h.liveCount);
  writeU64(view, 48, h.durableLsn);
  view.setUint32(HEADER_CRC_OFFSET, crc32(buf.subarray(0, HEADER_CRC_OFFSET)), true);
  return buf;
}

/**
 * Decodes the header region: the valid slot with the higher generation. Throws CORRUPT naming
 * the file when neither slot is valid (the reasons of both are given).
 */
export function decodeHeader(buf: Uint8Array, path: string): IndexHeader {
  if (buf.length < HEADER_SIZE) throw corrupt(path, `header is short (${buf.length} bytes)`);
  const slots: IndexHeader[] = [];
  const problems: string[] = [];
  for (const at of [0, HEADER_SLOT_SIZE]) {
    try {
      slots.push(decodeHeaderSlot(buf.subarray(at, at + HEADER_SLOT_SIZE), path));
    } catch (err) {
      problems.push(`slot at ${at}: ${(err as Error).message}`);
    }
  }
  if (slots.length === 0) throw corrupt(path, `no valid header (${problems.join('; ')})`);
  return slots.reduce((a, b) => (b.generation > a.generation ? b : a));
}

/** Decodes and checks one header slot; throws CORRUPT naming the file when anything is off. */
function decodeHeaderSlot(buf: Uint8Array, path: string): IndexHeader {
  if (Buffer.from(buf.subarray(0, 8)).toString('latin1') !== INDEX_MAGIC) {
    throw corrupt(path, 'bad magic (not a BriseDB index)');
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(HEADER_CRC_OFFSET, true) !== crc32(buf.subarray(0, HEADER_CRC_OFFSET))) {
    throw corrupt(path, 'header CRC mismatch');
  }
  const version = view.getUint32(8, true);
  if (version !== INDEX_VERSION) throw corrupt(path, `unsupported version ${version}`);
  const h: IndexHeader = {
    generation: view.getUint32(12, true),
    buckets: readU64(view, 16),
    entriesEnd: readU64(view, 24),
    entryCount: readU64(view, 32),
    liveCount: readU64(view, 40),
    durableLsn: readU64(view, 48),
  };
  if (!isPowerOfTwo(h.buckets) || h.buckets < MIN_BUCKETS || h.buckets > MAX_BUCKETS) {
    throw corrupt(path, `bad bucket count ${h.buckets}`);
  }
  if (h.entriesEnd < dataStart(h.buckets) || h.entriesEnd % ENTRY_ALIGN !== 0) {
    throw corrupt(path, `bad entries end ${h.entriesEnd}`);
  }
  if (h.entryCount < 0 || h.liveCount < 0 || h.durableLsn < 0 || h.liveCount > h.entryCount) {
    throw corrupt(path, 'bad counts in header');
  }
  return h;
}

/** Encodes the fixed part of a heads file (the pairs and the CRC follow it). */
export function encodeHeadsFixed(h: Omit<HeadsFile, 'pairs'>, pairCount: number): Uint8Array {
  const buf = new Uint8Array(HEADS_FIXED_SIZE);
  const view = new DataView(buf.buffer);
  buf.set(Buffer.from(HEADS_MAGIC, 'latin1'), 0);
  view.setUint32(8, HEADS_VERSION, true);
  writeU64(view, 16, h.buckets);
  writeU64(view, 24, h.lsn);
  writeU64(view, 32, h.entriesEnd);
  writeU64(view, 40, h.entryCount);
  writeU64(view, 48, h.liveCount);
  writeU64(view, 56, pairCount);
  return buf;
}

/**
 * Decodes a heads file; undefined when it is torn or not one (a checkpoint that died in
 * step 2, before the file was synced: ignoring it is right, the bucket array was not touched).
 */
export function decodeHeads(buf: Uint8Array): HeadsFile | undefined {
  if (buf.length < HEADS_FIXED_SIZE + 4) return undefined;
  if (Buffer.from(buf.subarray(0, 8)).toString('latin1') !== HEADS_MAGIC) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(8, true) !== HEADS_VERSION) return undefined;
  const n = readU64(view, 56);
  const size = HEADS_FIXED_SIZE + n * HEADS_PAIR_SIZE;
  if (n < 0 || size + 4 > buf.length) return undefined;
  if (view.getUint32(size, true) !== crc32(buf.subarray(0, size))) return undefined;
  const pairs = new Float64Array(n * 2);
  for (let i = 0; i < n * 2; i++) pairs[i] = readU64(view, HEADS_FIXED_SIZE + i * 8);
  return {
    buckets: readU64(view, 16),
    lsn: readU64(view, 24),
    entriesEnd: readU64(view, 32),
    entryCount: readU64(view, 40),
    liveCount: readU64(view, 48),
    pairs,
  };
}

/** Fields of one entry, as written. */
export interface EntryFields {
  next: number;
  hash: number;
  flags: number;
  volume: number;
  offset: number;
  length: number;
  expiresAt: number;
  /** Seconds since the epoch; 0 = unknown (tombstones). */
  modified: number;
  /** The needle's metadata section length (0: none). */
  meta: number;
}

/** Writes the needle length and metadata length into the E_LENGTH field (see E_LENGTH). */
export function writeNeedleLength(view: DataView, at: number, length: number, meta: number): void {
  const high = Math.floor(length / TWO32);
  if (!Number.isSafeInteger(length) || length < 0 || high >= 2 ** LENGTH_HIGH_BITS) throw new RangeError(`needle length ${length}`);
  if (!Number.isInteger(meta) || meta < 0 || meta >= 2 ** (32 - LENGTH_HIGH_BITS - 2)) throw new RangeError(`metadata length ${meta}`);
  view.setUint32(at, length % TWO32, true);
  view.setUint32(at + 4, (meta * 2 ** LENGTH_HIGH_BITS + high) >>> 0, true);
}

/** The E_LENGTH field read back; null when its top bits are set (not a field we wrote). */
export function readNeedleLength(view: DataView, at: number): { length: number; meta: number } | null {
  const low = view.getUint32(at, true);
  const word = view.getUint32(at + 4, true);
  if (word >>> 30 !== 0) return null;
  return { length: (word & (2 ** LENGTH_HIGH_BITS - 1)) * TWO32 + low, meta: word >>> LENGTH_HIGH_BITS };
}

/** Writes one entry (header, key, CRC) into buf at `at`; returns its padded size. */
export function encodeEntry(
  buf: Uint8Array,
  view: DataView,
  at: number,
  f: EntryFields,
  key: Uint8Array,
): number {
  const size = entrySize(key.length);
  buf.fill(0, at, at + size);
  writeU64(view, at + E_NEXT, f.next);
  view.setUint32(at + E_HASH, f.hash, true);
  view.setUint16(at + E_KEYLEN, key.length, true);
  buf[at + E_FLAGS] = f.flags;
  view.setUint32(at + E_VOLUME, f.volume, true);
  writeU64(view, at + E_OFFSET, f.offset);
  writeNeedleLength(view, at + E_LENGTH, f.length, f.meta);
  writeU64(view, at + E_EXPIRES, f.expiresAt);
  view.setUint32(at + E_MODIFIED, f.modified, true);
  buf.set(key, at + ENTRY_HEADER_SIZE);
  view.setUint32(at + E_CRC, entryCrc(buf, at, key.length), true);
  return size;
}

/** CRC of an entry at buf[at..]: bytes 0..47 and the key. */
export function entryCrc(buf: Uint8Array, at: number, keyLength: number): number {
  const c = crc32Range(buf, at, at + E_CRC);
  return crc32Range(buf, at + ENTRY_HEADER_SIZE, at + ENTRY_HEADER_SIZE + keyLength, c);
}

// A table-driven CRC-32 (IEEE, reflected, as zlib) over a range of a buffer. The lookup path
// uses it instead of zlib.crc32 because the entry CRC covers two ranges of the read buffer
// (bytes 0..47 and the key) and zlib.crc32 takes whole views only: a subarray per check would
// be an allocation per lookup. Pinned to zlib.crc32 by test/hash_index.test.ts.
// Slice-by-4: four 256-entry tables, table t = the CRC of a byte followed by t zero bytes;
// twice as fast as the byte-at-a-time loop on a 72-byte entry.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256 * 4);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let j = 1; j < 4; j++) {
      const p = t[(j - 1) * 256 + n]!;
      t[j * 256 + n] = (t[p & 0xff]! ^ (p >>> 8)) >>> 0;
    }
  }
  return t;
})();

export function crc32Range(buf: Uint8Array, from: number, to: number, previous = 0): number {
  const t = CRC_TABLE;
  let c = ~previous;
  let i = from;
  for (; i + 4 <= to; i += 4) {
    c ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    c = t[768 + (c & 0xff)]! ^ t[512 + ((c >>> 8) & 0xff)]! ^ t[256 + ((c >>> 16) & 0xff)]! ^ t[c >>> 24]!;
  }
  for (; i < to; i++) c = t[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
