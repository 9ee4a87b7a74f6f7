// codec.ts and errors.ts: the byte form of a batch and the form of errors across threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeBatch, encodeBatch } from '../src/runtime/codec.js';
import { fromWireError, toWireError, StoreError } from '../src/runtime/errors.js';

test('a batch round-trips, Buffers and Uint8Arrays included', () => {
  const key = Buffer.from('user:42');
  const value = new Uint8Array([0, 1, 2, 253, 254, 255]);
  const batch = [
    [0, 1, { t: 'get', key }, 0, 0],
    [0, 2, { t: 'set', key: value, ttl: 30, nested: { deep: [1, 'two', null, true] } }, 0, 0],
    [3, 0, { t: 'big', n: 2n ** 70n, missing: undefined, map: new Map([[1, 'a']]) }, 0, 0],
  ];
  const bytes = encodeBatch(batch);
  const out = decodeBatch(bytes) as [number, number, Record<string, unknown>][];
  assert.equal(out.length, 3);
  assert.deepEqual(Buffer.from(out[0][2].key as Uint8Array), key);
  assert.deepEqual(Buffer.from(out[1][2].key as Uint8Array), Buffer.from(value));
  assert.deepEqual(out[1][2].nested, { deep: [1, 'two', null, true] });
  assert.equal(out[2][2].n, 2n ** 70n);
  assert.equal(out[2][2].missing, undefined);
  assert.deepEqual(out[2][2].map, new Map([[1, 'a']]));
});

test('the encoded batch owns an ArrayBuffer of exactly its size (safe to transfer)', () => {
  const a = encodeBatch([{ t: 'x', v: 'a'.repeat(100) }]);
  const b = encodeBatch([{ t: 'y' }]);
  assert.equal(a.byteOffset, 0);
  assert.equal(a.buffer.byteLength, a.length);
  assert.notEqual(a.buffer, b.buffer, 'each batch has its own buffer, not the encoder scratch');
  assert.deepEqual(decodeBatch(a), [{ t: 'x', v: 'a'.repeat(100) }]);
});

test('decoded byte strings do not pin the batch buffer', () => {
  const bytes = encodeBatch([{ t: 'k', key: Buffer.from('abc') }]);
  const [msg] = decodeBatch(bytes) as [{ key: Uint8Array }];
  assert.notEqual(msg.key.buffer, bytes.buffer);
});

test('many records of the same shape decode in a fresh decoder (no shared structures)', async () => {
  const batch = Array.from({ length: 500 }, (_, i) => ({ t: 'get', key: `k${i}`, n: i }));
  const bytes = encodeBatch(batch);
  // A second module instance stands in for the other thread's decoder.
  const other = (await import(`../src/runtime/codec.js?fresh=${Date.now()}`)) as typeof import('../src/runtime/codec.js');
  assert.deepEqual(other.decodeBatch(bytes), batch);
});

test('decodeBatch refuses bytes that are not an array', () => {
  assert.throws(() => decodeBatch(encodeBatch([1]).subarray(1)), (e: unknown) => e instanceof StoreError && e.code === 'CORRUPT');
});

test('errors cross as {code, message}: StoreError keeps its code, others become INTERNAL', () => {
  assert.deepEqual(toWireError(new StoreError('NOT_FOUND', 'no key k')), { code: 'NOT_FOUND', message: 'no key k' });
  const internal = toWireError(new TypeError('x is not a function'));
  assert.equal(internal.code, 'INTERNAL');
  assert.match(internal.message, /TypeError: x is not a function/);
  assert.equal(toWireError(Object.assign(new Error('ENOENT: nope'), { code: 'ENOENT' })).code, 'INTERNAL');
  assert.equal(toWireError('a string').code, 'INTERNAL');
  assert.equal(toWireError(new StoreError('IO_ERROR', 'x'.repeat(10_000))).message.length < 5000, true);
  const back = fromWireError({ code: 'TIMEOUT', message: 'slow' });
  assert.ok(back instanceof StoreError);
  assert.equal(back.code, 'TIMEOUT');
  assert.equal(back.message, 'slow');
});
