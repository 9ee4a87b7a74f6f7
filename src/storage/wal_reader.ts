// Reading wal.log (docs/formats.md §WAL): the header, then records in order until the first
// one that is short, has a bad length or CRC, does not decode, or breaks the sequence.
// Owns: the scan rules shared by open (wal_writer), recovery of the index (replayInto) and
// compaction (scanFrames).
// Invariants:
//  - the file is read in bounded chunks (default 4 MiB; one record may need up to
//    8 + WAL_MAX_PAYLOAD bytes), never whole;
//  - only the bytes present when the scan starts are read (fileSize is taken once);
//  - sequence: zero or more snapshot chunks (kind 1, lsn = S) first, then kind-0 records with
//    lsn = S+1, S+2, ...; anything else ends the log;
//  - errors leave as StoreError (CORRUPT for a bad header, IO_ERROR/NO_SPACE/NOT_FOUND for the
//    file system), never untyped.
import type { FileHandle, Fs } from '../runtime/fs.js';
import { fsErrorCode } from '../runtime/fs.js';
import { type WalRecord } from './types.js';
import {
  WAL_HEADER_SIZE,
  WAL_MAX_PAYLOAD,
  WAL_RECORD_HEADER_SIZE,
  decodeRecord,
  decodeWalHeader,
} from './wal_format.js';
import { StoreError } from '../runtime/errors.js';

export const WAL_READ_CHUNK = 4 * 1024 * 1024;

export interface WalScan {
  snapshotLsn: number;
  records: WalRecord[];
  validEnd: number;
  fileSize: number;
  stopReason?: string;
}

export interface WalScanEnd {
  snapshotLsn: number;
  /** The LSN of the last valid kind-0 record, or snapshotLsn when there is none. */
  lastLsn: number;
  /** The file offset just after the last valid record (the header size for an empty log). */
  validEnd: number;
  fileSize: number;
  /** Why the scan stopped before fileSize: short | length | checksum | decode | sequence. */
  stopReason?: string;
}

/** One valid record and where its frame lies; `frame` is a view valid until the next yield. */
export interface WalFrame {
  record: WalRecord;
  offset: number;
  frame: Uint8Array;
}

export interface ReadWalOptions {
  fromLsn?: number;
  chunkSize?: number;
}

/**
 * Yields the records a reader starting after `fromLsn` needs, in file order: the snapshot chunks
 * when fromLsn < S, then the kind-0 records with lsn > fromLsn. Returns where the log ends.
 */
export function* readWal(fs: Fs, path: string, options: ReadWalOptions = {}): Generator<WalRecord, WalScanEnd> {
  const fromLsn = options.fromLsn ?? 0;
  // The file is owned here (not by an inner generator) so that a consumer that stops early
  // (return()) closes it through this finally.
  const file = openForRead(fs, path);
  try {
    const frames = scanOpenFile(file, options.chunkSize);
    for (;;) {
      const next = frames.next();
      if (next.done === true) return next.value;
      const { record } = next.value;
      if (record.kind === 1 ? fromLsn < record.lsn : record.lsn > fromLsn) yield record;
    }
  } finally {
    file.close();
  }
}

/** Reads the whole log into memory: for tests and small tools, not for recovery of big logs. */
export function scanWal(fs: Fs, path: string, fromLsn = 0): WalScan {
  const records: WalRecord[] = [];
  const end = replayInto(fs, path, fromLsn, (r) => records.push(r));
  const scan: WalScan = { snapshotLsn: end.snapshotLsn, records, validEnd: end.validEnd, fileSize: end.fileSize };
  if (end.stopReason !== undefined) scan.stopReason = end.stopReason;
  return scan;
}

/** Recovery of the index: applies every record after `fromLsn`, in order. */
export function replayInto(fs: Fs, path: string, fromLsn: number, apply: (r: WalRecord) => void): WalScanEnd {
  const it = readWal(fs, path, { fromLsn });
  for (;;) {
    const next = it.next();
    if (next.done === true) return next.value;
    apply(next.value);
  }
}

/** Every valid frame of the log with its offset (compaction copies the bytes as they are). */
export function* scanFrames(fs: Fs, path: string, chunkSize = WAL_READ_CHUNK, limit = Infinity): Generator<WalFrame, WalScanEnd> {
  const file = openForRead(fs, path);
  try {
    return yield* scanOpenFile(file, chunkSize, limit);
  } finally {
    file.close();
  }
}

/** Scans an open handle; reads at most `limit` bytes of the file. */
export function* scanOpenFile(file: FileHandle, chunkSize = WAL_READ_CHUNK, limit = Infinity): Generator<WalFrame, WalScanEnd> {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < WAL_RECORD_HEADER_SIZE) {
    throw new StoreError('BAD_ARGUMENT', `WAL read chunk size ${chunkSize} is below ${WAL_RECORD_HEADER_SIZE}`);
  }
  const fileSize = Math.min(io(file.path, () => file.size()), limit);
  const snapshotLsn = readHeader(file, fileSize);
  const seq = new Sequence(snapshotLsn);
  const chunks = new ChunkReader(file, fileSize, chunkSize);
  let stopReason: string | undefined;
  for (;;) {
    const res = decodeRecord(chunks.buf, chunks.cursor);
    if (!res.ok) {
      if (res.reason === 'short' && chunks.refill()) continue;
      if (res.reason !== 'short' || chunks.position < fileSize) stopReason = res.reason;
      break;
    }
    if (!seq.accept(res.record)) {
      stopReason = 'sequence';
      break;
    }
    const offset = chunks.position;
    const frame = chunks.buf.subarray(chunks.cursor, chunks.cursor + res.size);
    chunks.cursor += res.size;
    yield { record: res.record, offset, frame };
  }
  const end: WalScanEnd = { snapshotLsn, lastLsn: seq.lastLsn, validEnd: chunks.position, fileSize };
  if (stopReason !== undefined) end.stopReason = stopReason;
  return end;
}

// ---- helpers ----

function openForRead(fs: Fs, path: string): FileHandle {
  if (!io(path, () => fs.exists(path))) throw new StoreError('NOT_FOUND', `WAL ${path} does not exist`);
  return io(path, () => fs.open(path, 'read'));
}

function readHeader(file: FileHandle, fileSize: number): number {
  const buf = new Uint8Array(WAL_HEADER_SIZE);
  const n = fileSize < WAL_HEADER_SIZE ? 0 : io(file.path, () => file.read(buf, 0));
  const header = n === WAL_HEADER_SIZE ? decodeWalHeader(buf) : null;
  if (header === null) {
    throw new StoreError('CORRUPT', `WAL ${file.path} has no valid header (size ${fileSize}); refusing to reset it`);
  }
  return header.snapshotLsn;
}

/** The order rule of the log: snapshot chunks at S first, then S+1, S+2, ... */
class Sequence {
  lastLsn: number;
  private seenBatch = false;

  constructor(private readonly snapshotLsn: number) {
    this.lastLsn = snapshotLsn;
  }

  accept(r: WalRecord): boolean {
    if (r.kind === 1) return !this.seenBatch && r.lsn === this.snapshotLsn;
    if (r.lsn !== this.lastLsn + 1) return false;
    this.seenBatch = true;
    this.lastLsn = r.lsn;
    return true;
  }
}

/**
 * A window over the file after the header. `buf` holds file bytes from `base`; `cursor` is the
 * next unread byte in `buf`. `refill` keeps the unread tail, grows the window when one record
 * needs more than a chunk, and reads on; false at the end of the file.
 */
class ChunkReader {
  buf: Uint8Array = new Uint8Array(0);
  cursor = 0;
  private base = WAL_HEADER_SIZE;
  private storage: Uint8Array;

  constructor(private readonly file: FileHandle, private readonly fileSize: number, private readonly chunkSize: number) {
    this.storage = new Uint8Array(Math.min(chunkSize, Math.max(0, fileSize - WAL_HEADER_SIZE)) || WAL_RECORD_HEADER_SIZE);
  }

  /** The file offset of the cursor. */
  get position(): number {
    return this.base + this.cursor;
  }

  refill(): boolean {
    const readFrom = this.base + this.buf.length;
    if (readFrom >= this.fileSize) return false;
    const kept = this.buf.length - this.cursor;
    const need = Math.min(Math.max(this.chunkSize, this.recordSizeAtCursor()), this.fileSize - this.position);
    if (this.storage.length < need) {
      const grown = new Uint8Array(need);
      grown.set(this.buf.subarray(this.cursor));
      this.storage = grown;
    } else {
      this.storage.copyWithin(0, this.cursor, this.buf.length);
    }
    const want = Math.min(this.storage.length - kept, this.fileSize - readFrom);
    const n = io(this.file.path, () => this.file.read(this.storage.subarray(kept, kept + want), readFrom));
    this.base = this.position;
    this.buf = this.storage.subarray(0, kept + n);
    this.cursor = 0;
    return n > 0;
  }

  /** Bytes the frame at the cursor needs (its header says; a bad length is caught by decode). */
  private recordSizeAtCursor(): number {
    if (this.buf.length - this.cursor < WAL_RECORD_HEADER_SIZE) return WAL_RECORD_HEADER_SIZE;
    const at = this.buf.byteOffset + this.cursor;
    const n = new DataView(this.buf.buffer, at, 4).getUint32(0, true);
    return WAL_RECORD_HEADER_SIZE + Math.min(n, WAL_MAX_PAYLOAD);
  }
}

/** Runs a file-system call and turns its failure into a typed StoreError naming the file. */
export function io<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StoreError) throw err;
    const code = fsErrorCode(err);
    const msg = err instanceof Error ? err.message : String(err);
    if (code === 'ENOENT') throw new StoreError('NOT_FOUND', `${path}: ${msg}`);
    throw new StoreError(code === 'ENOSPC' ? 'NO_SPACE' : 'IO_ERROR', `${path}: ${msg}`);
  }
}

/** A valid record found after a damaged one: proof the damage is not a torn tail. */
export interface RecordAfterDamage {
  offset: number;
  lsn: number;
}

/**
 * Looks, from `from` to the end of the file, for a record that is whole and valid (sane length,
 * CRC, decodes) and belongs to a group commit that began after `afterLsn` (its batchFirstLsn,
 * or its LSN for records written before batches were recorded, is above it). Used at open when a record fails: a torn tail
 * (the unsynced end of the last group commit) has nothing valid after it; damage in the middle
 * of the log has the records that followed it. Every byte offset is tried, since the damaged
 * record's own length may be what is damaged; cheap checks (a sane length, a CBOR array of 4
 * or 5 as the payload's first byte) filter candidates before a CRC is computed.
 */
export function findValidRecordAfter(fs: Fs, path: string, from: number, afterLsn: number): RecordAfterDamage | null {
  const file = openForRead(fs, path);
  try {
    const size = io(path, () => file.size());
    const window = 16 * 1024 * 1024;
    const buf = new Uint8Array(Math.min(window, Math.max(0, size - from)));
    for (let base = from; base < size; base += window - WAL_RECORD_HEADER_SIZE) {
      const n = io(path, () => file.read(buf, base));
      const view = new DataView(buf.buffer, 0, n);
      for (let i = base === from ? 1 : 0; i + WAL_RECORD_HEADER_SIZE < n; i++) {
        const length = view.getUint32(i, true);
        if (length < 1 || length > WAL_MAX_PAYLOAD || base + i + WAL_RECORD_HEADER_SIZE + length > size) continue;
        // A payload is a CBOR array of 4 to 6 (0x84..0x86): a one-byte check before any CRC.
        const head = buf[i + WAL_RECORD_HEADER_SIZE];
        if (i + WAL_RECORD_HEADER_SIZE < n && head !== 0x84 && head !== 0x85 && head !== 0x86) continue;
        const frame = readFrameAt(file, base + i, length);
        const res = decodeRecord(frame, 0);
        if (res.ok && (res.record.batchFirstLsn ?? res.record.lsn) > afterLsn) return { offset: base + i, lsn: res.record.lsn };
      }
      if (base + n >= size) break;
    }
    return null;
  } finally {
    file.close();
  }
}

function readFrameAt(file: FileHandle, offset: number, length: number): Uint8Array {
  const frame = new Uint8Array(WAL_RECORD_HEADER_SIZE + length);
  const n = io(file.path, () => file.read(frame, offset));
  return frame.subarray(0, n);
}
