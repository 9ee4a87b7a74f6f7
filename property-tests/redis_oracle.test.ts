// Stock redis-server as the oracle (issue 9): fast-check generates random sequences of the
// string commands, the expiry commands and WATCH/MULTI/EXEC/DISCARD from 2-3 simulated clients
// (redis_oracle_steps.ts); every step goes to one redis-server and one BriseDB master at once,
// each client over its own connection to each server, and the two replies must be the same
// bytes, error texts included. Tolerance only where the reply depends on the clock: TTL and
// EXPIRETIME within 1 s, PTTL and PEXPIRETIME within 1000 ms (-1 and -2 exact), alone or inside
// an EXEC; KEYS compares the keys in any order (unspecified in Redis). Each run starts with
// RESET and FLUSHALL on both. Expiry times are chosen so that no compared reply sits on the
// edge of an expiry (see redis_oracle_steps.ts).
//
// Deviations of BriseDB that the test does not fail on:
// - documented: WATCH compares the state of a watched key (value and expiry), not a
//   modification counter: a key set and deleted again (or renamed away, or expired), an
//   EXPIRE to the same time, an APPEND of "" leave EXEC running where Redis answers nil. When
//   EXEC differs exactly so (Redis nil, BriseDB an array) and every watched key reads, on
//   redis-server, as it did at WATCH, the run is counted (watchDeviations) and ends there:
//   the two keyspaces differ from then on. Any other EXEC difference fails;
// - documented, not generated: expiry times past 2^53 ms, OBJECT, SELECT and COPY into a
//   database other than 0, LCS;
// - found by this test, not generated (see redis_oracle_steps.ts): the empty key (BriseDB's
//   formats hold keys of 1..65535 bytes), EXEC with arguments (Redis answers EXECABORT and
//   discards the transaction), DBSIZE inside MULTI (BriseDB's misses the transaction's own
//   writes; EXISTS of every key is queued in its place).
// DBSIZE counts keys that expired but were not deleted yet, on both servers, at the whim of
// each one's expiry sweep; before DBSIZE, observer connections evict them on both
// (evictExpired), so that both count the live keys.
//
// Environment: BRISE_SEED (the seed), BRISE_PATH (with the seed: replay one shrunk failure),
// BRISE_ORACLE_RUNS (runs; default 300: about 10,000 steps, 20 s), BRISE_ORACLE_VERBOSE=1
// (print the runs that the WATCH deviation ended).
// Owns: one redis-server and one BriseDB master (stopped by PID in `after`) and the
// connections to them.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { hasProgram, startMaster, stopAll, type MasterProcess } from '../test/helpers/master_process.js';
import { WireClient, startRedisServer, stopRedisServers, type RedisServer, type WireReply } from '../test/helpers/redis_wire.js';
import { CLOCK_TOLERANCE, KEY_NAMES, MAX_CLIENTS, Script, describeItem, elementsOf, escaped, replyDifference, scriptArb, type Step } from './redis_oracle_steps.js';

const HAVE_REDIS = hasProgram('redis-server');
const RUNS = Number(process.env.BRISE_ORACLE_RUNS ?? 300);
const SEED = Number(process.env.BRISE_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PATH = process.env.BRISE_PATH;
const VERBOSE = process.env.BRISE_ORACLE_VERBOSE === '1';
/** fast-check stops running and shrinking past this; the test's own timeout is above it. */
const TIME_LIMIT_MS = 90_000;
const REPLY_MS = 10_000;

let redis: RedisServer | undefined;
let master: MasterProcess | undefined;
/** One simulated client: a connection to each server, and what Redis says its state is. */
interface Client {
  redis: WireClient;
  brise: WireClient;
  broken: boolean;
  inMulti: boolean;
  /** Commands redis-server answered QUEUED since MULTI. */
  queue: string[][];
  /** Watched keys, each with its state (GET and PEXPIRETIME on redis-server) at WATCH. */
  watched: Map<string, string>;
}
const clients: Client[] = [];
/** A connection to redis-server only: reads the state of watched keys, evicts expired keys. */
let observer: WireClient | undefined;
/** A connection to BriseDB only: evicts expired keys (see evictExpired). */
let briseObserver: WireClient | undefined;

before(async () => {
  if (!HAVE_REDIS) return;
  [redis, master] = await Promise.all([startRedisServer(), startMaster()]);
  [observer, briseObserver] = await Promise.all([WireClient.connect(redis.port), WireClient.connect(master.port)]);
  for (let i = 0; i < MAX_CLIENTS; i++) clients.push(await connectClient());
});

after(async () => {
  observer?.close();
  briseObserver?.close();
  for (const c of clients.splice(0)) {
    c.redis.close();
    c.brise.close();
  }
  await Promise.all([stopRedisServers(), stopAll()]);
});

async function connectClient(): Promise<Client> {
  const [r, b] = await Promise.all([WireClient.connect(redis!.port), WireClient.connect(master!.port)]);
  return { redis: r, brise: b, broken: false, inMulti: false, queue: [], watched: new Map() };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const stats = {
  runs: 0,
  steps: 0,
  shortExpiries: 0,
  execApplied: 0,
  execNil: 0,
  execAbort: 0,
  discards: 0,
  errors: 0,
  /** Runs ended at an EXEC that only the documented WATCH deviation explains. */
  watchDeviations: 0,
};

/** Every client's MULTI and WATCH forgotten (RESET), the keyspace empty (FLUSHALL), on both. */
async function freshRun(): Promise<void> {
  for (let i = 0; i < clients.length; i++) {
    if (clients[i]!.broken) {
      clients[i]!.redis.close();
      clients[i]!.brise.close();
      clients[i] = await connectClient();
    }
    const c = clients[i]!;
    const replies = await Promise.all([c.redis.send(['RESET'], REPLY_MS), c.brise.send(['RESET'], REPLY_MS)]);
    for (const r of replies) assert.equal(r.text, '+RESET\r\n', 'RESET before a run');
    Object.assign(c, { inMulti: false, queue: [], watched: new Map() });
  }
  const flushed = await Promise.all([clients[0]!.redis.send(['FLUSHALL'], REPLY_MS), clients[0]!.brise.send(['FLUSHALL'], REPLY_MS)]);
  for (const r of flushed) assert.equal(r.text, '+OK\r\n', 'FLUSHALL before a run');
}

/**
 * The state of keys on redis-server, as one string (value and PEXPIRETIME of each). Read right
 * after each WATCH, it also makes Redis deterministic: a key that expired but was not evicted
 * yet is watched with an "expired" flag, and Redis 7 then does not count a later write of it
 * as a change (touchWatchedKey stops at such a watcher), so EXEC would run or answer nil
 * depending on whether Redis' expiry cycle had evicted the key before the WATCH. The GET here
 * evicts it, which clears the flag: the key is watched as absent, on both servers.
 */
async function redisState(keys: string[]): Promise<string> {
  const out: string[] = [];
  for (const k of keys) {
    const [v, t] = [await observer!.send(['GET', k], REPLY_MS), await observer!.send(['PEXPIRETIME', k], REPLY_MS)];
    out.push(`${k}=${v.text}@${t.text}`);
  }
  return out.join('|');
}

/**
 * DBSIZE counts, on both servers, keys that expired but were not deleted yet (Redis: the size
 * of its dict; BriseDB: the index's liveCount), which depends on when each one's sweep ran. So
 * before DBSIZE every key of the run is looked up on both (a lookup deletes an expired key:
 * at once in Redis, by a DEL_IF logged in the background in BriseDB), and BriseDB's DBSIZE is
 * awaited (bounded) until it is Redis' count: then both count exactly the live keys. A lookup
 * of an expired key is no logical change (a WATCH of it stays as it was, on both).
 */
async function evictExpired(): Promise<void> {
  await Promise.all([observer!.send(['EXISTS', ...KEY_NAMES], REPLY_MS), briseObserver!.send(['EXISTS', ...KEY_NAMES], REPLY_MS)]);
  const want = (await observer!.send(['DBSIZE'], REPLY_MS)).text;
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(5)) {
    if ((await briseObserver!.send(['DBSIZE'], REPLY_MS)).text === want) return;
  }
}

const upper = (argv: string[]): string => argv[0]!.toUpperCase();

/** Runs one script on both servers; throws on the first difference. */
async function runScript(script: Script): Promise<void> {
  stats.runs++;
  await freshRun();
  const transcript: string[] = [];
  const fail = (i: number, step: Step, want: WireReply, got: WireReply, why: string): never => {
    const context = transcript.slice(-15).join('\n');
    throw new Error(
      `redis-server and BriseDB differ at step ${i} (${why}):\n` +
        `  ${describeItem(step)}\n` +
        `  redis-server: ${escaped(want.text)}\n` +
        `  BriseDB:      ${escaped(got.text)}\n` +
        `the steps before it (with redis-server's replies; BriseDB's matched them):\n${context}\n` +
        `seed ${SEED} (the replay line with BRISE_PATH follows fast-check's report)`,
    );
  };
  for (let i = 0; i < script.items.length; i++) {
    const item = script.items[i]!;
    if ('sleep' in item) {
      await sleep(item.sleep);
      transcript.push(`  ${i}: ${describeItem(item)}`);
      continue;
    }
    stats.steps++;
    if (item.sleepAfter > 0) stats.shortExpiries++;
    const c = clients[item.client]!;
    const name = upper(item.argv);
    const isExec = name === 'EXEC' && item.argv.length === 1;
    if (name === 'DBSIZE') await evictExpired();
    const watchedBefore = isExec && c.inMulti && c.watched.size > 0 ? await redisState([...c.watched.keys()]) : undefined;
    let want: WireReply;
    let got: WireReply;
    try {
      [want, got] = await Promise.all([c.redis.send(item.argv, REPLY_MS), c.brise.send(item.argv, REPLY_MS)]);
    } catch (err) {
      c.broken = true; // a reply may still be on its way: new connections for the next run
      throw new Error(`step ${i} (${describeItem(item)}): ${(err as Error).message}; seed ${SEED}`);
    }
    const why = replyDifference(item.argv, want.text, got.text, c.queue);
    if (why !== null) {
      const documented =
        watchedBefore !== undefined &&
        want.text === '*-1\r\n' &&
        elementsOf(got.text) !== null &&
        watchedBefore === [...c.watched.values()].join('|');
      if (!documented) fail(i, item, want, got, why);
      stats.watchDeviations++;
      if (VERBOSE) {
        console.log(`documented WATCH deviation (watched keys as at WATCH: ${escaped(watchedBefore!)}); the run ends here:\n${transcript.join('\n')}\n  ${i}: ${describeItem(item)}: redis-server ${escaped(want.text)}, BriseDB ${escaped(got.text)}`);
      }
      return;
    }
    transcript.push(`  ${i}: ${describeItem(item)} -> ${escaped(want.text)}`);
    if (want.text.startsWith('-')) stats.errors++;
    await track(c, item.argv, want.text);
    if (item.sleepAfter > 0) await sleep(item.sleepAfter);
  }
}

/** Follows what redis-server answered: MULTI state, the queue, the watched keys. */
async function track(c: Client, argv: string[], reply: string): Promise<void> {
  const name = upper(argv);
  const bare = argv.length === 1;
  if (c.inMulti) {
    if (bare && name === 'EXEC') {
      if (reply === '*-1\r\n') stats.execNil++;
      else if (reply.startsWith('-EXECABORT')) stats.execAbort++;
      else stats.execApplied++;
    }
    if (bare && name === 'DISCARD') stats.discards++;
    // Any EXEC ends MULTI: `EXEC x` aborts it with EXECABORT, as in Redis.
    if (name === 'EXEC' || (bare && name === 'DISCARD')) Object.assign(c, { inMulti: false, queue: [], watched: new Map() });
    else if (reply === '+QUEUED\r\n') c.queue.push(argv);
    return;
  }
  // Outside MULTI, a rejected `EXEC x` forgets the watched keys too.
  if (name === 'EXEC' && !bare) c.watched.clear();
  if (bare && name === 'MULTI' && reply === '+OK\r\n') Object.assign(c, { inMulti: true, queue: [] });
  if (bare && name === 'UNWATCH') c.watched.clear();
  if (name === 'WATCH' && reply === '+OK\r\n') {
    for (const k of argv.slice(1)) if (!c.watched.has(k)) c.watched.set(k, await redisState([k]));
  }
}

test(
  `random string, expiry and WATCH/MULTI/EXEC sequences from 2-3 clients answer as redis-server does (seed ${SEED})`,
  { skip: HAVE_REDIS ? false : 'redis-server is not installed', timeout: TIME_LIMIT_MS + 60_000 },
  async () => {
    const started = Date.now();
    const details = await fc.check(fc.asyncProperty(scriptArb, runScript), {
      seed: SEED,
      numRuns: PATH === undefined ? RUNS : 1,
      ...(PATH === undefined ? {} : { path: PATH, verbose: 2 }),
      interruptAfterTimeLimit: TIME_LIMIT_MS,
      markInterruptAsFailure: true,
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`redis oracle (seed ${SEED}): ${JSON.stringify(stats)} in ${seconds} s`);
    if (details.failed) {
      const replay = `BRISE_SEED=${details.seed}${details.counterexamplePath === null ? '' : ` BRISE_PATH=${details.counterexamplePath}`}`;
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      assert.fail(`${fc.defaultReportMessage(details) ?? ''}\n\n${error}\n\nReplay: ${replay} node --test dist/property-tests/redis_oracle.test.js`);
    }
    // The generators must reach what the property is about, or it proves little.
    if (PATH === undefined && RUNS >= 100) {
      for (const k of ['shortExpiries', 'execApplied', 'execNil', 'execAbort', 'discards', 'errors'] as const) {
        assert.ok(stats[k] > 0, `no run had any ${k}: ${JSON.stringify(stats)}`);
      }
      assert.ok(stats.watchDeviations < stats.runs / 4, `too many runs ended by the WATCH deviation: ${JSON.stringify(stats)}`);
    }
  },
);

test('the reply comparison: exact, clock tolerance, KEYS in any order, EXEC element by element', () => {
  assert.equal(replyDifference(['GET', 'k'], '$1\r\na\r\n', '$1\r\na\r\n'), null);
  assert.notEqual(replyDifference(['GET', 'k'], '$1\r\na\r\n', '$1\r\nb\r\n'), null);
  assert.notEqual(replyDifference(['SET', 'k', 'v'], '-ERR syntax error\r\n', '-ERR Syntax error\r\n'), null);
  assert.equal(replyDifference(['TTL', 'k'], ':10\r\n', ':9\r\n'), null);
  assert.notEqual(replyDifference(['TTL', 'k'], ':10\r\n', ':8\r\n'), null);
  assert.notEqual(replyDifference(['TTL', 'k'], ':-1\r\n', ':-2\r\n'), null);
  assert.notEqual(replyDifference(['TTL', 'k'], ':0\r\n', ':-2\r\n'), null);
  assert.equal(replyDifference(['PTTL', 'k'], ':10000\r\n', ':9990\r\n'), null);
  assert.notEqual(replyDifference(['PTTL', 'k'], ':10000\r\n', `:${10000 - CLOCK_TOLERANCE.PTTL! - 1}\r\n`), null);
  assert.equal(replyDifference(['KEYS', '*'], '*2\r\n$2\r\nk0\r\n$0\r\n\r\n', '*2\r\n$0\r\n\r\n$2\r\nk0\r\n'), null);
  assert.notEqual(replyDifference(['KEYS', '*'], '*2\r\n$2\r\nk0\r\n$0\r\n\r\n', '*1\r\n$2\r\nk0\r\n'), null);
  const queued = [['SET', 'k', 'v'], ['TTL', 'k'], ['KEYS', '*']];
  const exec = (ttl: number, keys: string): string => `*3\r\n+OK\r\n:${ttl}\r\n${keys}`;
  assert.equal(replyDifference(['EXEC'], exec(10, '*2\r\n$1\r\na\r\n$1\r\nb\r\n'), exec(9, '*2\r\n$1\r\nb\r\n$1\r\na\r\n'), queued), null);
  assert.notEqual(replyDifference(['EXEC'], exec(10, '*1\r\n$1\r\na\r\n'), exec(10, '*1\r\n$1\r\nb\r\n'), queued), null);
  assert.notEqual(replyDifference(['EXEC'], '*-1\r\n', exec(10, '*0\r\n'), queued), null);
  assert.deepEqual(elementsOf('*2\r\n*1\r\n:1\r\n$-1\r\n'), ['*1\r\n:1\r\n', '$-1\r\n']);
  assert.equal(elementsOf('*-1\r\n'), null);
});

test('the scripts: short expiries only outside MULTI and followed by a sleep; long ones never tie', () => {
  fc.assert(
    fc.property(scriptArb, (script) => {
      const inMulti = new Set<number>();
      for (const item of script.items) {
        if ('sleep' in item) continue;
        assert.ok(item.client < script.clients);
        const name = upper(item.argv);
        if (item.sleepAfter > 0) assert.ok(!inMulti.has(item.client) && item.sleepAfter >= 30, describeItem(item));
        if (item.argv.length === 1 && name === 'MULTI') inMulti.add(item.client);
        // Any EXEC ends MULTI (`EXEC x` aborts it, as in Redis); DISCARD only without arguments.
        if (name === 'EXEC' || (item.argv.length === 1 && name === 'DISCARD')) inMulti.delete(item.client);
      }
      const sorted = [...script.longs].sort((a, b) => a - b);
      for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i]! - sorted[i - 1]! >= 2000, `long expiries too close: ${sorted.join(',')}`);
      assert.ok(script.steps <= 120);
    }),
    { numRuns: 200, seed: SEED },
  );
});
