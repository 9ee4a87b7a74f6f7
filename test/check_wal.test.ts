// The WAL refuses damage in its middle (it never cuts acknowledged records away in silence),
// and `cmd/check-wal.js` reports it and, with --fix, cuts the log there after keeping a copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openInThread } from '../src/wiring/in_thread.js';
import { systemScheduler } from '../src/runtime/scheduler.js';
import { NodeFs } from '../src/runtime/fs.js';
import { systemClock } from '../src/runtime/clock.js';
import { StoreError } from '../src/runtime/errors.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

function checkWal(dir: string, ...extra: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'cmd', 'check-wal.js'), '--data', dir, ...extra], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

test('damage in the middle of wal.log: the store refuses to open; check-wal reports it; --fix cuts it and the store opens with what came before', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-checkwal-'));
  try {
    let db = await openInThread({ fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, dir });
    for (let i = 0; i < 20; i++) await db.set(`k${i}`, `value-${i}`);
    await db.close();
    assert.equal(checkWal(dir).code, 0);

    const wal = join(dir, 'wal.log');
    const bytes = readFileSync(wal);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x40; // a byte of a record in the middle
    writeFileSync(wal, bytes);

    await assert.rejects(
      openInThread({ fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, dir }),
      (e: unknown) => e instanceof StoreError && e.code === 'CORRUPT' && /damaged in the middle/.test(e.message),
    );
    assert.equal(readFileSync(wal).length, bytes.length, 'nothing was cut by the failed open');

    const report = checkWal(dir);
    assert.equal(report.code, 1);
    assert.match(report.out, /DAMAGED in the middle/);

    const fixed = checkWal(dir, '--fix');
    assert.equal(fixed.code, 0, fixed.out);
    assert.ok(readdirSync(dir).some((n) => n.startsWith('wal.log.corrupt-')), 'a copy of the damaged log is kept');

    db = await openInThread({ fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, dir });
    const size = await db.dbsize();
    assert.ok(size > 0 && size < 20, `the records before the damage are there (${size})`);
    assert.equal((await db.get('k0'))?.toString(), 'value-0');
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
