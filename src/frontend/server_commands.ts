// The commands a RESP front end answers itself, because they are about the connection or the
// server rather than the data: HELLO, AUTH, SELECT, CLIENT, CONFIG GET, COMMAND, INFO. Errors
// are worded as Redis words them, so stock clients (redis-cli, redis-benchmark, ioredis,
// node-redis) take them the way they take Redis'.
import { timingSafeEqual } from 'node:crypto';
import { globMatch } from '../storage/glob.js';
import { COMMANDS, lookupCommand, type CommandSpec } from '../protocol/commands.js';
import { OK, array, bulk, error, integer, map, simple, NULL_BULK, type Reply } from '../protocol/reply.js';

export const SERVER_NAME = 'brisedb';
/** The Redis version we answer as: the command set and replies follow Redis 7.2. */
export const REDIS_COMPAT_VERSION = '7.2.0';
export const BRISEDB_VERSION = '0.1.0';

export interface ClientState {
  readonly id: number;
  readonly addr: string;
  readonly laddr: string;
  readonly createdAt: number;
  name: string | null;
  libName: string | null;
  libVer: string | null;
  proto: 2 | 3;
  authenticated: boolean;
  lastCommand: string;
  lastActiveAt: number;
  subscriptions: number;
  inMulti: boolean;
}

export interface ServerState {
  readonly requirepass: string | null;
  /** CONFIG GET answers from here (never the password). */
  readonly config: Readonly<Record<string, string>>;
  readonly clients: ReadonlyMap<number, ClientState>;
  /** INFO text of the given sections (lower case; empty = the default set). */
  info(sections: string[]): Promise<string>;
}

/** What a server command tells the connection to do besides answering. */
export interface CommandEffect {
  reply: Reply;
  /** AUTH or HELLO AUTH succeeded: lift the unauthenticated limits. */
  authenticated?: boolean;
}

export function passwordMatches(given: Buffer, expected: string): boolean {
  const want = Buffer.from(expected, 'utf8');
  // Constant time, as Redis' time_independent_strcmp: a wrong guess tells nothing of the right one.
  return given.length === want.length && timingSafeEqual(given, want);
}

const NO_PASSWORD_SET =
  'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?';
const WRONG_PASS = 'WRONGPASS invalid username-password pair or user is disabled.';

export function authCommand(argv: Buffer[], server: ServerState): CommandEffect {
  if (argv.length > 3) return { reply: error('ERR syntax error') };
  const user = argv.length === 3 ? argv[1]!.toString('utf8') : 'default';
  const password = argv[argv.length - 1]!;
  if (server.requirepass === null) return { reply: error(NO_PASSWORD_SET) };
  if (user !== 'default' || !passwordMatches(password, server.requirepass)) return { reply: error(WRONG_PASS) };
  return { reply: OK, authenticated: true };
}

/** HELLO [protover [AUTH username password] [SETNAME clientname]] */
export function helloCommand(argv: Buffer[], client: ClientState, server: ServerState): CommandEffect {
  let proto = client.proto;
  let authenticated = false;
  if (argv.length >= 2) {
    const v = argv[1]!.toString('latin1');
    if (v !== '2' && v !== '3') return { reply: error('NOPROTO unsupported protocol version') };
    proto = v === '2' ? 2 : 3;
  }
  let setName: string | null = null;
  for (let i = 2; i < argv.length; i++) {
    const opt = argv[i]!.toString('latin1').toLowerCase();
    if (opt === 'auth' && i + 2 < argv.length) {
      const result = authCommand([Buffer.from('AUTH'), argv[i + 1]!, argv[i + 2]!], server);
      if (result.reply.kind === 'error') return result;
      authenticated = true;
      i += 2;
    } else if (opt === 'setname' && i + 1 < argv.length) {
      setName = argv[++i]!.toString('utf8');
      if (/[\s]/.test(setName)) return { reply: error('ERR Client names cannot contain spaces, newlines or special characters.') };
    } else {
      return { reply: error(`ERR Syntax error in HELLO option '${argv[i]!.toString('utf8')}'`) };
    }
  }
  if (server.requirepass !== null && !client.authenticated && !authenticated) {
    return { reply: error('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time') };
  }
  client.proto = proto;
  if (setName !== null) client.name = setName;
  const reply = map([
    [bulk('server'), bulk('redis')],
    [bulk('version'), bulk(REDIS_COMPAT_VERSION)],
    [bulk('proto'), integer(proto)],
    [bulk('id'), integer(client.id)],
    [bulk('mode'), bulk('standalone')],
    [bulk('role'), bulk('master')],
    [bulk('modules'), array([])],
    [bulk('brisedb_version'), bulk(BRISEDB_VERSION)],
  ]);
  return authenticated ? { reply, authenticated } : { reply };
}

export function selectCommand(argv: Buffer[]): Reply {
  const text = argv[1]!.toString('latin1');
  if (!/^-?[0-9]+$/.test(text)) return error('ERR value is not an integer or out of range');
  return Number(text) === 0 ? OK : error('ERR DB index is out of range');
}

/** CLIENT SETNAME | GETNAME | SETINFO | ID | INFO | LIST | NO-EVICT | NO-TOUCH */
export function clientCommand(argv: Buffer[], client: ClientState, server: ServerState): Reply {
  const sub = argv[1]!.toString('latin1').toLowerCase();
  switch (sub) {
    case 'setname': {
      if (argv.length !== 3) return unknownSubcommand('CLIENT', argv[1]!);
      const name = argv[2]!.toString('utf8');
      if (/[\s]/.test(name)) return error('ERR Client names cannot contain spaces, newlines or special characters.');
      client.name = name === '' ? null : name;
      return OK;
    }
    case 'getname':
      return client.name === null ? NULL_BULK : bulk(client.name);
    case 'setinfo': {
      if (argv.length !== 4) return unknownSubcommand('CLIENT', argv[1]!);
      const attr = argv[2]!.toString('latin1').toLowerCase();
      if (attr === 'lib-name') client.libName = argv[3]!.toString('utf8');
      else if (attr === 'lib-ver') client.libVer = argv[3]!.toString('utf8');
      else return error(`ERR Unrecognized option '${argv[2]!.toString('utf8')}'`);
      return OK;
    }
    case 'id':
      return integer(client.id);
    case 'info':
      return bulk(clientLine(client) + '\n');
    case 'list':
      return bulk([...server.clients.values()].map((c) => clientLine(c) + '\n').join(''));
    case 'no-evict':
    case 'no-touch':
      return OK;
    default:
      return unknownSubcommand('CLIENT', argv[1]!);
  }
}

function clientLine(c: ClientState): string {
  const now = Date.now();
  const age = Math.floor((now - c.createdAt) / 1000);
  const idle = Math.floor((now - c.lastActiveAt) / 1000);
  return (
    `id=${c.id} addr=${c.addr} laddr=${c.laddr} fd=-1 name=${c.name ?? ''} age=${age} idle=${idle} ` +
    `flags=${c.subscriptions > 0 ? 'P' : c.inMulti ? 'x' : 'N'} db=0 sub=${c.subscriptions} psub=0 multi=${c.inMulti ? 0 : -1} ` +
    `resp=${c.proto} cmd=${c.lastCommand} lib-name=${c.libName ?? ''} lib-ver=${c.libVer ?? ''}`
  );
}

/** CONFIG GET pattern [pattern ...]; SET/RESETSTAT/REWRITE are not supported. */
export function configCommand(argv: Buffer[], client: ClientState, server: ServerState): Reply {
  const sub = argv[1]!.toString('latin1').toLowerCase();
  if (sub !== 'get' || argv.length < 3) {
    if (sub === 'set' || sub === 'resetstat' || sub === 'rewrite') {
      return error(`ERR CONFIG ${sub.toUpperCase()} is not supported: BriseDB is configured by flags and its config file`);
    }
    return unknownSubcommand('CONFIG', argv[1]!);
  }
  const pairs: [Reply, Reply][] = [];
  const seen = new Set<string>();
  for (const pattern of argv.slice(2)) {
    for (const [name, value] of Object.entries(server.config)) {
      if (seen.has(name) || !globMatch(Buffer.from(pattern.toString('latin1').toLowerCase(), 'latin1'), Buffer.from(name, 'latin1'))) continue;
      seen.add(name);
      pairs.push([bulk(name), bulk(value)]);
    }
  }
  return client.proto === 3 ? map(pairs) : array(pairs.flat());
}

/**
 * COMMAND: COUNT and INFO are answered; COMMAND and COMMAND DOCS answer an error, which is
 * what makes redis-cli fall back to its built-in help instead of parsing ours.
 */
export function commandCommand(argv: Buffer[]): Reply {
  if (argv.length === 1) return error("ERR unknown subcommand or wrong number of arguments for 'COMMAND'; use COMMAND COUNT or COMMAND INFO name");
  const sub = argv[1]!.toString('latin1').toLowerCase();
  switch (sub) {
    case 'count':
      return integer(COMMANDS.length);
    case 'info':
      return array(argv.slice(2).map((name) => {
        const spec = lookupCommand(name);
        return spec === undefined ? { kind: 'array', items: null } : commandInfo(spec);
      }));
    case 'list':
      return array(COMMANDS.map((c) => bulk(c.name)));
    default:
      return unknownSubcommand('COMMAND', argv[1]!);
  }
}

/** Redis' COMMAND INFO tuple: name, arity, flags, first key, last key, step, ACL categories. */
function commandInfo(spec: CommandSpec): Reply {
  const keyed = spec.group === 'string' || spec.group === 'generic';
  const flags = spec.flags.filter((f) => f === 'write' || f === 'readonly' || f === 'fast' || f === 'admin' || f === 'pubsub').map((f) => simple(f));
  return array([
    bulk(spec.name),
    integer(spec.arity),
    array(flags),
    integer(keyed ? 1 : 0),
    integer(keyed ? 1 : 0),
    integer(keyed ? 1 : 0),
    array([simple(`@${spec.group}`)]),
  ]);
}

export function unknownSubcommand(command: string, sub: Buffer): Reply {
  return error(`ERR unknown subcommand '${sub.toString('utf8')}'. Try ${command} HELP.`);
}

/** The INFO sections in Redis' order; `actors` is BriseDB's own. */
export const INFO_SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'keyspace', 'actors'] as const;

export async function infoCommand(argv: Buffer[], server: ServerState): Promise<Reply> {
  const wanted = argv.slice(1).map((a) => a.toString('latin1').toLowerCase());
  return bulk(await server.info(wanted));
}
