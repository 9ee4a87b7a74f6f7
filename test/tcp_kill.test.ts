// Real process kill (TESTING.md §3): the master as a child process, several ioredis clients
// writing (SET, SET EX, DEL, MSET of seeded random keys and values), SIGKILL at a seeded time
// 50–400 ms in, restart on the same data dir, and check every key against what was
// acknowledged. Proves the program's atomicity and restart path, not durability (the page
// cache survives a SIGKILL; see TESTING.md).
//
// The model: each client owns its own keys, and its commands on one connection are applied in
// the order sent, so each key has one sequence of operations, and the acknowledged ones are a
// prefix of it. After the restart a key must hold the value of its last acknowledged operation
// or of a later one that was in flight at the kill (the WAL replays a prefix of what was
// issued): never an older value, never one that was not written. A key with no acknowledged
// operation this cycle may also keep the value it had at the start of the cycle.
// Every value is unique (it carries the cycle and a counter), so a value names its operation,
// and one set with EX must come back with a time to live.
//
// Env: BRISE_KILL_SEED replays a run; BRISE_KILL_CYCLES raises the cycle count (default 20).
import { strict as assert } from 'node:assert';
import { after, it } from 'node:test';
import { Redis } from 'ioredis';
import { sleep, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { mulberry32 as rng } from '../property-tests/sim_fs.js';

const CYCLES = Math.max(1, Number(process.env.BRISE_KILL_CYCLES ?? 20));
const SEED = Number(process.env.BRISE_KILL_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CLIENTS = 4;
const KEYS_PER_CLIENT = 24;
/** Commands each client keeps in flight: more than one, so the kill catches several. */
const WINDOW = 4;
const TTL_SECONDS = 1000;
/** A CI run must stay under ~90 s: stop starting cycles past this. A soak (BRISE_KILL_CYCLES
 * set) gets about 5 s per cycle instead. */
const BUDGET_MS = process.env.BRISE_KILL_CYCLES === undefined ? 80_000 : CYCLES * 5000;

after(stopAll);


/** The state of one key: its value (null = absent) and whether it was set with EX. */
interface KeyState {
  value: string | null;
  ex: boolean;
}

/** One operation's effect on one key, in the order the key's client sent it. */
interface Effect extends KeyState {
  op: number;
}

interface KeyHistory {
  /** The state at the start of the cycle (what the previous restart recovered). */
  base: KeyState;
  effects: Effect[];
  /** Index into effects of the last acknowledged one; -1 = none this cycle. */
  lastAcked: number;
}

type Op =
  | { kind: 'set'; key: string; value: string; ex: boolean }
  | { kind: 'del'; keys: string[] }
  | { kind: 'mset'; pairs: Array<[string, string]> };

function keyName(client: number, i: number): string {
  return `kill:c${client}:k${i}`;
}

function randomValue(r: () => number, tag: string): string {
  // Mostly small values, some of a few KB, a few of 64 KB: several volume appends per batch.
  const roll = r();
  const size = roll < 0.8 ? Math.floor(r() * 40) : roll < 0.97 ? 1000 + Math.floor(r() * 4000) : 64 * 1024;
  let pad = '';
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (let i = 0; i < Math.min(size, 64); i++) pad += alphabet[Math.floor(r() * alphabet.length)];
  return `${tag}|${pad.repeat(Math.ceil(size / Math.max(1, pad.length)) || 1).slice(0, size)}`;
}

function makeOp(r: () => number, client: number, tag: string): Op {
  const key = (): string => keyName(client, Math.floor(r() * KEYS_PER_CLIENT));
  const roll = r();
  if (roll < 0.5) return { kind: 'set', key: key(), value: randomValue(r, tag), ex: false };
  if (roll < 0.65) return { kind: 'set', key: key(), value: randomValue(r, tag), ex: true };
  if (roll < 0.8) return { kind: 'del', keys: [...new Set([key(), key()])] };
  const pairs = new Map<string, string>();
  const n = 2 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) pairs.set(key(), `${tag}.${i}|${randomValue(r, '')}`);
  return { kind: 'mset', pairs: [...pairs] };
}

function effectsOf(op: Op, n: number): Array<[string, Effect]> {
  switch (op.kind) {
    case 'set':
      return [[op.key, { op: n, value: op.value, ex: op.ex }]];
    case 'del':
      return op.keys.map((k) => [k, { op: n, value: null, ex: false }]);
    case 'mset':
      return op.pairs.map(([k, v]) => [k, { op: n, value: v, ex: false }]);
  }
}

function send(c: Redis, op: Op): Promise<unknown> {
  switch (op.kind) {
    case 'set':
      return op.ex ? c.set(op.key, op.value, 'EX', TTL_SECONDS) : c.set(op.key, op.value);
    case 'del':
      return c.del(...op.keys);
    case 'mset':
      return c.mset(...op.pairs.flat());
  }
}

function connect(port: number): Redis {
  const c = new Redis({
    host: '127.0.0.1',
    port,
    protocol: 2,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 5000,
    lazyConnect: true,
  });
  c.on('error', () => undefined);
  return c;
}

/** One client's writer: keeps WINDOW commands in flight until told to stop or the socket dies. */
async function writer(
  port: number,
  client: number,
  r: () => number,
  cycle: number,
  model: Map<string, KeyHistory>,
  stop: { now: boolean },
  counters: { acked: number; sent: number },
): Promise<void> {
  const c = connect(port);
  try {
    await c.connect();
  } catch {
    return;
  }
  let n = 0;
  const lane = async (): Promise<void> => {
    while (!stop.now) {
      const op = makeOp(r, client, `${cycle}.${client}.${n}`);
      const effects = effectsOf(op, n++);
      // Record the effects before sending: from now on the op may be in the WAL.
      const at = effects.map(([k, e]) => {
        const h = model.get(k)!;
        h.effects.push(e);
        return [h, h.effects.length - 1] as const;
      });
      counters.sent++;
      try {
        await send(c, op);
      } catch {
        return; // the master is gone: this op is in flight, neither acknowledged nor refused
      }
      counters.acked++;
      for (const [h, i] of at) h.lastAcked = Math.max(h.lastAcked, i);
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  c.disconnect();
}

/** The states a key may hold after the restart. */
function allowed(h: KeyHistory): KeyState[] {
  const out: KeyState[] = h.lastAcked < 0 ? [h.base] : [];
  for (let i = Math.max(0, h.lastAcked); i < h.effects.length; i++) out.push(h.effects[i]!);
  return out;
}

async function verify(port: number, model: Map<string, KeyHistory>, where: string): Promise<void> {
  const c = connect(port);
  await c.connect();
  try {
    const keys = [...model.keys()];
    const pipe = c.pipeline();
    for (const k of keys) pipe.get(k).ttl(k);
    const replies = (await pipe.exec())!;
    keys.forEach((k, i) => {
      const [e1, value] = replies[2 * i]!;
      const [e2, ttl] = replies[2 * i + 1]!;
      assert.ifError(e1);
      assert.ifError(e2);
      const h = model.get(k)!;
      const ok = allowed(h);
      const match = ok.find((s) => s.value === value);
      const describe = (): string =>
        `${where}: key ${k} holds ${JSON.stringify(String(value).slice(0, 40))}; allowed: ` +
        ok.map((s) => JSON.stringify(String(s.value).slice(0, 40))).join(', ') +
        ` (last acknowledged ${h.lastAcked} of ${h.effects.length})`;
      assert.ok(match !== undefined, describe());
      if (value !== null) {
        const t = ttl as number;
        if (match.ex) assert.ok(t > 0 && t <= TTL_SECONDS, `${describe()}: set with EX, TTL ${t}`);
        else assert.equal(t, -1, `${describe()}: set without EX, TTL ${t}`);
      }
      h.base = { value: value as string | null, ex: match.ex };
      h.effects = [];
      h.lastAcked = -1;
    });
  } finally {
    c.disconnect();
  }
}

it(`SIGKILL at seeded times, restart: every acknowledged write is there (seed ${SEED}, ${CYCLES} cycles)`, { timeout: BUDGET_MS + 40_000 }, async () => {
  console.log(`tcp_kill: seed ${SEED} (replay with BRISE_KILL_SEED=${SEED}), ${CYCLES} cycles`);
  const started = Date.now();
  const r = rng(SEED);
  const model = new Map<string, KeyHistory>();
  for (let c = 0; c < CLIENTS; c++)
    for (let i = 0; i < KEYS_PER_CLIENT; i++) model.set(keyName(c, i), { base: { value: null, ex: false }, effects: [], lastAcked: -1 });

  let master: MasterProcess = await startMaster();
  const dataDir = master.dataDir;
  let done = 0;
  let totalAcked = 0;
  let totalSent = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    if (Date.now() - started > BUDGET_MS) break;
    const stop = { now: false };
    const counters = { acked: 0, sent: 0 };
    const writers = Array.from({ length: CLIENTS }, (_, ci) =>
      writer(master.port, ci, rng((SEED ^ (cycle * 7919 + ci * 104729)) >>> 0), cycle, model, stop, counters),
    );
    const killAt = 50 + Math.floor(r() * 350);
    await sleep(killAt);
    const signal = await master.kill();
    assert.equal(signal, 'SIGKILL', `the master was killed (cycle ${cycle}), not exited on its own`);
    stop.now = true;
    await Promise.all(writers);
    totalAcked += counters.acked;
    totalSent += counters.sent;
    master = await startMaster({ dataDir });
    await verify(master.port, model, `seed ${SEED} cycle ${cycle} (killed at ${killAt} ms, ${counters.acked}/${counters.sent} acknowledged)`);
    done++;
  }
  await master.stop();
  console.log(`tcp_kill: seed ${SEED}: ${done} cycles, ${totalAcked} writes acknowledged of ${totalSent} sent, ${Date.now() - started} ms`);
  assert.ok(done >= Math.min(CYCLES, 20), `at least 20 cycles ran (${done}) within the time budget`);
  assert.ok(totalAcked > done * 10, `the clients did write (${totalAcked} acknowledged)`);
});
