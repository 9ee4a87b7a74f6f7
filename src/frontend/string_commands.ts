// The string commands, as Redis 7 has them: syntax, replies, error texts and edge cases. Every
// command that reads and writes (INCR, APPEND, SETRANGE, GETSET, GETDEL, GETEX, MSETNX, SETNX)
// is one Session.update: decided on the key as it is, committed guarded by it (atomic against
// every other client, in log order), or staged in the open transaction. Values over 64 KiB are
// never read whole to be rewritten: APPEND and SETRANGE stream the old bytes into the new needle.
import type { Change, Current, SetCondOptions } from '../db/api.js';
import { NOT_AN_INTEGER, SYNTAX_ERROR, type CommandSpec } from '../protocol/commands.js';
import { NULL_BULK, OK, array, bulk, integer, type Reply } from '../protocol/reply.js';
import { StoreError } from '../runtime/errors.js';
import {
  fail,
  int64Of,
  invalidExpire,
  optionOf,
  parseInt64,
  setExpiryOf,
  wrongArgs,
  type Context,
  type Handler,
} from './command_args.js';
import { addLongDouble, formatLongDouble, parseLongDouble } from './long_double.js';
import { INT64_MAX, INT64_MIN } from '../protocol/reply.js';
import type { KeyEvent } from '../protocol/keyspace_events.js';

/** Values up to this size are rewritten in memory; larger ones are streamed. */
const IN_MEMORY = 64 * 1024;
const TOO_BIG = 'ERR string exceeds maximum allowed size (proto-max-bulk-len)';
/** Redis' proto-max-bulk-len: the largest string APPEND and SETRANGE may make. */
const PROTO_MAX_BULK_LEN = 512 * 1024 * 1024;
const NOT_A_FLOAT = 'ERR value is not a valid float';

// ---- SET and its options -----------------------------------------------------------------------

/** The options of SET (kind 'set') and GETEX ('get'), before their values are checked. */
interface Extended {
  nx?: boolean;
  xx?: boolean;
  get?: boolean;
  keepTtl?: boolean;
  persist?: boolean;
  expire?: { unitMs: 1 | 1000; absolute: boolean; arg: Buffer };
}

/**
 * Redis' parseExtendedStringArgumentsOrReply: options in any case and order; NX/XX exclude each
 * other, the expiries and KEEPTTL/PERSIST exclude each other, but one option given twice is
 * accepted (the last value counts). Anything else is a syntax error, found before any value is
 * checked.
 */
function parseExtended(opts: Buffer[], kind: 'set' | 'get'): Extended {
  const out: Extended = {};
  for (let i = 0; i < opts.length; i++) {
    const opt = optionOf(opts[i]!);
    const next = opts[i + 1];
    const expiry = out.expire;
    if (kind === 'set' && opt === 'nx' && !out.xx) out.nx = true;
    else if (kind === 'set' && opt === 'xx' && !out.nx) out.xx = true;
    else if (kind === 'set' && opt === 'get') out.get = true;
    else if (kind === 'set' && opt === 'keepttl' && expiry === undefined) out.keepTtl = true;
    else if (kind === 'get' && opt === 'persist' && expiry === undefined) out.persist = true;
    else if (isExpiryOption(opt) && next !== undefined && !out.keepTtl && !out.persist && sameOrNone(expiry, opt)) {
      out.expire = { unitMs: opt === 'ex' || opt === 'exat' ? 1000 : 1, absolute: opt.endsWith('at'), arg: next };
      i++;
    } else fail(SYNTAX_ERROR);
  }
  return out;
}

function isExpiryOption(opt: string): boolean {
  return opt === 'ex' || opt === 'px' || opt === 'exat' || opt === 'pxat';
}

/** An expiry option may repeat itself, not join another. */
function sameOrNone(expiry: Extended['expire'], opt: string): boolean {
  if (expiry === undefined) return true;
  const was = (expiry.unitMs === 1000 ? 'ex' : 'px') + (expiry.absolute ? 'at' : '');
  return was === opt;
}

/**
 * A relative expiry in ms, or an absolute time: positive, and (here) at most MAX_TTL_MS ahead,
 * where Redis allows up to int64 ms (a deviation only for times past the year 287,000).
 */
function expiryOptions(e: Extended['expire'], spec: CommandSpec): { ttlMs?: number; expiresAt?: number } {
  if (e === undefined) return {};
  const n = parseInt64(e.arg);
  if (e.absolute) return { expiresAt: setExpiryOf(n, e.unitMs, false, 0, spec) };
  if (n <= 0n || (e.unitMs === 1000 && n > INT64_MAX / 1000n)) invalidExpire(spec);
  const ms = n * BigInt(e.unitMs);
  if (ms > BigInt(MAX_TTL_MS)) invalidExpire(spec);
  return { ttlMs: Number(ms) };
}

/** Largest relative TTL: now + ttl stays a safe integer for any clock before the year 2109. */
const MAX_TTL_MS = Number.MAX_SAFE_INTEGER - 2 ** 42;

/** SET's options as the Session takes them. */
function setOptionsOf(opts: Buffer[], spec: CommandSpec): SetCondOptions {
  const e = parseExtended(opts, 'set');
  return {
    ...expiryOptions(e.expire, spec),
    ...(e.nx ? { nx: true } : {}),
    ...(e.xx ? { xx: true } : {}),
    ...(e.get ? { get: true } : {}),
    ...(e.keepTtl ? { keepTtl: true } : {}),
  };
}

async function setCommand({ session, argv, spec }: Context): Promise<Reply> {
  const o = setOptionsOf(argv.slice(3), spec);
  if (!o.nx && !o.xx && !o.keepTtl && !o.get) {
    await session.set(argv[1]!, argv[2]!, o);
    return OK;
  }
  const { applied, previous } = await session.setWith(argv[1]!, argv[2]!, o);
  if (o.get) return bulk(previous);
  return applied ? OK : NULL_BULK;
}

const SET_SPEC_NAME = 'set';

/**
 * A SET that can join a batch (Session.setMany): no NX/XX/GET/KEEPTTL and options that parse.
 * null otherwise: the command then runs alone, and answers its own exact error.
 */
export function plainSetOf(argv: Buffer[]): { key: Buffer; value: Buffer; options: SetCondOptions } | null {
  if (argv.length < 3) return null;
  let options: SetCondOptions;
  try {
    options = setOptionsOf(argv.slice(3), { name: SET_SPEC_NAME } as CommandSpec);
  } catch {
    return null;
  }
  if (options.nx || options.xx || options.keepTtl || options.get) return null;
  return { key: argv[1]!, value: argv[2]!, options };
}

async function setnxCommand({ session, argv }: Context): Promise<Reply> {
  const { applied } = await session.setWith(argv[1]!, argv[2]!, { nx: true });
  return integer(applied ? 1 : 0);
}

/** SETEX key seconds value / PSETEX key milliseconds value. */
function setexOf(unitMs: 1 | 1000): Handler {
  return async ({ session, argv, spec }) => {
    const ttl = expiryOptions({ unitMs, absolute: false, arg: argv[2]! }, spec);
    await session.set(argv[1]!, argv[3]!, ttl);
    return OK;
  };
}

async function getCommand({ session, argv }: Context): Promise<Reply> {
  return bulk(await session.get(argv[1]!));
}

/** GETSET: the old value; the new one has no expiry (as SET without KEEPTTL). */
async function getsetCommand({ session, argv }: Context): Promise<Reply> {
  const { previous } = await session.setWith(argv[1]!, argv[2]!, { get: true });
  return bulk(previous);
}

async function getdelCommand({ session, argv }: Context): Promise<Reply> {
  return session.update([argv[1]!], async ([cur]) => {
    const value = await cur!.value();
    if (value === null) return { changes: [], result: NULL_BULK };
    return { changes: [{ kind: 'del', key: cur!.key }], result: bulk(value), events: [{ event: 'del', key: cur!.key }] };
  });
}

/** GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]: a time in the past deletes the key. */
async function getexCommand({ session, argv, spec }: Context): Promise<Reply> {
  const o = parseExtended(argv.slice(2), 'get');
  const e = o.expire;
  return session.update([argv[1]!], async ([cur], now) => {
    // As Redis: a missing key answers nil before the time is even parsed.
    if (cur!.state === null) return { changes: [], result: NULL_BULK };
    const at = e === undefined ? 0 : setExpiryOf(parseInt64(e.arg), e.unitMs, !e.absolute, now, spec);
    const result = bulk(await cur!.value());
    const key = cur!.key;
    if (o.persist) {
      if (cur!.state.expiresAt === 0) return { changes: [], result };
      return { changes: [expireChange(cur!, 0)], result, events: [{ event: 'persist', key }] };
    }
    if (e === undefined) return { changes: [], result };
    if (at <= now) return { changes: [{ kind: 'del', key }], result, events: [{ event: 'del', key }] };
    return { changes: [expireChange(cur!, at)], result, events: [{ event: 'expire', key }] };
  });
}

function expireChange(cur: Current, expiresAt: number): Change {
  return { kind: 'expire', key: cur.key, expiresAt };
}

async function msetCommand({ session, argv, spec }: Context): Promise<Reply> {
  if (argv.length % 2 === 0) wrongArgs(spec);
  // A savepoint of its own makes MSET all-or-nothing, inside a transaction or not.
  session.begin();
  try {
    for (let i = 1; i < argv.length; i += 2) await session.set(argv[i]!, argv[i + 1]!);
  } catch (err) {
    session.rollback();
    throw err;
  }
  await session.commit();
  return OK;
}

/** MSETNX: all keys or none, only if none exists; a key named twice takes its last value. */
async function msetnxCommand({ session, argv, spec }: Context): Promise<Reply> {
  if (argv.length % 2 === 0) wrongArgs(spec);
  const last = new Map<string, Buffer>();
  for (let i = 1; i < argv.length; i += 2) last.set(argv[i]!.toString('latin1'), argv[i + 1]!);
  const keys = [...last.keys()].map((k) => Buffer.from(k, 'latin1'));
  return session.update(keys, (current) => {
    if (current.some((c) => c.state !== null)) return { changes: [], result: integer(0) };
    const changes: Change[] = current.map((c) => ({ kind: 'set', key: c.key, value: last.get(c.key.toString('latin1'))!, expiresAt: 0 }));
    return { changes, result: integer(1), events: current.map((c) => ({ event: 'set', key: c.key })) };
  });
}

async function mgetCommand({ session, argv }: Context): Promise<Reply> {
  const values: Reply[] = [];
  await session.getEach(argv.slice(1), (v) => {
    values.push(bulk(v));
  });
  return array(values);
}

async function countCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.count(argv[1]!));
}

// ---- lengths and ranges -----------------------------------------------------------------------

async function strlenCommand({ session, argv }: Context): Promise<Reply> {
  const info = await session.stat(argv[1]!);
  return integer(info === null ? 0 : info.size);
}

/** APPEND: the new length; creates the key; keeps the expiry. */
async function appendCommand({ session, argv }: Context): Promise<Reply> {
  const suffix = argv[2]!;
  return tooBigAsRedis(session.update([argv[1]!], async ([cur]) => {
    const state = cur!.state;
    const size = (state?.size ?? 0) + suffix.length;
    const events: KeyEvent[] = [{ event: 'append', key: cur!.key }];
    if (state === null) return { changes: [setChange(cur!, suffix, 0)], result: integer(size), events };
    if (suffix.length === 0) return { changes: [], result: integer(size), events };
    if (size > PROTO_MAX_BULK_LEN) fail(TOO_BIG);
    const value = await spliced(cur!, state.size, suffix, state.size);
    return { changes: [setChange(cur!, value, state.expiresAt)], result: integer(size), events };
  }));
}

/**
 * SETRANGE key offset value: zero-padded; an empty value changes nothing; keeps the expiry. The
 * offset is any int64 (as Redis): past the size limit it is "string exceeds maximum allowed
 * size", checked after the empty value, not a parse error.
 */
async function setrangeCommand({ session, argv }: Context): Promise<Reply> {
  const at = parseInt64(argv[2]!);
  if (at < 0n) fail('ERR offset is out of range');
  const patch = argv[3]!;
  const tooBig = at + BigInt(patch.length) > BigInt(PROTO_MAX_BULK_LEN);
  const offset = tooBig ? 0 : Number(at);
  return tooBigAsRedis(session.update([argv[1]!], async ([cur]) => {
    const state = cur!.state;
    const old = state?.size ?? 0;
    if (patch.length === 0) return { changes: [], result: integer(old) };
    if (tooBig) fail(TOO_BIG);
    const size = Math.max(old, offset + patch.length);
    const value = await spliced(cur!, old, patch, offset);
    return { changes: [setChange(cur!, value, state?.expiresAt ?? 0)], result: integer(size), events: [{ event: 'setrange', key: cur!.key }] };
  }));
}

/** GETRANGE / SUBSTR key start end, with Redis' clamping (an empty string, never an error). */
async function getrangeCommand({ session, argv }: Context): Promise<Reply> {
  let start = parseInt64(argv[2]!);
  let end = parseInt64(argv[3]!);
  const info = await session.stat(argv[1]!);
  const len = BigInt(info?.size ?? 0);
  if (start < 0n && end < 0n && start > end) return bulk(Buffer.alloc(0));
  if (start < 0n) start += len;
  if (end < 0n) end += len;
  if (start < 0n) start = 0n;
  if (end < 0n) end = 0n;
  if (end >= len) end = len - 1n;
  if (info === null || len === 0n || start > end) return bulk(Buffer.alloc(0));
  const got = await session.getStream(argv[1]!, { offset: Number(start), length: Number(end - start + 1n) });
  if (got === null) return bulk(Buffer.alloc(0));
  const chunks: Buffer[] = [];
  for await (const c of got.body) chunks.push(c);
  return bulk(Buffer.concat(chunks));
}

// ---- counters ---------------------------------------------------------------------------------

/** INCR, DECR, INCRBY, DECRBY: 64-bit, the expiry kept, Redis' overflow errors. */
function incrOf(sign: 1n | -1n, byArg: boolean): Handler {
  return async ({ session, argv }) => {
    let delta = byArg ? parseInt64(argv[2]!) : 1n;
    if (sign < 0n) {
      if (delta === INT64_MIN) fail('ERR decrement would overflow');
      delta = -delta;
    }
    return session.update([argv[1]!], async ([cur]) => {
      const old = await integerValue(cur!);
      if ((delta < 0n && old < 0n && delta < INT64_MIN - old) || (delta > 0n && old > 0n && delta > INT64_MAX - old)) {
        fail('ERR increment or decrement would overflow');
      }
      const next = old + delta;
      const changes = [setChange(cur!, Buffer.from(next.toString()), cur!.state?.expiresAt ?? 0)];
      return { changes, result: integer(next), events: [{ event: 'incrby', key: cur!.key }] };
    });
  };
}

async function integerValue(cur: Current): Promise<bigint> {
  if (cur.state === null) return 0n;
  if (cur.state.size > 20) fail(NOT_AN_INTEGER);
  const n = int64Of((await cur.value())!);
  if (n === null) fail(NOT_AN_INTEGER);
  return n;
}

/** INCRBYFLOAT: long double arithmetic and printing, as Redis on x86-64 (long_double.ts). */
async function incrbyfloatCommand({ session, argv }: Context): Promise<Reply> {
  const incr = parseLongDouble(argv[2]!.toString('latin1'));
  if (incr === null) fail(NOT_A_FLOAT);
  return session.update([argv[1]!], async ([cur]) => {
    let old = parseLongDouble('0')!;
    if (cur!.state !== null) {
      const parsed = cur!.state.size >= 5 * 1024 ? null : parseLongDouble((await cur!.value())!.toString('latin1'));
      if (parsed === null) fail(NOT_A_FLOAT);
      old = parsed;
    }
    const sum = addLongDouble(old, incr);
    if (sum === null || sum.kind === 'inf') fail('ERR increment would produce NaN or Infinity');
    const text = Buffer.from(formatLongDouble(sum));
    return { changes: [setChange(cur!, text, cur!.state?.expiresAt ?? 0)], result: bulk(text), events: [{ event: 'incrbyfloat', key: cur!.key }] };
  });
}

// ---- helpers ----------------------------------------------------------------------------------

function setChange(cur: Current, value: Buffer | { size: number; source: AsyncIterable<Uint8Array> }, expiresAt: number): Change {
  return { kind: 'set', key: cur.key, value, expiresAt };
}

/**
 * The value `old` bytes long with `patch` written at `offset` (zeros in any gap): in memory
 * when small, else a stream of the old bytes around the patch (constant memory).
 */
async function spliced(cur: Current, old: number, patch: Buffer, offset: number): Promise<Buffer | { size: number; source: AsyncIterable<Uint8Array> }> {
  const size = Math.max(old, offset + patch.length);
  if (size <= IN_MEMORY) {
    const out = Buffer.alloc(size);
    if (old > 0) (await cur.value())!.copy(out);
    patch.copy(out, offset);
    return out;
  }
  return { size, source: splicedStream(cur, old, patch, offset) };
}

async function* splicedStream(cur: Current, old: number, patch: Buffer, offset: number): AsyncGenerator<Uint8Array> {
  const head = Math.min(old, offset);
  if (head > 0) yield* cur.stream(0, head);
  if (offset > old) yield* zeros(offset - old);
  yield patch;
  const tail = offset + patch.length;
  if (tail < old) yield* cur.stream(tail, old - tail);
}

async function* zeros(n: number): AsyncGenerator<Uint8Array> {
  const chunk = Buffer.alloc(Math.min(n, IN_MEMORY));
  for (let left = n; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
}

/** A value past the size limit answers Redis' own words. */
async function tooBigAsRedis(reply: Promise<Reply>): Promise<Reply> {
  try {
    return await reply;
  } catch (err) {
    if (err instanceof StoreError && err.code === 'VALUE_TOO_LARGE') fail(TOO_BIG);
    if ((err as { code?: unknown }).code === 'VALUE_TOO_LARGE') fail(TOO_BIG);
    throw err;
  }
}

export const STRING_HANDLERS: Readonly<Record<string, Handler>> = {
  set: setCommand,
  setnx: setnxCommand,
  setex: setexOf(1000),
  psetex: setexOf(1),
  get: getCommand,
  getset: getsetCommand,
  getdel: getdelCommand,
  getex: getexCommand,
  mset: msetCommand,
  msetnx: msetnxCommand,
  mget: mgetCommand,
  count: countCommand,
  strlen: strlenCommand,
  append: appendCommand,
  setrange: setrangeCommand,
  getrange: getrangeCommand,
  substr: getrangeCommand,
  incr: incrOf(1n, false),
  decr: incrOf(-1n, false),
  incrby: incrOf(1n, true),
  decrby: incrOf(-1n, true),
  incrbyfloat: incrbyfloatCommand,
};
