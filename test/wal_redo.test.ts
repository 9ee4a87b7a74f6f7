// Redo needles (src/storage/wal_redo.ts, docs/formats.md §WAL "Redo needles"), on a simulated
// file system that loses every unsynced write at a power cut: what open writes back, where,
// and what it leaves alone. The whole-store property is the crash/recovery suite's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimFs, mulberry32 } from '../property-tests/sim_fs.js';
import { HashIndex } from '../src/storage/hash_index.js';
import { VolumeFile } from '../src/storage/volume_file.js';
import { WalWriter } from '../src/storage/wal_writer.js';
import { redoNeedles, syncVolumeFiles } from '../src/storage/wal_redo.js';
import { volumeFilePath } from '../src/storage/drive_volumes.js';
import { OpCode, type NeedleAddress, type Op, type RedoNeedle } from '../src/storage/types.js';
import { volumeIdOf } from '../src/storage/volume_format.js';

const DATA = '/data';
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const dirs = new Map([[0, DATA]]);

/** A store's files: volume 0 (synced when created), and an empty WAL. */
function store(): { fs: SimFs; volume: VolumeFile; wal: WalWriter } {
  const fs = new SimFs();
  fs.mkdir(`${DATA}/volumes`);
  const volume = VolumeFile.create(fs, volumeFilePath(dirs, 0)!, volumeIdOf(0, 0), 1);
  fs.syncDir(`${DATA}/volumes`);
  const wal = WalWriter.open(fs, `${DATA}/wal.log`, { sync: 'always' });
  return { fs, volume, wal };
}

/** Appends a needle unsynced and commits its SET with the needle as redo (what the engine does). */
function write(s: { volume: VolumeFile; wal: WalWriter }, key: string, value: string, redo = true): NeedleAddress {
  const k = bytes(key);
  const v = bytes(value);
  const address = s.volume.append(k, v, 0);
  const ops: Op[] = [{ code: OpCode.Set, key: k, address, expiresAt: 0 }];
  const needles: RedoNeedle[] = redo ? [{ volume: address.volume, offset: address.offset, key: k, value: v, expiresAt: 0 }] : [];
  s.wal.commit([{ ops, timeMs: 1, redo: needles }]);
  return address;
}

function valueAt(fs: SimFs, address: NeedleAddress, key: string): string {
  const file = VolumeFile.open(fs, volumeFilePath(dirs, address.volume)!, 'read');
  try {
    assert.ok(file.verifyNeedle(address, bytes(key)), `needle of ${key} checks`);
    return new TextDecoder().decode(file.readValue(address, bytes(key).length, 0, address.length - 36 - bytes(key).length));
  } finally {
    file.close();
  }
}

test('a power cut takes the unsynced needles; open writes them back from their records, byte for byte', () => {
  const s = store();
  const a = write(s, 'alpha', 'first value');
  const b = write(s, 'beta', 'x'.repeat(5000));
  s.wal.close();
  s.volume.close();
  s.fs.crash('drop', mulberry32(1));
  assert.equal(s.fs.open(volumeFilePath(dirs, 0)!, 'read').size(), 64, 'only the superblock was synced');
  const report = redoNeedles(s.fs, DATA, dirs);
  assert.deepEqual(report, { records: 2, needles: 2, skipped: 0 });
  // Synced by the redo: a second power cut keeps them.
  s.fs.crash('drop', mulberry32(2));
  assert.equal(valueAt(s.fs, a, 'alpha'), 'first value');
  assert.equal(valueAt(s.fs, b, 'beta'), 'x'.repeat(5000));
});

test('records the index vouches for are not read again; a record without redo writes nothing', () => {
  const s = store();
  const a = write(s, 'old', 'checkpointed');
  s.volume.sync();
  // An index checkpointed at LSN 1 (after the volume sync, as the index actor does).
  const index = HashIndex.open(s.fs, `${DATA}/index.hash`, { initialBuckets: 16 });
  index.apply({ lsn: 1, timeMs: 1, kind: 0, ops: [{ code: OpCode.Set, key: bytes('old'), address: a, expiresAt: 0 }] });
  index.checkpoint();
  index.close();
  const b = write(s, 'new', 'after the checkpoint');
  write(s, 'plain', 'its volume synced instead', false);
  s.volume.sync();
  s.wal.close();
  s.volume.close();
  s.fs.crash('drop', mulberry32(3));
  assert.deepEqual(redoNeedles(s.fs, DATA, dirs), { records: 2, needles: 1, skipped: 0 });
  assert.equal(valueAt(s.fs, a, 'old'), 'checkpointed');
  assert.equal(valueAt(s.fs, b, 'new'), 'after the checkpoint');
});

test('a needle of a volume that is gone (retired and removed) is skipped, not recreated', () => {
  const s = store();
  write(s, 'k', 'in a removed volume');
  s.wal.close();
  s.volume.close();
  s.fs.unlink(volumeFilePath(dirs, 0)!);
  s.fs.syncDir(`${DATA}/volumes`);
  assert.deepEqual(redoNeedles(s.fs, DATA, dirs), { records: 1, needles: 0, skipped: 1 });
  assert.equal(s.fs.exists(volumeFilePath(dirs, 0)!), false);
});

test('no WAL: nothing to redo', () => {
  const fs = new SimFs();
  assert.deepEqual(redoNeedles(fs, DATA, dirs), { records: 0, needles: 0, skipped: 0 });
});

test('syncVolumeFiles makes what was written through another handle durable, and steps over a missing volume', () => {
  const s = store();
  const a = s.volume.append(bytes('k'), bytes('synced by the index'), 0);
  syncVolumeFiles(s.fs, dirs, [a.volume, volumeIdOf(0, 7)]);
  s.wal.close();
  s.volume.close();
  s.fs.crash('drop', mulberry32(4));
  assert.equal(valueAt(s.fs, a, 'k'), 'synced by the index');
});
