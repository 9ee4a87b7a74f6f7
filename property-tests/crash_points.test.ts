// Crash points of every file replacement (../shared/TESTING.md, plan item 2; issue 5 item 2).
// For each rewrite the engine does (COMPACT, index growth, index checkpoint, volume rotation,
// registry save on close, creation of a fresh store), on the shipped store run in one thread over a SimFs:
// record the file operations the rewrite performs, then for k = 1..N re-run it from the same
// starting state with a power loss at its k-th file operation, and for each crash mode (and a
// few seeds) recover and check.
//
// What must hold after every such crash (the test's invariants):
// - the store opens (recovery never refuses a state a crash can leave);
// - the live state is exactly the state before the rewrite or the state after it (for the
//   rewrites that keep the data, the same acknowledged data: no loss, no phantom, values byte
//   for byte, expiries kept);
// - the index equals one rebuilt from the WAL (dump() == rebuildCheck());
// - a second recovery (a crash dropping whatever the first left unsynced) gives the same state;
// - the recovered store takes a new write, and that write survives the next power loss.
// The rewrite itself, run without a crash, must reach the "after" state, and its op trace
// must contain the replacement it is meant to exercise (so the test cannot go toothless).
//
// Counts: BRISE_CRASH_POINT_SEEDS (default 3) seeds per non-drop mode. Prints the number of
// (rewrite, k, mode, seed) cases run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/runtime/clock.js';
import { canaries, resetCanaries } from '../src/runtime/canary.js';
import type { InThreadDatabase } from '../src/wiring/in_thread.js';
import { SimFs, mulberry32, type CrashMode, type OpInfo } from './sim_fs.js';
import {
  DATA_DIR,
  Machine,
  describeState,
  liveState,
  liveView,
  rebuiltState,
  recordOps,
  showOp,
  statesEqual,
  valueFor,
  type ProcOptions,
  type State,
} from './fault_harness.js';

const SEEDS = Number(process.env.BRISE_CRASH_POINT_SEEDS ?? 3);
/** Each mode with the seeds it is crashed with ('drop' is deterministic: one seed). */
const MODES: [CrashMode, number[]][] = [
  ['drop', [0]],
  ['prefix', seeds(101)],
  ['subset-garbage', seeds(202)],
  ['torn', seeds(303)],
];

function seeds(base: number): number[] {
  return Array.from({ length: SEEDS }, (_, i) => base + i * 7);
}

/** Manual teeth check: BRISE_CANARY=skipDirSync|skipFsync|skipChecksum turns a planted bug on. */
const CANARY = process.env.BRISE_CANARY as keyof typeof canaries | undefined;

const totals = { cases: 0, points: 0, before: 0, after: 0, same: 0 };

// ---------------------------------------------------------------------------------------
// The expected state, kept next to the real writes

class Expect {
  state: State = new Map();
  constructor(readonly clock: ManualClock) {}

  async set(db: InThreadDatabase, key: string, version: number, ttlMs?: number, len?: number): Promise<void> {
    const value = valueFor(key, version, len);
    await db.set(key, value, ttlMs === undefined ? {} : { ttlMs });
    this.state.set(key, { value, expiresAt: ttlMs === undefined ? 0 : this.clock.now() + ttlMs });
  }

  async del(db: InThreadDatabase, key: string): Promise<void> {
    await db.delete(key);
    this.state.delete(key);
  }

  copy(): State {
    return new Map(this.state);
  }
}

// ---------------------------------------------------------------------------------------
// Scenarios

interface Ctx {
  machine: Machine;
  db: InThreadDatabase | undefined;
  expect: Expect;
}

interface Scenario {
  name: string;
  options: ProcOptions;
  /** Builds the data on a fresh store and closes it cleanly (unarmed). */
  workload(db: InThreadDatabase, e: Expect): Promise<void>;
  /** False for the fresh-store scenario: the base is an empty data dir. */
  hasBase: boolean;
  /** After each open of the base, before arming (more acknowledged writes, for instance). */
  setup?(db: InThreadDatabase, e: Expect): Promise<void>;
  /** The rewrite, run with the crash armed. */
  run(ctx: Ctx): Promise<void>;
  /** The state after the rewrite, from the state before it. */
  after(before: State, clock: ManualClock): State;
  /** The rewrite closes the store (no write can follow it). */
  closes?: boolean;
  /** The trace of the rewrite must contain each of these "op path" strings. */
  mustTouch: string[];
}

function same(before: State): State {
  return new Map(before);
}

async function manyKeys(db: InThreadDatabase, e: Expect, n: number, prefix = 'k'): Promise<void> {
  for (let i = 0; i < n; i++) await e.set(db, `${prefix}${i}`, 1);
}

const SCENARIOS: Scenario[] = [
  {
    name: 'COMPACT (index rebuild swap, then WAL compaction swap)',
    options: { maxVolumeSize: 16 * 1024, indexBuckets: 16 },
    hasBase: true,
    async workload(db, e) {
      await manyKeys(db, e, 12);
      for (let i = 0; i < 12; i += 2) await e.set(db, `k${i}`, 2); // overwrites: garbage to drop
      await e.del(db, 'k3');
      await e.del(db, 'k5');
      await e.set(db, 'ttl-short', 1, 500);
      await e.set(db, 'ttl-long', 1, 10 ** 9);
      e.clock.advance(1000); // ttl-short is expired (not swept): compaction must not revive it
    },
    async setup(db, e) {
      await e.set(db, 'late', 1); // records after the index checkpoint: the WAL tail to copy
      await e.del(db, 'k7');
    },
    run: async ({ db }) => db!.compact(),
    after: same,
    mustTouch: ['rename /data/index.hash.tmp', 'rename /data/wal.log.tmp', 'syncDir /data'],
  },
  {
    // The index actor starts growing when an applied write passes 2 entries per bucket; the
    // rebuild then runs a slice per turn until it swaps: the write and the settled aftermath
    // are the rewrite.
    name: 'index growth (the write that passes the load bound, and the rebuild swap it starts)',
    options: { indexBuckets: 16 },
    hasBase: true,
    async workload(db, e) {
      await manyKeys(db, e, 28);
      for (let i = 0; i < 3; i++) await e.set(db, `k${i}`, 2);
      await e.set(db, 'ttl-gone', 1, 100); // 32 entries: at the bound, not past it
      e.clock.advance(200); // the sweep of maintenance() logs its DEL_IF during the rebuild
      e.state.delete('ttl-gone');
    },
    run: async ({ db, expect }) => {
      await expect.set(db!, 'grow', 1);
      await db!.maintenance();
    },
    after: (before) => new Map(before).set('grow', { value: valueFor('grow', 1), expiresAt: 0 }),
    mustTouch: ['open /data/index.hash.tmp', 'rename /data/index.hash.tmp', 'syncDir /data'],
  },
  {
    name: 'index checkpoint (heads file, bucket array, header)',
    options: { indexBuckets: 16 },
    hasBase: true,
    async workload(db, e) {
      await manyKeys(db, e, 10);
    },
    async setup(db, e) {
      await manyKeys(db, e, 8, 'n');
      for (let i = 0; i < 4; i++) await e.set(db, `k${i}`, 3);
      await e.del(db, 'k9');
    },
    run: async ({ db }) => db!.checkpoint(),
    after: same,
    mustTouch: ['sync /data/index.hash.heads', 'write /data/index.hash', 'sync /data/index.hash'],
  },
  {
    name: 'volume rotation (creation of the next volume under a write)',
    options: { maxVolumeSize: 4096 },
    hasBase: true,
    async workload(db, e) {
      for (let i = 0; i < 3; i++) await e.set(db, `big${i}`, 1, undefined, 1000);
    },
    run: async ({ db }) => db!.set('rot', valueFor('rot', 1, 1500)),
    after: (before) => new Map(before).set('rot', { value: valueFor('rot', 1, 1500), expiresAt: 0 }),
    mustTouch: ['syncDir /data/volumes'],
  },
  {
    name: 'registry save and final checkpoint (close)',
    options: {},
    hasBase: true,
    async workload(db, e) {
      await manyKeys(db, e, 6);
    },
    async setup(db, e) {
      await e.set(db, 'k1', 2);
      await e.set(db, 'new', 1);
    },
    run: async ({ db }) => db!.close(),
    closes: true,
    after: same,
    mustTouch: ['rename /data/vol-registry.json.tmp', 'syncDir /data'],
  },
  {
    name: 'fresh store (WAL, index and first volume created) and its first write',
    options: {},
    hasBase: false,
    async workload() {},
    run: async (ctx) => {
      ctx.db = await ctx.machine.open();
      await ctx.db.set('first', valueFor('first', 1));
    },
    after: (before) => new Map(before).set('first', { value: valueFor('first', 1), expiresAt: 0 }),
    mustTouch: ['rename /data/wal.log.tmp', 'rename /data/index.hash.tmp', 'syncDir /data/volumes'],
  },
];

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
  if (sc.hasBase) {
    const machine = new Machine(fs, clock, sc.options, 1000);
    const db = await machine.open();
    const e = new Expect(clock);
    await sc.workload(db, e);
    await db.close();
    return { fs, clockMs: clock.now(), state: e.copy() };
  }
  return { fs, clockMs: clock.now(), state: new Map() };
}

/** A copy of the base, opened (when it has one) and set up: the state just before the rewrite. */
async function prepare(sc: Scenario, base: Base): Promise<{ fs: SimFs; ctx: Ctx; before: State }> {
  const fs = base.fs.clone();
  const clock = new ManualClock(base.clockMs);
  const machine = new Machine(fs, clock, sc.options, 2000);
  const expect = new Expect(clock);
  expect.state = new Map(base.state);
  const ctx: Ctx = { machine, db: undefined, expect };
  if (sc.hasBase) {
    ctx.db = await machine.open();
    if (sc.setup !== undefined) await sc.setup(ctx.db, expect);
  }
  return { fs, ctx, before: expect.copy() };
}

interface CaseInfo {
  scenario: string;
  k: number;
  op: OpInfo | undefined;
  mode: CrashMode;
  seed: number;
}

function label(c: CaseInfo): string {
  const at = c.op === undefined ? `after the completed rewrite (op #${c.k})` : `at op #${c.k} (${showOp(c.op)})`;
  return `${c.scenario}: crash ${at}, mode ${c.mode}, seed ${c.seed}`;
}

/** Recovery after one crash case: every invariant at the top of the file. */
async function verifyCase(fs: SimFs, clockMs: number, options: ProcOptions, want: State[], info: CaseInfo): Promise<void> {
  try {
    await checkRecovery(fs, clockMs, options, want, info);
  } catch (err) {
    const where = label(info);
    if (err instanceof Error && err.message.startsWith(info.scenario)) throw err;
    throw new Error(`${where}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
  }
}

async function checkRecovery(fs: SimFs, clockMs: number, options: ProcOptions, want: State[], info: CaseInfo): Promise<void> {
  const where = label(info);
  const machine = new Machine(fs, new ManualClock(clockMs), options, 9000);
  const open = async (what: string): Promise<InThreadDatabase> => {
    try {
      return await machine.open();
    } catch (err) {
      throw new Error(`${where}: ${what} failed: ${String(err)}`, { cause: err });
    }
  };
  const now = clockMs;
  let db = await open('recovery');
  const found = await liveState(db, now);
  const matches = want.map((s) => statesEqual(liveView(s, now), found));
  if (!matches.includes(true)) {
    const names = want.length === 1 ? ['after'] : ['before', 'after'];
    const allowed = want.map((s, i) => `${names[i]} ${describeState(liveView(s, now))}`).join(' or ');
    throw new Error(`${where}: recovered ${describeState(found)}, expected ${allowed}`);
  }
  if (matches.length === 2 && matches[0] === true && matches[1] === true) totals.same += 1;
  else if (matches.length === 2 && matches[0] === true) totals.before += 1;
  else totals.after += 1;
  const rebuilt = await rebuiltState(db, now);
  assert.ok(statesEqual(rebuilt, found), `${where}: index ${describeState(found)} but a rebuild from the WAL gives ${describeState(rebuilt)}`);

  db.abandon();
  fs.crash('drop', mulberry32(1));
  db = await open('a second recovery');
  const again = await liveState(db, now);
  assert.ok(statesEqual(again, found), `${where}: a second recovery gives ${describeState(again)}, the first ${describeState(found)}`);

  // The recovered store is usable: a new acknowledged write survives the next power loss.
  const probe = valueFor('probe', info.k);
  await db.set('probe', probe);
  db.abandon();
  fs.crash('torn', mulberry32(info.seed + 17));
  db = await open('recovery after a write on the recovered store');
  const withProbe = await liveState(db, now);
  const wanted = new Map(found).set('probe', { value: probe, expiresAt: 0 });
  assert.ok(statesEqual(withProbe, wanted), `${where}: after a write and a crash: ${describeState(withProbe)}, want ${describeState(wanted)}`);
  db.abandon();
}

interface RunOptions {
  /** A planted bug turned on around the rewrite only (the base and recovery run without it). */
  canary?: keyof typeof canaries;
  modes?: [CrashMode, number[]][];
}

/** Runs fn with the canary (if any) on. */
async function withCanary<T>(canary: keyof typeof canaries | undefined, fn: () => Promise<T>): Promise<T> {
  resetCanaries();
  if (canary !== undefined) canaries[canary] = true;
  try {
    return await fn();
  } finally {
    resetCanaries();
  }
}

/** The rewrite, then (when the store is still open) one more acknowledged write. */
async function runToCompletion(sc: Scenario, ctx: Ctx): Promise<State> {
  await sc.run(ctx);
  const after = sc.after(ctx.expect.state, ctx.expect.clock);
  if (sc.closes === true) return after;
  // A write acknowledged after the rewrite lands in the files it swapped in: it catches a
  // rename whose directory entry was never made durable.
  const post = valueFor('post', 1);
  await ctx.db!.set('post', post);
  return new Map(after).set('post', { value: post, expiresAt: 0 });
}

/** All crash points of one scenario; returns the number of cases run. */
async function runScenario(sc: Scenario, options: RunOptions = {}): Promise<number> {
  const modes = options.modes ?? MODES;
  const base = await buildBase(sc);

  // Dry run: the op trace, and the rewrite reaches the "after" state.
  const dry = await prepare(sc, base);
  const { ops } = await withCanary(options.canary, () => recordOps(dry.fs, () => sc.run(dry.ctx)));
  const after = sc.after(dry.before, dry.ctx.expect.clock);
  const trace = ops.map(showOp);
  // Under the skipDirSync canary the directory fsyncs are missing on purpose: the crashes must catch it.
  for (const want of sc.mustTouch.filter((w) => options.canary !== 'skipDirSync' || !w.startsWith('syncDir'))) {
    assert.ok(trace.includes(want), `${sc.name}: the rewrite never did "${want}"; trace: ${trace.join(', ')}`);
  }
  dry.ctx.db?.abandon(); // a restart without power loss: what a clean run leaves
  const checkDb = await dry.ctx.machine.open();
  const reached = await liveState(checkDb, base.clockMs);
  assert.ok(statesEqual(reached, liveView(after, base.clockMs)), `${sc.name}: without a crash the rewrite gives ${describeState(reached)}`);
  checkDb.abandon();

  let cases = 0;
  const crashAll = async (p: { fs: SimFs; before: State }, k: number, op: OpInfo | undefined, want: State[]): Promise<void> => {
    totals.points += 1;
    for (const [mode, modeSeeds] of modes) {
      for (const seed of modeSeeds) {
        const fs = p.fs.clone();
        fs.crash(mode, mulberry32(seed * 1009 + k));
        await verifyCase(fs, base.clockMs, sc.options, want, { scenario: sc.name, k, op, mode, seed });
        cases += 1;
      }
    }
  };

  for (let k = 1; k <= ops.length; k++) {
    const p = await prepare(sc, base);
    p.fs.failAfter(k, 'crash');
    try {
      await withCanary(options.canary, () => sc.run(p.ctx));
    } catch (err) {
      if (!p.fs.isDead) throw new Error(`${sc.name}: crash armed at op #${k} (${showOp(ops[k - 1])}) but the rewrite failed otherwise: ${String(err)}`, { cause: err });
    }
    assert.ok(p.fs.isDead, `${sc.name}: the crash at op #${k} of ${ops.length} never fired (the rewrite is not deterministic?)`);
    p.ctx.db?.abandon();
    await crashAll(p, k, ops[k - 1], [p.before, after]);
  }

  // k = N + 1: the rewrite completed and was acknowledged (then one more write was): only
  // the state after it (with that write) may come back.
  const done = await prepare(sc, base);
  const afterAll = await withCanary(options.canary, () => runToCompletion(sc, done.ctx));
  done.ctx.db?.abandon();
  await crashAll(done, ops.length + 1, undefined, [afterAll]);
  return cases;
}

for (const sc of SCENARIOS) {
  test(`crash points: ${sc.name}`, { timeout: 120_000 }, async () => {
    const started = Date.now();
    const cases = await runScenario(sc, CANARY === undefined ? {} : { canary: CANARY });
    totals.cases += cases;
    console.log(`crash points: ${sc.name}: ${cases} cases in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.ok(cases > 0);
  });
}

// Teeth: the same checks must fail when the rewrite skips its fsyncs or its directory fsyncs.
const TEETH: { canary: keyof typeof canaries; scenario: string }[] = [
  { canary: 'skipDirSync', scenario: 'COMPACT' },
  { canary: 'skipDirSync', scenario: 'fresh store' },
  { canary: 'skipFsync', scenario: 'volume rotation' },
];

for (const { canary, scenario } of TEETH) {
  test(`crash points have teeth: canary ${canary} during ${scenario} is caught`, { timeout: 60_000 }, async () => {
    const sc = SCENARIOS.find((s) => s.name.startsWith(scenario))!;
    await assert.rejects(runScenario(sc, { canary, modes: [['drop', [0]], ['torn', [1]]] }), (err: Error) => {
      console.log(`crash points: canary ${canary} during ${scenario} caught: ${err.message.slice(0, 300)}`);
      return true;
    });
    assert.equal(canaries[canary], false);
  });
}

test('crash points: totals', () => {
  console.log(
    `crash points: ${totals.cases} (rewrite, crash point, mode, seed) cases over ${totals.points} crash points of ` +
      `${SCENARIOS.length} rewrites; recovered the state before ${totals.before} times, after ${totals.after} times ` +
      `(the same data both ways ${totals.same} times)`,
  );
  assert.ok(CANARY !== undefined || totals.cases >= 1000, `only ${totals.cases} cases ran`);
});
