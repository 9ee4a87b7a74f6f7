// Unit tests of the WAL bytes (src/storage/wal_format.ts): header, frame, CBOR payload shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { Encoder } from 'cbor-x';
import {
  WAL_HEADER_SIZE,
  WAL_MAX_PAYLOAD,
  WAL_RECORD_HEADER_SIZE,
  decodeRecord,
  decodeWalHeader,
  encodePayload,
  encodeRecord,
  encodeWalHeader,
} from '../src/storage/wal_format.js';
import { GuardKind, OpCode, SetFlag, opKey, type Op, type SetIfOp, type WalRecord } from '../src/storage/types.js';
import { canaries, resetCanaries } from '../src/runtime/canary.js';
import { StoreError } from '../src/runtime/errors.js';

const crc32 = (zlib as unknown as { crc32(d: Uint8Array, v?: number): number }).crc32;
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

const key = fc.uint8Array({ minLength: 1, maxLength: 300 });
const n = fc.maxSafeNat();
// Plain objects (fast-check's default null prototype would fail deepStrictEqual, not the codec).
const plain = { noNullPrototype: true } as const;
const setOp = fc.record({ code: fc.constant(OpCode.Set), key, address: fc.record({ volume: n, offset: n, length: n }, plain), expiresAt: n }, plain);
const op: fc.Arbitrary<Op> = fc.oneof(
  setOp,
  fc.record({ code: fc.constant(OpCode.Del), key }, plain),
  fc.record({ code: fc.constant(OpCode.Expire), key, expiresAt: n }, plain),
  fc.record({ code: fc.constant(OpCode.DelIf), key, volume: n, offset: n }, plain),
  fc.record({ code: fc.constant(OpCode.Guard), key, kind: fc.constantFrom(GuardKind.Live, GuardKind.Same), volume: n, offset: n, expiresAt: n }, plain),
  fc.record({ code: fc.constant(OpCode.Guard), key, kind: fc.constant(GuardKind.Absent), volume: fc.constant(0), offset: fc.constant(0), expiresAt: fc.constant(0) }, plain),
  fc.constant({ code: OpCode.Flush }),
);
const redoNeedle = fc.record({ volume: n, offset: n, key, value: fc.uint8Array({ maxLength: 2000 }), expiresAt: n }, plain);
/** A group-committed record (batchFirstLsn <= lsn), with redo needles or without. */
const grouped: fc.Arbitrary<WalRecord> = fc
  .tuple(n, fc.nat(1000), n, fc.array(op, { maxLength: 10 }), fc.array(redoNeedle, { maxLength: 5 }))
  .map(([lsn, back, timeMs, ops, redo]) => {
    const r: WalRecord = { lsn, timeMs, kind: 0, ops, batchFirstLsn: Math.max(0, lsn - back) };
    if (redo.length > 0) r.redo = redo;
    return r;
  });
const record: fc.Arbitrary<WalRecord> = fc.oneof(
  fc.record({ lsn: n, timeMs: n, kind: fc.constant(0 as const), ops: fc.array(op, { maxLength: 20 }) }, plain),
  fc.record({ lsn: n, timeMs: n, kind: fc.constant(1 as const), ops: fc.array(setOp, { maxLength: 20 }) }, plain),
  grouped,
);

/** A framed record around an arbitrary payload, with a correct CRC. */
function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(WAL_RECORD_HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length, true);
  view.setUint32(4, crc32(payload), true);
  out.set(payload, WAL_RECORD_HEADER_SIZE);
  return out;
}

const sample: WalRecord = {
  lsn: 7,
  timeMs: 1_700_000_000_123,
  kind: 0,
  ops: [
    { code: OpCode.Set, key: bytes('k1'), address: { volume: 3, offset: 2 ** 40 + 8, length: 1234 }, expiresAt: 0 },
    { code: OpCode.Del, key: bytes('k2') },
    { code: OpCode.Expire, key: bytes('k3'), expiresAt: 1_700_000_999_000 },
    { code: OpCode.DelIf, key: bytes('k4'), volume: 5, offset: 64 },
    { code: OpCode.Guard, key: bytes('k5'), kind: GuardKind.Live, volume: 6, offset: 72, expiresAt: 1_700_000_999_001 },
    { code: OpCode.Guard, key: bytes('k6'), kind: GuardKind.Absent, volume: 0, offset: 0, expiresAt: 0 },
    { code: OpCode.Guard, key: bytes('k7'), kind: GuardKind.Same, volume: 7, offset: 80, expiresAt: 0 },
    { code: OpCode.Flush },
  ],
};

test('header round trip, and every damaged header is rejected', () => {
  for (const s of [0, 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
    const h = encodeWalHeader(s);
    assert.equal(h.length, WAL_HEADER_SIZE);
    assert.deepEqual(decodeWalHeader(h), { snapshotLsn: s });
    assert.equal(new TextDecoder().decode(h.subarray(0, 8)), 'BRISEWAL');
  }
  const good = encodeWalHeader(42);
  for (let i = 0; i < WAL_HEADER_SIZE; i++) {
    const bad = good.slice();
    bad[i]! ^= 0x01;
    assert.equal(decodeWalHeader(bad), null, `flipped byte ${i}`);
  }
  assert.equal(decodeWalHeader(good.subarray(0, 31)), null);
  assert.equal(decodeWalHeader(new Uint8Array(32)), null);
});

test('a sample record with every op round-trips exactly, keys as plain Uint8Array', () => {
  const f = encodeRecord(sample);
  const res = decodeRecord(f, 0);
  assert.ok(res.ok);
  assert.equal(res.size, f.length);
  assert.deepStrictEqual(res.record, sample);
  for (const o of res.record.ops) assert.equal(Object.getPrototypeOf(opKey(o)), Uint8Array.prototype);
  // The decoded key is a copy, not a view into the frame (the reader reuses its buffers).
  f.fill(0);
  assert.deepStrictEqual(opKey(res.record.ops[0]!), bytes('k1'));
});

test('payload is a positional CBOR array that a plain decoder reads, byte strings untagged', () => {
  const p = encodePayload(sample);
  const plain = new Encoder({ useRecords: false }).decode(p) as unknown[];
  assert.equal(plain.length, 4);
  assert.deepEqual(plain.slice(0, 3), [7, 1_700_000_000_123, 0]);
  const ops = plain[3] as unknown[][];
  assert.deepEqual(ops.map((o) => o[0]), [1, 2, 3, 4, 6, 6, 6, 7]);
  assert.deepEqual(ops[5]!.slice(2), [0], 'an absent guard is [6, key, 0]');
  assert.deepEqual(ops[6]!.slice(2), [2, 7, 80, 0], 'a same-entry guard is [6, key, 2, volume, offset, expires]');
  assert.deepEqual(ops[7], [7], 'a flush names no key');
  assert.deepEqual(ops[0]!.slice(2), [3, 2 ** 40 + 8, 1234, 0]);
  // No tag 64 (0xd8 0x40) in front of the key: byte string major type 2, length 2.
  assert.ok(Buffer.from(p).includes(Buffer.from([0x01, 0x42, 0x6b, 0x31])));
  assert.ok(!Buffer.from(p).includes(Buffer.from([0xd8, 0x40])));
});

test('property: any record round-trips through encodeRecord/decodeRecord at any offset', () => {
  fc.assert(
    fc.property(record, fc.nat(16), (r, pad) => {
      const f = encodeRecord(r);
      const buf = new Uint8Array(pad + f.length + 3);
      buf.set(f, pad);
      const res = decodeRecord(buf, pad);
      assert.ok(res.ok);
      assert.equal(res.size, f.length);
      assert.deepStrictEqual(res.record, r);
    }),
    { numRuns: 300 },
  );
});

test('redo needles: [lsn, time, 0, ops, batch first, [[volume, offset, expires, key, value]...]], decoded as copies', () => {
  const value = bytes('the value');
  const r: WalRecord = { ...sample, batchFirstLsn: 5, redo: [{ volume: 3, offset: 2 ** 40 + 8, key: bytes('k1'), value, expiresAt: 9 }] };
  const p = encodePayload(r);
  const plainArray = new Encoder({ useRecords: false }).decode(p) as unknown[];
  assert.equal(plainArray.length, 6);
  assert.equal(plainArray[4], 5);
  const redo = plainArray[5] as unknown[][];
  assert.deepEqual(redo[0]!.slice(0, 3), [3, 2 ** 40 + 8, 9]);
  assert.deepEqual(new Uint8Array(redo[0]![4] as Uint8Array), value);
  const f = encodeRecord(r);
  const res = decodeRecord(f, 0);
  assert.ok(res.ok);
  assert.deepStrictEqual(res.record, r);
  // Copies, not views into the frame (the reader reuses its buffers).
  f.fill(0);
  assert.deepStrictEqual(res.record.redo![0]!.value, value);
  assert.equal(Object.getPrototypeOf(res.record.redo![0]!.value), Uint8Array.prototype);
});

test('redo needles only in a group-committed record of kind 0; a bad redo section does not decode', () => {
  const needle = { volume: 1, offset: 64, key: bytes('k'), value: bytes('v'), expiresAt: 0 };
  for (const r of [
    { ...sample, redo: [needle] }, // no batchFirstLsn
    { ...sample, batchFirstLsn: 7, redo: [{ ...needle, key: new Uint8Array(0) }] },
    { ...sample, batchFirstLsn: 7, redo: [{ ...needle, offset: -8 }] },
    { ...sample, batchFirstLsn: 7, redo: [{ ...needle, value: 'v' }] },
  ]) {
    assert.throws(() => encodeRecord(r as WalRecord), (e: unknown) => e instanceof StoreError && e.code === 'BAD_ARGUMENT', JSON.stringify(r));
  }
  const codec = new Encoder({ useRecords: false, tagUint8Array: false });
  const base = [7, 1, 0, [[2, bytes('k')]], 7];
  const entry = [1, 64, 0, bytes('k'), bytes('v')];
  for (const shape of [
    [...base, []], // present means not empty
    [...base, [entry.slice(0, 4)]],
    [...base, [[1, 64, 0, bytes('k'), 'v']]],
    [...base, [[1, 64, 0, new Uint8Array(0), bytes('v')]]],
    [7, 1, 1, [], 7, [entry]], // a snapshot chunk carries none
    [...base, [entry], 0],
  ]) {
    const res = decodeRecord(frame(codec.encode(shape)), 0);
    assert.deepEqual(res, { ok: false, reason: 'decode' }, JSON.stringify(shape));
  }
  assert.ok(decodeRecord(frame(codec.encode([...base, [entry]])), 0).ok, 'the well-formed one decodes');
});

test('Buffer keys encode like Uint8Array keys', () => {
  const a = encodePayload({ lsn: 1, timeMs: 2, kind: 0, ops: [{ code: OpCode.Del, key: Buffer.from('ab') }] });
  const b = encodePayload({ lsn: 1, timeMs: 2, kind: 0, ops: [{ code: OpCode.Del, key: bytes('ab') }] });
  assert.deepEqual(a, b);
});

test('decodeRecord: every prefix of a frame is short', () => {
  const f = encodeRecord(sample);
  for (let i = 0; i < f.length; i++) {
    assert.deepEqual(decodeRecord(f.subarray(0, i), 0), { ok: false, reason: 'short' }, `prefix ${i}`);
  }
  assert.deepEqual(decodeRecord(f, f.length), { ok: false, reason: 'short' });
});

test('decodeRecord: length 0 and over the max are bad lengths', () => {
  const f = encodeRecord(sample);
  const zero = f.slice();
  new DataView(zero.buffer).setUint32(0, 0, true);
  assert.deepEqual(decodeRecord(zero, 0), { ok: false, reason: 'length' });
  const big = f.slice();
  new DataView(big.buffer).setUint32(0, WAL_MAX_PAYLOAD + 1, true);
  assert.deepEqual(decodeRecord(big, 0), { ok: false, reason: 'length' });
  new DataView(big.buffer).setUint32(0, 0xffffffff, true);
  assert.deepEqual(decodeRecord(big, 0), { ok: false, reason: 'length' });
});

test('decodeRecord: a flipped bit anywhere in the CRC or payload is a checksum failure', () => {
  const f = encodeRecord(sample);
  for (let i = 4; i < f.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = f.slice();
      bad[i]! ^= bit;
      assert.deepEqual(decodeRecord(bad, 0), { ok: false, reason: 'checksum' }, `byte ${i} bit ${bit}`);
    }
  }
});

test('decodeRecord: the skipChecksum canary accepts a bad CRC (so the canary has teeth)', () => {
  const bad = encodeRecord(sample);
  bad[4]! ^= 0xff;
  try {
    canaries.skipChecksum = true;
    assert.equal(decodeRecord(bad, 0).ok, true);
  } finally {
    resetCanaries();
  }
  assert.equal(decodeRecord(bad, 0).ok, false);
});

test('decodeRecord: CBOR that decodes but has the wrong shape is a decode failure, never a throw', () => {
  const enc = new Encoder({ useRecords: false, tagUint8Array: false });
  const k = bytes('k');
  const shapes: unknown[] = [
    42,
    'text',
    { lsn: 1 },
    [],
    [1, 2, 0],
    [1, 2, 0, [], 5],
    [-1, 2, 0, []],
    [1.5, 2, 0, []],
    [2 ** 53, 2, 0, []],
    [1, -2, 0, []],
    [1, 2, 2, []],
    [1, 2, 0, 'ops'],
    [1, 2, 0, [[9, k]]],
    [1, 2, 0, [[1, k, 1, 2, 3]]],
    [1, 2, 0, [[1, k, 1, 2, 3, 4, 5, 6]]],
    [1, 2, 0, [[1, k, 1, 2, 3, 4, 0]]],
    [1, 2, 0, [[1, k, 1, 2, 3, 4, 'm']]],
    [1, 2, 0, [[5, k, 1, 2, 3, 4, 0, 0, 0, 0]]],
    [1, 2, 0, [[1, 'k', 1, 2, 3, 4]]],
    [1, 2, 0, [[1, new Uint8Array(0), 1, 2, 3, 4]]],
    [1, 2, 0, [[1, new Uint8Array(65536), 1, 2, 3, 4]]],
    [1, 2, 0, [[2]]],
    [1, 2, 0, [[2, k, 0]]],
    [1, 2, 0, [[3, k]]],
    [1, 2, 0, [[3, k, -1]]],
    [1, 2, 0, [[4, k, 1]]],
    [1, 2, 0, [[4, k, 1, 'x']]],
    [1, 2, 0, [[1, k, 1, 2, 3, null]]],
    [1, 2, 0, [[6, k]]],
    [1, 2, 0, [[6, k, 2]]],
    [1, 2, 0, [[6, k, 0, 1]]],
    [1, 2, 0, [[6, k, 1, 2, 3]]],
    [1, 2, 0, [[6, k, 1, 2, 3, -4]]],
    [1, 2, 0, [[6, k, 3, 2, 3, 4]]],
    [1, 2, 0, [[6, k, 2]]],
    [1, 2, 0, [[7, k]]],
    [1, 2, 1, [[7]]],
    [1, 2, 1, [[2, k]]], // a snapshot chunk holds SET ops only
    [1, 2, 0, [[1, k, 1, 2, 3, 4], 'x']],
  ];
  for (const s of shapes) {
    assert.deepEqual(decodeRecord(frame(enc.encode(s)), 0), { ok: false, reason: 'decode' }, JSON.stringify(s));
  }
  // Not CBOR at all, or CBOR with trailing bytes, or a BigInt.
  for (const raw of [[0xff, 0xff], [0x5a, 0x7f, 0xff, 0xff, 0xff], [0x84, 0x01, 0x02, 0x00, 0x80, 0x00], [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]]) {
    assert.deepEqual(decodeRecord(frame(new Uint8Array(raw)), 0), { ok: false, reason: 'decode' }, String(raw));
  }
  // Sanity: the same frame helper around a good payload decodes.
  assert.ok(decodeRecord(frame(enc.encode([1, 2, 0, [[2, k]]])), 0).ok);
});

test('property: random bytes never make decodeRecord throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (raw, framed) => {
      const res = decodeRecord(framed ? frame(raw) : raw, 0);
      assert.equal(typeof res.ok, 'boolean');
    }),
    { numRuns: 2000 },
  );
});

test('encoding refuses records that would not decode, with BAD_ARGUMENT', () => {
  const bad: unknown[] = [
    { ...sample, lsn: -1 },
    { ...sample, timeMs: 1.5 },
    { ...sample, kind: 2 },
    { ...sample, ops: [{ code: OpCode.Del, key: new Uint8Array(0) }] },
    { ...sample, ops: [{ code: OpCode.Del, key: new Uint8Array(65536) }] },
    { ...sample, ops: [{ code: OpCode.Del, key: 'k' }] },
    { ...sample, ops: [{ code: 9, key: bytes('k') }] },
    { ...sample, ops: [{ code: OpCode.Expire, key: bytes('k'), expiresAt: NaN }] },
    { ...sample, kind: 1 }, // snapshot chunks hold SET ops only
  ];
  for (const r of bad) {
    assert.throws(() => encodeRecord(r as WalRecord), (e: unknown) => e instanceof StoreError && e.code === 'BAD_ARGUMENT', JSON.stringify(r));
  }
});

test('a payload over WAL_MAX_PAYLOAD is BATCH_TOO_LARGE', () => {
  const ops: Op[] = [];
  const k = new Uint8Array(65535);
  for (let i = 0; i * 65535 < WAL_MAX_PAYLOAD; i++) ops.push({ code: OpCode.Del, key: k });
  assert.throws(
    () => encodeRecord({ lsn: 1, timeMs: 1, kind: 0, ops }),
    (e: unknown) => e instanceof StoreError && e.code === 'BATCH_TOO_LARGE',
  );
});

test('a SET and a SET_IF of a needle with metadata carry its length as one more field; without, the old shape', () => {
  const withMeta: WalRecord = {
    lsn: 3,
    timeMs: 5,
    kind: 0,
    ops: [
      { code: OpCode.Set, key: bytes('m'), address: { volume: 1, offset: 64, length: 200, meta: 40 }, expiresAt: 0 },
      { code: OpCode.SetIf, key: bytes('n'), address: { volume: 1, offset: 264, length: 90, meta: 12 }, expiresAt: 0, flags: 1, expectVolume: 0, expectOffset: 0 },
      { code: OpCode.Set, key: bytes('o'), address: { volume: 1, offset: 360, length: 40 }, expiresAt: 0 },
    ],
  };
  const res = decodeRecord(encodeRecord(withMeta), 0);
  assert.ok(res.ok);
  assert.deepStrictEqual(res.record, withMeta);
  const plain = new Encoder({ useRecords: false }).decode(encodePayload(withMeta)) as unknown[][][];
  assert.equal(plain[3]![0]!.length, 7);
  assert.equal(plain[3]![1]!.length, 10);
  assert.equal(plain[3]![2]!.length, 6, 'no metadata: the record is what older versions wrote');
});

test('SET_IF round-trips with its flags and expectations, and bad flags are refused', () => {
  const record: WalRecord = {
    lsn: 9,
    timeMs: 1_700_000_000_000,
    kind: 0,
    ops: [{ code: OpCode.SetIf, key: new Uint8Array([1, 2, 3]), address: { volume: 1048576, offset: 4096, length: 99 }, expiresAt: 5, flags: SetFlag.Nx | SetFlag.KeepTtl, expectVolume: 0, expectOffset: 0 }],
  };
  const decoded = decodeRecord(encodeRecord(record), 0);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.record, record);
  assert.throws(() => encodeRecord({ ...record, ops: [{ ...(record.ops[0] as SetIfOp), flags: 16 }] }), /flags/);
});

test('a snapshot SET keeps the value\'s modified time: [1, key, v, o, l, exp, meta or 0, modified], and the index applies it', async () => {
  const { HashIndex } = await import('../src/storage/hash_index.js');
  const { NodeFs } = await import('../src/runtime/fs.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const ops: Op[] = [
    { code: OpCode.Set, key: bytes('plain'), address: { volume: 1, offset: 64, length: 40 }, expiresAt: 0, modifiedSec: 1_700_000_000 },
    { code: OpCode.Set, key: bytes('meta'), address: { volume: 1, offset: 128, length: 90, meta: 20 }, expiresAt: 9e12, modifiedSec: 1_700_000_001 },
    { code: OpCode.Set, key: bytes('old'), address: { volume: 1, offset: 256, length: 40 }, expiresAt: 0 },
  ];
  const record: WalRecord = { lsn: 5, timeMs: 1_800_000_000_000, kind: 1, ops };
  const res = decodeRecord(encodeRecord(record), 0);
  assert.ok(res.ok);
  assert.deepStrictEqual(res.record, record);
  const arrays = new Encoder({ useRecords: false }).decode(encodePayload(record)) as unknown[];
  const encodedOps = arrays[3] as unknown[][];
  assert.deepEqual(encodedOps.map((o) => o.length), [8, 8, 6], 'the modified time rides only where there is one, after the metadata length (0: none)');
  assert.equal(encodedOps[0]![6], 0);
  const dir = mkdtempSync(join(tmpdir(), 'brise-walfmt-'));
  try {
    const index = HashIndex.open(new NodeFs(), join(dir, 'index.hash'));
    index.apply({ lsn: 5, timeMs: 1_800_000_000_000, kind: 0, ops: ops.map((o) => ({ ...o })) });
    const got = (k: string): number | undefined => index.get(bytes(k), 0)?.modifiedAt;
    assert.deepEqual([got('plain'), got('meta'), got('old')], [1_700_000_000_000, 1_700_000_001_000, 1_800_000_000_000]);
    index.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
