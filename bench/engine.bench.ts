// `npm run bench`: the seed's benchmark table for the embedded engine, measured here through
// open() (actors on worker threads, real files, fsync policy 'always' unless a row says
// otherwise), printed beside the seed's figures (Apple M1, Go, its own fsync policy). Then the
// index lookups at 1 M and 10 M keys beside lmdb measured in the same run.
//
// Flags: --quick (shorter runs, index at 100k/1M keys), --index-keys 1000000,10000000,
//        --no-index (skip the index/lmdb part), --seconds N (time per row, default 1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../src/runtime/fs.js';
import { HashIndex } from '../src/storage/hash_index.js';
import { OpCode, type WalRecord } from '../src/storage/types.js';
import { open } from '../src/wiring/open.js';
import type { Database } from '../src/db/api.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

interface Row {
  name: string;
  ops: number;
  seed: number;
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const seconds = Number(argValue('--seconds') ?? (quick ? 0.5 : 1));
const indexKeys = (argValue('--index-keys') ?? (quick ? '100000,1000000' : '1000000,10000000')).split(',').map(Number);

function argValue(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs `op` sequentially for about `seconds` (at least `minOps` times); ops/s. */
async function measure(op: (i: number) => Promise<unknown>, minOps = 50): Promise<number> {
  for (let i = 0; i < Math.min(200, minOps); i++) await op(i); // warm up
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let n = 0;
  while (n < minOps || performance.now() < deadline) {
    await op(n);
    n += 1;
    if (n >= 5_000_000) break;
  }
  return n / ((performance.now() - start) / 1000);
}

/** `workers` concurrent loops of `op` for about `seconds`; total ops/s. */
async function measureConcurrent(workers: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let n = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < deadline) await op(n++);
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

async function engineRows(db: Database): Promise<Row[]> {
  const rows: Row[] = [];
  const small = Buffer.from('value-0123456789');
  const add = (name: string, ops: number, seed: number): void => {
    rows.push({ name, ops, seed });
    console.error(`  ${name}: ${fmt(ops)} ops/s`);
  };

  add('Set (single key, WAL flush)', await measure((i) => db.set(`set:${i}`, small)), 109_000);
  const keys = 10_000;
  for (let i = 0; i < keys; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => db.set(`get:${i + j}`, small)));
  add('Get', await measure((i) => db.get(`get:${i % keys}`)), 615_000);
  add('Get (miss / not found)', await measure((i) => db.get(`missing:${i}`)), 42_000_000);
  add('Delete', await measure((i) => db.delete(`get:${i % keys}`)), 691_000);

  for (const [label, size, seed] of [['1 KB', 1024, 92_000], ['64 KB', 65536, 12_000], ['1 MB', 1 << 20, 866]] as const) {
    const value = Buffer.alloc(size, 0x61);
    add(`SetBlob ${label}`, await measure((i) => db.set(`blob${size}:${i % 200}`, value), 20), seed);
  }
  for (const [label, size, seed] of [['1 KB', 1024, 427_000], ['64 KB', 65536, 149_000], ['1 MB (cached)', 1 << 20, 1_000_000]] as const) {
    add(`GetBlob ${label}`, await measure((i) => db.get(`blob${size}:${i % 200}`), 20), seed);
  }

  add('Transaction (1 key)', await measure(async (i) => {
    db.begin();
    await db.set(`tx:${i}`, small);
    await db.commit();
  }), 106_000);
  add('Transaction (10 keys)', await measure(async (i) => {
    db.begin();
    for (let k = 0; k < 10; k++) await db.set(`tx10:${i}:${k}`, small);
    await db.commit();
  }), 10_000);
  add('Rollback', await measure(async (i) => {
    db.begin();
    await db.set(`rb:${i}`, small);
    db.rollback();
  }), 5_000_000);

  const sessions = Array.from({ length: 8 }, () => db.session());
  add('Set (8 concurrent, group commit)', await measureConcurrent(8, (i) => sessions[i % 8]!.set(`c:${i}`, small)), 884_000);
  add('Get (8 concurrent)', await measureConcurrent(8, (i) => sessions[i % 8]!.get(`get:${i % keys}`)), 421_000);
  add('Mixed 80% read / 20% write (8 concurrent)', await measureConcurrent(8, (i) =>
    i % 5 === 0 ? sessions[i % 8]!.set(`m:${i}`, small) : sessions[i % 8]!.get(`get:${i % keys}`),
  ), 355_000);
  return rows;
}

/** The HashIndex alone, in this thread (the seed's HashIndex rows). */
function hashIndexRows(): Row[] {
  const dir = mkdtempSync(join(tmpdir(), 'brise-bench-idx-'));
  try {
    const index = HashIndex.open(new NodeFs(), join(dir, 'index.hash'), { initialBuckets: 1 << 20 });
    const n = quick ? 100_000 : 500_000;
    const keys = Array.from({ length: n }, (_, i) => Buffer.from(`key:${String(i).padStart(12, '0')}`));
    let lsn = 0;
    let t = performance.now();
    for (const key of keys) {
      const record: WalRecord = { lsn: ++lsn, timeMs: 0, kind: 0, ops: [{ code: OpCode.Set, key, address: { volume: 0, offset: lsn * 64, length: 64 }, expiresAt: 0 }] };
      index.apply(record);
    }
    const setOps = n / ((performance.now() - t) / 1000);
    index.checkpoint();
    t = performance.now();
    for (let i = 0; i < n; i++) index.get(keys[(i * 7919) % n]!, 1);
    const getOps = n / ((performance.now() - t) / 1000);
    const missKeys = Array.from({ length: 1000 }, (_, i) => Buffer.from(`nokey:${String(i).padStart(11, '0')}`));
    t = performance.now();
    for (let i = 0; i < n; i++) index.get(missKeys[i % 1000]!, 1);
    const missOps = n / ((performance.now() - t) / 1000);
    index.close();
    return [
      { name: `HashIndex Set (${fmt(n)} keys)`, ops: setOps, seed: 280_000 },
      { name: 'HashIndex Get', ops: getOps, seed: 950_000 },
      { name: 'HashIndex GetMiss', ops: missOps, seed: 135_000_000 },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return n.toFixed(0);
}

function printTable(rows: Row[]): void {
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log(`| ${'benchmark'.padEnd(w)} | BriseDB ops/s | seed ops/s (M1, Go) | BriseDB/seed |`);
  console.log(`|${'-'.repeat(w + 2)}|--------------:|--------------------:|-------------:|`);
  for (const r of rows) {
    console.log(`| ${r.name.padEnd(w)} | ${fmt(r.ops).padStart(13)} | ${fmt(r.seed).padStart(19)} | ${(r.ops / r.seed).toFixed(3).padStart(12)} |`);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'brise-bench-'));
  console.log(`BriseDB engine benchmark — Node ${process.version}, ${seconds} s per row, fsync policy 'always', data in ${dir}`);
  const db = await open(dir, { sync: 'always' });
  let rows: Row[];
  try {
    rows = await engineRows(db);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  rows.push(...hashIndexRows());
  printTable(rows);
  if (!args.includes('--no-index')) {
    // One process per size, so that each RSS figure is the index's own.
    console.log('\nIndex lookups at scale, beside lmdb in the same run (one process per size):');
    const script = fileURLToPath(new URL('./index.bench.js', import.meta.url));
    for (const n of indexKeys) {
      const run = spawnSync(process.execPath, ['--expose-gc', script, '--keys', String(n)], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
      const lines = run.stdout.trim().split('\n');
      console.log((n === indexKeys[0] ? lines : lines.slice(2)).join('\n'));
    }
  }
}

await main();
