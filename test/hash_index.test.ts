// Tests of the on-disk hash index (src/storage/hash_index.ts): op results against a plain
// model, persistence across reopen, crash safety of checkpoint and rebuild through SimFs
// (every crash point, every crash mode), corruption detection, scan, growth, snapshots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as zlib from 'node:zlib';
import { join } from 'node:path';
import { HashIndex } from '../src/storage/hash_index.js';
import { crc32Range, dataStart } from '../src/storage/hash_index_format.js';
import { keyHash } from '../src/storage/key_hash.js';
import { keyFilterBits } from '../src/storage/index_file.js';
import { NodeFs, type Fs } from '../src/runtime/fs.js';
import { GuardKind, OpCode, SetFlag, type Op, type WalRecord } from '../src/storage/types.js';
import { CRASH_MODES, SimCrash, SimFs, mulberry32, type Rng } from '../property-tests/sim_fs.js';
import { StoreError } from '../src/runtime/errors.js';
import { IndexModel as Model } from './helpers/index_model.js';

const T0 = 1_700_000_000_000;
const k = (s: string): Uint8Array => Buffer.from(s);

const set = (key: string, volume: number, offset: number, expiresAt = 0): Op => ({
  code: OpCode.Set,
  key: k(key),
  address: { volume, offset, length: 100 + offset },
  expiresAt,
});
const del = (key: string): Op => ({ code: OpCode.Del, key: k(key) });
const expire = (key: string, expiresAt: number): Op => ({ code: OpCode.Expire, key: k(key), expiresAt });
const delIf = (key: string, volume: number, offset: number): Op => ({ code: OpCode.DelIf, key: k(key), volume, offset });
const rec = (lsn: number, ops: Op[], timeMs = T0, kind: 0 | 1 = 0): WalRecord => ({ lsn, timeMs, kind, ops });

// ---- the model: test/helpers/index_model.ts, written independently ---------------------------

function guardAt(key: string, volume: number, offset: number, expiresAt: number): Op {
  return { code: OpCode.Guard, key: k(key), kind: GuardKind.Live, volume, offset, expiresAt };
}

function guardSame(key: string, volume: number, offset: number, expiresAt: number): Op {
  return { code: OpCode.Guard, key: k(key), kind: GuardKind.Same, volume, offset, expiresAt };
}

function guardAbsent(key: string): Op {
  return { code: OpCode.Guard, key: k(key), kind: GuardKind.Absent, volume: 0, offset: 0, expiresAt: 0 };
}

function setIf(key: string, volume: number, offset: number, flags: number, expiresAt = 0, expectVolume = 0, expectOffset = 0): Op {
  return { code: OpCode.SetIf, key: k(key), address: { volume, offset, length: 8 }, expiresAt, flags, expectVolume, expectOffset };
}

/** Asserts that the index holds exactly the model's keys (raw, expired or not). */
function assertSame(index: HashIndex, model: Model, universe: Iterable<string>, label = ''): void {
  for (const key of universe) {
    const e = model.map.get(key);
    const got = index.getRaw(Buffer.from(key, 'latin1'));
    if (e === undefined) {
      assert.equal(got, undefined, `${label} ${key} should be absent`);
    } else {
      assert.ok(got !== undefined, `${label} ${key} should be present`);
      assert.deepEqual({ ...got.address, expiresAt: got.expiresAt }, e, `${label} ${key}`);
    }
  }
  assert.equal(index.liveCount, model.map.size, `${label} liveCount`);
}

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-index-'));
  return { dir, cleanup: () => nodeFs.rmSync(dir, { recursive: true, force: true }) };
}

function withIndex(fn: (fs: Fs, path: string) => void): void {
  const { dir, cleanup } = tempDir();
  try {
    fn(new NodeFs(), join(dir, 'index.hash'));
  } finally {
    cleanup();
  }
}

/** A seeded workload: sets, overwrites, deletes, expires, del_ifs over a small key space. */
function workload(rng: Rng, records: number, keys: number, firstLsn = 1): WalRecord[] {
  const out: WalRecord[] = [];
  for (let i = 0; i < records; i++) {
    const ops: Op[] = [];
    const n = 1 + Math.floor(rng() * 6);
    const now = T0 + i * 10;
    for (let j = 0; j < n; j++) {
      const key = `key-${Math.floor(rng() * keys)}`;
      const r = rng();
      if (r < 0.5) ops.push(set(key, Math.floor(rng() * 3), Math.floor(rng() * 1000) * 8, rng() < 0.2 ? now + Math.floor(rng() * 50) : 0));
      else if (r < 0.7) ops.push(del(key));
      else if (r < 0.8) ops.push(expire(key, rng() < 0.5 ? 0 : now + Math.floor(rng() * 50)));
      else if (r < 0.9) ops.push(delIf(key, Math.floor(rng() * 3), Math.floor(rng() * 1000) * 8));
      else if (r < 0.995) ops.push(rng() < 0.4 ? guardAbsent(key) : (rng() < 0.5 ? guardAt : guardSame)(key, Math.floor(rng() * 3), Math.floor(rng() * 1000) * 8, 0));
      else ops.push({ code: OpCode.Flush });
    }
    out.push(rec(firstLsn + i, ops, now));
  }
  return out;
}

const universe = (n: number): string[] => Array.from({ length: n }, (_, i) => `key-${i}`);

// ---- format pieces ------------------------------------------------------------------------

test('keyHash is 32-bit FNV-1a', () => {
  assert.equal(keyHash(k('')), 0x811c9dc5);
  assert.equal(keyHash(k('a')), 0xe40c292c);
  assert.equal(keyHash(k('foobar')), 0xbf9cf968);
});

test('crc32Range agrees with zlib.crc32, whole and continued', () => {
  const buf = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff));
  assert.equal(crc32Range(buf, 0, buf.length), zlib.crc32(buf) >>> 0);
  const first = crc32Range(buf, 10, 100);
  assert.equal(crc32Range(buf, 100, 250, first), zlib.crc32(buf.subarray(10, 250)) >>> 0);
  for (let from = 0; from < 5; from++) {
    for (let to = from; to < from + 9; to++) {
      assert.equal(crc32Range(buf, from, to), zlib.crc32(buf.subarray(from, to)) >>> 0, `${from}..${to}`);
    }
  }
});

// ---- op semantics -------------------------------------------------------------------------

test('op results follow the WAL op table, expired keys included', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    const cases: [string, WalRecord, number[], number][] = [
      // label, record, results, liveCount after
      ['set new', rec(1, [set('a', 1, 8)]), [1], 1],
      ['set over live', rec(2, [set('a', 1, 16)]), [1], 1],
      ['del live', rec(3, [del('a')]), [1], 0],
      ['del missing', rec(4, [del('a')]), [0], 0],
      ['expire missing', rec(5, [expire('a', T0 + 5)]), [0], 0],
      ['set with ttl', rec(6, [set('b', 2, 24, T0 + 100)]), [1], 1],
      ['expire live', rec(7, [expire('b', T0 + 200)], T0 + 50), [1], 1],
      ['expire expired', rec(8, [expire('b', 0)], T0 + 300), [0], 1],
      ['set over expired keeps count', rec(9, [set('b', 2, 32, T0 + 400)], T0 + 300), [1], 1],
      ['del expired answers 0 and deletes', rec(10, [del('b')], T0 + 500), [0], 0],
      ['del_if wrong address', rec(11, [set('c', 3, 40), delIf('c', 3, 48)]), [1, 0], 1],
      ['del_if right address', rec(12, [delIf('c', 3, 40)]), [1], 0],
      ['del_if missing', rec(13, [delIf('c', 3, 40)]), [0], 0],
      ['del_if expired at address deletes', rec(14, [set('d', 4, 56, T0 + 1), delIf('d', 4, 56)], T0 + 2), [1, 1], 0],
      ['persist', rec(15, [set('e', 5, 64, T0 + 10), expire('e', 0)], T0), [1, 1], 1],
      ['ops in order inside one record', rec(16, [del('e'), set('e', 5, 72), del('e'), del('e')]), [1, 1, 1, 0], 0],
      ['old lsn skipped', rec(16, [set('z', 1, 8)]), [], 0],
    ];
    for (const [label, record, results, live] of cases) {
      assert.deepEqual(index.apply(record), results, label);
      assert.equal(index.liveCount, live, `${label}: liveCount`);
    }
    assert.equal(index.appliedLsn, 16);
    const conditional: [string, WalRecord, number[], number][] = [
      ['NX on missing sets', rec(20, [setIf('n', 7, 8, SetFlag.Nx)]), [1], 1],
      ['NX on live refuses', rec(21, [setIf('n', 7, 16, SetFlag.Nx)]), [0], 1],
      ['XX on missing refuses', rec(22, [setIf('x', 7, 24, SetFlag.Xx)]), [0], 1],
      ['XX on live sets', rec(23, [setIf('n', 7, 32, SetFlag.Xx, T0 + 50)], T0), [1], 1],
      ['KEEPTTL keeps the live expiry', rec(24, [setIf('n', 7, 40, SetFlag.KeepTtl)], T0), [1], 1],
      ['NX on expired sets, count kept', rec(25, [setIf('n', 7, 48, SetFlag.Nx)], T0 + 60), [1], 1],
      ['IF_AT wrong address refuses', rec(26, [setIf('n', 7, 56, SetFlag.IfAt, 0, 7, 40)], T0 + 60), [0], 1],
      ['IF_AT right address sets', rec(27, [setIf('n', 7, 56, SetFlag.IfAt, 0, 7, 48)], T0 + 60), [1], 1],
      ['IF_AT on missing refuses', rec(28, [setIf('m', 7, 64, SetFlag.IfAt, 0, 7, 48)]), [0], 1],
    ];
    for (const [label, record, results, live] of conditional) {
      assert.deepEqual(index.apply(record), results, label);
      assert.equal(index.liveCount, live, `${label}: liveCount`);
    }
    assert.equal(index.getRaw(k('n'))?.address.offset, 56);
    assert.equal(index.getRaw(k('n'))?.expiresAt, 0);
    index.apply(rec(29, [setIf('kt', 8, 8, 0, T0 + 500), setIf('kt', 8, 16, SetFlag.KeepTtl | SetFlag.Xx)], T0));
    assert.equal(index.getRaw(k('kt'))?.expiresAt, T0 + 500, 'KEEPTTL with XX keeps the expiry');
    assert.equal(index.get(k('z'), T0), undefined);
    const e = index.getRaw(k('d'));
    assert.equal(e, undefined);
    index.apply(rec(30, [set('f', 6, 80, T0 + 10)]));
    assert.equal(index.get(k('f'), T0 + 9)?.address.offset, 80);
    assert.equal(index.get(k('f'), T0 + 10), undefined, 'expired: not live');
    assert.equal(index.getRaw(k('f'))?.expiresAt, T0 + 10, 'getRaw still sees it');
    index.close();
  });
});

test('a record with guards applies whole when every guard holds, else not at all; FLUSH empties the index', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    index.apply(rec(1, [set('a', 1, 8, T0 + 100), set('b', 1, 16)], T0));
    const cases: [string, WalRecord, number[]][] = [
      ['absent guard on a live key fails: nothing applies', rec(2, [guardAbsent('a'), set('c', 1, 24), del('b')], T0), [0, 0, 0]],
      ['at guard with the wrong expiry fails', rec(3, [guardAt('a', 1, 8, 0), del('b')], T0), [0, 0]],
      ['at guard with the wrong offset fails', rec(4, [guardAt('a', 1, 16, T0 + 100), del('b')], T0), [0, 0]],
      ['guards anywhere in the record are judged first', rec(5, [set('b', 1, 32), guardAt('b', 1, 32, 0)], T0), [0, 0]],
      ['every guard holds: the ops apply', rec(6, [guardAt('a', 1, 8, T0 + 100), guardAbsent('c'), set('c', 1, 40), del('b')], T0), [1, 1, 1, 1]],
      ['an expired key is absent to a guard', rec(7, [guardAbsent('a'), set('d', 1, 48)], T0 + 100), [1, 1]],
      ['an expired key fails a live guard', rec(8, [guardAt('a', 1, 8, T0 + 100), del('d')], T0 + 100), [0, 0]],
      ['a same-entry guard holds for an expired key unchanged', rec(9, [guardSame('a', 1, 8, T0 + 100), set('d2', 1, 60)], T0 + 100), [1, 1]],
      ['a same-entry guard fails for another entry', rec(10, [guardSame('a', 1, 16, 0), del('d2')], T0 + 100), [0, 0]],
    ];
    for (const [label, record, results] of cases) assert.deepEqual(index.apply(record), results, label);
    assert.equal(index.get(k('b'), T0), undefined);
    assert.equal(index.get(k('c'), T0)?.address.offset, 40);
    assert.equal(index.get(k('d'), T0)?.address.offset, 48);
    // A same-entry guard of an entry expired since: the key swept away still holds; a new live value does not.
    index.apply(rec(12, [set('sw', 1, 88, T0 + 5)], T0));
    index.apply(rec(13, [{ code: OpCode.DelIf, key: k('sw'), volume: 1, offset: 88 }], T0 + 10));
    assert.deepEqual(index.apply(rec(14, [guardSame('sw', 1, 88, T0 + 5)], T0 + 10)), [1]);
    index.apply(rec(15, [set('sw', 1, 96)], T0 + 10));
    assert.deepEqual(index.apply(rec(16, [guardSame('sw', 1, 88, T0 + 5)], T0 + 10)), [0]);
    assert.deepEqual(index.apply(rec(17, [{ code: OpCode.Flush }, set('e', 1, 56)], T0)), [1, 1]);
    assert.equal(index.liveCount, 1);
    for (const key of ['a', 'b', 'c', 'd']) assert.equal(index.getRaw(k(key)), undefined, key);
    index.checkpoint();
    index.close();
    const again = HashIndex.open(fs, path);
    assert.equal(again.liveCount, 1);
    assert.equal(again.get(k('c'), T0), undefined, 'the flush is durable in the checkpoint');
    assert.equal(again.get(k('e'), T0)?.address.offset, 56);
    again.close();
  });
});

test('a FLUSH while a rebuild runs empties the copied buckets too', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    const model = new Model();
    let lsn = 1;
    const apply = (ops: Op[]): void => {
      const r = rec(lsn++, ops);
      assert.deepEqual(index.apply(r), model.apply(r));
    };
    for (let i = 0; i < 400; i += 50) apply(Array.from({ length: 50 }, (_, j) => set(`key-${i + j}`, 1, (i + j) * 8)));
    index.startRebuild(64);
    index.rebuildStep(6); // some old buckets copied, some not
    apply([{ code: OpCode.Flush }, set('key-3', 2, 8), set('key-399', 2, 16)]);
    while (index.rebuilding) index.rebuildStep(4);
    assert.equal(index.bucketCount, 64);
    assertSame(index, model, universe(400), 'after the swap');
    index.close();
  });
});

test('bad keys are refused before any op of the record is applied', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16, maxKeyLength: 8 });
    assert.throws(() => index.apply(rec(1, [set('ok', 1, 8), set('much-too-long', 1, 8)])), (e: StoreError) => e.code === 'KEY_TOO_LONG');
    assert.throws(() => index.apply(rec(1, [set('', 1, 8)])), (e: StoreError) => e.code === 'KEY_EMPTY');
    assert.equal(index.get(k('ok'), T0), undefined);
    assert.equal(index.appliedLsn, 0);
    assert.deepEqual(index.apply(rec(1, [set('ok', 1, 8)])), [1]);
    index.close();
  });
});

test('a random workload matches the model', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    const model = new Model();
    for (const r of workload(mulberry32(7), 400, 60)) {
      assert.deepEqual(index.apply(r), model.apply(r), `lsn ${r.lsn}`);
    }
    assertSame(index, model, universe(60));
    index.close();
  });
});

// ---- persistence --------------------------------------------------------------------------

test('reopen after checkpoint keeps everything; without checkpoint it returns the last durable LSN', () => {
  withIndex((fs, path) => {
    const records = workload(mulberry32(11), 300, 80);
    const model = new Model();
    let index = HashIndex.open(fs, path, { initialBuckets: 16 });
    for (const r of records.slice(0, 200)) {
      index.apply(r);
      model.apply(r);
    }
    index.checkpoint();
    assert.equal(index.durableLsn, 200);
    const atCheckpoint = new Model();
    for (const r of records.slice(0, 200)) atCheckpoint.apply(r);
    for (const r of records.slice(200)) {
      index.apply(r);
      model.apply(r);
    }
    index.close();

    index = HashIndex.open(fs, path);
    assert.equal(index.durableLsn, 200, 'no checkpoint after 200');
    assert.equal(index.appliedLsn, 200);
    assert.equal(index.bucketCount, 16, 'bucket count comes from the file');
    assertSame(index, atCheckpoint, universe(80), 'at checkpoint');
    for (const r of records) index.apply(r); // the owner replays: older records are skipped
    assertSame(index, model, universe(80), 'after replay');
    index.checkpoint();
    index.close();

    index = HashIndex.open(fs, path);
    assert.equal(index.durableLsn, 300);
    assertSame(index, model, universe(80), 'after second checkpoint');
    index.close();
  });
});

/** Crash-tests one mutation: every crash point × every crash mode, then reopen and replay. */
function crashEveryPoint(
  label: string,
  setup: (fs: SimFs, path: string) => { index: HashIndex; records: WalRecord[]; model: Model },
  mutate: (index: HashIndex) => void,
  keys: number,
): number {
  let points = 0;
  for (let n = 1; ; n++) {
    let finished = false;
    for (const mode of CRASH_MODES) {
      const fs = new SimFs();
      fs.mkdir('/d');
      const { index, records, model } = setup(fs, '/d/index.hash');
      fs.failAfter(n, 'crash');
      try {
        mutate(index);
        finished = true;
      } catch (err) {
        if (!(err instanceof SimCrash) && !(err instanceof StoreError && /simulated power loss/.test(err.message))) throw err;
      }
      const claimed = index.durableLsn;
      fs.crash(mode, mulberry32(n * 31 + mode.length));
      const reopened = HashIndex.open(fs, '/d/index.hash');
      const durable = reopened.durableLsn;
      assert.ok(durable >= claimed, `${label}: claimed durable ${claimed}, recovered ${durable} (op ${n}, ${mode})`);
      for (const r of records) if (r.lsn > durable) reopened.apply(r);
      assertSame(reopened, model, universe(keys), `${label}: crash at op ${n}, mode ${mode}, durable ${durable}`);
      // Recovering twice gives the same state.
      reopened.checkpoint();
      reopened.close();
      const again = HashIndex.open(fs, '/d/index.hash');
      assertSame(again, model, universe(keys), `${label}: second recovery at op ${n}, mode ${mode}`);
      again.close();
      if (finished) break;
    }
    points = n;
    if (finished) break;
  }
  return points;
}

test('an interrupted checkpoint, at every file operation and in every crash mode, recovers', () => {
  const records = workload(mulberry32(5), 120, 50);
  const setup = (fs: SimFs, path: string): { index: HashIndex; records: WalRecord[]; model: Model } => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    const model = new Model();
    records.forEach((r, i) => {
      index.apply(r);
      model.apply(r);
      if (i === 59) index.checkpoint(); // an earlier checkpoint, so a redo has an old one to beat
    });
    return { index, records, model };
  };
  const points = crashEveryPoint('checkpoint', setup, (index) => index.checkpoint(), 50);
  assert.ok(points >= 8, `checkpoint has at least 8 file operations (got ${points})`);
});

test('a crash without checkpoint loses only what the WAL replays', () => {
  const fs = new SimFs();
  fs.mkdir('/d');
  const records = workload(mulberry32(9), 100, 40);
  const model = new Model();
  const index = HashIndex.open(fs, '/d/index.hash', { initialBuckets: 16 });
  records.forEach((r, i) => {
    index.apply(r);
    model.apply(r);
    if (i === 49) index.checkpoint();
  });
  fs.crash('torn', mulberry32(3));
  const reopened = HashIndex.open(fs, '/d/index.hash');
  assert.equal(reopened.durableLsn, 50);
  for (const r of records) reopened.apply(r);
  assertSame(reopened, model, universe(40));
  reopened.close();
});

// ---- corruption ---------------------------------------------------------------------------

test('a damaged newest header falls back to the older slot; both damaged is CORRUPT naming the file', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    index.apply(rec(1, [set('a', 1, 8)]));
    index.checkpoint(); // generation 2, written to the slot at 0; the slot at 2048 keeps generation 1
    index.close();
    const bytes = nodeFs.readFileSync(path);
    bytes[40] ^= 0x01; // live count of the newest slot, covered by its CRC
    nodeFs.writeFileSync(path, bytes);
    const older = HashIndex.open(fs, path);
    // The older slot says LSN 0; index.hash.heads (LSN 1) brings it forward, as after a crash.
    assert.equal(older.durableLsn, 1);
    assert.ok(older.get(Buffer.from('a'), 1), 'the entry is back');
    older.apply(rec(2, [set('b', 1, 16)]));
    older.checkpoint(); // writes the slot that is not the newest valid one
    older.close();
    const reopened = HashIndex.open(fs, path);
    assert.equal(reopened.durableLsn, 2);
    assert.ok(reopened.get(Buffer.from('b'), 1));
    reopened.close();
    const both = nodeFs.readFileSync(path);
    both[40] ^= 0x01;
    both[2048 + 40] ^= 0x01;
    nodeFs.writeFileSync(path, both);
    assert.throws(
      () => HashIndex.open(fs, path),
      (e: unknown) => e instanceof StoreError && e.code === 'CORRUPT' && e.message.includes(path) && e.message.includes('no valid header'),
    );
    nodeFs.writeFileSync(path, Buffer.from('not an index at all'));
    assert.throws(() => HashIndex.open(fs, path), (e: unknown) => e instanceof StoreError && e.code === 'CORRUPT');
  });
});

test('a flipped byte in an entry is CORRUPT on get, never a miss', () => {
  withIndex((fs, path) => {
    let index = HashIndex.open(fs, path, { initialBuckets: 16 });
    index.apply(rec(1, [set('victim', 1, 8)]));
    index.apply(rec(2, [set('other', 1, 16)]));
    index.checkpoint();
    index.close();
    const first = dataStart(16); // 'victim' is the first entry
    for (const at of [first + 58, first + 26, first + 9]) {
      const bytes = nodeFs.readFileSync(path);
      bytes[at] ^= 0x20; // a key byte, the needle offset, the hash
      nodeFs.writeFileSync(path, bytes);
      index = HashIndex.open(fs, path);
      assert.throws(() => index.get(k('victim'), T0), (e: unknown) => e instanceof StoreError && e.code === 'CORRUPT', `byte ${at}`);
      index.close();
      bytes[at] ^= 0x20;
      nodeFs.writeFileSync(path, bytes);
    }
    index = HashIndex.open(fs, path);
    assert.equal(index.get(k('victim'), T0)?.address.offset, 8, 'restored file reads fine');
    index.close();
  });
});

// ---- scan, entries, sweep -----------------------------------------------------------------

function fill(index: HashIndex, n: number, perRecord = 100, firstLsn = index.appliedLsn + 1): number {
  let lsn = firstLsn;
  for (let i = 0; i < n; i += perRecord) {
    const ops: Op[] = [];
    for (let j = i; j < Math.min(n, i + perRecord); j++) ops.push(set(`key-${j}`, 1, j * 8));
    index.apply(rec(lsn++, ops));
  }
  return lsn;
}

test('scan returns every live key exactly once, and MATCH filters', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 64 });
    fill(index, 1000);
    index.apply(rec(index.appliedLsn + 1, [set('key-5', 2, 8)])); // an overwrite: still once
    index.apply(rec(index.appliedLsn + 1, [del('key-7'), set('key-9', 1, 8, T0 - 1)]));
    const seen = new Map<string, number>();
    let cursor = 0;
    let calls = 0;
    do {
      const r = index.scan(cursor, 10, T0);
      for (const e of r.entries) seen.set(Buffer.from(e.key).toString(), (seen.get(Buffer.from(e.key).toString()) ?? 0) + 1);
      cursor = r.cursor;
      calls++;
    } while (cursor !== 0);
    assert.ok(calls > 10);
    assert.equal(seen.size, 998);
    for (const [key, count] of seen) assert.equal(count, 1, key);
    assert.equal(seen.has('key-7'), false);
    assert.equal(seen.has('key-9'), false, 'expired keys are not returned');

    let matched = 0;
    cursor = 0;
    do {
      const r = index.scan(cursor, 50, T0, k('key-1?'));
      matched += r.entries.length;
      cursor = r.cursor;
    } while (cursor !== 0);
    assert.equal(matched, 10);
    assert.equal([...index.entries(T0)].length, 998);
    index.close();
  });
});

test('scan returns every key at least once when a rebuild swaps in midway', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    fill(index, 2000);
    const seen = new Set<string>();
    let cursor = 0;
    let calls = 0;
    do {
      const r = index.scan(cursor, 20, T0);
      for (const e of r.entries) seen.add(Buffer.from(e.key).toString());
      cursor = r.cursor;
      if (++calls === 3) {
        index.startRebuild(1024);
        while (!index.rebuildStep(4)) {
          /* copy */
        }
        assert.equal(index.bucketCount, 1024);
      }
    } while (cursor !== 0);
    for (let i = 0; i < 2000; i++) assert.ok(seen.has(`key-${i}`), `key-${i}`);
    index.close();
  });
});

test('expiredSlice walks the buckets and returns present-but-expired keys', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    index.apply(rec(1, [set('a', 1, 8, T0 + 10), set('b', 1, 16, T0 + 20), set('c', 1, 24), set('d', 1, 32, T0 + 10)]));
    index.apply(rec(2, [del('d')]));
    const found = new Map<string, number>();
    for (let i = 0; i < 4; i++) {
      for (const e of index.expiredSlice(T0 + 15, 4)) found.set(Buffer.from(e.key).toString(), e.offset);
    }
    assert.deepEqual([...found.entries()].sort(), [['a', 8]]);
    const swept = index.expiredSlice(T0 + 15, 16).map((e) => delIf(Buffer.from(e.key).toString(), e.volume, e.offset));
    assert.deepEqual(index.apply(rec(3, swept, T0 + 15)), [1]);
    assert.equal(index.liveCount, 2);
    index.close();
  });
});

/** NodeFs whose handles count the reads made through them (entries read by walks). */
class CountingFs extends NodeFs {
  reads = 0;
  override open(path: string, mode: Parameters<NodeFs['open']>[1]): ReturnType<NodeFs['open']> {
    const handle = super.open(path, mode);
    const read = handle.read.bind(handle);
    handle.read = (buf, position) => {
      this.reads++;
      return read(buf, position);
    };
    return handle;
  }
}

/** Reads one full pass of the TTL sweep makes, and the keys it finds expired at `nowMs`. */
function sweepPass(fs: CountingFs, index: HashIndex, nowMs: number): { reads: number; expired: string[] } {
  const before = fs.reads;
  const expired = index.expiredSlice(nowMs, index.bucketCount).map((e) => Buffer.from(e.key).toString());
  return { reads: fs.reads - before, expired: expired.sort() };
}

test('the TTL sweep reads a bucket again only once a key in it may expire', () => {
  const { dir, cleanup } = tempDir();
  try {
    const fs = new CountingFs();
    const path = join(dir, 'index.hash');
    let index = HashIndex.open(fs, path, { initialBuckets: 64 });
    const keys = Array.from({ length: 100 }, (_, i) => `plain-${i}`);
    index.apply(rec(1, keys.map((key, i) => set(key, 1, 8 * (i + 1)))));
    index.checkpoint();
    // A file created empty knows its chains: no key has an expiry, so nothing is read.
    assert.deepEqual(sweepPass(fs, index, T0), { reads: 0, expired: [] }, 'no key has an expiry: nothing is read');
    // A SET with an expiry, and an EXPIRE of a plain key, make their buckets suspect again.
    index.apply(rec(2, [set('ttl', 2, 8, T0 + 10), expire('plain-7', T0 + 20)]));
    const pass = sweepPass(fs, index, T0 + 30);
    assert.deepEqual(pass.expired, ['plain-7', 'ttl']);
    assert.ok(pass.reads > 0 && pass.reads <= 10, `only their buckets are walked (${pass.reads} reads)`);
    // Still there (not deleted yet): found again, and their buckets stay suspect.
    assert.deepEqual(sweepPass(fs, index, T0 + 30).expired, ['plain-7', 'ttl']);
    // Removed as the sweep removes them; a key given a TTL and then PERSISTed.
    const swept = index.expiredSlice(T0 + 30, index.bucketCount).map((e) => delIf(Buffer.from(e.key).toString(), e.volume, e.offset));
    assert.deepEqual(index.apply(rec(3, [...swept, set('kept', 2, 16, T0 + 100)], T0 + 30)), [1, 1, 1]);
    assert.deepEqual(index.apply(rec(4, [expire('kept', 0)], T0 + 30)), [1]);
    sweepPass(fs, index, T0 + 30);
    assert.equal(sweepPass(fs, index, T0 + 30).reads, 0, 'deleted and persisted: nothing to read');
    // Across a reopen the bits are not on disk: every bucket is walked again, so a key that
    // expired while the store was down is still found.
    index.apply(rec(5, [set('later', 3, 8, T0 + 40)], T0 + 30));
    index.checkpoint();
    index.close();
    index = HashIndex.open(fs, path, {});
    const reopened = sweepPass(fs, index, T0 + 50);
    assert.deepEqual(reopened.expired, ['later']);
    assert.ok(reopened.reads >= 50, 'the first pass after a reopen reads the chains');
    index.close();
  } finally {
    cleanup();
  }
});

/** `n` keys of bucket `bucket` (of `buckets`), each with key-filter bits none before it has. */
function keysOfBucket(bucket: number, buckets: number, n: number): string[] {
  const out: string[] = [];
  let seen = 0;
  for (let i = 0; out.length < n; i++) {
    const key = `b${bucket}-${i}`;
    const hash = keyHash(k(key));
    const bits = keyFilterBits(hash);
    if ((hash & (buckets - 1)) !== bucket || (bits & seen) !== 0) continue;
    seen |= bits;
    out.push(key);
  }
  return out;
}

test('a new key is written without reading its chain; after a reopen the chain is read once, then not', () => {
  const { dir, cleanup } = tempDir();
  try {
    const fs = new CountingFs();
    const path = join(dir, 'index.hash');
    const [a, b, c, d, e] = keysOfBucket(5, 1024, 5) as [string, string, string, string, string];
    let index = HashIndex.open(fs, path, { initialBuckets: 1024 });
    const readsOf = (lsn: number, key: string): number => {
      const before = fs.reads;
      assert.deepEqual(index.apply(rec(lsn, [set(key, 1, 8 * lsn)])), [1]);
      return fs.reads - before;
    };
    assert.equal(readsOf(1, a), 0, 'an empty chain is not read');
    assert.equal(readsOf(2, b), 0, 'a fresh index knows its chains: a new key reads none');
    assert.equal(readsOf(3, a), 2, 'an overwrite walks to its key (past b)');
    index.checkpoint();
    index.close();
    index = HashIndex.open(fs, path, {});
    assert.equal(readsOf(4, c), 3, 'after a reopen the first miss reads the whole chain');
    assert.equal(readsOf(5, d), 0, 'and then knows it');
    // A deleted key keeps its bits (its entries are still in the chain): found absent by a walk.
    index.apply(rec(6, [del(b)]));
    assert.equal(index.getRaw(k(b)), undefined);
    assert.equal(readsOf(7, e), 0);
    for (const key of [a, c, d, e]) assert.ok(index.getRaw(k(key)) !== undefined, key);
    assert.equal(index.liveCount, 4);
    index.close();
  } finally {
    cleanup();
  }
});

// ---- growth -------------------------------------------------------------------------------

test('growth from 16 buckets to many while applying: every key right after the swap and after reopen', () => {
  withIndex((fs, path) => {
    let index = HashIndex.open(fs, path, { initialBuckets: 16 });
    const model = new Model();
    const rng = mulberry32(21);
    let lsn = 1;
    let swaps = 0;
    for (let i = 0; i < 20000; i += 50) {
      const ops: Op[] = [];
      for (let j = i; j < i + 50; j++) ops.push(set(`key-${j}`, 1, j * 8));
      // Some churn on keys that may sit in copied or uncopied buckets.
      const victim = `key-${Math.floor(rng() * (i + 1))}`;
      ops.push(rng() < 0.5 ? del(victim) : set(victim, 2, 8 * i));
      const r = rec(lsn++, ops);
      index.apply(r);
      model.apply(r);
      if (!index.rebuilding && index.needsGrowth()) index.startRebuild();
      if (index.rebuilding && index.rebuildStep(8)) swaps++;
      if (i % 5000 === 0) index.checkpoint();
    }
    while (index.rebuilding) if (index.rebuildStep(64)) swaps++;
    assert.ok(swaps >= 3, `grew ${swaps} times`);
    assert.ok(index.bucketCount >= 8192, `buckets ${index.bucketCount}`);
    assert.equal(index.durableLsn, index.appliedLsn, 'a swap leaves the new file checkpointed');
    assertSame(index, model, universe(20000), 'after swap');
    assert.equal(nodeFs.existsSync(`${path}.tmp`), false);
    index.close();
    index = HashIndex.open(fs, path);
    assertSame(index, model, universe(20000), 'after reopen');
    index.close();
  });
});

test('a growth keeps what the index knows of its chains: the sweep still finds keys with a TTL and reads no other', () => {
  const { dir, cleanup } = tempDir();
  try {
    const fs = new CountingFs();
    const index = HashIndex.open(fs, join(dir, 'index.hash'), { initialBuckets: 16 });
    const plain = Array.from({ length: 200 }, (_, i) => set(`plain-${i}`, 1, 8 * (i + 1)));
    index.apply(rec(1, [...plain, set('ttl-old', 2, 8, T0 + 10)]));
    index.startRebuild(256);
    // Written while the rebuild copies: mirrored into the new file, its bits with it.
    index.apply(rec(2, [set('ttl-new', 2, 16, T0 + 10), set('plain-new', 2, 24)]));
    while (index.rebuilding) index.rebuildStep(16);
    assert.equal(index.bucketCount, 256);
    const pass = sweepPass(fs, index, T0 + 20);
    assert.deepEqual(pass.expired, ['ttl-new', 'ttl-old']);
    assert.ok(pass.reads <= 6, `only the TTL keys' buckets are walked (${pass.reads} reads)`);
    const before = fs.reads;
    index.apply(rec(3, Array.from({ length: 50 }, (_, i) => set(`after-${i}`, 3, 8 * (i + 1)))));
    assert.ok(fs.reads - before < 15, `new keys after the growth read (almost) no chain (${fs.reads - before} reads)`);
    for (const key of ['plain-0', 'plain-199', 'plain-new', 'after-0', 'after-49']) assert.ok(index.getRaw(k(key)) !== undefined, key);
    index.close();
  } finally {
    cleanup();
  }
});

test('a crash at any point of a rebuild swap recovers to the state before or after', () => {
  const records = workload(mulberry32(13), 80, 40);
  const setup = (fs: SimFs, path: string): { index: HashIndex; records: WalRecord[]; model: Model } => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    const model = new Model();
    records.forEach((r, i) => {
      index.apply(r);
      model.apply(r);
      if (i === 39) index.checkpoint();
      if (i === 69) index.startRebuild(64);
      if (i > 69) index.rebuildStep(1); // 10 of 16 buckets copied before the crash test
    });
    return { index, records, model };
  };
  const points = crashEveryPoint('rebuild', setup, (index) => {
    while (!index.rebuildStep(4)) {
      /* copy and swap */
    }
  }, 40);
  assert.ok(points >= 6, `rebuild swap has at least 6 file operations (got ${points})`);
});

// ---- snapshots ----------------------------------------------------------------------------

test('snapshot chunks reset the index once, then load; appliedLsn moves at the next record', () => {
  withIndex((fs, path) => {
    let index = HashIndex.open(fs, path, { initialBuckets: 16 });
    index.apply(rec(1, [set('old-1', 1, 8), set('old-2', 1, 16)]));
    index.apply(rec(2, [set('old-3', 1, 24)]));
    index.checkpoint();
    assert.deepEqual(index.apply(rec(2, [set('snap-0', 2, 8)], T0, 1)), [], 'a chunk at an applied LSN is skipped');
    assert.deepEqual(index.apply(rec(10, [set('snap-1', 2, 8), set('old-2', 2, 16)], T0, 1)), [1, 1]);
    assert.equal(index.get(k('old-1'), T0), undefined, 'the first chunk reset the index');
    assert.deepEqual(index.apply(rec(10, [set('snap-2', 2, 24)], T0, 1)), [1], 'the second chunk does not reset');
    assert.equal(index.liveCount, 3);
    assert.equal(index.appliedLsn, 2, 'appliedLsn waits for the first committed record');
    index.checkpoint(); // a partial snapshot is not checkpointed
    assert.equal(index.durableLsn, 2);
    assert.deepEqual(index.apply(rec(9, [set('stale', 1, 8)])), [], 'records up to S are skipped');
    assert.equal(index.appliedLsn, 10);
    assert.deepEqual(index.apply(rec(11, [del('snap-1')])), [1]);
    assert.equal(index.appliedLsn, 11);
    assert.equal(index.get(k('old-2'), T0)?.address.volume, 2);
    assert.equal(index.get(k('snap-2'), T0)?.address.offset, 24);
    assert.equal(index.get(k('old-3'), T0), undefined);
    assert.equal(index.liveCount, 2);
    index.checkpoint();
    index.close();
    index = HashIndex.open(fs, path);
    assert.equal(index.durableLsn, 11);
    assert.equal(index.get(k('old-1'), T0), undefined);
    assert.equal(index.get(k('snap-2'), T0)?.address.offset, 24);
    assert.equal(index.liveCount, 2);
    index.close();
  });
});

test('a crash in the middle of loading a snapshot falls back to the last checkpoint', () => {
  const fs = new SimFs();
  fs.mkdir('/d');
  const index = HashIndex.open(fs, '/d/index.hash', { initialBuckets: 16 });
  index.apply(rec(1, [set('old', 1, 8)]));
  index.checkpoint();
  index.apply(rec(5, [set('snap', 2, 8)], T0, 1));
  index.checkpoint();
  fs.crash('prefix', mulberry32(1));
  const reopened = HashIndex.open(fs, '/d/index.hash');
  assert.equal(reopened.durableLsn, 1);
  assert.equal(reopened.get(k('old'), T0)?.address.offset, 8);
  assert.equal(reopened.get(k('snap'), T0), undefined);
  reopened.close();
});

test('regression: after a rebuild swap both header slots are valid, so a torn checkpoint header falls back', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    index.apply(rec(1, [set('a', 1, 8)]));
    index.startRebuild();
    while (!index.rebuildStep(1024)) {
      // copy to the end
    }
    index.apply(rec(2, [set('b', 1, 16)]));
    index.checkpoint();
    index.close();
    // Damage the newest header slot, as a crash tearing the checkpoint's header write would.
    const bytes = nodeFs.readFileSync(path);
    const newest = bytes.readUInt32LE(12) > bytes.readUInt32LE(2048 + 12) ? 0 : 2048;
    bytes[newest + 40] ^= 0x01;
    nodeFs.writeFileSync(path, bytes);
    const again = HashIndex.open(fs, path);
    assert.ok(again.durableLsn >= 1, 'the other slot (written by the swap) is valid');
    assert.ok(again.get(k('a'), T0), 'what the swap made durable is there');
    again.close();
  });
});

test('an entry keeps the commit time of its write: EXPIRE, a rebuild and a reopen keep it; a new value moves it', () => {
  withIndex((fs, path) => {
    const index = HashIndex.open(fs, path, { initialBuckets: 16 });
    const t1 = 1_700_000_123_456;
    index.apply(rec(1, [set('m', 1, 8)], t1));
    assert.equal(index.getRaw(k('m'))?.modifiedAt, Math.floor(t1 / 1000) * 1000);
    index.apply(rec(2, [expire('m', t1 + 10_000_000)], t1 + 5000));
    assert.equal(index.getRaw(k('m'))?.modifiedAt, Math.floor(t1 / 1000) * 1000, 'EXPIRE is no change of the value');
    index.startRebuild();
    while (!index.rebuildStep(1024)) {
      // copy to the end
    }
    assert.equal(index.getRaw(k('m'))?.modifiedAt, Math.floor(t1 / 1000) * 1000, 'the rebuild copies it');
    index.apply(rec(3, [set('m', 1, 16)], t1 + 60_000));
    assert.equal(index.getRaw(k('m'))?.modifiedAt, Math.floor((t1 + 60_000) / 1000) * 1000);
    index.checkpoint();
    index.close();
    const again = HashIndex.open(fs, path);
    assert.equal(again.getRaw(k('m'))?.modifiedAt, Math.floor((t1 + 60_000) / 1000) * 1000, 'durable');
    again.close();
  });
});
