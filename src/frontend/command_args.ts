// What every command handler shares: its context, the error that carries Redis' exact text, and
// the parsing of numbers and expiry times as Redis parses them (string2ll, int64 bounds, the
// "invalid expire time" checks), so that an option error reads word for word as Redis'.
import type { Database, Session } from '../db/api.js';
import { NOT_AN_INTEGER, type CommandSpec } from '../protocol/commands.js';
import { INT64_MAX, INT64_MIN, error, type Reply } from '../protocol/reply.js';

/** What a handler gets: the session, the database when there is one, and the raw arguments. */
export interface Context {
  session: Session;
  db: Database | undefined;
  argv: Buffer[];
  spec: CommandSpec;
}

export type Handler = (ctx: Context) => Promise<Reply>;

/** An option-parsing failure carrying the exact Redis error text. */
export class ReplyError extends Error {
  constructor(readonly reply: Reply) {
    super(reply.kind === 'error' ? reply.message : 'reply error');
  }
}

export function fail(message: string): never {
  throw new ReplyError(error(message));
}

export function wrongArgs(spec: CommandSpec): never {
  fail(`ERR wrong number of arguments for '${spec.name}' command`);
}

/**
 * A signed 64-bit integer written exactly as Redis' string2ll accepts it: an optional '-',
 * digits, no '+', no spaces, no leading zeros, "-0" refused; null otherwise.
 */
export function int64Of(arg: Uint8Array): bigint | null {
  if (arg.length === 0 || arg.length > 20) return null;
  const text = Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength).toString('latin1');
  if (!/^(0|-?[1-9][0-9]*)$/.test(text)) return null;
  const n = BigInt(text);
  return n < INT64_MIN || n > INT64_MAX ? null : n;
}

/** int64Of, or Redis' "value is not an integer or out of range". */
export function parseInt64(arg: Uint8Array): bigint {
  const n = int64Of(arg);
  if (n === null) fail(NOT_AN_INTEGER);
  return n;
}

/** A 64-bit integer that must also be a safe JS number (counts, offsets, times here). */
export function parseInteger(arg: Uint8Array): number {
  const n = parseInt64(arg);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) fail(NOT_AN_INTEGER);
  return Number(n);
}

/**
 * Largest expiry time (ms since the epoch) stored: expiry times are safe integers here, where
 * Redis allows any int64. 2^53 ms is the year 287,396; a time past it is an invalid expire time.
 */
export const MAX_EXPIRES_AT = Number.MAX_SAFE_INTEGER;

export function invalidExpire(spec: CommandSpec): never {
  fail(`ERR invalid expire time in '${spec.name}' command`);
}

/**
 * An EXPIRE-family time, as expireGenericCommand checks it: `value` in `unitMs` units, relative
 * to `base` (0 for EXPIREAT/PEXPIREAT). Answers the absolute time in ms; in the past or at
 * `now` is allowed (the key is then deleted). Overflow is an invalid expire time.
 */
export function expireTimeOf(value: bigint, unitMs: 1 | 1000, base: number, spec: CommandSpec): number {
  let when = value;
  if (unitMs === 1000) {
    if (when > INT64_MAX / 1000n || when < INT64_MIN / 1000n) invalidExpire(spec);
    when *= 1000n;
  }
  if (when > INT64_MAX - BigInt(base)) invalidExpire(spec);
  when += BigInt(base);
  if (when > BigInt(MAX_EXPIRES_AT)) invalidExpire(spec);
  // A time before the epoch is in the past: any negative value means "already expired".
  return when < 0n ? -1 : Number(when);
}

/**
 * SET/GETEX/SETEX expiry (getExpireMillisecondsOrReply): must be positive; EX/EXAT in seconds;
 * EX/PX are relative to `now`. Answers the absolute time in ms.
 */
export function setExpiryOf(value: bigint, unitMs: 1 | 1000, relative: boolean, now: number, spec: CommandSpec): number {
  if (value <= 0n || (unitMs === 1000 && value > INT64_MAX / 1000n)) invalidExpire(spec);
  let when = value * BigInt(unitMs);
  if (relative) when += BigInt(now);
  if (when <= 0n || when > BigInt(MAX_EXPIRES_AT)) invalidExpire(spec);
  return Number(when);
}

/** The lower-cased text of an option argument. */
export function optionOf(arg: Buffer): string {
  return arg.toString('latin1').toLowerCase();
}
