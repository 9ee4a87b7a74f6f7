// The piscina worker file of the store's CPU-heavy batch jobs (DESIGN §1): glob filters over
// large key lists, CRCs of file ranges, volume scrubs. CpuPool (runtime/cpu_pool.ts) runs them
// by name; adding a job is one line in `jobs`, and the types of CpuPool.run follow from it.
// Invariants: every job bounds its input; errors travel as WireErrors (runtime/cpu_job.ts).
import { StoreError } from '../runtime/errors.js';
import { NodeFs } from '../runtime/fs.js';
import { jobRunner, type JobsOf } from '../runtime/cpu_job.js';
import { crc32 } from './checksum.js';
import { globMatch, isMatchAll } from './glob.js';
import { scrubVolume } from './volume_scrub.js';

export const MAX_GLOB_PATTERN = 64 * 1024;
export const MAX_GLOB_KEYS = 1_000_000;
const CRC_CHUNK = 1024 * 1024;

export const jobs = {
  globFilter,
  crcFile,
  scrubVolume,
} satisfies Record<string, (input: never) => unknown>;

/** The table's type: `new CpuPool<StoreJobs>(CPU_JOBS)`. */
export type StoreJobs = typeof jobs;
export type StoreJobTypes = JobsOf<StoreJobs>;

/** piscina's entry point. */
export default jobRunner(jobs);

/** The URL of this worker file, for `new CpuPool<StoreJobs>(CPU_JOBS)`. */
export const CPU_JOBS = new URL(import.meta.url);

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
