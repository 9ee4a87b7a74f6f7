// Read-only access to the volumes of every local drive, from any thread: a committed needle
// never changes, so readers need no coordination with the drive writers (docs/formats.md
// §Volume file). Keeps an LRU of open handles so a thread never holds more than `maxOpen`
// descriptors whatever the number of volumes.
//
// Invariants:
// - at most maxOpen volume files are open; the least recently used is closed first;
// - a file is checked (superblock, id matching its name) every time it is opened;
// - every chunk handed out is a fresh buffer the caller may keep (never reused).
import { join } from 'node:path';
import type { Fs } from '../runtime/fs.js';
import type { NeedleAddress } from './types.js';
import { driveSlotOf, volumeFileName } from './volume_format.js';
import { CHUNK_SIZE, MAX_WHOLE_READ, VolumeFile, type ReadNeedleResult } from './volume_file.js';
import { VOLUMES_DIR } from './drive_volumes.js';
import { StoreError } from '../runtime/errors.js';

export const DEFAULT_MAX_OPEN = 64;
const MAX_OPEN_LIMIT = 65536;

export class VolumeReader {
  /** Open files in least-recently-used-first order (Map keeps insertion order). */
  private readonly open = new Map<number, VolumeFile>();
  private closed = false;

  constructor(
    private readonly fs: Fs,
    /** Drive roots by slot: [dataDir, ...extraDrives]. */
    private readonly drives: string[],
    private readonly maxOpen = DEFAULT_MAX_OPEN,
  ) {
    if (!Number.isInteger(maxOpen) || maxOpen < 1 || maxOpen > MAX_OPEN_LIMIT) {
      throw new StoreError('BAD_ARGUMENT', `maxOpen out of range: ${maxOpen}`);
    }
  }

  /** How many volume files are open now (never more than maxOpen). */
  get openCount(): number {
    return this.open.size;
  }

  pathOf(volumeId: number): string {
    const slot = driveSlotOf(volumeId);
    const drive = this.drives[slot];
    if (!Number.isInteger(volumeId) || volumeId < 0 || drive === undefined) {
      throw new StoreError('NOT_FOUND', `volume ${volumeId} is on drive slot ${slot}, but there are ${this.drives.length} drives`);
    }
    return join(drive, VOLUMES_DIR, volumeFileName(volumeId));
  }

  readValue(address: NeedleAddress, keyLength: number, start: number, length: number): Uint8Array {
    return this.file(address.volume).readValue(address, keyLength, start, length);
  }

  readValueInto(address: NeedleAddress, keyLength: number, start: number, buf: Uint8Array): void {
    this.file(address.volume).readValueInto(address, keyLength, start, buf);
  }

  readEnvelope(address: NeedleAddress, keyLength: number): { head: Uint8Array; trailer: number } {
    return this.file(address.volume).readEnvelope(address, keyLength);
  }

  /** The range in fresh chunks of at most chunkSize bytes; the handle may be evicted between chunks. */
  *readChunks(address: NeedleAddress, keyLength: number, start: number, length: number, chunkSize = CHUNK_SIZE): IterableIterator<Uint8Array> {
    if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_WHOLE_READ) {
      throw new StoreError('BAD_ARGUMENT', `chunk size out of range: ${chunkSize}`);
    }
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(length) || start < 0 || length < 0) {
      throw new StoreError('BAD_ARGUMENT', `bad range ${start}+${length}`);
    }
    // Checks the whole range against the value before the first byte goes out.
    this.readValue(address, keyLength, start + length, 0);
    for (let done = 0; done < length; ) {
      const n = Math.min(chunkSize, length - done);
      yield this.readValue(address, keyLength, start + done, n);
      done += n;
    }
  }

  readNeedle(address: NeedleAddress): ReadNeedleResult {
    return this.file(address.volume).readNeedle(address);
  }

  verifyNeedle(address: NeedleAddress, key: Uint8Array): boolean {
    return this.file(address.volume).verifyNeedle(address, key);
  }

  /** Closes the handle of a volume (removed by vacuum, or to be reopened). */
  forget(volumeId: number): void {
    const file = this.open.get(volumeId);
    if (file === undefined) return;
    this.open.delete(volumeId);
    file.close();
  }

  close(): void {
    this.closed = true;
    for (const file of this.open.values()) file.close();
    this.open.clear();
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
      this.forget(oldest.value);
    }
  }
}
