// Tests of the volume log (docs/formats.md §Log volumes) on real files: the log volume format,
// VolumeLog following a real WalWriter as the WAL committer drives it (append of each group's
// lastBatchBytes), reopen and catch-up, generations across a WAL compaction, the rebuild of
// wal.log from the log (writeWalFromLog) and of a data dir (rebuildStore), a failing log drive,
// and power loss through SimFs.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { NodeFs, type Fs } from '../src/runtime/fs.js';
import { ManualClock } from '../src/runtime/clock.js';
import { StoreError } from '../src/runtime/errors.js';
import { crc32 } from '../src/storage/checksum.js';
import { OpCode, type IndexEntry, type Op, type WalRecord } from '../src/storage/types.js';
import { decodeRecord, encodeRecord } from '../src/storage/wal_format.js';
import { WalWriter } from '../src/storage/wal_writer.js';
import { scanWal, type WalScan } from '../src/storage/wal_reader.js';
import { WalCompactionDriver } from '../src/storage/wal_compaction.js';
import { VolumeLog, type VolumeLogOptions, type WalPosition } from '../src/storage/log_volume.js';
import {
  LOG_NEEDLE_MAX_RECORDS,
  LOG_NEEDLE_MAX_VALUE,
  decodeLogNeedleHeader,
  decodeLogSuperblock,
  encodeLogNeedle,
  encodeLogSuperblock,
  logNeedleIntact,
  splitFrames,
} from '../src/storage/log_volume_format.js';
import { listLogVolumes, scanLogVolume, type LogNeedle } from '../src/storage/log_volume_reader.js';
import { chooseGeneration, writeWalFromLog } from '../src/storage/log_rebuild.js';
import { rebuildStore } from '../src/storage/store_rebuild.js';
import { LOG_POINTER_FILE, moveLogPointer, readLogPointer } from '../src/storage/log_pointer.js';
import { LOG_DIR, WAL_FILE, recoverIndex } from '../src/storage/store_files.js';
import { decodeNeedleHeader, encodeSuperblock, volumeFileName } from '../src/storage/volume_format.js';
import { VOLUMES_DIR } from '../src/storage/drive_volumes.js';
import { CRASH_MODES, SimFs, mulberry32 } from '../property-tests/sim_fs.js';

const fs = new NodeFs();
const dirs: string[] = [];
function tempDir(): string {
  const d = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-vlog-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  while (dirs.length > 0) nodeFs.rmSync(dirs.pop()!, { recursive: true, force: true });
});

const enc = new TextEncoder();
const NOW = 1_700_000_000_000;
const isCode = (code: string) => (e: unknown) => e instanceof StoreError && e.code === code;

/** Varied ops: SETs over 40 keys in volumes 1 and 2 (some with a TTL), DELs and EXPIREs. */
function opsFor(i: number): Op[] {
  const key = enc.encode(`k${i % 40}`);
  if (i % 7 === 5) return [{ code: OpCode.Del, key }];
  if (i % 7 === 6) return [{ code: OpCode.Expire, key: enc.encode(`k${(i + 3) % 40}`), expiresAt: NOW + 1e9 }];
  const address = { volume: 1 + (i % 2), offset: 64 + 8 * i, length: 40 + (i % 50) };
  return [{ code: OpCode.Set, key, address, expiresAt: i % 3 === 0 ? NOW + 5e8 : 0 }];
}

interface Store {
  fs: Fs;
  dir: string;
  walPath: string;
  logDir: string;
  wal: WalWriter;
  log: VolumeLog;
  counter: number;
}

function position(wal: WalWriter): WalPosition {
  return { path: wal.path, snapshotLsn: wal.snapshotLsn, lastLsn: wal.lastLsn };
}

function openStore(options: VolumeLogOptions = { sync: 'none' }, f: Fs = fs, dir = tempDir()): Store {
  const walPath = join(dir, WAL_FILE);
  const logDir = join(dir, LOG_DIR);
  const wal = WalWriter.open(f, walPath, { sync: 'always' });
  const log = VolumeLog.open(f, logDir, position(wal), options);
  return { fs: f, dir, walPath, logDir, wal, log, counter: 0 };
}

/** One group commit of n records; its frames go to the log as the WAL committer hands them. */
function commitGroup(s: Store, n: number, toLog = true, ops: (i: number) => Op[] = opsFor): WalRecord[] {
  const reqs = Array.from({ length: n }, () => ({ ops: ops(s.counter++), timeMs: NOW + s.counter }));
  const records = s.wal.commit(reqs);
  if (toLog) s.log.append(s.wal.lastBatchBytes, records[0]!.lsn);
  return records;
}

/** Every needle of a file, in order (the generator's yields). */
function needlesOf(f: Fs, path: string): LogNeedle[] {
  return [...scanLogVolume(f, path, false)];
}

/** [lsn, kind] of every record in the chosen generation's needles, in file order. */
function logRecords(f: Fs, logDir: string): Array<[number, 0 | 1]> {
  const out: Array<[number, 0 | 1]> = [];
  for (const file of chooseGeneration(f, [logDir]).files) {
    for (const n of needlesOf(f, file.path)) {
      for (let at = 0; at < n.frames.length; ) {
        const res = decodeRecord(n.frames, at);
        assert.ok(res.ok, `a frame of ${file.path} does not decode`);
        out.push([res.record.lsn, res.record.kind]);
        at += res.size;
      }
    }
  }
  return out;
}

/** The log holds S (chunks) then S+1..last exactly once each, in order. */
function assertContiguous(s: Store): void {
  const kinds0 = logRecords(s.fs, s.logDir).filter(([, k]) => k === 0).map(([lsn]) => lsn);
  const want = Array.from({ length: s.wal.lastLsn - s.wal.snapshotLsn }, (_, i) => s.wal.snapshotLsn + 1 + i);
  assert.deepEqual(kinds0, want);
}

/** Rebuilds a WAL from the log into another dir and checks it equals wal.log byte for byte. */
function assertRebuildsWal(s: Store): ReturnType<typeof writeWalFromLog> {
  const out = s.fs === fs ? join(tempDir(), WAL_FILE) : '/rebuilt.log';
  const report = writeWalFromLog(s.fs, [s.logDir], out);
  const rebuilt: WalScan = scanWal(s.fs, `${out}.tmp`);
  const original = scanWal(s.fs, s.walPath);
  assert.equal(rebuilt.snapshotLsn, original.snapshotLsn);
  assert.deepEqual(rebuilt.records, original.records);
  assert.deepEqual(s.fs.readFile(`${out}.tmp`), s.fs.readFile(s.walPath));
  assert.equal(report.lastLsn, s.wal.lastLsn);
  assert.equal(report.dropped, null);
  return report;
}

/** A synthetic frame of `payload` bytes: splitFrames reads only the length field. */
function rawFrame(payload: number): Uint8Array {
  const f = new Uint8Array(8 + payload);
  new DataView(f.buffer).setUint32(0, payload, true);
  return f;
}
const concat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

describe('volume log', { timeout: 60_000 }, () => {
  test('format: log superblock and log needle round trip; a flipped byte fails; data decoders refuse them', () => {
    const sb = { id: 7, createdAt: NOW, baseLsn: 2 ** 40 + 3, base: true };
    assert.deepEqual(decodeLogSuperblock(encodeLogSuperblock(sb)), sb);
    assert.deepEqual(decodeLogSuperblock(encodeLogSuperblock({ ...sb, base: false })), { ...sb, base: false });
    assert.equal(decodeLogSuperblock(encodeSuperblock(7, NOW)), null, 'a data volume superblock is not a log one');
    const flippedSb = encodeLogSuperblock(sb);
    flippedSb[25] ^= 1;
    assert.equal(decodeLogSuperblock(flippedSb), null);

    const frames = concat([1, 2, 3].map((lsn) => encodeRecord({ lsn, timeMs: NOW, kind: 0, ops: opsFor(lsn) })));
    const needle = encodeLogNeedle(frames, 1, 3);
    assert.deepEqual(decodeLogNeedleHeader(needle), { valueLength: frames.length, firstLsn: 1, records: 3 });
    assert.ok(logNeedleIntact(needle));
    assert.deepEqual(needle.subarray(32, 32 + frames.length), frames);
    assert.equal(decodeNeedleHeader(needle), null, 'a data volume reader must not take a log needle for a value');
    for (const at of [0, 4, 9, 17, 25, 29]) {
      const bad = needle.slice();
      bad[at] ^= 0x10;
      assert.equal(decodeLogNeedleHeader(bad), null, `header byte ${at} flipped`);
    }
    for (const at of [32, 32 + frames.length - 1, needle.length - 1]) {
      const bad = needle.slice();
      bad[at] ^= 0x10;
      assert.notEqual(decodeLogNeedleHeader(bad), null);
      assert.equal(logNeedleIntact(bad), false, `byte ${at} flipped`);
    }
    const restamped = needle.slice(); // version 2 (a data needle's) with a header CRC to match
    restamped[4] = 2;
    new DataView(restamped.buffer).setUint32(24, crc32(restamped.subarray(28, 32), crc32(restamped.subarray(0, 24))), true);
    assert.equal(decodeLogNeedleHeader(restamped), null);
    assert.throws(() => encodeLogNeedle(frames, 1, 0), RangeError);
    assert.throws(() => encodeLogNeedle(frames, 1, LOG_NEEDLE_MAX_RECORDS + 1), RangeError);
  });

  test('format: splitFrames cuts at frame boundaries under 8 MiB and 65535 frames; a huge frame stands alone', () => {
    const big = rawFrame(3 * 1024 * 1024);
    const F = big.length;
    assert.deepEqual(splitFrames(concat([big, big, big])), [[0, 2 * F, 2], [2 * F, 3 * F, 1]]);
    const small = rawFrame(100);
    const huge = rawFrame(LOG_NEEDLE_MAX_VALUE + 1024);
    const S = small.length;
    const H = huge.length;
    assert.deepEqual(splitFrames(concat([small, huge, small])), [[0, S, 1], [S, S + H, 1], [S + H, 2 * S + H, 1]]);
    const many = concat(Array.from({ length: LOG_NEEDLE_MAX_RECORDS + 11 }, () => rawFrame(1)));
    assert.deepEqual(splitFrames(many), [[0, LOG_NEEDLE_MAX_RECORDS * 9, LOG_NEEDLE_MAX_RECORDS], [LOG_NEEDLE_MAX_RECORDS * 9, many.length, 11]]);
    assert.throws(() => splitFrames(concat([small, small]).subarray(0, 2 * S - 1)), RangeError);
  });

  test('follows the WAL: group commits of various sizes rebuild the same WAL; syncIfDirty syncs only what is dirty', () => {
    const s = openStore({ sync: 'always' });
    assert.equal(s.log.stats().syncs, 0);
    for (const n of [1, 3, 7, 1, 20, 2]) commitGroup(s, n);
    assert.equal(s.log.lastLsn, 34);
    s.log.syncIfDirty();
    s.log.syncIfDirty();
    assert.equal(s.log.stats().syncs, 1, 'a second sync with nothing appended is skipped');
    commitGroup(s, 2);
    s.log.close();
    assert.equal(s.log.failed, null);
    assertContiguous(s);
    const report = assertRebuildsWal(s);
    assert.deepEqual([report.baseLsn, report.records, report.snapshotChunks, report.damagedRegions], [0, 36, 0, 0]);
  });

  test('rotation: a small rotateBytes gives several files of one generation, read back in order', () => {
    const s = openStore({ sync: 'always', rotateBytes: 600 });
    for (let g = 0; g < 15; g++) commitGroup(s, 1 + (g % 4));
    s.log.close();
    const { files } = listLogVolumes(fs, s.logDir);
    assert.ok(files.length >= 4, `${files.length} files`);
    assert.deepEqual(files.map((f) => f.superblock.id), files.map((_, i) => i + 1));
    assert.deepEqual(files.map((f) => [f.superblock.base, f.superblock.baseLsn]), files.map((_, i) => [i === 0, 0]));
    assert.equal(chooseGeneration(fs, [s.logDir]).files.length, files.length);
    assertContiguous(s);
    assert.equal(assertRebuildsWal(s).files.length, files.length);
  });

  test('a group commit over 8 MiB is cut into several needles at record boundaries', () => {
    const s = openStore();
    // 60 SETs of 60 kB keys: about 3.6 MB per record, 3 records in one group (~11 MB).
    const bigOps = (i: number): Op[] => Array.from({ length: 60 }, (_, j) => ({
      code: OpCode.Set, key: new Uint8Array(60_000).fill(65 + ((i + j) % 26)), address: { volume: 1, offset: 64, length: 99 }, expiresAt: 0,
    }));
    commitGroup(s, 1);
    commitGroup(s, 3, true, bigOps);
    s.log.close();
    const needles = needlesOf(fs, listLogVolumes(fs, s.logDir).files[0]!.path);
    assert.deepEqual(needles.map((n) => [n.firstLsn, n.records]), [[1, 1], [2, 2], [4, 1]]);
    assert.ok(needles.every((n) => n.valueLength <= LOG_NEEDLE_MAX_VALUE));
    assertRebuildsWal(s);
  });

  test('reopen catches up: the records committed while closed are appended once, in order', () => {
    const s = openStore({ sync: 'none', rotateBytes: 250 });
    for (const n of [2, 5, 1]) commitGroup(s, n);
    s.log.close();
    for (const n of [3, 4]) commitGroup(s, n, false);
    s.log = VolumeLog.open(fs, s.logDir, position(s.wal), { sync: 'none', rotateBytes: 250 });
    assert.equal(s.log.lastLsn, 15);
    commitGroup(s, 2);
    assert.equal(s.log.lastLsn, 17);
    // Reopening when nothing is missing appends nothing.
    s.log.close();
    const files = listLogVolumes(fs, s.logDir).files.map((f) => [f.path, nodeFs.statSync(f.path).size]);
    assert.ok(files.length >= 3);
    s.log = VolumeLog.open(fs, s.logDir, position(s.wal), { sync: 'none', rotateBytes: 250 });
    s.log.close();
    assert.deepEqual(listLogVolumes(fs, s.logDir).files.map((f) => [f.path, nodeFs.statSync(f.path).size]), files);
    assert.equal(s.log.failed, null);
    assertContiguous(s);
    assertRebuildsWal(s);
  });

  test('reopen cuts a torn tail of the newest file (garbage, or a needle cut short) and copies its records again', () => {
    const s = openStore();
    for (const n of [3, 2, 4]) commitGroup(s, n);
    s.log.close();
    const newest = listLogVolumes(fs, s.logDir).files.at(-1)!.path;
    const whole = nodeFs.statSync(newest).size;
    nodeFs.appendFileSync(newest, Buffer.alloc(13, 0xff));
    s.log = VolumeLog.open(fs, s.logDir, position(s.wal), { sync: 'none' });
    s.log.close();
    assert.equal(nodeFs.statSync(newest).size, whole, 'the garbage is cut');
    const last = needlesOf(fs, newest).at(-1)!;
    assert.deepEqual([last.firstLsn, last.records], [6, 4]);
    nodeFs.truncateSync(newest, last.offset + 40);
    s.log = VolumeLog.open(fs, s.logDir, position(s.wal), { sync: 'none' });
    assert.equal(s.log.lastLsn, 9);
    commitGroup(s, 1);
    s.log.close();
    assertContiguous(s);
    assertRebuildsWal(s);
  });

  test('rebase after a WAL compaction: a new base with the snapshot, older files deleted, the rebuilt WAL equal', () => {
    const s = openStore({ sync: 'always', rotateBytes: 700 });
    for (const n of [3, 3, 3, 3]) commitGroup(s, n);
    const S = s.wal.lastLsn;
    const driver = new WalCompactionDriver(fs, s.walPath, new ManualClock(NOW));
    driver.begin(S);
    commitGroup(s, 2); // the old generation keeps taking records while the snapshot is written
    const live: IndexEntry[] = Array.from({ length: 5000 }, (_, i) => ({ key: enc.encode(`live${i}`), address: { volume: 3, offset: 64 + 8 * i, length: 50 }, expiresAt: 0 }));
    driver.chunk(live);
    driver.finish(s.wal);
    const before = listLogVolumes(fs, s.logDir).files;
    assert.ok(before.length >= 2);
    s.log.rebase(position(s.wal));
    assert.equal(s.log.failed, null);
    const after = listLogVolumes(fs, s.logDir).files;
    assert.equal(after[0]!.superblock.id, before.at(-1)!.superblock.id + 1);
    assert.deepEqual([after[0]!.superblock.base, after[0]!.superblock.baseLsn], [true, S]);
    for (const f of before) assert.equal(nodeFs.existsSync(f.path), false, `${f.path} deleted`);
    for (const n of [2, 2]) commitGroup(s, n);
    s.log.close();
    const report = assertRebuildsWal(s);
    assert.deepEqual([report.baseLsn, report.snapshotChunks, report.records], [S, 2, 6]);
    const rebuilt = scanWal(fs, s.walPath).records;
    assert.deepEqual(rebuilt.map((r) => [r.kind, r.lsn]), [[1, S], [1, S], ...[1, 2, 3, 4, 5, 6].map((i) => [0, S + i])]);
    assertContiguous(s);
  });

  test('a generation written by the compaction itself (FrameSink) is adopted after the swap: no copy of the new WAL, no rotation meanwhile', () => {
    const s = openStore({ sync: 'always', rotateBytes: 700 });
    for (const n of [3, 3, 3, 3]) commitGroup(s, n);
    const S = s.wal.lastLsn;
    const before = listLogVolumes(fs, s.logDir).files;
    const driver = new WalCompactionDriver(fs, s.walPath, new ManualClock(NOW));
    const generation = s.log.beginGeneration(S);
    assert.ok(generation !== null);
    driver.begin(S, [], generation);
    for (const n of [2, 4, 4]) commitGroup(s, n); // past rotateBytes: the old file grows instead
    assert.equal(listLogVolumes(fs, s.logDir).files.length, before.length, 'rotated while the next base held the next id');
    const live: IndexEntry[] = Array.from({ length: 5000 }, (_, i) => ({ key: enc.encode(`live${i}`), address: { volume: 3, offset: 64 + 8 * i, length: 50 }, expiresAt: 0 }));
    driver.chunk(live);
    driver.finish(s.wal);
    s.log.adoptGeneration(position(s.wal));
    assert.equal(s.log.failed, null);
    assert.equal(s.log.lastLsn, s.wal.lastLsn);
    const after = listLogVolumes(fs, s.logDir).files;
    assert.deepEqual(after.map((f) => [f.superblock.base, f.superblock.baseLsn]), [[true, S]]);
    for (const f of before) assert.equal(nodeFs.existsSync(f.path), false, `${f.path} deleted`);
    commitGroup(s, 2);
    s.log.close();
    const report = assertRebuildsWal(s);
    assert.deepEqual([report.baseLsn, report.snapshotChunks, report.records], [S, 2, 12]);
    assertContiguous(s);
  });

  test('a compaction given up leaves no tmp; the log goes on in its generation', () => {
    const s = openStore();
    commitGroup(s, 4);
    const generation = s.log.beginGeneration(s.wal.lastLsn);
    assert.ok(generation !== null);
    generation.add(new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 7]), s.wal.lastLsn);
    s.log.abandonGeneration();
    assert.deepEqual(nodeFs.readdirSync(s.logDir).filter((n) => n.endsWith('.tmp')), []);
    commitGroup(s, 3);
    s.log.close();
    assertRebuildsWal(s);
  });

  test('open builds a new generation when the log is ahead of the WAL, or the WAL was compacted meanwhile; a stale .tmp goes', () => {
    const s = openStore();
    for (const n of [5, 5]) commitGroup(s, n);
    s.log.close();
    const generation = (): number[][] => listLogVolumes(fs, s.logDir).files.map((f) => [f.superblock.id, f.superblock.baseLsn, Number(f.superblock.base)]);
    // The WAL recreated smaller: the log is ahead of it.
    s.wal.close();
    nodeFs.unlinkSync(s.walPath);
    s.wal = WalWriter.open(fs, s.walPath, { sync: 'always' });
    commitGroup(s, 3, false);
    const stale = join(s.logDir, 'log-000099.data.tmp');
    nodeFs.writeFileSync(stale, 'left by a crash');
    s.log = VolumeLog.open(fs, s.logDir, position(s.wal), { sync: 'none' });
    assert.equal(nodeFs.existsSync(stale), false);
    assert.equal(s.log.lastLsn, 3);
    assert.deepEqual(generation(), [[2, 0, 1]]);
    commitGroup(s, 2);
    s.log.close();
    assertRebuildsWal(s);

    // Compacted while the log was closed: another S.
    const driver = new WalCompactionDriver(fs, s.walPath, new ManualClock(NOW));
    driver.begin(4);
    driver.chunk([{ key: enc.encode('a'), address: { volume: 1, offset: 64, length: 40 }, expiresAt: 0 }]);
    driver.finish(s.wal);
    s.log = VolumeLog.open(fs, s.logDir, position(s.wal), { sync: 'none' });
    s.log.close();
    assert.deepEqual(generation(), [[3, 4, 1]]);
    assertContiguous(s);
    assertRebuildsWal(s);
  });

  /** A closed log of several files, each holding needles; returns the WAL's records. */
  function severalFiles(): { s: Store; records: WalRecord[]; files: ReturnType<typeof listLogVolumes>['files'] } {
    const s = openStore({ sync: 'none', rotateBytes: 400 });
    for (let g = 0; g < 16; g++) commitGroup(s, 1 + (g % 4));
    s.log.close();
    const files = listLogVolumes(fs, s.logDir).files;
    assert.ok(files.length >= 3 && needlesOf(fs, files[1]!.path).length >= 2);
    return { s, records: scanWal(fs, s.walPath).records, files };
  }

  test('rebuild steps over a damaged needle in a middle file, ends at the last contiguous LSN and reports the rest as dropped', () => {
    const { s, records, files } = severalFiles();
    const victim = needlesOf(fs, files[1]!.path)[0]!;
    const bytes = nodeFs.readFileSync(files[1]!.path);
    bytes[victim.offset + 32 + 5] ^= 0x40;
    nodeFs.writeFileSync(files[1]!.path, bytes);
    const out = join(tempDir(), WAL_FILE);
    const report = writeWalFromLog(fs, [s.logDir], out);
    const lastLsn = victim.firstLsn - 1;
    const next = victim.firstLsn + victim.records;
    assert.equal(report.lastLsn, lastLsn);
    assert.equal(report.damagedRegions, 1);
    assert.deepEqual(report.dropped, { count: records.length - next + 1, firstLsn: next, lastLsn: records.length });
    const rebuilt = scanWal(fs, `${out}.tmp`);
    assert.deepEqual(rebuilt.records, records.slice(0, lastLsn));
    assert.equal(rebuilt.validEnd, rebuilt.fileSize);
  });

  test('rebuild with a middle file missing ends at the gap and reports the records past it as dropped', () => {
    const { s, records, files } = severalFiles();
    const lastOfFirst = needlesOf(fs, files[0]!.path).at(-1)!;
    nodeFs.unlinkSync(files[1]!.path);
    const out = join(tempDir(), WAL_FILE);
    const report = writeWalFromLog(fs, [s.logDir], out);
    const lastLsn = lastOfFirst.firstLsn + lastOfFirst.records - 1;
    assert.equal(report.lastLsn, lastLsn);
    assert.deepEqual(scanWal(fs, `${out}.tmp`).records, records.slice(0, lastLsn));
    assert.notEqual(report.dropped, null, 'the records of the files after the gap are reported');
    assert.equal(report.dropped?.lastLsn, records.length);
  });

  test('rebuild with no log (or no base file) is NOT_FOUND and writes nothing', () => {
    const dir = tempDir();
    const out = join(dir, WAL_FILE);
    assert.throws(() => writeWalFromLog(fs, [join(dir, LOG_DIR)], out), isCode('NOT_FOUND'));
    assert.throws(() => rebuildStore(fs, dir, { drives: [], force: true, stamp: 'x', nowMs: NOW }), isCode('NOT_FOUND'));
    const { s, files } = severalFiles();
    nodeFs.unlinkSync(files[0]!.path);
    assert.throws(() => writeWalFromLog(fs, [s.logDir], out), isCode('NOT_FOUND'));
    assert.deepEqual(nodeFs.readdirSync(dir), []);
  });

  test('the log moved to another drive: the old copy goes once the new one is whole, and the rebuild finds the new one through volume-log.json', () => {
    const s = openStore();
    for (const n of [3, 4]) commitGroup(s, n);
    assert.deepEqual(moveLogPointer(fs, s.dir, s.logDir), [], 'nothing to remove the first time');
    assert.equal(readLogPointer(fs, s.dir), s.logDir);
    s.log.close();
    const elsewhere = join(tempDir(), LOG_DIR);
    s.log = VolumeLog.open(fs, elsewhere, position(s.wal), { sync: 'none' });
    const old = listLogVolumes(fs, s.logDir).files.map((f) => f.path);
    assert.deepEqual(moveLogPointer(fs, s.dir, elsewhere), old);
    assert.deepEqual(listLogVolumes(fs, s.logDir).files, [], 'the old copy is gone');
    assert.equal(readLogPointer(fs, s.dir), elsewhere);
    commitGroup(s, 2);
    s.log.close();
    s.wal.close();
    for (const name of nodeFs.readdirSync(s.dir)) if (name.startsWith(WAL_FILE) || name.startsWith('index.hash')) nodeFs.rmSync(join(s.dir, name));
    const r = rebuildStore(fs, s.dir, { drives: [], force: false, stamp: 'moved', nowMs: NOW });
    assert.equal(r.log.lastLsn, 9, 'the rebuild read the moved log, found only through the pointer');
    nodeFs.writeFileSync(join(s.dir, LOG_POINTER_FILE), '{"version": 1, "dir": 7}');
    assert.equal(readLogPointer(fs, s.dir), null, 'a pointer that does not read points nowhere');
  });

  test('rebuildStore: lost wal.log and index.hash come back equal; a whole WAL is kept unless forced; forced keeps the old files', () => {
    const s = openStore();
    for (let g = 0; g < 12; g++) commitGroup(s, 1 + (g % 5));
    s.log.close();
    s.wal.close();
    const entriesOf = (): Array<[string, IndexEntry['address'], number]> => {
      const index = recoverIndex(fs, s.dir, 64);
      try {
        const out = [...index.entries(NOW)].map((e): [string, IndexEntry['address'], number] => [Buffer.from(e.key).toString(), e.address, e.expiresAt]);
        index.checkpoint();
        return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      } finally {
        index.close();
      }
    };
    const expected = entriesOf();
    assert.ok(expected.length > 20 && expected.some((e) => e[1].volume === 2) && expected.some((e) => e[2] !== 0));
    const walBytes = nodeFs.readFileSync(s.walPath);
    for (const name of nodeFs.readdirSync(s.dir)) if (name === WAL_FILE || name.startsWith('index.hash')) nodeFs.unlinkSync(join(s.dir, name));
    nodeFs.mkdirSync(join(s.dir, VOLUMES_DIR));
    nodeFs.writeFileSync(join(s.dir, VOLUMES_DIR, volumeFileName(1)), '');

    const first = rebuildStore(fs, s.dir, { drives: [], force: false, stamp: 's1', nowMs: NOW });
    assert.deepEqual([first.replaced, first.oldWal, first.keptAs, first.keys], [true, null, [], expected.length]);
    assert.deepEqual(first.missingVolumes, [2]);
    assert.equal(first.keysWithoutVolume, expected.filter((e) => e[1].volume === 2).length);
    assert.deepEqual(nodeFs.readFileSync(s.walPath), walBytes);
    assert.deepEqual(entriesOf(), expected);

    const second = rebuildStore(fs, s.dir, { drives: [], force: false, stamp: 's2', nowMs: NOW });
    assert.deepEqual([second.replaced, second.keptAs, second.oldWal?.whole], [false, [], true]);
    assert.equal(nodeFs.existsSync(`${s.walPath}.tmp`), false);
    assert.ok(!nodeFs.readdirSync(s.dir).some((n) => n.includes('before-rebuild')));

    const third = rebuildStore(fs, s.dir, { drives: [], force: true, stamp: 's3', nowMs: NOW });
    assert.equal(third.replaced, true);
    const kept = [join(s.dir, 'wal.log.before-rebuild-s3'), join(s.dir, 'index.hash.before-rebuild-s3')];
    for (const k of kept) assert.ok(third.keptAs.includes(k) && nodeFs.existsSync(k), k);
    assert.deepEqual(nodeFs.readFileSync(kept[0]!), walBytes);
    assert.deepEqual(nodeFs.readFileSync(s.walPath), walBytes);
    assert.deepEqual(entriesOf(), expected);

    // A WAL with garbage after its last record is not whole, though not behind: replaced without force.
    nodeFs.appendFileSync(s.walPath, Buffer.alloc(5, 0xee));
    const fourth = rebuildStore(fs, s.dir, { drives: [], force: false, stamp: 's4', nowMs: NOW });
    assert.deepEqual([fourth.replaced, fourth.oldWal?.whole, fourth.oldWal?.lastLsn], [true, false, s.wal.lastLsn]);
    assert.deepEqual(nodeFs.readFileSync(s.walPath), walBytes);
  });

  test('a failing log drive: append never throws, failed is set, later appends are no-ops, the WAL goes on', () => {
    const sim = new SimFs();
    sim.mkdir('/data');
    // The 7th write under log/ fails with ENOSPC, and so does every later one until disarmed:
    // the base's superblock, then 5 needles, are written.
    sim.failAfter(7, 'enospc', { persistent: true, match: (o) => o.op === 'write' && o.path.startsWith(join('/data', LOG_DIR)) });
    const s = openStore({ sync: 'always' }, sim, '/data');
    for (let g = 0; g < 5; g++) commitGroup(s, 2);
    assert.equal(s.log.failed, null);
    commitGroup(s, 2);
    assert.match(s.log.failed ?? '', /ENOSPC/);
    assert.equal(s.log.stats().failed, s.log.failed);
    const logFile = listLogVolumes(sim, s.logDir).files[0]!.path;
    const sizeOf = (p: string): number => {
      const h = sim.open(p, 'read');
      try {
        return h.size();
      } finally {
        h.close();
      }
    };
    const size = sizeOf(logFile);
    sim.disarm(); // even a drive that recovers is not written again until a reopen
    for (let g = 0; g < 3; g++) commitGroup(s, 3);
    s.log.syncIfDirty();
    s.log.rebase(position(s.wal));
    s.log.close();
    assert.equal(s.log.lastLsn, 10);
    assert.equal(sizeOf(logFile), size);
    assert.equal(listLogVolumes(sim, s.logDir).files.length, 1);
    assert.deepEqual(scanWal(sim, s.walPath).records.map((r) => r.lsn), Array.from({ length: 21 }, (_, i) => i + 1));
    s.log = VolumeLog.open(sim, s.logDir, position(s.wal), { sync: 'none' });
    assert.equal(s.log.lastLsn, 21);
    s.log.close();
    assertRebuildsWal(s);
  });

  test('an append out of LSN order disables the log instead of throwing', () => {
    const s = openStore();
    commitGroup(s, 2);
    commitGroup(s, 2, false); // a group the log never saw: the next one does not follow
    commitGroup(s, 2);
    assert.match(s.log.failed ?? '', /at LSN 2 was given LSN 5/);
    assert.equal(s.log.lastLsn, 2);
    s.log.close();
  });

  test('power loss (SimFs, every crash mode): reopen brings the log up to the synced WAL; the rebuild equals it', () => {
    for (const mode of CRASH_MODES) {
      for (let seed = 1; seed <= 3; seed++) {
        const sim = new SimFs();
        sim.mkdir('/data');
        const s = openStore({ sync: 'always', rotateBytes: 900 }, sim, '/data');
        for (let g = 0; g < 12; g++) {
          commitGroup(s, 1 + ((g + seed) % 3));
          if (g % 5 === 4) s.log.syncIfDirty();
        }
        sim.crash(mode, mulberry32(seed));
        s.wal = WalWriter.open(sim, s.walPath, { sync: 'always' });
        assert.equal(s.wal.lastLsn, s.counter, `${mode}/${seed}: the WAL was synced at every commit`);
        s.log = VolumeLog.open(sim, s.logDir, position(s.wal), { sync: 'always', rotateBytes: 900 });
        assert.equal(s.log.failed, null, `${mode}/${seed}`);
        commitGroup(s, 2);
        s.log.close();
        assertContiguous(s);
        assertRebuildsWal(s);
      }
    }
  });
});
