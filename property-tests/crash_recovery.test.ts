// The model-based crash/recovery suite (../shared/TESTING.md, plan item 1): runs the property
// of model.ts in batches of seeded runs until at least BRISE_CRASH_CYCLES crashes (default
// 10,000, the floor for one CI run) were simulated and recovered, then prints and
// asserts the count. A failure prints fast-check's seed, path and counterexample, and the
// environment variables that replay it (README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resetCanaries } from '../src/runtime/canary.js';
import { DEFAULT_CONFIG, checkOnce, describeStats, replayFromEnv, resetStats, stats } from './model.js';

const TARGET = Number(process.env.BRISE_CRASH_CYCLES ?? 10_000);
const RUNS_PER_BATCH = Number(process.env.BRISE_RUNS_PER_BATCH ?? 50);
/** A batch limit, so a slow engine fails clearly instead of hanging CI. */
const MAX_BATCHES = Number(process.env.BRISE_MAX_BATCHES ?? 10_000);

test(`model-based crash/recovery: at least ${TARGET} crash cycles`, { timeout: 10 * 60_000 }, async () => {
  resetCanaries();
  resetStats();
  const replay = replayFromEnv();
  const config = { ...DEFAULT_CONFIG, ...(replay.replayPath === undefined ? {} : { replayPath: replay.replayPath }) };

  if (replay.path !== undefined) {
    // Replay of one failure: exactly that run (and its shrink path), verbosely.
    const outcome = await checkOnce(config, { seed: replay.seed ?? 0, path: replay.path, verbose: 2, endOnFailure: true });
    console.log(`replay: ${describeStats()}`);
    assert.equal(outcome.failed, false, outcome.message);
    return;
  }

  const baseSeed = replay.seed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const started = Date.now();
  let batch = 0;
  while (stats.crashes < TARGET && batch < MAX_BATCHES) {
    const seed = (baseSeed + batch) | 0;
    const outcome = await checkOnce(config, { seed, numRuns: RUNS_PER_BATCH, verbose: 1 });
    assert.equal(outcome.failed, false, outcome.message);
    batch += 1;
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`crash/recovery: ${describeStats()}; ${batch} batches from seed ${baseSeed}; ${seconds} s`);
  assert.ok(stats.crashes >= TARGET, `only ${stats.crashes} crash cycles ran; the floor is ${TARGET}`);
  assert.ok(stats.crashDuringOp > 0 && stats.crashDuringRecovery > 0 && stats.uncertainOps > 0, describeStats());
});
