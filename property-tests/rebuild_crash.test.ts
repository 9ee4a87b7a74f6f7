// Crash points of the volume log and of rebuild (docs/formats.md §Log volumes; issue 13: "the
// property tests check that a rebuild equals the live index after any crash"), the way
// vacuum_crash.test.ts does them for VACUUM: on the shipped store run in one thread over a SimFs,
// record the file operations of a run, take a clone of the SimFs at each of them as a crash
// point, and check each point in every crash mode: a process crash (every operation issued
// survives: the page cache outlives the process) and each power loss of SimFs (drop, prefix,
// subset-garbage, torn, random).
//
// Scenarios:
// - the volume log of a store's whole life: a fresh store (its WAL, its index and the log's
//   first base file created), SETs, overwrites, DELs, an EXPIRE, TTLs that run out and are
//   swept, a transaction, a FLUSH, a COMPACT (which builds a new generation of the log and
//   deletes the old one), and writes after it; the virtual clock is moved past the log's 1 s
//   fdatasync timer between phases, so some syncs of the log happen and the last writes are not
//   synced;
// - the volume log alone (WalWriter and VolumeLog driven as the committer drives them), with
//   512-byte files so that it rotates, and a clean restart that resumes a generation of several
//   files: the store's committer gives the log no file size, and 64 MiB never fills here;
// - rebuildStore itself, crashed at each of its own file operations: on a data dir whose
//   wal.log and index are lost, and forced over an intact one (the old files set aside).
// A regression test at the end is a bug these found (a store opened with index.hash and no wal.log).
//
// What must hold at every crash point, in every mode:
// (a) the store recovers, and closes cleanly; its index (every present entry: key, needle
//     address, expiry) is the history's state at its WAL's last LSN, which is at least every
//     acknowledged one; then, after one more power loss (a clean close left the log durable)
//     and with wal.log and index.hash* deleted, rebuildStore's index equals it exactly (the
//     recovered store brought the log up to its WAL);
// (b) without a recovery, with wal.log and index.hash* deleted, rebuildStore succeeds (NOT_FOUND
//     only before the log's first base file was made durable, or for a process crash before it
//     was renamed in) and its index is the history's state at the rebuilt last LSN L (a prefix of
//     what was committed, never a record out of it), with L at least the last LSN acknowledged
//     before the last fdatasync of the log that completed before the crash, and at least the last
//     one acknowledged before the last completed turn of its 1 s sync timer (the documented
//     promise: a power loss costs at most the last second), and for a process crash at least
//     every acknowledged LSN; no key points into a volume file that is not there;
// (c) crashed inside rebuildStore: a data dir whose wal.log is the rebuilt one opens and gives
//     the rebuilt index, a forced rebuild crashed at any point opens and gives it too (the old
//     files or the new ones), and rebuildStore run again succeeds and the store then opens with
//     the same index.
// "The history" is every wal.log the run wrote (the one before COMPACT, the one after), taken
// from the run without a crash; the state at (S, L) is a fresh index replayed from the wal.log
// whose snapshot LSN is S, up to L (past its end, from the later wal.logs' records).
//
// Counts: BRISE_REBUILD_CRASH_SEEDS (default 1) seeds per randomized mode;
// BRISE_REBUILD_CRASH_ALL_OPS=1 makes every operation a crash point (reads too; a soak);
// BRISE_REBUILD_CRASH_STRIDE=n only every n-th point (a quick look). Prints the file
// operations, crash points and cases of each scenario, per mode, and the totals. The default
// run is about 3,000 cases in 25 to 50 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ManualClock } from '../src/runtime/clock.js';
import { Channel } from '../src/runtime/channel.js';
import { StoreError } from '../src/runtime/errors.js';
import type { InThreadDatabase } from '../src/wiring/in_thread.js';
import { HashIndex } from '../src/storage/hash_index.js';
import { INDEX_FILE, LOG_DIR, REBUILD_MARKER, WAL_FILE, recoverIndex } from '../src/storage/store_files.js';
import { rebuildStore, type RebuildResult } from '../src/storage/store_rebuild.js';
import { replayInto } from '../src/storage/wal_reader.js';
import { WalWriter, type CommitRequest } from '../src/storage/wal_writer.js';
import { VolumeLog } from '../src/storage/log_volume.js';
import { volumeFileName } from '../src/storage/volume_format.js';
import { OpCode, type IndexEntry, type Op } from '../src/storage/types.js';
import { WalMsg, type WalReplies, type WalRequest } from '../src/protocol/wal_protocol.js';
import { WAL_ACTOR } from '../src/protocol/store_actors.js';
import { SimFs, mulberry32, type OpInfo } from './sim_fs.js';
import { READS, afterProcessCrash, crashed, label, modesWithSeeds, type CaseInfo, type Mode } from './crash_cases.js';
import { DATA_DIR, Machine, showOp, valueFor, type ProcOptions } from './fault_harness.js';

const SEEDS = Number(process.env.BRISE_REBUILD_CRASH_SEEDS ?? 1);
const ALL_OPS = process.env.BRISE_REBUILD_CRASH_ALL_OPS === '1';
/** Every n-th crash point only (a quick look while debugging). */
const STRIDE = Number(process.env.BRISE_REBUILD_CRASH_STRIDE ?? 1);
/** A longer run than npm test's: no time limit. */
const SOAK = ALL_OPS || SEEDS > 1;
/** Crash points cloned per run: bounds the memory held by clones. */
const CHUNK = 64;
/** Past the volume log's fdatasync timer (1 s, wal_committer.ts) and ten TTL sweeps. */
const TICK_MS = 1_100;


const MODES = modesWithSeeds(SEEDS);


const OPTIONS: ProcOptions = { maxVolumeSize: 8 * 1024, indexBuckets: 16, autoVacuumEveryMs: 0 };

const LOG_PATH = join(DATA_DIR, LOG_DIR);
/** A log volume as its handle names it: the base of a generation keeps its .tmp name on its handle. */
const LOG_FILE_RE = /^\/data\/log\/log-\d{6,10}\.data(\.tmp)?$/;

/** Cases run, by scenario and mode (printed per scenario, then as totals). */
const counts = new Map<string, Map<Mode, { points: number; cases: number }>>();

function count(scenario: string, mode: Mode, points: number, cases: number): void {
  const byMode = counts.get(scenario) ?? new Map<Mode, { points: number; cases: number }>();
  counts.set(scenario, byMode);
  const c = byMode.get(mode) ?? { points: 0, cases: 0 };
  c.points += points;
  c.cases += cases;
  byMode.set(mode, c);
}

function countsOf(scenario: string): string {
  return [...(counts.get(scenario) ?? [])].map(([m, c]) => `${m} ${c.cases}`).join(', ');
}

// ---------------------------------------------------------------------------------------
// Indexes as comparable maps

/** An entry as the index and a rebuild must agree on it: its needle and its expiry. */
function entryOf(e: IndexEntry): string {
  const a = e.address;
  return `${a.volume}:${a.offset}:${a.length}:${a.meta ?? '-'}@${e.expiresAt}`;
}

type Entries = Map<string, string>;

/** Every present entry (entries(0): nothing has expired at time 0), by key. */
function entriesOf(index: HashIndex): Entries {
  return new Map([...index.entries(0)].map((e) => [Buffer.from(e.key).toString('latin1'), entryOf(e)]));
}

/** The index of a data dir, as an open would have it: index.hash and the WAL after it. */
function indexOfDir(fs: SimFs): Entries {
  const index = recoverIndex(fs, DATA_DIR, OPTIONS.indexBuckets);
  try {
    return entriesOf(index);
  } finally {
    index.close();
  }
}

function entriesEqual(a: Entries, b: Entries): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

function entriesDiff(a: Entries, b: Entries, an: string, bn: string): string {
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const diff = keys.filter((k) => a.get(k) !== b.get(k));
  const shown = diff.slice(0, 8).map((k) => `${k}: ${an} ${a.get(k) ?? '-'}, ${bn} ${b.get(k) ?? '-'}`);
  return `${diff.length} key(s) differ (${a.size} vs ${b.size} entries): ${shown.join('; ')}`;
}

function assertEntries(found: Entries, want: Entries, what: string, foundName: string, wantName: string): void {
  if (!entriesEqual(found, want)) throw new Error(`${what}: ${entriesDiff(found, want, foundName, wantName)}`);
}

/** The snapshot LSN and last LSN of the data dir's wal.log. */
function walPosition(fs: SimFs, path = join(DATA_DIR, WAL_FILE)): { snapshotLsn: number; lastLsn: number } {
  const end = replayInto(fs, path, Number.MAX_SAFE_INTEGER, () => undefined);
  return { snapshotLsn: end.snapshotLsn, lastLsn: end.lastLsn };
}

// ---------------------------------------------------------------------------------------
// The history: every wal.log the run wrote, and the state at any (snapshot LSN, LSN) of it

class History {
  /** Snapshot LSN -> the longest image of the wal.log that began there. */
  private readonly wals = new Map<number, { bytes: Uint8Array; lastLsn: number }>();
  private readonly states = new Map<string, Entries>();
  /** Op codes of the records seen, and the most ops in one record (a transaction's). */
  readonly opCodes = new Set<number>();
  maxOps = 0;

  /** Keeps `bytes` (a whole wal.log) when it is the longest of its snapshot LSN so far. */
  add(bytes: Uint8Array): void {
    const fs = scratchFs(bytes);
    const { snapshotLsn, lastLsn } = replayInto(fs, '/ref/wal.log', 0, (r) => {
      if (r.kind !== 0) return;
      for (const op of r.ops) this.opCodes.add(op.code);
      this.maxOps = Math.max(this.maxOps, r.ops.length);
    });
    const had = this.wals.get(snapshotLsn);
    if (had === undefined || had.lastLsn < lastLsn) this.wals.set(snapshotLsn, { bytes, lastLsn });
  }

  get generations(): number[] {
    return [...this.wals.keys()].sort((a, b) => a - b);
  }

  lastLsnOf(snapshotLsn: number): number | undefined {
    return this.wals.get(snapshotLsn)?.lastLsn;
  }

  /**
   * The index after the wal.log of snapshot LSN `s`, replayed up to `lsn`; records past that
   * wal.log's end are the later wal.logs' (LSNs go on across a COMPACT), so a generation of the
   * log that took records after the swap is judged as a copy of the same history.
   */
  stateAt(s: number, lsn: number): Entries {
    const key = `${s}:${lsn}`;
    const cached = this.states.get(key);
    if (cached !== undefined) return cached;
    const first = this.wals.get(s);
    if (lsn < s) throw new Error(`LSN ${lsn} is before snapshot LSN ${s}`);
    if (first === undefined) throw new Error(`no wal.log of the history begins at snapshot LSN ${s} (the history has ${this.generations.join(', ')})`);
    const index = HashIndex.open(new SimFs(), '/ref.hash', { initialBuckets: 16 });
    try {
      let reached = s;
      for (const g of this.generations.filter((g) => g >= s)) {
        // A later wal.log begins with a snapshot the records so far already hold: only its records after them.
        const later = g !== s;
        if (later && (reached >= lsn || g > reached)) break; // done, or a gap: records (reached, g] are in no wal.log kept
        const after = reached;
        const fs = scratchFs(this.wals.get(g)!.bytes);
        replayInto(fs, '/ref/wal.log', 0, (r) => {
          if (r.lsn > lsn || (later && (r.kind === 1 || r.lsn <= after))) return;
          index.apply(r);
          if (r.kind === 0) reached = r.lsn;
        });
      }
      if (reached < lsn) throw new Error(`LSN ${lsn} is past the history's records from snapshot LSN ${s} (they end at ${reached}; wal.logs at ${this.generations.map((g) => `${g}..${this.wals.get(g)!.lastLsn}`).join(', ')})`);
      const state = entriesOf(index);
      this.states.set(key, state);
      return state;
    } finally {
      index.close();
    }
  }
}

function scratchFs(wal: Uint8Array): SimFs {
  const fs = new SimFs();
  fs.mkdir('/ref');
  const h = fs.open('/ref/wal.log', 'create');
  h.write(wal, 0);
  h.close();
  return fs;
}

// ---------------------------------------------------------------------------------------
// What the run had made durable, followed from its file operations

/**
 * Follows the run: the WAL's last LSN after each acknowledged write, and from the file
 * operations, the last LSN the volume log holds durably (the floor of a rebuild after a power
 * loss) and whether its first base file is renamed in (and durable).
 */
class Durability {
  /** The WAL's last LSN, read after the latest acknowledged write (every record up to it is committed and in the log). */
  ackedLsn = 0;
  /** ackedLsn when the latest fdatasync of a log volume whose name was durable began (once it completed). */
  syncedFloor = 0;
  baseRenamed = false;
  baseInstalled = false;
  /** fdatasyncs of log volumes whose name was durable (the timer's, the close's, a rotation's). */
  timerSyncs = 0;
  /**
   * The log's promise in time, whatever its operations: ackedLsn when the latest completed turn
   * of its 1 s sync timer began (a power loss costs at most the last second), and the turns.
   */
  tickFloor = 0;
  ticks = 0;
  private readonly known = new Set<string>();
  /** Log volumes created or renamed in since the last fsync of the log directory: their names may not survive. */
  private readonly namePending = new Set<string>();
  /** Bases (.tmp) renamed in and made durable by a directory fsync (their handles keep the .tmp name). */
  private readonly installed = new Set<string>();
  /** A file's fdatasync before its name was durable: its floor once the directory fsync makes it so. */
  private readonly pendingFloors = new Map<string, number>();

  /** Called as each operation begins: it has completed once the next one begins. */
  onOp(op: OpInfo): void {
    if (op.op === 'syncDir' && op.path === LOG_PATH) return this.onLogDirSync();
    if (!LOG_FILE_RE.test(op.path)) return;
    const tmp = op.path.endsWith('.tmp');
    if (op.op === 'open' && !this.known.has(op.path)) {
      this.known.add(op.path);
      if (!tmp) this.namePending.add(op.path); // a rotation's new file (a first open is a creation)
    } else if (op.op === 'sync') {
      if (tmp ? this.installed.has(op.path) : !this.namePending.has(op.path)) {
        this.syncedFloor = Math.max(this.syncedFloor, this.ackedLsn);
        this.timerSyncs += 1;
      } else {
        this.pendingFloors.set(op.path, Math.max(this.pendingFloors.get(op.path) ?? 0, this.ackedLsn));
      }
    } else if (op.op === 'rename' && tmp) {
      const final = op.path.slice(0, -'.tmp'.length);
      this.known.add(final);
      this.namePending.add(op.path);
      this.namePending.add(final);
      this.baseRenamed = true;
    }
  }

  private onLogDirSync(): void {
    for (const path of this.namePending) {
      if (path.endsWith('.tmp')) {
        this.installed.add(path);
        this.baseInstalled = true;
      }
      const floor = this.pendingFloors.get(path);
      if (floor !== undefined) this.syncedFloor = Math.max(this.syncedFloor, floor);
      this.pendingFloors.delete(path);
    }
    this.namePending.clear();
  }

  copy(): DurableAt {
    const { ackedLsn, syncedFloor, baseRenamed, baseInstalled, timerSyncs, tickFloor, ticks } = this;
    return { ackedLsn, syncedFloor, baseRenamed, baseInstalled, timerSyncs, tickFloor, ticks };
  }

  /** Runs one turn of the log's sync timer; afterwards what was acknowledged before it is durable. */
  async tick(turn: () => Promise<void>): Promise<void> {
    const before = this.ackedLsn;
    await turn();
    this.ticked(before);
  }

  tickNow(turn: () => void): void {
    const before = this.ackedLsn;
    turn();
    this.ticked(before);
  }

  private ticked(before: number): void {
    this.tickFloor = Math.max(this.tickFloor, before);
    this.ticks += 1;
  }
}

type DurableAt = Pick<Durability, 'ackedLsn' | 'syncedFloor' | 'baseRenamed' | 'baseInstalled' | 'timerSyncs' | 'tickFloor' | 'ticks'>;

// ---------------------------------------------------------------------------------------
// The run: a store's life, from a fresh data dir

interface RunCtx {
  fs: SimFs;
  clock: ManualClock;
  machine: Machine;
  db: InThreadDatabase | undefined;
  durability: Durability;
}

function newRun(pid: number): RunCtx {
  const fs = new SimFs();
  fs.mkdir(DATA_DIR);
  const clock = new ManualClock();
  return { fs, clock, machine: new Machine(fs, clock, OPTIONS, pid), db: undefined, durability: new Durability() };
}

async function walLastLsn(db: InThreadDatabase): Promise<number> {
  return new Channel<WalRequest, WalReplies>(db.supervisor.peer(WAL_ACTOR)).call({ t: WalMsg.LastLsn });
}

/** Awaits an acknowledged write, then notes the WAL's last LSN. */
async function acked(ctx: RunCtx, write: Promise<unknown>): Promise<void> {
  await write;
  ctx.durability.ackedLsn = await walLastLsn(ctx.db!);
}

/** Past the log's fdatasync timer: a sync of the log, TTL sweeps (their DEL_IF records), the index's timers. */
async function tick(ctx: RunCtx): Promise<void> {
  await ctx.durability.tick(async () => {
    await ctx.machine.scheduler.advance(TICK_MS);
    await ctx.machine.scheduler.settle();
  });
  ctx.durability.ackedLsn = await walLastLsn(ctx.db!);
}

async function put(ctx: RunCtx, key: string, version: number, ttlMs?: number): Promise<void> {
  await acked(ctx, ctx.db!.set(key, valueFor(key, version), ttlMs === undefined ? {} : { ttlMs }));
}

async function storeLife(ctx: RunCtx): Promise<void> {
  ctx.db = await ctx.machine.open();
  const db = ctx.db;
  // SETs, two with a TTL (one runs out two ticks later, one never).
  for (let i = 0; i < 8; i++) await put(ctx, `k${i}`, 1);
  await put(ctx, 'ttl-short', 1, 1_500);
  await put(ctx, 'ttl-long', 1, 10 ** 9);
  await tick(ctx);
  // Overwrites, DELs, an EXPIRE that runs out within the next tick, a transaction.
  for (let i = 0; i < 4; i++) await put(ctx, `k${i}`, 2);
  await acked(ctx, db.delete('k4'));
  await acked(ctx, db.delete('k5', 'nope'));
  await acked(ctx, db.expire('k2', 600));
  const tx = db.session();
  tx.begin();
  await tx.set('tx0', valueFor('tx0', 1));
  await tx.set('tx1', valueFor('tx1', 1), { ttlMs: 10 ** 8 });
  await tx.delete('k1');
  await tx.set('k3', valueFor('k3', 3));
  await acked(ctx, tx.commit());
  await tick(ctx);
  // FLUSH, then a new keyspace.
  await acked(ctx, db.flushAll());
  for (let i = 0; i < 6; i++) await put(ctx, `f${i}`, 1);
  await put(ctx, 'f-ttl', 1, 300);
  await acked(ctx, db.delete('f5'));
  await tick(ctx);
  // COMPACT: the WAL cut to a snapshot, the log's new generation built from it; the write before
  // it is not yet synced in the old generation, only in the new one.
  await put(ctx, 'f2', 2);
  await acked(ctx, db.compact());
  for (let i = 0; i < 3; i++) await put(ctx, `c${i}`, 1);
  await put(ctx, 'f0', 2);
  await tick(ctx);
  // The last writes: acknowledged, not yet synced in the log.
  await put(ctx, 'e0', 1);
  await acked(ctx, db.delete('f1'));
}

// ---------------------------------------------------------------------------------------
// Crashes

interface Point {
  /** 1-based index of the operation in the run's trace; N + 1: after the run. */
  k: number;
  op: OpInfo | undefined;
  fs: SimFs;
  clockMs: number;
  durable: DurableAt;
}





/** The data dir with wal.log and every index file gone: what a rebuild is for. */
function loseWalAndIndex(fs: SimFs): void {
  for (const name of fs.readdir(DATA_DIR)) {
    if (name === WAL_FILE || name.startsWith(INDEX_FILE)) fs.unlink(join(DATA_DIR, name));
  }
}

function rebuild(fs: SimFs, clockMs: number, stamp: string, force = false): RebuildResult {
  return rebuildStore(fs, DATA_DIR, { drives: [], force, stamp, nowMs: clockMs });
}

/** Each open is a new process: a pid no earlier open had, so a LOCK left by one is stale. */
let nextPid = 10_000;

async function openAndClose(fs: SimFs, clockMs: number, where: string): Promise<void> {
  nextPid += 10;
  const db = await new Machine(fs, new ManualClock(clockMs), OPTIONS, nextPid).open();
  try {
    const crashes = db.actorCrashes();
    if (crashes.length > 0) throw new Error(`${where}: actor ${crashes[0]!.name} crashed: ${crashes[0]!.error}`);
    await db.close();
  } catch (err) {
    db.abandon();
    throw err;
  }
}

function rebuiltEntries(fs: SimFs, r: RebuildResult, where: string): Entries {
  assert.equal(r.replaced, true, `${where}: the rebuild replaced nothing`);
  assert.equal(r.keysWithoutVolume, 0, `${where}: ${r.keysWithoutVolume} key(s) point into volumes not on the drive: ${r.missingVolumes.join(', ')}`);
  const pos = walPosition(fs);
  assert.equal(pos.lastLsn, r.log.lastLsn, `${where}: the rebuilt wal.log ends at LSN ${pos.lastLsn}, the rebuild says ${r.log.lastLsn}`);
  assert.equal(pos.snapshotLsn, r.log.baseLsn, `${where}: the rebuilt wal.log begins at snapshot LSN ${pos.snapshotLsn}, the rebuild read generation ${r.log.baseLsn}`);
  return indexOfDir(fs);
}

/** (b): a rebuild straight from the crashed disk, wal.log and index lost. */
function checkRebuildWithoutRecovery(fs: SimFs, p: Point, info: CaseInfo, history: History): void {
  const where = `${label(info)}, rebuild without recovery`;
  loseWalAndIndex(fs);
  let r: RebuildResult;
  try {
    r = rebuild(fs, p.clockMs, 'no-recovery');
  } catch (err) {
    const mayLack = info.mode === 'process' ? !p.durable.baseRenamed : !p.durable.baseInstalled && p.durable.ticks === 0;
    if (err instanceof StoreError && err.code === 'NOT_FOUND' && mayLack) return;
    throw new Error(`${where}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
  }
  const L = r.log.lastLsn;
  const d = p.durable;
  const [floor, why] = info.mode === 'process' ? [d.ackedLsn, 'acknowledged'] : d.syncedFloor >= d.tickFloor ? [d.syncedFloor, 'acknowledged before the last completed fdatasync of the log'] : [d.tickFloor, "acknowledged before the last completed turn of the log's sync timer"];
  assert.ok(L >= floor, `${where}: rebuilt up to LSN ${L}, below ${floor} (${why})`);
  assertEntries(rebuiltEntries(fs, r, where), history.stateAt(r.log.baseLsn!, L), `${where}: the rebuilt index is not the history's state at (snapshot ${r.log.baseLsn}, LSN ${L})`, 'rebuilt', 'history');
}

/** How a scenario recovers from a crash: the store's open and clean close, or the log's own. */
type Recover = (fs: SimFs, clockMs: number, where: string) => Promise<void>;

/** (a): recover, close, then a rebuild from what the recovered store left equals its index. */
async function checkRebuildAfterRecovery(fs: SimFs, p: Point, info: CaseInfo, history: History, recover: Recover): Promise<void> {
  const where = `${label(info)}, recovery then rebuild`;
  await recover(fs, p.clockMs, where);
  const recovered = indexOfDir(fs.clone());
  const pos = walPosition(fs);
  assert.ok(pos.lastLsn >= p.durable.ackedLsn, `${where}: the recovered WAL ends at LSN ${pos.lastLsn}, before the acknowledged ${p.durable.ackedLsn}`);
  assertEntries(recovered, history.stateAt(pos.snapshotLsn, pos.lastLsn), `${where}: the recovered index is not the history's state at (snapshot ${pos.snapshotLsn}, LSN ${pos.lastLsn})`, 'recovered', 'history');
  // A clean close leaves the log durable up to the WAL: a power loss now costs the rebuild nothing.
  fs.crash('drop', mulberry32(info.seed + 31));
  loseWalAndIndex(fs);
  const r = rebuild(fs, p.clockMs, 'after-recovery');
  assert.equal(r.log.lastLsn, pos.lastLsn, `${where}: the rebuild ends at LSN ${r.log.lastLsn}, the recovered WAL at ${pos.lastLsn}`);
  assert.equal(r.log.dropped, null, `${where}: the rebuild dropped records ${JSON.stringify(r.log.dropped)}`);
  assertEntries(rebuiltEntries(fs, r, where), recovered, `${where}: the rebuilt index is not the recovered one`, 'rebuilt', 'recovered');
}

async function checkPoint(scenario: string, p: Point, history: History, recover: Recover = openAndClose): Promise<void> {
  for (const [mode, modeSeeds] of MODES) {
    let cases = 0;
    for (const seed of modeSeeds) {
      const info: CaseInfo = { scenario, k: p.k, op: p.op, mode, seed };
      const disk = crashed(p.fs, p.k, mode, seed);
      try {
        checkRebuildWithoutRecovery(disk.clone(), p, info, history);
        await checkRebuildAfterRecovery(disk, p, info, history, recover);
      } catch (err) {
        if (err instanceof Error && err.message.startsWith(scenario)) throw err;
        throw new Error(`${label(info)}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
      }
      cases += 1;
    }
    count(scenario, mode, 1, cases);
  }
}

// ---------------------------------------------------------------------------------------
// Scenario 1: the store's life

const LIFE = "a store's life (fresh store, SETs, overwrites, DELs, EXPIRE, TTL sweeps, a transaction, FLUSH, COMPACT)";

interface LifeRun {
  trace: string[];
  /** The disk after the run, the store abandoned (a process crash at the end). */
  last: Point;
  walAtEnd: Uint8Array;
}

/**
 * Runs the life with a clone taken at each of `wanted` (0-based op indexes) and every wal.log
 * image before its swap given to `onWal`. With `expect`, checks the run traces the same
 * operations (a crash point must be the same point in every run).
 */
async function lifeRun(wanted: ReadonlySet<number>, onPoint: (p: Point) => void, onWal: (bytes: Uint8Array) => void, expect?: string[]): Promise<LifeRun> {
  const ctx = newRun(1000);
  const trace: string[] = [];
  let diverged: string | undefined;
  const walPath = join(DATA_DIR, WAL_FILE);
  ctx.fs.failAfter(1, 'eio', {
    match: (op) => {
      const i = trace.length;
      trace.push(showOp(op));
      if (expect !== undefined && diverged === undefined && trace[i] !== expect[i]) diverged = `op #${i + 1} is ${trace[i]}, was ${expect[i] ?? '(none)'}`;
      if (wanted.has(i)) onPoint({ k: i + 1, op, fs: ctx.fs.clone(), clockMs: ctx.clock.now(), durable: ctx.durability.copy() });
      // The wal.log about to be replaced (COMPACT's swap): the history of the generation it began.
      if (op.op === 'rename' && op.path === `${walPath}.tmp`) {
        const before = ctx.fs.clone();
        if (before.exists(walPath)) onWal(before.readFile(walPath));
      }
      ctx.durability.onOp(op);
      return false;
    },
  });
  try {
    await storeLife(ctx);
    ctx.fs.disarm();
    const crashes = ctx.db!.actorCrashes();
    assert.equal(crashes.length, 0, `${LIFE}: actor crashes in the run: ${JSON.stringify(crashes)}`);
  } finally {
    ctx.fs.disarm();
    ctx.db?.abandon();
  }
  assert.equal(diverged, undefined, `${LIFE}: the run is not deterministic: ${diverged}`);
  if (expect !== undefined) assert.equal(trace.length, expect.length, `${LIFE}: the run did ${trace.length} file operations, the first ${expect.length}`);
  const fs = ctx.fs.clone();
  const last: Point = { k: trace.length + 1, op: undefined, fs, clockMs: ctx.clock.now(), durable: ctx.durability.copy() };
  return { trace, last, walAtEnd: fs.clone().readFile(walPath) };
}

/** The log's operations the life must do, or its crash points test less than they claim. */
const LIFE_MUST_TOUCH = [
  /^rename \/data\/log\/log-000001\.data\.tmp$/,
  /^write \/data\/log\/log-000001\.data(\.tmp)?$/,
  /^rename \/data\/wal\.log\.tmp$/,
  /^rename \/data\/log\/log-000002\.data\.tmp$/,
  /^unlink \/data\/log\/log-000001\.data$/,
  /^write \/data\/log\/log-000002\.data(\.tmp)?$/,
];
async function runLife(): Promise<{ ops: number; points: number }> {
  const history = new History();
  const dry = await lifeRun(new Set(), () => undefined, (bytes) => history.add(bytes));
  history.add(dry.walAtEnd);
  const { trace } = dry;
  for (const want of LIFE_MUST_TOUCH) assert.ok(trace.some((t) => want.test(t)), `${LIFE}: the run never did ${want}; trace: ${trace.filter((t) => !t.startsWith('read ')).join(', ')}`);
  assert.ok(history.generations.length >= 2, `${LIFE}: the history has wal.logs at snapshot LSNs ${history.generations.join(', ')}; COMPACT should have begun a second`);
  // The records the life claims to write: SET, DEL, EXPIRE, the sweep's DEL_IF, FLUSH, a transaction of 4 ops.
  for (const code of [OpCode.Set, OpCode.Del, OpCode.Expire, OpCode.DelIf, OpCode.Flush]) assert.ok(history.opCodes.has(code), `${LIFE}: no record of op ${code} in the WAL (ops ${[...history.opCodes].join(', ')})`);
  assert.ok(history.maxOps >= 4, `${LIFE}: no record holds the transaction's 4 ops`);
  const d = dry.last.durable;
  // The timer's syncs happened (in both generations), and the last writes were left unsynced.
  assert.ok(d.baseInstalled && d.timerSyncs >= 4 && d.syncedFloor > 0 && d.syncedFloor < d.ackedLsn, `${LIFE}: the log should have been synced by its timer, up to an LSN below the last acknowledged one: ${JSON.stringify(d)}`);

  const points = trace.map((_, i) => i).filter((i) => ALL_OPS || !READS.has(trace[i]!.split(' ')[0]!)).filter((_, j) => j % STRIDE === 0);
  for (let c = 0; c < points.length; c += CHUNK) {
    const taken: Point[] = [];
    const run = await lifeRun(new Set(points.slice(c, c + CHUNK)), (p) => taken.push(p), () => undefined, trace);
    assert.ok(Buffer.from(run.walAtEnd).equals(Buffer.from(dry.walAtEnd)), `${LIFE}: the run wrote another wal.log than the first run`);
    for (const p of taken) await checkPoint(LIFE, p, history);
  }
  await checkPoint(LIFE, dry.last, history);
  return { ops: trace.length, points: points.length + 1 };
}

test(`rebuild crash points: ${LIFE}`, { timeout: SOAK ? Infinity : 300_000 }, async () => {
  const started = Date.now();
  const { ops, points } = await runLife();
  console.log(`rebuild crash points: ${LIFE}: ${ops} file operations, ${points} crash points; cases by mode: ${countsOf(LIFE)}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.ok(points > 100, `only ${points} crash points`);
});

// ---------------------------------------------------------------------------------------
// Scenario 1b: the volume log alone, with files small enough to rotate

// The store's committer gives VolumeLog no rotateBytes (64 MiB files), so its life never
// rotates; here the WAL writer and the volume log are driven as the committer drives them
// (append after each group commit, syncIfDirty as its timer, close at a stop), with 512-byte
// files: rotations (the full file fsynced, the next created, its name made durable by the next
// sync), a clean restart that resumes a generation of several files, and unsynced writes at the end.

const ROTATION = 'the volume log alone: rotations into new files, timer syncs, a clean restart';
const ROTATE_BYTES = 512;

interface LogRig {
  fs: SimFs;
  wal: WalWriter;
  log: VolumeLog;
  durability: Durability;
  clockMs: number;
  groups: number;
}

function openLog(fs: SimFs): { wal: WalWriter; log: VolumeLog } {
  const walPath = join(DATA_DIR, WAL_FILE);
  const wal = WalWriter.open(fs, walPath, { sync: 'always' });
  const log = VolumeLog.open(fs, LOG_PATH, { path: walPath, snapshotLsn: wal.snapshotLsn, lastLsn: wal.lastLsn }, { sync: 'always', rotateBytes: ROTATE_BYTES });
  return { wal, log };
}

/** One group commit of `n` records (SETs into volume 0, every third a DEL), copied to the log as the committer does. */
function groupCommit(rig: LogRig, n: number): void {
  const requests: CommitRequest[] = [];
  for (let i = 0; i < n; i++) {
    const g = rig.groups++;
    const key = new TextEncoder().encode(`r${g % 7}`);
    const ops: Op[] = g % 3 === 2 ? [{ code: OpCode.Del, key }] : [{ code: OpCode.Set, key, address: { volume: 0, offset: 64 + 8 * g, length: 40 + (g % 5) }, expiresAt: g % 4 === 0 ? 0 : 10 ** 13 + g }];
    requests.push({ ops, timeMs: rig.clockMs });
  }
  const records = rig.wal.commit(requests);
  rig.log.append(rig.wal.lastBatchBytes, records[0]!.lsn);
  rig.durability.ackedLsn = rig.wal.lastLsn;
}

function logLife(rig: LogRig): void {
  for (let g = 0; g < 10; g++) {
    groupCommit(rig, 1 + (g % 3));
    if (g % 4 === 3) rig.durability.tickNow(() => rig.log.syncIfDirty());
  }
  // A clean restart: the log resumes its generation of several files.
  rig.log.close();
  rig.wal.close();
  ({ wal: rig.wal, log: rig.log } = openLog(rig.fs));
  for (let g = 0; g < 8; g++) {
    groupCommit(rig, 1 + (g % 2));
    if (g % 3 === 2) rig.durability.tickNow(() => rig.log.syncIfDirty());
  }
  rig.durability.tickNow(() => rig.log.syncIfDirty());
  // The last groups: acknowledged, not yet synced in the log.
  for (let g = 0; g < 3; g++) groupCommit(rig, 1);
}

async function recoverLog(fs: SimFs, _clockMs: number, where: string): Promise<void> {
  const { wal, log } = openLog(fs);
  try {
    assert.equal(log.failed, null, `${where}: the volume log failed at open: ${log.failed}`);
    assert.equal(log.lastLsn, wal.lastLsn, `${where}: the volume log opened at LSN ${log.lastLsn}, the WAL is at ${wal.lastLsn}`);
  } finally {
    log.close();
    wal.close();
  }
}

async function runRotation(): Promise<{ ops: number; points: number }> {
  const fs = new SimFs();
  fs.mkdir(DATA_DIR);
  // The volume the records point into (rebuildStore looks for it).
  fs.mkdir(join(DATA_DIR, 'volumes'));
  const vol = fs.open(join(DATA_DIR, 'volumes', volumeFileName(0)), 'create');
  vol.sync();
  vol.close();
  fs.syncDir(join(DATA_DIR, 'volumes'));
  const clockMs = 1_700_000_000_000;
  const points: Point[] = [];
  const trace: string[] = [];
  const durability = new Durability();
  fs.failAfter(1, 'eio', {
    match: (op) => {
      trace.push(showOp(op));
      if (ALL_OPS || !READS.has(op.op)) points.push({ k: trace.length, op, fs: fs.clone(), clockMs, durable: durability.copy() });
      durability.onOp(op);
      return false;
    },
  });
  let rig: LogRig;
  try {
    rig = { fs, ...openLog(fs), durability, clockMs, groups: 0 };
    logLife(rig);
  } finally {
    fs.disarm();
  }
  // Rotated at least three times: files 2.. created under their own names, written, their names synced.
  for (const want of [/^open \/data\/log\/log-000004\.data$/, /^syncDir \/data\/log$/, /^write \/data\/log\/log-00000[2-9]\.data$/]) {
    assert.ok(trace.some((t) => want.test(t)), `${ROTATION}: the run never did ${want}; trace: ${trace.join(', ')}`);
  }
  assert.equal(rig.log.failed, null, `${ROTATION}: the log failed: ${rig.log.failed}`);
  const d = durability.copy();
  assert.ok(d.syncedFloor > 0 && d.syncedFloor < d.ackedLsn, `${ROTATION}: the log should be synced up to an LSN below the last acknowledged one: ${JSON.stringify(d)}`);
  const history = new History();
  history.add(fs.clone().readFile(join(DATA_DIR, WAL_FILE)));
  points.push({ k: trace.length + 1, op: undefined, fs: fs.clone(), clockMs, durable: d });
  for (const p of points) await checkPoint(ROTATION, p, history, recoverLog);
  return { ops: trace.length, points: points.length };
}

test(`rebuild crash points: ${ROTATION}`, { timeout: SOAK ? Infinity : 300_000 }, async () => {
  const started = Date.now();
  const { ops, points } = await runRotation();
  console.log(`rebuild crash points: ${ROTATION}: ${ops} file operations, ${points} crash points; cases by mode: ${countsOf(ROTATION)}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.ok(points > 50, `only ${points} crash points`);
});

// ---------------------------------------------------------------------------------------
// Scenario 2: crashes inside rebuildStore

interface RebuildVariant {
  name: string;
  /** The data dir as the rebuild finds it (from a store's life, closed cleanly). */
  prepare(fs: SimFs): void;
  force: boolean;
  mustTouch: RegExp[];
}

const REBUILDS: RebuildVariant[] = [
  {
    name: 'rebuildStore of a data dir whose wal.log and index are lost',
    prepare: loseWalAndIndex,
    force: false,
    mustTouch: [/^sync \/data\/wal\.log\.tmp$/, /^rename \/data\/wal\.log\.tmp$/, /^syncDir \/data$/, /^rename \/data\/index\.hash\.tmp$/],
  },
  {
    name: 'rebuildStore --force over an intact wal.log and index (the old files set aside)',
    prepare: () => undefined,
    force: true,
    mustTouch: [/^rename \/data\/wal\.log$/, /^rename \/data\/index\.hash$/, /^rename \/data\/index\.hash\.heads$/, /^rename \/data\/wal\.log\.tmp$/, /^syncDir \/data$/],
  },
];

/** A store's life, then a clean close (the log brought up to the WAL and synced): what a rebuild starts from. */
async function closedLife(): Promise<{ fs: SimFs; clockMs: number; want: Entries; history: History }> {
  const history = new History();
  const run = await lifeRun(new Set(), () => undefined, (bytes) => history.add(bytes));
  history.add(run.walAtEnd);
  const fs = afterProcessCrash(run.last.fs);
  await openAndClose(fs, run.last.clockMs, `${LIFE}: a clean close after it`);
  const want = indexOfDir(fs.clone());
  const pos = walPosition(fs);
  assertEntries(want, history.stateAt(pos.snapshotLsn, pos.lastLsn), `${LIFE}: after a clean close`, 'index', 'history');
  assert.equal(pos.lastLsn, history.lastLsnOf(pos.snapshotLsn), `${LIFE}: a clean close left a WAL at LSN ${pos.lastLsn}, the history's ends at ${history.lastLsnOf(pos.snapshotLsn)}`);
  return { fs, clockMs: run.last.clockMs, want, history };
}

/** The error an open of the data dir fails with (null when it opened; then it is closed). */
async function openRefusal(fs: SimFs, clockMs: number): Promise<unknown> {
  nextPid += 10;
  return new Machine(fs, new ManualClock(clockMs), OPTIONS, nextPid).open().then(
    async (db) => {
      await db.close();
      return null;
    },
    (err: unknown) => err,
  );
}

/** After a crash inside rebuildStore: the data dir opens (when it has its wal.log), and a second rebuild gives the same index. */
async function checkRebuildCrash(disk: SimFs, clockMs: number, want: Entries, rebuiltWal: Uint8Array, info: CaseInfo): Promise<void> {
  const where = label(info);
  const walPath = join(DATA_DIR, WAL_FILE);
  // Cut short between its first rename and the new index: an open refuses, naming the way out.
  if (disk.exists(join(DATA_DIR, REBUILD_MARKER))) {
    const refused = await openRefusal(disk.clone(), clockMs);
    assert.ok(refused instanceof StoreError && refused.code === 'CORRUPT' && /cmd\/rebuild\.js/.test(refused.message), `${where}: an open of a data dir whose rebuild was cut short was not refused: ${String(refused)}`);
  } else if (disk.exists(walPath)) {
    // A wal.log here is the old one (intact: --force) or the rebuilt one (renamed in after its fsync).
    const wal = disk.readFile(walPath);
    assert.ok(info.scenario.includes('--force') || Buffer.from(wal).equals(Buffer.from(rebuiltWal)), `${where}: wal.log is neither the old one nor the rebuilt one (${wal.length} bytes)`);
    const direct = disk.clone();
    await openAndClose(direct, clockMs, `${where}, an open without a second rebuild`);
    assertEntries(indexOfDir(direct), want, `${where}: the data dir opened without a second rebuild has another index`, 'opened', 'rebuilt');
  }
  const r = rebuild(disk, clockMs, 'second');
  assert.equal(r.log.dropped, null, `${where}: the second rebuild dropped records ${JSON.stringify(r.log.dropped)}`);
  await openAndClose(disk, clockMs, `${where}, an open after a second rebuild`);
  assertEntries(indexOfDir(disk), want, `${where}: after a second rebuild and an open`, 'opened', 'rebuilt');
}

async function runRebuildCrashes(v: RebuildVariant): Promise<{ ops: number; points: number }> {
  const life = await closedLife();
  const base = life.fs.clone();
  v.prepare(base);
  // The rebuild without a crash: its trace, and what it gives.
  const dry = base.clone();
  const points: Pick<Point, 'k' | 'op' | 'fs'>[] = [];
  const trace: string[] = [];
  dry.failAfter(1, 'eio', {
    match: (op) => {
      trace.push(showOp(op));
      if (ALL_OPS || !READS.has(op.op)) points.push({ k: trace.length, op, fs: dry.clone() });
      return false;
    },
  });
  let r: RebuildResult;
  try {
    r = rebuild(dry, life.clockMs, 'first', v.force);
  } finally {
    dry.disarm();
  }
  for (const want of v.mustTouch) assert.ok(trace.some((t) => want.test(t)), `${v.name}: the rebuild never did ${want}; trace: ${trace.join(', ')}`);
  assert.equal(r.log.dropped, null, `${v.name}: the rebuild dropped records`);
  assertEntries(rebuiltEntries(dry.clone(), r, v.name), life.want, `${v.name}: the rebuilt index is not the closed store's`, 'rebuilt', 'store');
  const rebuiltWal = dry.readFile(join(DATA_DIR, WAL_FILE));
  points.push({ k: trace.length + 1, op: undefined, fs: dry.clone() });
  for (const p of points) {
    for (const [mode, modeSeeds] of MODES) {
      for (const seed of modeSeeds) {
        const info: CaseInfo = { scenario: v.name, k: p.k, op: p.op, mode, seed };
        try {
          await checkRebuildCrash(crashed(p.fs, p.k, mode, seed), life.clockMs, life.want, rebuiltWal, info);
        } catch (err) {
          if (err instanceof Error && err.message.startsWith(v.name)) throw err;
          throw new Error(`${label(info)}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
        }
      }
      count(v.name, mode, 1, modeSeeds.length);
    }
  }
  return { ops: trace.length, points: points.length };
}

for (const v of REBUILDS) {
  test(`rebuild crash points: ${v.name}`, { timeout: SOAK ? Infinity : 300_000 }, async () => {
    const started = Date.now();
    const { ops, points } = await runRebuildCrashes(v);
    console.log(`rebuild crash points: ${v.name}: ${ops} file operations, ${points} crash points; cases by mode: ${countsOf(v.name)}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.ok(points > 5, `only ${points} crash points`);
  });
}

// Found by the crash points above (the process crash inside a forced rebuild, opened without a
// second rebuild): the store opened as a fresh one, dropped the writes it then acknowledged, and
// replaced the volume log. Now the rebuild sets the index aside first, and an open refuses a data
// dir without wal.log that still has an index or a volume log.
test(
  'a rebuild --force killed between its renames: the store refuses to open (or keeps what it acknowledges), and the volume log still holds the records',
  { timeout: 60_000 },
  async () => {
    const life = await closedLife();
    const fs = life.fs.clone();
    const lastLsn = walPosition(fs).lastLsn;
    // Killed as it renames the rebuilt WAL in: the index and the old wal.log are already aside.
    fs.failAfter(1, 'crash', { match: (op) => op.op === 'rename' && op.path === join(DATA_DIR, `${WAL_FILE}.tmp`) });
    assert.throws(() => rebuild(fs, life.clockMs, 'killed', true));
    assert.ok(fs.isDead, 'the kill came at the rename of wal.log.tmp');
    const disk = afterProcessCrash(fs);
    assert.ok(!disk.exists(join(DATA_DIR, WAL_FILE)) && !disk.exists(join(DATA_DIR, INDEX_FILE)), 'the kill left neither wal.log nor index.hash');
    // Started now, before a second rebuild: refused, naming the way out; nothing changed on disk.
    const refused = await openRefusal(disk, life.clockMs);
    assert.ok(refused instanceof StoreError && refused.code === 'CORRUPT', `an open without wal.log next to a volume log is refused: ${String(refused)}`);
    assert.match(refused.message, /cmd\/rebuild\.js/);
    assert.ok(!disk.exists(join(DATA_DIR, WAL_FILE)), 'the refused open created a wal.log');
    // The volume log still holds the records the rebuild is for; the rerun puts them back.
    const r = rebuild(disk, life.clockMs, 'second', false);
    assert.ok(r.replaced && r.log.lastLsn >= lastLsn, `the volume log now rebuilds up to LSN ${r.log.lastLsn}, it held ${lastLsn}`);
    nextPid += 10;
    const db = await new Machine(disk, new ManualClock(life.clockMs), OPTIONS, nextPid).open();
    const value = valueFor('after', 1);
    await db.set('after', value);
    const got = await db.get('after');
    await db.close();
    assert.ok(got !== null && got.equals(value), 'the store acknowledged SET after and does not have it');
  },
);

test('rebuild crash points: totals', () => {
  const byMode = new Map<Mode, number>();
  let cases = 0;
  let points = 0;
  for (const modes of counts.values()) {
    for (const [m, c] of modes) {
      byMode.set(m, (byMode.get(m) ?? 0) + c.cases);
      cases += c.cases;
    }
    points += modes.get('process')?.points ?? 0;
  }
  console.log(`rebuild crash points: ${cases} cases over ${points} crash points (${[...byMode].map(([m, n]) => `${m} ${n}`).join(', ')})`);
  assert.ok(cases >= 1000 || STRIDE > 1, `only ${cases} cases ran`);
});
