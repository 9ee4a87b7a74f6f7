// Tests of a volume server's store (src/storage/member_volumes.ts) on real files: volumes created
// by id on several drives, needles taken only at the tail, the master's epoch fenced and kept
// across a restart, a torn tail cut back at reopen, truncate and remove for repair and vacuum.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NodeFs } from '../src/runtime/fs.js';
import { ManualClock } from '../src/runtime/clock.js';
import { MemberVolumes } from '../src/storage/member_volumes.js';
import { VolumeFile } from '../src/storage/volume_file.js';
import { volumeFileName, volumeIdOf } from '../src/storage/volume_format.js';
import type { NeedleAddress } from '../src/storage/types.js';
import { codeOf } from './helpers/store_error.js';

const fs = new NodeFs();
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const clock = new ManualClock(1_700_000_000_000);
let root = '';
let drives: string[] = [];

beforeEach(() => {
  root = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-member-'));
  drives = [join(root, 'd1'), join(root, 'd2')];
  for (const d of drives) nodeFs.mkdirSync(d);
});
afterEach(() => {
  nodeFs.rmSync(root, { recursive: true, force: true });
});

/** Needles as the master would send them: made by a volume file of its own, read back raw. */
function needles(id: number, count: number): { raw: Buffer; address: NeedleAddress }[] {
  const dir = join(root, `source-${id}`);
  nodeFs.mkdirSync(dir, { recursive: true });
  const source = VolumeFile.create(fs, join(dir, volumeFileName(id)), id, clock.now());
  const out = Array.from({ length: count }, (_, i) => source.append(enc(`key-${i}`), randomBytes(100 + i * 997), 0));
  source.close();
  const bytes = nodeFs.readFileSync(join(dir, volumeFileName(id)));
  return out.map((address) => ({ address, raw: bytes.subarray(address.offset, address.offset + address.length) }));
}

function put(store: MemberVolumes, id: number, n: { raw: Buffer; address: NeedleAddress }, epoch = 1): NeedleAddress {
  const ingest = store.ingest(id, n.address.offset, epoch);
  ingest.write(n.raw);
  return ingest.finish();
}

test('volumes by id over the drives; needles only at the tail (CONFLICT names the length)', () => {
  const store = MemberVolumes.open(fs, drives, clock);
  const a = volumeIdOf(1, 0);
  const b = volumeIdOf(2, 0);
  store.create(a, 1);
  store.create(b, 1);
  assert.deepEqual(store.list().map((v) => v.drive), drives, 'spread over the drives');
  assert.equal(codeOf(() => store.create(a, 1)), 'CONFLICT');
  const ns = needles(a, 3);
  assert.deepEqual(put(store, a, ns[0]!), ns[0]!.address);
  assert.equal(codeOf(() => store.ingest(a, ns[2]!.address.offset, 1)), 'CONFLICT', 'a missed write shows at the next one');
  put(store, a, ns[1]!);
  put(store, a, ns[2]!);
  store.sync();
  const info = store.info(a);
  assert.equal(info.length, store.file(a).tail);
  assert.equal(info.syncedLength, info.length);
  assert.ok(Buffer.from(store.file(a).readNeedle(ns[2]!.address).value).length > 0);
  assert.equal(codeOf(() => store.ingest(volumeIdOf(3, 0), 64, 1)), 'NOT_FOUND');
  store.close();
});

test('fencing: an older epoch is refused, the highest seen survives a restart', () => {
  const store = MemberVolumes.open(fs, drives, clock);
  const id = volumeIdOf(1, 0);
  store.create(id, 5);
  assert.equal(store.epoch, 5);
  assert.equal(codeOf(() => store.ingest(id, 64, 4)), 'STALE_EPOCH');
  assert.equal(codeOf(() => store.create(volumeIdOf(2, 0), 3)), 'STALE_EPOCH');
  store.admit(7);
  store.close();
  const again = MemberVolumes.open(fs, drives, clock);
  assert.equal(again.epoch, 7);
  assert.equal(codeOf(() => again.truncate(id, 64, 6)), 'STALE_EPOCH');
  again.close();
});

test('a torn tail is cut back at reopen; truncate and remove', () => {
  const store = MemberVolumes.open(fs, drives, clock);
  const id = volumeIdOf(1, 0);
  store.create(id, 1);
  const ns = needles(id, 3);
  put(store, id, ns[0]!);
  put(store, id, ns[1]!);
  store.sync();
  // The third arrives half: the process dies (nothing answered).
  const torn = store.ingest(id, ns[2]!.address.offset, 1);
  torn.write(ns[2]!.raw.subarray(0, Math.floor(ns[2]!.raw.length / 2)));
  const path = store.file(id).path;
  store.close();
  assert.ok(nodeFs.statSync(path).size > ns[2]!.address.offset, 'the half needle is on disk');
  const again = MemberVolumes.open(fs, drives, clock);
  assert.equal(again.info(id).length, ns[2]!.address.offset, 'cut back to the last whole needle');
  assert.equal(nodeFs.statSync(path).size, ns[2]!.address.offset);
  put(again, id, ns[2]!, 1);
  again.sync();
  // Repair: cut to a needle boundary; the volume takes bytes there again.
  assert.equal(again.truncate(id, ns[1]!.address.offset, 1).length, ns[1]!.address.offset);
  put(again, id, ns[1]!, 1);
  again.remove(id, 1);
  assert.equal(nodeFs.existsSync(path), false);
  assert.equal(codeOf(() => again.info(id)), 'NOT_FOUND');
  again.close();
});

test('create takes the superblock time the master names: every member writes the same superblock', () => {
  const store = MemberVolumes.open(fs, drives, clock);
  const id = volumeIdOf(3, 0);
  store.create(id, 1, 1_234_567);
  const path = join(store.info(id).drive, 'volumes', volumeFileName(id));
  store.close();
  assert.equal(nodeFs.readFileSync(path).readBigUInt64LE(16), 1_234_567n);
});
