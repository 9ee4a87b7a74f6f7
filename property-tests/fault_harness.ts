// Shared helpers of the crash-point and disk-fault tests (crash_points.test.ts,
// disk_faults.test.ts): a "process" that opens the shipped store in one thread
// (src/wiring/in_thread.ts: the actor factories, Peers and engine) on a SimFs with a fresh fake pid, deterministic values, the live state as a comparable map, an op
// recorder, a seeded fault-injecting Fs wrapper, and byte flips in the durable image.
//
// Invariants:
// - every reopen is a new process: a new pid, and isAlive() is true only for that pid, so the
//   LOCK of a dead predecessor is stale and taken over (as after a real crash);
// - values are a pure function of (key, version), so an expected state is cheap to rebuild;
// - FlakyFs fails only the ops its predicate selects, with a probability drawn from its own
//   seeded rng, and counts what it injected; when disabled it is a transparent pass-through;
// - flipDurableByte changes exactly one bit of one file and syncs it, so the flip is in the
//   durable image (what a latent media error looks like after the data was synced).
import { ManualClock } from '../src/runtime/clock.js';
import type { FileHandle, Fs, OpenMode } from '../src/runtime/fs.js';
import { ManualScheduler } from '../src/runtime/scheduler.js';
import { openInThread, type InThreadDatabase } from '../src/wiring/in_thread.js';
import { SimFs, SimFsError, mulberry32, type OpInfo, type OpName, type Rng } from './sim_fs.js';
import { describeState, liveView, statesEqual, type State } from './model.js';
import { StoreError } from '../src/runtime/errors.js';
import type { VacuumSettings } from '../src/db/api.js';

export { describeState, liveView, statesEqual, type State };

export const DATA_DIR = '/data';

export interface ProcOptions {
  maxVolumeSize?: number;
  indexBuckets?: number;
  /** The vacuum's settings (vacuum_crash.test.ts: no rate limit, a short grace in virtual time). */
  vacuum?: Partial<VacuumSettings>;
  /** The automatic vacuum's period (0: never; default: the store's). */
  autoVacuumEveryMs?: number;
}

/** One simulated machine: a file system and a clock; each open() is a new process. */
export class Machine {
  private pid: number;
  readonly scheduler: ManualScheduler;

  constructor(readonly fs: Fs, readonly clock: ManualClock, readonly options: ProcOptions = {}, firstPid = 5000) {
    this.pid = firstPid;
    this.scheduler = new ManualScheduler(clock);
  }

  async open(): Promise<InThreadDatabase> {
    this.pid += 1;
    const pid = this.pid;
    return openInThread({
      fs: this.fs,
      clock: this.clock,
      scheduler: this.scheduler,
      dir: DATA_DIR,
      pid,
      isAlive: (p) => p === pid,
      sync: 'always',
      ...(this.options.maxVolumeSize === undefined ? {} : { maxVolumeSize: this.options.maxVolumeSize }),
      ...(this.options.indexBuckets === undefined ? {} : { indexBuckets: this.options.indexBuckets }),
      ...(this.options.vacuum === undefined ? {} : { vacuum: this.options.vacuum }),
      ...(this.options.autoVacuumEveryMs === undefined ? {} : { autoVacuumEveryMs: this.options.autoVacuumEveryMs }),
    });
  }
}

/** Deterministic bytes for (key, version): any two versions of any key differ. */
export function valueFor(key: string, version: number, len = 40 + ((version * 37 + key.length * 11) % 300)): Buffer {
  let seed = version * 7919 + len;
  for (let i = 0; i < key.length; i++) seed = (seed * 31 + key.charCodeAt(i)) >>> 0;
  const rng = mulberry32(seed);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

/** The live state of a store, as its index serves it, judged at the clock's now. */
export async function liveState(db: InThreadDatabase, now: number): Promise<State> {
  return liveView(copyState(await db.dump()), now);
}

export async function rebuiltState(db: InThreadDatabase, now: number): Promise<State> {
  return liveView(copyState(await db.rebuildCheck()), now);
}

function copyState(dump: Map<string, { value: Buffer; expiresAt: number }>): State {
  const out: State = new Map();
  for (const [k, e] of dump) out.set(k, { value: Buffer.from(e.value), expiresAt: e.expiresAt });
  return out;
}

/** Runs fn with every file op recorded (no op fails). */
export async function recordOps<T>(fs: SimFs, fn: () => Promise<T>): Promise<{ ops: OpInfo[]; result: T }> {
  const ops: OpInfo[] = [];
  fs.failAfter(1, 'eio', {
    match: (op) => {
      ops.push(op);
      return false;
    },
  });
  try {
    return { ops, result: await fn() };
  } finally {
    fs.disarm();
  }
}

export function showOp(op: OpInfo | undefined): string {
  return op === undefined ? '(none)' : `${op.op} ${op.path}`;
}

// ---------------------------------------------------------------------------------------
// Errors

/**
 * The codes a file-system fault may legitimately surface as. ACTOR_DOWN: a fault that fenced the
 * index makes the index actor restart to recover (one-for-one), and what was in flight to it,
 * or is written until it is back, gets ACTOR_DOWN.
 */
export const FAULT_CODES: ReadonlySet<string> = new Set(['IO_ERROR', 'WAL_FENCED', 'NO_SPACE', 'CHECKSUM_MISMATCH', 'CORRUPT', 'ACTOR_DOWN']);

/** Virtual time in which the supervisor restarts a crashed actor (its backoff is at most 2 s). */
export const RESTART_WAIT_MS = 2_100;

/** The StoreError code of err, or throws a clear assertion-style error when it is untyped. */
export function storeCode(err: unknown, what: string): string {
  if (err instanceof StoreError) return err.code;
  const e = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  throw new Error(`${what} failed with an untyped error (not a StoreError): ${e}`, { cause: err });
}

// ---------------------------------------------------------------------------------------
// A seeded fault-injecting Fs

export type FaultClass = 'read' | 'write' | 'sync' | 'namespace';

const CLASS_OF: Record<OpName, FaultClass | null> = {
  open: 'namespace',
  exists: 'namespace',
  readdir: 'read',
  mkdir: 'namespace',
  rename: 'namespace',
  unlink: 'namespace',
  syncDir: 'sync',
  readFile: 'read',
  read: 'read',
  write: 'write',
  sync: 'sync',
  truncate: 'write',
  size: 'read',
  close: null,
};

export interface FlakyRule {
  classes: ReadonlySet<FaultClass>;
  /** Probability that a matching op fails. */
  rate: number;
  code: 'EIO' | 'ENOSPC';
  /** Optional path filter (default: every file). */
  path?: (path: string) => boolean;
}

/** Wraps an Fs and fails a seeded fraction of the selected ops with EIO/ENOSPC. */
export class FlakyFs implements Fs {
  enabled = true;
  readonly injected = new Map<string, number>();
  private readonly rng: Rng;

  constructor(readonly inner: Fs, readonly rule: FlakyRule, seed: number) {
    this.rng = mulberry32(seed);
  }

  get injectedTotal(): number {
    let n = 0;
    for (const v of this.injected.values()) n += v;
    return n;
  }

  /** Throws the rule's error for this op when the dice say so. */
  maybeFail(op: OpName, path: string): void {
    if (!this.enabled) return;
    const cls = CLASS_OF[op];
    if (cls === null || !this.rule.classes.has(cls)) return;
    if (this.rule.path !== undefined && !this.rule.path(path)) return;
    if (this.rng() >= this.rule.rate) return;
    const key = `${this.rule.code}:${op}`;
    this.injected.set(key, (this.injected.get(key) ?? 0) + 1);
    throw new SimFsError(this.rule.code, `injected at ${op} ${path}`);
  }

  open(path: string, mode: OpenMode): FileHandle {
    this.maybeFail('open', path);
    return new FlakyHandle(this, this.inner.open(path, mode));
  }
  exists(path: string): boolean {
    this.maybeFail('exists', path);
    return this.inner.exists(path);
  }
  readdir(path: string): string[] {
    this.maybeFail('readdir', path);
    return this.inner.readdir(path);
  }
  mkdir(path: string): void {
    this.maybeFail('mkdir', path);
    this.inner.mkdir(path);
  }
  rename(from: string, to: string): void {
    this.maybeFail('rename', from);
    this.inner.rename(from, to);
  }
  unlink(path: string): void {
    this.maybeFail('unlink', path);
    this.inner.unlink(path);
  }
  syncDir(path: string): void {
    this.maybeFail('syncDir', path);
    this.inner.syncDir(path);
  }
  readFile(path: string): Uint8Array {
    this.maybeFail('readFile', path);
    return this.inner.readFile(path);
  }
}

class FlakyHandle implements FileHandle {
  constructor(private readonly owner: FlakyFs, private readonly inner: FileHandle) {}
  get path(): string {
    return this.inner.path;
  }
  read(buf: Uint8Array, position: number): number {
    this.owner.maybeFail('read', this.path);
    return this.inner.read(buf, position);
  }
  write(buf: Uint8Array, position: number): void {
    this.owner.maybeFail('write', this.path);
    this.inner.write(buf, position);
  }
  sync(): void {
    this.owner.maybeFail('sync', this.path);
    this.inner.sync();
  }
  truncate(size: number): void {
    this.owner.maybeFail('truncate', this.path);
    this.inner.truncate(size);
  }
  size(): number {
    this.owner.maybeFail('size', this.path);
    return this.inner.size();
  }
  close(): void {
    this.inner.close();
  }
}

// ---------------------------------------------------------------------------------------
// Media corruption

/** Every offset at which `needle` occurs in `hay`. */
export function findAll(hay: Uint8Array, needle: Uint8Array): number[] {
  const out: number[] = [];
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    out.push(i);
  }
  return out;
}

/** The current bytes of a file (a SimFs read, not counted as a fault target). */
export function fileBytes(fs: SimFs, path: string): Uint8Array {
  return fs.readFile(path);
}

/** Flips one bit at `offset` of `path` and syncs it: the flip is in the durable image. */
export function flipDurableByte(fs: SimFs, path: string, offset: number, bit = 0): void {
  const h = fs.open(path, 'write');
  try {
    const b = new Uint8Array(1);
    if (h.read(b, offset) !== 1) throw new Error(`flipDurableByte: ${path} has no byte at ${offset}`);
    b[0] = (b[0] ?? 0) ^ (1 << bit);
    h.write(b, offset);
    h.sync();
  } finally {
    h.close();
  }
}

export function newMachine(options: ProcOptions = {}): { fs: SimFs; machine: Machine } {
  const fs = new SimFs();
  fs.mkdir(DATA_DIR);
  return { fs, machine: new Machine(fs, new ManualClock(), options) };
}
