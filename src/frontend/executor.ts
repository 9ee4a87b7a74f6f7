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
// `ERR internal error (see the server log)`, its detail logged, so one bad command cannot take a
// connection or the REPL down and no JavaScript message reaches a client.
import type { Database, Session } from '../db/api.js';
import { checkCommand, helpLines, type CommandSpec } from '../protocol/commands.js';
import { OK, array, bulk, error, simple, type Reply } from '../protocol/reply.js';
import { INTERNAL_TEXT, StoreError, reportInternal, type ErrorCode } from '../runtime/errors.js';
import { ReplyError, fail, type Context, type Handler } from './command_args.js';
import { ADMIN_HANDLERS } from './admin_commands.js';
import { KEYSPACE_HANDLERS } from './keyspace_commands.js';
import { lcsCommand } from './lcs_command.js';
import { STRING_HANDLERS } from './string_commands.js';

export { plainSetOf } from './string_commands.js';


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
  ...STRING_HANDLERS,
  ...KEYSPACE_HANDLERS,
  ...ADMIN_HANDLERS,
  lcs: lcsCommand,
  begin: beginCommand,
  commit: commitCommand,
  rollback: rollbackCommand,
  ping: pingCommand,
  echo: echoCommand,
  help: helpCommand,
};

// ---- helpers ------------------------------------------------------------------------------

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
  BAD_DIGEST: 'digest mismatch',
  STALE_EPOCH: 'stale epoch',
  ABORTED: 'aborted',
  UNAVAILABLE: 'a volume server cannot be reached',
  DEGRADED: 'a volume group is being repaired, retry',
  READONLY: "You can't write against a read only replica.",
  NOREPLICAS: 'Not enough good replicas to write.',
  LAGGING: 'this replica has not reached the LSN asked for',
  PROTOCOL: 'replication protocol error',
  BUSY: 'busy, retry',
  INTERNAL: 'internal error',
};

const SELF_DESCRIBING: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KEY_TOO_LONG', 'KEY_EMPTY', 'VALUE_TOO_LARGE', 'BATCH_TOO_LARGE', 'BAD_ARGUMENT', 'SIZE_MISMATCH', 'BAD_DIGEST',
]);

/** Turns anything thrown by a handler into an error reply; never throws itself. */
export function errorReply(err: unknown, spec?: CommandSpec): Reply {
  if (err instanceof ReplyError) return err.reply;
  if (err instanceof StoreError || isCodedError(err)) {
    if (err.code === 'INTERNAL') return internalReply(err);
    // Redis' own words, so clients that look for -READONLY (ioredis, cluster clients) see it.
    if (err.code === 'READONLY' || err.code === 'NOREPLICAS') return error(`${err.code} ${CODE_TEXT[err.code]}`);
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
  return internalReply(err);
}

function internalReply(err: unknown): Reply {
  reportInternal(err);
  return error(`ERR ${INTERNAL_TEXT}`);
}

/** A StoreError that crossed a thread arrives as a plain {code, message}. */
function isCodedError(err: unknown): err is { code: ErrorCode; message: string } {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  return typeof e.code === 'string' && e.code in CODE_TEXT && typeof e.message === 'string';
}
