// Reading log volumes (docs/formats.md §Log volumes): which files a log directory holds, and
// the log needles of one file in order. Shared by the volume log's open (log_volume.ts) and
// the rebuild (log_rebuild.ts).
// Invariants:
// - a file is read needle by needle, never whole; one needle is at most ~72 MiB (one WAL record);
// - only the bytes present when the scan starts are read;
// - errors of the file system leave as StoreError naming the file.
import type { Fs } from '../runtime/fs.js';
import { join } from 'node:path';
import { alignUp, NEEDLE_HEADER_SIZE, VOLUME_SUPERBLOCK_SIZE } from './volume_format.js';
import {
  decodeLogNeedleHeader,
  decodeLogSuperblock,
  logNeedleIntact,
  logNeedleLength,
  parseLogVolumeFileName,
  type LogNeedleHeader,
  type LogSuperblock,
} from './log_volume_format.js';
import { io } from './wal_reader.js';

export interface LogVolumeFile {
  path: string;
  superblock: LogSuperblock;
}

export interface LogNeedle extends LogNeedleHeader {
  offset: number;
  /** The needle's WAL frames (a view into a buffer of its own). */
  frames: Uint8Array;
}

export interface LogScanEnd {
  /** Just past the last intact needle before the first bad one (or the end). */
  validEnd: number;
  fileSize: number;
  /** Bad regions stepped over (only when stepping over them was asked for). */
  skipped: number;
}

/**
 * The log volumes in `dir` whose superblock reads, by id. A file whose name fits and whose
 * superblock does not is returned in `unreadable` (a torn creation, or damage).
 */
export function listLogVolumes(fs: Fs, dir: string): { files: LogVolumeFile[]; unreadable: string[] } {
  const files: LogVolumeFile[] = [];
  const unreadable: string[] = [];
  for (const name of io(dir, () => fs.readdir(dir))) {
    if (parseLogVolumeFileName(name) === null) continue;
    const path = join(dir, name);
    const superblock = readLogSuperblock(fs, path);
    if (superblock === null) unreadable.push(path);
    else files.push({ path, superblock });
  }
  files.sort((a, b) => a.superblock.id - b.superblock.id);
  return { files, unreadable };
}

export function readLogSuperblock(fs: Fs, path: string): LogSuperblock | null {
  const file = io(path, () => fs.open(path, 'read'));
  try {
    const buf = new Uint8Array(VOLUME_SUPERBLOCK_SIZE);
    const n = io(path, () => file.read(buf, 0));
    return n === VOLUME_SUPERBLOCK_SIZE ? decodeLogSuperblock(buf) : null;
  } finally {
    file.close();
  }
}

/**
 * Yields the intact log needles of a file in order. `stepOver` false: the first needle that is
 * not intact ends the scan (the writer's torn tail). `stepOver` true: it is stepped over 8 bytes
 * at a time, as a scan of a data volume steps over garbage (the rebuild reads all it can).
 */
export function* scanLogVolume(fs: Fs, path: string, stepOver: boolean): Generator<LogNeedle, LogScanEnd> {
  const file = io(path, () => fs.open(path, 'read'));
  try {
    const fileSize = io(path, () => file.size());
    const head = new Uint8Array(NEEDLE_HEADER_SIZE);
    let at = VOLUME_SUPERBLOCK_SIZE;
    let validEnd = at;
    let skipped = 0;
    let inBad = false;
    while (at + NEEDLE_HEADER_SIZE <= fileSize) {
      const needle = readNeedle(file.path, (b, p) => file.read(b, p), head, at, fileSize);
      if (needle === null) {
        if (!stepOver) break;
        if (!inBad) skipped += 1;
        inBad = true;
        at += 8;
        continue;
      }
      inBad = false;
      yield needle;
      at = alignUp(needle.offset + logNeedleLength(needle.valueLength));
      validEnd = needle.offset + logNeedleLength(needle.valueLength);
    }
    return { validEnd, fileSize, skipped };
  } finally {
    file.close();
  }
}

function readNeedle(path: string, read: (b: Uint8Array, p: number) => number, head: Uint8Array, at: number, fileSize: number): LogNeedle | null {
  if (io(path, () => read(head, at)) !== NEEDLE_HEADER_SIZE) return null;
  const header = decodeLogNeedleHeader(head);
  if (header === null) return null;
  const length = logNeedleLength(header.valueLength);
  if (at + length > fileSize) return null;
  const whole = new Uint8Array(length);
  if (io(path, () => read(whole, at)) !== length || !logNeedleIntact(whole)) return null;
  return { ...header, offset: at, frames: whole.subarray(NEEDLE_HEADER_SIZE, NEEDLE_HEADER_SIZE + header.valueLength) };
}
