// Tests of one volume file (src/storage/volume_file.ts) on real files: round trips, damaged
// bytes (CHECKSUM_MISMATCH, scan marks invalid and goes on), torn needles at every byte,
// garbage between needles, streams interleaved with appends, aborted streams, the fence
// after a failed fsync, and the canaries that must break exactly what they say.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { NodeFs, type FileHandle, type Fs, type OpenMode } from '../src/runtime/fs.js';
import { canaries, resetCanaries } from '../src/runtime/canary.js';
import { type NeedleAddress } from '../src/storage/types.js';
import { NeedleFlag, alignUp, needleLength } from '../src/storage/volume_format.js';
import { VolumeFile, type ScannedNeedle } from '../src/storage/volume_file.js';
import { codeOf } from './helpers/store_error.js';
import { StoreError } from '../src/runtime/errors.js';

const fs = new NodeFs();
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const NOW = 1_700_000_000_000;
let dir = '';

beforeEach(() => {
  dir = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-volfile-'));
  resetCanaries();
});
afterEach(() => {
  resetCanaries();
  nodeFs.rmSync(dir, { recursive: true, force: true });
});

const code = codeOf;

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function flipByte(path: string, position: number): void {
  const fd = nodeFs.openSync(path, 'r+');
  const b = Buffer.alloc(1);
  nodeFs.readSync(fd, b, 0, 1, position);
  b[0] = (b[0] ?? 0) ^ 0x20;
  nodeFs.writeSync(fd, b, 0, 1, position);
  nodeFs.closeSync(fd);
}

function keysOf(needles: ScannedNeedle[], valid = true): string[] {
  return needles.filter((n) => n.valid === valid).map((n) => dec(n.key));
}

test('create then open: the superblock holds the id and the tail starts after it', () => {
  const path = join(dir, 'vol-000007.data');
  const v = VolumeFile.create(fs, path, 7, NOW);
  assert.equal(v.tail, 64);
  v.close();
  assert.equal(nodeFs.statSync(path).size, 64);
  const r = VolumeFile.open(fs, path, 'read');
  assert.equal(r.id, 7);
  assert.equal(r.path, path);
  assert.equal(r.tail, 64);
  assert.deepEqual([...r.scan()], []);
  r.close();
  assert.equal(code(() => VolumeFile.create(fs, path, 7, NOW)), 'IO_ERROR', 'never clobbers an existing volume');
});

test('a corrupt or short superblock is CORRUPT and the error names the file', () => {
  const path = join(dir, 'vol-000001.data');
  VolumeFile.create(fs, path, 1, NOW).close();
  flipByte(path, 13);
  assert.throws(() => VolumeFile.open(fs, path, 'read'), (err: unknown) => err instanceof StoreError && err.code === 'CORRUPT' && err.message.includes(path));
  nodeFs.writeFileSync(path, new Uint8Array(10));
  assert.equal(code(() => VolumeFile.open(fs, path, 'write')), 'CORRUPT');
  assert.equal(code(() => VolumeFile.open(fs, join(dir, 'missing.data'), 'read')), 'NOT_FOUND');
});

test('append, read back whole, in ranges, and through scan; tombstones too', () => {
  const path = join(dir, 'vol-000000.data');
  const v = VolumeFile.create(fs, path, 0, NOW);
  const a = v.append(enc('alpha'), enc('first value'), 0);
  const b = v.append(enc('b'), bytes(3000), NOW + 5000);
  const t = v.append(enc('alpha'), new Uint8Array(0), 0, NeedleFlag.Tombstone);
  assert.deepEqual(a, { volume: 0, offset: 64, length: needleLength(5, 11) });
  assert.equal(b.offset, alignUp(a.offset + a.length));
  assert.equal(t.offset, alignUp(b.offset + b.length));
  assert.equal(v.tail, alignUp(t.offset + t.length));
  v.sync();
  const got = v.readNeedle(b);
  assert.deepEqual([dec(got.key), got.expiresAt, got.flags], ['b', NOW + 5000, 0]);
  assert.deepEqual(got.value, bytes(3000));
  assert.equal(dec(v.readValue(a, 5, 6, 5)), 'value');
  assert.deepEqual(v.readValue(b, 1, 2990, 10), bytes(3000).subarray(2990));
  assert.equal(v.readValue(a, 5, 11, 0).length, 0);
  assert.equal(code(() => v.readValue(a, 5, 6, 6)), 'BAD_ARGUMENT', 'past the value');
  assert.equal(code(() => v.readValue(a, 5, -1, 1)), 'BAD_ARGUMENT');
  assert.equal(code(() => v.readValue({ ...a, volume: 9 }, 5, 0, 1)), 'BAD_ARGUMENT');
  assert.equal(v.readNeedle(t).flags, NeedleFlag.Tombstone);
  v.close();
  const r = VolumeFile.open(fs, path, 'read');
  const scanned = [...r.scan()];
  assert.deepEqual(scanned.map((n) => [dec(n.key), n.address, n.valueLength, n.flags, n.valid]), [
    ['alpha', a, 11, 0, true],
    ['b', b, 3000, 0, true],
    ['alpha', t, 0, 1, true],
  ]);
  assert.equal(r.verifyNeedle(b, enc('b')), true);
  assert.equal(r.verifyNeedle(b, enc('c')), false, 'key must match');
  assert.equal(code(() => r.append(enc('x'), enc('y'), 0)), 'INTERNAL', 'read-only');
  r.close();
  assert.equal(code(() => r.readNeedle(a)), 'CLOSED');
});

test('bad arguments are refused before anything is written', () => {
  const v = VolumeFile.create(fs, join(dir, 'vol-000000.data'), 0, NOW);
  assert.equal(code(() => v.append(new Uint8Array(0), enc('v'), 0)), 'KEY_EMPTY');
  assert.equal(code(() => v.append(new Uint8Array(65536), enc('v'), 0)), 'KEY_TOO_LONG');
  assert.equal(code(() => v.append(enc('k'), enc('v'), -1)), 'BAD_ARGUMENT');
  assert.equal(code(() => v.append(enc('k'), enc('v'), 0, NeedleFlag.Tombstone)), 'BAD_ARGUMENT');
  assert.equal(code(() => v.append(enc('k'), enc('v'), 0, 4)), 'BAD_ARGUMENT');
  assert.equal(code(() => v.reserve(enc('k'), 2 ** 60, 0)), 'VALUE_TOO_LARGE');
  assert.equal(v.tail, 64);
  v.close();
});

test('an address that runs past the end of the file is CORRUPT, never a huge allocation', () => {
  const v = VolumeFile.create(fs, join(dir, 'vol-000000.data'), 0, NOW);
  const a = v.append(enc('k'), enc('v'), 0);
  const lying: NeedleAddress = { ...a, length: 2 ** 40 };
  assert.equal(code(() => v.readNeedle({ ...a, length: 100_000_000 })), 'CORRUPT');
  assert.equal(code(() => v.readValue(lying, 1, 2 ** 39, 500_000_000)), 'CORRUPT');
  assert.equal(code(() => v.readNeedle(lying)), 'VALUE_TOO_LARGE');
  assert.equal(v.verifyNeedle(lying, enc('k')), false);
  v.close();
});

// Region of each part of needle `a` (key 'key-1', value 100 bytes) to damage.
const PARTS: [string, (a: NeedleAddress) => number][] = [
  ['header', (a) => a.offset + 9],
  ['key', (a) => a.offset + 33],
  ['value', (a) => a.offset + 32 + 5 + 50],
  ['trailer', (a) => a.offset + a.length - 2],
];

for (const [part, where] of PARTS) {
  test(`a flipped byte in the ${part}: CHECKSUM_MISMATCH, verify false, scan goes on past it`, () => {
    const path = join(dir, 'vol-000000.data');
    const v = VolumeFile.create(fs, path, 0, NOW);
    const before = v.append(enc('key-0'), bytes(100, 1), 0);
    const a = v.append(enc('key-1'), bytes(100, 2), 0);
    const after = v.append(enc('key-2'), bytes(100, 3), 0);
    v.close();
    flipByte(path, where(a));
    const r = VolumeFile.open(fs, path, 'read');
    assert.equal(code(() => r.readNeedle(a)), 'CHECKSUM_MISMATCH');
    assert.equal(r.verifyNeedle(a, enc('key-1')), false);
    assert.deepEqual(r.readNeedle(before).value, bytes(100, 1));
    assert.deepEqual(r.readNeedle(after).value, bytes(100, 3));
    const scanned = [...r.scan()];
    assert.deepEqual(keysOf(scanned), ['key-0', 'key-2']);
    if (part === 'value' || part === 'trailer') {
      // The header still vouches for the lengths: reported, but invalid.
      assert.deepEqual(scanned.filter((n) => !n.valid).map((n) => n.address), [a]);
    } else {
      // The header CRC fails: these bytes are not a needle at all.
      assert.equal(scanned.length, 2);
    }
    r.close();
  });
}

test('readNeedle into a scratch buffer: views of it when it is long enough, a fresh buffer when not, CRCs checked either way', () => {
  const path = join(dir, 'vol-000000.data');
  const v = VolumeFile.create(fs, path, 0, NOW);
  const a = v.append(enc('key-a'), bytes(300, 1), 0);
  const b = v.append(enc('key-b'), bytes(300, 2), 0);
  v.close();
  const r = VolumeFile.open(fs, path, 'read');
  const scratch = new Uint8Array(a.length + 10).fill(0xee);
  const got = r.readNeedle(a, scratch);
  assert.deepEqual(got.value, bytes(300, 1));
  assert.equal(got.value.buffer, scratch.buffer, 'read into the scratch');
  // The next read into it overwrites it: the caller's to know.
  assert.deepEqual(r.readNeedle(b, scratch).value, bytes(300, 2));
  assert.deepEqual(got.value, bytes(300, 2));
  const short = new Uint8Array(a.length - 1);
  const fresh = r.readNeedle(a, short);
  assert.deepEqual(fresh.value, bytes(300, 1));
  assert.notEqual(fresh.value.buffer, short.buffer, 'too short: a fresh buffer');
  r.close();
  flipByte(path, b.offset + 32 + 5 + 100);
  const damaged = VolumeFile.open(fs, path, 'read');
  assert.equal(code(() => damaged.readNeedle(b, scratch)), 'CHECKSUM_MISMATCH');
  damaged.close();
});

test('canary skipChecksum: a flipped value byte is served (the canary has an effect)', () => {
  const path = join(dir, 'vol-000000.data');
  const v = VolumeFile.create(fs, path, 0, NOW);
  const a = v.append(enc('k'), enc('hello'), 0);
  v.close();
  flipByte(path, a.offset + 33);
  const r = VolumeFile.open(fs, path, 'read');
  assert.equal(code(() => r.readNeedle(a)), 'CHECKSUM_MISMATCH');
  canaries.skipChecksum = true;
  assert.equal(dec(r.readNeedle(a).value), 'Hello');
  assert.equal(r.verifyNeedle(a, enc('k')), true);
  r.close();
});

test('a needle torn at every byte: reopen, earlier needles scan, tail right, new appends read back', () => {
  const src = join(dir, 'full.data');
  const v = VolumeFile.create(fs, src, 0, NOW);
  const a = v.append(enc('a'), enc('one'), 0);
  const b = v.append(enc('bb'), enc('two two'), 0);
  const c = v.append(enc('ccc'), bytes(40, 9), NOW);
  v.close();
  const full = nodeFs.readFileSync(src);
  for (let cut = c.offset; cut < c.offset + c.length; cut++) {
    const path = join(dir, `vol-cut-${cut}.data`);
    nodeFs.writeFileSync(path, full.subarray(0, cut));
    const w = VolumeFile.open(fs, path, 'write');
    assert.deepEqual(keysOf([...w.scan()]), ['a', 'bb'], `cut ${cut}`);
    assert.equal(w.tail, alignUp(cut), `cut ${cut}`);
    const d = w.append(enc('dddd'), enc(`after ${cut}`), 0);
    assert.equal(d.offset, alignUp(cut));
    assert.equal(dec(w.readNeedle(d).value), `after ${cut}`);
    w.close();
    const r = VolumeFile.open(fs, path, 'read');
    assert.deepEqual(keysOf([...r.scan()]), ['a', 'bb', 'dddd'], `cut ${cut}`);
    assert.equal(dec(r.readNeedle(b).value), 'two two');
    assert.equal(dec(r.readNeedle(a).value), 'one');
    r.close();
    nodeFs.unlinkSync(path);
  }
});

test('garbage, zero runs and fake needle magic between needles are stepped over', () => {
  const path = join(dir, 'vol-000000.data');
  const v = VolumeFile.create(fs, path, 0, NOW);
  const a = v.append(enc('a'), enc('first'), 0);
  v.close();
  // 4 KiB of zeros, then noise sprinkled with the needle magic at aligned offsets (headers
  // that look real up to their CRC), then a half header at the very end of the junk.
  const junk = new Uint8Array(4096 + 2048 + 20);
  junk.set(bytes(2048, 77), 4096);
  for (let i = 4096; i <= 4096 + 2048; i += 64) junk.set([0x42, 0x4e, 0x44, 0x4c, 1, 0, 1, 0], i);
  const fd = nodeFs.openSync(path, 'r+');
  nodeFs.writeSync(fd, junk, 0, junk.length, alignUp(a.offset + a.length));
  nodeFs.closeSync(fd);
  const w = VolumeFile.open(fs, path, 'write');
  const b = w.append(enc('b'), bytes(500, 5), 0);
  const c = w.append(enc('c'), enc('third'), 0);
  w.close();
  const r = VolumeFile.open(fs, path, 'read');
  const scanned = [...r.scan()];
  assert.deepEqual(scanned.map((n) => [dec(n.key), n.valid]), [['a', true], ['b', true], ['c', true]]);
  assert.deepEqual(scanned.map((n) => n.address), [a, b, c]);
  assert.deepEqual(r.readNeedle(b).value, bytes(500, 5));
  r.close();
});

test('reserve + stream interleaved with appends: the append lands after the reservation', () => {
  const path = join(dir, 'vol-000000.data');
  const v = VolumeFile.create(fs, path, 0, NOW);
  const value = bytes(10_000, 3);
  const s = v.reserve(enc('blob'), value.length, NOW + 1);
  assert.equal(s.address.offset, 64);
  assert.equal(v.tail, alignUp(64 + needleLength(4, value.length)));
  s.write(value.subarray(0, 4000));
  const x = v.append(enc('x'), enc('in between'), 0);
  assert.ok(x.offset >= s.address.offset + s.address.length);
  s.write(value.subarray(4000, 9999));
  assert.equal(s.written, 9999);
  assert.equal(code(() => s.finish()), 'SIZE_MISMATCH', 'short');
  assert.equal(code(() => s.write(value.subarray(0, 2))), 'SIZE_MISMATCH', 'past the declared length');
  s.write(value.subarray(9999));
  assert.deepEqual(s.finish(), s.address);
  assert.equal(code(() => s.write(enc('more'))), 'BAD_ARGUMENT');
  const y = v.append(enc('y'), enc('after'), 0);
  v.close();
  const r = VolumeFile.open(fs, path, 'read');
  const blob = r.readNeedle(s.address);
  assert.deepEqual([dec(blob.key), blob.expiresAt], ['blob', NOW + 1]);
  assert.deepEqual(blob.value, value);
  assert.equal(dec(r.readNeedle(x).value), 'in between');
  assert.deepEqual([...r.scan()].map((n) => [dec(n.key), n.valid]), [['blob', true], ['x', true], ['y', true]]);
  assert.equal(y.offset, alignUp(x.offset + x.length));
  r.close();
});

test('an aborted stream leaves an invalid needle that scan reports; writes after abort fail', () => {
  for (const lastInFile of [false, true]) {
    const path = join(dir, `vol-abort-${lastInFile}.data`);
    const v = VolumeFile.create(fs, path, 0, NOW);
    const a = v.append(enc('a'), enc('kept'), 0);
    const s = v.reserve(enc('upload'), 5000, 0);
    s.write(bytes(1200, 4));
    const b = lastInFile ? undefined : v.append(enc('b'), enc('also kept'), 0);
    s.abort();
    s.abort();
    assert.equal(code(() => s.write(enc('x'))), 'ABORTED');
    assert.equal(code(() => s.finish()), 'ABORTED');
    const c = v.append(enc('c'), enc('after abort'), 0);
    v.close();
    const r = VolumeFile.open(fs, path, 'read');
    const scanned = [...r.scan()];
    assert.deepEqual(keysOf(scanned), lastInFile ? ['a', 'c'] : ['a', 'b', 'c']);
    assert.deepEqual(scanned.filter((n) => !n.valid).map((n) => n.address), [s.address], `last=${lastInFile}`);
    assert.equal(code(() => r.readNeedle(s.address)), 'CHECKSUM_MISMATCH');
    assert.equal(r.verifyNeedle(s.address, enc('upload')), false);
    assert.equal(dec(r.readNeedle(a).value), 'kept');
    assert.equal(dec(r.readNeedle(c).value), 'after abort');
    if (b !== undefined) assert.equal(dec(r.readNeedle(b).value), 'also kept');
    r.close();
  }
});

test('values over 1 MiB: streamed CRC checks, verify and scan agree, a flip deep inside is found', () => {
  const path = join(dir, 'vol-000000.data');
  const v = VolumeFile.create(fs, path, 0, NOW);
  const big = bytes(5 * 1024 * 1024 + 3, 8);
  const a = v.append(enc('big'), big, 0);
  const s = v.reserve(enc('big2'), big.length, 0);
  for (let i = 0; i < big.length; i += 700_000) s.write(big.subarray(i, Math.min(big.length, i + 700_000)));
  s.finish();
  v.close();
  const r = VolumeFile.open(fs, path, 'read');
  assert.equal(r.verifyNeedle(a, enc('big')), true);
  assert.equal(r.verifyNeedle(s.address, enc('big2')), true);
  assert.deepEqual(r.readNeedle(s.address).value, big);
  r.close();
  flipByte(path, a.offset + 36 + 4 * 1024 * 1024 + 11);
  const r2 = VolumeFile.open(fs, path, 'read');
  assert.equal(r2.verifyNeedle(a, enc('big')), false);
  assert.deepEqual([...r2.scan()].map((n) => [dec(n.key), n.valid]), [['big', false], ['big2', true]]);
  assert.deepEqual([...r2.scan({ verifyValues: false })].map((n) => [dec(n.key), n.valid]), [['big', true], ['big2', true]]);
  r2.close();
});

/** Wraps NodeFs so a test can make fdatasync fail. */
class FailingSyncFs implements Fs {
  private readonly inner = new NodeFs();
  failSync = false;
  syncs = 0;
  open(path: string, mode: OpenMode): FileHandle {
    const h = this.inner.open(path, mode);
    const outer = this; // eslint-disable-line @typescript-eslint/no-this-alias
    return {
      path: h.path,
      read: (b, p) => h.read(b, p),
      write: (b, p) => h.write(b, p),
      sync: () => {
        outer.syncs++;
        if (outer.failSync) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        h.sync();
      },
      truncate: (n) => h.truncate(n),
      size: () => h.size(),
      close: () => h.close(),
    };
  }
  exists(p: string): boolean { return this.inner.exists(p); }
  readdir(p: string): string[] { return this.inner.readdir(p); }
  mkdir(p: string): void { this.inner.mkdir(p); }
  rename(a: string, b: string): void { this.inner.rename(a, b); }
  unlink(p: string): void { this.inner.unlink(p); }
  syncDir(p: string): void { this.inner.syncDir(p); }
  readFile(p: string): Uint8Array { return this.inner.readFile(p); }
}

test('a failed fsync fences the volume: later writes and syncs fail, reads still work', () => {
  const ffs = new FailingSyncFs();
  const v = VolumeFile.create(ffs, join(dir, 'vol-000000.data'), 0, NOW);
  const a = v.append(enc('a'), enc('x'), 0);
  ffs.failSync = true;
  assert.equal(code(() => v.sync()), 'IO_ERROR');
  ffs.failSync = false;
  assert.equal(code(() => v.sync()), 'IO_ERROR', 'never retry-and-succeed');
  assert.equal(code(() => v.append(enc('b'), enc('y'), 0)), 'IO_ERROR');
  assert.equal(code(() => v.reserve(enc('b'), 1, 0)), 'IO_ERROR');
  assert.equal(dec(v.readNeedle(a).value), 'x');
  v.close();
});

test('canary skipFsync: sync() does not reach the file', () => {
  const ffs = new FailingSyncFs();
  const v = VolumeFile.create(ffs, join(dir, 'vol-000000.data'), 0, NOW);
  v.append(enc('a'), enc('x'), 0);
  const before = ffs.syncs;
  v.sync();
  assert.equal(ffs.syncs, before + 1);
  canaries.skipFsync = true;
  v.sync();
  assert.equal(ffs.syncs, before + 1);
  v.close();
});
