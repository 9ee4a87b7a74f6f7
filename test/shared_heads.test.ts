// A front end's lookup through the index's shared heads (storage/shared_heads.ts) must answer
// exactly what the index answers, or nothing (the caller then asks the index): through applies,
// deletes, expiry, FLUSH, growth and COMPACT swaps, a restart's recovery, a failure and a close.
// Real files in a temp dir; the model is the index itself, asked at the same moment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { HashIndex } from '../src/storage/hash_index.js';
import { NodeFs } from '../src/runtime/fs.js';
import { createSharedHeads, SharedHeadsWriter, SharedIndexReader } from '../src/storage/shared_heads.js';
import { OpCode, type Lookup, type Op, type WalRecord } from '../src/storage/types.js';
import { startMaster, stopAll } from './helpers/master_process.js';

const T0 = 1_700_000_000_000;
const k = (s: string): Uint8Array => Buffer.from(s);
const rec = (lsn: number, ops: Op[], timeMs = T0): WalRecord => ({ lsn, timeMs, kind: 0, ops });
const set = (key: string, volume: number, offset: number, expiresAt = 0): Op => ({ code: OpCode.Set, key: k(key), address: { volume, offset, length: 100 + offset }, expiresAt });

interface Rig {
  dir: string;
  path: string;
  fs: NodeFs;
  sab: SharedArrayBuffer;
  index: HashIndex;
  reader: SharedIndexReader;
  now: number;
}

function rig(initialBuckets = 64): Rig {
  const dir = mkdtempSync(join(tmpdir(), 'brise-heads-'));
  const fs = new NodeFs();
  const path = join(dir, 'index.hash');
  const sab = createSharedHeads();
  const r: Rig = { dir, path, fs, sab, index: HashIndex.open(fs, path, { initialBuckets }), reader: undefined as unknown as SharedIndexReader, now: T0 };
  r.reader = new SharedIndexReader(sab, fs, path, () => r.now);
  return r;
}

function done(r: Rig): void {
  r.reader.close();
  r.index.close();
  rmSync(r.dir, { recursive: true, force: true });
}

/** What the index's own Lookup answers (index_actor.ts onLookup), in the reader's shape. */
function indexAnswer(index: HashIndex, key: string, now: number): Lookup {
  const live = index.get(k(key), now);
  if (live !== undefined) return { entry: live };
  const raw = index.getRaw(k(key));
  return raw === undefined ? {} : { expired: { volume: raw.address.volume, offset: raw.address.offset } };
}

function assertAgrees(r: Rig, universe: readonly string[], label: string): void {
  for (const key of universe) {
    const got = r.reader.lookup(k(key));
    assert.ok(got !== null, `${label}: ${key} fell back with nothing changing`);
    assert.deepEqual(normal(got), normal(indexAnswer(r.index, key, r.now)), `${label}: ${key}`);
  }
  const many = r.reader.lookupMany(universe.map(k));
  assert.ok(many !== null, `${label}: lookupMany fell back`);
  assert.deepEqual(many.map(normal), universe.map((key) => normal(indexAnswer(r.index, key, r.now))), `${label}: lookupMany`);
}

/** Key bytes compared as strings (the index hands back the caller's array, the reader too). */
function normal(l: Lookup): unknown {
  return l.entry === undefined ? l : { ...l, entry: { ...l.entry, key: Buffer.from(l.entry.key).toString('latin1') } };
}

test('before the index publishes, and while it applies a record, a reader falls back; after, it answers', () => {
  const r = rig();
  try {
    r.index.apply(rec(1, [set('a', 1, 8)]));
    assert.equal(r.reader.lookup(k('a')), null, 'nothing is published before share()');
    const writer = new SharedHeadsWriter(r.sab);
    r.index.share(writer);
    assert.deepEqual(normal(r.reader.lookup(k('a'))!), normal(indexAnswer(r.index, 'a', r.now)));
    writer.invalidate(); // as apply() does while it changes heads and the file
    assert.equal(r.reader.lookup(k('a')), null);
    assert.equal(r.reader.lookupMany([k('a')]), null);
    writer.end();
    assert.ok(r.reader.lookup(k('a'))?.entry);
    r.index.close();
    assert.equal(r.reader.lookup(k('a')), null, 'a closed index is asked (and answers CLOSED)');
  } finally {
    done(r);
  }
});

test('a reader agrees with the index through sets, deletes, expiry, FLUSH, growth and COMPACT swaps (property)', () => {
  const keys = Array.from({ length: 24 }, (_, i) => `key-${i}`);
  const op = fc.oneof(
    fc.record({ t: fc.constant('set' as const), key: fc.constantFrom(...keys), volume: fc.integer({ min: 1, max: 3 }), ttl: fc.option(fc.integer({ min: -50, max: 200 }), { nil: undefined }) }),
    fc.record({ t: fc.constant('del' as const), key: fc.constantFrom(...keys) }),
    fc.record({ t: fc.constant('expire' as const), key: fc.constantFrom(...keys), ttl: fc.integer({ min: -50, max: 200 }) }),
    fc.record({ t: fc.constant('flush' as const) }),
    fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 120 }) }),
    fc.record({ t: fc.constant('rebuild' as const), buckets: fc.constantFrom(16, 32, 64, 256), slices: fc.integer({ min: 0, max: 3 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
      const r = rig(16);
      try {
        r.index.share(new SharedHeadsWriter(r.sab));
        let lsn = 0;
        let offset = 8;
        for (const o of ops) {
          if (o.t === 'set') r.index.apply(rec(++lsn, [set(o.key, o.volume, (offset += 8), o.ttl === undefined ? 0 : r.now + o.ttl)], r.now));
          else if (o.t === 'del') r.index.apply(rec(++lsn, [{ code: OpCode.Del, key: k(o.key) }], r.now));
          else if (o.t === 'expire') r.index.apply(rec(++lsn, [{ code: OpCode.Expire, key: k(o.key), expiresAt: r.now + o.ttl }], r.now));
          else if (o.t === 'flush') r.index.apply(rec(++lsn, [{ code: OpCode.Flush }], r.now));
          else if (o.t === 'tick') r.now += o.ms;
          else {
            // A rebuild copies a slice at a time between applies; the reader keeps the old file
            // until the swap, then follows the new one (a new epoch).
            if (!r.index.rebuilding) r.index.startRebuild(o.buckets);
            for (let i = 0; i < o.slices && r.index.rebuilding; i++) r.index.rebuildStep(4);
            if (o.slices === 0) while (!r.index.rebuildStep(1 << 20));
          }
          assertAgrees(r, keys, `after ${JSON.stringify(o)}`);
        }
      } finally {
        done(r);
      }
    }),
    { numRuns: 60, seed: 14 },
  );
});

test('a restarted index hides its recovery: the new writer invalidates before the file is cut back', () => {
  const r = rig();
  try {
    r.index.share(new SharedHeadsWriter(r.sab));
    r.index.apply(rec(1, [set('kept', 1, 8)]));
    r.index.checkpoint();
    r.index.apply(rec(2, [set('lost', 1, 16)])); // never checkpointed: the reopen cuts it off
    assert.ok(r.reader.lookup(k('lost'))?.entry);
    // The index actor's start: a new writer over the same memory invalidates first.
    const again = new SharedHeadsWriter(r.sab);
    again.invalidate();
    assert.equal(r.reader.lookup(k('lost')), null, 'no reader follows the dead instance once a new one starts');
    r.index.close();
    r.index = HashIndex.open(r.fs, r.path, { initialBuckets: 64 });
    assert.equal(r.reader.lookup(k('kept')), null, 'still recovering (the WAL replay would come here)');
    r.index.apply(rec(2, [set('lost', 2, 24)]));
    r.index.share(again);
    assertAgrees(r, ['kept', 'lost', 'never'], 'after the restart');
    assert.equal(r.reader.lookup(k('lost'))?.entry?.address.volume, 2);
  } finally {
    done(r);
  }
});

test('a failed apply fences the index and its readers fall back to it (and its error)', () => {
  const r = rig();
  try {
    r.index.share(new SharedHeadsWriter(r.sab));
    r.index.apply(rec(1, [set('a', 1, 8)]));
    assert.throws(() => r.index.apply(rec(2, [set('', 1, 16)])), /empty key/i);
    // An invalid record is refused before anything changes: readers still answer.
    assert.ok(r.reader.lookup(k('a'))?.entry);
    const handle = (r.index as unknown as { main: { handle: { write: unknown } } }).main.handle;
    handle.write = () => {
      throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    };
    assert.throws(() => r.index.apply(rec(2, [set('b', 1, 16)])));
    assert.ok(r.index.fenced, 'the index is fenced');
    assert.equal(r.reader.lookup(k('a')), null, 'a fenced index is asked, and answers its error');
  } finally {
    r.reader.close();
    rmSync(r.dir, { recursive: true, force: true });
  }
});

test('through the master: every GET sees the SET acknowledged before it, across COMPACT swaps and concurrent writers', async (t) => {
  const m = await startMaster();
  const clients = Array.from({ length: 4 }, () => new Redis({ port: m.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 }));
  t.after(async () => {
    for (const c of clients) c.disconnect();
    await stopAll();
  });
  for (const c of clients) await c.connect();
  const [admin] = clients;
  let compacts = 0;
  let stop = false;
  const compacting = (async () => {
    while (!stop && compacts < 20) {
      assert.equal(await admin!.call('COMPACT'), 'OK');
      compacts++;
    }
  })();
  // Each writer owns its keys: SET then GET on the same connection must read its own write,
  // and a GET on another connection after the SET's reply must too.
  const writers = clients.slice(1).map(async (c, w) => {
    const other = clients[(w + 2) % clients.length]!;
    for (let i = 0; i < 400; i++) {
      const key = `w${w}:${i % 50}`;
      const value = `${w}-${i}-${'v'.repeat(i % 40)}`;
      assert.equal(await c.set(key, value), 'OK');
      assert.equal(await c.get(key), value, `own read of ${key}`);
      assert.equal(await other.get(key), value, `another connection's read of ${key}`);
      if (i % 97 === 0) {
        assert.equal(await c.del(key), 1);
        assert.equal(await other.get(key), null, `${key} deleted`);
      }
      if (i % 61 === 0) {
        assert.equal(await c.set(key, 'short', 'PX', 30), 'OK');
        await new Promise((res) => setTimeout(res, 40));
        assert.equal(await other.get(key), null, `${key} expired`);
      }
    }
  });
  try {
    await Promise.all(writers);
  } finally {
    stop = true;
    await compacting;
  }
  assert.ok(compacts >= 1, 'COMPACT ran while the writers ran');
  const keys = Array.from({ length: 50 }, (_, i) => `w0:${i}`);
  assert.deepEqual(await admin!.mget(...keys), await Promise.all(keys.map((key) => clients[1]!.get(key))));
});
