// The bytes of a volume file (docs/formats.md §Volume file): constants and pure encode/decode,
// shared by the writer (volume_file, drive_volumes) and every reader. No I/O here.
//
// Invariants:
// - every integer is little-endian; every checksum is CRC-32 (IEEE) via `crc32` (checksum.ts);
// - a decoder never trusts a length it cannot represent exactly (u64 fields above
//   Number.MAX_SAFE_INTEGER, or above the limits below, decode as "not a needle");
// - a decoder returns null for anything that is not a well-formed header, never throws, so a
//   scan can step over garbage.
import { crc32 } from './checksum.js';

export const VOLUME_SUPERBLOCK_SIZE = 64;
export const NEEDLE_HEADER_SIZE = 32;
export const NEEDLE_TRAILER_SIZE = 4;
export const NEEDLE_ALIGN = 8;
/** Bytes `B N D L` read as a little-endian u32. */
export const NEEDLE_MAGIC = 0x4c444e42;
/** Version 1: no metadata section. Written for every needle without metadata. */
export const NEEDLE_VERSION = 1;
/** Version 2: a metadata section after the value, its length at header bytes 28..31. */
export const NEEDLE_VERSION_META = 2;
/** Largest metadata section a needle may have (headers of a blob, its digests). */
export const MAX_META_LENGTH = 16 * 1024;
export const VOLUME_VERSION = 1;
export const VOLUME_MAGIC = 'BRISEVOL';

export const NeedleFlag = { Tombstone: 1 } as const;
/** Every flag bit this version knows; a header with any other bit set is not ours. */
const KNOWN_FLAGS = NeedleFlag.Tombstone;

/** Hard key limit: the key length field is a u16. */
export const MAX_KEY_LENGTH = 65535;
/**
 * Largest value a needle may declare. Far above any real value (the design targets <= 1 GB),
 * low enough that offsets stay exact doubles; a header declaring more is garbage.
 */
export const MAX_VALUE_LENGTH = 2 ** 46;
/**
 * Volume ids: `group × 2^20 + seq` fits the u32 field of the superblock. A volume id names its
 * volume group (the members that hold identical copies of it: today one local drive), so a
 * group's writer never needs to coordinate ids with another group's.
 */
export const VOLUME_SEQ_BITS = 20;
export const MAX_VOLUME_SEQ = 2 ** VOLUME_SEQ_BITS - 1;
export const MAX_GROUP_ID = 2 ** (32 - VOLUME_SEQ_BITS) - 1;


/** A DataView over exactly buf's bytes (shared by the log volume format). */
export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function writeU64(dv: DataView, at: number, n: number): void {
  dv.setUint32(at, n % 2 ** 32, true);
  dv.setUint32(at + 4, Math.floor(n / 2 ** 32), true);
}

/** A u64 as a number, or -1 when it is not a safe integer (a lie from disk). */
export function readU64(dv: DataView, at: number): number {
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  if (hi >= 2 ** 21) return -1;
  return hi * 2 ** 32 + lo;
}

function isU64Safe(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

// ---- superblock ------------------------------------------------------------------------

export function encodeSuperblock(volumeId: number, createdAt: number): Uint8Array {
  if (!Number.isInteger(volumeId) || volumeId < 0 || volumeId > 0xffffffff) {
    throw new RangeError(`volume id out of range: ${volumeId}`);
  }
  if (!isU64Safe(createdAt)) throw new RangeError(`createdAt out of range: ${createdAt}`);
  const buf = new Uint8Array(VOLUME_SUPERBLOCK_SIZE);
  const dv = view(buf);
  buf.set(new TextEncoder().encode(VOLUME_MAGIC), 0);
  dv.setUint32(8, VOLUME_VERSION, true);
  dv.setUint32(12, volumeId, true);
  writeU64(dv, 16, createdAt);
  dv.setUint32(60, crc32(buf.subarray(0, 60)), true);
  return buf;
}

/** null when the magic, version or CRC is wrong (or the buffer is short). */
export function decodeSuperblock(buf: Uint8Array): { volumeId: number; createdAt: number } | null {
  if (buf.length < VOLUME_SUPERBLOCK_SIZE) return null;
  const dv = view(buf);
  for (let i = 0; i < VOLUME_MAGIC.length; i++) {
    if (buf[i] !== VOLUME_MAGIC.charCodeAt(i)) return null;
  }
  if (dv.getUint32(8, true) !== VOLUME_VERSION) return null;
  if (dv.getUint32(60, true) !== crc32(buf.subarray(0, 60))) return null;
  const createdAt = readU64(dv, 16);
  if (createdAt < 0) return null;
  return { volumeId: dv.getUint32(12, true), createdAt };
}

// ---- needle header ---------------------------------------------------------------------

export interface NeedleHeader {
  flags: number;
  keyLength: number;
  valueLength: number;
  expiresAt: number;
  /** Bytes of the metadata section (0 for a version-1 needle). */
  metaLength: number;
}

/** Throws RangeError on arguments no needle may have: callers validate user input first. */
function checkNeedleFields(keyLength: number, valueLength: number, expiresAt: number, flags: number): void {
  if (keyLength < 1 || keyLength > MAX_KEY_LENGTH) throw new RangeError(`key length out of range: ${keyLength}`);
  if (!isU64Safe(valueLength) || valueLength > MAX_VALUE_LENGTH) {
    throw new RangeError(`value length out of range: ${valueLength}`);
  }
  if (!isU64Safe(expiresAt)) throw new RangeError(`expiresAt out of range: ${expiresAt}`);
  if (!Number.isInteger(flags) || (flags & ~KNOWN_FLAGS) !== 0) throw new RangeError(`unknown flags: ${flags}`);
  if ((flags & NeedleFlag.Tombstone) !== 0 && valueLength !== 0) {
    throw new RangeError('a tombstone needle has no value');
  }
}

/**
 * The header and key (32 + k bytes), header CRC filled in: version 1 without metadata, version 2
 * (metadata length at bytes 28..31) with.
 */
export function encodeNeedleHeader(key: Uint8Array, valueLength: number, expiresAt: number, flags: number, metaLength = 0): Uint8Array {
  checkNeedleFields(key.length, valueLength, expiresAt, flags);
  if (!Number.isInteger(metaLength) || metaLength < 0 || metaLength > MAX_META_LENGTH) throw new RangeError(`metadata length out of range: ${metaLength}`);
  const buf = new Uint8Array(NEEDLE_HEADER_SIZE + key.length);
  const dv = view(buf);
  dv.setUint32(0, NEEDLE_MAGIC, true);
  buf[4] = metaLength === 0 ? NEEDLE_VERSION : NEEDLE_VERSION_META;
  buf[5] = flags;
  dv.setUint16(6, key.length, true);
  writeU64(dv, 8, valueLength);
  writeU64(dv, 16, expiresAt);
  dv.setUint32(28, metaLength, true);
  buf.set(key, NEEDLE_HEADER_SIZE);
  dv.setUint32(24, headerCrc(buf.subarray(0, NEEDLE_HEADER_SIZE), key), true);
  return buf;
}

/**
 * CRC of header bytes 0..23 followed by the key; for version 2, of bytes 0..23, then 28..31 (the
 * metadata length, which a scan trusts as it trusts the other lengths), then the key.
 */
export function headerCrc(header: Uint8Array, key: Uint8Array): number {
  const first = crc32(header.subarray(0, 24));
  return crc32(key, header[4] === NEEDLE_VERSION_META ? crc32(header.subarray(28, 32), first) : first);
}

/**
 * Decodes the first 32 bytes of a needle. null when it is not a well-formed header; when
 * `key` is given, also null when the key has the wrong length or the header CRC fails.
 */
export function decodeNeedleHeader(buf: Uint8Array, key?: Uint8Array): NeedleHeader | null {
  if (buf.length < NEEDLE_HEADER_SIZE) return null;
  const dv = view(buf);
  const version = buf[4];
  if (dv.getUint32(0, true) !== NEEDLE_MAGIC || (version !== NEEDLE_VERSION && version !== NEEDLE_VERSION_META)) return null;
  const flags = buf[5] ?? 0;
  const keyLength = dv.getUint16(6, true);
  const valueLength = readU64(dv, 8);
  const expiresAt = readU64(dv, 16);
  if ((flags & ~KNOWN_FLAGS) !== 0 || keyLength === 0) return null;
  if (valueLength < 0 || valueLength > MAX_VALUE_LENGTH || expiresAt < 0) return null;
  if ((flags & NeedleFlag.Tombstone) !== 0 && valueLength !== 0) return null;
  const metaLength = dv.getUint32(28, true);
  if (version === NEEDLE_VERSION ? metaLength !== 0 : metaLength === 0 || metaLength > MAX_META_LENGTH) return null;
  if ((flags & NeedleFlag.Tombstone) !== 0 && metaLength !== 0) return null;
  if (key !== undefined) {
    if (key.length !== keyLength) return null;
    if (dv.getUint32(24, true) !== headerCrc(buf, key)) return null;
  }
  return { flags, keyLength, valueLength, expiresAt, metaLength };
}

/**
 * A plain needle (version 1: no metadata) written whole into `buf` at `at`, which must have
 * needleLength(key, value) bytes there: what appendMany writes, and what a redo needle is
 * rebuilt into, byte for byte. Answers its length.
 */
export function writePlainNeedle(buf: Uint8Array, at: number, key: Uint8Array, value: Uint8Array, expiresAt: number, flags = 0): number {
  const header = encodeNeedleHeader(key, value.length, expiresAt, flags, 0);
  buf.set(header, at);
  buf.set(value, at + header.length);
  const end = at + header.length + value.length;
  view(buf).setUint32(end, crc32(value, crc32(header)) >>> 0, true);
  return end + NEEDLE_TRAILER_SIZE - at;
}

/** The trailer: CRC-32 of every needle byte before it, little-endian. */
export function encodeTrailer(crc: number): Uint8Array {
  const buf = new Uint8Array(NEEDLE_TRAILER_SIZE);
  view(buf).setUint32(0, crc >>> 0, true);
  return buf;
}

export function decodeTrailer(buf: Uint8Array): number {
  return view(buf).getUint32(0, true);
}

/** Whole needle: header, key, value, metadata, trailer (padding excluded). */
export function needleLength(keyLength: number, valueLength: number, metaLength = 0): number {
  return NEEDLE_HEADER_SIZE + keyLength + valueLength + metaLength + NEEDLE_TRAILER_SIZE;
}

export function alignUp(n: number): number {
  return Math.ceil(n / NEEDLE_ALIGN) * NEEDLE_ALIGN;
}

// ---- names and ids ---------------------------------------------------------------------

/** `PREFIX-NNNNNN.data`: the id in decimal, zero-padded to at least 6 digits (volumes, log volumes). */
export function numberedFileName(prefix: string, id: number): string {
  return `${prefix}-${String(id).padStart(6, '0')}.data`;
}

/** The id in a `PREFIX-NNNNNN.data` name (canonical, u32), or null for any other name. */
export function parseNumberedFileName(prefix: string, name: string): number | null {
  const m = /^([a-z]+)-(\d{6,10})\.data$/.exec(name);
  if (m === null || m[1] !== prefix || m[2] === undefined) return null;
  const id = Number(m[2]);
  return id <= 0xffffffff && numberedFileName(prefix, id) === name ? id : null;
}

export function volumeFileName(id: number): string {
  return numberedFileName('vol', id);
}

/** The id in a volume file name, or null for any other name. */
export function parseVolumeFileName(name: string): number | null {
  return parseNumberedFileName('vol', name);
}

export function volumeIdOf(group: number, seq: number): number {
  if (!Number.isInteger(group) || group < 0 || group > MAX_GROUP_ID) {
    throw new RangeError(`volume group out of range: ${group}`);
  }
  if (!Number.isInteger(seq) || seq < 0 || seq > MAX_VOLUME_SEQ) throw new RangeError(`volume seq out of range: ${seq}`);
  return group * 2 ** VOLUME_SEQ_BITS + seq;
}

export function groupOfVolume(volumeId: number): number {
  return Math.floor(volumeId / 2 ** VOLUME_SEQ_BITS);
}

export function volumeSeqOf(volumeId: number): number {
  return volumeId % 2 ** VOLUME_SEQ_BITS;
}
