// SimFs: an in-memory `Fs` (src/runtime/fs.ts) that simulates power loss, for the crash tests
// (../shared/TESTING.md, plan items 0 and 1). It owns, per file (an inode), the DURABLE image
// and the list of PENDING writes/truncates since that inode's last sync(), and per directory
// the DURABLE entry map (name -> inode) and the CURRENT one.
//
// Invariants:
// - Reads see the current state: durable image + every pending op applied in order.
// - sync() (fdatasync) folds one inode's pending ops into its durable image; it does NOT make
//   the file's directory entry durable. syncDir(dir) makes that directory's entries durable.
// - create/rename/unlink change the current directory map only. Renaming over a name or
//   unlinking it leaves the old inode's bytes alone: a crash before syncDir brings the old
//   name -> old inode back, as a real file system does.
// - crash(mode, rng) reverts every directory to its durable map, decides per inode which
//   pending ops reached the disk (see CrashMode), invalidates every open handle, and forgets
//   inodes that no durable entry names. All randomness comes from the rng it is given, so a
//   seed replays a crash exactly.
// - Garbage never touches bytes outside the pending write it belongs to: we assume "powersafe
//   overwrite" (a torn sector write does not corrupt the synced bytes that share the sector),
//   as SQLite, LevelDB and RocksDB do.
// - mkdir is durable at once by default (ext4 and xfs journal it before any later fsync of a
//   file inside completes); `new SimFs({ durableMkdir: false })` makes it wait for syncDir of
//   the parent, for tests that want to be stricter.
// - Fault hooks (failAfter) fire on the n-th next file operation. A 'crash' fault kills the
//   "machine": that call and every later one throw SimCrash until crash() is called.
import { posix } from 'node:path';
import type { FileHandle, Fs, OpenMode } from '../src/runtime/fs.js';

// ---------------------------------------------------------------------------------------
// Seeded randomness

/** A source of floats in [0, 1), like Math.random, but seeded. */
export type Rng = () => number;

/** mulberry32: tiny, fast, good enough to pick crash outcomes; same seed, same sequence. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, n). */
export function randInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

// ---------------------------------------------------------------------------------------
// Public types

/**
 * What happens, at a crash, to the writes and truncates not yet synced (per inode):
 * - drop: all lost;
 * - prefix: a random prefix kept (in issue order);
 * - subset-garbage: a random subset kept; some kept writes get some of their 512-byte sectors
 *   replaced by garbage (random bytes or zeros; also single flipped bits if asked, see SimFsOptions);
 * - torn: a prefix kept and the next write torn at a random byte;
 * - random: one of the above, picked per inode.
 */
export type CrashMode = 'drop' | 'prefix' | 'subset-garbage' | 'torn' | 'random';
export const CRASH_MODES: readonly CrashMode[] = ['drop', 'prefix', 'subset-garbage', 'torn', 'random'];
const CONCRETE_MODES: readonly CrashMode[] = ['drop', 'prefix', 'subset-garbage', 'torn'];

export const SECTOR_SIZE = 512;

export type FaultKind = 'crash' | 'eio' | 'enospc';

export type OpName =
  | 'open'
  | 'exists'
  | 'readdir'
  | 'mkdir'
  | 'rename'
  | 'unlink'
  | 'syncDir'
  | 'readFile'
  | 'read'
  | 'write'
  | 'sync'
  | 'truncate'
  | 'size'
  | 'close';

/** One file operation, as seen by fault filters. `path` is the normalized path. */
export interface OpInfo {
  op: OpName;
  path: string;
}

export interface FaultOptions {
  /** eio/enospc only: keep failing every matching op until disarm() (default: once). */
  persistent?: boolean;
  /** Only ops for which this answers true count and can fail (default: every op). */
  match?: (op: OpInfo) => boolean;
}

export interface SimFsOptions {
  /** mkdir durable at once (default true); false: durable only after syncDir(parent). */
  durableMkdir?: boolean;
  /**
   * Garbage in 'subset-garbage' crashes: random bytes or zeros (default: what a power loss
   * mid-sector can leave), or also single flipped bits ('with-bitflips': media corruption,
   * for tests of checksums; it also hits files that carry no checksum by design, like LOCK).
   */
  garbage?: 'power-loss' | 'with-bitflips';
  /** With bitflips: which files may get them (default all), e.g. only checksummed ones. */
  bitflipsIn?: (path: string) => boolean;
}

/** What one crash did to one inode's pending ops, for debugging a failing seed. */
export interface CrashFileReport {
  paths: string[];
  mode: CrashMode;
  pending: number;
  kept: number;
  torn: boolean;
  garbledSectors: number;
}

export interface CrashReport {
  mode: CrashMode;
  files: CrashFileReport[];
}

/** Thrown by every call after a 'crash' fault fires: the simulated machine lost power. */
export class SimCrash extends Error {
  readonly code = 'ESIMCRASH';
  constructor(message = 'simulated power loss') {
    super(message);
    this.name = 'SimCrash';
  }
}

/** A file-system error with an errno-like code, as node:fs throws. */
export class SimFsError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
    this.name = 'SimFsError';
  }
}

/** A whole tree: path -> bytes for files, 'dir' for directories (root excluded). */
export type FsSnapshot = Map<string, Uint8Array | 'dir'>;

// ---------------------------------------------------------------------------------------
// File images

/** A growable byte array; bytes past `length` are always zero. */
class Image {
  constructor(
    private buf: Uint8Array = new Uint8Array(0),
    public length = 0,
  ) {}

  write(pos: number, data: Uint8Array): void {
    const end = pos + data.length;
    this.ensure(end);
    this.buf.set(data, pos);
    if (end > this.length) this.length = end;
  }

  truncate(size: number): void {
    if (size < this.length) this.buf.fill(0, size, this.length);
    else this.ensure(size);
    this.length = size;
  }

  read(out: Uint8Array, pos: number): number {
    if (pos >= this.length) return 0;
    const n = Math.min(out.length, this.length - pos);
    out.set(this.buf.subarray(pos, pos + n));
    return n;
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  copy(): Image {
    return new Image(this.buf.slice(0, Math.max(this.length, 0)), this.length);
  }

  private ensure(size: number): void {
    if (size <= this.buf.length) return;
    const next = new Uint8Array(Math.max(size, this.buf.length * 2, 256));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

type Pending = { kind: 'write'; pos: number; data: Uint8Array } | { kind: 'truncate'; size: number };

interface Inode {
  id: number;
  durable: Image;
  current: Image;
  pending: Pending[];
}

type Entry = { kind: 'file'; ino: number } | { kind: 'dir' };

interface DirNode {
  durable: Map<string, Entry>;
  current: Map<string, Entry>;
}

function applyOp(image: Image, op: Pending): void {
  if (op.kind === 'write') image.write(op.pos, op.data);
  else image.truncate(op.size);
}

function normalize(path: string): string {
  const p = posix.resolve('/', path);
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

// ---------------------------------------------------------------------------------------
// Crash outcomes of one inode's pending ops (pure given the rng)

interface Outcome {
  kept: Pending[];
  torn: boolean;
  garbledSectors: number;
}

function keepPrefix(ops: Pending[], rng: Rng): Outcome {
  return { kept: ops.slice(0, randInt(rng, ops.length + 1)), torn: false, garbledSectors: 0 };
}

/** A prefix kept, then the next op torn: a write keeps its first t bytes, t in [0, len). */
function keepTorn(ops: Pending[], rng: Rng): Outcome {
  const k = randInt(rng, ops.length);
  const kept = ops.slice(0, k);
  const next = ops[k];
  if (next !== undefined && next.kind === 'write' && next.data.length > 0) {
    const t = randInt(rng, next.data.length);
    if (t > 0) kept.push({ kind: 'write', pos: next.pos, data: next.data.subarray(0, t) });
    return { kept, torn: true, garbledSectors: 0 };
  }
  return { kept, torn: false, garbledSectors: 0 };
}

/** Garbage for the bytes of one sector: random bytes, zeros, or (bitflips) one flipped bit. */
function garble(bytes: Uint8Array, rng: Rng, bitflips: boolean): void {
  // With bitflips, half the garbage is a single flipped bit: the case only a checksum catches.
  const flavor = bitflips ? (rng() < 0.5 ? 2 : randInt(rng, 2)) : randInt(rng, 2);
  if (flavor === 0) {
    for (let i = 0; i < bytes.length; i++) bytes[i] = randInt(rng, 256);
  } else if (flavor === 1) {
    bytes.fill(0);
  } else {
    const i = randInt(rng, bytes.length);
    bytes[i] = (bytes[i] ?? 0) ^ (1 << randInt(rng, 8));
  }
}

/** Garbles at least one of the sectors that a write touches (only the write's own bytes). */
function garbleWrite(op: { pos: number; data: Uint8Array }, rng: Rng, bitflips: boolean): { data: Uint8Array; sectors: number } {
  const data = op.data.slice();
  const first = Math.floor(op.pos / SECTOR_SIZE);
  const last = Math.floor((op.pos + data.length - 1) / SECTOR_SIZE);
  const forced = first + randInt(rng, last - first + 1);
  let sectors = 0;
  for (let s = first; s <= last; s++) {
    if (s !== forced && rng() >= 0.5) continue;
    const from = Math.max(s * SECTOR_SIZE, op.pos) - op.pos;
    const to = Math.min((s + 1) * SECTOR_SIZE, op.pos + data.length) - op.pos;
    garble(data.subarray(from, to), rng, bitflips);
    sectors++;
  }
  return { data, sectors };
}

function keepSubsetGarbage(ops: Pending[], rng: Rng, bitflips: boolean): Outcome {
  const kept: Pending[] = [];
  let garbledSectors = 0;
  for (const op of ops) {
    if (rng() < 0.5) continue;
    if (op.kind === 'write' && op.data.length > 0 && rng() < 0.5) {
      const g = garbleWrite(op, rng, bitflips);
      garbledSectors += g.sectors;
      kept.push({ kind: 'write', pos: op.pos, data: g.data });
    } else {
      kept.push(op);
    }
  }
  return { kept, torn: false, garbledSectors };
}

function outcomeOf(mode: CrashMode, ops: Pending[], rng: Rng, bitflips: boolean): Outcome {
  switch (mode) {
    case 'drop':
      return { kept: [], torn: false, garbledSectors: 0 };
    case 'prefix':
      return keepPrefix(ops, rng);
    case 'torn':
      return keepTorn(ops, rng);
    case 'subset-garbage':
      return keepSubsetGarbage(ops, rng, bitflips);
    case 'random':
      throw new Error('random is resolved before outcomeOf');
  }
}

// ---------------------------------------------------------------------------------------
// Faults

interface Fault {
  remaining: number;
  kind: FaultKind;
  persistent: boolean;
  match: ((op: OpInfo) => boolean) | undefined;
  fired: boolean;
}

function faultError(kind: FaultKind, info: OpInfo): Error {
  if (kind === 'crash') return new SimCrash(`simulated power loss at ${info.op} ${info.path}`);
  const code = kind === 'eio' ? 'EIO' : 'ENOSPC';
  return new SimFsError(code, `injected fault at ${info.op} ${info.path}`);
}

// ---------------------------------------------------------------------------------------
// The file system

export class SimFs implements Fs {
  private inodes = new Map<number, Inode>();
  private dirs = new Map<string, DirNode>();
  private nextIno = 1;
  private fault: Fault | undefined;
  private dead = false;
  /** Bumped by every crash; a handle from an older epoch is invalid. */
  private epoch = 0;
  private ops = 0;
  private crashes = 0;
  private readonly durableMkdir: boolean;
  private readonly bitflips: boolean;

  constructor(private readonly options: SimFsOptions = {}) {
    this.durableMkdir = options.durableMkdir ?? true;
    this.bitflips = options.garbage === 'with-bitflips';
    this.dirs.set('/', { durable: new Map(), current: new Map() });
  }

  /** File operations attempted so far (every Fs and FileHandle call, including failed ones). */
  get opCount(): number {
    return this.ops;
  }

  /** How many times crash() ran. */
  get crashCount(): number {
    return this.crashes;
  }

  /** True after a 'crash' fault fired and until crash() is called. */
  get isDead(): boolean {
    return this.dead;
  }

  /** True when an armed fault has fired at least once (for "did my fault hit?" checks). */
  get faultFired(): boolean {
    return this.fault?.fired ?? false;
  }

  /**
   * Arms a fault: the n-th next matching file operation (n >= 1; 1 = the very next) throws.
   * 'crash' throws SimCrash there and on every later call until crash(); 'eio'/'enospc'
   * throw an error with that code, once or (persistent) on every later matching op.
   */
  failAfter(n: number, kind: FaultKind, options: FaultOptions = {}): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`failAfter: n must be an integer >= 1, got ${n}`);
    this.fault = { remaining: n, kind, persistent: options.persistent ?? false, match: options.match, fired: false };
  }

  /** Removes an armed fault (does not revive a dead machine: that takes crash()). */
  disarm(): void {
    this.fault = undefined;
  }

  // --- Fs -----------------------------------------------------------------------------

  open(path: string, mode: OpenMode): FileHandle {
    const p = this.enter('open', path);
    const dir = this.parentDir(p);
    const name = posix.basename(p);
    let entry = dir.current.get(name);
    if (entry?.kind === 'dir') throw new SimFsError('EISDIR', `open ${p}: is a directory`);
    if (entry !== undefined && mode === 'exclusive') throw new SimFsError('EEXIST', `open ${p}: exists`);
    if (entry === undefined) {
      if (mode === 'read' || mode === 'write') throw new SimFsError('ENOENT', `open ${p}: no such file`);
      entry = { kind: 'file', ino: this.newInode().id };
      dir.current.set(name, entry);
    }
    return new SimHandle(this, p, entry.ino, mode !== 'read', this.epoch);
  }

  exists(path: string): boolean {
    const p = this.enter('exists', path);
    return this.lookup(p) !== undefined;
  }

  readdir(path: string): string[] {
    const p = this.enter('readdir', path);
    const dir = this.dirs.get(p);
    return dir === undefined ? [] : [...dir.current.keys()].sort();
  }

  mkdir(path: string): void {
    const p = this.enter('mkdir', path);
    this.mkdirs(p);
  }

  rename(from: string, to: string): void {
    const src = this.enter('rename', from);
    const dst = normalize(to);
    const srcDir = this.parentDir(src);
    const entry = srcDir.current.get(posix.basename(src));
    if (entry === undefined) throw new SimFsError('ENOENT', `rename ${src}: no such file`);
    if (entry.kind === 'dir') throw new SimFsError('ENOTSUP', `rename ${src}: SimFs renames files only`);
    const dstDir = this.parentDir(dst);
    if (dstDir.current.get(posix.basename(dst))?.kind === 'dir') {
      throw new SimFsError('EISDIR', `rename to ${dst}: is a directory`);
    }
    if (src === dst) return;
    srcDir.current.delete(posix.basename(src));
    dstDir.current.set(posix.basename(dst), entry);
  }

  unlink(path: string): void {
    const p = this.enter('unlink', path);
    const dir = this.parentDir(p);
    const entry = dir.current.get(posix.basename(p));
    if (entry === undefined) throw new SimFsError('ENOENT', `unlink ${p}: no such file`);
    if (entry.kind === 'dir') throw new SimFsError('EISDIR', `unlink ${p}: is a directory`);
    dir.current.delete(posix.basename(p));
  }

  syncDir(path: string): void {
    const p = this.enter('syncDir', path);
    const dir = this.dirs.get(p);
    if (dir === undefined) throw new SimFsError('ENOENT', `syncDir ${p}: no such directory`);
    dir.durable = new Map(dir.current);
  }

  readFile(path: string): Uint8Array {
    const p = this.enter('readFile', path);
    const entry = this.lookup(p);
    if (entry === undefined) throw new SimFsError('ENOENT', `readFile ${p}: no such file`);
    if (entry.kind === 'dir') throw new SimFsError('EISDIR', `readFile ${p}: is a directory`);
    return this.inode(entry.ino).current.bytes();
  }

  // --- Power loss ---------------------------------------------------------------------

  /**
   * The state after a power loss: directories revert to their durable maps, each inode keeps
   * what `mode` decides of its pending ops, open handles become invalid, faults are disarmed.
   */
  crash(mode: CrashMode, rng: Rng): CrashReport {
    const report: CrashReport = { mode, files: [] };
    for (const dir of this.dirs.values()) dir.current = new Map(dir.durable);
    this.forgetUnreachableDirs();
    const names = this.durableNames();
    for (const inode of this.inodes.values()) {
      if (!names.has(inode.id)) continue;
      report.files.push(this.crashInode(inode, mode, rng, names.get(inode.id) ?? []));
    }
    for (const id of [...this.inodes.keys()]) if (!names.has(id)) this.inodes.delete(id);
    this.epoch++;
    this.crashes++;
    this.dead = false;
    this.fault = undefined;
    return report;
  }

  private crashInode(inode: Inode, mode: CrashMode, rng: Rng, paths: string[]): CrashFileReport {
    const chosen = mode === 'random' ? (CONCRETE_MODES[randInt(rng, CONCRETE_MODES.length)] ?? 'drop') : mode;
    const pending = inode.pending.length;
    const outcome = pending === 0 ? { kept: [], torn: false, garbledSectors: 0 } : outcomeOf(chosen, inode.pending, rng, this.bitflipsFor(paths));
    for (const op of outcome.kept) applyOp(inode.durable, op);
    inode.current = inode.durable.copy();
    inode.pending = [];
    return { paths, mode: chosen, pending, kept: outcome.kept.length, torn: outcome.torn, garbledSectors: outcome.garbledSectors };
  }

  private bitflipsFor(paths: string[]): boolean {
    const filter = this.options.bitflipsIn;
    return this.bitflips && (filter === undefined || paths.some(filter));
  }

  // --- Copies -------------------------------------------------------------------------

  /** A deep copy of the whole state (durable, pending, directories); no handles, no faults. */
  clone(): SimFs {
    const copy = new SimFs(this.options);
    copy.nextIno = this.nextIno;
    copy.ops = this.ops;
    copy.crashes = this.crashes;
    copy.dead = this.dead;
    copy.dirs = new Map();
    for (const [path, dir] of this.dirs) {
      copy.dirs.set(path, { durable: new Map(dir.durable), current: new Map(dir.current) });
    }
    for (const [id, inode] of this.inodes) {
      copy.inodes.set(id, {
        id,
        durable: inode.durable.copy(),
        current: inode.current.copy(),
        pending: inode.pending.map((op) => (op.kind === 'write' ? { ...op, data: op.data.slice() } : { ...op })),
      });
    }
    return copy;
  }

  /** Every directory and file with its bytes, as reads see them ('current') or as a crash
   * that drops everything pending would leave them ('durable'). Does not count as an op. */
  snapshot(view: 'current' | 'durable' = 'current'): FsSnapshot {
    const out: FsSnapshot = new Map();
    const walk = (path: string): void => {
      const dir = this.dirs.get(path);
      if (dir === undefined) return;
      const map = view === 'current' ? dir.current : dir.durable;
      for (const name of [...map.keys()].sort()) {
        const entry = map.get(name);
        const child = path === '/' ? `/${name}` : `${path}/${name}`;
        if (entry?.kind === 'dir') {
          out.set(child, 'dir');
          walk(child);
        } else if (entry !== undefined) {
          const inode = this.inode(entry.ino);
          out.set(child, view === 'current' ? inode.current.bytes() : inode.durable.bytes());
        }
      }
    };
    walk('/');
    return out;
  }

  /** Paths of files with writes or truncates not yet synced (for tests and debugging). */
  pendingFiles(): string[] {
    const out: string[] = [];
    for (const [path, bytes] of this.snapshot('current')) {
      if (bytes === 'dir') continue;
      const entry = this.lookup(path);
      if (entry?.kind === 'file' && this.inode(entry.ino).pending.length > 0) out.push(path);
    }
    return out;
  }

  // --- Internals used by SimHandle ------------------------------------------------------

  /** Every operation passes here: dead check, handle check, op count, fault countdown. */
  enter(op: OpName, path: string, handleEpoch?: number, closed?: boolean): string {
    const p = normalize(path);
    if (this.dead) throw new SimCrash(`${op} ${p} after simulated power loss`);
    if (handleEpoch !== undefined && handleEpoch !== this.epoch) {
      throw new SimFsError('EBADF', `${op} ${p}: handle from before a crash`);
    }
    if (closed === true) throw new SimFsError('EBADF', `${op} ${p}: handle is closed`);
    this.ops++;
    this.checkFault({ op, path: p });
    return p;
  }

  inode(id: number): Inode {
    const inode = this.inodes.get(id);
    if (inode === undefined) throw new Error(`SimFs: inode ${id} vanished (bug in SimFs)`);
    return inode;
  }

  pend(inode: Inode, op: Pending): void {
    applyOp(inode.current, op);
    inode.pending.push(op);
  }

  syncInode(inode: Inode): void {
    for (const op of inode.pending) applyOp(inode.durable, op);
    inode.pending = [];
  }

  private checkFault(info: OpInfo): void {
    const f = this.fault;
    if (f === undefined) return;
    if (f.match !== undefined && !f.match(info)) return;
    if (!f.fired) {
      f.remaining--;
      if (f.remaining > 0) return;
      f.fired = true;
    } else if (!f.persistent) {
      return;
    }
    if (f.kind === 'crash') this.dead = true;
    else if (!f.persistent) this.fault = undefined;
    throw faultError(f.kind, info);
  }

  private newInode(): Inode {
    const inode: Inode = { id: this.nextIno++, durable: new Image(), current: new Image(), pending: [] };
    this.inodes.set(inode.id, inode);
    return inode;
  }

  private lookup(p: string): Entry | undefined {
    if (p === '/') return { kind: 'dir' };
    return this.dirs.get(posix.dirname(p))?.current.get(posix.basename(p));
  }

  private parentDir(p: string): DirNode {
    const parent = posix.dirname(p);
    const dir = this.dirs.get(parent);
    if (dir !== undefined) return dir;
    const entry = this.lookup(parent);
    if (entry?.kind === 'file') throw new SimFsError('ENOTDIR', `${parent}: not a directory`);
    throw new SimFsError('ENOENT', `${parent}: no such directory`);
  }

  private mkdirs(p: string): void {
    if (this.dirs.has(p)) return;
    const parent = posix.dirname(p);
    this.mkdirs(parent);
    const dir = this.parentDir(p);
    const name = posix.basename(p);
    if (dir.current.get(name)?.kind === 'file') throw new SimFsError('EEXIST', `mkdir ${p}: a file exists`);
    dir.current.set(name, { kind: 'dir' });
    if (this.durableMkdir) dir.durable.set(name, { kind: 'dir' });
    this.dirs.set(p, { durable: new Map(), current: new Map() });
  }

  /** After a crash: a directory whose own entry was never made durable is gone, with all in it. */
  private forgetUnreachableDirs(): void {
    const reachable = new Set<string>(['/']);
    const walk = (path: string): void => {
      const dir = this.dirs.get(path);
      if (dir === undefined) return;
      for (const [name, entry] of dir.durable) {
        if (entry.kind !== 'dir') continue;
        const child = path === '/' ? `/${name}` : `${path}/${name}`;
        reachable.add(child);
        walk(child);
      }
    };
    walk('/');
    for (const path of [...this.dirs.keys()]) if (!reachable.has(path)) this.dirs.delete(path);
  }

  /** inode id -> the durable paths naming it. */
  private durableNames(): Map<number, string[]> {
    const names = new Map<number, string[]>();
    for (const [path, dir] of this.dirs) {
      for (const [name, entry] of dir.durable) {
        if (entry.kind !== 'file') continue;
        const list = names.get(entry.ino) ?? [];
        list.push(path === '/' ? `/${name}` : `${path}/${name}`);
        names.set(entry.ino, list);
      }
    }
    return names;
  }
}

/** An open file: refers to an inode (not a name), as a file descriptor does. */
class SimHandle implements FileHandle {
  private closed = false;

  constructor(
    private readonly sim: SimFs,
    readonly path: string,
    private readonly ino: number,
    private readonly writable: boolean,
    private readonly epoch: number,
  ) {}

  read(buf: Uint8Array, position: number): number {
    this.sim.enter('read', this.path, this.epoch, this.closed);
    return this.sim.inode(this.ino).current.read(buf, position);
  }

  write(buf: Uint8Array, position: number): void {
    this.sim.enter('write', this.path, this.epoch, this.closed);
    this.requireWritable('write');
    if (buf.length === 0) return;
    this.sim.pend(this.sim.inode(this.ino), { kind: 'write', pos: position, data: buf.slice() });
  }

  sync(): void {
    this.sim.enter('sync', this.path, this.epoch, this.closed);
    this.sim.syncInode(this.sim.inode(this.ino));
  }

  truncate(size: number): void {
    this.sim.enter('truncate', this.path, this.epoch, this.closed);
    this.requireWritable('truncate');
    this.sim.pend(this.sim.inode(this.ino), { kind: 'truncate', size });
  }

  size(): number {
    this.sim.enter('size', this.path, this.epoch, this.closed);
    return this.sim.inode(this.ino).current.length;
  }

  close(): void {
    this.sim.enter('close', this.path, this.epoch, this.closed);
    this.closed = true;
  }

  private requireWritable(op: string): void {
    if (!this.writable) throw new SimFsError('EBADF', `${op} ${this.path}: opened read-only`);
  }
}
