// The bytes of a log volume (docs/formats.md §Log volumes): the superblock fields a data volume
// leaves zero, and the log needle (needle version 3: a run of WAL record frames). Pure encode
// and decode, shared by the volume log's writer (log_volume.ts) and the rebuild (log_rebuild.ts).
// Invariants:
// - a log needle's value is whole WAL frames, never a part of one;
// - decoders return null for anything malformed, never throw, so a scan can step over garbage.
import { crc32 } from './checksum.js';
import {
  NEEDLE_HEADER_SIZE,
  NEEDLE_MAGIC,
  NEEDLE_TRAILER_SIZE,
  VOLUME_SUPERBLOCK_SIZE,
  decodeSuperblock,
  encodeSuperblock,
  numberedFileName,
  parseNumberedFileName,
  readU64,
  view,
  writeU64,
} from './volume_format.js';
import { WAL_RECORD_HEADER_SIZE } from './wal_format.js';

/** Needle version of a log needle: no key, the first LSN where a value needle has its expiry. */
export const LOG_NEEDLE_VERSION = 3;
/** Superblock byte 32: the kind of volume (0 = data, as every earlier version wrote). */
export const LOG_VOLUME_KIND = 1;
/** A log needle's frames stay under this: a bigger group commit is cut into several needles. */
export const LOG_NEEDLE_MAX_VALUE = 8 * 1024 * 1024;
/** Frames per log needle (the header's u32 field is wider; this keeps one needle's parse short). */
export const LOG_NEEDLE_MAX_RECORDS = 65_535;
/** A log volume takes no more needles past this size; the next file of the generation does. */
export const LOG_VOLUME_ROTATE_BYTES = 64 * 1024 * 1024;

export interface LogSuperblock {
  id: number;
  createdAt: number;
  /** The WAL snapshot LSN its generation copies. */
  baseLsn: number;
  /** The first file of its generation (written whole, then renamed in). */
  base: boolean;
}

export function logVolumeFileName(id: number): string {
  return numberedFileName('log', id);
}

/** The id in a log volume's file name, or null for any other name. */
export function parseLogVolumeFileName(name: string): number | null {
  return parseNumberedFileName('log', name);
}

export function encodeLogSuperblock(sb: LogSuperblock): Uint8Array {
  if (!Number.isSafeInteger(sb.baseLsn) || sb.baseLsn < 0) throw new RangeError(`base LSN out of range: ${sb.baseLsn}`);
  const buf = encodeSuperblock(sb.id, sb.createdAt);
  const dv = view(buf);
  writeU64(dv, 24, sb.baseLsn);
  buf[32] = LOG_VOLUME_KIND;
  buf[33] = sb.base ? 1 : 0;
  dv.setUint32(60, crc32(buf.subarray(0, 60)), true);
  return buf;
}

/** null when it is not a valid superblock of a log volume. */
export function decodeLogSuperblock(buf: Uint8Array): LogSuperblock | null {
  const sb = decodeSuperblock(buf);
  if (sb === null || buf[32] !== LOG_VOLUME_KIND || (buf[33] !== 0 && buf[33] !== 1)) return null;
  const baseLsn = readU64(view(buf), 24);
  if (baseLsn < 0) return null;
  return { id: sb.volumeId, createdAt: sb.createdAt, baseLsn, base: buf[33] === 1 };
}

export interface LogNeedleHeader {
  /** Bytes of frames. */
  valueLength: number;
  firstLsn: number;
  records: number;
}

function logHeaderCrc(header: Uint8Array): number {
  return crc32(header.subarray(28, 32), crc32(header.subarray(0, 24)));
}

/** The whole needle: header, the frames, trailer (padding excluded). */
export function encodeLogNeedle(frames: Uint8Array, firstLsn: number, records: number): Uint8Array {
  if (frames.length === 0 || frames.length > LOG_NEEDLE_MAX_VALUE + WAL_MAX_FRAME_SLACK) throw new RangeError(`log needle of ${frames.length} bytes`);
  if (!Number.isInteger(records) || records < 1 || records > LOG_NEEDLE_MAX_RECORDS) throw new RangeError(`log needle of ${records} records`);
  const buf = new Uint8Array(NEEDLE_HEADER_SIZE + frames.length + NEEDLE_TRAILER_SIZE);
  const dv = view(buf);
  dv.setUint32(0, NEEDLE_MAGIC, true);
  buf[4] = LOG_NEEDLE_VERSION;
  writeU64(dv, 8, frames.length);
  writeU64(dv, 16, firstLsn);
  dv.setUint32(28, records, true);
  dv.setUint32(24, logHeaderCrc(buf), true);
  buf.set(frames, NEEDLE_HEADER_SIZE);
  const end = NEEDLE_HEADER_SIZE + frames.length;
  dv.setUint32(end, crc32(buf.subarray(0, end)), true);
  return buf;
}

/**
 * One WAL record may be up to 64 MiB (its payload limit): a needle holding such a record alone
 * is allowed past LOG_NEEDLE_MAX_VALUE, never past this.
 */
export const WAL_MAX_FRAME_SLACK = 64 * 1024 * 1024 + WAL_RECORD_HEADER_SIZE;

/** The header of a log needle (first 32 bytes), or null when it is not a valid one. */
export function decodeLogNeedleHeader(buf: Uint8Array): LogNeedleHeader | null {
  if (buf.length < NEEDLE_HEADER_SIZE) return null;
  const dv = view(buf);
  if (dv.getUint32(0, true) !== NEEDLE_MAGIC || buf[4] !== LOG_NEEDLE_VERSION || buf[5] !== 0 || dv.getUint16(6, true) !== 0) return null;
  if (dv.getUint32(24, true) !== logHeaderCrc(buf)) return null;
  const valueLength = readU64(dv, 8);
  const firstLsn = readU64(dv, 16);
  const records = dv.getUint32(28, true);
  if (valueLength < 1 || valueLength > LOG_NEEDLE_MAX_VALUE + WAL_MAX_FRAME_SLACK || firstLsn < 0) return null;
  if (records < 1 || records > LOG_NEEDLE_MAX_RECORDS) return null;
  return { valueLength, firstLsn, records };
}

/** Whether the whole needle (header already decoded) ends with the right trailer CRC. */
export function logNeedleIntact(needle: Uint8Array): boolean {
  if (needle.length < NEEDLE_HEADER_SIZE + NEEDLE_TRAILER_SIZE) return false;
  const end = needle.length - NEEDLE_TRAILER_SIZE;
  return view(needle).getUint32(end, true) === crc32(needle.subarray(0, end));
}

export function logNeedleLength(valueLength: number): number {
  return NEEDLE_HEADER_SIZE + valueLength + NEEDLE_TRAILER_SIZE;
}

/**
 * Cuts a run of whole WAL frames into pieces of at most LOG_NEEDLE_MAX_VALUE bytes and
 * LOG_NEEDLE_MAX_RECORDS frames (a single bigger frame is a piece of its own), at frame
 * boundaries read from each frame's length field. Returns [start, end, frame count] triples.
 */
export function splitFrames(frames: Uint8Array): Array<[number, number, number]> {
  const dv = view(frames);
  const pieces: Array<[number, number, number]> = [];
  let start = 0;
  let at = 0;
  let count = 0;
  while (at < frames.length) {
    if (at + WAL_RECORD_HEADER_SIZE > frames.length) throw new RangeError(`a frame is cut short at ${at}`);
    const size = WAL_RECORD_HEADER_SIZE + dv.getUint32(at, true);
    if (at + size > frames.length) throw new RangeError(`a frame is cut short at ${at}`);
    if (count > 0 && (at + size - start > LOG_NEEDLE_MAX_VALUE || count === LOG_NEEDLE_MAX_RECORDS)) {
      pieces.push([start, at, count]);
      start = at;
      count = 0;
    }
    at += size;
    count += 1;
  }
  if (count > 0) pieces.push([start, at, count]);
  return pieces;
}

export { VOLUME_SUPERBLOCK_SIZE };
