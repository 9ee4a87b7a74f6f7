// peer.ts over a real MessageChannel on one thread: request/reply, batching per turn, blobs
// transferred, timeouts, the in-flight bound, faults, and re-wiring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { Peer, Reply } from '../src/runtime/peer.js';
import { StoreError } from '../src/runtime/errors.js';

function pair(options: { maxInFlight?: number } = {}): { a: Peer; b: Peer; close(): void } {
  const ch = new MessageChannel();
  const a = new Peer('b-side', ch.port1, options);
  const b = new Peer('a-side', ch.port2);
  return {
    a,
    b,
    close: () => {
      a.close();
      b.close();
    },
  };
}

function isCode(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof StoreError && e.code === code;
}

test('request and reply, sync and async handlers', async () => {
  const { a, b, close } = pair();
  b.onRequest((body) => {
    const m = body as { t: string; n: number };
    return m.t === 'double' ? m.n * 2 : Promise.resolve(m.n + 1);
  });
  assert.equal(await a.call<number>({ t: 'double', n: 21 }), 42);
  const r = await a.request<number>({ t: 'inc', n: 1 });
  assert.equal(r.body, 2);
  assert.deepEqual(r.blobs, []);
  assert.equal(a.inFlight, 0);
  close();
});

test('many requests in one turn leave in one postMessage, and the replies come back in one', async () => {
  const { a, b, close } = pair();
  b.onRequest((body) => (body as { i: number }).i);
  const promises = Array.from({ length: 1000 }, (_, i) => a.call<number>({ t: 'id', i }));
  assert.equal(a.stats().posts, 0, 'nothing leaves before the turn ends');
  const results = await Promise.all(promises);
  assert.deepEqual(results, Array.from({ length: 1000 }, (_, i) => i));
  assert.equal(a.stats().posts, 1);
  assert.equal(a.stats().sent, 1000);
  assert.equal(b.stats().posts, 1);
  assert.equal(b.stats().received, 1000);
  close();
});

test('blobs travel both ways: big ones transferred (the sender loses them), small ones copied in one packed buffer', async () => {
  const { a, b, close } = pair();
  let seen: number[][] = [];
  b.onRequest((_body, blobs) => {
    seen = blobs.map((x) => [...new Uint8Array(x)]);
    const out = new Uint8Array([9, 8, 7]).buffer;
    return new Reply({ t: 'ok', n: blobs.length }, [out]);
  });
  const one = new Uint8Array([1, 2, 3]).buffer;
  const two = new Uint8Array(64 * 1024).fill(5).buffer;
  const reply = await a.request<{ n: number }>({ t: 'put' }, { blobs: [one, two] });
  assert.equal(one.byteLength, 3, 'a small blob is copied into the packed buffer, not detached');
  assert.equal(two.byteLength, 0, 'a 64 KiB blob is transferred: detached after the send');
  assert.deepEqual(seen[0], [1, 2, 3]);
  assert.equal(seen[1].length, 64 * 1024);
  assert.equal(seen[1][100], 5);
  assert.equal(reply.body.n, 2);
  assert.deepEqual([...new Uint8Array(reply.blobs[0])], [9, 8, 7]);
  close();
});

test('blobs of several messages in one batch reach the right message', async () => {
  const { a, b, close } = pair();
  b.onRequest((body, blobs) => ({ tag: (body as { tag: number }).tag, bytes: blobs.map((x) => new Uint8Array(x)[0]) }));
  const calls = [0, 1, 2, 3].map((tag) =>
    a.call<{ tag: number; bytes: number[] }>(
      { t: 'b', tag },
      { blobs: Array.from({ length: tag }, (_, j) => new Uint8Array([tag * 10 + j]).buffer) },
    ),
  );
  const out = await Promise.all(calls);
  assert.deepEqual(out.map((o) => o.bytes), [[], [10], [20, 21], [30, 31, 32]]);
  assert.equal(a.stats().posts, 1);
  close();
});

test('regression: an empty blob (SET k "") travels, alone and among others (was: "cannot send", no pack buffer)', async () => {
  const { a, b, close } = pair();
  b.onRequest((_body, blobs) => new Reply(blobs.map((x) => x.byteLength), blobs));
  const alone = await a.request<number[]>({ t: 'put' }, { blobs: [new ArrayBuffer(0)] });
  assert.deepEqual(alone.body, [0]);
  assert.deepEqual(alone.blobs.map((x) => x.byteLength), [0]);
  const mixed = await a.request<number[]>({ t: 'put' }, { blobs: [new ArrayBuffer(0), new Uint8Array([7]).buffer, new ArrayBuffer(0)] });
  assert.deepEqual(mixed.body, [0, 1, 0]);
  assert.deepEqual([...new Uint8Array(mixed.blobs[1]!)], [7]);
  close();
});

test('a request with no answer rejects with TIMEOUT naming the peer and the message type', async () => {
  const { a, b, close } = pair();
  b.onRequest(() => new Promise(() => undefined));
  await assert.rejects(a.call({ t: 'lookup' }, { timeoutMs: 30 }), (e: unknown) => {
    assert.ok(isCode('TIMEOUT')(e));
    assert.match((e as Error).message, /b-side/);
    assert.match((e as Error).message, /'lookup'/);
    return true;
  });
  assert.equal(a.inFlight, 0);
  close();
});

test('past maxInFlight a request rejects with QUEUE_FULL at once', async () => {
  const { a, b, close } = pair({ maxInFlight: 3 });
  b.onRequest(() => new Promise(() => undefined));
  const pending = [1, 2, 3].map(() => a.call({ t: 'wait' }).catch((e: unknown) => e));
  await assert.rejects(a.call({ t: 'one-too-many' }), isCode('QUEUE_FULL'));
  assert.equal(a.inFlight, 3);
  close();
  const errors = await Promise.all(pending);
  assert.ok(errors.every((e) => e instanceof StoreError && e.code === 'CLOSED'), 'close() settles what is pending');
});

test('a handler error arrives as a StoreError with its code; others as INTERNAL', async () => {
  const { a, b, close } = pair();
  b.onRequest((body) => {
    if ((body as { t: string }).t === 'missing') throw new StoreError('NOT_FOUND', 'no key k');
    return Promise.reject(new RangeError('oops'));
  });
  await assert.rejects(a.call({ t: 'missing' }), (e: unknown) => isCode('NOT_FOUND')(e) && (e as Error).message === 'no key k');
  await assert.rejects(a.call({ t: 'bug' }), (e: unknown) => isCode('INTERNAL')(e) && /RangeError: oops/.test((e as Error).message));
  close();
});

test('one-way messages reach the handler, share the batch, and get no answer', async () => {
  const { a, b, close } = pair();
  const got: unknown[] = [];
  b.onRequest((body) => {
    got.push(body);
    return 'ignored';
  });
  a.send({ t: 'note', i: 1 });
  a.send({ t: 'note', i: 2 }, [new Uint8Array([1]).buffer]);
  assert.equal(await a.call({ t: 'sync' }), 'ignored');
  assert.deepEqual(got, [{ t: 'note', i: 1 }, { t: 'note', i: 2 }, { t: 'sync' }]);
  assert.equal(a.stats().posts, 1);
  assert.equal(b.stats().sent, 1, 'only the request was answered');
  close();
});

test('a peer with no port rejects with ACTOR_DOWN at once', async () => {
  const p = new Peer('index', null);
  const t0 = Date.now();
  await assert.rejects(p.call({ t: 'get' }), (e: unknown) => isCode('ACTOR_DOWN')(e) && /index is down \(restarting\)/.test((e as Error).message));
  assert.ok(Date.now() - t0 < 100);
  p.markDown('index is down (given up)');
  await assert.rejects(p.call({ t: 'get' }), /given up/);
});

test('replacePort fails pending requests with ACTOR_DOWN, then talks on the new port', async () => {
  const old = new MessageChannel();
  const a = new Peer('other', old.port1);
  const oldSide = new Peer('a', old.port2);
  oldSide.onRequest(() => new Promise(() => undefined));
  const pending = a.call({ t: 'slow' }, { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 10)); // let it leave
  const fresh = new MessageChannel();
  const newSide = new Peer('a', fresh.port2);
  newSide.onRequest(() => 'fresh');
  a.replacePort(fresh.port1);
  await assert.rejects(pending, isCode('ACTOR_DOWN'));
  assert.equal(await a.call({ t: 'again' }), 'fresh');
  a.close();
  oldSide.close();
  newSide.close();
});

test('when the other end closes its port, pending requests fail with ACTOR_DOWN', async () => {
  const { a, b, close } = pair();
  b.onRequest(() => new Promise(() => undefined));
  const pending = a.call({ t: 'slow' }, { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 10));
  b.close();
  await assert.rejects(pending, isCode('ACTOR_DOWN'));
  await assert.rejects(a.call({ t: 'next' }), isCode('ACTOR_DOWN'));
  close();
});

test('fail() rejects every pending request with the given code', async () => {
  const { a, b, close } = pair();
  b.onRequest(() => new Promise(() => undefined));
  const p = [a.call({ t: 'x' }), a.call({ t: 'y' })];
  a.fail('ACTOR_DOWN', 'b-side died');
  for (const x of p) await assert.rejects(x, (e: unknown) => isCode('ACTOR_DOWN')(e) && /b-side died/.test((e as Error).message));
  assert.equal(a.inFlight, 0);
  close();
});

test('one unsendable message fails alone; the rest of its batch goes through', async () => {
  const { a, b, close } = pair();
  b.onRequest((body) => (body as { i: number }).i);
  const blob = new Uint8Array(64 * 1024).buffer;
  const good1 = a.call({ t: 'ok', i: 1 });
  // The same (big, so transferred) ArrayBuffer twice in one transfer list cannot be posted.
  const bad = a.call({ t: 'dup', i: 2 }, { blobs: [blob, blob] }).then(
    () => null,
    (e: unknown) => e,
  );
  const good2 = a.call({ t: 'ok', i: 3 });
  assert.equal(await good1, 1);
  assert.equal(await good2, 3);
  const err = await bad;
  assert.ok(isCode('INTERNAL')(err), String(err));
  assert.match((err as Error).message, /'dup'/);
  close();
});

test('mixed timeouts expire in deadline order, never early, and answered requests never time out', async () => {
  const { a, b, close } = pair();
  const release: (() => void)[] = [];
  b.onRequest((body) => {
    if ((body as { t: string }).t === 'answer-later') return new Promise<string>((r) => release.push(() => r('done')));
    return new Promise(() => undefined);
  });
  const t0 = performance.now();
  const when = (p: Promise<unknown>): Promise<{ code: string; ms: number }> =>
    p.then(
      () => ({ code: 'OK', ms: performance.now() - t0 }),
      (e: unknown) => ({ code: (e as StoreError).code, ms: performance.now() - t0 }),
    );
  const long = when(a.call({ t: 'long' }, { timeoutMs: 150 }));
  const short = when(a.call({ t: 'short' }, { timeoutMs: 40 }));
  const answered = when(a.call({ t: 'answer-later' }, { timeoutMs: 60 }));
  await new Promise((r) => setTimeout(r, 20));
  release.forEach((f) => f());
  const [l, s, ans] = await Promise.all([long, short, answered]);
  assert.equal(ans.code, 'OK');
  assert.equal(s.code, 'TIMEOUT');
  assert.equal(l.code, 'TIMEOUT');
  assert.ok(s.ms >= 40 && l.ms >= 150, `not early: ${s.ms.toFixed(1)} ${l.ms.toFixed(1)}`);
  assert.ok(s.ms < l.ms);
  assert.equal(a.inFlight, 0);
  close();
});
