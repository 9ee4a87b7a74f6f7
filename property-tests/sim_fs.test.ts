// Unit tests of SimFs (property-tests/sim_fs.ts): the crash tests are only as good as the
// simulated file system under them, so each durability rule is pinned here: what a sync
// makes durable, what a directory sync makes durable, what each crash mode may keep, and
// that nothing from before a crash can be used after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimCrash, SimFs, mulberry32, SECTOR_SIZE, type CrashMode } from './sim_fs.js';
import { fsErrorCode } from '../src/runtime/fs.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function text(fs: SimFs, path: string): string {
  return dec.decode(fs.readFile(path));
}

/** A data dir with a durable file `/d/f` holding `content`. */
function withDurableFile(content: string): SimFs {
  const fs = new SimFs();
  fs.mkdir('/d');
  const h = fs.open('/d/f', 'create');
  h.write(enc.encode(content), 0);
  h.sync();
  h.close();
  fs.syncDir('/d');
  return fs;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return fsErrorCode(err);
  }
  return undefined;
}

test('reads see pending writes; an unsynced write is lost on drop, a synced one kept', () => {
  const fs = withDurableFile('durable');
  const h = fs.open('/d/f', 'write');
  h.write(enc.encode('PENDING'), 0);
  assert.equal(text(fs, '/d/f'), 'PENDING');
  fs.crash('drop', mulberry32(1));
  assert.equal(text(fs, '/d/f'), 'durable');

  const h2 = fs.open('/d/f', 'write');
  h2.write(enc.encode('SYNCED!'), 0);
  h2.sync();
  fs.crash('drop', mulberry32(2));
  assert.equal(text(fs, '/d/f'), 'SYNCED!');
  assert.equal(h.path, '/d/f');
});

test('a synced file whose directory entry was never synced vanishes on crash', () => {
  const fs = new SimFs();
  fs.mkdir('/d');
  const h = fs.open('/d/new', 'create');
  h.write(enc.encode('data'), 0);
  h.sync();
  assert.equal(fs.exists('/d/new'), true);
  fs.crash('drop', mulberry32(3));
  assert.equal(fs.exists('/d/new'), false);
  assert.deepEqual(fs.readdir('/d'), []);
});

test('rename is not durable without syncDir: the old name and old bytes come back', () => {
  const fs = withDurableFile('old');
  const t = fs.open('/d/f.tmp', 'create');
  t.write(enc.encode('new'), 0);
  t.sync();
  fs.rename('/d/f.tmp', '/d/f');
  assert.equal(text(fs, '/d/f'), 'new');
  assert.deepEqual(fs.readdir('/d'), ['f']);
  fs.crash('drop', mulberry32(4));
  assert.equal(text(fs, '/d/f'), 'old');
  assert.deepEqual(fs.readdir('/d'), ['f']);
});

test('rename then syncDir is durable, and the file content comes with its own sync', () => {
  const fs = withDurableFile('old');
  const t = fs.open('/d/f.tmp', 'create');
  t.write(enc.encode('new'), 0);
  t.sync();
  fs.rename('/d/f.tmp', '/d/f');
  fs.syncDir('/d');
  fs.crash('drop', mulberry32(5));
  assert.equal(text(fs, '/d/f'), 'new');
  assert.deepEqual(fs.readdir('/d'), ['f']);
});

test('rename durable but content never synced: the name survives with empty content', () => {
  const fs = withDurableFile('old');
  const t = fs.open('/d/f.tmp', 'create');
  t.write(enc.encode('new'), 0);
  fs.rename('/d/f.tmp', '/d/f');
  fs.syncDir('/d');
  fs.crash('drop', mulberry32(6));
  assert.equal(fs.readFile('/d/f').length, 0);
});

test('unlink is not durable without syncDir', () => {
  const fs = withDurableFile('keep');
  fs.unlink('/d/f');
  assert.equal(fs.exists('/d/f'), false);
  fs.crash('drop', mulberry32(7));
  assert.equal(text(fs, '/d/f'), 'keep');
  fs.unlink('/d/f');
  fs.syncDir('/d');
  fs.crash('drop', mulberry32(8));
  assert.equal(fs.exists('/d/f'), false);
});

test('sync of one file does not make another file durable', () => {
  const fs = withDurableFile('');
  const a = fs.open('/d/f', 'write');
  const b = fs.open('/d/g', 'create');
  fs.syncDir('/d');
  a.write(enc.encode('A'), 0);
  b.write(enc.encode('B'), 0);
  b.sync();
  fs.crash('drop', mulberry32(9));
  assert.equal(text(fs, '/d/f'), '');
  assert.equal(text(fs, '/d/g'), 'B');
});

/** A durable empty file with `n` pending one-byte appends 'a', 'b', 'c'... */
function pendingAppends(n: number): SimFs {
  const fs = withDurableFile('');
  const h = fs.open('/d/f', 'write');
  for (let i = 0; i < n; i++) h.write(enc.encode(String.fromCharCode(97 + i)), i);
  return fs;
}

test('prefix mode keeps a prefix of the pending writes, and over seeds every length', () => {
  const seen = new Set<string>();
  for (let seed = 0; seed < 200; seed++) {
    const fs = pendingAppends(4);
    fs.crash('prefix', mulberry32(seed));
    const got = text(fs, '/d/f');
    assert.ok('abcd'.startsWith(got), `not a prefix: ${got}`);
    seen.add(got);
  }
  assert.deepEqual([...seen].sort(), ['', 'a', 'ab', 'abc', 'abcd']);
});

test('torn mode keeps a prefix of the ops and tears the next write at a byte', () => {
  const lengths = new Set<number>();
  const full = 'x'.repeat(1000);
  for (let seed = 0; seed < 200; seed++) {
    const fs = withDurableFile('');
    const h = fs.open('/d/f', 'write');
    h.write(enc.encode(full), 0);
    const report = fs.crash('torn', mulberry32(seed));
    const got = text(fs, '/d/f');
    assert.ok(full.startsWith(got));
    assert.ok(got.length < full.length, 'a torn write never lands whole');
    assert.equal(report.files[0]?.torn, true);
    lengths.add(got.length);
  }
  assert.ok(lengths.size > 50, `tears land at many bytes (${lengths.size} distinct)`);
});

test('torn mode never reorders: a later write is never kept without the earlier ones', () => {
  for (let seed = 0; seed < 200; seed++) {
    const fs = pendingAppends(5);
    fs.crash('torn', mulberry32(seed));
    assert.ok('abcde'.startsWith(text(fs, '/d/f')));
  }
});

test('subset-garbage keeps subsets (holes allowed) and garbles only pending bytes', () => {
  const durable = 'D'.repeat(SECTOR_SIZE * 4);
  let holes = 0;
  let garbled = 0;
  for (let seed = 0; seed < 300; seed++) {
    const fs = withDurableFile(durable);
    const h = fs.open('/d/f', 'write');
    // Three pending writes inside sectors 1..3, each straddling a sector boundary.
    h.write(enc.encode('a'.repeat(100)), SECTOR_SIZE - 50);
    h.write(enc.encode('b'.repeat(100)), 2 * SECTOR_SIZE - 50);
    h.write(enc.encode('c'.repeat(100)), 3 * SECTOR_SIZE - 50);
    const report = fs.crash('subset-garbage', mulberry32(seed));
    const got = fs.readFile('/d/f');
    assert.equal(got.length, durable.length);
    const regions = [SECTOR_SIZE - 50, 2 * SECTOR_SIZE - 50, 3 * SECTOR_SIZE - 50];
    const inPending = (i: number): boolean => regions.some((r) => i >= r && i < r + 100);
    for (let i = 0; i < got.length; i++) {
      if (!inPending(i)) assert.equal(got[i], 68, `durable byte ${i} changed (seed ${seed})`);
    }
    const kept = regions.map((r) => got.subarray(r, r + 100).some((b) => b !== 68));
    if (kept[1] === false && (kept[0] === true || kept[2] === true)) holes++;
    garbled += report.files[0]?.garbledSectors ?? 0;
  }
  assert.ok(holes > 10, `subsets with holes happen (${holes})`);
  assert.ok(garbled > 50, `garbage happens (${garbled} sectors)`);
});

test('subset-garbage produces each flavor of garbage: random, zeros, a flipped bit when asked', () => {
  const plain = garbageFlavors('power-loss');
  assert.ok(plain.zeros > 5 && plain.random > 5 && plain.oneBit === 0, JSON.stringify(plain));
  const flips = garbageFlavors('with-bitflips');
  assert.ok(flips.zeros > 5 && flips.oneBit > 5 && flips.random > 5, JSON.stringify(flips));
});

test('bitflipsIn spares the files it excludes', () => {
  for (let seed = 0; seed < 200; seed++) {
    const fs = new SimFs({ garbage: 'with-bitflips', bitflipsIn: (path) => !path.endsWith('/LOCK') });
    fs.mkdir('/d');
    const h = fs.open('/d/LOCK', 'create');
    fs.syncDir('/d');
    h.write(new Uint8Array(64).fill(0x55), 0);
    fs.crash('subset-garbage', mulberry32(seed));
    let diffBits = 0;
    for (const b of fs.readFile('/d/LOCK')) diffBits += popcount(b ^ 0x55);
    assert.notEqual(diffBits, 1, `seed ${seed}: a bit flipped in an excluded file`);
  }
});

/** Counts, over seeds, how a 64-byte pending write of 0x55 comes out of subset-garbage. */
function garbageFlavors(garbage: 'power-loss' | 'with-bitflips'): { zeros: number; oneBit: number; random: number } {
  let zeros = 0;
  let oneBit = 0;
  let random = 0;
  for (let seed = 0; seed < 300; seed++) {
    const fs = new SimFs({ garbage });
    fs.mkdir('/d');
    fs.open('/d/f', 'create').sync();
    fs.syncDir('/d');
    const h = fs.open('/d/f', 'write');
    h.write(new Uint8Array(64).fill(0x55), 0);
    fs.crash('subset-garbage', mulberry32(seed));
    const got = fs.readFile('/d/f');
    if (got.length === 0) continue;
    let diffBits = 0;
    for (const b of got) diffBits += popcount(b ^ 0x55);
    if (got.every((b) => b === 0)) zeros++;
    else if (diffBits === 1) oneBit++;
    else if (diffBits > 8) random++;
  }
  return { zeros, oneBit, random };
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v >>= 1) n += v & 1;
  return n;
}

test('pending truncates: visible at once, lost on drop, durable after sync', () => {
  const fs = withDurableFile('0123456789');
  const h = fs.open('/d/f', 'write');
  h.truncate(4);
  assert.equal(h.size(), 4);
  assert.equal(text(fs, '/d/f'), '0123');
  fs.crash('drop', mulberry32(10));
  assert.equal(text(fs, '/d/f'), '0123456789');
  const h2 = fs.open('/d/f', 'write');
  h2.truncate(3);
  h2.write(enc.encode('Z'), 5);
  assert.deepEqual([...fs.readFile('/d/f')], [48, 49, 50, 0, 0, 90]);
  h2.sync();
  fs.crash('drop', mulberry32(11));
  assert.deepEqual([...fs.readFile('/d/f')], [48, 49, 50, 0, 0, 90]);
});

test('handles are invalid after a crash, whatever the mode', () => {
  for (const mode of ['drop', 'prefix', 'subset-garbage', 'torn', 'random'] as CrashMode[]) {
    const fs = withDurableFile('x');
    const h = fs.open('/d/f', 'write');
    fs.crash(mode, mulberry32(12));
    assert.equal(codeOf(() => h.read(new Uint8Array(1), 0)), 'EBADF');
    assert.equal(codeOf(() => h.write(enc.encode('y'), 0)), 'EBADF');
    assert.equal(codeOf(() => h.sync()), 'EBADF');
    assert.equal(codeOf(() => h.size()), 'EBADF');
    assert.equal(text(fs, '/d/f'), 'x');
  }
});

test('a handle follows its inode across rename and unlink, as a descriptor does', () => {
  const fs = withDurableFile('abc');
  const h = fs.open('/d/f', 'write');
  fs.rename('/d/f', '/d/g');
  h.write(enc.encode('X'), 0);
  assert.equal(text(fs, '/d/g'), 'Xbc');
  fs.unlink('/d/g');
  h.write(enc.encode('Y'), 1);
  const buf = new Uint8Array(3);
  assert.equal(h.read(buf, 0), 3);
  assert.equal(dec.decode(buf), 'XYc');
  h.close();
  assert.equal(codeOf(() => h.read(buf, 0)), 'EBADF');
});

test('open modes and errors: read-only, missing files, exclusive, directories', () => {
  const fs = withDurableFile('abc');
  assert.equal(codeOf(() => fs.open('/d/missing', 'read')), 'ENOENT');
  assert.equal(codeOf(() => fs.open('/d/missing', 'write')), 'ENOENT');
  assert.equal(codeOf(() => fs.open('/d/f', 'exclusive')), 'EEXIST');
  assert.equal(codeOf(() => fs.open('/d', 'read')), 'EISDIR');
  assert.equal(codeOf(() => fs.open('/nodir/f', 'create')), 'ENOENT');
  assert.equal(codeOf(() => fs.readFile('/d/missing')), 'ENOENT');
  assert.equal(codeOf(() => fs.unlink('/d/missing')), 'ENOENT');
  assert.equal(codeOf(() => fs.rename('/d/missing', '/d/x')), 'ENOENT');
  const r = fs.open('/d/f', 'read');
  assert.equal(codeOf(() => r.write(enc.encode('x'), 0)), 'EBADF');
  const c = fs.open('/d/f', 'create');
  assert.equal(c.size(), 3, 'create never truncates');
  const x = fs.open('/d/x', 'exclusive');
  assert.equal(x.size(), 0);
  assert.deepEqual(fs.readdir('/d'), ['f', 'x']);
  assert.deepEqual(fs.readdir('/nowhere'), []);
  assert.equal(codeOf(() => fs.syncDir('/nowhere')), 'ENOENT');
});

test('reads past the end are short; writes past the end zero-fill the gap', () => {
  const fs = withDurableFile('ab');
  const h = fs.open('/d/f', 'write');
  const buf = new Uint8Array(10);
  assert.equal(h.read(buf, 1), 1);
  assert.equal(h.read(buf, 5), 0);
  h.write(enc.encode('z'), 5);
  assert.deepEqual([...fs.readFile('/d/f')], [97, 98, 0, 0, 0, 122]);
});

test('mkdir is recursive and durable by default; strict mode needs syncDir of the parent', () => {
  const fs = new SimFs();
  fs.mkdir('/a/b/c');
  fs.mkdir('/a/b/c');
  assert.deepEqual(fs.readdir('/a/b'), ['c']);
  fs.crash('drop', mulberry32(13));
  assert.equal(fs.exists('/a/b/c'), true);

  const strict = new SimFs({ durableMkdir: false });
  strict.mkdir('/a');
  strict.syncDir('/');
  strict.mkdir('/a/v');
  const h = strict.open('/a/v/f', 'create');
  h.sync();
  strict.syncDir('/a/v');
  strict.crash('drop', mulberry32(14));
  assert.equal(strict.exists('/a'), true);
  assert.equal(strict.exists('/a/v'), false, 'the entry of v in /a was never synced');
  assert.equal(strict.exists('/a/v/f'), false);
});

test('failAfter crash: the n-th next op throws SimCrash, then every op until crash()', () => {
  const fs = withDurableFile('abc');
  const h = fs.open('/d/f', 'write');
  const before = fs.opCount;
  fs.failAfter(3, 'crash');
  h.write(enc.encode('1'), 0);
  h.write(enc.encode('2'), 1);
  assert.throws(() => h.sync(), SimCrash);
  assert.equal(fs.isDead, true);
  assert.equal(fs.opCount, before + 3);
  assert.throws(() => fs.exists('/d/f'), SimCrash);
  assert.throws(() => fs.readFile('/d/f'), SimCrash);
  assert.throws(() => fs.open('/d/g', 'create'), SimCrash);
  fs.crash('drop', mulberry32(15));
  assert.equal(fs.isDead, false);
  assert.equal(text(fs, '/d/f'), 'abc', 'the sync never happened');
  assert.equal(fs.exists('/d/g'), false);
});

test('failAfter with a filter counts only matching ops', () => {
  const fs = withDurableFile('abc');
  const h = fs.open('/d/f', 'write');
  fs.failAfter(2, 'crash', { match: (op) => op.op === 'sync' });
  h.write(enc.encode('1'), 0);
  h.sync();
  h.write(enc.encode('2'), 1);
  h.write(enc.encode('3'), 2);
  assert.throws(() => h.sync(), SimCrash);
  fs.crash('drop', mulberry32(16));
  assert.equal(text(fs, '/d/f'), '1bc');
});

test('failAfter eio/enospc: once by default, every time when persistent, until disarm', () => {
  const fs = withDurableFile('abc');
  const h = fs.open('/d/f', 'write');
  fs.failAfter(1, 'eio');
  assert.equal(codeOf(() => h.read(new Uint8Array(1), 0)), 'EIO');
  assert.equal(h.read(new Uint8Array(1), 0), 1, 'once: the next op works');
  assert.equal(fs.isDead, false);

  fs.failAfter(2, 'enospc', { persistent: true, match: (op) => op.op === 'write' });
  h.write(enc.encode('x'), 0);
  assert.equal(codeOf(() => h.write(enc.encode('y'), 0)), 'ENOSPC');
  assert.equal(codeOf(() => h.write(enc.encode('z'), 0)), 'ENOSPC');
  assert.equal(h.size(), 3, 'non-matching ops still work');
  assert.equal(fs.faultFired, true);
  fs.disarm();
  h.write(enc.encode('w'), 0);
  assert.equal(text(fs, '/d/f'), 'wbc');
  assert.throws(() => fs.failAfter(0, 'eio'), RangeError);
});

test('the same seed gives the same crash; clone and snapshot copy the whole state', () => {
  const build = (): SimFs => {
    const fs = withDurableFile('');
    const h = fs.open('/d/f', 'write');
    for (let i = 0; i < 20; i++) h.write(new Uint8Array(700).fill(i), i * 700);
    const g = fs.open('/d/g', 'create');
    g.write(enc.encode('unsynced dir entry'), 0);
    return fs;
  };
  const a = build();
  const b = a.clone();
  assert.deepEqual(a.snapshot(), b.snapshot());
  assert.deepEqual(a.snapshot('durable'), b.snapshot('durable'));
  assert.notDeepEqual(a.snapshot(), a.snapshot('durable'));
  assert.deepEqual(a.pendingFiles(), ['/d/f', '/d/g']);
  a.crash('random', mulberry32(42));
  b.crash('random', mulberry32(42));
  assert.deepEqual(a.snapshot(), b.snapshot());
  const c = build();
  c.crash('random', mulberry32(43));
  const d = build();
  d.crash('random', mulberry32(44));
  assert.notDeepEqual(c.snapshot(), d.snapshot(), 'different seeds, different outcomes');
});

test('a clone is independent of its original', () => {
  const a = withDurableFile('abc');
  const b = a.clone();
  const h = b.open('/d/f', 'write');
  h.write(enc.encode('X'), 0);
  b.unlink('/d/f');
  assert.equal(text(a, '/d/f'), 'abc');
  assert.equal(b.exists('/d/f'), false);
});

test('after crash with nothing pending, a second crash changes nothing', () => {
  const fs = pendingAppends(6);
  fs.crash('random', mulberry32(17));
  const once = fs.snapshot();
  assert.deepEqual(fs.snapshot('durable'), once);
  fs.crash('random', mulberry32(18));
  assert.deepEqual(fs.snapshot(), once);
});
