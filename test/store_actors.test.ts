// The store's actors dying under load: for each kind (volume writer, WAL committer, index,
// broker) a thread is killed while writes and reads are in flight. Every request must settle
// (an answer or a clear ACTOR_DOWN error, never a hang), the supervisor must restart the
// actor, every write that was acknowledged must still be there with its bytes, and the next
// requests must succeed. Reads go through the index's shared heads, as in the master.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { openStore, type OpenedStore } from '../src/wiring/open.js';
import { createSharedHeads } from '../src/storage/shared_heads.js';
import { StoreError } from '../src/runtime/errors.js';

const SETTLE_BOUND_MS = 5_000;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'brise-actors-'));
}

/**
 * Keeps `workers` loops writing distinct keys until stopped (or `max` writes); records which
 * writes were acknowledged and how the others failed.
 */
function writeLoad(store: OpenedStore, prefix: string, max: number, workers = 32) {
  const acked = new Map<string, string>();
  const errors: unknown[] = [];
  let next = 0;
  let stopped = false;
  const loop = async (): Promise<void> => {
    while (!stopped && next < max) {
      const i = next++;
      const key = `${prefix}:${i}`;
      const value = `value-${i}-${'x'.repeat(i % 300)}`;
      try {
        await store.db.set(key, value);
        acked.set(key, value);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  const done = Promise.all(Array.from({ length: workers }, loop)).then(() => undefined);
  return { acked, errors, done, stop: () => (stopped = true) };
}

/** Resolves once `test` holds, polling; bounded. */
async function until(test: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + SETTLE_BOUND_MS;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function withinBound<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${SETTLE_BOUND_MS} ms`)), SETTLE_BOUND_MS);
  });
  try {
    return await Promise.race([p, bound]);
  } finally {
    clearTimeout(timer);
  }
}

async function assertAllThere(store: OpenedStore, acked: Map<string, string>): Promise<void> {
  for (const [key, value] of acked) {
    assert.equal((await store.db.get(key))?.toString(), value, `acknowledged ${key} must survive`);
  }
}

function assertClearErrors(errors: unknown[]): void {
  for (const err of errors) {
    assert.ok(err instanceof StoreError, `a failed request gets a StoreError, got ${String(err)}`);
    assert.ok(['ACTOR_DOWN', 'TIMEOUT'].includes(err.code), `code ${err.code}: ${err.message}`);
    assert.match(err.message, /down|restart|index|did not confirm/i);
  }
}

for (const actor of ['index', 'wal', 'volume-0']) {
  test(`killing the ${actor} thread mid-load: requests settle with clear errors, it restarts, nothing acknowledged is lost`, async () => {
    const dir = tempDir();
    // As the master runs it: reads look keys up in the index's shared heads, so a restarted
    // index must hide its recovery from them (storage/shared_heads.ts).
    const store = await openStore(dir, { sharedHeads: createSharedHeads() });
    try {
      const before = writeLoad(store, 'before', 200, 8);
      await before.done;
      assert.equal(before.errors.length, 0);

      const restarted = once(store.supervisor, 'actor-restart');
      const load = writeLoad(store, 'during', 1_000_000);
      const reads = Promise.allSettled(Array.from({ length: 500 }, (_, i) => store.db.get(`before:${i % 200}`)));
      await until(() => load.acked.size >= 100, 'writes to flow');
      await store.supervisor.kill(actor);
      // Keep writing through the restart for a moment, then stop the load.
      await until(() => load.errors.length > 0, 'a write to see the death');
      load.stop();
      await withinBound(load.done, 'the writes in flight');
      await withinBound(reads, 'the reads in flight');
      const [event] = (await withinBound(restarted, 'the restart')) as [{ name: string }];
      assert.equal(event.name, actor);
      assertClearErrors(load.errors);
      assert.ok(load.acked.size >= 100 && load.errors.length > 0, 'the kill landed while writes were in flight');

      // Service resumes: new writes and reads work.
      const after = writeLoad(store, 'after', 100, 8);
      await withinBound(after.done, 'writes after the restart');
      assert.equal(after.errors.length, 0, `writes after the restart fail: ${String(after.errors[0])}`);
      await assertAllThere(store, before.acked);
      await assertAllThere(store, load.acked);
      await assertAllThere(store, after.acked);
      const status = store.supervisor.status().find((s) => s.name === actor);
      assert.equal(status?.restarts, 1);
      assert.equal(status?.state, 'running');
    } finally {
      await store.db.close();
    }
    // And from disk, after a clean close: every acknowledged write is still there.
    const again = await openStore(dir);
    try {
      assert.ok((await again.db.dbsize()) >= 300);
    } finally {
      await again.db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('killing the broker: publishers get a count or a clear error; subscribers keep receiving after the restart', async () => {
  const dir = tempDir();
  const store = await openStore(dir);
  try {
    const sub = await store.db.subscribe(['ch'], ['pat.*']);
    const messages = sub[Symbol.asyncIterator]();
    const restarted = once(store.supervisor, 'actor-restart');
    const publishes = Promise.allSettled(Array.from({ length: 200 }, (_, i) => store.db.publish('other', `m${i}`)));
    await store.supervisor.kill('broker');
    const settled = await withinBound(publishes, 'publishes in flight');
    for (const r of settled) {
      if (r.status === 'rejected') assertClearErrors([r.reason]);
    }
    await withinBound(restarted, 'the broker restart');
    // The subscription made before the death is registered again by the front end; its
    // Subscribe is queued on the same channel before this publish, so it arrives first.
    assert.equal(await store.db.publish('ch', 'hello'), 1);
    assert.equal((await withinBound(messages.next(), 'a channel message')).value?.payload.toString(), 'hello');
    assert.equal(await store.db.publish('pat.x', 'by pattern'), 1);
    assert.equal((await withinBound(messages.next(), 'a pattern message')).value?.payload.toString(), 'by pattern');
    await sub.close();
    assert.equal(await store.db.publish('ch', 'nobody'), 0, 'closing unsubscribes');
  } finally {
    await store.db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an actor that keeps dying is given up and reported, and requests to it fail fast', async () => {
  const dir = tempDir();
  const store = await openStore(dir);
  try {
    const givenUp = once(store.supervisor, 'actor-given-up');
    for (let i = 0; i < 6; i++) {
      await store.supervisor.kill('broker');
      // Wait for the restart, except after the death that exhausts the budget.
      if (store.supervisor.status().find((s) => s.name === 'broker')?.state === 'given-up') break;
      await once(store.supervisor, 'actor-restart');
    }
    await withinBound(givenUp, 'giving up');
    assert.equal(store.supervisor.status().find((s) => s.name === 'broker')?.state, 'given-up');
    const t0 = Date.now();
    await assert.rejects(store.db.publish('ch', 'x'), (err: unknown) => err instanceof StoreError && err.code === 'ACTOR_DOWN');
    assert.ok(Date.now() - t0 < 1000, 'a given-up actor fails requests at once');
    // The rest of the store still serves.
    await store.db.set('still', 'here');
    assert.equal((await store.db.get('still'))?.toString(), 'here');
  } finally {
    await store.db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
