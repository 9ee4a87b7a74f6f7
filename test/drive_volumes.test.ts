// Tests of the volumes of a drive (src/storage/drive_volumes.ts) and of the any-thread reader
// (src/storage/volume_reader.ts): rotation and ids, reopen, the durability order of sync()
// (file syncs, and the directory after a creation), the fence, torn creations, two drives,
// and the LRU bound on open handles.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { NodeFs, type FileHandle, type Fs, type OpenMode } from '../src/runtime/fs.js';
import { ManualClock } from '../src/runtime/clock.js';
import { canaries, resetCanaries } from '../src/runtime/canary.js';
import { type NeedleAddress } from '../src/storage/types.js';
import { needleLength, volumeFileName, volumeIdOf } from '../src/storage/volume_format.js';
import { DriveVolumes } from '../src/storage/drive_volumes.js';
import { VolumeFile } from '../src/storage/volume_file.js';
import { VolumeReader } from '../src/storage/volume_reader.js';
import { codeOf } from './helpers/store_error.js';
import { StoreError } from '../src/runtime/errors.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
let root = '';

beforeEach(() => {
  root = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-drive-'));
  resetCanaries();
});
afterEach(() => {
  resetCanaries();
  nodeFs.rmSync(root, { recursive: true, force: true });
});

const code = codeOf;

/** NodeFs that records file syncs and directory syncs, and can fail fdatasync. */
class RecordingFs implements Fs {
  private readonly inner = new NodeFs();
  log: string[] = [];
  /** Writes (file and offset) and directory syncs, in order. */
  events: string[] = [];
  failSync = false;
  opened = 0;
  closed = 0;
  open(path: string, mode: OpenMode): FileHandle {
    const h = this.inner.open(path, mode);
    this.opened++;
    const outer = this; // eslint-disable-line @typescript-eslint/no-this-alias
    return {
      path: h.path,
      read: (b, p) => h.read(b, p),
      write: (b, p) => {
        outer.events.push(`write ${path} ${p}`);
        h.write(b, p);
      },
      sync: () => {
        if (outer.failSync) throw Object.assign(new Error('EIO: fdatasync'), { code: 'EIO' });
        outer.log.push(`sync ${path}`);
        h.sync();
      },
      truncate: (n) => h.truncate(n),
      size: () => h.size(),
      close: () => {
        outer.closed++;
        h.close();
      },
    };
  }
  exists(p: string): boolean { return this.inner.exists(p); }
  readdir(p: string): string[] { return this.inner.readdir(p); }
  mkdir(p: string): void { this.inner.mkdir(p); }
  rename(a: string, b: string): void { this.inner.rename(a, b); }
  unlink(p: string): void { this.inner.unlink(p); }
  syncDir(p: string): void {
    this.log.push(`syncDir ${p}`);
    this.events.push(`syncDir ${p}`);
    this.inner.syncDir(p);
  }
  readFile(p: string): Uint8Array { return this.inner.readFile(p); }
}

function openDrive(fs: Fs, dir: string, group: number, maxVolumeSize = 1024): DriveVolumes {
  return DriveVolumes.open(fs, { dir, group, maxVolumeSize, clock: new ManualClock() });
}

test('rotation at maxVolumeSize; ids are volumeIdOf(group, seq); an oversized needle gets its own volume', () => {
  const fs = new NodeFs();
  const d = openDrive(fs, root, 2, 1024);
  assert.deepEqual(d.list().map((v) => v.id), [volumeIdOf(2, 0)]);
  const addrs: NeedleAddress[] = [];
  for (let i = 0; i < 20; i++) addrs.push(d.append(enc(`k${i}`), new Uint8Array(100).fill(i), 0));
  const big = d.append(enc('big'), new Uint8Array(3000).fill(7), 0);
  const after = d.append(enc('after'), enc('small'), 0);
  d.sync();
  const vols = d.list();
  assert.deepEqual(vols.map((v) => v.id), vols.map((_, i) => volumeIdOf(2, i)));
  for (const v of vols) {
    assert.equal(v.path, join(root, 'volumes', volumeFileName(v.id)));
    if (v.id !== big.volume) assert.ok(v.sizeBytes <= 1024, `volume ${v.id} is ${v.sizeBytes} bytes`);
  }
  assert.ok(vols.length >= 4);
  assert.equal(big.offset, 64, 'the oversized needle starts a fresh volume');
  assert.equal(after.volume, big.volume + 1, 'and nothing joins it');
  for (let i = 0; i < 20; i++) {
    const a = addrs[i]!;
    assert.ok(a.offset + a.length <= 1024);
    const got = d.file(a.volume)!.readNeedle(a);
    assert.deepEqual(got.value, new Uint8Array(100).fill(i));
  }
  assert.equal(d.file(12345), undefined);
  d.close();
});

test('reopen finds its volumes, reads them, appends after the tail of the last', () => {
  const fs = new NodeFs();
  const d = openDrive(fs, root, 0, 600);
  const addrs = Array.from({ length: 10 }, (_, i) => d.append(enc(`key${i}`), enc(`value ${i}`.repeat(10)), 0));
  d.sync();
  const before = d.list();
  d.close();
  // A file of another group in the same folder is not ours.
  VolumeFile.create(fs, join(root, 'volumes', volumeFileName(volumeIdOf(1, 0))), volumeIdOf(1, 0), 1).close();
  const d2 = openDrive(fs, root, 0, 600);
  assert.deepEqual(d2.list(), before);
  for (let i = 0; i < 10; i++) assert.equal(dec(d2.file(addrs[i]!.volume)!.readNeedle(addrs[i]!).value), `value ${i}`.repeat(10));
  const last = before[before.length - 1]!;
  const next = d2.append(enc('new'), enc('x'), 0);
  assert.deepEqual([next.volume, next.offset], [last.id, last.sizeBytes]);
  d2.close();
});

test('sync: every written volume is fdatasynced; volumes/ at open and at a creation, before any needle goes in', () => {
  // A needle may be acknowledged with no sync of its volume (its WAL record carries it): the
  // file's directory entry must be durable before the first append, not at the next sync.
  const fs = new RecordingFs();
  const vdir = join(root, 'volumes');
  const d = openDrive(fs, root, 0, 1024);
  assert.ok(fs.log.includes(`syncDir ${vdir}`), 'the first volume was created at open');
  assert.ok(fs.log.includes(`syncDir ${root}`), 'and so was volumes/ itself');
  fs.log = [];
  d.sync();
  assert.deepEqual(fs.log, [], 'nothing written, nothing synced');
  const a = d.append(enc('a'), new Uint8Array(500), 0);
  d.sync();
  assert.deepEqual(fs.log, [`sync ${join(vdir, volumeFileName(a.volume))}`]);
  fs.events = [];
  const b = d.append(enc('b'), new Uint8Array(600), 0); // rotates
  assert.equal(b.volume, a.volume + 1);
  const created = fs.events.indexOf(`syncDir ${vdir}`);
  const needle = fs.events.indexOf(`write ${join(vdir, volumeFileName(b.volume))} ${b.offset}`);
  assert.ok(created >= 0 && needle > created, `the creation is durable before the needle: ${fs.events.join(', ')}`);
  fs.log = [];
  d.sync();
  assert.deepEqual(fs.log, [`sync ${join(vdir, volumeFileName(b.volume))}`]);
  fs.log = [];
  d.append(enc('c'), enc('c'), 0);
  d.sync();
  assert.deepEqual(fs.log, [`sync ${join(vdir, volumeFileName(b.volume))}`], 'no directory sync without a creation');
  d.close();
});

test('canary skipDirSync: the directory fsync after a creation is skipped', () => {
  const fs = new RecordingFs();
  const d = openDrive(fs, root, 0, 1024);
  canaries.skipDirSync = true;
  fs.log = [];
  d.sync();
  assert.deepEqual(fs.log.filter((l) => l.startsWith('syncDir')), []);
  d.close();
});

test('a stream written across syncs keeps its volume tracked until finished', () => {
  const fs = new RecordingFs();
  const d = openDrive(fs, root, 0, 100_000);
  d.sync();
  const s = d.reserve(enc('blob'), 3000, 0);
  const path = join(root, 'volumes', volumeFileName(s.address.volume));
  s.write(new Uint8Array(1000).fill(1));
  fs.log = [];
  d.sync();
  assert.deepEqual(fs.log, [`sync ${path}`]);
  s.write(new Uint8Array(2000).fill(2));
  s.finish();
  fs.log = [];
  d.sync();
  assert.deepEqual(fs.log, [`sync ${path}`], 'the later chunks and the trailer are synced too');
  const got = d.file(s.address.volume)!.readNeedle(s.address);
  assert.equal(got.value.length, 3000);
  assert.equal(got.value[2999], 2);
  d.close();
});

test('a reservation rotates like an append; appends during the stream go after it', () => {
  const d = openDrive(new NodeFs(), root, 0, 2048);
  d.append(enc('first'), new Uint8Array(1500), 0);
  const s = d.reserve(enc('blob'), 1000, 0);
  assert.equal(s.address.offset, 64, 'did not fit: new volume');
  const x = d.append(enc('x'), enc('y'), 0);
  assert.deepEqual([x.volume, x.offset >= s.address.offset + s.address.length], [s.address.volume, true]);
  s.write(new Uint8Array(1000).fill(9));
  s.finish();
  assert.deepEqual(d.file(s.address.volume)!.readNeedle(s.address).value, new Uint8Array(1000).fill(9));
  d.close();
});

test('a failed sync fences the drive for good', () => {
  const fs = new RecordingFs();
  const d = openDrive(fs, root, 0, 4096);
  d.append(enc('a'), enc('x'), 0);
  fs.failSync = true;
  assert.equal(code(() => d.sync()), 'IO_ERROR');
  fs.failSync = false;
  assert.equal(code(() => d.sync()), 'IO_ERROR');
  assert.equal(code(() => d.append(enc('b'), enc('y'), 0)), 'IO_ERROR');
  assert.equal(code(() => d.reserve(enc('b'), 1, 0)), 'IO_ERROR');
  d.close();
  assert.equal(code(() => d.append(enc('b'), enc('y'), 0)), 'CLOSED');
});

test('a torn creation (last file without a whole superblock) is removed; a damaged older volume is CORRUPT', () => {
  const fs = new NodeFs();
  const d = openDrive(fs, root, 0, 512);
  const a = d.append(enc('a'), new Uint8Array(300), 0);
  d.sync();
  d.close();
  const torn = join(root, 'volumes', volumeFileName(1));
  nodeFs.writeFileSync(torn, new Uint8Array(20));
  const d2 = openDrive(fs, root, 0, 512);
  assert.deepEqual(d2.list().map((v) => v.id), [0]);
  assert.equal(nodeFs.existsSync(torn), false);
  assert.equal(d2.file(0)!.readNeedle(a).value.length, 300);
  d2.append(enc('b'), new Uint8Array(300), 0); // rotates to volume 1 again
  d2.append(enc('c'), new Uint8Array(300), 0);
  d2.sync();
  d2.close();
  const first = join(root, 'volumes', volumeFileName(0));
  const fd = nodeFs.openSync(first, 'r+');
  nodeFs.writeSync(fd, new Uint8Array([0xff]), 0, 1, 3);
  nodeFs.closeSync(fd);
  assert.throws(() => openDrive(fs, root, 0, 512), (e: unknown) => e instanceof StoreError && e.code === 'CORRUPT' && e.message.includes(first));
});

test('options are checked', () => {
  const fs = new NodeFs();
  assert.equal(code(() => openDrive(fs, root, -1)), 'BAD_ARGUMENT');
  assert.equal(code(() => openDrive(fs, root, 0, 10)), 'BAD_ARGUMENT');
  assert.equal(code(() => openDrive(fs, root, 4096)), 'BAD_ARGUMENT');
});

test('VolumeReader reads needles of two groups; streamValue checks the head, chunks into the buffer given (or fresh ones)', () => {
  const fs = new NodeFs();
  const dirA = join(root, 'a');
  const dirB = join(root, 'b');
  const d0 = openDrive(fs, dirA, 0, 1 << 20);
  const d1 = openDrive(fs, dirB, 1, 1 << 20);
  const value = new Uint8Array(10_000).map((_, i) => i % 251);
  const a0 = d0.append(enc('on-a'), value, 0);
  const a1 = d1.append(enc('on-b'), enc('hello from b'), 0);
  d0.sync();
  d1.sync();
  const r = new VolumeReader(fs, [{ id: 0, dir: dirA }, { id: 1, dir: dirB }]);
  assert.equal(r.pathOf(a1.volume), join(dirB, 'volumes', volumeFileName(volumeIdOf(1, 0))));
  assert.equal(dec(r.readNeedle(a1).value), 'hello from b');
  assert.deepEqual(r.readNeedle(a0).value, value);
  assert.equal(dec(Buffer.concat([...r.streamValue(a1, enc('on-b'), 6, 4)])), 'from');
  assert.equal(r.verifyNeedle(a0, enc('on-a')), true);
  const fresh = [...r.streamValue(a0, enc('on-a'), 100, 9000)];
  assert.deepEqual(fresh.map((c) => c.length), [9000], 'without a buffer: fresh chunks of up to 1 MiB');
  assert.deepEqual(Buffer.from(fresh[0]!), Buffer.from(value.subarray(100, 9100)));
  const buf = new Uint8Array(4096);
  const viewed: Buffer[] = [];
  for (const c of r.streamValue(a0, enc('on-a'), 100, 9000, buf)) {
    assert.equal(c.buffer, buf.buffer, 'a view of the buffer given');
    viewed.push(Buffer.from(c)); // copied: the next chunk reuses it
  }
  assert.deepEqual(viewed.map((c) => c.length), [4096, 4096, 808]);
  assert.deepEqual(Buffer.concat(viewed), Buffer.from(value.subarray(100, 9100)));
  assert.equal(code(() => [...r.streamValue(a0, enc('on-a'), 5000, 5001)]), 'BAD_ARGUMENT', 'range checked before the first chunk');
  assert.equal(code(() => [...r.streamValue(a0, enc('on-b'), 0, 1)]), 'CORRUPT', 'another key\'s needle is refused before a byte');
  assert.equal(code(() => r.readNeedle({ volume: volumeIdOf(2, 0), offset: 64, length: 40 })), 'NOT_FOUND');
  assert.equal(code(() => r.readNeedle({ volume: 5, offset: 64, length: 40 })), 'NOT_FOUND');
  // The writer keeps appending; the reader sees the new needle through its open handle.
  const later = d0.append(enc('later'), enc('grown'), 0);
  assert.equal(dec(r.readNeedle(later).value), 'grown');
  // A flipped value byte: a whole stream fails its CRC before the last chunk; a range cannot see it.
  const fd = nodeFs.openSync(r.pathOf(a0.volume), 'r+');
  nodeFs.writeSync(fd, Buffer.from([value[5000]! ^ 1]), 0, 1, a0.offset + 32 + 4 + 5000);
  nodeFs.closeSync(fd);
  const seen: number[] = [];
  assert.equal(code(() => { for (const c of r.streamValue(a0, enc('on-a'), 0, value.length, new Uint8Array(4096))) seen.push(c.length); }), 'CHECKSUM_MISMATCH');
  assert.deepEqual(seen, [4096, 4096], 'the last chunk never left');
  assert.equal([...r.streamValue(a0, enc('on-a'), 0, 100)].length, 1, 'a range before the damage reads');
  r.close();
  assert.equal(code(() => r.readNeedle(a0)), 'CLOSED');
  d0.close();
  d1.close();
});

test('VolumeReader keeps at most maxOpen handles open (LRU) and still reads everything', () => {
  const fs = new RecordingFs();
  const d = openDrive(fs, root, 0, 256);
  const addrs = Array.from({ length: 12 }, (_, i) => d.append(enc(`k${i}`), enc(`v${i}`.repeat(40)), 0));
  d.sync();
  assert.equal(new Set(addrs.map((a) => a.volume)).size, 12);
  d.close();
  const r = new VolumeReader(fs, [{ id: 0, dir: root }], 3);
  const opened = fs.opened;
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 12; i++) {
      assert.equal(dec(r.readNeedle(addrs[i]!).value), `v${i}`.repeat(40));
      assert.ok(r.openCount <= 3);
    }
  }
  assert.equal(fs.opened - opened, 24, 'a cycle over 12 volumes with 3 groups always misses');
  // A hot volume stays open while others come and go.
  const hits = fs.opened;
  for (let i = 0; i < 6; i++) {
    r.readNeedle(addrs[0]!);
    r.readNeedle(addrs[1 + (i % 5)]!);
  }
  assert.equal(fs.opened - hits, 1 + 6, 'volume 0 opened once, each of the others every time');
  const again = fs.opened;
  r.readNeedle(addrs[0]!);
  assert.equal(fs.opened, again, 'volume 0 is still open');
  r.forget(addrs[0]!.volume);
  assert.ok(r.openCount <= 2);
  r.close();
  assert.equal(r.openCount, 0);
  assert.equal(fs.opened, fs.closed, 'every handle closed');
  assert.equal(code(() => new VolumeReader(fs, [{ id: 0, dir: root }], 0)), 'BAD_ARGUMENT');
});

test('appendAt writes only at the offset the group names: two members given the same places hold identical bytes', () => {
  const fs = new NodeFs();
  const a = openDrive(fs, join(root, 'member-a'), 3, 4096);
  const b = openDrive(fs, join(root, 'member-b'), 3, 4096);
  for (let i = 0; i < 30; i++) {
    const key = enc(`k${i}`);
    const value = new Uint8Array(50 + i * 7).fill(i);
    // The group assigns the place once (from one member's view) and every member writes there.
    const at = a.place(needleLength(key.length, value.length));
    const fromA = a.appendAt(at, key, value, 0);
    const fromB = b.appendAt(at, key, value, 0);
    assert.deepEqual(fromA, fromB);
  }
  a.sync();
  b.sync();
  const va = a.list();
  assert.deepEqual(va.map((v) => v.id), b.list().map((v) => v.id));
  assert.ok(va.length > 1, 'the places crossed a rotation');
  for (const v of va) {
    const bytesA = nodeFs.readFileSync(v.path);
    const bytesB = nodeFs.readFileSync(v.path.replace('member-a', 'member-b'));
    // Superblocks carry the creation time; everything after them is byte-for-byte the same.
    assert.ok(bytesA.subarray(64).equals(bytesB.subarray(64)), `volume ${v.id} differs between members`);
  }
  a.close();
  b.close();
});

test('appendAt refuses another offset or a sealed volume with CONFLICT, naming the length', () => {
  const fs = new NodeFs();
  const d = openDrive(fs, root, 0, 1024);
  const first = d.place(needleLength(2, 10));
  d.appendAt(first, enc('k1'), new Uint8Array(10), 0);
  assert.throws(
    () => d.appendAt(first, enc('k2'), new Uint8Array(10), 0),
    (e: unknown) => e instanceof StoreError && e.code === 'CONFLICT' && /whose length is \d+/.test(e.message),
  );
  for (let i = 0; i < 20; i++) d.append(enc(`r${i}`), new Uint8Array(100), 0); // rotates
  assert.throws(
    () => d.appendAt({ volume: first.volume, offset: 512 }, enc('k3'), new Uint8Array(1), 0),
    (e: unknown) => e instanceof StoreError && e.code === 'CONFLICT' && /does not take needles/.test(e.message),
  );
  assert.throws(
    () => d.appendAt({ volume: volumeIdOf(1, 9), offset: 64 }, enc('k4'), new Uint8Array(1), 0),
    (e: unknown) => e instanceof StoreError && e.code === 'CONFLICT',
    'a volume of another group is never created here',
  );
  d.close();
});

test('appendMany (fast-check): the same addresses, rotations and bytes as one append at a time, in at most one write per run', () => {
  let run = 0;
  fc.assert(
    fc.property(
      fc.array(fc.record({ key: fc.integer({ min: 1, max: 40 }), value: fc.integer({ min: 0, max: 1500 }), expiresAt: fc.nat(), batch: fc.integer({ min: 1, max: 12 }) }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 512, max: 8192 }),
      (items, maxVolumeSize) => {
        run++;
        const writes = { n: 0 };
        const one = openDrive(new NodeFs(), join(root, `one-${run}`), 1, maxVolumeSize);
        const many = openDrive(countingWrites(new NodeFs(), writes), join(root, `many-${run}`), 1, maxVolumeSize);
        const needles = items.map((it, i) => ({ key: enc(`k${i}-`.padEnd(it.key, 'x')), value: new Uint8Array(it.value).fill(i & 0xff), expiresAt: it.expiresAt, flags: 0 }));
        const expected = needles.map((n) => one.append(n.key, n.value, n.expiresAt));
        const got: NeedleAddress[] = [];
        const writesBefore = writes.n;
        let batches = 0;
        for (let i = 0; i < needles.length; i += items[i]!.batch) {
          got.push(...many.appendMany(needles.slice(i, i + items[i]!.batch)));
          batches++;
        }
        assert.deepEqual(got, expected);
        // Each batch is one write per volume it reaches (a superblock write for each new one).
        const volumes = new Set(got.map((a) => a.volume)).size;
        assert.ok(writes.n - writesBefore <= batches + 2 * volumes, `${writes.n - writesBefore} writes for ${batches} batches over ${volumes} volumes`);
        one.sync();
        many.sync();
        const va = one.list();
        assert.deepEqual(va.map((v) => [v.id, v.sizeBytes]), many.list().map((v) => [v.id, v.sizeBytes]));
        for (const v of va) {
          const a = nodeFs.readFileSync(v.path);
          const b = nodeFs.readFileSync(v.path.replace(`one-${run}`, `many-${run}`));
          assert.ok(a.subarray(64).equals(b.subarray(64)), `volume ${v.id} differs`);
        }
        for (const [i, a] of got.entries()) assert.deepEqual(many.file(a.volume)!.readNeedle(a).value, needles[i]!.value);
        one.close();
        many.close();
      },
    ),
    { numRuns: 40 },
  );
});

test('appendMany checks every needle before writing any: a bad one leaves the tail where it was', () => {
  const d = openDrive(new NodeFs(), root, 0, 1 << 20);
  const first = d.append(enc('a'), enc('1'), 0);
  assert.equal(code(() => d.appendMany([
    { key: enc('b'), value: enc('2'), expiresAt: 0, flags: 0 },
    { key: new Uint8Array(0), value: enc('3'), expiresAt: 0, flags: 0 },
  ])), 'KEY_EMPTY');
  const next = d.append(enc('c'), enc('4'), 0);
  assert.equal(next.offset, first.offset + 40, 'nothing of the refused batch took room');
  d.sync();
  assert.equal(nodeFs.statSync(d.list()[0]!.path).size, next.offset + next.length);
  d.close();
});

/** An Fs whose handles count their writes. */
function countingWrites(inner: Fs, writes: { n: number }): Fs {
  return {
    open: (path, mode) => {
      const h = inner.open(path, mode);
      return { ...h, path: h.path, read: (b, p) => h.read(b, p), write: (b, p) => { writes.n++; h.write(b, p); }, sync: () => h.sync(), truncate: (n) => h.truncate(n), size: () => h.size(), close: () => h.close() };
    },
    exists: (p) => inner.exists(p),
    readdir: (p) => inner.readdir(p),
    mkdir: (p) => inner.mkdir(p),
    rename: (a, b) => inner.rename(a, b),
    unlink: (p) => inner.unlink(p),
    syncDir: (p) => inner.syncDir(p),
    readFile: (p) => inner.readFile(p),
  };
}
