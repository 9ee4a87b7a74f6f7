// One open volume file (docs/formats.md §Volume file): appends needles at the tail, streams
// large values into reserved regions, reads and verifies needles, scans the whole file.
//
// Invariants:
// - the superblock was checked when the file was opened or written when it was created;
// - `tail` is a multiple of 8, >= 64, and never moves back: every append and reservation
//   takes [tail, tail + length) and moves the tail past it, so regions never overlap;
// - nothing here allocates by a length read from disk without first bounding it by the file
//   size (and whole reads by MAX_WHOLE_READ); values larger than that are read in chunks;
// - after a failed fdatasync the file is fenced: every later write or sync fails, because the
//   kernel may have dropped the dirty pages and a retry could report success for lost data;
// - errors are StoreError: CORRUPT / CHECKSUM_MISMATCH for bad bytes, IO_ERROR / NO_SPACE
//   for the file system, BAD_ARGUMENT / KEY_* / VALUE_TOO_LARGE / SIZE_MISMATCH for callers.
import type { FileHandle, Fs } from '../runtime/fs.js';
import { fsErrorCode } from '../runtime/fs.js';
import { canaries } from '../runtime/canary.js';
import { needleAddress, type NeedleAddress } from './types.js';
import {
  MAX_KEY_LENGTH,
  MAX_META_LENGTH,
  MAX_VALUE_LENGTH,
  NEEDLE_ALIGN,
  NEEDLE_HEADER_SIZE,
  NEEDLE_TRAILER_SIZE,
  NeedleFlag,
  VOLUME_SUPERBLOCK_SIZE,
  alignUp,
  decodeNeedleHeader,
  decodeSuperblock,
  decodeTrailer,
  encodeNeedleHeader,
  encodeSuperblock,
  encodeTrailer,
  needleLength,
  writePlainNeedle,
  type NeedleHeader,
} from './volume_format.js';
import { crc32, crc32Combine } from './checksum.js';
import { NeedleIngest, type IngestTarget } from './needle_ingest.js';
import { RawIngest, checkRegionLength } from './raw_ingest.js';
import { OpenIngest, checkOpenLengths } from './open_ingest.js';
import { StoreError } from '../runtime/errors.js';

/** Streaming unit for verification and chunked reads: bounded memory whatever the value. */
export const CHUNK_SIZE = 1024 * 1024;
/** Largest single buffer readNeedle/readValue will allocate; bigger values must be streamed. */
export const MAX_WHOLE_READ = 1024 * 1024 * 1024;
/** Up to this size an append is one write (one syscall); above it, no second copy is made. */
const SINGLE_WRITE_MAX = 4 * 1024 * 1024;
/** Needles at the end of a volume whose values cutTornTail reads before it reads them all. */
const TAIL_CHECKED_NEEDLES = 16;
/** Scan reads ahead this much, so stepping over garbage 8 bytes at a time is cheap. */
const SCAN_WINDOW = 256 * 1024;

export interface ScannedNeedle {
  address: NeedleAddress;
  key: Uint8Array;
  flags: number;
  expiresAt: number;
  valueLength: number;
  /** Header CRC ok and, when values are verified, the trailing CRC too. */
  valid: boolean;
}

export interface NeedleStream {
  readonly address: NeedleAddress;
  /** Sequential; SIZE_MISMATCH past the declared length. */
  write(chunk: Uint8Array): void;
  /**
   * SIZE_MISMATCH if short; writes the metadata section (exactly the length reserved; none when
   * none was) and the trailing CRC; no sync.
   */
  finish(meta?: Uint8Array): NeedleAddress;
  /** Leaves a needle whose trailing CRC fails; nothing may point at it. Idempotent. */
  abort(): void;
  readonly written: number;
}

export interface ReadNeedleResult {
  key: Uint8Array;
  value: Uint8Array;
  /** The metadata section (empty for a version-1 needle). */
  meta: Uint8Array;
  expiresAt: number;
  flags: number;
}

/** One needle of a batch (appendMany): a plain needle, no metadata. */
export interface NeedleToAppend {
  key: Uint8Array;
  value: Uint8Array;
  expiresAt: number;
  flags: number;
}

/** A batch of appends is cut into writes of at most this many bytes (and never past a volume's end). */
export const APPEND_RUN_MAX = 1024 * 1024;

/** Maps a file-system failure to a StoreError naming what was being done. */
export function ioError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = fsErrorCode(err) === 'ENOSPC' ? 'NO_SPACE' : 'IO_ERROR';
  const message = err instanceof Error ? err.message : String(err);
  return new StoreError(code, `${what}: ${message}`);
}

export class VolumeFile {
  private tailPos: number;
  /** Bytes known to exist in the file; refreshed from the handle when a read needs more. */
  private knownSize: number;
  private closed = false;
  private fenced: string | null = null;
  private openStream = false;

  private constructor(
    private readonly handle: FileHandle,
    readonly id: number,
    readonly path: string,
    readonly writable: boolean,
    size: number,
  ) {
    this.knownSize = size;
    this.tailPos = Math.max(VOLUME_SUPERBLOCK_SIZE, alignUp(size));
  }

  /** Writes the superblock and syncs the file; the caller makes the dir entry durable. */
  static create(fs: Fs, path: string, volumeId: number, nowMs: number): VolumeFile {
    const superblock = encodeSuperblock(volumeId, nowMs);
    let handle: FileHandle;
    try {
      handle = fs.open(path, 'exclusive');
    } catch (err) {
      throw ioError(err, `creating volume ${path}`);
    }
    try {
      handle.write(superblock, 0);
      handle.sync();
    } catch (err) {
      handle.close();
      throw ioError(err, `writing the superblock of ${path}`);
    }
    return new VolumeFile(handle, volumeId, path, true, VOLUME_SUPERBLOCK_SIZE);
  }

  /** Checks the superblock (CORRUPT naming the file); the tail is the aligned file size. */
  static open(fs: Fs, path: string, mode: 'read' | 'write'): VolumeFile {
    let handle: FileHandle;
    try {
      handle = fs.open(path, mode);
    } catch (err) {
      if (fsErrorCode(err) === 'ENOENT') throw new StoreError('NOT_FOUND', `volume file ${path} does not exist`);
      throw ioError(err, `opening volume ${path}`);
    }
    try {
      const size = handle.size();
      const buf = new Uint8Array(VOLUME_SUPERBLOCK_SIZE);
      const n = size >= VOLUME_SUPERBLOCK_SIZE ? handle.read(buf, 0) : 0;
      const sb = n === VOLUME_SUPERBLOCK_SIZE ? decodeSuperblock(buf) : null;
      if (sb === null) throw new StoreError('CORRUPT', `${path}: not a volume file (bad or missing superblock, ${size} bytes)`);
      return new VolumeFile(handle, sb.volumeId, path, mode === 'write', size);
    } catch (err) {
      handle.close();
      throw ioError(err, `opening volume ${path}`);
    }
  }

  /** Where the next needle goes. */
  get tail(): number {
    return this.tailPos;
  }

  append(key: Uint8Array, value: Uint8Array, expiresAt: number, flags = 0): NeedleAddress {
    return this.appendAt(this.tailPos, key, value, expiresAt, flags);
  }

  /**
   * Appends a needle at `offset`, which must be where the next needle goes (the tail): every
   * member of a volume group is told the same offset, so a member that missed a write refuses
   * the next one (CONFLICT, naming its length) instead of writing it at another place.
   */
  appendAt(offset: number, key: Uint8Array, value: Uint8Array, expiresAt: number, flags = 0, meta: Uint8Array = NO_META): NeedleAddress {
    this.checkWritable();
    this.checkTail(offset);
    checkNeedleArgs(key, value.length, expiresAt, flags);
    const header = encodeNeedleHeader(key, value.length, expiresAt, flags, meta.length);
    const length = needleLength(key.length, value.length, meta.length);
    const trailer = encodeTrailer(crc32(meta, crc32(value, crc32(header))));
    if (length <= SINGLE_WRITE_MAX) {
      const buf = new Uint8Array(length);
      buf.set(header, 0);
      buf.set(value, header.length);
      buf.set(meta, header.length + value.length);
      buf.set(trailer, header.length + value.length + meta.length);
      this.writeAt(buf, offset);
    } else {
      this.writeAt(header, offset);
      this.writeAt(value, offset + header.length);
      if (meta.length > 0) this.writeAt(meta, offset + header.length + value.length);
      this.writeAt(trailer, offset + header.length + value.length + meta.length);
    }
    this.tailPos = alignUp(offset + length);
    return needleAddress(this.id, offset, length, meta.length);
  }

  /**
   * Small needles at `offset` (the tail), back to back as appendAt would place them, with ONE
   * write: a pipeline of SETs costs one syscall per batch, not one per needle. The padding
   * between them is written as zeros (what the holes read as); all are checked before any
   * byte is written, and the tail moves only once the write succeeded.
   */
  appendMany(offset: number, needles: readonly NeedleToAppend[]): NeedleAddress[] {
    this.checkWritable();
    this.checkTail(offset);
    // Where each goes, as appendAt one by one would put it; all checked before a byte is written.
    let end = offset;
    const addresses = needles.map((n) => {
      checkNeedleArgs(n.key, n.value.length, n.expiresAt, n.flags);
      const address = needleAddress(this.id, alignUp(end), needleLength(n.key.length, n.value.length), 0);
      end = address.offset + address.length;
      return address;
    });
    if (end - offset > SINGLE_WRITE_MAX) throw new StoreError('INTERNAL', `a batch of ${end - offset} bytes is more than one write takes`);
    const buf = new Uint8Array(end - offset);
    needles.forEach((n, i) => writePlainNeedle(buf, addresses[i]!.offset - offset, n.key, n.value, n.expiresAt, n.flags));
    this.writeAt(buf, offset);
    this.tailPos = alignUp(end);
    return addresses;
  }

  /** Takes [tail, tail + length) at once and writes the header; the value streams in later. */
  reserve(key: Uint8Array, valueLength: number, expiresAt: number, metaLength = 0): NeedleStream {
    return this.reserveAt(this.tailPos, key, valueLength, expiresAt, metaLength);
  }

  /** reserve() at `offset`, which must be the tail (see appendAt). */
  reserveAt(offset: number, key: Uint8Array, valueLength: number, expiresAt: number, metaLength = 0): NeedleStream {
    this.checkWritable();
    this.checkTail(offset);
    checkNeedleArgs(key, valueLength, expiresAt, 0);
    checkMetaLength(metaLength);
    const header = encodeNeedleHeader(key, valueLength, expiresAt, 0, metaLength);
    const address = needleAddress(this.id, offset, needleLength(key.length, valueLength, metaLength), metaLength);
    // Moved before the write: even if writing the header fails, the region stays taken
    // (garbage that a scan steps over) rather than half-reused.
    this.tailPos = alignUp(address.offset + address.length);
    this.writeAt(header, address.offset);
    return new VolumeNeedleStream(address, header, valueLength, (buf, pos) => this.writeAt(buf, pos));
  }

  /**
   * A needle of a length known only at its end (a chunked upload): it takes the tail, and no other
   * needle can be placed in this volume until it finishes or aborts (the tail is unknown until
   * then), so a drive streams such needles into volumes of their own (drive_volumes.ts). The
   * value is written first; finish() writes the trailer, then the header: until the header is
   * written, the region holds no needle magic, and a crash leaves bytes a scan steps over.
   */
  reserveOpen(key: Uint8Array, expiresAt: number, maxValueLength: number, metaLength = 0): NeedleStream {
    this.checkWritable();
    this.checkTail(this.tailPos);
    checkNeedleArgs(key, 0, expiresAt, 0);
    checkMetaLength(metaLength);
    const offset = this.tailPos;
    this.openStream = true;
    return new OpenNeedleStream(offset, this.id, key, expiresAt, maxValueLength, metaLength, {
      write: (buf, pos) => this.writeAt(buf, pos),
      end: (length) => {
        this.openStream = false;
        // An aborted stream keeps what it wrote as garbage; the tail moves past it either way.
        this.tailPos = alignUp(offset + length);
      },
    });
  }

  /**
   * A needle received as raw bytes at `offset`, which must be the tail (a group member taking
   * what the master or a peer sends: docs/volume-server.md). It holds the tail until it ends;
   * a refused or aborted one is cut back, so the volume is as if it had never come.
   */
  ingestAt(offset: number): NeedleIngest {
    return new NeedleIngest(this.ingestTarget(offset, (length) => alignUp(offset + length)));
  }

  /**
   * A region of `length` bytes (a multiple of 8) received raw at `offset`, the tail: bytes as
   * they come, their CRC given back at the end (raw_ingest.ts). Cut back if it does not end whole.
   */
  rawIngestAt(offset: number, length: number): RawIngest {
    checkRegionLength(length);
    return new RawIngest(this.ingestTarget(offset, (n) => offset + n), length);
  }

  /**
   * An open-ended needle received at `offset`, the tail (open_ingest.ts): the value first, its
   * header last; its end names the needle's length, and the tail moves past its aligned end.
   */
  openIngestAt(offset: number, keyLength: number, metaLength: number): OpenIngest {
    checkOpenLengths(keyLength, metaLength);
    return new OpenIngest(this.ingestTarget(offset, (length) => alignUp(offset + length)), keyLength, metaLength);
  }

  /** Where an ingest writes: it holds the tail until it ends; refused or aborted, it is cut back. */
  private ingestTarget(offset: number, tailAfter: (length: number) => number): IngestTarget {
    this.checkWritable();
    this.checkTail(offset);
    this.openStream = true;
    return {
      volume: this.id,
      offset,
      write: (buf, pos) => this.writeAt(buf, pos),
      end: (length) => {
        this.openStream = false;
        if (length !== null) {
          this.tailPos = tailAfter(length);
          return;
        }
        try {
          this.truncateTo(offset);
        } catch {
          // the file is failing; its tail stays past the bytes, which a scan steps over
          this.tailPos = Math.max(this.tailPos, alignUp(this.knownSize));
        }
      },
    };
  }

  /**
   * Raw bytes of [position, position + buf.length) of the file as it is now, zeros past its end
   * (the padding after the last needle is not in the file until the next one is written): what
   * the master sends a member of the volume's group, and what a repair copies.
   */
  readRegion(buf: Uint8Array, position: number): void {
    const size = this.sizeAtLeast(position + buf.length);
    const have = Math.max(0, Math.min(buf.length, size - position));
    if (have > 0 && this.rawRead(buf.subarray(0, have), position) !== have) {
      throw new StoreError('CORRUPT', `short read of ${this.path} at ${position}`);
    }
    buf.fill(0, have);
  }

  /**
   * Cuts the volume to `length` (a needle boundary: what repair and a refused ingest ask). The
   * caller syncs. Refused while a stream holds the tail.
   */
  truncateTo(length: number): void {
    this.checkWritable();
    if (!Number.isSafeInteger(length) || length < VOLUME_SUPERBLOCK_SIZE || length % NEEDLE_ALIGN !== 0) {
      throw new StoreError('BAD_ARGUMENT', `cannot cut ${this.path} to ${length}: not a needle boundary`);
    }
    try {
      this.handle.truncate(length);
    } catch (err) {
      throw ioError(err, `truncating ${this.path} to ${length}`);
    }
    this.knownSize = length;
    this.tailPos = length;
  }

  /**
   * After a crash: cuts the volume back to the end of its last needle whose checksums hold (a
   * torn append was never acknowledged). Answers the new length. The caller syncs.
   */
  cutTornTail(): number {
    // Appends are sequential and synced in order, so only the last needles can be torn: the
    // headers are walked (their CRC lets the scan trust lengths and jump), and values are read
    // only for the last few, newest first, until one holds. Start-up reads headers, not data.
    const last: ScannedNeedle[] = [];
    for (const n of this.scan({ verifyValues: false })) {
      last.push(n);
      if (last.length > TAIL_CHECKED_NEEDLES) last.shift();
    }
    let end = VOLUME_SUPERBLOCK_SIZE;
    const good = last.reverse().find((n) => this.verifyNeedle(n.address, n.key));
    if (good !== undefined) end = alignUp(good.address.offset + good.address.length);
    else if (last.length === TAIL_CHECKED_NEEDLES) end = this.lastValidEnd(); // all bad: look at everything
    if (end < this.sizeAtLeast(Number.MAX_SAFE_INTEGER) || end < this.tailPos) this.truncateTo(end);
    return end;
  }

  /** The end of the last needle whose value checks, reading every value (the slow way). */
  private lastValidEnd(): number {
    let end = VOLUME_SUPERBLOCK_SIZE;
    for (const n of this.scan({ verifyValues: true })) if (n.valid) end = alignUp(n.address.offset + n.address.length);
    return end;
  }

  /** True while an open-ended stream holds the tail. */
  get streaming(): boolean {
    return this.openStream;
  }

  /** fdatasync. A failure fences the file for good. */
  sync(): void {
    if (!this.writable) return;
    this.checkWritable();
    if (canaries.skipFsync) return; // canary: acknowledged needles may vanish in a crash
    try {
      this.handle.sync();
    } catch (err) {
      this.fenced = `fsync failed: ${err instanceof Error ? err.message : String(err)}`;
      throw new StoreError('IO_ERROR', `${this.path}: ${this.fenced}; the volume refuses writes from now on`);
    }
  }

  /** `length` bytes of the value from `start`, bounds-checked against the value. */
  readValue(address: NeedleAddress, keyLength: number, start: number, length: number): Uint8Array {
    this.checkOpen();
    const valueLength = this.checkAddress(address, keyLength);
    checkRange(start, length, valueLength);
    if (length > MAX_WHOLE_READ) {
      throw new StoreError('VALUE_TOO_LARGE', `read of ${length} bytes at once; read it in chunks`);
    }
    return this.readAt(address.offset + NEEDLE_HEADER_SIZE + keyLength + start, length);
  }

  /** Reads value bytes [start, start + buf.length) into buf (a reused buffer: no allocation). */
  readValueInto(address: NeedleAddress, keyLength: number, start: number, buf: Uint8Array): void {
    this.checkOpen();
    const valueLength = this.checkAddress(address, keyLength);
    checkRange(start, buf.length, valueLength);
    this.readInto(buf, address.offset + NEEDLE_HEADER_SIZE + keyLength + start);
  }

  /**
   * The head of the key's needle, checked: its header CRC holds, its lengths are the address's,
   * and its key is `key` (CHECKSUM_MISMATCH / CORRUPT otherwise). Returns what a reader
   * streaming the value needs to check the whole needle: the CRC of the head (to continue over
   * the value bytes) and the trailer it must end at.
   */
  readHead(address: NeedleAddress, key: Uint8Array): { valueLength: number; crc: number; trailer: number; meta: Uint8Array } {
    this.checkOpen();
    const valueLength = this.checkAddress(address, key.length);
    const head = this.readAt(address.offset, NEEDLE_HEADER_SIZE + key.length);
    const header = decodeNeedleHeader(head.subarray(0, NEEDLE_HEADER_SIZE));
    if (header === null || header.keyLength !== key.length || header.valueLength !== valueLength || header.metaLength !== (address.meta ?? 0)) {
      throw this.damaged(address, 'header does not match the address');
    }
    if (!bytesEqual(head.subarray(NEEDLE_HEADER_SIZE), key)) {
      throw new StoreError('CORRUPT', `needle at volume ${this.id} offset ${address.offset} in ${this.path} holds another key`);
    }
    // canary skipChecksum: a flipped header byte would be trusted
    if (!canaries.skipChecksum && decodeNeedleHeader(head.subarray(0, NEEDLE_HEADER_SIZE), key) === null) {
      throw this.damaged(address, 'header CRC mismatch');
    }
    // The metadata section and the trailer are adjacent at the end: one read (at most 16 KiB).
    const tail = this.readAt(address.offset + address.length - NEEDLE_TRAILER_SIZE - header.metaLength, header.metaLength + NEEDLE_TRAILER_SIZE);
    const meta = tail.subarray(0, header.metaLength);
    return { valueLength, crc: crc32(head), trailer: decodeTrailer(tail.subarray(header.metaLength)), meta };
  }

  /**
   * The whole needle, both CRCs checked (CHECKSUM_MISMATCH) unless canaries.skipChecksum. With
   * `scratch` at least as long as the needle, it is read into it and the answer is views of it,
   * valid until the caller uses `scratch` again; otherwise into a fresh buffer.
   */
  readNeedle(address: NeedleAddress, scratch?: Uint8Array): ReadNeedleResult {
    this.checkOpen();
    this.checkAddress(address, 1);
    if (address.length > MAX_WHOLE_READ) {
      throw new StoreError('VALUE_TOO_LARGE', `needle of ${address.length} bytes; read it in chunks`);
    }
    let buf: Uint8Array;
    if (scratch !== undefined && scratch.length >= address.length) {
      buf = scratch.subarray(0, address.length);
      this.readInto(buf, address.offset);
    } else {
      buf = this.readAt(address.offset, address.length);
    }
    const header = decodeNeedleHeader(buf);
    if (header === null || needleLength(header.keyLength, header.valueLength, header.metaLength) !== address.length || header.metaLength !== (address.meta ?? 0)) {
      throw this.damaged(address, 'header does not match the address');
    }
    const keyEnd = NEEDLE_HEADER_SIZE + header.keyLength;
    const key = buf.subarray(NEEDLE_HEADER_SIZE, keyEnd); // buf is fresh per read, or the caller's scratch
    if (!canaries.skipChecksum) {
      // canary above: a flipped byte would be served as if it were the value
      if (decodeNeedleHeader(buf, key) === null) throw this.damaged(address, 'header CRC mismatch');
      const end = address.length - NEEDLE_TRAILER_SIZE;
      if (crc32(buf.subarray(0, end)) !== decodeTrailer(buf.subarray(end))) {
        throw this.damaged(address, 'needle CRC mismatch');
      }
    }
    const value = buf.subarray(keyEnd, keyEnd + header.valueLength);
    const meta = buf.subarray(keyEnd + header.valueLength, keyEnd + header.valueLength + header.metaLength);
    return { key, value, meta, expiresAt: header.expiresAt, flags: header.flags };
  }

  /**
   * The needle's raw bytes (header to trailer) in chunks of at most buf.length, each a view of
   * buf valid until the next: what a group member serves to the master or to a peer repairing
   * itself. The header (its lengths and CRC, checked against the key it holds) is checked before
   * the first chunk leaves, the needle CRC before the last (CHECKSUM_MISMATCH instead), so a
   * damaged needle never arrives whole.
   */
  *streamRaw(address: NeedleAddress, buf: Uint8Array): Generator<Uint8Array> {
    this.checkOpen();
    if (buf.length < NEEDLE_HEADER_SIZE + MAX_KEY_LENGTH) throw new StoreError('BAD_ARGUMENT', 'a raw needle read needs a buffer of at least 64 KiB + 32');
    this.checkInFile(address.offset, address.length);
    let crc = 0;
    const end = address.length - NEEDLE_TRAILER_SIZE;
    // The trailer may straddle two chunks: its bytes are gathered as they pass.
    const trailer = new Uint8Array(NEEDLE_TRAILER_SIZE);
    for (let done = 0; done < address.length; ) {
      const part = buf.subarray(0, Math.min(buf.length, address.length - done));
      this.readInto(part, address.offset + done);
      if (done === 0) this.checkRawHead(address, part);
      const bodyBytes = Math.max(0, Math.min(part.length, end - done));
      crc = crc32(part.subarray(0, bodyBytes), crc);
      for (let i = bodyBytes; i < part.length; i++) trailer[done + i - end] = part[i]!;
      done += part.length;
      if (done === address.length && !canaries.skipChecksum && decodeTrailer(trailer) !== crc) {
        throw this.damaged(address, 'needle CRC mismatch');
      }
      yield part;
    }
  }

  /** The first chunk of a raw read: a header whose lengths are the address's, its CRC holding. */
  private checkRawHead(address: NeedleAddress, first: Uint8Array): void {
    const header = decodeNeedleHeader(first.subarray(0, NEEDLE_HEADER_SIZE));
    if (header === null || needleLength(header.keyLength, header.valueLength, header.metaLength) !== address.length || header.metaLength !== (address.meta ?? 0)) {
      throw this.damaged(address, 'header does not match the address');
    }
    const key = first.subarray(NEEDLE_HEADER_SIZE, NEEDLE_HEADER_SIZE + header.keyLength);
    if (!canaries.skipChecksum && decodeNeedleHeader(first.subarray(0, NEEDLE_HEADER_SIZE), key) === null) throw this.damaged(address, 'header CRC mismatch');
  }

  /** CRCs ok and the key matches; streams the value in 1 MiB chunks. False for bad bytes. */
  verifyNeedle(address: NeedleAddress, key: Uint8Array): boolean {
    this.checkOpen();
    if (key.length < 1 || key.length > MAX_KEY_LENGTH) return false;
    this.checkAddress(address, key.length);
    const end = address.offset + address.length;
    if (end > this.sizeAtLeast(end)) return false;
    try {
      return this.verifyInFile(address, key);
    } catch (err) {
      if (err instanceof StoreError && err.code === 'CORRUPT') return false; // shrank meanwhile
      throw err;
    }
  }

  /**
   * Every needle in file order. Bytes that are not a needle header (zeros, garbage, a torn
   * needle whose bytes run past the end) are stepped over 8 bytes at a time. With
   * verifyValues (the default) each value's trailing CRC is checked: a needle that fails is
   * reported invalid and the scan resyncs 8 bytes on, because after a crash the tail may
   * have been reused inside its claimed region. Without it, `valid` covers the header only
   * and the scan trusts the length to jump to the next needle.
   */
  *scan(options: { verifyValues?: boolean } = {}): IterableIterator<ScannedNeedle> {
    this.checkOpen();
    const verify = options.verifyValues ?? true;
    const end = this.sizeAtLeast(Number.MAX_SAFE_INTEGER);
    const window = new ReadWindow((buf, pos) => this.rawRead(buf, pos), end);
    let pos = VOLUME_SUPERBLOCK_SIZE;
    while (pos + NEEDLE_HEADER_SIZE <= end) {
      pos = window.nextMagic(pos);
      if (pos + NEEDLE_HEADER_SIZE > end) break;
      const found = this.scanAt(window, pos, end, verify);
      if (found === null) {
        pos += NEEDLE_ALIGN;
        continue;
      }
      yield found;
      pos = found.valid ? alignUp(pos + found.address.length) : pos + NEEDLE_ALIGN;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }

  /** close(), without waiting where the file system can: for a volume a vacuum removed (Fs). */
  closeInBackground(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handle.closeInBackground !== undefined) this.handle.closeInBackground();
    else this.handle.close();
  }

  // ---- private helpers -----------------------------------------------------------------

  private verifyInFile(address: NeedleAddress, key: Uint8Array): boolean {
    const head = this.readAt(address.offset, NEEDLE_HEADER_SIZE + key.length);
    const header = decodeNeedleHeader(head.subarray(0, NEEDLE_HEADER_SIZE), canaries.skipChecksum ? undefined : key);
    if (header === null || needleLength(header.keyLength, header.valueLength, header.metaLength) !== address.length) return false;
    if (!bytesEqual(head.subarray(NEEDLE_HEADER_SIZE), key)) return false;
    if (canaries.skipChecksum) return true; // canary: a scrub would call a damaged value good
    const crc = this.valueCrc(address.offset + head.length, header.valueLength + header.metaLength, crc32(head));
    const trailer = this.readAt(address.offset + address.length - NEEDLE_TRAILER_SIZE, NEEDLE_TRAILER_SIZE);
    return crc === decodeTrailer(trailer);
  }

  /** The needle at pos, or null when the bytes there are not a trustworthy header. */
  private scanAt(window: ReadWindow, pos: number, end: number, verify: boolean): ScannedNeedle | null {
    const head = window.bytes(pos, NEEDLE_HEADER_SIZE);
    const header = decodeNeedleHeader(head);
    if (header === null) return null;
    const length = needleLength(header.keyLength, header.valueLength, header.metaLength);
    if (pos + length > end) return null; // torn: not all of it reached the disk
    const key = window.bytes(pos + NEEDLE_HEADER_SIZE, header.keyLength).slice();
    // The header CRC is what lets us trust the lengths at all, so even the skipChecksum
    // canary keeps it here: the canary is about serving bad values, not losing the scan.
    if (decodeNeedleHeader(head, key) === null) return null;
    const valid = verify ? this.trailerOk(pos, length, header, head, key) : true;
    const address = needleAddress(this.id, pos, length, header.metaLength);
    return { address, key, flags: header.flags, expiresAt: header.expiresAt, valueLength: header.valueLength, valid };
  }

  private trailerOk(pos: number, length: number, header: NeedleHeader, head: Uint8Array, key: Uint8Array): boolean {
    if (canaries.skipChecksum) return true; // canary: torn values would be indexed as good
    const start = crc32(key, crc32(head));
    const crc = this.valueCrc(pos + NEEDLE_HEADER_SIZE + key.length, header.valueLength + header.metaLength, start);
    const trailer = this.readAt(pos + length - NEEDLE_TRAILER_SIZE, NEEDLE_TRAILER_SIZE);
    return crc === decodeTrailer(trailer);
  }

  /** CRC of `length` bytes at `position`, continuing `crc`; one reused chunk buffer. */
  private valueCrc(position: number, length: number, crc: number): number {
    const buf = new Uint8Array(Math.min(CHUNK_SIZE, length));
    for (let done = 0; done < length; ) {
      const part = buf.subarray(0, Math.min(buf.length, length - done));
      this.readInto(part, position + done);
      crc = crc32(part, crc);
      done += part.length;
    }
    return crc;
  }

  private damaged(address: NeedleAddress, why: string): StoreError {
    return new StoreError('CHECKSUM_MISMATCH', `needle at volume ${this.id} offset ${address.offset} in ${this.path}: ${why}`);
  }

  /** Shape of an address for this file; returns the value length. */
  private checkAddress(address: NeedleAddress, keyLength: number): number {
    if (address.volume !== this.id) {
      throw new StoreError('BAD_ARGUMENT', `address of volume ${address.volume} given to volume ${this.id}`);
    }
    if (!Number.isInteger(keyLength) || keyLength < 1 || keyLength > MAX_KEY_LENGTH) {
      throw new StoreError('BAD_ARGUMENT', `key length out of range: ${keyLength}`);
    }
    const { offset, length } = address;
    const meta = address.meta ?? 0;
    const min = needleLength(keyLength, 0, meta);
    if (!Number.isSafeInteger(offset) || offset < VOLUME_SUPERBLOCK_SIZE || offset % NEEDLE_ALIGN !== 0 ||
        !Number.isSafeInteger(length) || length < min || !Number.isSafeInteger(offset + length) ||
        !Number.isInteger(meta) || meta < 0 || meta > MAX_META_LENGTH) {
      throw new StoreError('BAD_ARGUMENT', `bad needle address ${JSON.stringify(address)} for key length ${keyLength}`);
    }
    return length - min;
  }

  /** Fresh buffer of exactly `length` bytes at `position`, never past the end of the file. */
  private readAt(position: number, length: number): Uint8Array {
    const buf = new Uint8Array(this.checkInFile(position, length));
    this.readInto(buf, position);
    return buf;
  }

  private readInto(buf: Uint8Array, position: number): void {
    this.checkInFile(position, buf.length);
    const n = this.rawRead(buf, position);
    if (n !== buf.length) {
      throw new StoreError('CORRUPT', `short read of ${this.path} at ${position}: wanted ${buf.length}, got ${n}`);
    }
  }

  private rawRead(buf: Uint8Array, position: number): number {
    try {
      return this.handle.read(buf, position);
    } catch (err) {
      throw ioError(err, `reading ${this.path} at ${position}`);
    }
  }

  /** Bounds a read by the file size before anything is allocated for it. */
  private checkInFile(position: number, length: number): number {
    const end = position + length;
    if (end > this.sizeAtLeast(end)) {
      throw new StoreError('CORRUPT', `${this.path}: read of ${length} bytes at ${position} runs past the end of the file (${this.knownSize} bytes)`);
    }
    return length;
  }

  /** The file size, asking the file system only when `wanted` is beyond what we know. */
  private sizeAtLeast(wanted: number): number {
    if (wanted > this.knownSize) {
      try {
        this.knownSize = Math.max(this.knownSize, this.handle.size());
      } catch (err) {
        throw ioError(err, `size of ${this.path}`);
      }
    }
    return this.knownSize;
  }

  private writeAt(buf: Uint8Array, position: number): void {
    this.checkWritable();
    try {
      this.handle.write(buf, position);
    } catch (err) {
      throw ioError(err, `writing ${this.path} at ${position}`);
    }
    this.knownSize = Math.max(this.knownSize, position + buf.length);
  }

  private checkTail(offset: number): void {
    if (this.openStream) throw new StoreError('CONFLICT', `${this.path}: an upload of unknown length holds the tail of volume ${this.id}`);
    if (offset !== this.tailPos) {
      throw new StoreError('CONFLICT', `${this.path}: a needle at offset ${offset} asked of volume ${this.id}, whose length is ${this.tailPos}`);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreError('CLOSED', `volume ${this.path} is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (!this.writable) throw new StoreError('INTERNAL', `volume ${this.path} is open read-only`);
    if (this.fenced !== null) throw new StoreError('IO_ERROR', `${this.path}: ${this.fenced}; the volume refuses writes`);
  }
}

class VolumeNeedleStream implements NeedleStream {
  private state: 'open' | 'finished' | 'aborted' = 'open';
  private crc: number;
  private done = 0;
  private readonly valueStart: number;

  constructor(
    readonly address: NeedleAddress,
    header: Uint8Array,
    private readonly valueLength: number,
    private readonly writeAt: (buf: Uint8Array, position: number) => void,
  ) {
    this.crc = crc32(header);
    this.valueStart = address.offset + header.length;
  }

  get written(): number {
    return this.done;
  }

  write(chunk: Uint8Array): void {
    this.checkOpen();
    if (this.done + chunk.length > this.valueLength) {
      throw new StoreError('SIZE_MISMATCH', `stream declared ${this.valueLength} bytes; ${this.done + chunk.length} given`);
    }
    this.writeAt(chunk, this.valueStart + this.done);
    this.crc = crc32(chunk, this.crc);
    this.done += chunk.length;
  }

  finish(meta: Uint8Array = NO_META): NeedleAddress {
    this.checkOpen();
    if (this.done !== this.valueLength) {
      throw new StoreError('SIZE_MISMATCH', `stream declared ${this.valueLength} bytes; only ${this.done} given`);
    }
    if (meta.length !== (this.address.meta ?? 0)) {
      throw new StoreError('SIZE_MISMATCH', `stream reserved ${this.address.meta ?? 0} bytes of metadata; ${meta.length} given`);
    }
    if (meta.length > 0) this.writeAt(meta, this.valueStart + this.valueLength);
    this.writeAt(encodeTrailer(crc32(meta, this.crc)), this.valueStart + this.valueLength + meta.length);
    this.state = 'finished';
    return this.address;
  }

  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    // Write a trailer that cannot match (the complement of the CRC of what was written), so
    // the region is a whole needle that fails its check instead of a torn one; when the value
    // is short the rest reads as zeros and a match would need a CRC collision. Best effort:
    // the region is garbage either way, and nothing points at it.
    try {
      this.writeAt(encodeTrailer(~this.crc), this.address.offset + this.address.length - NEEDLE_TRAILER_SIZE);
    } catch {
      // the volume is closed or failing; the caller already knows the upload is gone
    }
  }

  private checkOpen(): void {
    if (this.state === 'aborted') throw new StoreError('ABORTED', 'the needle stream was aborted');
    if (this.state === 'finished') throw new StoreError('BAD_ARGUMENT', 'the needle stream is already finished');
  }
}

/**
 * The stream of reserveOpen(): value bytes go at offset + 32 + k as they come; the CRC of the value
 * alone is kept, and at finish the needle's CRC is the header's combined with it (crc32Combine),
 * so no byte is read back or written twice.
 */
class OpenNeedleStream implements NeedleStream {
  private state: 'open' | 'finished' | 'aborted' = 'open';
  private valueCrc = 0;
  private done = 0;
  private readonly valueStart: number;
  private finalAddress: NeedleAddress | null = null;

  constructor(
    private readonly offset: number,
    private readonly volume: number,
    private readonly key: Uint8Array,
    private readonly expiresAt: number,
    private readonly maxValueLength: number,
    private readonly metaLength: number,
    private readonly file: { write(buf: Uint8Array, position: number): void; end(length: number): void },
  ) {
    this.valueStart = offset + NEEDLE_HEADER_SIZE + key.length;
  }

  /** Known once finished; until then the length is the part written so far. */
  get address(): NeedleAddress {
    return this.finalAddress ?? needleAddress(this.volume, this.offset, needleLength(this.key.length, this.done, this.metaLength), this.metaLength);
  }

  get written(): number {
    return this.done;
  }

  write(chunk: Uint8Array): void {
    this.checkOpen();
    if (this.done + chunk.length > this.maxValueLength) {
      throw new StoreError('VALUE_TOO_LARGE', `upload past ${this.maxValueLength} bytes`);
    }
    this.file.write(chunk, this.valueStart + this.done);
    this.valueCrc = crc32(chunk, this.valueCrc);
    this.done += chunk.length;
  }

  finish(meta: Uint8Array = NO_META): NeedleAddress {
    this.checkOpen();
    if (meta.length !== this.metaLength) {
      throw new StoreError('SIZE_MISMATCH', `stream reserved ${this.metaLength} bytes of metadata; ${meta.length} given`);
    }
    const header = encodeNeedleHeader(this.key, this.done, this.expiresAt, 0, this.metaLength);
    const crc = crc32(meta, crc32Combine(crc32(header), this.valueCrc, this.done));
    const length = needleLength(this.key.length, this.done, this.metaLength);
    // Metadata and trailer, then header: the magic appears only once everything after it is written.
    if (meta.length > 0) this.file.write(meta, this.valueStart + this.done);
    this.file.write(encodeTrailer(crc), this.valueStart + this.done + meta.length);
    this.file.write(header, this.offset);
    this.state = 'finished';
    this.finalAddress = needleAddress(this.volume, this.offset, length, this.metaLength);
    this.file.end(length);
    return this.finalAddress;
  }

  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    // No header was written: the bytes are garbage a scan steps over. The tail moves past them.
    this.file.end(needleLength(this.key.length, this.done, this.metaLength));
  }

  private checkOpen(): void {
    if (this.state === 'aborted') throw new StoreError('ABORTED', 'the needle stream was aborted');
    if (this.state === 'finished') throw new StoreError('BAD_ARGUMENT', 'the needle stream is already finished');
  }
}

/** Read-ahead over [0, end) for the scan; hands out views that live until the next call. */
class ReadWindow {
  private readonly buf = new Uint8Array(SCAN_WINDOW);
  private start = 0;
  private len = 0;

  constructor(private readonly read: (buf: Uint8Array, position: number) => number, private readonly end: number) {}

  bytes(position: number, length: number): Uint8Array {
    if (position < this.start || position + length > this.start + this.len) this.fill(position);
    if (position + length > this.start + this.len) {
      throw new StoreError('CORRUPT', `scan read of ${length} bytes at ${position} past the end (${this.end})`);
    }
    return this.buf.subarray(position - this.start, position - this.start + length);
  }

  /** The first position p >= from, p ≡ from (mod 8), holding the needle magic; or `end`. */
  nextMagic(from: number): number {
    let pos = from;
    while (pos + 4 <= this.end) {
      if (pos < this.start || pos + 4 > this.start + this.len) {
        this.fill(pos);
        if (this.len < 4) return this.end; // the file shrank under us: nothing more to find
      }
      const b = this.buf;
      let i = pos - this.start;
      for (; i + 4 <= this.len; i += NEEDLE_ALIGN) {
        if (b[i] === 0x42 && b[i + 1] === 0x4e && b[i + 2] === 0x44 && b[i + 3] === 0x4c) return this.start + i;
      }
      pos = this.start + i;
    }
    return this.end;
  }

  private fill(position: number): void {
    const want = Math.min(this.buf.length, this.end - position);
    this.start = position;
    this.len = want > 0 ? this.read(this.buf.subarray(0, want), position) : 0;
  }
}

/** The StoreError a caller gets for arguments no needle may have (checked before any write). */
export function checkNeedleArgs(key: Uint8Array, valueLength: number, expiresAt: number, flags: number): void {
  if (key.length === 0) throw new StoreError('KEY_EMPTY', 'a key must have at least one byte');
  if (key.length > MAX_KEY_LENGTH) throw new StoreError('KEY_TOO_LONG', `key of ${key.length} bytes; the limit is ${MAX_KEY_LENGTH}`);
  if (!Number.isSafeInteger(valueLength) || valueLength < 0 || valueLength > MAX_VALUE_LENGTH) {
    throw new StoreError('VALUE_TOO_LARGE', `value length ${valueLength} out of range`);
  }
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) throw new StoreError('BAD_ARGUMENT', `bad expiresAt ${expiresAt}`);
  if (flags !== 0 && flags !== NeedleFlag.Tombstone) throw new StoreError('BAD_ARGUMENT', `unknown needle flags ${flags}`);
  if (flags === NeedleFlag.Tombstone && valueLength !== 0) {
    throw new StoreError('BAD_ARGUMENT', 'a tombstone needle has no value');
  }
}

const NO_META = new Uint8Array(0);

function checkMetaLength(metaLength: number): void {
  if (!Number.isInteger(metaLength) || metaLength < 0 || metaLength > MAX_META_LENGTH) {
    throw new StoreError('BAD_ARGUMENT', `metadata of ${metaLength} bytes; the limit is ${MAX_META_LENGTH}`);
  }
}

function checkRange(start: number, length: number, valueLength: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > valueLength) {
    throw new StoreError('BAD_ARGUMENT', `range ${start}+${length} outside a value of ${valueLength} bytes`);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
