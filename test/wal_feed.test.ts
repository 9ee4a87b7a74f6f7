// The WAL replication feed end to end: a real store (openStore: the WAL committer on its own
// thread), and a WalFeed in the main thread over the supervisor's channel to it. Checks that a
// follower gets every record it asked for, in order, exactly once (history, live, from the
// middle, a compacted WAL starting with its snapshot), that a follower that stops consuming is
// dropped with a reason while others go on, and that cancel stops delivery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type OpenedStore } from '../src/wiring/open.js';
import { WalFeed, WAL_FOLLOW_END } from '../src/db/wal_feed.js';
import { OpCode, opKey, type WalRecord } from '../src/storage/types.js';

const BOUND_MS = 5_000;

async function withStore(fn: (store: OpenedStore, feed: WalFeed) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'brise-walfeed-'));
  const store = await openStore(dir, { sync: 'none' });
  try {
    await fn(store, new WalFeed(store.supervisor.peer('wal')));
  } finally {
    await store.db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Collects what a follow delivers; `until` waits (bounded) for a condition on it. */
class Collector {
  records: WalRecord[] = [];
  ended: (string | null)[] = [];
  readonly onRecords = (records: WalRecord[]): void => {
    this.records.push(...records);
  };
  readonly onEnd = (reason: string | null): void => {
    this.ended.push(reason);
  };

  async until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + BOUND_MS;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (have ${this.records.length} records, ended ${JSON.stringify(this.ended)})`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  get lsns(): number[] {
    return this.records.filter((r) => r.kind === 0).map((r) => r.lsn);
  }

  /** The keys of every op, in order, as strings. */
  get keys(): string[] {
    return this.records.flatMap((r) => r.ops.map((op) => Buffer.from(opKey(op)).toString()));
  }
}

async function setKeys(store: OpenedStore, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await store.db.set(`${prefix}${i}`, `v${i}`);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

async function lastLsn(store: OpenedStore): Promise<number> {
  return store.engine.ports.wal.lastLsn();
}

test('follow from 0 after commits gets every record in order, then live ones', async () => {
  await withStore(async (store, feed) => {
    await setKeys(store, 'a', 30);
    const end = await lastLsn(store);
    const c = new Collector();
    const h = await feed.follow(0, c.onRecords, c.onEnd);
    assert.equal(h.lastLsn, end);
    assert.equal(h.from, 1);
    await c.until(() => c.lsns.length >= end, 'the history');
    assert.deepEqual(c.lsns, range(1, end));
    assert.deepEqual(c.keys, range(0, 29).map((i) => `a${i}`));
    assert.ok(c.records.every((r) => r.ops[0]!.code === OpCode.Set));
    // Then live, with no gap and no duplicate at the seam.
    await setKeys(store, 'b', 10);
    await c.until(() => c.lsns.length >= end + 10, 'the live records');
    assert.deepEqual(c.lsns, range(1, end + 10));
    assert.deepEqual(c.keys.slice(30), range(0, 9).map((i) => `b${i}`));
    h.cancel();
  });
});

test('live only (WAL_FOLLOW_END) gets the records committed after it, as they commit', async () => {
  await withStore(async (store, feed) => {
    await setKeys(store, 'old', 5);
    const c = new Collector();
    const h = await feed.follow(WAL_FOLLOW_END, c.onRecords, c.onEnd);
    assert.equal(h.from, h.lastLsn + 1);
    for (let i = 0; i < 5; i++) {
      await store.db.set(`new${i}`, 'x');
      // Each one arrives before the next is written: pushed after every group commit.
      await c.until(() => c.records.length === i + 1, `live record ${i}`);
    }
    assert.deepEqual(c.lsns, range(h.from, h.from + 4));
    assert.deepEqual(c.keys, ['new0', 'new1', 'new2', 'new3', 'new4']);
    // Concurrent writers: their SETs share records (the SET batch) and group commits; still
    // every record, in order, and every key once.
    await Promise.all(range(0, 49).map((i) => store.db.set(`par${i}`, 'y')));
    const end = await lastLsn(store);
    await c.until(() => c.lsns.at(-1) === end, 'the concurrent records');
    assert.deepEqual(c.lsns, range(h.from, end));
    assert.deepEqual(c.keys.slice(5).sort(), range(0, 49).map((i) => `par${i}`).sort());
    h.cancel();
  });
});

test('follow from the middle starts at that LSN; from past the end is refused', async () => {
  await withStore(async (store, feed) => {
    await setKeys(store, 'k', 20);
    const end = await lastLsn(store);
    const c = new Collector();
    const h = await feed.follow(7, c.onRecords, c.onEnd);
    assert.equal(h.from, 7);
    await c.until(() => c.lsns.at(-1) === end, 'the tail');
    assert.deepEqual(c.lsns, range(7, end));
    h.cancel();
    // Exactly at the end: nothing yet, then live.
    const at = new Collector();
    const h2 = await feed.follow(end + 1, at.onRecords, at.onEnd);
    await store.db.set('after', '1');
    await at.until(() => at.records.length === 1, 'the record after the end');
    assert.equal(at.records[0]!.lsn, end + 1);
    h2.cancel();
    await assert.rejects(feed.follow(end + 100, () => undefined, () => undefined), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'BAD_ARGUMENT');
      assert.match(err.message, /past the end of the WAL/);
      return true;
    });
  });
});

test('a compacted WAL streams its snapshot first (kind 1), then the records after it', async () => {
  await withStore(async (store, feed) => {
    await setKeys(store, 's', 10);
    await store.db.delete('s3');
    await store.db.compact();
    const snap = await lastLsn(store);
    await setKeys(store, 't', 3);
    for (const from of [0, 4]) {
      const c = new Collector();
      const h = await feed.follow(from, c.onRecords, c.onEnd);
      assert.equal(h.snapshotLsn, snap);
      await c.until(() => c.lsns.at(-1) === snap + 3, `the records after the snapshot (from ${from})`);
      const snapshot = c.records.filter((r) => r.kind === 1);
      const firstBatch = c.records.findIndex((r) => r.kind === 0);
      assert.ok(snapshot.length >= 1, 'snapshot chunks first');
      assert.ok(snapshot.every((r) => r.lsn === snap));
      assert.ok(c.records.slice(0, firstBatch).every((r) => r.kind === 1), 'no batch before the snapshot ends');
      const snapKeys = snapshot.flatMap((r) => r.ops.map((op) => Buffer.from(opKey(op)).toString())).sort();
      assert.deepEqual(snapKeys, ['s0', 's1', 's2', 's4', 's5', 's6', 's7', 's8', 's9']);
      assert.deepEqual(c.lsns, range(snap + 1, snap + 3));
      h.cancel();
    }
    // From after the snapshot: no snapshot chunks at all.
    const c = new Collector();
    const h = await feed.follow(snap + 2, c.onRecords, c.onEnd);
    await c.until(() => c.lsns.at(-1) === snap + 3, 'the tail');
    assert.deepEqual(c.records.map((r) => r.kind), [0, 0]);
    h.cancel();
  });
});

test('a follower that never finishes consuming is dropped with a reason; the others go on', async () => {
  await withStore(async (store, feed) => {
    let stuckCalls = 0;
    const stuckEnd: (string | null)[] = [];
    await feed.follow(WAL_FOLLOW_END, () => {
      stuckCalls++;
      return new Promise<void>(() => undefined); // never resolves: never acknowledged
    }, (reason) => stuckEnd.push(reason), { maxLagBytes: 4096, window: 2 });
    const ok = new Collector();
    const h = await feed.follow(WAL_FOLLOW_END, ok.onRecords, ok.onEnd, { maxLagBytes: 4096, window: 2 });
    const key = (i: number): string => `slow-${i}-${'k'.repeat(100)}`;
    for (let i = 0; i < 100; i++) await store.db.set(key(i), 'v');
    await ok.until(() => stuckEnd.length === 1, 'the stuck follower to be dropped');
    assert.match(stuckEnd[0]!, /^QUEUE_FULL: .*fell more than 4096 bytes behind/);
    assert.equal(stuckCalls, 1, 'one batch at a time: the second waits for the first');
    await ok.until(() => ok.records.length === 100, 'every record for the follower that keeps up');
    assert.deepEqual(ok.keys, range(0, 99).map(key));
    assert.deepEqual(ok.ended, []);
    const stats = await store.supervisor.control<{ stats(): { followers: number; followersDropped: number } }>('wal').stats();
    assert.equal(stats.followers, 1);
    assert.equal(stats.followersDropped, 1);
    h.cancel();
  });
});

test('cancel stops delivery and ends with null; the committer forgets the follower', async () => {
  await withStore(async (store, feed) => {
    const c = new Collector();
    const h = await feed.follow(WAL_FOLLOW_END, c.onRecords, c.onEnd);
    const witness = new Collector();
    const hw = await feed.follow(WAL_FOLLOW_END, witness.onRecords, witness.onEnd);
    await setKeys(store, 'before', 3);
    await c.until(() => c.records.length === 3, 'the records before cancel');
    h.cancel();
    assert.deepEqual(c.ended, [null]);
    await setKeys(store, 'after', 3);
    await witness.until(() => witness.records.length === 6, 'the witness to see the later records');
    assert.equal(c.records.length, 3, 'nothing after cancel');
    const control = store.supervisor.control<{ stats(): { followers: number } }>('wal');
    const deadline = Date.now() + BOUND_MS;
    while ((await control.stats()).followers !== 1) {
      assert.ok(Date.now() < deadline, 'the committer did not forget the cancelled follower');
      await new Promise((r) => setTimeout(r, 5));
    }
    hw.cancel();
    assert.equal(feed.size, 0);
  });
});

test('a history larger than one batch arrives whole, in bounded batches, while commits go on', async () => {
  await withStore(async (store, feed) => {
    const big = 'x'.repeat(2000);
    const n = 1200; // ~2.5 MiB of records: several 1 MiB batches
    for (let i = 0; i < n; i += 100) {
      await Promise.all(range(i, i + 99).map((j) => store.db.set(`${big}${j}`, 'v')));
    }
    const end = await lastLsn(store);
    let batches = 0;
    const c = new Collector();
    const h = await feed.follow(1, (records) => {
      batches++;
      c.onRecords(records);
    }, c.onEnd);
    const writing = setKeys(store, 'during', 20);
    await c.until(() => c.lsns.length >= end + 20, 'history and the records written during it');
    await writing;
    assert.ok(batches >= 3, `history came in ${batches} batches`);
    assert.deepEqual(c.lsns, range(1, end + 20));
    h.cancel();
  });
});

test('a WAL committer restart ends every follow with a reason; following again resumes without a gap', async () => {
  await withStore(async (store, feed) => {
    await setKeys(store, 'r', 5);
    const c = new Collector();
    await feed.follow(1, c.onRecords, c.onEnd);
    await c.until(() => c.records.length === 5, 'the first records');
    await store.supervisor.kill('wal');
    await c.until(() => c.ended.length === 1, 'the end after the restart');
    assert.match(c.ended[0]!, /^ACTOR_DOWN: the WAL committer restarted/);
    // The restarted committer answers commits again; a new follow from last + 1 continues.
    const deadline = Date.now() + BOUND_MS;
    for (;;) {
      try {
        await store.db.set('after-restart', 'v');
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const again = new Collector();
    const h = await feed.follow(c.lsns.at(-1)! + 1, again.onRecords, again.onEnd);
    await again.until(() => again.keys.includes('after-restart'), 'the record after the restart');
    assert.deepEqual([...c.lsns, ...again.lsns], range(1, c.lsns.length + again.lsns.length));
    assert.equal(c.records.length, 5, 'nothing reached the ended follow');
    h.cancel();
  });
});
