// The commands of the whole keyspace, as Redis 7 has them: deletion, existence, expiry (EXPIRE
// with NX|XX|GT|LT, EXPIREAT, EXPIRETIME...), RENAME, COPY, TYPE, RANDOMKEY, TOUCH, OBJECT, the
// walks (KEYS, SCAN), FLUSHALL. A command that reads to decide what to write is one
// Session.update, atomic against every other client (see src/db/key_updates.ts).
import type { Change, Current, Session } from '../db/api.js';
import { SYNTAX_ERROR } from '../protocol/commands.js';
import type { KeyEvent } from '../protocol/keyspace_events.js';
import { NULL_BULK, OK, array, bulk, integer, simple, type Reply } from '../protocol/reply.js';
import { expireTimeOf, fail, int64Of, optionOf, parseInt64, parseInteger, type Context, type Handler } from './command_args.js';

/** Values up to this size are copied in memory; larger ones are streamed. */
const IN_MEMORY = 64 * 1024;
const NO_SUCH_KEY = 'ERR no such key';

// ---- existence and deletion -------------------------------------------------------------------

async function delCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.delete(...argv.slice(1)));
}

/** Redis counts every argument: EXISTS a a answers 2 when a exists (TOUCH too). */
async function existsCommand({ session, argv }: Context): Promise<Reply> {
  let n = 0;
  for (const key of argv.slice(1)) if (await session.exists(key)) n += 1;
  return integer(n);
}

async function typeCommand({ session, argv }: Context): Promise<Reply> {
  return simple((await session.exists(argv[1]!)) ? 'string' : 'none');
}

/** FLUSHALL / FLUSHDB [ASYNC | SYNC]: one durable op, whatever the number of keys. */
async function flushCommand({ session, argv }: Context): Promise<Reply> {
  if (argv.length > 2) fail(SYNTAX_ERROR);
  if (argv.length === 2 && !['sync', 'async'].includes(optionOf(argv[1]!))) fail(SYNTAX_ERROR);
  await session.flushAll();
  return OK;
}

// ---- expiry -----------------------------------------------------------------------------------

async function ttlCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.ttl(argv[1]!));
}

async function pttlCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.pttl(argv[1]!));
}

/** EXPIRETIME / PEXPIRETIME: the absolute time (s rounded / ms); -1 none, -2 no key. */
function expiretimeOf(unitMs: 1 | 1000): Handler {
  return async ({ session, argv }) => {
    const info = await session.stat(argv[1]!);
    if (info === null) return integer(-2);
    if (info.expiresAt === 0) return integer(-1);
    return integer(unitMs === 1 ? info.expiresAt : Math.floor((info.expiresAt + 500) / 1000));
  };
}

interface ExpireFlags {
  nx: boolean;
  xx: boolean;
  gt: boolean;
  lt: boolean;
}

/** NX | XX | GT | LT, checked as parseExtendedExpireArgumentsOrReply does, before the time. */
function expireFlagsOf(opts: Buffer[]): ExpireFlags {
  const f: ExpireFlags = { nx: false, xx: false, gt: false, lt: false };
  for (const arg of opts) {
    const opt = optionOf(arg);
    if (opt === 'nx' || opt === 'xx' || opt === 'gt' || opt === 'lt') f[opt] = true;
    else fail(`ERR Unsupported option ${arg.toString('latin1')}`);
  }
  if (f.nx && (f.xx || f.gt || f.lt)) fail('ERR NX and XX, GT or LT options at the same time are not compatible');
  if (f.gt && f.lt) fail('ERR GT and LT options at the same time are not compatible');
  return f;
}

/**
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX|XX|GT|LT]: 1 when the expiry was set (or the
 * key deleted, for a time already past), 0 when the key is missing or a condition failed. No
 * expiry counts as an infinite one for GT and LT, as in Redis.
 */
function expireOf(unitMs: 1 | 1000, absolute: boolean): Handler {
  return async ({ session, argv, spec }) => {
    const flags = expireFlagsOf(argv.slice(3));
    const n = parseInt64(argv[2]!);
    return session.update([argv[1]!], ([cur], now) => {
      const when = expireTimeOf(n, unitMs, absolute ? 0 : now, spec);
      const state = cur!.state;
      if (state === null) return { changes: [], result: integer(0) };
      const current = state.expiresAt;
      const refused =
        (flags.nx && current !== 0) ||
        (flags.xx && current === 0) ||
        (flags.gt && (current === 0 || when <= current)) ||
        (flags.lt && current !== 0 && when >= current);
      if (refused) return { changes: [], result: integer(0) };
      const key = cur!.key;
      if (when <= now) return { changes: [{ kind: 'del', key }], result: integer(1), events: [{ event: 'del', key }] };
      return { changes: [{ kind: 'expire', key, expiresAt: when }], result: integer(1), events: [{ event: 'expire', key }] };
    });
  };
}

async function persistCommand({ session, argv }: Context): Promise<Reply> {
  return integer((await session.persist(argv[1]!)) ? 1 : 0);
}

// ---- moving and copying -----------------------------------------------------------------------

/** RENAME (OK) and RENAMENX (1, or 0 when the target exists): the expiry moves with the value. */
function renameOf(nx: boolean): Handler {
  return async ({ session, argv }) => {
    const [src, dst] = [argv[1]!, argv[2]!];
    return session.update([src, dst], async ([from, to]) => {
      if (from!.state === null) fail(NO_SUCH_KEY);
      if (src.equals(dst)) return { changes: [], result: nx ? integer(0) : OK };
      if (nx && to!.state !== null) return { changes: [], result: integer(0) };
      const changes: Change[] = [await copyChange(from!, dst), { kind: 'del', key: from!.key }];
      const events: KeyEvent[] = [{ event: 'rename_from', key: from!.key }, { event: 'rename_to', key: to!.key }];
      return { changes, result: nx ? integer(1) : OK, events };
    });
  };
}

/** COPY source destination [DB destination-db] [REPLACE]: 1 when copied, else 0. */
async function copyCommand({ session, argv }: Context): Promise<Reply> {
  let replace = false;
  for (let i = 3; i < argv.length; i++) {
    const opt = optionOf(argv[i]!);
    if (opt === 'replace') replace = true;
    else if (opt === 'db' && i + 1 < argv.length) {
      // As getIntFromObjectOrReply, then selectDb with the one database there is here.
      const db = parseInt64(argv[++i]!);
      if (db < -(2n ** 31n) || db >= 2n ** 31n) fail('ERR value is out of range, value must between -2147483648 and 2147483647');
      if (db !== 0n) fail('ERR DB index is out of range');
    } else fail(SYNTAX_ERROR);
  }
  const [src, dst] = [argv[1]!, argv[2]!];
  if (src.equals(dst)) fail('ERR source and destination objects are the same');
  return session.update([src, dst], async ([from, to]) => {
    if (from!.state === null || (to!.state !== null && !replace)) return { changes: [], result: integer(0) };
    return { changes: [await copyChange(from!, dst)], result: integer(1), events: [{ event: 'copy_to', key: to!.key }] };
  });
}

/** The value and expiry of `from` written under `key`: in memory when small, else streamed. */
async function copyChange(from: Current, key: Buffer): Promise<Change> {
  const state = from.state!;
  const value = state.size <= IN_MEMORY ? (await from.value())! : { size: state.size, source: from.stream(0, state.size) };
  return { kind: 'set', key, value, expiresAt: state.expiresAt };
}

// ---- walks ------------------------------------------------------------------------------------

async function keysCommand({ session, argv }: Context): Promise<Reply> {
  return array((await session.keys(argv[1]!)).map((k) => bulk(k)));
}

/**
 * SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: the cursor is checked first (an
 * unsigned 64-bit number, as strtoul takes it); every key here is a string, so TYPE string
 * filters nothing and any other type matches nothing.
 */
async function scanCommand({ session, argv }: Context): Promise<Reply> {
  const cursor = scanCursorOf(argv[1]!);
  const options: { match?: Buffer; count?: number } = {};
  let type: string | undefined;
  for (let i = 2; i < argv.length; i += 2) {
    const opt = optionOf(argv[i]!);
    const value = argv[i + 1];
    if (value === undefined) fail(SYNTAX_ERROR);
    if (opt === 'match') options.match = value;
    else if (opt === 'count') {
      options.count = parseInteger(value);
      if (options.count < 1) fail(SYNTAX_ERROR);
    } else if (opt === 'type') type = optionOf(value);
    else fail(SYNTAX_ERROR);
  }
  const result = await session.scan(cursor, options);
  const keys = type === undefined || type === 'string' ? result.keys : [];
  return array([bulk(result.cursor), array(keys.map((k) => bulk(k)))]);
}

/** A cursor as Redis' parseScanCursorOrReply takes it, reduced to the index's 32 bits. */
function scanCursorOf(arg: Buffer): string {
  const text = arg.toString('latin1');
  if (!/^[+-]?[0-9]+$/.test(text)) fail('ERR invalid cursor');
  let n = BigInt(text);
  if (n >= 2n ** 64n || n <= -(2n ** 64n)) fail('ERR invalid cursor');
  n = ((n % 2n ** 64n) + 2n ** 64n) % 2n ** 64n; // strtoul wraps a minus sign
  return String(n & 0xffffffffn);
}

async function dbsizeCommand({ session }: Context): Promise<Reply> {
  return integer(await session.dbsize());
}

/** RANDOMKEY: a key from a random place of the index; nil when there is none. */
async function randomkeyCommand({ session }: Context): Promise<Reply> {
  const key = await randomKey(session);
  return key === null ? NULL_BULK : bulk(key);
}

async function randomKey(session: Session): Promise<Buffer | null> {
  if ((await session.dbsize()) === 0) return null;
  let cursor = String(Math.floor(Math.random() * 2 ** 32));
  // Bounded: two passes over the cursor space find any key that exists.
  for (let wraps = 0; wraps < 2; ) {
    const page = await session.scan(cursor, { count: 16 });
    if (page.keys.length > 0) return page.keys[Math.floor(Math.random() * page.keys.length)]!;
    if (page.cursor === '0') wraps++;
    cursor = page.cursor;
  }
  return null;
}

// ---- OBJECT -----------------------------------------------------------------------------------

const OBJECT_HELP = [
  'OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'ENCODING <key>',
  '    Return the kind of internal representation used in order to store the value',
  '    associated with a <key>.',
  'FREQ <key>',
  '    Return the access frequency index of the <key>. The returned integer is',
  '    proportional to the logarithm of the recent access frequency of the key.',
  'IDLETIME <key>',
  '    Return the idle time of the <key>, that is the approximated number of',
  '    seconds elapsed since the last access to the key.',
  'REFCOUNT <key>',
  '    Return the number of references of the value associated with the specified',
  '    <key>.',
  'HELP',
  '    Prints this help.',
];

const OBJECT_ARITY: Readonly<Record<string, number>> = { encoding: 3, freq: 3, idletime: 3, refcount: 3, help: 2 };

/**
 * OBJECT ENCODING (int, embstr or raw, judged from the value as Redis' tryObjectEncoding would
 * for a SET), REFCOUNT (1), IDLETIME (seconds since the last write: reads are not tracked),
 * FREQ (Redis' error: no LFU policy here), HELP.
 */
async function objectCommand({ session, argv }: Context): Promise<Reply> {
  const sub = optionOf(argv[1]!);
  const arity = OBJECT_ARITY[sub];
  if (arity === undefined) fail(`ERR unknown subcommand '${argv[1]!.toString('utf8')}'. Try OBJECT HELP.`);
  if (argv.length !== arity) fail(`ERR wrong number of arguments for 'object|${sub}' command`);
  if (sub === 'help') return array(OBJECT_HELP.map((l) => simple(l)));
  return session.update([argv[2]!], async ([cur], now) => {
    const state = cur!.state;
    if (state === null) return { changes: [], result: NULL_BULK };
    switch (sub) {
      case 'refcount':
        return { changes: [], result: integer(1) };
      case 'idletime':
        return { changes: [], result: integer(Math.max(0, Math.floor((now - (state.modifiedAt ?? now)) / 1000))) };
      case 'freq':
        fail('ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.');
      default:
        return { changes: [], result: bulk(await encodingOf(cur!)) };
    }
  });
}

async function encodingOf(cur: Current): Promise<string> {
  const size = cur.state!.size;
  if (size <= 20 && int64Of((await cur.value())!) !== null) return 'int';
  return size <= 44 ? 'embstr' : 'raw';
}

export const KEYSPACE_HANDLERS: Readonly<Record<string, Handler>> = {
  del: delCommand,
  delete: delCommand,
  unlink: delCommand,
  exists: existsCommand,
  touch: existsCommand,
  type: typeCommand,
  flushall: flushCommand,
  flushdb: flushCommand,
  ttl: ttlCommand,
  pttl: pttlCommand,
  expiretime: expiretimeOf(1000),
  pexpiretime: expiretimeOf(1),
  expire: expireOf(1000, false),
  pexpire: expireOf(1, false),
  expireat: expireOf(1000, true),
  pexpireat: expireOf(1, true),
  persist: persistCommand,
  rename: renameOf(false),
  renamenx: renameOf(true),
  copy: copyCommand,
  keys: keysCommand,
  scan: scanCommand,
  dbsize: dbsizeCommand,
  randomkey: randomkeyCommand,
  object: objectCommand,
};
