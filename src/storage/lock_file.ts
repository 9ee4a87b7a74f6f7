// The data dir lock `LOCK` (docs/formats.md §LOCK): one process per data dir. LOCK is created
// with O_EXCL and holds {"pid", "host", "started"}. A second process fails with LOCKED, naming
// the holder, unless the holder is a pid that no longer runs on this host: then the stale lock
// is removed and the create retried (bounded).
//
// Why no fsync: the lock guards running processes only. After a power loss nothing runs, and a
// lock that vanished or a stale one both resolve to "free" on the next start.
//
// Known limit: the Fs seam has no flock/link, so two processes that both find the same stale
// lock at the same instant could race between the re-read and the unlink; the re-read just
// before unlinking makes that window a few microseconds.
import { join } from 'node:path';
import type { Fs } from '../runtime/fs.js';
import { fsErrorCode } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';

export const LOCK_FILE = 'LOCK';
const MAX_LOCK_BYTES = 4096;
const MAX_ATTEMPTS = 3;

export interface LockOwner {
  pid: number;
  host: string;
  nowMs: number;
}

interface LockContent {
  pid: number;
  host: string;
  started: number;
}

export interface LockHandle {
  release(): void;
}

export function acquireLock(fs: Fs, dataDir: string, me: LockOwner, isAlive: (pid: number) => boolean): LockHandle {
  const path = join(dataDir, LOCK_FILE);
  const mine: LockContent = { pid: me.pid, host: me.host, started: me.nowMs };
  const bytes = new TextEncoder().encode(JSON.stringify(mine));
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (tryCreate(fs, path, bytes)) return { release: () => release(fs, path, mine) };
    const seen = readRaw(fs, path);
    if (seen === null) continue; // removed meanwhile: try again
    const holder = parseLock(seen);
    if (holder !== null && !isStale(holder, me.host, isAlive)) throw lockedError(dataDir, holder);
    removeIfUnchanged(fs, path, seen);
  }
  throw new StoreError('LOCKED', `data dir ${dataDir}: could not take ${LOCK_FILE} after ${MAX_ATTEMPTS} attempts`);
}

/** True when LOCK was created by us; false when it already exists. */
function tryCreate(fs: Fs, path: string, bytes: Uint8Array): boolean {
  let file;
  try {
    file = fs.open(path, 'exclusive');
  } catch (err) {
    if (fsErrorCode(err) === 'EEXIST') return false;
    throw err;
  }
  try {
    file.write(bytes, 0);
  } catch (err) {
    file.close();
    fs.unlink(path);
    throw err;
  }
  file.close();
  return true;
}

/** A holder on another host cannot be checked, so it counts as alive. */
function isStale(holder: LockContent, host: string, isAlive: (pid: number) => boolean): boolean {
  return holder.host === host && !isAlive(holder.pid);
}

function lockedError(dataDir: string, holder: LockContent): StoreError {
  const started = Number.isFinite(holder.started) ? new Date(holder.started).toISOString() : String(holder.started);
  return new StoreError('LOCKED', `data dir ${dataDir} is held by pid ${holder.pid} (started ${started})`);
}

/** The raw bytes of LOCK, or null when it does not exist. Bounded: a LOCK is tiny. */
function readRaw(fs: Fs, path: string): string | null {
  try {
    const file = fs.open(path, 'read');
    try {
      const buf = new Uint8Array(Math.min(file.size(), MAX_LOCK_BYTES));
      const n = file.read(buf, 0);
      return new TextDecoder().decode(buf.subarray(0, n));
    } finally {
      file.close();
    }
  } catch (err) {
    if (fsErrorCode(err) === 'ENOENT') return null;
    throw err;
  }
}

/** null for an empty or unreadable lock (its creator died before writing it): stale. */
function parseLock(text: string): LockContent | null {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null) return null;
    const { pid, host, started } = v as Record<string, unknown>;
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return null;
    if (typeof host !== 'string' || typeof started !== 'number') return null;
    return { pid, host, started };
  } catch {
    return null;
  }
}

function removeIfUnchanged(fs: Fs, path: string, seen: string): void {
  if (readRaw(fs, path) !== seen) return; // someone replaced it: look again
  try {
    fs.unlink(path);
  } catch (err) {
    if (fsErrorCode(err) !== 'ENOENT') throw err;
  }
}

/** Unlinks LOCK only while it is still ours (never another process's fresh lock). */
function release(fs: Fs, path: string, mine: LockContent): void {
  const text = readRaw(fs, path);
  if (text === null) return;
  const holder = parseLock(text);
  if (holder === null || holder.pid !== mine.pid || holder.host !== mine.host || holder.started !== mine.started) {
    return;
  }
  fs.unlink(path);
}
