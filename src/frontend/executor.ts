// The executor: runs one checked command line against a Session and answers a Reply. It is the
// command layer shared by the REPL (src/cli/repl.ts) and the RESP front end: neither parses
// options nor maps errors itself.
//
// Shape, after Redis: the name and argument count are checked once against the table
// (checkCommand in src/protocol/commands.ts); then one handler per command, named after it
// (getCommand, setCommand, ...), parses its options and calls the Session/Database API.
//
// Invariant: execute() never throws. An option error answers Redis' own error text; a
// StoreError answers `ERR <clear text>` by its stable code; anything else (a bug) answers
// `ERR internal error: ...` so one bad command cannot take a connection or the REPL down.
import type { Database, Session, SetCondOptions } from '../db/api.js';
import { NOT_AN_INTEGER, SYNTAX_ERROR, checkCommand, helpLines, type CommandSpec } from '../protocol/commands.js';
import { NULL_BULK, OK, array, bulk, error, integer, simple, type Reply } from '../protocol/reply.js';
import { StoreError, type ErrorCode } from '../runtime/errors.js';

/** What a handler gets: the session, the database when there is one, and the raw arguments. */
interface Context {
  session: Session;
  db: Database | undefined;
  argv: Buffer[];
  spec: CommandSpec;
}

type Handler = (ctx: Context) => Promise<Reply>;

/** An option-parsing failure carrying the exact Redis error text. */
class ReplyError extends Error {
  constructor(readonly reply: Reply) {
    super(reply.kind === 'error' ? reply.message : 'reply error');
  }
}

function fail(message: string): never {
  throw new ReplyError(error(message));
}

/** Runs one command line. `db` enables COMPACT and VOLINFO; without it they answer an error. */
export async function execute(session: Session, argv: Buffer[], db?: Database): Promise<Reply> {
  const checked = checkCommand(argv);
  if (!checked.ok) return checked.reply;
  return executeChecked(session, argv, checked.spec, db);
}

/** execute() for a command line already checked against the table (the RESP front end checks once). */
export async function executeChecked(session: Session, argv: Buffer[], spec: CommandSpec, db?: Database): Promise<Reply> {
  const handler = HANDLERS[spec.name];
  if (handler === undefined) {
    return error(`ERR '${spec.name}' is handled by the front end (REPL or TCP connection), not here`);
  }
  try {
    return await handler({ session, db, argv, spec });
  } catch (err) {
    return errorReply(err, spec);
  }
}

// ---- strings ------------------------------------------------------------------------------

async function setCommand({ session, argv }: Context): Promise<Reply> {
  const o = parseSetOptions(argv.slice(3));
  const plain = !o.nx && !o.xx && !o.keepTtl && !o.get;
  if (plain) {
    await session.set(argv[1]!, argv[2]!, o);
    return OK;
  }
  const { applied, previous } = await session.setWith(argv[1]!, argv[2]!, o);
  if (o.get) return bulk(previous);
  return applied ? OK : NULL_BULK;
}

/**
 * A SET that can join a batch (Session.setMany): no NX/XX/GET/KEEPTTL and options that parse.
 * null otherwise: the command then runs alone, and answers its own exact error.
 */
export function plainSetOf(argv: Buffer[]): { key: Buffer; value: Buffer; options: SetCondOptions } | null {
  if (argv.length < 3) return null;
  let options: SetCondOptions;
  try {
    options = parseSetOptions(argv.slice(3));
  } catch {
    return null;
  }
  if (options.nx || options.xx || options.keepTtl || options.get) return null;
  return { key: argv[1]!, value: argv[2]!, options };
}

/**
 * SET options as Redis 7 has them: EX seconds | PX ms | EXAT unix-s | PXAT unix-ms |
 * KEEPTTL (one of these), NX | XX (one), GET; any case, any order.
 */
function parseSetOptions(opts: Buffer[]): SetCondOptions {
  const out: SetCondOptions = {};
  let expiry = false;
  for (let i = 0; i < opts.length; i++) {
    const opt = opts[i]!.toString('latin1').toLowerCase();
    if (opt === 'nx' || opt === 'xx') {
      if (out.nx || out.xx) fail(SYNTAX_ERROR);
      out[opt] = true;
    } else if (opt === 'get') {
      out.get = true;
    } else if (opt === 'keepttl') {
      if (expiry) fail(SYNTAX_ERROR);
      expiry = true;
      out.keepTtl = true;
    } else if (opt === 'ex' || opt === 'px' || opt === 'exat' || opt === 'pxat') {
      if (expiry || i + 1 >= opts.length) fail(SYNTAX_ERROR);
      expiry = true;
      const n = parseInteger(opts[++i]!);
      const ms = opt === 'ex' || opt === 'exat' ? n * 1000 : n;
      if (n <= 0 || !validTtl(ms)) fail("ERR invalid expire time in 'set' command");
      if (opt === 'ex' || opt === 'px') out.ttlMs = ms;
      else out.expiresAt = ms;
    } else {
      fail(SYNTAX_ERROR);
    }
  }
  return out;
}

async function getCommand({ session, argv }: Context): Promise<Reply> {
  return bulk(await session.get(argv[1]!));
}

async function msetCommand({ session, argv, spec }: Context): Promise<Reply> {
  if (argv.length % 2 === 0) fail(`ERR wrong number of arguments for '${spec.name}' command`);
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

// ---- keys ---------------------------------------------------------------------------------

async function delCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.delete(...argv.slice(1)));
}

/** Redis counts every argument: EXISTS a a answers 2 when a exists. */
async function existsCommand({ session, argv }: Context): Promise<Reply> {
  let n = 0;
  for (const key of argv.slice(1)) if (await session.exists(key)) n += 1;
  return integer(n);
}

async function ttlCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.ttl(argv[1]!));
}

async function pttlCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.pttl(argv[1]!));
}

async function expireCommand(ctx: Context): Promise<Reply> {
  return expireGeneric(ctx, 1000);
}

async function pexpireCommand(ctx: Context): Promise<Reply> {
  return expireGeneric(ctx, 1);
}

/** EXPIRE and PEXPIRE: zero or a negative time deletes the key (the session does that). */
async function expireGeneric({ session, argv, spec }: Context, unitMs: number): Promise<Reply> {
  const n = parseInteger(argv[2]!);
  const ms = n * unitMs;
  if (!validTtl(Math.abs(ms))) fail(`ERR invalid expire time in '${spec.name}' command`);
  return integer((await session.expire(argv[1]!, ms)) ? 1 : 0);
}

async function persistCommand({ session, argv }: Context): Promise<Reply> {
  return integer((await session.persist(argv[1]!)) ? 1 : 0);
}

async function keysCommand({ session, argv }: Context): Promise<Reply> {
  return array((await session.keys(argv[1]!)).map((k) => bulk(k)));
}

async function scanCommand({ session, argv }: Context): Promise<Reply> {
  const options: { match?: Buffer; count?: number } = {};
  for (let i = 2; i < argv.length; i += 2) {
    const opt = argv[i]!.toString('latin1').toLowerCase();
    const value = argv[i + 1];
    if (value === undefined) fail(SYNTAX_ERROR);
    if (opt === 'match') options.match = value;
    else if (opt === 'count') {
      options.count = parseInteger(value);
      if (options.count < 1) fail(SYNTAX_ERROR);
    } else fail(SYNTAX_ERROR);
  }
  const cursor = argv[1]!.toString('latin1');
  const result = await session.scan(cursor, options);
  return array([bulk(result.cursor), array(result.keys.map((k) => bulk(k)))]);
}

async function dbsizeCommand({ session }: Context): Promise<Reply> {
  return integer(await session.dbsize());
}

// ---- transactions -------------------------------------------------------------------------

async function beginCommand({ session }: Context): Promise<Reply> {
  session.begin();
  return OK;
}

async function commitCommand({ session }: Context): Promise<Reply> {
  if (session.depth === 0) fail('ERR COMMIT without BEGIN');
  await session.commit();
  return OK;
}

async function rollbackCommand({ session }: Context): Promise<Reply> {
  if (session.depth === 0) fail('ERR ROLLBACK without BEGIN');
  session.rollback();
  return OK;
}

// ---- pub/sub, server, connection ----------------------------------------------------------

async function publishCommand({ session, argv }: Context): Promise<Reply> {
  return integer(await session.publish(argv[1]!, argv[2]!));
}

async function compactCommand(ctx: Context): Promise<Reply> {
  await needDb(ctx).compact();
  return OK;
}

/** Each volume as [id, drive, size in bytes, volume group]. */
async function volinfoCommand(ctx: Context): Promise<Reply> {
  const volumes = await needDb(ctx).volinfo();
  return array(volumes.map((v) => array([integer(v.id), bulk(v.drive), integer(v.sizeBytes), integer(v.group)])));
}

function needDb({ db, spec }: Context): Database {
  if (db === undefined) fail(`ERR '${spec.name}' needs the database, and this session has none`);
  return db;
}

async function pingCommand({ argv, spec }: Context): Promise<Reply> {
  if (argv.length > 2) fail(`ERR wrong number of arguments for '${spec.name}' command`);
  return argv.length === 2 ? bulk(argv[1]!) : simple('PONG');
}

async function echoCommand({ argv }: Context): Promise<Reply> {
  return bulk(argv[1]!);
}

async function helpCommand({ argv, spec }: Context): Promise<Reply> {
  if (argv.length > 2) fail(`ERR wrong number of arguments for '${spec.name}' command`);
  const lines = helpLines(argv.length === 2 ? argv[1]!.toString('utf8') : undefined);
  return array(lines.map((l) => simple(l)));
}

/** One handler per command of the table, by name; front-end commands have none. */
const HANDLERS: Readonly<Record<string, Handler>> = {
  set: setCommand,
  get: getCommand,
  mset: msetCommand,
  mget: mgetCommand,
  count: countCommand,
  del: delCommand,
  delete: delCommand,
  exists: existsCommand,
  ttl: ttlCommand,
  pttl: pttlCommand,
  expire: expireCommand,
  pexpire: pexpireCommand,
  persist: persistCommand,
  keys: keysCommand,
  scan: scanCommand,
  dbsize: dbsizeCommand,
  begin: beginCommand,
  commit: commitCommand,
  rollback: rollbackCommand,
  publish: publishCommand,
  compact: compactCommand,
  volinfo: volinfoCommand,
  ping: pingCommand,
  echo: echoCommand,
  help: helpCommand,
};

// ---- helpers ------------------------------------------------------------------------------

/**
 * A signed integer written exactly as Redis' string2ll accepts it: an optional '-', digits,
 * no '+', no spaces, no leading zeros, "-0" refused. Out of the safe range is an error, where
 * Redis allows 64 bits: no time or count here needs more than 2^53.
 */
function parseInteger(arg: Buffer): number {
  const text = arg.toString('latin1');
  if (!/^(0|-?[1-9][0-9]{0,15})$/.test(text)) fail(NOT_AN_INTEGER);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) fail(NOT_AN_INTEGER);
  return n;
}

/**
 * Largest TTL: now + ttl must stay a safe integer, as Redis refuses a `when` that overflows.
 * 2^42 ms since the epoch is the year 2109, so this bound holds for any clock until then.
 */
const MAX_TTL_MS = Number.MAX_SAFE_INTEGER - 2 ** 42;

function validTtl(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms <= MAX_TTL_MS;
}

/** Plain words for each stable code; the StoreError's own message adds the particulars. */
const CODE_TEXT: Record<ErrorCode, string> = {
  KEY_TOO_LONG: 'key is too long',
  KEY_EMPTY: 'key is empty',
  VALUE_TOO_LARGE: 'value is too large',
  BATCH_TOO_LARGE: 'request too large',
  QUEUE_FULL: 'server busy: too many requests in flight, retry later',
  WAL_FENCED: 'writes are refused after a failed disk sync; restart the database',
  IO_ERROR: 'I/O error',
  NO_SPACE: 'no space left on the device',
  CORRUPT: 'corrupt data',
  CHECKSUM_MISMATCH: 'checksum mismatch: the stored data is damaged',
  NOT_FOUND: 'not found',
  LOCKED: 'the data dir is locked by another process',
  CLOSED: 'the database is closed',
  ACTOR_DOWN: 'a part of the database is restarting, retry',
  TIMEOUT: 'timed out',
  BAD_ARGUMENT: 'invalid argument',
  NO_TRANSACTION: 'no transaction is open (BEGIN first)',
  CONFLICT: 'conflict: the write does not fit what is stored',
  SIZE_MISMATCH: 'size mismatch',
  ABORTED: 'aborted',
  INTERNAL: 'internal error',
};

const SELF_DESCRIBING: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KEY_TOO_LONG', 'KEY_EMPTY', 'VALUE_TOO_LARGE', 'BATCH_TOO_LARGE', 'BAD_ARGUMENT', 'SIZE_MISMATCH',
]);

/** Turns anything thrown by a handler into an error reply; never throws itself. */
export function errorReply(err: unknown, spec?: CommandSpec): Reply {
  if (err instanceof ReplyError) return err.reply;
  if (err instanceof StoreError || isCodedError(err)) {
    if (err.code === 'NO_TRANSACTION' && spec !== undefined) {
      return error(`ERR ${spec.name.toUpperCase()} without BEGIN`);
    }
    const text = CODE_TEXT[err.code] ?? 'error';
    const message = err.message.trim();
    // These codes come with messages that already say it all ("key is 5000 bytes; the limit
    // is 4096", "invalid cursor"): a prefix would only repeat them.
    if (SELF_DESCRIBING.has(err.code) && message !== '') return error(`ERR ${message}`);
    // Say the code's plain words once: the message often already starts with them.
    if (message === '' || message.toLowerCase() === text.toLowerCase()) return error(`ERR ${text}`);
    if (message.toLowerCase().startsWith(text.toLowerCase())) return error(`ERR ${message}`);
    return error(`ERR ${text}: ${message}`);
  }
  const message = err instanceof Error ? err.message : String(err);
  return error(`ERR internal error: ${message}`);
}

/** A StoreError that crossed a thread arrives as a plain {code, message}. */
function isCodedError(err: unknown): err is { code: ErrorCode; message: string } {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' && e.code in CODE_TEXT && typeof e.message === 'string';
}
