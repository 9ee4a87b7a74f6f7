// The model-based crash/recovery property (../shared/TESTING.md, plan item 1), shared by
// crash_recovery.test.ts (the CI run and soak) and canaries.test.ts (proof that it has teeth).
//
// The system under test is the shipped store run in one thread (src/wiring/in_thread.ts): the
// supervisor, the actor factories of the volume writer, WAL committer, index and broker, the
// Peers between them and the engine, on a SimFs, a ManualClock and a ManualScheduler, so every
// run is deterministic from its seed. Every actor checks its invariants after every message.
// The model is the acknowledged state: key -> {value, expiresAt}, judged against the same
// ManualClock the engine reads, plus the stack of open transaction levels of the one session.
//
// Invariants checked after every crash and reopen:
// - the recovered live state equals the model's exactly (every acknowledged write is there,
//   byte for byte, with its expiry; no phantom key; nothing of a rolled-back or unfinished
//   transaction; an expired key never comes back), or, after a crash in the middle of one
//   write, equals the state before it or the state after it (never a mix: a transaction is
//   atomic), and the model adopts whichever was found;
// - the index equals one rebuilt from scratch (dump() == rebuildCheck());
// - recovering twice gives the same state (abandon, crash dropping whatever the first
//   recovery left unsynced, reopen, same dump).
// Between crashes every read (get, pttl) and every write's answer is compared with the model.
//
// Determinism: every random choice (commands, values, crash outcomes, crash points) comes
// from fast-check's seed, so a failure replays from its seed and path (see README.md).
import fc from 'fast-check';
import { ManualClock } from '../src/runtime/clock.js';
import { StoreError } from '../src/runtime/errors.js';
import { ManualScheduler } from '../src/runtime/scheduler.js';
import { openInThread, type InThreadDatabase } from '../src/wiring/in_thread.js';
import { CRASH_MODES, SimFs, mulberry32, type CrashMode, type CrashReport, type OpInfo } from './sim_fs.js';

// ---------------------------------------------------------------------------------------
// Configuration and counters

export interface PropertyConfig {
  /** Small, so volumes rotate often (volume creation is a crash point of its own). */
  maxVolumeSize: number;
  /** Small, so the index grows and is rebuilt in the background now and then. */
  indexBuckets: number;
  maxCommands: number;
  /** SimFs garbage flavors in 'subset-garbage' crashes (see SimFsOptions.garbage). */
  garbage: 'power-loss' | 'with-bitflips';
  /** Only for replays: the replayPath that fast-check printed with the counterexample. */
  replayPath?: string;
}

export const DEFAULT_CONFIG: PropertyConfig = {
  maxVolumeSize: 16 * 1024,
  indexBuckets: 16,
  maxCommands: 60,
  garbage: 'power-loss',
};

export const DATA_DIR = '/data';
const KEYS = 6;

/** What the suite actually executed; a CI run asserts on `crashes` (issue: >= 10,000). */
export const stats = {
  /** Power losses simulated by commands (each followed by recovery and the checks). */
  crashes: 0,
  /** Of which: a crash that hit in the middle of an operation. */
  crashDuringOp: 0,
  /** Of which: a crash that hit in the middle of recovery itself. */
  crashDuringRecovery: 0,
  /** Crash-during-op commands whose op was left uncertain (the write rejected). */
  uncertainOps: 0,
  /** Extra "recover twice" crashes (with drop) done by the checks, not counted above. */
  verifyCrashes: 0,
  /** Store actors killed (and restarted by the supervisor) between or during operations. */
  kills: 0,
  /** Of which: the operation in flight failed (ACTOR_DOWN), its outcome left to recovery. */
  killedOps: 0,
  runs: 0,
};

export function resetStats(): void {
  for (const k of Object.keys(stats) as (keyof typeof stats)[]) stats[k] = 0;
}

// ---------------------------------------------------------------------------------------
// Values: generated from (length, seed) so a counterexample prints short

export interface ValueSpec {
  len: number;
  seed: number;
}

export function valueOf(spec: ValueSpec): Buffer {
  const rng = mulberry32(spec.seed * 7919 + spec.len);
  const out = Buffer.alloc(spec.len);
  for (let i = 0; i < spec.len; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

function showValue(spec: ValueSpec): string {
  return `v${spec.len}#${spec.seed}`;
}

// ---------------------------------------------------------------------------------------
// The model

export interface Entry {
  value: Buffer;
  expiresAt: number;
}
export type State = Map<string, Entry>;

type PendingWrite = { kind: 'set'; value: Buffer; expiresAt: number } | { kind: 'del' } | { kind: 'expire'; expiresAt: number };

function isLive(expiresAt: number, now: number): boolean {
  return expiresAt === 0 || expiresAt > now;
}

/** Same rule as the engine's transaction stack: an expiry change lands on a pending set. */
function mergeInto(below: PendingWrite | undefined, above: PendingWrite): PendingWrite {
  if (above.kind === 'expire' && below !== undefined) {
    if (below.kind === 'set') return { ...below, expiresAt: above.expiresAt };
    if (below.kind === 'del') return below;
  }
  return above;
}

export function liveView(state: State, now: number): State {
  const out: State = new Map();
  for (const [k, e] of state) if (isLive(e.expiresAt, now)) out.set(k, e);
  return out;
}

export function statesEqual(a: State, b: State): boolean {
  if (a.size !== b.size) return false;
  for (const [k, e] of a) {
    const o = b.get(k);
    if (o === undefined || o.expiresAt !== e.expiresAt || !o.value.equals(e.value)) return false;
  }
  return true;
}

export function describeState(state: State): string {
  const parts = [...state.keys()].sort().map((k) => {
    const e = state.get(k)!;
    const sum = e.value.reduce((a, b) => (a * 31 + b) >>> 0, 7);
    return `${k}=${e.value.length}b:${sum.toString(16)}${e.expiresAt ? `@${e.expiresAt}` : ''}`;
  });
  return `{${parts.join(' ')}}`;
}

export class Model {
  committed: State = new Map();
  levels: Map<string, PendingWrite>[] = [];
  /** After a crash in the middle of a write: the states recovery may yield (before, after). */
  candidates: State[] | null = null;

  constructor(readonly clock: ManualClock) {}

  get depth(): number {
    return this.levels.length;
  }

  now(): number {
    return this.clock.now();
  }

  /** What the session sees: its newest pending write first, the committed state second. */
  visible(key: string): Entry | null {
    const now = this.now();
    const pending = this.find(key);
    const committed = this.committed.get(key);
    const base = committed !== undefined && isLive(committed.expiresAt, now) ? committed : null;
    if (pending === undefined) return base;
    if (pending.kind === 'del') return null;
    if (pending.kind === 'set') return isLive(pending.expiresAt, now) ? { value: pending.value, expiresAt: pending.expiresAt } : null;
    if (base === null || !isLive(pending.expiresAt, now)) return null;
    return { value: base.value, expiresAt: pending.expiresAt };
  }

  set(key: string, value: Buffer, expiresAt: number): void {
    const top = this.top();
    if (top !== undefined) top.set(key, { kind: 'set', value, expiresAt });
    else this.committed.set(key, { value, expiresAt });
  }

  del(key: string): number {
    const existed = this.visible(key) !== null ? 1 : 0;
    const top = this.top();
    if (top !== undefined) top.set(key, { kind: 'del' });
    else this.committed.delete(key);
    return existed;
  }

  /** EXPIRE with an absolute time, or PERSIST with 0; false when the key is not live. */
  changeExpiry(key: string, expiresAt: number): boolean {
    const visible = this.visible(key);
    if (visible === null) return false;
    const top = this.top();
    if (top !== undefined) top.set(key, mergeInto(this.find(key), { kind: 'expire', expiresAt }));
    else this.committed.set(key, { value: visible.value, expiresAt });
    return true;
  }

  persist(key: string): boolean {
    const visible = this.visible(key);
    if (visible === null || visible.expiresAt === 0) return false;
    return this.changeExpiry(key, 0);
  }

  begin(): void {
    this.levels.push(new Map());
  }

  commit(): void {
    const top = this.levels.pop();
    if (top === undefined) throw new Error('model: commit without begin');
    const parent = this.top();
    if (parent !== undefined) {
      for (const [k, w] of top) parent.set(k, mergeInto(parent.get(k), w));
      return;
    }
    const now = this.now();
    for (const [k, w] of top) {
      if (w.kind === 'set') this.committed.set(k, { value: w.value, expiresAt: w.expiresAt });
      else if (w.kind === 'del') this.committed.delete(k);
      else {
        const e = this.committed.get(k);
        if (e !== undefined && isLive(e.expiresAt, now)) this.committed.set(k, { value: e.value, expiresAt: w.expiresAt });
      }
    }
  }

  rollback(): void {
    if (this.levels.pop() === undefined) throw new Error('model: rollback without begin');
  }

  /** A crash or a restart: the session and its open transaction are gone. */
  dropTransactions(): void {
    this.levels = [];
  }

  private top(): Map<string, PendingWrite> | undefined {
    return this.levels[this.levels.length - 1];
  }

  private find(key: string): PendingWrite | undefined {
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const w = this.levels[i]!.get(key);
      if (w !== undefined) return w;
    }
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// The real system and the recovery checks

export interface Real {
  fs: SimFs;
  clock: ManualClock;
  /** Virtual time: the actors' timers fire when a command moves the clock. */
  scheduler: ManualScheduler;
  db: InThreadDatabase;
  /** The fake pid of the running "process"; every reopen is a new process. */
  pid: number;
  config: PropertyConfig;
  /** The last crash, for failure messages. */
  lastCrash: string;
}

async function openDb(real: Real): Promise<InThreadDatabase> {
  real.pid += 1;
  const pid = real.pid;
  return openInThread({
    fs: real.fs,
    clock: real.clock,
    scheduler: real.scheduler,
    dir: DATA_DIR,
    pid,
    isAlive: (p) => p === pid,
    maxVolumeSize: real.config.maxVolumeSize,
    indexBuckets: real.config.indexBuckets,
    // VACUUM runs to its end in virtual time (driveVacuum): a short grace, no rate limit.
    vacuum: { graceMs: 50, rateBytesPerSec: 0 },
    sync: 'always',
  });
}

export async function freshSystem(config: PropertyConfig): Promise<{ model: Model; real: Real }> {
  const clock = new ManualClock();
  // Bit flips model media corruption, which only a checksum can catch; LOCK carries none by
  // design (it is never fsynced, see src/storage/lock_file.ts), so it is spared them.
  const fs = new SimFs({ garbage: config.garbage, bitflipsIn: (path) => !path.endsWith('/LOCK') });
  fs.mkdir(DATA_DIR);
  const real: Real = { fs, clock, scheduler: new ManualScheduler(clock), db: undefined as unknown as InThreadDatabase, pid: 1000, config, lastCrash: 'none' };
  real.db = await openDb(real);
  return { model: new Model(clock), real };
}

function summarize(report: CrashReport): string {
  const files = report.files
    .filter((f) => f.pending > 0)
    .map((f) => `${f.paths.join('|')}:${f.mode} kept ${f.kept}/${f.pending}${f.torn ? ' torn' : ''}${f.garbledSectors ? ` garbled ${f.garbledSectors}` : ''}`);
  return `${report.mode} [${files.join('; ')}]`;
}

/** An actor that died of an error outside a simulated power loss is a bug (a broken invariant among them). */
export function assertNoActorCrashes(real: Real, label: string): void {
  // A kill of the test's own (fault injection) is not a crash of the store's.
  const crashes = real.db.actorCrashes().filter((c) => !c.error.includes('crashed on purpose (fault injection)'));
  if (crashes.length > 0) throw new Error(`after ${label}: actor ${crashes[0]!.name} crashed: ${crashes[0]!.error}`);
}

/** Power loss: the process dies (no flush, no close), then the machine loses unsynced data. */
function powerLoss(real: Real, mode: CrashMode, seed: number): void {
  real.db.abandon();
  real.lastCrash = summarize(real.fs.crash(mode, mulberry32(seed)));
}

async function reopen(real: Real, label: string): Promise<void> {
  try {
    real.db = await openDb(real);
  } catch (err) {
    throw new Error(`reopen after ${label} failed (crash: ${real.lastCrash}): ${String(err)}`, { cause: err });
  }
}

/** Live entries of a dump, judged against the model clock (a dump must not hold dead keys). */
function liveDump(dump: Map<string, { value: Buffer; expiresAt: number }>, now: number): State {
  const out: State = new Map();
  for (const [k, e] of dump) {
    if (!isLive(e.expiresAt, now)) throw new Error(`dump holds expired key ${k} (expiresAt ${e.expiresAt}, now ${now})`);
    out.set(k, { value: Buffer.from(e.value), expiresAt: e.expiresAt });
  }
  return out;
}

/** The checks after every recovery (see the top of this file). */
export async function verifyRecovered(model: Model, real: Real, label: string): Promise<void> {
  assertNoActorCrashes(real, `${label} (recovered)`);
  const now = model.now();
  const found = liveDump(await real.db.dump(), now);
  const candidates = model.candidates ?? [model.committed];
  const match = candidates.find((c) => statesEqual(liveView(c, now), found));
  if (match === undefined) {
    const allowed = candidates.map((c) => describeState(liveView(c, now))).join(' or ');
    throw new Error(`after ${label} (crash: ${real.lastCrash}): recovered ${describeState(found)}, expected ${allowed}`);
  }
  model.committed = new Map(match);
  model.candidates = null;
  const rebuilt = liveDump(await real.db.rebuildCheck(), now);
  if (!statesEqual(rebuilt, found)) {
    throw new Error(`after ${label}: the index holds ${describeState(found)} but a rebuild from the WAL gives ${describeState(rebuilt)}`);
  }
  // Recovering twice: whatever the first recovery left unsynced may be lost; the state may not change.
  powerLoss(real, 'drop', 0);
  stats.verifyCrashes += 1;
  await reopen(real, `${label}, then a second recovery`);
  const again = liveDump(await real.db.dump(), now);
  if (!statesEqual(again, found)) {
    throw new Error(`after ${label}: a second recovery gives ${describeState(again)}, the first gave ${describeState(found)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Commands

type Cmd = fc.AsyncCommand<Model, Real>;

function expect<T>(what: string, got: T, want: T): void {
  if (got !== want) throw new Error(`${what}: got ${String(got)}, model says ${String(want)}`);
}

class SetCmd implements Cmd {
  constructor(readonly key: string, readonly value: ValueSpec, readonly ttlMs: number | undefined) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const value = valueOf(this.value);
    const expiresAt = this.ttlMs === undefined ? 0 : m.now() + this.ttlMs;
    await r.db.set(this.key, value, this.ttlMs === undefined ? {} : { ttlMs: this.ttlMs });
    m.set(this.key, value, expiresAt);
  }
  toString(): string {
    return `set(${this.key},${showValue(this.value)}${this.ttlMs === undefined ? '' : `,ttl=${this.ttlMs}`})`;
  }
}

/** The chunks of a value, as an upload delivers them (the HTTP PUT path: a reserved region). */
async function* chunksOf(value: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < value.length; at += size) yield value.subarray(at, Math.min(value.length, at + size));
}

/**
 * How a stream is written: with its size (a reserved region), without (a chunked upload: a
 * stream volume, header written last), or without and with metadata (a version-2 needle).
 */
export type StreamMode = 'sized' | 'open' | 'open+meta';

function streamOptions(mode: StreamMode, size: number): { size?: number; contentType?: string } {
  if (mode === 'sized') return { size };
  return mode === 'open' ? {} : { contentType: 'application/x-model' };
}

/** A value streamed into its needle in chunks (engine.put of a stream: StreamBegin/Chunk/End). */
class SetStreamCmd implements Cmd {
  constructor(readonly key: string, readonly value: ValueSpec, readonly chunk: number, readonly mode: StreamMode = 'sized') {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const value = valueOf(this.value);
    await r.db.setStream(this.key, chunksOf(value, this.chunk), streamOptions(this.mode, value.length));
    m.set(this.key, value, 0);
  }
  toString(): string {
    return `stream(${this.key},${showValue(this.value)},chunks of ${this.chunk},${this.mode})`;
  }
}

class DeleteCmd implements Cmd {
  constructor(readonly key: string) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const got = await r.db.delete(this.key);
    expect(`delete(${this.key})`, got, m.del(this.key));
  }
  toString(): string {
    return `del(${this.key})`;
  }
}

class ExpireCmd implements Cmd {
  constructor(readonly key: string, readonly ttlMs: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const want = m.visible(this.key) !== null;
    const got = await r.db.expire(this.key, this.ttlMs);
    expect(`expire(${this.key})`, got, want);
    if (want) m.changeExpiry(this.key, m.now() + this.ttlMs);
  }
  toString(): string {
    return `expire(${this.key},${this.ttlMs})`;
  }
}

class PersistCmd implements Cmd {
  constructor(readonly key: string) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const got = await r.db.persist(this.key);
    expect(`persist(${this.key})`, got, m.persist(this.key));
  }
  toString(): string {
    return `persist(${this.key})`;
  }
}

class GetCmd implements Cmd {
  constructor(readonly key: string) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const want = m.visible(this.key);
    const got = await r.db.get(this.key);
    if (want === null) {
      if (got !== null) throw new Error(`get(${this.key}): got ${got.length} bytes, model says absent (depth ${m.depth})`);
    } else if (got === null || !got.equals(want.value)) {
      throw new Error(`get(${this.key}): got ${got === null ? 'null' : `${got.length} other bytes`}, model says ${want.value.length} bytes (depth ${m.depth})`);
    }
    const wantTtl = want === null ? -2 : want.expiresAt === 0 ? -1 : Math.max(0, want.expiresAt - m.now());
    expect(`pttl(${this.key})`, await r.db.pttl(this.key), wantTtl);
  }
  toString(): string {
    return `get(${this.key})`;
  }
}

class BeginCmd implements Cmd {
  check(m: Readonly<Model>): boolean {
    return m.depth < 3;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.db.begin();
    m.begin();
    expect('depth', r.db.depth, m.depth);
  }
  toString(): string {
    return 'begin';
  }
}

class CommitCmd implements Cmd {
  check(m: Readonly<Model>): boolean {
    return m.depth > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.db.commit();
    m.commit();
    expect('depth', r.db.depth, m.depth);
  }
  toString(): string {
    return 'commit';
  }
}

class RollbackCmd implements Cmd {
  check(m: Readonly<Model>): boolean {
    return m.depth > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.db.rollback();
    m.rollback();
    expect('depth', r.db.depth, m.depth);
  }
  toString(): string {
    return 'rollback';
  }
}

class AdvanceClockCmd implements Cmd {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    // The clock moves, and the actors' timers that fall due on the way fire (checkpoints, sweeps).
    await r.scheduler.advance(this.ms);
    assertNoActorCrashes(r, this.toString());
  }
  toString(): string {
    return `tick(${this.ms})`;
  }
}

/** One step of a nested-transaction script; ill-formed steps (commit at depth 0...) are skipped. */
export type TxnStep =
  | { op: 'begin' }
  | { op: 'commit' }
  | { op: 'rollback' }
  | { op: 'set'; key: string; value: ValueSpec }
  | { op: 'del'; key: string }
  | { op: 'get'; key: string };

function showStep(s: TxnStep): string {
  if (s.op === 'set') return `set(${s.key},${showValue(s.value)})`;
  if (s.op === 'del' || s.op === 'get') return `${s.op}(${s.key})`;
  return s.op;
}

/**
 * A burst of nested transaction steps (up to 3 levels) with reads in between, so that inner
 * rollbacks under an outer commit (the applyRollback canary) happen often, not by luck.
 * Levels still open at the end stay open for the following commands.
 */
class TxnScriptCmd implements Cmd {
  constructor(readonly steps: TxnStep[]) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    for (const s of this.steps) {
      if (s.op === 'begin' && m.depth < 3) await new BeginCmd().run(m, r);
      else if (s.op === 'commit' && m.depth > 0) await new CommitCmd().run(m, r);
      else if (s.op === 'rollback' && m.depth > 0) await new RollbackCmd().run(m, r);
      else if (s.op === 'set') await new SetCmd(s.key, s.value, undefined).run(m, r);
      else if (s.op === 'del') await new DeleteCmd(s.key).run(m, r);
      else if (s.op === 'get') await new GetCmd(s.key).run(m, r);
    }
  }
  toString(): string {
    return `script[${this.steps.map(showStep).join(',')}]`;
  }
}

/** Background work (TTL sweep slice, checkpoint when due, rebuild step): invisible to reads. */
class MaintenanceCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    await r.db.maintenance();
  }
  toString(): string {
    return 'maintenance';
  }
}

class CompactCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.db.compact();
    const found = liveDump(await r.db.dump(), m.now());
    const want = liveView(m.committed, m.now());
    if (!statesEqual(found, want)) throw new Error(`after compact: ${describeState(found)}, model ${describeState(want)}`);
  }
  toString(): string {
    return 'compact';
  }
}

/**
 * A vacuum driven to its end in virtual time (its grace period is a timer). Under a crash or a
 * kill it still ends: what fails is in its reports' errors.
 */
async function driveVacuum(r: Real): Promise<{ errors: string[] }[]> {
  let done = false;
  const p = r.db.vacuum();
  p.then(() => (done = true), () => (done = true));
  for (let i = 0; !done && i < 10_000; i++) {
    await r.scheduler.settle();
    if (!done) await r.scheduler.advance(10);
  }
  if (!done) throw new Error('vacuum: still running after 100 s of virtual time');
  return p;
}

/** VACUUM (docs/vacuum.md): no error, and the live state is the model's (a vacuum changes no value). */
class VacuumCmd implements Cmd {
  check(m: Readonly<Model>): boolean {
    return m.depth === 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const reports = await driveVacuum(r);
    const errors = reports.flatMap((x) => x.errors);
    if (errors.length > 0) throw new Error(`vacuum: ${errors.join('; ')}`);
    const found = liveDump(await r.db.dump(), m.now());
    const want = liveView(m.committed, m.now());
    if (!statesEqual(found, want)) throw new Error(`after vacuum: ${describeState(found)}, model ${describeState(want)}`);
  }
  toString(): string {
    return 'vacuum';
  }
}

class CheckpointCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    await r.db.checkpoint();
  }
  toString(): string {
    return 'checkpoint';
  }
}

/** A clean shutdown and restart: close() flushes; an open transaction is dropped. */
class RestartCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.db.close();
    m.dropTransactions();
    await reopen(r, 'a clean restart');
    await verifyRecovered(m, r, 'a clean restart');
  }
  toString(): string {
    return 'restart';
  }
}

class CrashCmd implements Cmd {
  constructor(readonly mode: CrashMode, readonly seed: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    assertNoActorCrashes(r, `the commands before ${this.toString()}`);
    powerLoss(r, this.mode, this.seed);
    m.dropTransactions();
    stats.crashes += 1;
    await reopen(r, this.toString());
    await verifyRecovered(m, r, this.toString());
  }
  toString(): string {
    return `CRASH(${this.mode},${this.seed})`;
  }
}

// --- crash points ----------------------------------------------------------------------

/** Where a crash-during-op or crash-during-recovery fault fires: the n-th matching op. */
export interface CrashPoint {
  /** wal-sync: the fdatasync of wal.log, where a WAL record is written but not yet durable. */
  on: 'any' | 'sync' | 'write' | 'namespace' | 'wal-sync';
  n: number;
}

const NAMESPACE_OPS = new Set(['rename', 'unlink', 'syncDir', 'open', 'mkdir']);

function matcherOf(point: CrashPoint): ((op: OpInfo) => boolean) | undefined {
  switch (point.on) {
    case 'any':
      return undefined;
    case 'sync':
      return (op) => op.op === 'sync';
    case 'write':
      return (op) => op.op === 'write' || op.op === 'truncate';
    case 'namespace':
      return (op) => NAMESPACE_OPS.has(op.op);
    case 'wal-sync':
      return (op) => op.op === 'sync' && op.path.endsWith('/wal.log');
  }
}

function arm(real: Real, point: CrashPoint): void {
  const match = matcherOf(point);
  real.fs.failAfter(point.n, 'crash', match === undefined ? {} : { match });
}

function showPoint(point: CrashPoint): string {
  return `${point.on}#${point.n}`;
}

/** An operation that a crash may interrupt. */
export type Victim =
  | { kind: 'set'; key: string; value: ValueSpec; ttlMs: number | undefined }
  | { kind: 'stream'; key: string; value: ValueSpec; chunk: number; mode: StreamMode }
  | { kind: 'del'; key: string }
  | { kind: 'expire'; key: string; ttlMs: number }
  | { kind: 'txn'; writes: ({ key: string; value: ValueSpec } | { key: string; del: true })[] }
  | { kind: 'compact' }
  | { kind: 'checkpoint' }
  | { kind: 'maintenance' }
  | { kind: 'vacuum' };

function showVictim(v: Victim): string {
  switch (v.kind) {
    case 'set':
      return `set(${v.key},${showValue(v.value)}${v.ttlMs === undefined ? '' : `,ttl=${v.ttlMs}`})`;
    case 'stream':
      return `stream(${v.key},${showValue(v.value)},chunks of ${v.chunk},${v.mode})`;
    case 'del':
      return `del(${v.key})`;
    case 'expire':
      return `expire(${v.key},${v.ttlMs})`;
    case 'txn':
      return `txn[${v.writes.map((w) => ('del' in w ? `del(${w.key})` : `set(${w.key},${showValue(w.value)})`)).join(',')}]`;
    default:
      return v.kind;
  }
}

interface VictimOutcome {
  /** The committed state the model would have if the victim completed. */
  after: State;
  /** The call answered success: the victim is acknowledged and must survive. */
  acked: boolean;
  /** The call got as far as the point after which it may be durable (a transaction: COMMIT). */
  reachedCommit: boolean;
}

/** Runs the victim on the real system and, in step, on a shadow copy of the model. */
async function runVictim(v: Victim, m: Model, r: Real): Promise<VictimOutcome> {
  const shadow = new Model(m.clock);
  shadow.committed = new Map(m.committed);
  const now = m.now();
  const progress = { reachedCommit: true };
  try {
    await runOnBoth(v, shadow, r, now, progress);
  } catch (err) {
    // Only the simulated power loss may make the victim fail; anything else is a real bug.
    if (!r.fs.isDead) throw err;
    return { after: shadow.committed, acked: false, reachedCommit: progress.reachedCommit };
  }
  return { after: shadow.committed, acked: true, reachedCommit: true };
}

async function runOnBoth(v: Victim, shadow: Model, r: Real, now: number, progress: { reachedCommit: boolean }): Promise<void> {
  switch (v.kind) {
    case 'set':
      shadow.set(v.key, valueOf(v.value), v.ttlMs === undefined ? 0 : now + v.ttlMs);
      await r.db.set(v.key, valueOf(v.value), v.ttlMs === undefined ? {} : { ttlMs: v.ttlMs });
      return;
    case 'stream': {
      const value = valueOf(v.value);
      shadow.set(v.key, value, 0);
      await r.db.setStream(v.key, chunksOf(value, v.chunk), streamOptions(v.mode, value.length));
      return;
    }
    case 'del':
      shadow.del(v.key);
      await r.db.delete(v.key);
      return;
    case 'expire':
      shadow.changeExpiry(v.key, now + v.ttlMs);
      await r.db.expire(v.key, v.ttlMs);
      return;
    case 'txn':
      progress.reachedCommit = false;
      shadow.begin();
      r.db.begin();
      for (const w of v.writes) {
        if ('del' in w) {
          shadow.del(w.key);
          await r.db.delete(w.key);
        } else {
          shadow.set(w.key, valueOf(w.value), 0);
          await r.db.set(w.key, valueOf(w.value));
        }
      }
      shadow.commit();
      progress.reachedCommit = true;
      await r.db.commit();
      return;
    case 'compact':
      await r.db.compact();
      return;
    case 'checkpoint':
      await r.db.checkpoint();
      return;
    case 'maintenance':
      await r.db.maintenance();
      return;
    case 'vacuum':
      await driveVacuum(r);
      return;
  }
}

/**
 * CRASH-DURING-OP: arm a crash at the n-th matching file op, run one operation, lose power.
 * If the operation was acknowledged it must survive; if it failed, the state recovered must
 * be the one before it or the one after it, whole (then the model adopts what it found).
 * The crash may also not fire at all (the op needed fewer file ops): then it is a plain crash.
 */
class CrashDuringOpCmd implements Cmd {
  constructor(readonly victim: Victim, readonly point: CrashPoint, readonly mode: CrashMode, readonly seed: number) {}
  check(m: Readonly<Model>): boolean {
    return m.depth === 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    assertNoActorCrashes(r, `the commands before ${this.toString()}`);
    const before = new Map(m.committed);
    arm(r, this.point);
    let outcome: VictimOutcome;
    try {
      outcome = await runVictim(this.victim, m, r);
    } finally {
      r.fs.disarm();
    }
    if (outcome.acked) {
      m.committed = outcome.after;
    } else {
      stats.uncertainOps += 1;
      m.candidates = outcome.reachedCommit ? [before, outcome.after] : [before];
    }
    powerLoss(r, this.mode, this.seed);
    m.dropTransactions();
    stats.crashes += 1;
    stats.crashDuringOp += 1;
    await reopen(r, this.toString());
    await verifyRecovered(m, r, this.toString());
  }
  toString(): string {
    return `CRASH-DURING(${showVictim(this.victim)} at ${showPoint(this.point)},${this.mode},${this.seed})`;
  }
}

/**
 * CRASH-DURING-RECOVERY: lose power, then lose it again in the middle of the recovery that
 * follows (at the n-th matching op), then recover for good. Nothing acknowledged may be lost.
 */
class CrashDuringRecoveryCmd implements Cmd {
  constructor(readonly first: CrashMode, readonly point: CrashPoint, readonly second: CrashMode, readonly seed: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    powerLoss(r, this.first, this.seed);
    m.dropTransactions();
    const firstCrash = r.lastCrash;
    arm(r, this.point);
    try {
      r.db = await openDb(r);
      r.db.abandon();
    } catch (err) {
      if (!r.fs.isDead) throw new Error(`recovery after ${firstCrash} failed: ${String(err)}`, { cause: err });
    } finally {
      r.fs.disarm();
    }
    powerLoss(r, this.second, this.seed + 1);
    r.lastCrash = `${firstCrash}, then during recovery: ${r.lastCrash}`;
    stats.crashes += 2;
    stats.crashDuringRecovery += 1;
    await reopen(r, this.toString());
    await verifyRecovered(m, r, this.toString());
  }
  toString(): string {
    return `CRASH-DURING-RECOVERY(${this.first},then at ${showPoint(this.point)},${this.second},${this.seed})`;
  }
}

/** The store's actors, as the supervisor names them (the model's store has one drive). */
export const STORE_ACTORS = ['volume-0', 'wal', 'index', 'broker'] as const;

/** Virtual time in which the supervisor restarts a killed actor (its first backoff is 50 ms). */
const RESTART_WAIT_MS = 2_100;

/**
 * KILL-DURING(op, actor, turns): start one operation, let `turns` event-loop turns pass, kill
 * a store actor as a bug would (the supervisor restarts it after its backoff, in virtual time),
 * and let the operation end. No power is lost: if the operation was acknowledged, the store
 * holds the state after it; if it failed (ACTOR_DOWN, the only error a dying actor may give),
 * the store holds the state before it or after it, whole. Then every read still matches the
 * model: the restarted actor recovered its state from the files (the index catches up with
 * the WAL, a new WAL committer resumes after the last record, a volume writer after the last
 * needle), and the store takes writes again.
 */
class KillDuringCmd implements Cmd {
  constructor(readonly victim: Victim, readonly actor: (typeof STORE_ACTORS)[number], readonly turns: number) {}
  check(m: Readonly<Model>): boolean {
    return m.depth === 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    assertNoActorCrashes(r, `the commands before ${this.toString()}`);
    const before = new Map(m.committed);
    const shadow = new Model(m.clock);
    shadow.committed = new Map(m.committed);
    const progress = { reachedCommit: true };
    const done = runOnBoth(this.victim, shadow, r, m.now(), progress).then(
      () => true,
      (err: unknown) => {
        if (!(err instanceof StoreError && err.code === 'ACTOR_DOWN')) throw err;
        return false;
      },
    );
    for (let i = 0; i < this.turns; i++) await new Promise((resolve) => setImmediate(resolve));
    await r.db.supervisor.kill(this.actor);
    const acked = await done;
    while (r.db.depth > 0) r.db.rollback(); // a transaction the kill cut short
    await r.scheduler.advance(RESTART_WAIT_MS);
    stats.kills += 1;
    if (!acked) stats.killedOps += 1;
    const label = this.toString();
    assertNoActorCrashes(r, label);
    const states = acked ? [shadow.committed] : progress.reachedCommit ? [before, shadow.committed] : [before];
    const found = liveDump(await r.db.dump(), m.now());
    const match = states.find((st) => statesEqual(liveView(st, m.now()), found));
    if (match === undefined) {
      throw new Error(`after ${label}: the store holds ${describeState(found)}, expected ${states.map((st) => describeState(liveView(st, m.now()))).join(' or ')}`);
    }
    m.committed = new Map(match);
    // The store takes a write again, and it is visible.
    const probe = valueOf({ len: 7, seed: this.turns });
    await r.db.set('k0', probe);
    m.set('k0', probe, 0);
  }
  toString(): string {
    return `KILL-DURING(${showVictim(this.victim)}, ${this.actor} after ${this.turns} turns)`;
  }
}

// ---------------------------------------------------------------------------------------
// Arbitraries

const keyArb = fc.integer({ min: 0, max: KEYS - 1 }).map((i) => `k${i}`);

/** Mostly small values; some span several 512-byte sectors; a few pass 4 KiB. */
const valueArb: fc.Arbitrary<ValueSpec> = fc.record({
  len: fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 0, max: 600 }) },
    { weight: 3, arbitrary: fc.integer({ min: 601, max: 3000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 4097, max: 9000 }) },
  ),
  seed: fc.integer({ min: 0, max: 0xffff }),
});

const ttlArb = fc.integer({ min: 1, max: 4000 });
const seedArb = fc.integer({ min: 0, max: 0x7fffffff });
const modeArb = fc.constantFrom<CrashMode>(...CRASH_MODES);
/** A crash in the middle of an op leaves its writes pending: garbage and tears matter most there. */
const midOpModeArb: fc.Arbitrary<CrashMode> = fc.oneof(
  { arbitrary: fc.constant<CrashMode>('drop'), weight: 1 },
  { arbitrary: fc.constant<CrashMode>('prefix'), weight: 1 },
  { arbitrary: fc.constant<CrashMode>('subset-garbage'), weight: 3 },
  { arbitrary: fc.constant<CrashMode>('torn'), weight: 2 },
  { arbitrary: fc.constant<CrashMode>('random'), weight: 1 },
);

const pointArb: fc.Arbitrary<CrashPoint> = fc.oneof(
  { arbitrary: fc.record({ on: fc.constant('any' as const), n: fc.integer({ min: 1, max: 40 }) }), weight: 2 },
  { arbitrary: fc.record({ on: fc.constant('sync' as const), n: fc.integer({ min: 1, max: 4 }) }), weight: 1 },
  { arbitrary: fc.record({ on: fc.constant('write' as const), n: fc.integer({ min: 1, max: 6 }) }), weight: 1 },
  { arbitrary: fc.record({ on: fc.constant('namespace' as const), n: fc.integer({ min: 1, max: 4 }) }), weight: 1 },
  // One op writes at most one WAL record, so only the first WAL sync is ever reached.
  { arbitrary: fc.record({ on: fc.constant('wal-sync' as const), n: fc.constant(1) }), weight: 2 },
);

const txnWriteArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ key: keyArb, value: valueArb }) },
  { weight: 1, arbitrary: fc.record({ key: keyArb, del: fc.constant(true as const) }) },
);

const txnStepArb: fc.Arbitrary<TxnStep> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ op: 'begin' as const }) },
  { weight: 2, arbitrary: fc.constant({ op: 'commit' as const }) },
  { weight: 2, arbitrary: fc.constant({ op: 'rollback' as const }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('set' as const), key: keyArb, value: valueArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('del' as const), key: keyArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb }) },
);

const streamModeArb: fc.Arbitrary<StreamMode> = fc.constantFrom('sized', 'open', 'open+meta');
const chunkArb = fc.constantFrom(1, 7, 512, 1000, 4096);

const victimArb: fc.Arbitrary<Victim> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), key: keyArb, value: valueArb, ttlMs: fc.option(ttlArb, { nil: undefined, freq: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('stream' as const), key: keyArb, value: valueArb, chunk: chunkArb, mode: streamModeArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('del' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), key: keyArb, ttlMs: ttlArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('txn' as const), writes: fc.array(txnWriteArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'compact' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'checkpoint' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'maintenance' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'vacuum' as const }) },
);

/** Command arbitraries with weights (fc.commands picks uniformly, so weight = repetition). */
export function commandArbs(): fc.Arbitrary<Cmd>[] {
  const weighted: [number, fc.Arbitrary<Cmd>][] = [
    [6, fc.tuple(keyArb, valueArb).map(([k, v]) => new SetCmd(k, v, undefined))],
    [2, fc.tuple(keyArb, valueArb, ttlArb).map(([k, v, t]) => new SetCmd(k, v, t))],
    [2, fc.tuple(keyArb, valueArb, chunkArb, streamModeArb).map(([k, v, c, mode]) => new SetStreamCmd(k, v, c, mode))],
    [2, keyArb.map((k) => new DeleteCmd(k))],
    [1, fc.tuple(keyArb, ttlArb).map(([k, t]) => new ExpireCmd(k, t))],
    [1, keyArb.map((k) => new PersistCmd(k))],
    [3, keyArb.map((k) => new GetCmd(k))],
    [2, fc.constant(new BeginCmd())],
    [2, fc.constant(new CommitCmd())],
    [1, fc.constant(new RollbackCmd())],
    [2, fc.integer({ min: 1, max: 3000 }).map((ms) => new AdvanceClockCmd(ms))],
    [1, fc.constant(new MaintenanceCmd())],
    [1, fc.constant(new CompactCmd())],
    [2, fc.constant(new VacuumCmd())],
    [1, fc.constant(new CheckpointCmd())],
    [1, fc.constant(new RestartCmd())],
    [2, fc.array(txnStepArb, { minLength: 3, maxLength: 12 }).map((steps) => new TxnScriptCmd(steps))],
    [3, fc.tuple(modeArb, seedArb).map(([mode, seed]) => new CrashCmd(mode, seed))],
    [4, fc.tuple(victimArb, pointArb, midOpModeArb, seedArb).map(([v, p, mode, seed]) => new CrashDuringOpCmd(v, p, mode, seed))],
    [1, fc.tuple(modeArb, pointArb, modeArb, seedArb).map(([a, p, b, seed]) => new CrashDuringRecoveryCmd(a, p, b, seed))],
    [2, fc.tuple(victimArb, fc.constantFrom(...STORE_ACTORS), fc.integer({ min: 0, max: 8 })).map(([v, a, t]) => new KillDuringCmd(v, a, t))],
  ];
  return weighted.flatMap(([w, arb]) => Array.from({ length: w }, () => arb));
}

// ---------------------------------------------------------------------------------------
// The property and its runner

/**
 * One run: a fresh SimFs and database, the generated commands against model and engine, and
 * a last crash and recovery check at the end, so every run ends on a verified recovery.
 */
export function crashProperty(config: PropertyConfig): fc.IAsyncProperty<[Iterable<Cmd>, CrashMode, number]> {
  const cmds = fc.commands(commandArbs(), {
    maxCommands: config.maxCommands,
    size: 'max',
    ...(config.replayPath === undefined ? {} : { replayPath: config.replayPath }),
  });
  return fc.asyncProperty(cmds, modeArb, seedArb, async (commands, mode, seed) => {
    stats.runs += 1;
    const { model, real } = await freshSystem(config);
    try {
      await fc.asyncModelRun(() => ({ model, real }), commands);
      assertNoActorCrashes(real, 'the last command');
      await new CrashCmd(mode, seed).run(model, real);
    } finally {
      real.db.abandon();
    }
  });
}

export interface CheckOutcome {
  failed: boolean;
  /** fast-check's report (seed, path, counterexample, error) plus how to replay it. */
  message: string;
}

/** How to replay a failure, built from fast-check's run details. */
function replayHint<T>(details: fc.RunDetails<T>): string {
  const msg = fc.defaultReportMessage(details) ?? '';
  const replayPath = /replayPath="([^"]*)"/.exec(msg)?.[1];
  const env = [`BRISE_SEED=${details.seed}`];
  if (details.counterexamplePath !== null) env.push(`BRISE_PATH=${details.counterexamplePath}`);
  if (replayPath !== undefined) env.push(`BRISE_REPLAY_PATH=${replayPath}`);
  const error = details.errorInstance;
  const why = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return `${msg}\n\nError: ${why}\n\nReplay: ${env.join(' ')} node --test dist/property-tests/crash_recovery.test.js`;
}

export async function checkOnce(config: PropertyConfig, params: fc.Parameters<[Iterable<Cmd>, CrashMode, number]>): Promise<CheckOutcome> {
  const details = await fc.check(crashProperty(config), params);
  return { failed: details.failed, message: details.failed ? replayHint(details) : '' };
}

/** Replay settings from the environment (see README.md). */
export function replayFromEnv(): { seed?: number; path?: string; replayPath?: string } {
  const out: { seed?: number; path?: string; replayPath?: string } = {};
  if (process.env.BRISE_SEED) out.seed = Number(process.env.BRISE_SEED);
  if (process.env.BRISE_PATH) out.path = process.env.BRISE_PATH;
  if (process.env.BRISE_REPLAY_PATH) out.replayPath = process.env.BRISE_REPLAY_PATH;
  return out;
}

export function describeStats(): string {
  return (
    `crash cycles: ${stats.crashes} (during an op: ${stats.crashDuringOp}, during recovery: ${stats.crashDuringRecovery}, ` +
    `uncertain ops: ${stats.uncertainOps}; plus ${stats.verifyCrashes} recover-twice crashes) in ${stats.runs} runs; ` +
    `${stats.kills} actors killed and restarted (${stats.killedOps} with their operation cut short)`
  );
}
