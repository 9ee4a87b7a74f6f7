// Vacuum through the embedded API, on real files: garbage is counted by the index (and survives a
// restart), VACUUM gives the space back, every live value reads back byte for byte (small ones
// copied in batches, blobs with metadata streamed), expired keys are dropped, and writers and
// readers running during it lose nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, openStore } from '../src/wiring/open.js';
import type { Database, OpenOptions } from '../src/db/api.js';

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
