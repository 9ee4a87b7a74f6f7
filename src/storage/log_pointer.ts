// Where the volume log is (docs/formats.md §Log volumes): `volume-log.json` in the data dir,
// `{"version": 1, "dir": "/abs/drive/log"}`, replaced atomically by the WAL committer each time it
// opens the log. The rebuild reads it to find a log that is on none of the registry's drives
// (--log-drive); the committer reads it to remove the old copy when the log drive changed (an old
// generation left there would be a rebuild's wrong, older choice).
import { join } from 'node:path';
import type { Fs } from '../runtime/fs.js';
import { removeStaleTemp, replaceFileAtomically } from './atomic_file.js';
import { listLogVolumes } from './log_volume_reader.js';

export const LOG_POINTER_FILE = 'volume-log.json';
/** The file is a path and a version: anything bigger is not ours. */
const MAX_POINTER_BYTES = 8192;

/** The log directory the pointer names, or null (no file, or one that does not read). */
export function readLogPointer(fs: Fs, dataDir: string): string | null {
  const path = join(dataDir, LOG_POINTER_FILE);
  try {
    removeStaleTemp(fs, path);
    if (!fs.exists(path)) return null;
    const bytes = fs.readFile(path);
    if (bytes.length > MAX_POINTER_BYTES) return null;
    const parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return null;
    const { version, dir } = parsed as { version?: unknown; dir?: unknown };
    return version === 1 && typeof dir === 'string' && dir.startsWith('/') ? dir : null;
  } catch {
    // A pointer that does not read points nowhere: the rebuild searches the drives it knows.
    return null;
  }
}

export function writeLogPointer(fs: Fs, dataDir: string, logDir: string): void {
  replaceFileAtomically(fs, join(dataDir, LOG_POINTER_FILE), new TextEncoder().encode(`${JSON.stringify({ version: 1, dir: logDir })}\n`));
}

/**
 * The log now lives in `logDir`, whole and synced: the copy in the directory the pointer named
 * before (when another one) is removed, then the pointer names the new one. Returns the files
 * removed.
 */
export function moveLogPointer(fs: Fs, dataDir: string, logDir: string): string[] {
  const before = readLogPointer(fs, dataDir);
  const removed: string[] = [];
  if (before !== null && before !== logDir && fs.exists(before)) {
    const { files, unreadable } = listLogVolumes(fs, before);
    for (const path of [...files.map((f) => f.path), ...unreadable]) {
      fs.unlink(path);
      removed.push(path);
    }
    if (removed.length > 0) fs.syncDir(before);
  }
  if (before !== logDir) writeLogPointer(fs, dataDir, logDir);
  return removed;
}
