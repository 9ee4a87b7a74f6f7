// The piscina worker file: CPU-heavy batch jobs that own no state (DESIGN §1), so no actor's
// mailbox stalls behind them. Owns the table of jobs; cpu_pool.ts runs them by name.
// Adding a job is one line in `jobs` (write the function with typed input and output); the
// CpuJobs type, and so CpuPool.run's types, follow from the table.
// Invariants: a job never throws across the thread: runJob answers {ok, value} or
// {ok: false, error: WireError}, because piscina clones a thrown error without its code.
// Every job bounds its input.
import { crc32 } from 'node:zlib';
import { globMatch, isMatchAll } from '../storage/glob.js';
import { StoreError } from '../storage/types.js';
import { toWireError, type WireError } from './errors.js';
import { NodeFs } from './fs.js';
import { VolumeFile } from '../storage/volume_file.js';
import { NeedleFlag } from '../storage/volume_format.js';

export const MAX_GLOB_PATTERN = 64 * 1024;
export const MAX_GLOB_KEYS = 1_000_000;
const CRC_CHUNK = 1024 * 1024;

export const jobs = {
  globFilter,
  crcFile,
  scrubVolume,
} satisfies Record<string, (input: never) => unknown>;

type Jobs = typeof jobs;
/** job name -> {input, output}: the contract of CpuPool.run. */
export type CpuJobs = { [K in keyof Jobs]: { input: Parameters<Jobs[K]>[0]; output: Awaited<ReturnType<Jobs[K]>> } };

export interface CpuTask {
  job: string;
  input: unknown;
}
export type CpuResult = { ok: true; value: unknown } | { ok: false; error: WireError };

/** piscina's entry point. */
export default async function runJob(task: CpuTask): Promise<CpuResult> {
  try {
    if (!Object.hasOwn(jobs, task.job)) throw new StoreError('BAD_ARGUMENT', `no CPU job named ${task.job}`);
    const fn = jobs[task.job as keyof Jobs] as (input: unknown) => unknown;
    return { ok: true, value: await fn(task.input) };
  } catch (err) {
    return { ok: false, error: toWireError(err) };
  }
}

// ---- jobs ---------------------------------------------------------------------------------------

/** Indexes of the keys that match a Redis-style glob (* ? [abc] [^a-z] \x). */
function globFilter(input: { pattern: Uint8Array; keys: Uint8Array[] }): number[] {
  const { pattern, keys } = input;
  if (pattern.length > MAX_GLOB_PATTERN) throw new StoreError('BAD_ARGUMENT', `glob pattern of ${pattern.length} bytes (limit ${MAX_GLOB_PATTERN})`);
  if (keys.length > MAX_GLOB_KEYS) throw new StoreError('BATCH_TOO_LARGE', `${keys.length} keys in one glob job (limit ${MAX_GLOB_KEYS})`);
  const all = isMatchAll(pattern);
  const out: number[] = [];
  for (let i = 0; i < keys.length; i++) if (all || globMatch(pattern, keys[i])) out.push(i);
  return out;
}

/** CRC-32 (zlib's, IEEE) of `length` bytes of a file from `start`, read 1 MiB at a time. */
function crcFile(input: { path: string; start: number; length: number }): number {
  const { path, start, length } = input;
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new StoreError('BAD_ARGUMENT', `crcFile ${path}: bad range start=${start} length=${length}`);
  }
  const file = new NodeFs().open(path, 'read');
  try {
    const buf = new Uint8Array(Math.min(CRC_CHUNK, Math.max(1, length)));
    let crc = 0;
    for (let done = 0; done < length; ) {
      const want = Math.min(buf.length, length - done);
      const n = file.read(buf.subarray(0, want), start + done);
      if (n !== want) {
        throw new StoreError('SIZE_MISMATCH', `crcFile ${path}: file ends at ${start + done + n}, before ${start + length}`);
      }
      crc = crc32(buf.subarray(0, n), crc);
      done += n;
    }
    return crc;
  } finally {
    file.close();
  }
}

/** Invalid needles one scrub reports at most (the count goes on past it). */
export const MAX_SCRUB_REPORT = 1000;

export interface ScrubReport {
  path: string;
  needles: number;
  tombstones: number;
  valueBytes: number;
  invalid: number;
  /** The first MAX_SCRUB_REPORT invalid regions (offset, claimed length). */
  invalidAt: { offset: number; length: number }[];
}

/**
 * Reads a whole volume and checks every needle's header and value CRC: the scrub that finds
 * corruption before a reader does. An invalid needle that no WAL record names (an aborted
 * upload, bytes a crash left unsynced) is harmless; one the index names is real damage.
 */
export function scrubVolume(input: { path: string }): ScrubReport {
  const volume = VolumeFile.open(new NodeFs(), input.path, 'read');
  const report: ScrubReport = { path: input.path, needles: 0, tombstones: 0, valueBytes: 0, invalid: 0, invalidAt: [] };
  try {
    for (const n of volume.scan({ verifyValues: true })) {
      if (!n.valid) {
        report.invalid += 1;
        if (report.invalidAt.length < MAX_SCRUB_REPORT) report.invalidAt.push({ offset: n.address.offset, length: n.address.length });
        continue;
      }
      report.needles += 1;
      if ((n.flags & NeedleFlag.Tombstone) !== 0) report.tombstones += 1;
      report.valueBytes += n.valueLength;
    }
    return report;
  } finally {
    volume.close();
  }
}
