// The scripts of the redis-server oracle test (redis_oracle.test.ts): fast-check generators of
// random command sequences from 2-3 simulated clients over the string keyspace, the expiry
// commands and WATCH/MULTI/EXEC; the pass that turns a generated sequence into concrete
// commands (expiry times that cannot race, see below); and the comparison of two replies
// (byte for byte, with a tolerance only where the reply depends on the clock). Pure: no I/O.
//
// Timing rules, so that a compared reply is never on the edge of an expiry:
// - a "short" expiry (1-5 ms) is only sent outside MULTI, and the step is followed by a sleep of
//   30-40 ms before anything else is sent: every later command sees the key expired, on both
//   servers. Inside MULTI it becomes a long one (Redis freezes its clock during EXEC, BriseDB
//   does not: a key set with PX 2 inside EXEC would be live or not depending on the server);
// - a "long" relative expiry is >= 10 s, and the i-th one of a run gets 2*i s more than its
//   level, so no two relative expiries of a run are within 2 s of each other: NX/XX/GT/LT never
//   compare two times set in the same millisecond (a tie answers 0 where 1 ms later answers 1);
// - absolute times are fixed: in the past (the key is deleted) or in the year 2100;
// - no expiry time past 2^53 ms (BriseDB answers "invalid expire time" there, a documented
//   deviation), except INT64 extremes that both servers refuse with the same error.
import fc from 'fast-check';

export const MAX_CLIENTS = 3;

/**
 * Keys: k0..k4. Not the empty key: Redis takes "" as a key, BriseDB answers "ERR key is empty"
 * to any command that names it (keys are 1..65535 bytes in its WAL and index formats,
 * docs/formats.md), a deviation of the storage format that the front end cannot paper over.
 */
export const KEY_NAMES = ['k0', 'k1', 'k2', 'k3', 'k4'] as const;

/** A relative expiry to be made concrete by `concretize`. */
export type Expiry = { kind: 'long'; level: 0 | 1 | 2; unit: 's' | 'ms' } | { kind: 'short'; ms: number };
export type Token = string | Expiry;

export interface GenStep {
  client: number;
  argv: Token[];
}
export type GenItem = GenStep | { sleep: number };

/** A concrete step: one command from one client, then an optional sleep. */
export interface Step {
  client: number;
  argv: string[];
  sleepAfter: number;
}
export type Item = Step | { sleep: number };

const LEVEL_SECONDS = [10, 1_000, 100_000] as const;
const SHORT_SLEEP_MS = 30;

// ---- generators --------------------------------------------------------------------------------

const key: fc.Arbitrary<string> = fc.constantFrom(...KEY_NAMES);
const keys = (min: number, max: number): fc.Arbitrary<string[]> => fc.array(key, { minLength: min, maxLength: max });

/** Values: empty, numeric strings at the edges of int64, a float, text, a leading space. */
const value: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('', '0', '-1', '10', '9223372036854775807', '-9223372036854775808', '1.5', 'abc', ' 1', 'Hello') },
  { weight: 1, arbitrary: fc.constantFrom('-0', '01', '+1', '1 ', '3.0', '1e3', '0x10', '9223372036854775806', '18446744073709551616', 'inf', '1.5e308', 'x\r\ny') },
);

const intArg = fc.constantFrom('1', '-1', '0', '7', '9223372036854775807', '-9223372036854775808', 'x', '1.5', ' 1', '', '+1', '01');
const floatArg = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('0.1', '-1.5', '1e3', '3', '-0.3', 'abc', '', 'inf', 'nan', ' 1', '5.0e3', '1e300', '.5') },
  { weight: 1, arbitrary: fc.constantFrom('0x10', '0x1p3', '1e-5000', '1e5000', 'Infinity', '-inf', '1.5 ', '+2', '-0', '1e308', '9223372036854775807', '0.30000000000000004') },
);
const index = fc.constantFrom('0', '1', '2', '5', '100', '-1', '-3', '-100', 'x', '9223372036854775807', '-9223372036854775808', '01', '');
/** SETRANGE offsets: small, negative, or past 512 MiB (an error: nothing is allocated). */
const offset = fc.constantFrom('0', '1', '3', '10', '-1', 'x', '536870912', '9223372036854775807', '-9223372036854775808');

const longS: fc.Arbitrary<Expiry> = fc.constantFrom(0, 1, 2).map((level) => ({ kind: 'long', level: level as 0 | 1 | 2, unit: 's' }));
const longMs: fc.Arbitrary<Expiry> = fc.constantFrom(0, 1, 2).map((level) => ({ kind: 'long', level: level as 0 | 1 | 2, unit: 'ms' }));
const short: fc.Arbitrary<Expiry> = fc.integer({ min: 1, max: 5 }).map((ms) => ({ kind: 'short', ms }));
/** Times both servers refuse, or that delete the key, or that are not numbers. */
const badTime = fc.constantFrom('0', '-1', 'abc', '', '9223372036854775807', '-9223372036854775808', '1.5');

/** Relative seconds (EX, EXPIRE, SETEX). */
const seconds: fc.Arbitrary<Token> = fc.oneof({ weight: 4, arbitrary: longS }, { weight: 1, arbitrary: badTime });
/** Relative milliseconds (PX, PEXPIRE, PSETEX): long, short (then a sleep), or bad. */
const millis: fc.Arbitrary<Token> = fc.oneof({ weight: 3, arbitrary: longMs }, { weight: 3, arbitrary: short }, { weight: 1, arbitrary: badTime });
/**
 * Absolute times: the past (deletes), the year 2100 (often the same instant, in s or ms: a tie
 * of GT/LT that both servers judge alike), or bad.
 */
const unixS = fc.constantFrom('1', '1000000000', '4102444800', '4102444800', '4102444800', '4102444801', '-5', 'x');
const unixMs = fc.constantFrom('1', '1000000000000', '4102444800000', '4102444800000', '4102444800123', '4102444801000', '-5', 'x');

/** One of these commands (or option lists). */
const lists = (...xs: Token[][]): fc.Arbitrary<Token[]> => fc.constantFrom<Token[]>(...xs);

const setOption: fc.Arbitrary<Token[]> = fc.oneof(
  lists(['NX'], ['XX'], ['GET'], ['KEEPTTL'], ['nx'], ['get'], ['PERSIST'], ['EX']),
  seconds.map((t) => ['EX', t]),
  millis.map((t) => ['PX', t]),
  unixS.map((t) => ['EXAT', t]),
  unixMs.map((t) => ['PXAT', t]),
);

const getexOption: fc.Arbitrary<Token[]> = fc.oneof(
  lists(['PERSIST'], ['persist'], ['NX'], ['EX']),
  seconds.map((t) => ['EX', t]),
  millis.map((t) => ['PX', t]),
  unixS.map((t) => ['EXAT', t]),
  unixMs.map((t) => ['PXAT', t]),
);

const expireFlags = fc.array(fc.constantFrom('NX', 'XX', 'GT', 'LT', 'gt', 'Foo'), { maxLength: 2 });

const flat = (parts: Token[][]): Token[] => parts.flat();

/** One command of the string keyspace or the expiry commands (not the transaction commands). */
export const dataCommand: fc.Arbitrary<Token[]> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(key, value, fc.array(setOption, { maxLength: 3 })).map(([k, v, o]) => ['SET', k, v, ...flat(o)]) },
  { weight: 5, arbitrary: key.map((k) => ['GET', k]) },
  { weight: 2, arbitrary: keys(1, 4).map((ks) => ['MGET', ...ks]) },
  { weight: 2, arbitrary: fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 3 }).map((kv) => ['MSET', ...kv.flat()]) },
  { weight: 1, arbitrary: fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 3 }).map((kv) => ['MSETNX', ...kv.flat()]) },
  { weight: 1, arbitrary: fc.tuple(key, value).map(([k, v]) => ['SETNX', k, v]) },
  { weight: 1, arbitrary: fc.tuple(key, seconds, value).map(([k, t, v]) => ['SETEX', k, t, v]) },
  { weight: 2, arbitrary: fc.tuple(key, millis, value).map(([k, t, v]) => ['PSETEX', k, t, v]) },
  { weight: 1, arbitrary: fc.tuple(key, value).map(([k, v]) => ['GETSET', k, v]) },
  { weight: 1, arbitrary: key.map((k) => ['GETDEL', k]) },
  { weight: 2, arbitrary: fc.tuple(key, fc.array(getexOption, { maxLength: 2 })).map(([k, o]) => ['GETEX', k, ...flat(o)]) },
  { weight: 2, arbitrary: fc.tuple(key, value).map(([k, v]) => ['APPEND', k, v]) },
  { weight: 1, arbitrary: key.map((k) => ['STRLEN', k]) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('GETRANGE', 'SUBSTR'), key, index, index).map(([c, k, a, b]) => [c, k, a, b]) },
  { weight: 1, arbitrary: fc.tuple(key, offset, value).map(([k, o, v]) => ['SETRANGE', k, o, v]) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('INCR', 'DECR'), key).map(([c, k]) => [c, k]) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('INCRBY', 'DECRBY'), key, intArg).map(([c, k, n]) => [c, k, n]) },
  { weight: 2, arbitrary: fc.tuple(key, floatArg).map(([k, n]) => ['INCRBYFLOAT', k, n]) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('DEL', 'UNLINK', 'EXISTS', 'TOUCH'), keys(1, 3)).map(([c, ks]) => [c, ...ks]) },
  { weight: 1, arbitrary: key.map((k) => ['TYPE', k]) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('RENAME', 'RENAMENX'), key, key).map(([c, a, b]) => [c, a, b]) },
  {
    weight: 2,
    arbitrary: fc
      // Not DB 1..15: Redis copies into another database, BriseDB has only db 0 (documented).
      .tuple(key, key, lists([], [], ['REPLACE'], ['replace'], ['DB', '0'], ['DB', '0', 'REPLACE'], ['BOGUS'], ['DB'], ['DB', '-1'], ['DB', 'x'], ['DB', '9223372036854775807'], ['REPLACE', 'DB', '16']))
      .map(([a, b, o]) => ['COPY', a, b, ...o]),
  },
  { weight: 2, arbitrary: fc.tuple(key, seconds, expireFlags).map(([k, t, f]) => ['EXPIRE', k, t, ...f]) },
  { weight: 2, arbitrary: fc.tuple(key, millis, expireFlags).map(([k, t, f]) => ['PEXPIRE', k, t, ...f]) },
  { weight: 2, arbitrary: fc.tuple(key, unixS, expireFlags).map(([k, t, f]) => ['EXPIREAT', k, t, ...f]) },
  { weight: 2, arbitrary: fc.tuple(key, unixMs, expireFlags).map(([k, t, f]) => ['PEXPIREAT', k, t, ...f]) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom('TTL', 'PTTL', 'EXPIRETIME', 'PEXPIRETIME'), key).map(([c, k]) => [c, k]) },
  { weight: 1, arbitrary: key.map((k) => ['PERSIST', k]) },
  { weight: 1, arbitrary: lists(['DBSIZE']) },
  { weight: 1, arbitrary: lists(['FLUSHALL'], ['FLUSHDB'], ['FLUSHALL', 'ASYNC'], ['FLUSHDB', 'SYNC'], ['FLUSHALL', 'BOGUS']) },
  { weight: 1, arbitrary: lists(['KEYS', '*'], ['KEYS', '*'], ['KEYS', 'k[0-2]'], ['KEYS', '?']) },
  // Wrong arity, unknown commands, options that do not parse: errors at queueing time in MULTI.
  {
    weight: 1,
    arbitrary: key.chain((k) =>
      lists(['GET'], ['SET', k], ['INCRBY', k], ['EXPIRE', k], ['MSET', k], ['GETRANGE', k, '0'], ['NOSUCHCMD', k], ['COPY', k], ['TTL']),
    ),
  },
);

/**
 * The transaction commands, as single steps (the structured scenarios are in `transaction`).
 * `EXEC x` is rejected with an EXECABORT that discards the transaction and the watches.
 */
const txnCommand: fc.Arbitrary<Token[]> = fc.oneof(
  { weight: 2, arbitrary: keys(1, 2).map((ks) => ['WATCH', ...ks]) },
  { weight: 1, arbitrary: lists(['UNWATCH'], ['MULTI'], ['EXEC'], ['DISCARD'], ['WATCH'], ['DISCARD', 'x'], ['MULTI', 'x'], ['EXEC', 'x']) },
);

/** Sometimes the command's name in lower case (names are case-insensitive; errors quote them). */
const named = (cmd: fc.Arbitrary<Token[]>): fc.Arbitrary<Token[]> =>
  fc.tuple(cmd, fc.integer({ min: 0, max: 9 })).map(([argv, n]) => (n === 0 && typeof argv[0] === 'string' ? [argv[0].toLowerCase(), ...argv.slice(1)] : argv));

const clientIndex = fc.integer({ min: 0, max: MAX_CLIENTS - 1 });
const anyStep: fc.Arbitrary<GenStep> = fc.record({
  client: clientIndex,
  argv: named(fc.oneof({ weight: 12, arbitrary: dataCommand }, { weight: 1, arbitrary: txnCommand })),
});

/**
 * A WATCH/MULTI/EXEC scenario of one client: maybe WATCH some keys, some steps of any client
 * (which may change them), MULTI, commands queued by that client (other clients' steps
 * interleaved), then EXEC (mostly) or DISCARD.
 */
const transaction: fc.Arbitrary<GenItem[]> = fc
  .record({
    client: clientIndex,
    watch: fc.option(keys(1, 2), { nil: null }),
    between: fc.array(anyStep, { maxLength: 3 }),
    queued: fc.array(fc.oneof({ weight: 4, arbitrary: named(dataCommand).map((argv) => ({ argv })) }, { weight: 1, arbitrary: anyStep }), { maxLength: 4 }),
    end: fc.constantFrom('EXEC', 'EXEC', 'EXEC', 'DISCARD'),
  })
  .map(({ client, watch, between, queued, end }) => [
    ...(watch === null ? [] : [{ client, argv: ['WATCH', ...watch] }]),
    ...between,
    { client, argv: ['MULTI'] },
    ...queued.map((q) => ('client' in q ? q : { client, argv: q.argv })),
    { client, argv: [end] },
  ]);

/**
 * Expiries that meet at the same instant: a key is set with an absolute expiry (EXAT or PXAT of
 * one instant in 2100), a long relative one, or none; then two EXPIREAT/PEXPIREAT with
 * NX/XX/GT/LT at that instant (a tie: GT and LT refuse it, in s or in ms) or 1 ms / 1 s beside
 * it; then its expiry is read. Deterministic on both servers, and rare among random steps.
 */
const expiryDuel: fc.Arbitrary<GenItem[]> = fc
  .record({
    clients: fc.tuple(clientIndex, clientIndex, clientIndex),
    key,
    value,
    first: fc.constantFrom<Token[]>(['EXAT', '4102444800'], ['PXAT', '4102444800000'], [], ['EX', { kind: 'long', level: 1, unit: 's' }]),
    then: fc.constantFrom<Token[]>(['EXPIREAT', '4102444800'], ['PEXPIREAT', '4102444800000'], ['EXPIREAT', '4102444801'], ['PEXPIREAT', '4102444799999'], ['PEXPIREAT', '4102444800001']),
    again: fc.constantFrom<Token[]>(['EXPIREAT', '4102444800'], ['PEXPIREAT', '4102444800000'], ['EXPIREAT', '4102444801']),
    flags: fc.tuple(fc.constantFrom('GT', 'LT', 'NX', 'XX', 'gt', 'lt'), fc.constantFrom('GT', 'LT', 'NX', 'XX')),
    read: fc.constantFrom('PEXPIRETIME', 'EXPIRETIME', 'TTL'),
  })
  .map(({ clients: [a, b, c], key: k, value: v, first, then, again, flags: [f1, f2], read }) => [
    { client: a, argv: ['SET', k, v, ...first] },
    { client: b, argv: [then[0]!, k, then[1]!, f1] },
    { client: c, argv: [again[0]!, k, again[1]!, f2] },
    { client: a, argv: [read, k] },
  ]);

/** A chunk of a run: one step, a short sleep, a transaction scenario, expiries that meet. */
const chunk: fc.Arbitrary<GenItem[]> = fc.oneof(
  { weight: 8, arbitrary: anyStep.map((s) => [s]) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 5 }).map((ms) => [{ sleep: ms }]) },
  { weight: 3, arbitrary: transaction },
  { weight: 1, arbitrary: expiryDuel },
);

/** A run: 2 or 3 clients and its chunks (about 20-60 steps), made concrete. */
export const scriptArb: fc.Arbitrary<Script> = fc
  .tuple(fc.integer({ min: 2, max: MAX_CLIENTS }), fc.array(chunk, { minLength: 8, maxLength: 22 }))
  .map(([clients, chunks]) => concretize(clients, chunks.flat()));

// ---- making a generated run concrete -----------------------------------------------------------

/** One run, ready to send: which client sends what, and the sleeps. Prints one step a line. */
export class Script {
  constructor(
    readonly clients: number,
    readonly items: Item[],
    /** The long relative expiries of the run, in ms, in order. */
    readonly longs: number[] = [],
  ) {}

  get steps(): number {
    return this.items.filter((i) => 'argv' in i).length;
  }

  [fc.toStringMethod](): string {
    return `Script(${this.clients} clients, ${this.steps} steps):\n${this.items.map((it, i) => `  ${i}: ${describeItem(it)}`).join('\n')}`;
  }

  toString(): string {
    return this[fc.toStringMethod]();
  }
}

export function describeItem(item: Item): string {
  if ('sleep' in item) return `sleep ${item.sleep} ms`;
  const cmd = item.argv.map((a) => (a === '' || /[\s"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
  return `c${item.client}: ${cmd}${item.sleepAfter > 0 ? `   (then sleep ${item.sleepAfter} ms)` : ''}`;
}

/**
 * Deterministic: clients taken modulo `clients`; relative expiries made concrete (long: level
 * + 2 s per long expiry so far in the run; short: kept outside MULTI with a sleep after the
 * step, made long inside MULTI). MULTI state is tracked per client as the servers will have
 * it: MULTI opens (a nested MULTI is an error that keeps it open), EXEC and DISCARD close.
 */
export function concretize(clients: number, gen: GenItem[]): Script {
  const inMulti = new Array<boolean>(MAX_CLIENTS).fill(false);
  const longs: number[] = [];
  const items: Item[] = [];
  const long = (level: 0 | 1 | 2, unit: 's' | 'ms'): string => {
    const s = LEVEL_SECONDS[level] + 2 * longs.length;
    longs.push(s * 1000);
    return String(unit === 's' ? s : s * 1000);
  };
  for (const g of gen) {
    if ('sleep' in g) {
      items.push({ sleep: g.sleep });
      continue;
    }
    const client = g.client % clients;
    let sleepAfter = 0;
    const argv = g.argv.map((t) => {
      if (typeof t === 'string') return t;
      if (t.kind === 'long') return long(t.level, t.unit);
      if (inMulti[client]) return long(0, 'ms');
      sleepAfter = SHORT_SLEEP_MS + t.ms * 2;
      return String(t.ms);
    });
    const name = argv[0]!.toUpperCase();
    // Not DBSIZE inside MULTI: it counts the transaction's own writes now (redis_compat covers
    // it), but inside EXEC neither server can be made to drop its expired keys first, and each
    // counts expired-but-not-deleted keys by its own background expiry. EXISTS of every key
    // counts the same live keys there.
    if (inMulti[client] && name === 'DBSIZE') argv.splice(0, argv.length, 'EXISTS', ...KEY_NAMES);
    if (argv.length === 1 && name === 'MULTI') inMulti[client] = true;
    if (name === 'EXEC' || (argv.length === 1 && name === 'DISCARD')) inMulti[client] = false;
    items.push({ client, argv, sleepAfter });
  }
  return new Script(clients, items, longs);
}

// ---- comparing replies -------------------------------------------------------------------------

/** Commands whose integer reply depends on the clock, and the tolerance of each. */
export const CLOCK_TOLERANCE: Readonly<Record<string, number>> = { TTL: 1, EXPIRETIME: 1, PTTL: 1000, PEXPIRETIME: 1000 };

/**
 * Why `got` (BriseDB) differs from `want` (redis-server) as a reply to `argv`, or null when
 * they are the same: byte for byte, except TTL/PTTL/EXPIRETIME/PEXPIRETIME (non-negative
 * integers within the tolerance; -1 and -2 exact), KEYS (the same keys in any order), and EXEC
 * (element by element, each by the rule of the queued command it answers).
 */
export function replyDifference(argv: string[], want: string, got: string, queued: string[][] = []): string | null {
  if (want === got) return null;
  const name = argv[0]!.toUpperCase();
  const tolerance = CLOCK_TOLERANCE[name];
  if (tolerance !== undefined) {
    const [w, g] = [integerOf(want), integerOf(got)];
    if (w === null || g === null || w < 0 || g < 0) return 'different replies';
    return Math.abs(w - g) <= tolerance ? null : `${g} vs ${w}: more than ${tolerance} apart`;
  }
  if (name === 'KEYS') {
    const [w, g] = [elementsOf(want), elementsOf(got)];
    if (w === null || g === null) return 'different replies';
    return [...w].sort().join('') === [...g].sort().join('') ? null : 'different keys';
  }
  if (name === 'EXEC' && argv.length === 1) {
    const [w, g] = [elementsOf(want), elementsOf(got)];
    if (w === null || g === null || w.length !== g.length || w.length !== queued.length) return 'different replies';
    for (let i = 0; i < w.length; i++) {
      const why = replyDifference(queued[i]!, w[i]!, g[i]!);
      if (why !== null) return `element ${i} (${queued[i]!.join(' ')}): ${why}`;
    }
    return null;
  }
  return 'different replies';
}

function integerOf(text: string): number | null {
  const m = /^:(-?[0-9]+)\r\n$/.exec(text);
  return m === null ? null : Number(m[1]);
}

/** The raw text of each element of a RESP2 array reply; null when it is not a (non-nil) array. */
export function elementsOf(text: string): string[] | null {
  const m = /^\*([0-9]+)\r\n/.exec(text);
  if (m === null) return null;
  const out: string[] = [];
  let at = m[0].length;
  for (let i = 0; i < Number(m[1]); i++) {
    const end = endOf(text, at);
    if (end < 0) return null;
    out.push(text.slice(at, end));
    at = end;
  }
  return at === text.length ? out : null;
}

/** Where the RESP2 value starting at `at` ends; -1 when it is not whole. */
function endOf(text: string, at: number): number {
  const eol = text.indexOf('\r\n', at);
  if (eol < 0) return -1;
  const head = text.slice(at + 1, eol);
  switch (text[at]) {
    case '+':
    case '-':
    case ':':
      return eol + 2;
    case '$': {
      const n = Number(head);
      if (n < 0) return eol + 2;
      return eol + 2 + n + 2 <= text.length ? eol + 2 + n + 2 : -1;
    }
    case '*': {
      let end = eol + 2;
      for (let i = 0; i < Number(head); i++) {
        end = endOf(text, end);
        if (end < 0) return -1;
      }
      return end;
    }
    default:
      return -1;
  }
}

/** A reply as one line of escaped text, for a failure message. */
export function escaped(text: string): string {
  return JSON.stringify(text);
}
