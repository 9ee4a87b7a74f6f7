// Crash points of VACUUM (docs/vacuum.md, "Crash safety"; issue 13), the way crash_points.test.ts
// does them for COMPACT: on the shipped store run in one thread over a SimFs, record the file
// operations a vacuum performs, then crash at each of them, in every crash mode, recover and
// check. Scenarios:
// - VACUUM of every volume over the threshold, after a workload that writes small values,
//   values above 64 KiB (streamed copies), values with metadata (setStream with a content type;
//   some in a stream volume), overwrites and deletes most of them, gives some a TTL that has
//   passed (dropped, not copied), some one that passes during the vacuum and some a long one
//   (kept by the copy), and leaves the newest volume all garbage (sealed and retired with no
//   copy); 32 KiB volumes, so there are several;
// - the same VACUUM with writes, overwrites, deletes and streamed uploads running beside it;
// - VACUUM of the newest volumes, all garbage (a stream volume newer than the current volume,
//   then the current one), then writes that rotate into new volumes;
// - the index checkpoint after a vacuum: index.hash.usage (live bytes, retired volumes) saved
//   before the heads and the header;
// - COMPACT after a vacuum: the index rebuilt (the sidecar saved before its swap) and the WAL
//   cut to a snapshot, with retired volumes.
// Two regression tests at the end are the smallest reproducers of what these found.
//
// A crash point is the state of the file system when the k-th file operation of the run is
// about to happen: a clone of the SimFs taken right there (the run goes on unharmed, so one run
// yields many points; the runs are repeated a chunk of points at a time to bound memory, and
// must trace the same operations each time). Reads (read, readFile, exists, readdir, size,
// close) change nothing, so a crash before one is the crash before the next operation that
// does: they are left out unless BRISE_VACUUM_CRASH_ALL_OPS=1; so are the volume log's
// operations, whose crash points are rebuild_crash's. The point after the whole run (and
// one more acknowledged write) is the last one.
//
// Crash modes: a process crash (every operation issued survives: the page cache outlives the
// process) and each power loss of SimFs: drop, prefix, subset-garbage, torn, random (per file).
//
// What must hold after every crash (the test's invariants):
// - the store opens, and no actor dies of an error;
// - every acknowledged write is there with its exact value and expiry, nothing deleted or
//   overwritten comes back: the live state is the one before the crash (or, when a write was in
//   flight, the one after it); a vacuum never changes it;
// - the index equals one replayed from the whole WAL: every present entry (expired ones too)
//   with its needle and expiry;
// - live bytes: for every volume, the index's count (VOLINFO's liveBytes, and the index's own
//   report) equals a brute-force sum over the index's entries (alignUp of each present entry's
//   needle length, expired ones included), and the WAL's replay gives the same counts and the
//   same retired volumes;
// - no key points into a retired volume or into a volume file that is not on the drive;
// - a second VACUUM completes without an error, removes every retired volume's file, and leaves
//   the values as they were;
// - the store takes a new write, and after one more power loss holds it and all the rest.
//
// Counts: BRISE_VACUUM_CRASH_SEEDS (default 1) seeds per randomized mode; with
// BRISE_VACUUM_CRASH_ALL_OPS=1 every operation is a crash point (a soak: about 15 times the
// cases). Prints the crash points and cases of each scenario, and the totals by mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ManualClock } from '../src/runtime/clock.js';
import { StoreError } from '../src/runtime/errors.js';
import type { Engine } from '../src/db/engine.js';
import type { VacuumReport } from '../src/db/api.js';
import type { InThreadDatabase } from '../src/wiring/in_thread.js';
import { indexFromWal } from '../src/storage/store_files.js';
import { alignUp, volumeFileName, volumeIdOf } from '../src/storage/volume_format.js';
import { SimFs, mulberry32, type OpInfo } from './sim_fs.js';
import { READS, crashed, isVolumeLogOp, label, modesWithSeeds, type CaseInfo, type Mode } from './crash_cases.js';
import {
  DATA_DIR,
  Machine,
  describeState,
  liveState,
  liveView,
  recordOps,
  showOp,
  statesEqual,
  valueFor,
  type ProcOptions,
  type State,
} from './fault_harness.js';

const SEEDS = Number(process.env.BRISE_VACUUM_CRASH_SEEDS ?? 1);
const ALL_OPS = process.env.BRISE_VACUUM_CRASH_ALL_OPS === '1';
/** A longer run than npm test's: no time limit. */
const SOAK = ALL_OPS || SEEDS > 1;
/** Crash points cloned per run: bounds the memory held by clones. */
const CHUNK = 48;
/** Virtual time per turn of the loop that drives a vacuum (its grace period and the sweep run on timers). */
const STEP_MS = 5;
const MAX_STEPS = 20_000;


const MODES = modesWithSeeds(SEEDS);


const OPTIONS: ProcOptions = {
  maxVolumeSize: 32 * 1024,
  indexBuckets: 16,
  vacuum: { graceMs: 20, rateBytesPerSec: 0 },
  autoVacuumEveryMs: 0,
};

const totals = { points: 0, cases: 0, byMode: new Map<Mode, number>(), busyRetries: 0 };

// ---------------------------------------------------------------------------------------
// The acknowledged state, kept next to the writes

type StreamKind = 'sized' | 'open+meta' | 'sized+meta';

interface SetHow {
  ttlMs?: number;
  len?: number;
  /** Written with setStream: with its size, or without and with a content type (a stream volume), or both. */
  stream?: StreamKind;
}

class Book {
  state: State = new Map();
  /** The state after the write in flight (issued, not yet acknowledged), if any. */
  inflight: State | null = null;
  acknowledged = 0;
  constructor(readonly clock: ManualClock) {}

  async set(db: InThreadDatabase, key: string, version: number, how: SetHow = {}): Promise<void> {
    const value = valueFor(key, version, how.len);
    const expiresAt = how.ttlMs === undefined ? 0 : this.clock.now() + how.ttlMs;
    await this.write(new Map(this.state).set(key, { value, expiresAt }), () => writeValue(db, key, value, how));
  }

  async del(db: InThreadDatabase, key: string): Promise<void> {
    const after = new Map(this.state);
    after.delete(key);
    await this.write(after, () => db.delete(key));
  }

  /** The states a crash now may leave: the acknowledged one, or the one after the write in flight. */
  candidates(): State[] {
    return this.inflight === null ? [new Map(this.state)] : [new Map(this.state), new Map(this.inflight)];
  }

  /**
   * A write placed in a volume before its seal and committed after its retirement is refused
   * (BUSY) and applies nothing: its client writes it again, as this one does.
   */
  private async write(after: State, run: () => Promise<unknown>): Promise<void> {
    this.inflight = after;
    for (let attempt = 0; ; attempt++) {
      try {
        await run();
        break;
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'BUSY') || attempt >= 3) throw err;
        totals.busyRetries += 1;
      }
    }
    this.state = after;
    this.inflight = null;
    this.acknowledged += 1;
  }
}

async function* chunksOf(value: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < value.length; at += size) yield value.subarray(at, Math.min(value.length, at + size));
}

async function writeValue(db: InThreadDatabase, key: string, value: Buffer, how: SetHow): Promise<void> {
  const ttl = how.ttlMs === undefined ? {} : { ttlMs: how.ttlMs };
  if (how.stream === undefined) return db.set(key, value, ttl);
  const size = how.stream === 'open+meta' ? {} : { size: value.length };
  const meta = how.stream === 'sized' ? {} : { contentType: 'application/x-vacuum-test' };
  await db.setStream(key, chunksOf(value, 16 * 1024), { ...ttl, ...size, ...meta });
}

// ---------------------------------------------------------------------------------------
// Driving work that waits on timers (the vacuum's grace period) in virtual time

async function drive<T>(machine: Machine, work: Promise<T>): Promise<T> {
  let done = false;
  const settled = work.then(
    (value) => {
      done = true;
      return value;
    },
    (err: unknown) => {
      done = true;
      throw err;
    },
  );
  settled.catch(() => undefined); // awaited below
  for (let step = 0; !done; step++) {
    if (step >= MAX_STEPS) throw new Error(`still running after ${MAX_STEPS} steps of ${STEP_MS} ms of virtual time`);
    await machine.scheduler.settle();
    if (!done) await machine.scheduler.advance(STEP_MS);
  }
  return settled;
}

function assertReports(reports: VacuumReport[], what: string): void {
  for (const r of reports) assert.deepEqual(r.errors, [], `${what}: volume ${r.volume}: ${r.errors.join('; ')}`);
}

// ---------------------------------------------------------------------------------------
// Scenarios

interface Ctx {
  fs: SimFs;
  clock: ManualClock;
  machine: Machine;
  db: InThreadDatabase;
  book: Book;
  reports: VacuumReport[];
  /** Writes acknowledged when the vacuum was done (the scenario with writes beside it). */
  writesDuring: number;
}

interface Scenario {
  name: string;
  /** Builds the data on a fresh store, which is then closed cleanly. */
  workload(db: InThreadDatabase, book: Book): Promise<void>;
  /** After each open of the base, before the run (not crashed). */
  setup?(ctx: Ctx): Promise<void>;
  /** The run whose every file operation is a crash point. */
  run(ctx: Ctx): Promise<void>;
  /** What the run, done without a crash, must have done. */
  checkDone(ctx: Ctx): void;
  /** The op trace of the run must match each of these. */
  mustTouch: RegExp[];
}

/** Many small values, a few big streamed ones, metadata, TTLs; most of it overwritten or deleted. */
async function dirtyWorkload(db: InThreadDatabase, b: Book): Promise<void> {
  for (let i = 0; i < 24; i++) await b.set(db, `s${i}`, 1);
  // In the first volume with the s keys (mostly garbage): dropped, kept, dropped on the way.
  for (let i = 0; i < 6; i++) await b.set(db, `t${i}`, 1, { ttlMs: 500 });
  for (let i = 0; i < 3; i++) await b.set(db, `tl${i}`, 1, { ttlMs: 10 ** 9 });
  // Expire 40 ms into the vacuum (the clock moves by 1000 below).
  for (let i = 0; i < 2; i++) await b.set(db, `tv${i}`, 1, { ttlMs: 1040, len: 700 });
  for (let i = 0; i < 6; i++) await b.set(db, `w${i}`, 1, { len: 2000 + 500 * i });
  for (let i = 0; i < 3; i++) await b.set(db, `big${i}`, 1, { len: 70_000 + 4096 * i, stream: 'sized' });
  await b.set(db, 'big-ttl', 1, { len: 66_000, stream: 'sized', ttlMs: 10 ** 9 });
  for (let i = 0; i < 2; i++) await b.set(db, `mo${i}`, 1, { len: 1500 + 700 * i, stream: 'open+meta' });
  for (let i = 0; i < 2; i++) await b.set(db, `ms${i}`, 1, { len: 900 + 300 * i, stream: 'sized+meta' });
  for (let i = 0; i < 24; i++) {
    if (i % 4 === 0) continue;
    if (i % 4 === 1) await b.del(db, `s${i}`);
    else await b.set(db, `s${i}`, 2);
  }
  for (let i = 0; i < 3; i++) await b.del(db, `w${i}`);
  await b.set(db, 'w3', 2, { len: 2600 });
  await b.set(db, 'big0', 2, { len: 68_000, stream: 'sized' });
  await b.del(db, 'big1');
  await b.set(db, 'mo0', 2, { len: 800, stream: 'open+meta' });
  await b.del(db, 'ms1');
  // Volumes all garbage: written, then deleted (retired with nothing to copy).
  for (let i = 0; i < 14; i++) await b.set(db, `z${i}`, 1, { len: 3000 });
  for (let i = 0; i < 14; i++) await b.del(db, `z${i}`);
  b.clock.advance(1000); // the t keys have expired, not swept: the vacuum drops them
}

const vacuumAll = async (ctx: Ctx): Promise<void> => {
  ctx.reports = await drive(ctx.machine, ctx.db.vacuum());
};

function checkVacuumed(ctx: Ctx): void {
  assertReports(ctx.reports, 'the vacuum');
  const r = ctx.reports;
  assert.ok(r.length >= 3, `${r.length} volumes vacuumed`);
  assert.ok(r.filter((x) => x.removed).length >= 3, `${r.filter((x) => x.removed).length} volumes removed`);
  assert.ok(r.some((x) => x.moved > 0 && x.removed), 'a volume with live values was emptied and removed');
  assert.ok(r.some((x) => x.moved === 0 && x.removed), 'a volume with nothing live was removed');
  assert.ok(r.reduce((n, x) => n + x.expired, 0) > 0, 'expired keys were dropped');
}

/**
 * The newest volumes all garbage: a stream volume (open-ended uploads) newer than the current
 * volume, and the current volume itself. Volume 1 is a stream volume filled by one upload, 2 the
 * current one; the setup adds 3, a stream volume.
 */
async function newestWorkload(db: InThreadDatabase, b: Book): Promise<void> {
  for (let i = 0; i < 6; i++) await b.set(db, `a${i}`, 1, { len: 3000 });
  await b.set(db, 'fill', 1, { len: 40_000, stream: 'open+meta' });
  for (let i = 0; i < 8; i++) await b.set(db, `b${i}`, 1, { len: 3000 });
  for (let i = 0; i < 8; i++) await b.del(db, `b${i}`);
}

/** In the process that vacuums (after a restart the newest volume is the current one, whatever it was). */
async function newestSetup(ctx: Ctx): Promise<void> {
  await ctx.book.set(ctx.db, 'zs', 1, { len: 2000, stream: 'open+meta' });
  await ctx.book.del(ctx.db, 'zs');
}

/** The ids of the newest two volumes, checked to be the unsealed, empty ones newestWorkload leaves. */
async function newestTwo(db: InThreadDatabase): Promise<[number, number]> {
  const vols = (await db.volinfo()).sort((x, y) => y.id - x.id);
  const [stream, current] = vols;
  assert.ok(stream !== undefined && current !== undefined && !stream.sealed && !current.sealed, `the newest volumes: ${JSON.stringify(vols)}`);
  assert.equal(stream.liveBytes + current.liveBytes, 0, 'the newest two volumes hold nothing live');
  return [stream.id, current.id];
}

const SCENARIOS: Scenario[] = [
  {
    name: 'VACUUM',
    workload: dirtyWorkload,
    run: vacuumAll,
    checkDone: checkVacuumed,
    mustTouch: [/^unlink \/data\/volumes\//, /^syncDir \/data\/volumes$/, /^sync \/data\/wal\.log$/, /^write \/data\/volumes\//],
  },
  {
    name: 'VACUUM with writes and deletes beside it',
    workload: dirtyWorkload,
    async run(ctx) {
      const { db, book } = ctx;
      const writes = (async () => {
        // 24 writes: a small SET waits for one fsync (its record carries its needle), so fewer
        // would be over before the vacuum's first copy, and none would race it.
        for (let n = 0; n < 24; n++) {
          const key = `s${(n * 5) % 24}`;
          if (n % 4 === 3) await book.del(db, key);
          else if (n === 5) await book.set(db, `new${n}`, 1, { len: 67_000, stream: 'sized' });
          else if (n === 10) await book.set(db, `new${n}`, 1, { len: 1200, stream: 'open+meta' });
          else await book.set(db, key, 10 + n, { len: 300 + ((n * 97) % 2500) });
        }
      })();
      const vacuum = db.vacuum().then((reports) => {
        ctx.writesDuring = book.acknowledged;
        return reports;
      });
      const [reports] = await drive(ctx.machine, Promise.all([vacuum, writes]));
      ctx.reports = reports;
    },
    checkDone(ctx) {
      assertReports(ctx.reports, 'the vacuum');
      assert.ok(ctx.reports.filter((x) => x.removed).length >= 3, 'volumes were removed');
      assert.ok(ctx.writesDuring >= 8, `${ctx.writesDuring} writes were acknowledged while the vacuum ran`);
      assert.ok(ctx.reports.some((x) => x.changed > 0), 'a key written during the vacuum kept its new value (its copy left as garbage)');
    },
    mustTouch: [/^unlink \/data\/volumes\//, /^sync \/data\/wal\.log$/],
  },
  {
    // A vacuum of the newest volume must not let its id be given again (ids only grow: the
    // index has retired it), nor leave the sealed volume the newest after a crash (it would take
    // needles again after a restart); the writes after it rotate into new volumes.
    name: 'VACUUM of the newest volumes (a stream volume, the current one), all garbage, then writes',
    workload: newestWorkload,
    setup: newestSetup,
    async run(ctx) {
      const [stream, current] = await newestTwo(ctx.db);
      ctx.reports = [...(await drive(ctx.machine, ctx.db.vacuum(stream))), ...(await drive(ctx.machine, ctx.db.vacuum(current)))];
      for (let i = 0; i < 4; i++) await ctx.book.set(ctx.db, `c${i}`, 1, { len: 9000 });
    },
    checkDone(ctx) {
      assertReports(ctx.reports, 'the vacuum');
      assert.equal(ctx.reports.filter((r) => r.removed).length, 2, 'both volumes were removed');
    },
    mustTouch: [/^unlink \/data\/volumes\//, /^syncDir \/data\/volumes$/],
  },
  {
    name: 'index checkpoint after a vacuum (index.hash.usage with retired volumes)',
    workload: dirtyWorkload,
    async setup(ctx) {
      await vacuumAll(ctx);
      checkVacuumed(ctx);
      await ctx.book.set(ctx.db, 'late', 1);
    },
    async run(ctx) {
      await ctx.db.checkpoint();
    },
    checkDone() {},
    mustTouch: [/^rename \/data\/index\.hash\.usage\.tmp$/, /^write \/data\/index\.hash$/],
  },
  {
    name: 'COMPACT after a vacuum (the index rebuilt and the WAL cut to a snapshot, with retired volumes)',
    workload: dirtyWorkload,
    async setup(ctx) {
      await vacuumAll(ctx);
      checkVacuumed(ctx);
      await ctx.book.set(ctx.db, 'late', 1);
    },
    async run(ctx) {
      await ctx.db.compact();
    },
    checkDone() {},
    mustTouch: [/^rename \/data\/index\.hash\.tmp$/, /^rename \/data\/wal\.log\.tmp$/],
  },
];

// ---------------------------------------------------------------------------------------
// The checks

/** The store's ports: the index's own answers (live bytes, entries by volume) are what is checked. */
function portsOf(db: InThreadDatabase): Engine['ports'] {
  // EngineDatabase keeps its engine in a protected field; the suites read the index through it.
  return (db as unknown as { engine: Engine }).engine.ports;
}

function volumePath(id: number): string {
  return join(DATA_DIR, 'volumes', volumeFileName(id));
}

/** An entry as the index and the WAL's replay must agree on it: its needle and its expiry. */
function entryOf(volume: number, offset: number, length: number, expiresAt: number): string {
  return `${volume}:${offset}:${length}@${expiresAt}`;
}

/**
 * Live bytes per volume against a brute-force sum over the index's entries, and the files on
 * the drive; `withWal`: the index against a fresh one replayed from the whole WAL (every present
 * entry, expired or not, the live bytes and the retired volumes).
 */
async function checkIndex(db: InThreadDatabase, fs: SimFs, where: string, withWal: boolean): Promise<{ retired: number[] }> {
  const ports = portsOf(db);
  const usage = await ports.index.volumeUsage();
  const infos = await db.volinfo();
  const listed = new Map(infos.map((v) => [v.id, v]));
  const ids = new Set<number>([...listed.keys(), ...usage.live.map(([id]) => id), ...usage.retired]);
  const top = Math.max(0, ...ids);
  for (let seq = 0; seq <= top + 16; seq++) ids.add(volumeIdOf(0, seq));
  // Every present entry, expired or not (by key: a growth swap between slices may repeat one).
  const entries = new Map<string, { volume: number; length: number; entry: string }>();
  let cursor = 0;
  do {
    const page = await ports.index.volumeEntries([...ids], cursor, 1024);
    for (const e of page.entries) entries.set(Buffer.from(e.key).toString('latin1'), { volume: e.volume, length: e.length, entry: entryOf(e.volume, e.offset, e.length, e.expiresAt) });
    cursor = page.cursor;
  } while (cursor !== 0);
  const sums = new Map<number, number>();
  for (const e of entries.values()) sums.set(e.volume, (sums.get(e.volume) ?? 0) + alignUp(e.length));
  const brute = [...sums].sort((a, b) => a[0] - b[0]);
  assert.deepEqual(usage.live, brute, `${where}: the index counts live bytes ${JSON.stringify(usage.live)}, its entries sum to ${JSON.stringify(brute)}`);
  for (const v of infos) assert.equal(v.liveBytes, sums.get(v.id) ?? 0, `${where}: VOLINFO gives volume ${v.id} ${v.liveBytes} live bytes, its entries ${sums.get(v.id) ?? 0}`);
  for (const [id] of sums) {
    assert.ok(listed.has(id) && fs.exists(volumePath(id)), `${where}: keys point into volume ${id}, which is not on the drive`);
    assert.ok(!usage.retired.includes(id), `${where}: keys point into retired volume ${id}`);
  }
  if (!withWal) return { retired: usage.retired };
  const replayed = indexFromWal(fs, DATA_DIR, join(DATA_DIR, 'vacuum-check.hash'), (index) => ({
    usage: index.volumeUsage(),
    // entries(0): every present entry, since none has expired at time 0.
    entries: new Map([...index.entries(0)].map((e) => [Buffer.from(e.key).toString('latin1'), entryOf(e.address.volume, e.address.offset, e.address.length, e.expiresAt)])),
  }));
  const mine = new Map([...entries].map(([k, e]) => [k, e.entry]));
  if (!mapsEqual(mine, replayed.entries)) {
    throw new Error(`${where}: the index and the WAL's replay differ: ${mapDiff(mine, replayed.entries)}`);
  }
  assert.deepEqual(replayed.usage.live, usage.live, `${where}: the WAL's replay counts ${JSON.stringify(replayed.usage.live)}, the index ${JSON.stringify(usage.live)}`);
  assert.deepEqual(replayed.usage.retired, usage.retired, `${where}: the WAL's replay retires ${JSON.stringify(replayed.usage.retired)}, the index ${JSON.stringify(usage.retired)}`);
  return { retired: usage.retired };
}

function mapsEqual(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

function mapDiff(index: Map<string, string>, wal: Map<string, string>): string {
  const keys = [...new Set([...index.keys(), ...wal.keys()])].sort();
  return keys.filter((k) => index.get(k) !== wal.get(k)).map((k) => `${k}: index ${index.get(k) ?? '-'}, WAL ${wal.get(k) ?? '-'}`).join('; ');
}

function assertNoActorCrashes(db: InThreadDatabase, where: string): void {
  const crashes = db.actorCrashes();
  if (crashes.length > 0) throw new Error(`${where}: actor ${crashes[0]!.name} crashed: ${crashes[0]!.error}`);
}

async function assertState(db: InThreadDatabase, want: State[], now: number, where: string): Promise<State> {
  const found = await liveState(db, now);
  if (!want.some((s) => statesEqual(liveView(s, now), found))) {
    const allowed = want.map((s) => describeState(liveView(s, now))).join(' or ');
    throw new Error(`${where}: found ${describeState(found)}, expected ${allowed}`);
  }
  return found;
}

interface Point {
  /** 1-based index of the operation in the run's trace; N + 1: after the run. */
  k: number;
  op: OpInfo | undefined;
  fs: SimFs;
  clockMs: number;
  want: State[];
}





/** Recovery after one crash: every invariant at the top of the file. */
async function checkRecovery(fs: SimFs, p: Point, info: CaseInfo): Promise<void> {
  const where = label(info);
  const clock = new ManualClock(p.clockMs);
  const machine = new Machine(fs, clock, OPTIONS, 9000);
  let db = await machine.open();
  try {
    assertNoActorCrashes(db, `${where}, recovery`);
    const found = await assertState(db, p.want, clock.now(), `${where}, recovered`);
    await checkIndex(db, fs, `${where}, recovered`, true);

    // The recovered store takes a write, and a second vacuum, which removes what the first retired.
    const probe = valueFor('probe', info.k);
    await db.set('probe', probe);
    const reports = await drive(machine, db.vacuum());
    assertReports(reports, `${where}, a second vacuum`);
    assertNoActorCrashes(db, `${where}, a second vacuum`);
    const { retired } = await checkIndex(db, fs, `${where}, after a second vacuum`, false);
    for (const id of retired) assert.ok(!fs.exists(volumePath(id)), `${where}: retired volume ${id} is still on the drive after a second vacuum`);

    // Both survive one more power loss, with every value as it was.
    db.abandon();
    fs.crash('torn', mulberry32(info.seed + 17));
    db = await machine.open();
    assertNoActorCrashes(db, `${where}, the recovery after a second vacuum`);
    await assertState(db, [new Map(found).set('probe', { value: probe, expiresAt: 0 })], clock.now(), `${where}, after a write, a second vacuum and a crash`);
    await checkIndex(db, fs, `${where}, after a second vacuum and a crash`, false);
  } finally {
    db.abandon();
  }
}

async function verifyCase(fs: SimFs, p: Point, info: CaseInfo): Promise<void> {
  try {
    await checkRecovery(fs, p, info);
  } catch (err) {
    const where = label(info);
    if (err instanceof Error && err.message.startsWith(info.scenario)) throw err;
    throw new Error(`${where}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------
// The runner

interface Base {
  fs: SimFs;
  clockMs: number;
  state: State;
}

async function buildBase(sc: Scenario): Promise<Base> {
  const fs = new SimFs();
  fs.mkdir(DATA_DIR);
  const clock = new ManualClock();
  const db = await new Machine(fs, clock, OPTIONS, 1000).open();
  const book = new Book(clock);
  await sc.workload(db, book);
  await db.close();
  return { fs, clockMs: clock.now(), state: book.state };
}

/** A copy of the base, opened and set up: the state just before the run. */
async function prepare(sc: Scenario, base: Base): Promise<Ctx> {
  const fs = base.fs.clone();
  const clock = new ManualClock(base.clockMs);
  const machine = new Machine(fs, clock, OPTIONS, 2000);
  const book = new Book(clock);
  book.state = new Map(base.state);
  const ctx: Ctx = { fs, clock, machine, db: await machine.open(), book, reports: [], writesDuring: 0 };
  if (sc.setup !== undefined) await sc.setup(ctx);
  return ctx;
}

async function crashAll(sc: Scenario, p: Point): Promise<number> {
  let cases = 0;
  totals.points += 1;
  for (const [mode, modeSeeds] of MODES) {
    for (const seed of modeSeeds) {
      const info: CaseInfo = { scenario: sc.name, k: p.k, op: p.op, mode, seed };
      await verifyCase(crashed(p.fs, p.k, mode, seed), p, info);
      cases += 1;
      totals.cases += 1;
      totals.byMode.set(mode, (totals.byMode.get(mode) ?? 0) + 1);
    }
  }
  return cases;
}

/** Every crash point of one scenario; returns the points and the cases run. */
async function runScenario(sc: Scenario): Promise<{ points: number; cases: number; ops: number }> {
  const base = await buildBase(sc);

  // The run without a crash: its op trace, and what it must have done.
  const dry = await prepare(sc, base);
  const { ops } = await recordOps(dry.fs, () => sc.run(dry));
  const trace = ops.map(showOp);
  for (const want of sc.mustTouch) assert.ok(trace.some((t) => want.test(t)), `${sc.name}: the run never did ${want}; trace: ${trace.join(', ')}`);
  sc.checkDone(dry);
  assertNoActorCrashes(dry.db, `${sc.name}: the run`);
  await assertState(dry.db, [dry.book.state], dry.clock.now(), `${sc.name}: after the run`);
  await checkIndex(dry.db, dry.fs, `${sc.name}: after the run`, true);
  // The last point: the run done and acknowledged, then one more write.
  const post = valueFor('post', 1);
  await dry.db.set('post', post);
  const last: Point = { k: ops.length + 1, op: undefined, fs: dry.fs.clone(), clockMs: dry.clock.now(), want: [new Map(dry.book.state).set('post', { value: post, expiresAt: 0 })] };
  dry.db.abandon();

  // The volume log's operations are rebuild_crash's crash points (see isVolumeLogOp).
  const points = ops.map((_, i) => i).filter((i) => ALL_OPS || (!READS.has(ops[i]!.op) && !isVolumeLogOp(ops[i]!)));
  let cases = 0;
  for (let c = 0; c < points.length; c += CHUNK) {
    const wanted = new Set(points.slice(c, c + CHUNK));
    const ctx = await prepare(sc, base);
    const taken: Point[] = [];
    let n = 0;
    let diverged: string | undefined;
    ctx.fs.failAfter(1, 'eio', {
      match: (op) => {
        const i = n++;
        if (diverged === undefined && showOp(op) !== trace[i]) diverged = `op #${i + 1} is ${showOp(op)}, was ${trace[i] ?? '(none)'}`;
        if (wanted.has(i)) taken.push({ k: i + 1, op, fs: ctx.fs.clone(), clockMs: ctx.clock.now(), want: ctx.book.candidates() });
        return false;
      },
    });
    try {
      await sc.run(ctx);
    } finally {
      ctx.fs.disarm();
      ctx.db.abandon();
    }
    assert.equal(diverged, undefined, `${sc.name}: the run is not deterministic: ${diverged}`);
    assert.equal(n, ops.length, `${sc.name}: the run did ${n} file operations, the first ${ops.length}`);
    for (const p of taken) cases += await crashAll(sc, p);
  }
  cases += await crashAll(sc, last);
  return { points: points.length + 1, cases, ops: ops.length };
}

// ---------------------------------------------------------------------------------------
// Regressions: the smallest reproducers of what these crash points found (drive_volumes.ts seal())

/**
 * A fresh store whose current volume holds nothing live and is the newest (or, `withStream`, has
 * a stream volume newer than it holding nothing live either).
 */
async function newestGarbage(withStream: boolean): Promise<Ctx> {
  const fs = new SimFs();
  fs.mkdir(DATA_DIR);
  const clock = new ManualClock();
  const machine = new Machine(fs, clock, OPTIONS, 1000);
  const book = new Book(clock);
  const ctx: Ctx = { fs, clock, machine, db: await machine.open(), book, reports: [], writesDuring: 0 };
  await newestWorkload(ctx.db, book);
  await ctx.db.close();
  ctx.db = await machine.open();
  if (withStream) await newestSetup(ctx);
  return ctx;
}

test('regression: VACUUM of a stream volume newer than the current volume: the writer lives on, the id is never given again', async () => {
  const ctx = await newestGarbage(true);
  try {
    const [stream, current] = await newestTwo(ctx.db);
    // Sealed without a rotation, the stream volume was newer than the current one: the volume
    // writer broke its invariant and died (ACTOR_DOWN); without the check, the next rotation
    // gave the removed volume's id again, retired in the index, and every write there was BUSY.
    assertReports(await drive(ctx.machine, ctx.db.vacuum(stream)), 'vacuum of the stream volume');
    assertNoActorCrashes(ctx.db, 'vacuum of the stream volume');
    assertReports(await drive(ctx.machine, ctx.db.vacuum(current)), 'vacuum of the current volume');
    for (let i = 0; i < 4; i++) await ctx.db.set(`c${i}`, valueFor(`c${i}`, 1, 9000));
    const ids = (await ctx.db.volinfo()).map((v) => v.id);
    assert.ok(ids.every((id) => id > stream || id < current), `volume ids ${ids.join(', ')}: ${stream} and ${current} are never given again`);
  } finally {
    ctx.db.abandon();
  }
});

test('regression: a power loss after VACUUM retired the current volume leaves it sealed (writes go on, VACUUM removes it)', async () => {
  const ctx = await newestGarbage(false);
  const current = Math.max(...(await ctx.db.volinfo()).map((v) => v.id));
  // The crash at the removal of the file: the RETIRE record is durable; the volume the seal
  // rotated to was not, so after the restart the retired volume was the newest, took needles
  // again, every write was refused BUSY, and VACUUM failed ('takes needles; seal it first').
  ctx.fs.failAfter(1, 'crash', { match: (op) => op.op === 'unlink' && op.path === volumePath(current) });
  await drive(ctx.machine, ctx.db.vacuum(current)).catch(() => undefined);
  assert.ok(ctx.fs.isDead, 'the crash fired at the removal');
  ctx.db.abandon();
  ctx.fs.crash('drop', mulberry32(1));
  const db = await ctx.machine.open();
  try {
    assert.ok((await db.volinfo()).find((v) => v.id === current)?.sealed, `volume ${current} is sealed after the restart`);
    await db.set('after', valueFor('after', 1));
    assert.ok((await db.get('after'))?.equals(valueFor('after', 1)));
    assertReports(await drive(ctx.machine, db.vacuum()), 'a vacuum after the restart');
    assert.ok(!ctx.fs.exists(volumePath(current)), `volume ${current} is removed`);
  } finally {
    db.abandon();
  }
});

for (const sc of SCENARIOS) {
  test(`vacuum crash points: ${sc.name}`, { timeout: SOAK ? Infinity : 300_000 }, async () => {
    const started = Date.now();
    const { points, cases, ops } = await runScenario(sc);
    console.log(`vacuum crash points: ${sc.name}: ${ops} file operations, ${points} crash points, ${cases} cases in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.ok(points > 1);
  });
}

test('vacuum crash points: totals', () => {
  const modes = [...totals.byMode].map(([m, n]) => `${m} ${n}`).join(', ');
  console.log(`vacuum crash points: ${totals.cases} cases over ${totals.points} crash points (${modes}); writes refused BUSY and written again: ${totals.busyRetries}`);
  assert.ok(totals.cases >= 1500, `only ${totals.cases} cases ran`);
});
