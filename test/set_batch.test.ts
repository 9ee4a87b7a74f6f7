// Tests of the plain-SET batch of a thread (src/db/set_batch.ts): the SETs of one turn leave as
// one write, in the order they were made; the bounds cut a batch; a failure reaches every SET
// of its batch and none of the next.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SET_BATCH, MAX_SET_BATCH_BYTES, SetBatch } from '../src/db/set_batch.js';
import type { NeedleToPlace } from '../src/db/engine.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const needle = (key: string, size = 1): NeedleToPlace => ({ key: enc(key), value: new Uint8Array(size), expiresAt: 0 });

/** A write that records each batch's keys and answers LSNs 1, 2, 3... */
function recorder(): { batches: string[][]; write: (n: NeedleToPlace[]) => Promise<{ lsn: number }> } {
  const batches: string[][] = [];
  return {
    batches,
    write: async (needles) => {
      batches.push(needles.map((n) => new TextDecoder().decode(n.key)));
      return { lsn: batches.length };
    },
  };
}

test('the SETs of one turn leave as one write, in order, each told its LSN; a SET after an answer goes in the next', async () => {
  const r = recorder();
  const batch = new SetBatch(r.write);
  const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
  const lsns = await Promise.all(keys.map((k) => batch.add(needle(k))));
  assert.deepEqual(r.batches, [keys]);
  assert.deepEqual(new Set(lsns), new Set([1]));
  assert.equal(await batch.add(needle('later')), 2);
  assert.deepEqual(r.batches[1], ['later']);
});

test('a batch leaves at once at MAX_SET_BATCH SETs or MAX_SET_BATCH_BYTES, the rest in the next', async () => {
  const r = recorder();
  const batch = new SetBatch(r.write);
  const all = Array.from({ length: MAX_SET_BATCH + 5 }, (_, i) => batch.add(needle(`n${i}`)));
  assert.equal(r.batches.length, 1, 'the full batch left before the turn ended');
  assert.equal(r.batches[0]!.length, MAX_SET_BATCH);
  await Promise.all(all);
  assert.deepEqual(r.batches.map((b) => b.length), [MAX_SET_BATCH, 5]);

  const big = new SetBatch(r.write);
  const half = MAX_SET_BATCH_BYTES / 2;
  await Promise.all([big.add(needle('a', half)), big.add(needle('b', half)), big.add(needle('c', 10))]);
  assert.deepEqual(r.batches.slice(2), [['a', 'b'], ['c']], 'bytes bound the batch too');
});

test('a failed write fails every SET of its batch, and only those', async () => {
  let fail = true;
  const batch = new SetBatch(async () => {
    if (fail) throw new Error('disk on fire');
    return { lsn: 7 };
  });
  const first = await Promise.allSettled([batch.add(needle('x')), batch.add(needle('y'))]);
  assert.deepEqual(first.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : 'ok')), ['disk on fire', 'disk on fire']);
  fail = false;
  assert.equal(await batch.add(needle('z')), 7);
});
