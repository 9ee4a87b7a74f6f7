// Tests of the synchronous shared-memory call (src/runtime/sync_slot.ts) between two real
// threads: answered in order with each call's own answer; a server that is not serving makes
// the caller give up within its bound; a late answer is never taken for the next call's; a
// request or answer too big for the slot is refused; stop ends the server's loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { SyncSlotClient, createSyncSlot } from '../src/runtime/sync_slot.js';

const SLOT_JS = fileURLToPath(new URL('../src/runtime/sync_slot.js', import.meta.url));

/** A worker serving the slot: the answer is the request reversed, after `delayMs` of busy work. */
function server(slot: SharedArrayBuffer, delayMs = 0): Worker {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(${JSON.stringify('file://' + SLOT_JS)}).then(({ serveSyncSlot }) => {
      const stop = serveSyncSlot(workerData.slot, (req) => {
        const until = Date.now() + workerData.delayMs;
        while (Date.now() < until) {}
        if (req.length === 3 && req[0] === 0x21) return new Uint8Array(70000); // too big: refused
        return Uint8Array.from(req).reverse();
      });
      parentPort.postMessage('ready');
      parentPort.once('message', () => { stop(); parentPort.postMessage('stopped'); });
    });
  `;
  return new Worker(code, { eval: true, workerData: { slot, delayMs } });
}

const ready = (w: Worker): Promise<unknown> => new Promise((resolve) => w.once('message', resolve));

test('calls are answered with their own answers, in order, across threads', { timeout: 20_000 }, async () => {
  const slot = createSyncSlot();
  const w = server(slot);
  try {
    await ready(w);
    const client = new SyncSlotClient(slot);
    for (let i = 0; i < 500; i++) {
      const req = Buffer.from(`request-${i}`);
      const answer = client.call(req, 1000);
      assert.ok(answer !== null, `call ${i} answered`);
      assert.equal(Buffer.from(answer).toString(), `request-${i}`.split('').reverse().join(''));
    }
    assert.equal(client.call(Buffer.from('!ab'), 1000), null, 'an answer too big for the slot is refused');
    assert.equal(client.call(new Uint8Array(70000), 1000), null, 'a request too big for the slot is refused');
    assert.ok(client.call(Buffer.from('ok'), 1000) !== null, 'the slot works after a refusal');
  } finally {
    w.postMessage('stop');
    await ready(w);
    await w.terminate();
  }
});

test('a busy server: the caller gives up within its bound, the late answer is dropped, the next call is exact', { timeout: 20_000 }, async () => {
  const slot = createSyncSlot();
  const w = server(slot, 200);
  try {
    await ready(w);
    const client = new SyncSlotClient(slot);
    const t0 = performance.now();
    assert.equal(client.call(Buffer.from('first'), 20), null);
    const waited = performance.now() - t0;
    assert.ok(waited < 150, `gave up after ${waited.toFixed(1)} ms`);
    // While the server still holds the first request, a call does not wait at all.
    const t1 = performance.now();
    assert.equal(client.call(Buffer.from('second'), 1000), null);
    assert.ok(performance.now() - t1 < 20, 'no wait while the slot is with the server');
    await new Promise((r) => setTimeout(r, 400));
    const third = client.call(Buffer.from('third'), 2000);
    assert.ok(third !== null);
    assert.equal(Buffer.from(third).toString(), 'driht', 'the answer of this call, not of the abandoned one');
  } finally {
    w.postMessage('stop');
    await ready(w);
    await w.terminate();
  }
});

test('no server: every call ends within its bound with null', { timeout: 10_000 }, () => {
  const client = new SyncSlotClient(createSyncSlot());
  const t0 = performance.now();
  assert.equal(client.call(Buffer.from('x'), 30), null);
  assert.ok(performance.now() - t0 < 500);
});
