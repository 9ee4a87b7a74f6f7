// Vacuum through the embedded API, on real files: garbage is counted by the index (and survives a
// restart), VACUUM gives the space back, every live value reads back byte for byte (small ones
// copied in batches, blobs with metadata streamed), expired keys are dropped, and writers and
// readers running during it lose nothing. A volume the automatic vacuum left for a damaged value
// is vacuumed again once that key is deleted; a close during a paced vacuum ends it at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, openStore } from '../src/wiring/open.js';
import type { Database, OpenOptions } from '../src/db/api.js';
import type { VacuumReport } from '../src/db/vacuum.js';
import { StoreError } from '../src/runtime/errors.js';
import { volumeFileName } from '../src/storage/volume_format.js';

const MiB = 1024 * 1024;
const OPTIONS: OpenOptions = { maxVolumeSize: MiB, autoVacuumEveryMs: 0, vacuum: { graceMs: 20, rateBytesPerSec: 0 } };

function volumeBytes(dir: string): number {
  return readdirSync(join(dir, 'volumes')).reduce((n, f) => n + statSync(join(dir, 'volumes', f)).size, 0);
}

function valueOf(key: string, round: number, size: number): Buffer {
  const seed = createHash('sha256').update(`${key}/${round}`).digest();
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += seed.length) seed.copy(out, i);
  return out;
}

async function assertModel(db: Database, model: Map<string, Buffer>): Promise<void> {
  for (const [key, value] of model) {
    const got = await db.get(key);
    assert.ok(got !== null, `${key} is there`);
    assert.ok(got.equals(value), `${key} reads back byte for byte`);
  }
}

async function totals(db: Database): Promise<{ live: number; garbage: number; size: number }> {
  const vols = await db.volinfo();
  return vols.reduce((t, v) => ({ live: t.live + v.liveBytes, garbage: t.garbage + v.garbageBytes, size: t.size + v.sizeBytes }), { live: 0, garbage: 0, size: 0 });
}

test('garbage is counted, survives a restart, and VACUUM gives it back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-vacuum-'));
  try {
    let db = await open(dir, OPTIONS);
    const model = new Map<string, Buffer>();
    for (let i = 0; i < 200; i++) {
      const key = `k${i}`;
      model.set(key, valueOf(key, 0, 8000));
      await db.set(key, model.get(key)!);
    }
    // Blobs with a metadata section (content type and digest) and above the batch size: streamed copies.
    for (let i = 0; i < 4; i++) {
      const key = `blob${i}`;
      const value = valueOf(key, 0, 300_000);
      await db.setStream(key, (async function* () { yield value; })(), { size: value.length, contentType: 'application/octet-stream' });
      model.set(key, value);
    }
    const before = await totals(db);
    assert.equal(before.garbage, 0, 'nothing is garbage yet');
    // 80 % overwritten or deleted, some keys given a TTL that passes.
    for (let i = 0; i < 200; i++) {
      const key = `k${i}`;
      if (i % 5 === 0) continue;
      if (i % 5 === 1) {
        await db.delete(key);
        model.delete(key);
      } else if (i % 5 === 2) {
        await db.set(key, valueOf(key, 1, 8000), { ttlMs: 1 });
        model.delete(key);
      } else {
        model.set(key, valueOf(key, 1, 8000));
        await db.set(key, model.get(key)!);
      }
    }
    await db.delete('blob0');
    model.delete('blob0');
    await new Promise((r) => setTimeout(r, 20));
    const dirty = await totals(db);
    assert.ok(dirty.garbage > 0.4 * dirty.size, `garbage ${dirty.garbage} of ${dirty.size} bytes`);
    await db.close();

    // The counts come back after a restart, exactly.
    db = await open(dir, OPTIONS);
    const again = await totals(db);
    assert.equal(again.live, dirty.live, 'live bytes after a restart');
    assert.equal(again.garbage, dirty.garbage, 'garbage bytes after a restart');

    const diskBefore = volumeBytes(dir);
    const reports = await db.vacuum();
    assert.ok(reports.length > 0, 'volumes over the threshold were vacuumed');
    for (const r of reports) assert.deepEqual(r.errors, [], `volume ${r.volume}: ${r.errors.join('; ')}`);
    const after = await totals(db);
    const diskAfter = volumeBytes(dir);
    assert.ok(diskAfter < diskBefore, `disk ${diskBefore} -> ${diskAfter}`);
    // What is left: the live bytes, the superblocks, and the garbage of volumes under the threshold.
    assert.ok(after.garbage <= 0.3 * after.size + MiB, `garbage after: ${after.garbage} of ${after.size}`);
    await assertModel(db, model);
    for (let i = 0; i < 200; i += 5) assert.equal(await db.get(`k${i + 1}`), null, 'a deleted key stays deleted');
    for (let i = 0; i < 200; i += 5) assert.equal(await db.get(`k${i + 2}`), null, 'an expired key stays gone');
    const blob = await db.getStream('blob1');
    assert.ok(blob !== null);
    const chunks: Buffer[] = [];
    for await (const c of blob.body) chunks.push(c);
    assert.ok(Buffer.concat(chunks).equals(model.get('blob1')!), 'a streamed copy keeps its bytes');
    // The reads of expired keys above deleted them (lazy expiry): the counts to find again are now's.
    await new Promise((r) => setTimeout(r, 50));
    const atClose = await totals(db);
    await db.close();

    // And after a restart: the moves are in the WAL, the removed volumes stay removed.
    db = await open(dir, OPTIONS);
    await assertModel(db, model);
    assert.deepEqual(await totals(db), atClose);
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writers and readers during a vacuum lose nothing; a key written meanwhile keeps its new value', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-vacuum-live-'));
  try {
    const db = await open(dir, OPTIONS);
    const model = new Map<string, Buffer>();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 300; i++) {
        const key = `k${i}`;
        model.set(key, valueOf(key, round, 3000));
        await db.set(key, model.get(key)!);
      }
    }
    // Every value each key ever had: a read may see an older one than the last written (it began
    // before the write), never bytes no one wrote.
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const history = new Map<string, Set<string>>([...model].map(([k, v]) => [k, new Set([sha(v)])]));
    let stop = false;
    let writes = 0;
    let reads = 0;
    const writer = (async () => {
      for (let n = 0; !stop && n < 20_000; n++) {
        const key = `k${n % 300}`;
        const value = valueOf(key, 100 + n, 3000);
        history.get(key)!.add(sha(value));
        await db.set(key, value);
        model.set(key, value);
        writes++;
      }
    })();
    const reader = (async () => {
      for (let n = 0; !stop && n < 50_000; n++) {
        const key = `k${(n * 7) % 300}`;
        const got = await db.get(key);
        assert.ok(got !== null, `${key} is never missing`);
        assert.ok(history.get(key)!.has(sha(got)), `${key} reads a value it was given`);
        reads++;
      }
    })();
    const reports = await db.vacuum();
    stop = true;
    await Promise.all([writer, reader]);
    assert.ok(reports.length > 0);
    assert.ok(reports.some((r) => r.removed), 'at least one volume was removed');
    assert.ok(writes > 0 && reads > 0, `${writes} writes and ${reads} reads ran during the vacuum`);
    await assertModel(db, model);
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the retired volumes survive a COMPACT and an index rebuilt from the compacted WAL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-vacuum-compact-'));
  try {
    let store = await openStore(dir, OPTIONS);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 100; i++) await store.db.set(`k${i}`, valueOf(`k${i}`, round, 8000));
    }
    const reports = await store.db.vacuum();
    const removed = reports.filter((r) => r.removed).map((r) => r.volume);
    assert.ok(removed.length > 0, 'a volume was vacuumed away');
    await store.db.compact();
    await store.db.close();
    // The index is lost: it is rebuilt from the compacted WAL alone.
    for (const f of ['index.hash', 'index.hash.heads', 'index.hash.usage']) rmSync(join(dir, f), { force: true });
    store = await openStore(dir, OPTIONS);
    const usage = await store.engine.ports.index.volumeUsage();
    for (const v of removed) assert.ok(usage.retired.includes(v), `volume ${v} is still retired`);
    for (let i = 0; i < 100; i++) assert.ok((await store.db.get(`k${i}`))!.equals(valueOf(`k${i}`, 2, 8000)));
    await store.db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const MARK = 0x41;

/** Flips one byte in the middle of the first run of 64 MARK bytes of a volume file (as test/scrub.test.ts). */
function flipInValue(path: string, runLength: number): void {
  const fd = openSync(path, 'r+');
  try {
    const buf = Buffer.alloc(4 * MiB);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const at = buf.subarray(0, n).indexOf(Buffer.alloc(64, MARK));
    assert.ok(at >= 0, `a run of the value's bytes in ${path}`);
    writeSync(fd, Buffer.from([MARK ^ 0xff]), 0, 1, at + Math.floor(runLength / 2));
  } finally {
    closeSync(fd);
  }
}

/** Polls `done` every 20 ms until true; fails after `ms` saying what it waited for. */
async function waitFor(done: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    assert.ok(Date.now() < deadline, `within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the automatic vacuum leaves a volume with a damaged value, and takes it again once the key is deleted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-vacuum-damaged-'));
  const options: OpenOptions = { ...OPTIONS, autoScrubEveryMs: 0, vacuum: { ...OPTIONS.vacuum, minGarbageBytes: 0 } };
  try {
    // The victim in volume 0, then enough to fill it and go on; the others all written again:
    // volume 0 is garbage but for the victim.
    const db = await open(dir, options);
    await db.set('victim', Buffer.alloc(10_000, MARK));
    for (let round = 0; round < 2; round++) for (let i = 0; i < 150; i++) await db.set(`k${i}`, valueOf(`k${i}`, round, 8000));
    await db.close();
    const file = join(dir, 'volumes', volumeFileName(0));
    flipInValue(file, 10_000);

    const store = await openStore(dir, { ...options, autoVacuumEveryMs: 20 });
    try {
      const reports: VacuumReport[] = [];
      store.events.vacuumed = (rs) => reports.push(...rs.filter((r) => r.volume === 0));
      await waitFor(() => reports.length > 0, 20_000, 'an automatic pass vacuums volume 0');
      assert.match(reports[0]!.errors.join('; '), /keeps 1 value/, `the damaged value is kept and reported: ${JSON.stringify(reports[0])}`);
      assert.equal(reports[0]!.removed, false);
      assert.ok(existsSync(file), 'volume 0 stays while the damaged value is its key\'s');
      // Nothing changed: the passes leave it (each would copy the rest again for nothing).
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(reports.length, 1, `volume 0 is left alone while the damaged value is live: ${JSON.stringify(reports)}`);

      await store.db.delete('victim');
      // The report comes at the end of its run, after the removal of the file.
      await waitFor(() => reports.length > 1, 20_000, 'an automatic pass vacuums volume 0 again once the damaged key is deleted');
      assert.deepEqual(reports[1]!.errors, [], 'the second vacuum of volume 0 finished');
      assert.equal(reports[1]!.removed, true);
      assert.equal(existsSync(file), false, 'volume 0 is removed');
      for (let i = 0; i < 150; i++) assert.ok((await store.db.get(`k${i}`))!.equals(valueOf(`k${i}`, 1, 8000)), `k${i} reads back`);
    } finally {
      await store.db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a close during a paced vacuum ends it at once: vacuum() rejects with CLOSED, nothing is lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-vacuum-close-'));
  // 64 KiB/s: the copy of volume 0 (about 1 MiB live) would take many seconds.
  const paced: OpenOptions = { ...OPTIONS, vacuum: { ...OPTIONS.vacuum, rateBytesPerSec: 64 * 1024 } };
  try {
    let db = await open(dir, paced);
    for (let i = 0; i < 150; i++) await db.set(`k${i}`, valueOf(`k${i}`, 0, 8000));
    for (let i = 0; i < 150; i += 4) await db.delete(`k${i}`);
    const [first] = await db.volinfo();
    assert.ok(first !== undefined && first.liveBytes > 512 * 1024, `volume ${first?.id} holds ${first?.liveBytes} live bytes`);
    const vacuum = db.vacuum(first.id).then(() => null, (e: unknown) => e);
    await waitForAsync(async () => ((await db.operations()).find((p) => p.operation === 'vacuum')?.doneBytes ?? 0) > 0, 20_000, 'the vacuum copied its first bytes');
    await db.close();
    const err = await vacuum;
    assert.ok(err instanceof StoreError && err.code === 'CLOSED', `vacuum() rejects with CLOSED: ${String(err)}`);
    assert.match(err.message, new RegExp(`vacuum stopped at volume ${first.id} after copying \\d+ of \\d+ bytes`));

    db = await open(dir, OPTIONS);
    for (let i = 0; i < 150; i++) {
      const got = await db.get(`k${i}`);
      if (i % 4 === 0) assert.equal(got, null, `k${i} stays deleted`);
      else assert.ok(got?.equals(valueOf(`k${i}`, 0, 8000)), `k${i} reads back after the stop`);
    }
    const [report] = await db.vacuum(first.id);
    assert.deepEqual(report?.errors, []);
    assert.equal(report?.removed, true, 'a vacuum after the restart finishes the work');
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function waitForAsync(done: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    assert.ok(Date.now() < deadline, `within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
