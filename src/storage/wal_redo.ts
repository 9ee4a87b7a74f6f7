// Redo needles (docs/formats.md §WAL, "Redo needles"). A record may carry the needles of its
// writes that were written to their volumes but not synced, so that one fdatasync (the WAL's)
// makes a small write durable. Two duties follow from it, both here:
// - at open, before any volume writer appends: every redo needle of a record after the index's
//   durable LSN is written again at its place, and the volumes written are fdatasynced. A power
//   loss that took unsynced volume bytes so takes nothing that was acknowledged;
// - before the index's durable LSN passes a record (a checkpoint, a rebuild's swap), the volumes
//   its SETs named are fdatasynced (syncVolumeFiles), so the redo at open never needs an older
//   record, and the WAL never needs to keep one past COMPACT.
// A volume file that is not there was retired and removed: a volume's directory entry is durable
// from its creation (drive_volumes.ts), so nothing else takes one away. Its needles are garbage
// (every key in it moved first) and are not written back.
import { join } from 'node:path';
import type { FileHandle, Fs } from '../runtime/fs.js';
import { volumeFilePath, type VolumeDirs } from './drive_volumes.js';
import { HEADER_SIZE, decodeHeader } from './hash_index_format.js';
import { INDEX_FILE, WAL_FILE } from './store_files.js';
import type { RedoNeedle } from './types.js';
import { needleLength, writePlainNeedle } from './volume_format.js';
import { replayInto } from './wal_reader.js';

export interface RedoReport {
  /** Records after the index's durable LSN that were read. */
  records: number;
  /** Needles written back. */
  needles: number;
  /** Needles of volumes that are gone (retired and removed): not written. */
  skipped: number;
}

/**
 * Writes back the redo needles of every record after the index's durable LSN, then fdatasyncs
 * the volumes written. Run before the store's actors start (nothing appends meanwhile).
 */
export function redoNeedles(fs: Fs, dataDir: string, dirs: VolumeDirs): RedoReport {
  const report: RedoReport = { records: 0, needles: 0, skipped: 0 };
  const walPath = join(dataDir, WAL_FILE);
  if (!fs.exists(walPath)) return report;
  const files = new VolumeHandles(fs, dirs);
  try {
    replayInto(fs, walPath, indexDurableLsn(fs, dataDir), (record) => {
      report.records += 1;
      for (const n of record.redo ?? []) {
        if (files.write(n)) report.needles += 1;
        else report.skipped += 1;
      }
    });
    files.syncAll();
  } finally {
    files.closeAll();
  }
  return report;
}

/** fdatasync of each volume's file (through a handle of its own: the page cache is the file's). */
export function syncVolumeFiles(fs: Fs, dirs: VolumeDirs, volumes: Iterable<number>): void {
  const files = new VolumeHandles(fs, dirs);
  try {
    for (const v of volumes) files.get(v);
    files.syncAll();
  } finally {
    files.closeAll();
  }
}

/**
 * The LSN the index's header vouches for: its records need no redo. 0 when there is no index,
 * or none that reads (it will be rebuilt from the WAL: every record is redone). The heads file
 * of an interrupted checkpoint may say more; the header's is never more than the truth.
 */
function indexDurableLsn(fs: Fs, dataDir: string): number {
  const path = join(dataDir, INDEX_FILE);
  if (!fs.exists(path)) return 0;
  try {
    const handle = fs.open(path, 'read');
    try {
      const buf = new Uint8Array(HEADER_SIZE);
      const got = handle.read(buf, 0);
      return decodeHeader(buf.subarray(0, got), path).durableLsn;
    } finally {
      handle.close();
    }
  } catch {
    return 0;
  }
}

/** Volume files opened for writing as they are first needed; null for one that is gone. */
class VolumeHandles {
  private readonly open = new Map<number, FileHandle | null>();

  constructor(
    private readonly fs: Fs,
    private readonly dirs: VolumeDirs,
  ) {}

  get(volume: number): FileHandle | null {
    let handle = this.open.get(volume);
    if (handle === undefined) {
      const path = volumeFilePath(this.dirs, volume);
      handle = path !== undefined && this.fs.exists(path) ? this.fs.open(path, 'write') : null;
      this.open.set(volume, handle);
    }
    return handle;
  }

  /** False when the needle's volume is not here. */
  write(n: RedoNeedle): boolean {
    const handle = this.get(n.volume);
    if (handle === null) return false;
    const buf = new Uint8Array(needleLength(n.key.length, n.value.length));
    writePlainNeedle(buf, 0, n.key, n.value, n.expiresAt);
    handle.write(buf, n.offset);
    return true;
  }

  syncAll(): void {
    for (const handle of this.open.values()) handle?.sync();
  }

  closeAll(): void {
    for (const handle of this.open.values()) handle?.close();
    this.open.clear();
  }
}
