// The bytes of wal.log (docs/formats.md §WAL), shared by the writer, the reader and compaction.
// Owns: the header layout, the record frame `length u32 | crc32 u32 | payload`, and the CBOR
// payload `[lsn, timeMs, kind, ops, batchFirstLsn?, redo?]` with positional ops. Snapshot chunks
// (kind 1) hold SETs only; redo needles come with group-committed records only.
// Invariants:
//  - every record this module encodes decodes back to an equal record (keys come back as plain
//    Uint8Array copies, never views into the caller's buffer);
//  - decoding never throws: anything that is not a well-formed record is a typed failure, which
//    the reader treats as the end of the log;
//  - encoding refuses (StoreError) a record that decoding would reject, because such a record
//    would silently cut off every record after it on the next open.
import { crc32 } from './checksum.js';
import { Encoder } from 'cbor-x';
import { canaries } from '../runtime/canary.js';
import { GuardKind, OpCode, type NeedleAddress, type Op, type RedoNeedle, type SetOp, type WalRecord } from './types.js';
import { StoreError } from '../runtime/errors.js';

export const WAL_HEADER_SIZE = 32;
export const WAL_RECORD_HEADER_SIZE = 8;
export const WAL_MAX_PAYLOAD = 64 * 1024 * 1024;
export const WAL_MAGIC = 'BRISEWAL';
export const WAL_VERSION = 1;
/** Ops per snapshot chunk (kind 1) written by compaction. */
export const WAL_SNAPSHOT_CHUNK_OPS = 4096;
/** Hard limit of a key (formats.md §Keys). */
export const WAL_MAX_KEY_LENGTH = 65535;


// Positional arrays, no record structures, no tag 64 on byte strings: the payload is plain CBOR
// that any decoder reads without shared state (STYLE.md: persisted data decodes alone).
const codec = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true });

const MAGIC_BYTES = new TextEncoder().encode(WAL_MAGIC);

export function encodeWalHeader(snapshotLsn: number): Uint8Array {
  assertLsn(snapshotLsn, 'snapshot LSN');
  const buf = new Uint8Array(WAL_HEADER_SIZE);
  const view = new DataView(buf.buffer);
  buf.set(MAGIC_BYTES, 0);
  view.setUint32(8, WAL_VERSION, true);
  view.setBigUint64(16, BigInt(snapshotLsn), true);
  view.setUint32(28, crc32(buf.subarray(0, 28)), true);
  return buf;
}

/** null when the buffer is not a valid header (short, magic, version, CRC, reserved bytes). */
export function decodeWalHeader(buf: Uint8Array): { snapshotLsn: number } | null {
  if (buf.length < WAL_HEADER_SIZE) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, WAL_HEADER_SIZE);
  for (let i = 0; i < MAGIC_BYTES.length; i++) if (buf[i] !== MAGIC_BYTES[i]) return null;
  if (view.getUint32(28, true) !== crc32(buf.subarray(0, 28))) return null;
  if (view.getUint32(8, true) !== WAL_VERSION) return null;
  if (view.getUint32(12, true) !== 0 || view.getUint32(24, true) !== 0) return null;
  const lsn = view.getBigUint64(16, true);
  if (lsn > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { snapshotLsn: Number(lsn) };
}

/**
 * A record as the index and the followers take it: its redo needles are in wal.log (and the
 * volume log's copy of its bytes) for a restart's redo; nothing else reads them.
 */
export function withoutRedo(r: WalRecord): WalRecord {
  if (r.redo === undefined) return r;
  const { redo: _, ...rest } = r;
  return rest;
}

/** The CBOR payload alone. Throws BAD_ARGUMENT for a record that would not decode. */
export function encodePayload(record: WalRecord): Uint8Array {
  return encodeCbor(record).slice();
}

/**
 * The framed record: `len | crc | payload`. BATCH_TOO_LARGE when the payload is over
 * WAL_MAX_PAYLOAD, BAD_ARGUMENT when the record is malformed.
 */
export function encodeRecord(record: WalRecord): Uint8Array {
  const payload = encodeCbor(record);
  if (payload.length > WAL_MAX_PAYLOAD) {
    throw new StoreError(
      'BATCH_TOO_LARGE',
      `request too large: one write may log at most ${WAL_MAX_PAYLOAD} bytes (keys and addresses); this one needs ${payload.length}`,
    );
  }
  const frame = new Uint8Array(WAL_RECORD_HEADER_SIZE + payload.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, payload.length, true);
  view.setUint32(4, crc32(payload), true);
  frame.set(payload, WAL_RECORD_HEADER_SIZE);
  return frame;
}

export type DecodeFailure = 'short' | 'length' | 'checksum' | 'decode';
export type DecodeResult =
  | { ok: true; record: WalRecord; size: number }
  | { ok: false; reason: DecodeFailure };

/**
 * Decodes the record framed at `offset`. 'short' means the buffer ends before the frame does
 * (when at least the 8-byte frame header is there, its length is valid). The CRC is checked
 * unless the skipChecksum canary is on.
 */
export function decodeRecord(buf: Uint8Array, offset: number): DecodeResult {
  const avail = buf.length - offset;
  if (avail < WAL_RECORD_HEADER_SIZE) return { ok: false, reason: 'short' };
  const view = new DataView(buf.buffer, buf.byteOffset + offset, WAL_RECORD_HEADER_SIZE);
  const n = view.getUint32(0, true);
  if (n === 0 || n > WAL_MAX_PAYLOAD) return { ok: false, reason: 'length' };
  if (avail < WAL_RECORD_HEADER_SIZE + n) return { ok: false, reason: 'short' };
  const start = offset + WAL_RECORD_HEADER_SIZE;
  const payload = buf.subarray(start, start + n);
  // canary skipChecksum: the one place a WAL record's CRC is checked.
  if (!canaries.skipChecksum && crc32(payload) !== view.getUint32(4, true)) {
    return { ok: false, reason: 'checksum' };
  }
  const record = decodePayload(payload);
  if (record === null) return { ok: false, reason: 'decode' };
  return { ok: true, record, size: WAL_RECORD_HEADER_SIZE + n };
}

/** The record in a CBOR payload, or null when it does not decode to the documented shape. */
export function decodePayload(payload: Uint8Array): WalRecord | null {
  let value: unknown;
  try {
    value = codec.decode(payload);
  } catch {
    return null;
  }
  return toRecord(value);
}

// ---- encoding helpers ----

function encodeCbor(record: WalRecord): Uint8Array {
  assertLsn(record.lsn, 'lsn');
  assertUint(record.timeMs, 'timeMs');
  if (record.kind !== 0 && record.kind !== 1) bad(`kind ${String(record.kind)}`);
  if (!Array.isArray(record.ops)) bad('ops is not an array');
  const ops = record.ops.map((op) => opToArray(op, record.kind));
  const redo = record.redo ?? [];
  if (redo.length > 0 && (record.kind !== 0 || record.batchFirstLsn === undefined)) bad('redo needles outside a group-committed record');
  // The encoder reuses its output buffer: callers copy before the next encode.
  if (record.batchFirstLsn === undefined) return codec.encode([record.lsn, record.timeMs, record.kind, ops]);
  assertUint(record.batchFirstLsn, 'batchFirstLsn');
  if (record.batchFirstLsn > record.lsn) bad(`batchFirstLsn ${record.batchFirstLsn} after lsn ${record.lsn}`);
  if (redo.length === 0) return codec.encode([record.lsn, record.timeMs, record.kind, ops, record.batchFirstLsn]);
  return codec.encode([record.lsn, record.timeMs, record.kind, ops, record.batchFirstLsn, redo.map(redoToArray)]);
}

/** `[volume id, offset, expires at, key, value]`: the needle is rebuilt from them byte for byte. */
function redoToArray(n: RedoNeedle): unknown[] {
  for (const [v, what] of [[n.volume, 'redo volume'], [n.offset, 'redo offset'], [n.expiresAt, 'redo expiresAt']] as const) assertUint(v, what);
  assertKey(n.key);
  if (!(n.value instanceof Uint8Array)) bad('redo value is not a Uint8Array');
  return [n.volume, n.offset, n.expiresAt, n.key, n.value];
}

/** A needle with a metadata section names its length as one more field (older records have none). */
function withMeta(fields: unknown[], meta: number | undefined): unknown[] {
  if (meta === undefined || meta === 0) return fields;
  assertUint(meta, 'meta');
  fields.push(meta);
  return fields;
}

/**
 * The address of a SET, SET_IF or MOVE_IF: volume, offset, length from index `from`, and the
 * optional metadata length at index `at` (the op's last field).
 */
function addressFields(a: unknown[], at: number, from = 2): NeedleAddress | null {
  const [volume, offset, length] = [a[from], a[from + 1], a[from + 2]];
  if (!isUint(volume) || !isUint(offset) || !isUint(length)) return null;
  if (a.length === at) return { volume, offset, length };
  const meta = a[at];
  if (a.length !== at + 1 || !isUint(meta) || meta === 0) return null;
  return { volume, offset, length, meta };
}

function opToArray(op: Op, kind: 0 | 1): unknown[] {
  if (kind === 1 && op.code !== OpCode.Set && op.code !== OpCode.Retire) bad(`snapshot chunk holds op code ${op.code}`);
  if (op.code === OpCode.Flush) return [OpCode.Flush];
  if (op.code === OpCode.Retire) {
    assertUint(op.volume, 'volume');
    return [OpCode.Retire, op.volume];
  }
  assertKey(op.key);
  switch (op.code) {
    case OpCode.Set: {
      const { volume, offset, length } = op.address;
      for (const [v, what] of [[volume, 'volume'], [offset, 'offset'], [length, 'length'], [op.expiresAt, 'expiresAt']] as const) {
        assertUint(v, what);
      }
      const set = [OpCode.Set, op.key, volume, offset, length, op.expiresAt];
      if (op.modifiedSec === undefined) return withMeta(set, op.address.meta);
      if (kind !== 1) bad('a SET with a modified time outside a snapshot chunk');
      // With its modified time the metadata length is always there (0: none).
      assertUint(op.modifiedSec, 'modifiedSec');
      return [...set, op.address.meta ?? 0, op.modifiedSec];
    }
    case OpCode.Del:
      return [OpCode.Del, op.key];
    case OpCode.Expire:
      assertUint(op.expiresAt, 'expiresAt');
      return [OpCode.Expire, op.key, op.expiresAt];
    case OpCode.DelIf:
      assertUint(op.volume, 'volume');
      assertUint(op.offset, 'offset');
      return [OpCode.DelIf, op.key, op.volume, op.offset];
    case OpCode.SetIf: {
      const { volume, offset, length } = op.address;
      const fields = [[volume, 'volume'], [offset, 'offset'], [length, 'length'], [op.expiresAt, 'expiresAt'], [op.flags, 'flags'], [op.expectVolume, 'expectVolume'], [op.expectOffset, 'expectOffset']] as const;
      for (const [v, what] of fields) assertUint(v, what);
      if (op.flags > 15) bad(`SET_IF flags ${op.flags}`);
      return withMeta([OpCode.SetIf, op.key, volume, offset, length, op.expiresAt, op.flags, op.expectVolume, op.expectOffset], op.address.meta);
    }
    case OpCode.MoveIf: {
      const { volume, offset, length } = op.address;
      const fields = [[op.fromVolume, 'fromVolume'], [op.fromOffset, 'fromOffset'], [volume, 'volume'], [offset, 'offset'], [length, 'length']] as const;
      for (const [v, what] of fields) assertUint(v, what);
      return withMeta([OpCode.MoveIf, op.key, op.fromVolume, op.fromOffset, volume, offset, length], op.address.meta);
    }
    case OpCode.Guard:
      if (op.kind === GuardKind.Absent) return [OpCode.Guard, op.key, GuardKind.Absent];
      if (op.kind !== GuardKind.Live && op.kind !== GuardKind.Same) bad(`GUARD kind ${String(op.kind)}`);
      for (const [v, what] of [[op.volume, 'volume'], [op.offset, 'offset'], [op.expiresAt, 'expiresAt']] as const) assertUint(v, what);
      return [OpCode.Guard, op.key, op.kind, op.volume, op.offset, op.expiresAt];
    default:
      return bad(`unknown op code ${String((op as { code: unknown }).code)}`);
  }
}

function assertKey(key: unknown): void {
  if (!(key instanceof Uint8Array)) bad('key is not a Uint8Array');
  if (key.length === 0 || key.length > WAL_MAX_KEY_LENGTH) bad(`key length ${key.length}`);
}

function assertUint(v: unknown, what: string): void {
  if (!isUint(v)) bad(`${what} is not a safe non-negative integer: ${String(v)}`);
}

function assertLsn(v: unknown, what: string): void {
  assertUint(v, what);
}

function bad(why: string): never {
  throw new StoreError('BAD_ARGUMENT', `malformed WAL record: ${why}`);
}

// ---- decoding helpers: every check returns null, never throws ----

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function toKey(v: unknown): Uint8Array | null {
  if (!(v instanceof Uint8Array) || v.length === 0 || v.length > WAL_MAX_KEY_LENGTH) return null;
  // A copy: cbor-x hands out views into the source buffer, which the reader reuses, and a
  // plain Uint8Array (not a Buffer) so a round trip is exact.
  const key = new Uint8Array(v.length);
  key.set(v);
  return key;
}

function toRecord(v: unknown): WalRecord | null {
  if (!Array.isArray(v) || v.length < 4 || v.length > 6) return null;
  const [lsn, timeMs, kind, rawOps, batchFirstLsn, rawRedo] = v as unknown[];
  if (!isUint(lsn) || !isUint(timeMs) || (kind !== 0 && kind !== 1)) return null;
  if (!Array.isArray(rawOps)) return null;
  const ops: Op[] = [];
  for (const raw of rawOps as unknown[]) {
    const op = toOp(raw);
    if (op === null || (kind === 1 && op.code !== OpCode.Set && op.code !== OpCode.Retire)) return null;
    // A modified time is a snapshot chunk's: a committed SET's is its record's time.
    if (kind === 0 && op.code === OpCode.Set && op.modifiedSec !== undefined) return null;
    ops.push(op);
  }
  if (batchFirstLsn === undefined) return { lsn, timeMs, kind, ops };
  if (!isUint(batchFirstLsn) || batchFirstLsn > lsn) return null;
  if (rawRedo === undefined) return { lsn, timeMs, kind, ops, batchFirstLsn };
  if (kind !== 0 || !Array.isArray(rawRedo) || rawRedo.length === 0) return null;
  const redo: RedoNeedle[] = [];
  for (const raw of rawRedo as unknown[]) {
    const n = toRedo(raw);
    if (n === null) return null;
    redo.push(n);
  }
  return { lsn, timeMs, kind, ops, batchFirstLsn, redo };
}

function toRedo(v: unknown): RedoNeedle | null {
  if (!Array.isArray(v) || v.length !== 5) return null;
  const [volume, offset, expiresAt, rawKey, rawValue] = v as unknown[];
  if (!isUint(volume) || !isUint(offset) || !isUint(expiresAt) || !(rawValue instanceof Uint8Array)) return null;
  const key = toKey(rawKey);
  if (key === null) return null;
  // A copy, as toKey's: the reader reuses the buffer the payload was read into.
  const value = new Uint8Array(rawValue.length);
  value.set(rawValue);
  return { volume, offset, expiresAt, key, value };
}

/** `[1, key, volume, offset, length, expires at, metadata length (0: none), modified]`. */
function setWithModified(a: unknown[], key: Uint8Array): SetOp | null {
  const [, , volume, offset, length, expiresAt, meta, modifiedSec] = a;
  if (!isUint(volume) || !isUint(offset) || !isUint(length) || !isUint(expiresAt) || !isUint(meta) || !isUint(modifiedSec)) return null;
  const address = meta === 0 ? { volume, offset, length } : { volume, offset, length, meta };
  return { code: OpCode.Set, key, address, expiresAt, modifiedSec };
}

function toOp(v: unknown): Op | null {
  if (!Array.isArray(v)) return null;
  const a = v as unknown[];
  if (a[0] === OpCode.Flush) return a.length === 1 ? { code: OpCode.Flush } : null;
  if (a[0] === OpCode.Retire) return a.length === 2 && isUint(a[1]) ? { code: OpCode.Retire, volume: a[1] } : null;
  if (a.length < 2) return null;
  const key = toKey(a[1]);
  if (key === null) return null;
  switch (a[0]) {
    case OpCode.Set:
    {
      if (a.length === 8) return setWithModified(a, key);
      const address = a.length === 6 || a.length === 7 ? addressFields(a, 6) : null;
      if (address === null || !isUint(a[5])) return null;
      return { code: OpCode.Set, key, address, expiresAt: a[5] };
    }
    case OpCode.Del:
      return a.length === 2 ? { code: OpCode.Del, key } : null;
    case OpCode.Expire:
      if (a.length !== 3 || !isUint(a[2])) return null;
      return { code: OpCode.Expire, key, expiresAt: a[2] };
    case OpCode.DelIf:
      if (a.length !== 4 || !isUint(a[2]) || !isUint(a[3])) return null;
      return { code: OpCode.DelIf, key, volume: a[2], offset: a[3] };
    case OpCode.SetIf: {
      if (a.length !== 9 && a.length !== 10) return null;
      const [, , , , , expiresAt, flags, expectVolume, expectOffset] = a;
      const address = addressFields(a, 9);
      if (address === null || !isUint(expiresAt)) return null;
      if (!isUint(flags) || flags > 15 || !isUint(expectVolume) || !isUint(expectOffset)) return null;
      return { code: OpCode.SetIf, key, address, expiresAt, flags, expectVolume, expectOffset };
    }
    case OpCode.MoveIf: {
      if (a.length !== 7 && a.length !== 8) return null;
      const [, , fromVolume, fromOffset] = a;
      const address = addressFields(a, 7, 4);
      if (address === null || !isUint(fromVolume) || !isUint(fromOffset)) return null;
      return { code: OpCode.MoveIf, key, fromVolume, fromOffset, address };
    }
    case OpCode.Guard:
      if (a.length === 3 && a[2] === GuardKind.Absent) return { code: OpCode.Guard, key, kind: GuardKind.Absent, volume: 0, offset: 0, expiresAt: 0 };
      if (a.length !== 6 || (a[2] !== GuardKind.Live && a[2] !== GuardKind.Same) || !isUint(a[3]) || !isUint(a[4]) || !isUint(a[5])) return null;
      return { code: OpCode.Guard, key, kind: a[2], volume: a[3], offset: a[4], expiresAt: a[5] };
    default:
      return null;
  }
}
