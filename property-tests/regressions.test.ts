// Regressions found by the simulation, each on the smallest state that shows it, over SimFs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/runtime/clock.js';
import { DriveVolumes } from '../src/storage/drive_volumes.js';
import { VolumeReader } from '../src/storage/volume_reader.js';
import { SimFs, mulberry32 } from './sim_fs.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('regression: a volume created by a writer that died before its first sync survives a later power loss (its directory entry is synced by the next writer)', () => {
  const fs = new SimFs();
  fs.mkdir('/d');
  const options = { dir: '/d', group: 0, maxVolumeSize: 1 << 20, clock: new ManualClock() };
  // A writer creates the first volume (superblock synced) and dies before any sync: the volume's
  // directory entry is not durable yet.
  DriveVolumes.open(fs, options);
  // Its successor (a restarted actor or process, same machine, no power loss) finds the file,
  // appends and syncs: an acknowledged needle.
  const next = DriveVolumes.open(fs, options);
  const address = next.append(enc('key'), enc('acknowledged'), 0);
  next.sync();
  fs.crash('drop', mulberry32(1));
  const reader = new VolumeReader(fs, [{ id: 0, dir: '/d' }]);
  assert.equal(new TextDecoder().decode(reader.readNeedle(address).value), 'acknowledged', 'the synced needle lost with its volume');
  reader.close();
});
