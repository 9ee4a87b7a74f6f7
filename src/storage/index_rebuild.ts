// A rebuild of the hash index into index.hash.tmp (growth, and the index half of COMPACT),
// done a slice of old buckets at a time while the index goes on serving from the old file.
// Owns: index.hash.tmp from start() until swapIn() renames it over index.hash or abort()
// removes it.
// Invariants:
// - only the newest non-tombstone entry of each key is copied, so the state (and the live
//   count) is exactly preserved; expired keys leave through the sweep, which the WAL sees;
// - an entry applied to the old index meanwhile is mirrored here once its old bucket has been
//   copied (a bucket not copied yet will be copied with it);
// - a failure while copying touches only the new file: the owner drops the rebuild, not the
//   index; the swap writes a complete checkpoint (every head, both header slots) and syncs it
//   before the rename, and syncs the directory after it.
import { canaries } from '../runtime/canary.js';
import { StoreError } from '../runtime/errors.js';
import type { Fs } from '../runtime/fs.js';
import { dataStart, FLAG_TOMBSTONE, type EntryFields, type IndexHeader } from './hash_index_format.js';
import { asStoreError, dirOf, IndexFile, tmpPath, writeAllHeads, writeHeader, type ChainEntry } from './index_file.js';

export class IndexRebuild {
  /** Old buckets below this one have been copied. */
  private cursor = 0;

  private constructor(private readonly file: IndexFile) {}

  /** Creates index.hash.tmp with `buckets` empty buckets. A failure is the rebuild's alone. */
  static start(fs: Fs, mainPath: string, buckets: number): IndexRebuild {
    const tmp = tmpPath(mainPath);
    try {
      if (fs.exists(tmp)) fs.unlink(tmp);
      const handle = fs.open(tmp, 'exclusive');
      return new IndexRebuild(new IndexFile(handle, tmp, buckets, new Float64Array(buckets), dataStart(buckets), 0));
    } catch (err) {
      const e = asStoreError(err, tmp);
      throw new StoreError(e.code, `index rebuild not started: ${e.message}`);
    }
  }

  /**
   * Copies up to `maxBuckets` more old buckets (`latest` walks an old chain: the newest entry of
   * each key); true when all `oldBuckets` are copied.
   */
  copy(oldBuckets: number, maxBuckets: number, latest: (bucket: number) => ChainEntry[]): boolean {
    const stop = Math.min(oldBuckets, this.cursor + Math.max(1, maxBuckets));
    for (; this.cursor < stop; this.cursor++) {
      for (const e of latest(this.cursor)) {
        if ((e.flags & FLAG_TOMBSTONE) === 0) this.file.append(e.hash & this.file.mask, e, e.key);
      }
    }
    this.file.flush();
    return this.cursor >= oldBuckets;
  }

  /** An entry applied to the old index, in old bucket `oldBucket`: here too if already copied. */
  mirror(oldBucket: number, f: Omit<EntryFields, 'next'>, key: Uint8Array): void {
    if (oldBucket < this.cursor) this.file.append(f.hash & this.file.mask, f, key);
  }

  flush(): void {
    this.file.flush();
  }

  /** A FLUSH applied to the old index: every copied bucket emptied too (the swap writes every head). */
  clear(): void {
    this.file.heads.fill(0);
  }

  /**
   * Makes the new file a complete checkpoint described by `header` (every head, both header
   * slots: the next checkpoint must find a valid header in the slot it does not write), syncs
   * it, renames it over `mainPath` and syncs the directory. Returns it open as the main file.
   */
  swapIn(fs: Fs, mainPath: string, header: Omit<IndexHeader, 'buckets' | 'entriesEnd' | 'entryCount' | 'generation'>): IndexFile {
    const next = this.file;
    next.flush();
    next.handle.sync();
    writeAllHeads(next);
    const full: IndexHeader = { ...header, generation: next.generation + 1, buckets: next.buckets, entriesEnd: next.end, entryCount: next.entryCount };
    writeHeader(next, full);
    writeHeader(next, { ...full, generation: full.generation + 1 });
    next.handle.sync();
    next.handle.close();
    fs.rename(tmpPath(mainPath), mainPath);
    if (!canaries.skipDirSync) fs.syncDir(dirOf(mainPath));
    const file = new IndexFile(fs.open(mainPath, 'write'), mainPath, next.buckets, next.heads, next.end, next.entryCount);
    file.generation = next.generation;
    file.adoptChainBits(next);
    return file;
  }

  /** Closes and removes the new file (the old one was never touched). */
  abort(fs: Fs): void {
    this.file.handle.close();
    if (fs.exists(this.file.path)) fs.unlink(this.file.path);
  }
}
