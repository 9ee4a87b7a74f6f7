// Tests of the WAL writer and reader (src/storage/wal_writer.ts, wal_reader.ts) on real files:
// group commit, reopen, torn and corrupt tails, the fence, the sync policy.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NodeFs, type FileHandle, type Fs, type OpenMode } from '../src/runtime/fs.js';
import { canaries, resetCanaries } from '../src/runtime/canary.js';
import { OpCode, opKey, type Op, type WalRecord } from '../src/storage/types.js';
import { WAL_HEADER_SIZE, WAL_MAX_PAYLOAD, encodeRecord } from '../src/storage/wal_format.js';
import { WalWriter, type CommitRequest } from '../src/storage/wal_writer.js';
import { readWal, replayInto, scanWal, type WalScanEnd } from '../src/storage/wal_reader.js';
import { StoreError } from '../src/runtime/errors.js';

/** node:fs with counters and injectable failures, the way the crash tests will wrap it. */
class TestFs implements Fs {
  private readonly inner = new NodeFs();
  syncs = 0;
  writes = 0;
  dirSyncs = 0;
  failSync: string | null = null;
  failWrite: string | null = null;
  openHandles = 0;

  open(p: string, mode: OpenMode): FileHandle {
    const h = this.inner.open(p, mode);
    const self = this;
    this.openHandles++;
    return {
      path: h.path,
      read: (buf, pos) => h.read(buf, pos),
      write(buf: Uint8Array, pos: number) {
        self.writes++;
        if (self.failWrite !== null) throw Object.assign(new Error(`${self.failWrite}: injected`), { code: self.failWrite });
        h.write(buf, pos);
      },
      sync() {
        self.syncs++;
        if (self.failSync !== null) throw Object.assign(new Error(`${self.failSync}: injected`), { code: self.failSync });
        h.sync();
      },
      truncate: (n) => h.truncate(n),
      size: () => h.size(),
      close() {
        self.openHandles--;
        h.close();
      },
    };
  }
  exists(p: string): boolean {
    return this.inner.exists(p);
  }
  readdir(p: string): string[] {
    return this.inner.readdir(p);
  }
  mkdir(p: string): void {
    this.inner.mkdir(p);
  }
  rename(a: string, b: string): void {
    this.inner.rename(a, b);
  }
  unlink(p: string): void {
    this.inner.unlink(p);
  }
  syncDir(p: string): void {
    this.dirSyncs++;
    this.inner.syncDir(p);
  }
  readFile(p: string): Uint8Array {
    return this.inner.readFile(p);
  }
}

const dirs: string[] = [];
function tmpWal(): string {
  const d = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'brise-wal-'));
  dirs.push(d);
  return path.join(d, 'wal.log');
}
afterEach(() => {
  resetCanaries();
  while (dirs.length > 0) nodeFs.rmSync(dirs.pop()!, { recursive: true, force: true });
});

const enc = new TextEncoder();
function setReq(k: string, i: number, timeMs = 1_700_000_000_000 + i): CommitRequest {
  const op: Op = { code: OpCode.Set, key: enc.encode(k), address: { volume: 0, offset: 64 + i * 8, length: 100 + i }, expiresAt: 0 };
  return { ops: [op], timeMs };
}
function delReq(k: string): CommitRequest {
  return { ops: [{ code: OpCode.Del, key: enc.encode(k) }], timeMs: 5 };
}
const isCode = (code: string) => (e: unknown) => e instanceof StoreError && e.code === code;
const fileSize = (p: string): number => nodeFs.statSync(p).size;

test('open creates an empty WAL atomically: header only, synced, directory synced', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'always' });
  assert.equal(w.lastLsn, 0);
  assert.equal(w.snapshotLsn, 0);
  assert.equal(w.size, WAL_HEADER_SIZE);
  assert.equal(w.recovery.created, true);
  assert.equal(fileSize(p), WAL_HEADER_SIZE);
  assert.equal(fs.syncs, 1);
  assert.equal(fs.dirSyncs, 1);
  assert.equal(nodeFs.existsSync(`${p}.tmp`), false);
  w.close();
  const again = WalWriter.open(fs, p, { sync: 'always' });
  assert.equal(again.recovery.created, false);
  assert.equal(again.recovery.truncatedBytes, 0);
  again.close();
});

test('group commit: consecutive LSNs, one write and one sync per batch, all read back after reopen', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'always' });
  const [syncs0, writes0] = [fs.syncs, fs.writes];
  const all: WalRecord[] = [];
  all.push(...w.commit([setReq('a', 1), setReq('b', 2), delReq('a')]));
  all.push(...w.commit([setReq('c', 3)]));
  assert.deepEqual(w.commit([]), []);
  all.push(...w.commit([{ ops: [], timeMs: 9 }, { ops: [{ code: OpCode.DelIf, key: enc.encode('b'), volume: 0, offset: 72 }, { code: OpCode.Expire, key: enc.encode('c'), expiresAt: 99 }], timeMs: 10 }]));
  assert.equal(fs.syncs - syncs0, 3);
  assert.equal(fs.writes - writes0, 3);
  assert.deepEqual(all.map((r) => r.lsn), [1, 2, 3, 4, 5, 6]);
  assert.equal(w.lastLsn, 6);
  assert.equal(w.size, fileSize(p));
  w.close();

  const scan = scanWal(fs, p);
  assert.deepStrictEqual(scan.records, all);
  assert.equal(scan.validEnd, fileSize(p));
  assert.equal(scan.stopReason, undefined);
  const w2 = WalWriter.open(fs, p, { sync: 'always' });
  assert.equal(w2.lastLsn, 6);
  assert.deepEqual(w2.commit([setReq('d', 7)]).map((r) => r.lsn), [7]);
  w2.close();
  assert.deepEqual(scanWal(fs, p).records.map((r) => r.lsn), [1, 2, 3, 4, 5, 6, 7]);
});

test('readWal reads in chunks smaller than a record, from any LSN; replayInto applies in order', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  const big = new Uint8Array(5000).fill(7);
  const reqs: CommitRequest[] = [];
  for (let i = 0; i < 40; i++) reqs.push(i % 7 === 3 ? { ops: [{ code: OpCode.Del, key: big }], timeMs: i } : setReq(`k${i}`, i));
  const all = w.commit(reqs);
  w.close();
  for (const chunkSize of [8, 13, 64, 1000, 4 * 1024 * 1024]) {
    for (const fromLsn of [0, 1, 17, 40, 99]) {
      const it = readWal(fs, p, { fromLsn, chunkSize });
      const got: WalRecord[] = [];
      let end: WalScanEnd;
      for (;;) {
        const n = it.next();
        if (n.done === true) {
          end = n.value;
          break;
        }
        got.push(n.value);
      }
      assert.deepStrictEqual(got, all.filter((r) => r.lsn > fromLsn), `chunk ${chunkSize} from ${fromLsn}`);
      assert.deepEqual(end, { snapshotLsn: 0, lastLsn: 40, validEnd: fileSize(p), fileSize: fileSize(p) });
    }
  }
  const seen: number[] = [];
  const end = replayInto(fs, p, 30, (r) => seen.push(r.lsn));
  assert.deepEqual(seen, [31, 32, 33, 34, 35, 36, 37, 38, 39, 40]);
  assert.equal(end.lastLsn, 40);
});

test('torn tail: a cut at every byte inside the last record is truncated away and commits append after', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1), setReq('b', 2)]);
  const lastStart = w.size;
  w.commit([{ ops: [setReq('c', 3).ops[0]!, delReq('a').ops[0]!], timeMs: 3 }]);
  const full = nodeFs.readFileSync(p);
  w.close();
  assert.ok(full.length - lastStart > 20);
  for (let cut = lastStart; cut < full.length; cut++) {
    nodeFs.writeFileSync(p, full.subarray(0, cut));
    const r = WalWriter.open(fs, p, { sync: 'always' });
    assert.equal(r.lastLsn, 2, `cut ${cut}`);
    assert.equal(r.size, lastStart);
    assert.equal(fileSize(p), lastStart, `file truncated at cut ${cut}`);
    assert.equal(r.recovery.truncatedBytes, cut - lastStart);
    assert.equal(r.recovery.stopReason, cut === lastStart ? undefined : 'short');
    assert.deepEqual(r.commit([setReq('z', 9)]).map((x) => x.lsn), [3]);
    r.close();
    const scan = scanWal(fs, p);
    assert.deepEqual(scan.records.map((x) => [x.lsn, new TextDecoder().decode(opKey(x.ops[0]!))]), [[1, 'a'], [2, 'b'], [3, 'z']]);
    assert.equal(scan.validEnd, fileSize(p));
  }
});

test('corruption in the middle is refused, not cut: open names the place and leaves the file as it was', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  const offsets: number[] = [];
  for (let i = 1; i <= 5; i++) {
    offsets.push(w.size);
    w.commit([setReq(`k${i}`, i)]);
  }
  w.close();
  const size = fileSize(p);
  for (const [label, at] of [['a payload byte', offsets[2]! + 12], ['the length field', offsets[2]! + 1]] as const) {
    const bytes = nodeFs.readFileSync(p);
    const damaged = Buffer.from(bytes);
    damaged[at]! ^= 0x40;
    nodeFs.writeFileSync(p, damaged);
    // The reader stops at the damage (records 4 and 5 are never replayed past it) ...
    assert.deepEqual(scanWal(fs, p).records.map((r) => r.lsn), [1, 2], label);
    // ... and the writer refuses to open rather than cut acknowledged records 4 and 5 away.
    assert.throws(
      () => WalWriter.open(fs, p, { sync: 'always' }),
      (e: unknown) => e instanceof StoreError && e.code === 'CORRUPT' && e.message.includes(`offset ${offsets[2]}`) && e.message.includes('LSN 4'),
      label,
    );
    assert.equal(fileSize(p), size, `${label}: nothing truncated`);
    nodeFs.writeFileSync(p, bytes);
  }
});

test('a record out of sequence ends the log (a duplicated frame is not replayed twice)', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  const end1 = w.size;
  w.commit([setReq('b', 2)]);
  w.close();
  const bytes = nodeFs.readFileSync(p);
  nodeFs.appendFileSync(p, bytes.subarray(WAL_HEADER_SIZE, end1)); // record 1 again
  nodeFs.appendFileSync(p, encodeRecord({ lsn: 3, timeMs: 1, kind: 0, ops: [] })); // valid, but after the break
  const scan = scanWal(fs, p);
  assert.deepEqual(scan.records.map((r) => r.lsn), [1, 2]);
  assert.equal(scan.stopReason, 'sequence');
  assert.equal(scan.validEnd, bytes.length);
});

test('a bad header is CORRUPT and the file is left as it was (never reset)', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  w.close();
  const good = nodeFs.readFileSync(p);
  for (const damage of [(b: Buffer) => (b[0]! ^= 1), (b: Buffer) => (b[20]! ^= 1), (b: Buffer) => (b[30]! ^= 1)]) {
    const b = Buffer.from(good);
    damage(b);
    nodeFs.writeFileSync(p, b);
    assert.throws(() => WalWriter.open(fs, p, { sync: 'always' }), isCode('CORRUPT'));
    assert.deepEqual(nodeFs.readFileSync(p), b);
    assert.throws(() => scanWal(fs, p), isCode('CORRUPT'));
  }
  nodeFs.writeFileSync(p, good.subarray(0, 10));
  assert.throws(() => WalWriter.open(fs, p, { sync: 'always' }), isCode('CORRUPT'));
  assert.equal(fileSize(p), 10);
});

test('fence: a failed fsync fails the batch and every later one without writing; reopen recovers', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'always' });
  w.commit([setReq('a', 1), setReq('b', 2)]);
  const sizeBefore = w.size;
  fs.failSync = 'EIO';
  assert.throws(() => w.commit([setReq('c', 3)]), (e: unknown) => {
    assert.ok(e instanceof StoreError);
    assert.equal(e.code, 'WAL_FENCED');
    assert.match(e.message, /WAL fenced after a failed fsync\/write of .*wal\.log: EIO; restart to recover/);
    return true;
  });
  assert.equal(w.lastLsn, 2);
  assert.equal(w.size, sizeBefore);
  assert.equal(w.fenced?.code, 'WAL_FENCED');
  fs.failSync = null; // even when the disk "recovers", the fence holds
  const [writes, syncs] = [fs.writes, fs.syncs];
  assert.throws(() => w.commit([setReq('d', 4)]), isCode('WAL_FENCED'));
  assert.throws(() => w.commit([]), isCode('WAL_FENCED'));
  assert.equal(fs.writes, writes);
  assert.equal(fs.syncs, syncs);
  assert.equal(w.lastLsn, 2);
  w.close();

  const r = WalWriter.open(fs, p, { sync: 'always' });
  assert.equal(r.fenced, null);
  // The acknowledged records are there; the failed batch may or may not be (its bytes reached
  // the page cache), but never anything after it.
  const lsns = scanWal(fs, p).records.map((x) => x.lsn);
  assert.deepEqual(lsns.slice(0, 2), [1, 2]);
  assert.ok(lsns.length <= 3);
  const next = r.commit([setReq('e', 5)]);
  assert.equal(next[0]!.lsn, r.lastLsn);
  assert.equal(r.lastLsn, lsns.length + 1);
  r.close();
});

test('fence: a failed write (ENOSPC) fences too', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'always' });
  fs.failWrite = 'ENOSPC';
  assert.throws(() => w.commit([setReq('a', 1)]), (e: unknown) => e instanceof StoreError && e.code === 'WAL_FENCED' && /ENOSPC/.test(e.message));
  fs.failWrite = null;
  assert.throws(() => w.commit([setReq('a', 1)]), isCode('WAL_FENCED'));
  assert.equal(w.lastLsn, 0);
  w.close();
});

test("sync policy 'none' never syncs on commit; 'always' syncs once per batch; skipFsync canary skips it", () => {
  const p = tmpWal();
  const fs = new TestFs();
  WalWriter.open(fs, p, { sync: 'always' }).close();
  const base = fs.syncs;
  const none = WalWriter.open(fs, p, { sync: 'none' });
  for (let i = 0; i < 5; i++) none.commit([setReq(`n${i}`, i), setReq(`m${i}`, i)]);
  assert.equal(fs.syncs, base);
  none.close();
  const always = WalWriter.open(fs, p, { sync: 'always' });
  for (let i = 0; i < 5; i++) always.commit([setReq(`a${i}`, i), setReq(`b${i}`, i)]);
  assert.equal(fs.syncs, base + 5);
  canaries.skipFsync = true;
  always.commit([setReq('x', 1)]);
  assert.equal(fs.syncs, base + 5);
  always.close();
  assert.equal(scanWal(fs, p).records.length, 21);
});

test('a record over the payload limit is BATCH_TOO_LARGE before anything is written; the WAL goes on', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'always' });
  w.commit([setReq('a', 1)]);
  const key = new Uint8Array(65535);
  const ops: Op[] = [];
  for (let i = 0; i * 65535 <= WAL_MAX_PAYLOAD; i++) ops.push({ code: OpCode.Del, key });
  const writes = fs.writes;
  assert.throws(() => w.commit([setReq('b', 2), { ops, timeMs: 1 }]), isCode('BATCH_TOO_LARGE'));
  assert.equal(fs.writes, writes);
  assert.equal(w.fenced, null);
  assert.equal(w.lastLsn, 1);
  assert.equal(w.commit([setReq('c', 3)])[0]!.lsn, 2);
  assert.throws(() => w.commit([{ ops: [{ code: OpCode.Del, key: new Uint8Array(0) }], timeMs: 1 }]), isCode('BAD_ARGUMENT'));
  assert.equal(w.lastLsn, 2);
  w.close();
  assert.deepEqual(scanWal(fs, p).records.map((r) => r.lsn), [1, 2]);
});

test('open removes a stale wal.log.tmp; a closed writer refuses commits', () => {
  const p = tmpWal();
  const fs = new TestFs();
  WalWriter.open(fs, p, { sync: 'none' }).close();
  nodeFs.writeFileSync(`${p}.tmp`, 'half a compaction');
  const w = WalWriter.open(fs, p, { sync: 'none' });
  assert.equal(nodeFs.existsSync(`${p}.tmp`), false);
  w.close();
  assert.throws(() => w.commit([setReq('a', 1)]), isCode('CLOSED'));
});

test('reading a missing WAL is NOT_FOUND, a typed error', () => {
  const p = tmpWal();
  assert.throws(() => scanWal(new TestFs(), p), isCode('NOT_FOUND'));
});

test('a reader stopped early closes its file; a full scan leaves no handle open', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1), setReq('b', 2), setReq('c', 3)]);
  w.close();
  assert.equal(fs.openHandles, 0);
  for (const r of readWal(fs, p)) {
    assert.equal(r.lsn, 1);
    assert.equal(fs.openHandles, 1);
    break;
  }
  assert.equal(fs.openHandles, 0);
  assert.equal(scanWal(fs, p).records.length, 3);
  assert.equal(fs.openHandles, 0);
});

test('damage inside the last group commit, with valid records of the same group after it, is a torn batch: cut, not refused', () => {
  const p = tmpWal();
  const fs = new TestFs();
  const w = WalWriter.open(fs, p, { sync: 'none' });
  w.commit([setReq('a', 1)]);
  const batchStart = w.size;
  // One group commit of 5 records: a power loss may persist its sectors in any order.
  w.commit([setReq('b', 2), setReq('c', 3), setReq('d', 4), setReq('e', 5), setReq('f', 6)]);
  w.close();
  const bytes = nodeFs.readFileSync(p);
  bytes[batchStart + 12]! ^= 0x40; // the group's first record is garbled; the other four survive
  nodeFs.writeFileSync(p, bytes);
  const r = WalWriter.open(fs, p, { sync: 'always' });
  assert.equal(r.lastLsn, 1, 'the torn group is cut whole');
  assert.equal(fileSize(p), batchStart);
  r.close();
});
