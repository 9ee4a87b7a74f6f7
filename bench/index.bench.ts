// Benchmark of the on-disk hash index against lmdb's get, side by side in one run
// (../shared/DESIGN.md §6: a ratio to an anchor, never a bare number). For each size N it
// builds an index of N 16-byte keys (`key:%012d`) on a real temp dir through batched WAL
// records, checkpoints, measures random hits/s, misses/s and RSS, then puts the same keys
// (8-byte values) into lmdb and measures random gets/s with the same key sequence.
//
//   node --expose-gc dist/bench/index.bench.js [--keys 1000000,10000000]
//
// RSS is read right after the index is built and before lmdb is opened; run one size per
// process for a clean RSS figure (an earlier size's memory is not always given back).
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';

/** The part of lmdb's API the bench uses. lmdb is not a dependency of the project (its
 * platform packages are not all on every registry mirror, which breaks `npm ci`); `npm run
 * bench` installs it with --no-save first, and it is loaded here at run time. */
interface LmdbDatabase {
  transactionSync(fn: () => void): void;
  putSync(key: Buffer, value: Buffer): void;
  get(key: Buffer): unknown;
  close(): Promise<void>;
}
type LmdbOpen = (options: { path: string; keyEncoding: string; encoding: string; compression: boolean }) => LmdbDatabase;

async function loadLmdb(): Promise<LmdbOpen> {
  const name = 'lmdb';
  try {
    const mod = (await import(name)) as { open: LmdbOpen };
    return mod.open;
  } catch {
    throw new Error('lmdb is not installed: run `npm install --no-save lmdb` (npm run bench does it for you)');
  }
}
import { NodeFs } from '../src/runtime/fs.js';
import { HashIndex } from '../src/storage/hash_index.js';
import { OpCode, type Op } from '../src/storage/types.js';

export interface Row {
  keys: number;
  buckets: number;
  buildSeconds: number;
  briseLookupsPerSec: number;
  briseMissesPerSec: number;
  lmdbGetsPerSec: number;
  /** brise lookups / lmdb gets: above 1 means the index is faster. */
  ratio: number;
  briseRssMb: number;
}

const BATCH = 10_000;
const SAMPLE = 1 << 18; // distinct random keys looked up, cycled
const MIN_SECONDS = 1;
const MIN_LOOKUPS = 200_000;

function keyOf(i: number, prefix = 'key:'): Buffer {
  return Buffer.from(prefix + String(i).padStart(16 - prefix.length, '0'), 'latin1');
}

/** A fixed pseudo-random sequence, so brise and lmdb look up the same keys. */
function sampleKeys(n: number, prefix: string, seed: number): Buffer[] {
  let s = seed >>> 0;
  const out: Buffer[] = [];
  for (let i = 0; i < SAMPLE; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(keyOf(Math.floor((s / 2 ** 32) * n), prefix));
  }
  return out;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) g();
}

/** Runs fn over the sample until both minimums are met; returns operations per second. */
function rate(sample: Buffer[], fn: (key: Buffer) => unknown): number {
  for (let i = 0; i < 20_000; i++) fn(sample[i % SAMPLE]!); // warm-up
  let done = 0;
  const start = process.hrtime.bigint();
  let seconds = 0;
  while (seconds < MIN_SECONDS || done < MIN_LOOKUPS) {
    for (let i = 0; i < 10_000; i++) fn(sample[(done + i) % SAMPLE]!);
    done += 10_000;
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return done / seconds;
}

function buildIndex(dir: string, n: number): { index: HashIndex; seconds: number } {
  const buckets = Math.max(16, 2 ** Math.ceil(Math.log2(n)));
  const index = HashIndex.open(new NodeFs(), join(dir, 'index.hash'), { initialBuckets: buckets });
  const start = process.hrtime.bigint();
  let lsn = 1;
  for (let i = 0; i < n; i += BATCH) {
    const ops: Op[] = [];
    for (let j = i; j < Math.min(n, i + BATCH); j++) {
      ops.push({ code: OpCode.Set, key: keyOf(j), address: { volume: 1, offset: j * 64, length: 60 }, expiresAt: 0 });
    }
    index.apply({ lsn: lsn++, timeMs: Date.now(), kind: 0, ops });
  }
  // One checkpoint at the end: the bench measures lookups, not the checkpoint cadence (each
  // checkpoint costs three fsyncs; the owner spaces them by needsCheckpoint()).
  index.checkpoint();
  return { index, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

async function lmdbRate(dir: string, n: number, sample: Buffer[]): Promise<number> {
  const openLmdb = await loadLmdb();
  const db = openLmdb({ path: join(dir, 'lmdb'), keyEncoding: 'binary', encoding: 'binary', compression: false });
  const value = Buffer.alloc(8, 7);
  for (let i = 0; i < n; i += 100_000) {
    db.transactionSync(() => {
      for (let j = i; j < Math.min(n, i + 100_000); j++) db.putSync(keyOf(j), value);
    });
  }
  let found = 0;
  const r = rate(sample, (key) => {
    if (db.get(key) !== undefined) found++;
  });
  if (found === 0) throw new Error('lmdb found none of the keys');
  await db.close();
  return r;
}

async function benchOne(n: number): Promise<Row> {
  const dir = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-index-bench-'));
  try {
    const { index, seconds } = buildIndex(dir, n);
    gc();
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    const hits = sampleKeys(n, 'key:', 12345);
    const misses = sampleKeys(n, 'nok:', 777);
    const now = Date.now();
    let found = 0;
    const lookups = rate(hits, (key) => {
      if (index.get(key, now) !== undefined) found++;
    });
    if (found === 0) throw new Error('the index found none of the keys');
    const missRate = rate(misses, (key) => {
      if (index.get(key, now) !== undefined) throw new Error(`phantom ${key.toString()}`);
    });
    const buckets = index.bucketCount;
    index.close();
    const lmdb = await lmdbRate(dir, n, hits);
    return {
      keys: n,
      buckets,
      buildSeconds: seconds,
      briseLookupsPerSec: lookups,
      briseMissesPerSec: missRate,
      lmdbGetsPerSec: lmdb,
      ratio: lookups / lmdb,
      briseRssMb: rssMb,
    };
  } finally {
    nodeFs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function runIndexBench(sizes: number[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const n of sizes) rows.push(await benchOne(n));
  return rows;
}

function printRows(rows: Row[]): void {
  const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
  console.log('keys | brise lookups/s | lmdb gets/s | ratio | brise RSS MB | brise misses/s | buckets | build s');
  console.log('---|---|---|---|---|---|---|---');
  for (const r of rows) {
    console.log(
      `${fmt(r.keys)} | ${fmt(r.briseLookupsPerSec)} | ${fmt(r.lmdbGetsPerSec)} | ${r.ratio.toFixed(2)} | ` +
        `${r.briseRssMb.toFixed(0)} | ${fmt(r.briseMissesPerSec)} | ${fmt(r.buckets)} | ${r.buildSeconds.toFixed(1)}`,
    );
  }
}

function parseSizes(argv: string[]): number[] {
  const i = argv.indexOf('--keys');
  const raw = i >= 0 ? argv[i + 1] : undefined;
  if (raw === undefined) return [1_000_000];
  const sizes = raw.split(',').map((s) => Number(s.replace(/_/g, '')));
  for (const s of sizes) if (!Number.isInteger(s) || s < 1 || s > 100_000_000) throw new Error(`bad --keys value ${s}`);
  return sizes;
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  runIndexBench(parseSizes(process.argv.slice(2))).then(printRows, (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
