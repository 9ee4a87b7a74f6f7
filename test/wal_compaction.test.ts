// Tests of WAL compaction (src/storage/wal_compaction.ts) on real files: snapshot chunks, the
// tail copied after S, commits interleaved with steps, the swap, abort and refusals.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NodeFs, type FileHandle, type Fs, type OpenMode } from '../src/runtime/fs.js';
import { canaries, resetCanaries } from '../src/runtime/canary.js';
import { OpCode, type SetOp, type WalRecord } from '../src/storage/types.js';
import { WAL_MAX_PAYLOAD, WAL_SNAPSHOT_CHUNK_OPS } from '../src/storage/wal_format.js';
import { WalWriter, type CommitRequest } from '../src/storage/wal_writer.js';
import { WalCompaction } from '../src/storage/wal_compaction.js';
import { readWal, scanFrames, scanWal } from '../src/storage/wal_reader.js';
import { StoreError } from '../src/runtime/errors.js';

/** node:fs counting syncs of files and directories. */
class CountingFs implements Fs {
  private readonly inner = new NodeFs();
  syncs = 0;
  dirSyncs = 0;
  failDirSync: string | null = null;

  open(p: string, mode: OpenMode): FileHandle {
    const h = this.inner.open(p, mode);
    const self = this;
    return {
      path: h.path,
      read: (b, pos) => h.read(b, pos),
      write: (b, pos) => h.write(b, pos),
      sync() {
        self.syncs++;
        h.sync();
      },
      truncate: (n) => h.truncate(n),
      size: () => h.size(),
      close: () => h.close(),
    };
  }
  exists = (p: string): boolean => this.inner.exists(p);
  readdir = (p: string): string[] => this.inner.readdir(p);
  mkdir = (p: string): void => this.inner.mkdir(p);
  rename = (a: string, b: string): void => this.inner.rename(a, b);
  unlink = (p: string): void => this.inner.unlink(p);
  readFile = (p: string): Uint8Array => this.inner.readFile(p);
  syncDir(p: string): void {
    this.dirSyncs++;
    if (this.failDirSync !== null) throw Object.assign(new Error('injected'), { code: this.failDirSync });
    this.inner.syncDir(p);
  }
}

const dirs: string[] = [];
function tmpWal(): string {
  const d = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'brise-walc-'));
  dirs.push(d);
  return path.join(d, 'wal.log');
}
afterEach(() => {
  resetCanaries();
  while (dirs.length > 0) nodeFs.rmSync(dirs.pop()!, { recursive: true, force: true });
});

const enc = new TextEncoder();
const dec = new TextDecoder();
function setOp(k: string, i: number): SetOp {
  return { code: OpCode.Set, key: enc.encode(k), address: { volume: 1, offset: 64 + 8 * i, length: 40 + i }, expiresAt: 0 };
}
const setReq = (k: string, i: number): CommitRequest => ({ ops: [setOp(k, i)], timeMs: 1000 + i });
const isCode = (code: string) => (e: unknown) => e instanceof StoreError && e.code === code;

/** The live set of a log of SET/DEL ops, in key order (what the index would hand over). */
function liveOf(records: WalRecord[]): SetOp[] {
  const m = new Map<string, SetOp>();
  for (const r of records) {
    for (const op of r.ops) {
      if (op.code === OpCode.Set) m.set(dec.decode(op.key), op);
      else if (op.code === OpCode.Del) m.delete(dec.decode(op.key));
    }
  }
  return [...m.keys()].sort().map((k) => m.get(k)!);
}

function collect(fs: Fs, p: string, fromLsn: number): WalRecord[] {
  return [...readWal(fs, p, { fromLsn })];
}

test('compaction with commits between steps: snapshot at S, then every later record; reopen agrees', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'always' });
  const history: WalRecord[] = [];
  // 10_000 keys, each written twice, 2_000 deleted: the live set is 8_000 keys.
  for (let round = 0; round < 2; round++) {
    for (let b = 0; b < 100; b++) {
      const batch: CommitRequest[] = [];
      for (let i = 0; i < 100; i++) batch.push(setReq(`key-${String(b * 100 + i).padStart(5, '0')}`, round * 10 + i));
      history.push(...w.commit(batch));
    }
  }
  for (let i = 0; i < 2000; i++) history.push(...w.commit([{ ops: [{ code: OpCode.Del, key: enc.encode(`key-${String(i * 5).padStart(5, '0')}`) }], timeMs: 7 }]));
  const S = w.lastLsn;
  const live = liveOf(history);
  assert.equal(live.length, 8000);
  const sizeBefore = w.size;

  const c = new WalCompaction(fs, p, S, live, 123);
  const later: WalRecord[] = [];
  let steps = 0;
  while (!c.step(1500)) {
    steps++;
    later.push(...w.commit([setReq(`new-${steps}`, steps), setReq(`key-00001`, 900 + steps)]));
  }
  assert.ok(steps >= 5);
  assert.equal(c.opsWritten, 8000);
  assert.ok(nodeFs.existsSync(`${p}.tmp`));
  const dirSyncs = fs.dirSyncs;
  c.finish(w);
  assert.equal(fs.dirSyncs, dirSyncs + 1);
  assert.equal(nodeFs.existsSync(`${p}.tmp`), false);
  assert.equal(w.snapshotLsn, S);
  assert.equal(w.lastLsn, S + later.length);
  assert.equal(w.size, nodeFs.statSync(p).size);
  assert.ok(w.size < sizeBefore / 2, `compacted ${w.size} vs ${sizeBefore}`);

  // The next commit appends to the new file.
  later.push(...w.commit([setReq('after-finish', 1)]));
  assert.equal(later.at(-1)!.lsn, S + steps * 2 + 1);
  w.close();

  const all = collect(fs, p, 0);
  const chunks = all.filter((r) => r.kind === 1);
  assert.ok(chunks.every((r) => r.lsn === S && r.timeMs === 123 && r.ops.length <= WAL_SNAPSHOT_CHUNK_OPS));
  assert.deepStrictEqual(chunks.flatMap((r) => r.ops), live);
  assert.deepStrictEqual(all.slice(chunks.length), later);
  assert.deepStrictEqual(collect(fs, p, S - 1).slice(0, chunks.length), chunks);
  assert.deepStrictEqual(collect(fs, p, S), later);
  assert.deepStrictEqual(collect(fs, p, S + 3), later.slice(3));

  const r = WalWriter.open(fs, p, { sync: 'always' });
  assert.equal(r.snapshotLsn, S);
  assert.equal(r.lastLsn, later.at(-1)!.lsn);
  assert.equal(r.recovery.truncatedBytes, 0);
  r.close();
});

test('the live set is pulled lazily: a step never takes more than it writes', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  let pulled = 0;
  function* live(): Generator<SetOp> {
    for (let i = 0; i < 10_000; i++) {
      pulled++;
      yield setOp(`k${i}`, i);
    }
  }
  const c = new WalCompaction(fs, p, 1, live(), 5);
  assert.equal(pulled, 0);
  assert.equal(c.step(100), false);
  assert.equal(pulled, 100);
  assert.equal(c.step(5000), false);
  assert.equal(pulled, 5100);
  assert.equal(c.step(1_000_000), true);
  assert.equal(pulled, 10_000);
  assert.equal(c.step(1), true);
  c.finish(w);
  w.close();
  const chunks = collect(fs, p, 0);
  // Steps of 100, 5000 (4096 + 904), then 4096 + 804.
  assert.deepEqual(chunks.map((r) => r.ops.length), [100, 4096, 904, 4096, 804]);
});

test('compacting a compacted WAL drops the old snapshot; an empty live set leaves just the tail', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  const recs = w.commit([setReq('a', 1), setReq('b', 2), setReq('c', 3)]);
  let c = new WalCompaction(fs, p, 2, liveOf(recs.slice(0, 2)), 1);
  while (!c.step(10));
  c.finish(w);
  assert.equal(w.snapshotLsn, 2);
  const more = w.commit([setReq('d', 4)]);
  c = new WalCompaction(fs, p, 3, liveOf([...recs, ...more].slice(0, 3)), 2);
  while (!c.step(10));
  c.finish(w);
  const all = collect(fs, p, 0);
  assert.deepEqual(all.map((r) => [r.kind, r.lsn, r.ops.length]), [[1, 3, 3], [0, 4, 1]]);
  c = new WalCompaction(fs, p, 4, [], 3);
  assert.equal(c.step(10), true);
  c.finish(w);
  assert.equal(w.lastLsn, 4);
  w.commit([setReq('e', 5)]);
  w.close();
  const scan = scanWal(fs, p);
  assert.equal(scan.snapshotLsn, 4);
  assert.deepEqual(scan.records.map((r) => [r.kind, r.lsn]), [[0, 5]]);
});

test('a crash before finish leaves wal.log intact and the stale tmp is removed on open', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'always' });
  const recs = w.commit([setReq('a', 1), setReq('b', 2)]);
  const c = new WalCompaction(fs, p, 2, liveOf(recs), 1);
  c.step(1);
  w.commit([setReq('c', 3)]);
  // "Crash": the writer and the compaction are dropped without finish or abort.
  w.close();
  assert.ok(nodeFs.existsSync(`${p}.tmp`));
  const r = WalWriter.open(fs, p, { sync: 'always' });
  assert.equal(nodeFs.existsSync(`${p}.tmp`), false);
  assert.equal(r.snapshotLsn, 0);
  assert.equal(r.lastLsn, 3);
  r.close();
});

test('abort removes the tmp and leaves the writer as it was', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  const before = nodeFs.readFileSync(p);
  const c = new WalCompaction(fs, p, 1, [setOp('a', 1)], 1);
  c.step(10);
  c.abort();
  c.abort();
  assert.equal(nodeFs.existsSync(`${p}.tmp`), false);
  assert.throws(() => c.finish(w), isCode('INTERNAL'));
  assert.deepEqual(nodeFs.readFileSync(p), before);
  assert.equal(w.commit([setReq('b', 2)])[0]!.lsn, 2);
  w.close();
});

test('finish refuses to swap when the live WAL does not read back to the writer state', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  const second = w.size;
  w.commit([setReq('b', 2), setReq('c', 3)]);
  const c = new WalCompaction(fs, p, 1, [setOp('a', 1)], 1);
  assert.equal(c.step(10), true);
  // A bit flips on disk under the running writer, in record 2.
  const bytes = nodeFs.readFileSync(p);
  bytes[second + 10]! ^= 0x20;
  nodeFs.writeFileSync(p, bytes);
  assert.throws(() => c.finish(w), isCode('CORRUPT'));
  assert.equal(nodeFs.existsSync(`${p}.tmp`), false);
  assert.deepEqual(nodeFs.readFileSync(p), bytes);
  assert.equal(w.snapshotLsn, 0);
  w.close();
});

test('finish refuses a snapshot LSN beyond the writer, or behind its current snapshot', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  const c = new WalCompaction(fs, p, 5, [], 1);
  c.step(1);
  assert.throws(() => c.finish(w), isCode('INTERNAL'));
  assert.equal(nodeFs.existsSync(`${p}.tmp`), false);
  assert.equal(w.lastLsn, 1);
  w.close();
});

test('a failed directory fsync after the swap fences the writer; skipDirSync skips it', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  canaries.skipDirSync = true;
  let c = new WalCompaction(fs, p, 1, [setOp('a', 1)], 1);
  c.step(10);
  const n = fs.dirSyncs;
  c.finish(w);
  assert.equal(fs.dirSyncs, n);
  resetCanaries();
  fs.failDirSync = 'EIO';
  c = new WalCompaction(fs, p, 1, [setOp('a', 1)], 1);
  c.step(10);
  assert.throws(() => c.finish(w), isCode('WAL_FENCED'));
  assert.throws(() => w.commit([setReq('b', 2)]), isCode('WAL_FENCED'));
  w.close();
  fs.failDirSync = null;
  const r = WalWriter.open(fs, p, { sync: 'none' });
  assert.equal(r.lastLsn, 1);
  assert.equal(r.snapshotLsn, 1);
  r.close();
});

test('snapshot chunks of long keys are cut by size, far below the payload limit', () => {
  const p = tmpWal();
  const fs = new CountingFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  const key = new Uint8Array(65535).fill(0x61);
  const live = function* (): Generator<SetOp> {
    for (let i = 0; i < 600; i++) yield { code: OpCode.Set, key, address: { volume: 2, offset: i, length: 1 }, expiresAt: 0 };
  };
  const c = new WalCompaction(fs, p, 1, live(), 1);
  assert.equal(c.step(1000), true);
  c.finish(w);
  w.close();
  let chunks = 0;
  let ops = 0;
  for (const f of scanFrames(fs, p)) {
    assert.ok(f.frame.length < WAL_MAX_PAYLOAD / 2);
    chunks++;
    ops += f.record.ops.length;
  }
  assert.ok(chunks >= 3, `${chunks} chunks`);
  assert.equal(ops, 600);
});
