// runtime/cpu_pool.ts + storage/cpu_jobs.ts: jobs run on piscina threads with typed input and output, and a
// job's error arrives with its code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CpuPool } from '../src/runtime/cpu_pool.js';
import { CPU_JOBS, type StoreJobs } from '../src/storage/cpu_jobs.js';
import { StoreError } from '../src/runtime/errors.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('globFilter returns the indexes of the matching keys', async () => {
  const pool = new CpuPool<StoreJobs>(CPU_JOBS, { maxThreads: 1 });
  try {
    const keys = ['user:1', 'user:22', 'order:1', 'user:', 'users:3'].map(enc);
    assert.deepEqual(await pool.run('globFilter', { pattern: enc('user:*'), keys }), [0, 1, 3]);
    assert.deepEqual(await pool.run('globFilter', { pattern: enc('user:?'), keys }), [0]);
    assert.deepEqual(await pool.run('globFilter', { pattern: enc('*'), keys }), [0, 1, 2, 3, 4]);
    assert.deepEqual(await pool.run('globFilter', { pattern: enc('[ou]*:[^2]*'), keys }), [0, 2, 4]);
  } finally {
    await pool.destroy();
  }
});

test('crcFile matches zlib.crc32 of the range, across 1 MiB chunks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-cpu-'));
  const pool = new CpuPool<StoreJobs>(CPU_JOBS, { maxThreads: 2 });
  try {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 9)) & 0xff;
    const path = join(dir, 'vol.data');
    writeFileSync(path, data);
    const start = 1000;
    const length = data.length - 2000;
    const [whole, part, empty] = await Promise.all([
      pool.run('crcFile', { path, start: 0, length: data.length }),
      pool.run('crcFile', { path, start, length }),
      pool.run('crcFile', { path, start: 5, length: 0 }),
    ]);
    assert.equal(whole, crc32(data));
    assert.equal(part, crc32(data.subarray(start, start + length)));
    assert.equal(empty, 0);
    await assert.rejects(
      pool.run('crcFile', { path, start: data.length - 10, length: 100 }),
      (e: unknown) => e instanceof StoreError && e.code === 'SIZE_MISMATCH' && e.message.includes(path),
    );
    await assert.rejects(
      pool.run('crcFile', { path, start: -1, length: 1 }),
      (e: unknown) => e instanceof StoreError && e.code === 'BAD_ARGUMENT',
    );
  } finally {
    await pool.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a destroyed pool refuses jobs with CLOSED', async () => {
  const pool = new CpuPool<StoreJobs>(CPU_JOBS, { maxThreads: 1 });
  await pool.destroy();
  await assert.rejects(pool.run('globFilter', { pattern: enc('*'), keys: [] }), (e: unknown) => e instanceof StoreError && e.code === 'CLOSED');
});
