// Whole-file replacement (docs/formats.md §Replacing a file atomically): NAME.tmp is written,
// fsynced, renamed over NAME, and the directory is fsynced. A reader never sees a half-written
// file; a crash leaves the old file or the new one, and maybe a stale NAME.tmp that the owner
// of NAME deletes on open (removeStaleTemp).
//
// Also home of `syncDirectory`, the one place that honours canaries.skipDirSync, so every
// directory fsync that makes a creation or a rename durable (here and in drive_volumes) can be
// broken on purpose by the crash-test canary.
import { dirname } from 'node:path';
import type { FileHandle, Fs } from '../runtime/fs.js';
import { canaries } from '../runtime/canary.js';

export function tempPathOf(path: string): string {
  return `${path}.tmp`;
}

/** fsync of a directory, so creations, renames and unlinks in it survive a power loss. */
export function syncDirectory(fs: Fs, dir: string): void {
  if (canaries.skipDirSync) return; // canary: a rename or creation may vanish after a crash
  fs.syncDir(dir);
}

export function replaceFileAtomically(fs: Fs, path: string, bytes: Uint8Array): void {
  const tmp = tempPathOf(path);
  // A leftover from an earlier crash: 'create' never truncates, so start from nothing.
  removeStaleTemp(fs, path);
  let file: FileHandle | undefined = fs.open(tmp, 'exclusive');
  try {
    file.write(bytes, 0);
    file.sync();
    const done = file;
    file = undefined; // never closed twice: a retried close could hit a reused descriptor
    done.close();
    fs.rename(tmp, path);
  } catch (err) {
    if (file !== undefined) closeQuietly(file);
    removeQuietly(fs, tmp);
    throw err;
  }
  syncDirectory(fs, dirname(path));
}

/** Deletes NAME.tmp if a crash left one behind. */
export function removeStaleTemp(fs: Fs, path: string): void {
  const tmp = tempPathOf(path);
  if (fs.exists(tmp)) fs.unlink(tmp);
}

function closeQuietly(file: FileHandle): void {
  try {
    file.close();
  } catch {
    // already failing: the first error is the one to report
  }
}

function removeQuietly(fs: Fs, path: string): void {
  try {
    if (fs.exists(path)) fs.unlink(path);
  } catch {
    // a stale temp is harmless: the next open removes it
  }
}
