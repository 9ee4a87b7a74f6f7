// The piscina worker file: CPU-heavy batch jobs that own no state (DESIGN §1), so no actor's
// mailbox stalls behind them. Owns the table of jobs; cpu_pool.ts runs them by name.
// Adding a job is one line in `jobs` (write the function with typed input and output); the
// CpuJobs type, and so CpuPool.run's types, follow from the table.
// Invariants: a job never throws across the thread: runJob answers {ok, value} or
// {ok: false, error: WireError}, because piscina clones a thrown error without its code.
// Every job bounds its input.
import { crc32 } from 'node:zlib';
import { StoreError } from '../storage/types.js';
import { toWireError, type WireError } from './errors.js';
import { NodeFs } from './fs.js';

export const MAX_GLOB_PATTERN = 64 * 1024;
export const MAX_GLOB_KEYS = 1_000_000;
const CRC_CHUNK = 1024 * 1024;

export const jobs = {
  globFilter,
  crcFile,
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
  const out: number[] = [];
  for (let i = 0; i < keys.length; i++) if (globMatch(pattern, keys[i])) out.push(i);
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

// ---- glob ---------------------------------------------------------------------------------------
// Local until src/storage/glob.ts lands; same semantics as Redis stringmatchlen. Linear-ish:
// on a mismatch it backtracks only to the last '*', so no pattern is exponential.

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const CARET = 0x5e;
const DASH = 0x2d;
const BACKSLASH = 0x5c;

/** True when `key` matches the whole of `pattern`. */
export function globMatch(pattern: Uint8Array, key: Uint8Array): boolean {
  let p = 0;
  let k = 0;
  let starP = -1;
  let starK = 0;
  while (k < key.length) {
    if (p < pattern.length && pattern[p] === STAR) {
      starP = p++;
      starK = k;
      continue;
    }
    if (p < pattern.length) {
      const next = matchOne(pattern, p, key[k]);
      if (next > 0) {
        p = next;
        k++;
        continue;
      }
    }
    if (starP < 0) return false;
    p = starP + 1;
    k = ++starK;
  }
  while (p < pattern.length && pattern[p] === STAR) p++;
  return p === pattern.length;
}

/** Matches one pattern token at p against byte c: the index after the token, or -1. */
function matchOne(pattern: Uint8Array, p: number, c: number): number {
  const t = pattern[p];
  if (t === QUESTION) return p + 1;
  if (t === BACKSLASH && p + 1 < pattern.length) return pattern[p + 1] === c ? p + 2 : -1;
  if (t === OPEN) return matchClass(pattern, p + 1, c);
  return t === c ? p + 1 : -1;
}

/** A [class] from just after '[': the index after its ']' (or the pattern's end), or -1. */
function matchClass(pattern: Uint8Array, p: number, c: number): number {
  const negate = pattern[p] === CARET;
  if (negate) p++;
  let hit = false;
  while (p < pattern.length && pattern[p] !== CLOSE) {
    if (pattern[p] === BACKSLASH && p + 1 < pattern.length) {
      if (pattern[p + 1] === c) hit = true;
      p += 2;
    } else if (p + 2 < pattern.length && pattern[p + 1] === DASH && pattern[p + 2] !== CLOSE) {
      const lo = Math.min(pattern[p], pattern[p + 2]);
      const hi = Math.max(pattern[p], pattern[p + 2]);
      if (c >= lo && c <= hi) hit = true;
      p += 3;
    } else {
      if (pattern[p] === c) hit = true;
      p++;
    }
  }
  const end = p < pattern.length ? p + 1 : p;
  return hit !== negate ? end : -1;
}
