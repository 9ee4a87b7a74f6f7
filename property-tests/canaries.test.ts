// Canaries (../shared/TESTING.md, plan item 1): the crash/recovery property must catch each
// planted bug of src/runtime/canary.ts within a bounded number of runs. The property runs the
// shipped actors, so answerBeforeSync (a bug of the WAL committer actor's own path) is caught
// the same way as the storage canaries. A canary that survives
// means the test has no teeth.
//
// Attribution: a failure only counts for a canary if the very same run (same seed and path)
// passes with the canary off. Otherwise it is a real engine bug that would fail the run with
// or without the canary; the search then goes on with the next seed, and such failures are
// listed in the output (crash_recovery.test.ts fails on them on its own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canaries, resetCanaries, type Canaries } from '../src/runtime/canary.js';
import { DEFAULT_CONFIG, checkOnce, type PropertyConfig } from './model.js';

/** Runs per attempt, and attempts (seeds) per canary: the budget within which it must be caught. */
const RUNS = Number(process.env.BRISE_CANARY_RUNS ?? 200);
const ATTEMPTS = Number(process.env.BRISE_CANARY_ATTEMPTS ?? 5);

interface Caught {
  caught: boolean;
  seed?: number;
  unrelated: string[];
}

async function hunt(flag: keyof Canaries, config: PropertyConfig, baseSeed: number): Promise<Caught> {
  const unrelated: string[] = [];
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const seed = (baseSeed + attempt * 7919) | 0;
    resetCanaries();
    canaries[flag] = true;
    let found;
    try {
      found = await checkOnce(config, { seed, numRuns: RUNS, endOnFailure: true });
    } finally {
      resetCanaries();
    }
    if (!found.failed) continue;
    const path = /path: "([^"]*)"/.exec(found.message)?.[1];
    const replay = await checkOnce(config, { seed, ...(path === undefined ? {} : { path }), endOnFailure: true });
    if (!replay.failed) return { caught: true, seed, unrelated };
    unrelated.push(`seed ${seed}: fails with the canary off too:\n${replay.message.slice(0, 2000)}`);
  }
  return { caught: false, unrelated };
}

// skipChecksum runs with bit-flip garbage: random or zeroed sectors in a small CBOR record
// almost never decode, so without flips the checksum is rarely the only line of defence.
const CASES: { flag: keyof Canaries; why: string; config: PropertyConfig }[] = [
  { flag: 'skipFsync', why: 'an acknowledged write is lost by a crash that drops unsynced data', config: DEFAULT_CONFIG },
  {
    flag: 'skipChecksum',
    why: 'a garbled, unacknowledged WAL record is replayed after a garbage crash',
    config: { ...DEFAULT_CONFIG, garbage: 'with-bitflips' },
  },
  { flag: 'applyRollback', why: 'a rolled-back level leaks into the parent and is committed', config: DEFAULT_CONFIG },
  { flag: 'skipDirSync', why: 'a new volume or a compacted WAL/index vanishes with its unsynced directory entry', config: DEFAULT_CONFIG },
  {
    flag: 'answerBeforeSync',
    why: 'the WAL committer actor answers a group before its fdatasync: the write is acknowledged and lost by a crash',
    config: DEFAULT_CONFIG,
  },
];

for (const { flag, why, config } of CASES) {
  test(`canary ${flag} is caught: ${why}`, { timeout: 5 * 60_000 }, async () => {
    const baseSeed = Number(process.env.BRISE_SEED ?? 20240601);
    const started = Date.now();
    const result = await hunt(flag, config, baseSeed);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    for (const u of result.unrelated) console.log(`canary ${flag}: unrelated engine failure found meanwhile: ${u}`);
    console.log(`canary ${flag}: ${result.caught ? `caught (seed ${result.seed})` : 'NOT caught'} in ${seconds} s`);
    assert.ok(result.caught, `canary ${flag} survived ${ATTEMPTS} x ${RUNS} runs: the crash test has no teeth for it`);
    assert.equal(canaries[flag], false);
  });
}
