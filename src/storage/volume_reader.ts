// Read-only access to the volumes of every local volume group, from any thread: a committed
// needle never changes, so readers need no coordination with the writers (docs/formats.md
// §Volume file). A volume id names its group, and the group its drive. Keeps an LRU of open
// handles so a thread never holds more than `maxOpen` descriptors whatever the number of
// volumes.
//
// Invariants:
// - at most maxOpen volume files are open, besides those pinned by a stream in progress; the
//   least recently used is closed first;
// - a stream holds its volume's handle from its first byte to its last (pinned): a vacuum that
//   removes the file (forget) never cuts a read already streaming; the handle is closed when the
//   stream ends, which frees the file's space;
// - a file is checked (superblock, id matching its name) every time it is opened;
// - streamValue hands out views of the caller's buffer when given one (each valid until the
//   next is asked for), fresh buffers the caller may keep otherwise;
// - streamValue checks the needle's head (its CRC, lengths, and that it is the key's) before the
//   first byte, and, for a whole value, the needle CRC before the last chunk is handed out.
import { canaries } from '../runtime/canary.js';
import type { Fs } from '../runtime/fs.js';
import { crc32 } from './checksum.js';
import type { NeedleAddress } from './types.js';
import { groupOfVolume } from './volume_format.js';
import { CHUNK_SIZE, VolumeFile, type ReadNeedleResult } from './volume_file.js';
import { volumeFilePath } from './drive_volumes.js';
import { StoreError } from '../runtime/errors.js';
import { NeedleCache } from './needle_cache.js';

export const DEFAULT_MAX_OPEN = 64;
const MAX_OPEN_LIMIT = 65536;

export class VolumeReader {
  /** Open files in least-recently-used-first order (Map keeps insertion order). */
  private readonly open = new Map<number, VolumeFile>();
  /** Streams reading each file now; a file forgotten or evicted while pinned closes at its last unpin. */
  private readonly pins = new Map<VolumeFile, number>();
  private closed = false;

  /** The drive of each local group. */
  private readonly dirs = new Map<number, string>();
  /** Small needles read lately (needle_cache.ts), when this reader keeps any. */
  private readonly cache: NeedleCache | null;

  constructor(
    private readonly fs: Fs,
    groups: ReadonlyArray<{ id: number; dir: string }>,
    private readonly maxOpen = DEFAULT_MAX_OPEN,
    cacheBytes = 0,
  ) {
    this.cache = cacheBytes > 0 ? new NeedleCache(cacheBytes) : null;
    if (!Number.isInteger(maxOpen) || maxOpen < 1 || maxOpen > MAX_OPEN_LIMIT) {
      throw new StoreError('BAD_ARGUMENT', `maxOpen out of range: ${maxOpen}`);
    }
    for (const g of groups) this.dirs.set(g.id, g.dir);
  }

  /** Bytes of needles its cache holds now (0 without a cache). */
  get cachedBytes(): number {
    return this.cache?.bytes ?? 0;
  }

  /** How many volume files are open now (never more than maxOpen). */
  get openCount(): number {
    return this.open.size;
  }

  pathOf(volumeId: number): string {
    const path = volumeFilePath(this.dirs, volumeId);
    if (path === undefined) {
      throw new StoreError('NOT_FOUND', `volume ${volumeId} belongs to volume group ${groupOfVolume(volumeId)}, which has no local drive here`);
    }
    return path;
  }

  /**
   * Value bytes [start, start + length) of the key's needle, in chunks of at most buf.length
   * (CHUNK_SIZE without a buffer). With `buf`, each chunk is a view of it, valid until the next
   * one is asked for; without, a fresh buffer. The head is checked first; a whole value's CRC
   * is checked before its last chunk leaves (CHECKSUM_MISMATCH instead).
   */
  *streamValue(address: NeedleAddress, key: Uint8Array, start: number, length: number, buf?: Uint8Array): Generator<Uint8Array> {
    const file = this.file(address.volume);
    this.pins.set(file, (this.pins.get(file) ?? 0) + 1);
    try {
      yield* this.streamFrom(file, address, key, start, length, buf);
    } finally {
      this.unpin(file);
    }
  }

  private *streamFrom(file: VolumeFile, address: NeedleAddress, key: Uint8Array, start: number, length: number, buf?: Uint8Array): Generator<Uint8Array> {
    const head = file.readHead(address, key);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0 || start + length > head.valueLength) {
      throw new StoreError('BAD_ARGUMENT', `range ${start}+${length} is outside the value (${head.valueLength} bytes)`);
    }
    const whole = start === 0 && length === head.valueLength && !canaries.skipChecksum;
    const chunk = buf ?? null;
    const size = chunk === null ? CHUNK_SIZE : chunk.length;
    if (size < 1) throw new StoreError('BAD_ARGUMENT', 'a read buffer of 0 bytes');
    let crc = head.crc;
    for (let done = 0; done < length || (whole && done === 0 && length === 0); ) {
      const n = Math.min(size, length - done);
      const out = chunk === null ? new Uint8Array(n) : chunk.subarray(0, n);
      if (n > 0) file.readValueInto(address, key.length, start + done, out);
      done += n;
      if (whole) {
        crc = crc32(out, crc);
        // The metadata section follows the value inside the needle's CRC.
        if (done === length && crc32(head.meta, crc) !== head.trailer) {
          throw new StoreError('CHECKSUM_MISMATCH', `needle at volume ${address.volume} offset ${address.offset} in ${this.pathOf(address.volume)}: needle CRC mismatch`);
        }
      }
      if (n > 0) yield out;
      if (length === 0) break;
    }
  }

  /** The metadata section of the key's needle, its header checked (readHead). */
  readMeta(address: NeedleAddress, key: Uint8Array): Uint8Array {
    return this.file(address.volume).readHead(address, key).meta;
  }

  /** VolumeFile.readNeedle, through the needle cache (which copies what it keeps). */
  readNeedle(address: NeedleAddress, scratch?: Uint8Array): ReadNeedleResult {
    const cache = this.cache;
    if (cache === null) return this.file(address.volume).readNeedle(address, scratch);
    const hit = cache.get(address);
    if (hit !== undefined) return hit;
    const needle = this.file(address.volume).readNeedle(address, scratch);
    cache.put(address, needle);
    return needle;
  }

  verifyNeedle(address: NeedleAddress, key: Uint8Array): boolean {
    return this.file(address.volume).verifyNeedle(address, key);
  }

  /**
   * Closes the handle of a volume a vacuum removed (or one to be reopened), in the background:
   * the last close of a removed file frees its blocks, which must not hold up this thread.
   */
  forget(volumeId: number): void {
    this.cache?.forgetVolume(volumeId);
    this.closeHandle(volumeId);
  }

  private closeHandle(volumeId: number): void {
    const file = this.open.get(volumeId);
    if (file === undefined) return;
    this.open.delete(volumeId);
    if (!this.pins.has(file)) file.closeInBackground();
  }

  close(): void {
    this.closed = true;
    for (const file of this.open.values()) file.close();
    for (const file of this.pins.keys()) file.close(); // idempotent
    this.open.clear();
    this.pins.clear();
  }

  private unpin(file: VolumeFile): void {
    const n = (this.pins.get(file) ?? 1) - 1;
    if (n > 0) {
      this.pins.set(file, n);
      return;
    }
    this.pins.delete(file);
    // Forgotten or evicted meanwhile (or the reader closed): its last reader is done with it.
    if (this.open.get(file.id) !== file) file.closeInBackground();
  }

  private file(volumeId: number): VolumeFile {
    if (this.closed) throw new StoreError('CLOSED', 'volume reader is closed');
    const hit = this.open.get(volumeId);
    if (hit !== undefined) {
      this.open.delete(volumeId);
      this.open.set(volumeId, hit);
      return hit;
    }
    const path = this.pathOf(volumeId);
    const file = VolumeFile.open(this.fs, path, 'read');
    if (file.id !== volumeId) {
      file.close();
      throw new StoreError('CORRUPT', `${path}: its superblock says volume ${file.id}`);
    }
    this.open.set(volumeId, file);
    this.evict();
    return file;
  }

  private evict(): void {
    while (this.open.size > this.maxOpen) {
      const oldest = this.open.keys().next();
      if (oldest.done === true) return;
      this.closeHandle(oldest.value); // its cached needles stay: the volume is still there
    }
  }
}
