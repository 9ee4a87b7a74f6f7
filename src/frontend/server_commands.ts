// The commands a RESP front end answers itself, because they are about the connection or the
// server rather than the data: HELLO, AUTH, SELECT, CLIENT, CONFIG GET, COMMAND, INFO. Errors
// are worded as Redis words them, so stock clients (redis-cli, redis-benchmark, ioredis,
// node-redis) take them the way they take Redis'.
import { timingSafeEqual } from 'node:crypto';
import { globMatch } from '../storage/glob.js';
import { COMMANDS, lookupCommand, type CommandSpec } from '../protocol/commands.js';
import { OK, array, bulk, error, integer, map, simple, NULL_BULK, type Reply } from '../protocol/reply.js';
import type { LiveConfig } from './live_config.js';
import { int64Of } from './command_args.js';
import type { ReplicationState } from './replication_commands.js';

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
  /** The connection's buffers, for CLIENT LIST / CLIENT INFO (absent: all zero). */
  metrics?: () => ClientMetrics;
  /** CLIENT KILL: closes the connection (its own: after this reply). */
  kill?: () => void;
}

/** What CLIENT LIST shows of a connection's memory and buffers, in bytes. */
export interface ClientMetrics {
  /** Input buffered, not yet parsed into commands. */
  qbuf: number;
  qbufFree: number;
  /** Arguments of the commands being run. */
  argvMem: number;
  /** Commands queued by MULTI (-1 outside MULTI) and their bytes. */
  multi: number;
  multiMem: number;
  /** Replies gathered, not yet handed to the socket. */
  obl: number;
  /** Bytes the socket still has to send, and in how many chunks. */
  omem: number;
  oll: number;
}

export interface ServerState {
  /** The password AUTH checks (live: CONFIG SET requirepass changes it). */
  readonly requirepass: string | null;
  /** The HTTP token SIGN signs with; absent or null: none (SIGN refuses). */
  readonly httpToken?: string | null;
  /** True on a replica (writes are refused with -READONLY); absent: a master. */
  readonly readOnly?: () => boolean;
  /** ROLE, WAIT, REPLICAOF, BRISE.LSN, min-replicas-to-write; absent where not wired (tests). */
  readonly replication?: ReplicationState;
  /** What CONFIG GET and CONFIG SET see and change. */
  readonly settings: LiveConfig;
  readonly clients: ReadonlyMap<number, ClientState>;
  /** INFO text of the given sections (lower case; empty = the default set). */
  info(sections: string[]): Promise<string>;
  /** CONFIG RESETSTAT: the counters of INFO stats, commandstats and errorstats back to zero. */
  resetStats(): void;
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
  // As Redis: AUTH <password> needs a password set; AUTH <user> <password> asks the user list,
  // where "default" without a password takes any password and no other user exists.
  if (server.requirepass === null) {
    if (argv.length === 2) return { reply: error(NO_PASSWORD_SET) };
    return user === 'default' ? { reply: OK, authenticated: true } : { reply: error(WRONG_PASS) };
  }
  if (user !== 'default' || !passwordMatches(password, server.requirepass)) return { reply: error(WRONG_PASS) };
  return { reply: OK, authenticated: true };
}

/** HELLO [protover [AUTH username password] [SETNAME clientname]] */
export function helloCommand(argv: Buffer[], client: ClientState, server: ServerState): CommandEffect {
  let proto = client.proto;
  let authenticated = false;
  if (argv.length >= 2) {
    const v = argv[1]!.toString('latin1');
    if (int64Of(argv[1]!) === null) return { reply: error('ERR Protocol version is not an integer or out of range') };
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
    [bulk('role'), bulk(server.readOnly?.() === true ? 'replica' : 'master')],
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

/** CLIENT SETNAME | GETNAME | SETINFO | ID | INFO | LIST | KILL | NO-EVICT | NO-TOUCH | HELP */
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
      return clientList(argv, server);
    case 'kill':
      return clientKill(argv, client, server);
    case 'no-evict':
    case 'no-touch':
      return OK;
    case 'help':
      return argv.length === 2 ? array(CLIENT_HELP.map((l) => simple(l))) : unknownSubcommand('CLIENT', argv[1]!);
    default:
      return unknownSubcommand('CLIENT', argv[1]!);
  }
}

const CLIENT_HELP = [
  'CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'GETNAME',
  '    Return the name of the current connection.',
  'ID',
  '    Return the ID of the current connection.',
  'INFO',
  '    Return information about the current client connection.',
  'KILL <ip:port>',
  '    Kill connection made from <ip:port>.',
  'KILL <option> <value> [<option> <value> [...]]',
  '    Kill connections. Options are:',
  '    * ADDR (<ip:port>|<unixsocket>:0)',
  '      Kill connections made from the specified address',
  '    * LADDR (<ip:port>|<unixsocket>:0)',
  '      Kill connections made to specified local address',
  '    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)',
  '      Kill connections by type.',
  '    * USER <username>',
  '      Kill connections authenticated by <username>.',
  '    * SKIPME (YES|NO)',
  '      Skip killing current connection (default: yes).',
  '    * ID <client-id>',
  '      Kill connections by client id.',
  'LIST [options ...]',
  '    Return information about client connections. Options:',
  '    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)',
  '      Return clients of specified type.',
  'NO-EVICT (ON|OFF)',
  '    Accepted; BriseDB evicts nothing.',
  'NO-TOUCH (ON|OFF)',
  '    Accepted; BriseDB evicts nothing.',
  'SETNAME <name>',
  '    Assign the name <name> to the current connection.',
  'SETINFO <option> <value>',
  '    Set client meta attr. Options are:',
  '    * LIB-NAME: the client lib name.',
  '    * LIB-VER: the client lib version.',
  'HELP',
  '    Print this help.',
];

/**
 * CLIENT KILL ip:port (OK, or "No such client"), or CLIENT KILL with filters (ID, ADDR, LADDR,
 * TYPE, USER, SKIPME), answering how many were closed, as Redis 7 parses them. Clients of this
 * front-end thread only: with several TCP threads, each has its own.
 */
function clientKill(argv: Buffer[], self: ClientState, server: ServerState): Reply {
  const clients = [...server.clients.values()];
  if (argv.length === 3) {
    const addr = argv[2]!.toString('latin1');
    const target = clients.find((c) => c.addr === addr);
    if (target === undefined) return error('ERR No such client');
    target.kill?.();
    return OK;
  }
  if (argv.length < 4 || argv.length % 2 !== 0) return error('ERR syntax error');
  const tests: ((c: ClientState) => boolean)[] = [];
  let skipMe = true;
  for (let i = 2; i < argv.length; i += 2) {
    const opt = argv[i]!.toString('latin1').toLowerCase();
    const value = argv[i + 1]!.toString('latin1');
    if (opt === 'id') {
      if (!/^(0|[1-9][0-9]{0,18})$/.test(value)) return error('ERR client-id should be greater than 0');
      tests.push((c) => c.id === Number(value));
    } else if (opt === 'addr') tests.push((c) => c.addr === value);
    else if (opt === 'laddr') tests.push((c) => c.laddr === value);
    else if (opt === 'user') tests.push(() => value === 'default');
    else if (opt === 'type') {
      const type = value.toLowerCase();
      if (type === 'pubsub') tests.push((c) => c.subscriptions > 0);
      else if (type === 'normal') tests.push((c) => c.subscriptions === 0);
      else if (type === 'master' || type === 'replica' || type === 'slave') tests.push(() => false);
      else return error(`ERR Unknown client type '${value}'`);
    } else if (opt === 'skipme') {
      const yes = value.toLowerCase();
      if (yes !== 'yes' && yes !== 'no') return error('ERR syntax error');
      skipMe = yes === 'yes';
    } else return error('ERR syntax error');
  }
  let killed = 0;
  for (const c of clients) {
    if (skipMe && c === self) continue;
    if (!tests.every((t) => t(c))) continue;
    c.kill?.();
    killed += 1;
  }
  return integer(killed);
}

/** CLIENT LIST [TYPE normal | master | replica | slave | pubsub] [ID id [id ...]], as Redis parses it. */
function clientList(argv: Buffer[], server: ServerState): Reply {
  let clients = [...server.clients.values()];
  const opt = argv[2]?.toString('latin1').toLowerCase();
  if (argv.length === 4 && opt === 'type') {
    const type = argv[3]!.toString('latin1').toLowerCase();
    if (type === 'pubsub') clients = clients.filter((c) => c.subscriptions > 0);
    else if (type === 'normal') clients = clients.filter((c) => c.subscriptions === 0);
    else if (type === 'master' || type === 'replica' || type === 'slave') clients = [];
    else return error(`ERR Unknown client type '${argv[3]!.toString('utf8')}'`);
  } else if (argv.length > 3 && opt === 'id') {
    const byId = new Map(clients.map((c) => [c.id, c]));
    clients = [];
    for (const arg of argv.slice(3)) {
      const text = arg.toString('latin1');
      if (!/^(0|-?[1-9][0-9]{0,18})$/.test(text)) return error('ERR Invalid client ID');
      const c = byId.get(Number(text));
      if (c !== undefined) clients.push(c);
    }
  } else if (argv.length !== 2) {
    return error('ERR syntax error');
  }
  return bulk(clients.map((c) => clientLine(c) + '\n').join(''));
}

const NO_METRICS: ClientMetrics = { qbuf: 0, qbufFree: 0, argvMem: 0, multi: -1, multiMem: 0, obl: 0, omem: 0, oll: 0 };

/** One line of CLIENT LIST, with Redis 7.2's fields in its order. */
function clientLine(c: ClientState): string {
  const now = Date.now();
  const age = Math.floor((now - c.createdAt) / 1000);
  const idle = Math.floor((now - c.lastActiveAt) / 1000);
  const m = c.metrics?.() ?? NO_METRICS;
  const flags = c.subscriptions > 0 ? 'P' : m.multi >= 0 ? 'x' : 'N';
  const totMem = m.qbuf + m.qbufFree + m.argvMem + m.multiMem + m.obl + m.omem;
  return (
    `id=${c.id} addr=${c.addr} laddr=${c.laddr} fd=-1 name=${c.name ?? ''} age=${age} idle=${idle} ` +
    `flags=${flags} db=0 sub=${c.subscriptions} psub=0 ssub=0 multi=${m.multi} ` +
    `qbuf=${m.qbuf} qbuf-free=${m.qbufFree} argv-mem=${m.argvMem} multi-mem=${m.multiMem} rbs=0 rbp=0 ` +
    `obl=${m.obl} oll=${m.oll} omem=${m.omem} tot-mem=${totMem} events=${m.omem > 0 ? 'rw' : 'r'} ` +
    `cmd=${c.lastCommand} user=default redir=-1 resp=${c.proto} lib-name=${c.libName ?? ''} lib-ver=${c.libVer ?? ''}`
  );
}

const CONFIG_HELP = [
  'CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'GET <pattern>',
  '    Return parameters matching the glob-like <pattern> and their values.',
  'SET <directive> <value>',
  '    Set the configuration <directive> to <value>.',
  'RESETSTAT',
  '    Reset statistics reported by the INFO command.',
  'REWRITE',
  '    Rewrite the configuration file.',
  'HELP',
  '    Prints this help.',
];

/** Arity of each CONFIG subcommand, Redis style (negative: at least). */
const CONFIG_ARITY: Readonly<Record<string, number>> = { get: -3, set: -4, resetstat: 2, rewrite: 2, help: 2 };

/** CONFIG GET pattern... | SET name value [name value ...] | RESETSTAT | REWRITE | HELP. */
export function configCommand(argv: Buffer[], client: ClientState, server: ServerState): Reply {
  const sub = argv[1]!.toString('latin1').toLowerCase();
  const arity = CONFIG_ARITY[sub];
  if (arity === undefined) return unknownSubcommand('CONFIG', argv[1]!);
  if (arity > 0 ? argv.length !== arity : argv.length < -arity) return error(`ERR wrong number of arguments for 'config|${sub}' command`);
  switch (sub) {
    case 'get': {
      const patterns = argv.slice(2).map((p) => Buffer.from(p.toString('latin1').toLowerCase(), 'latin1'));
      const found = server.settings.get((name) => patterns.some((p) => globMatch(p, Buffer.from(name, 'latin1'))));
      const pairs = found.map(([name, value]) => [bulk(name), bulk(value)] as [Reply, Reply]);
      return client.proto === 3 ? map(pairs) : array(pairs.flat());
    }
    case 'set': {
      if (argv.length % 2 !== 0) return error("ERR wrong number of arguments for 'config|set' command");
      const pairs: [string, string][] = [];
      for (let i = 2; i < argv.length; i += 2) pairs.push([argv[i]!.toString('utf8'), argv[i + 1]!.toString('utf8')]);
      const refused = server.settings.set(pairs);
      return refused === null ? OK : error(`ERR ${refused}`);
    }
    case 'resetstat':
      server.resetStats();
      return OK;
    case 'rewrite':
      return error('ERR CONFIG REWRITE is not supported: BriseDB is configured by its flags and its config file, which it never rewrites');
    default:
      return array(CONFIG_HELP.map((l) => simple(l)));
  }
}

/**
 * COMMAND: COUNT, INFO, LIST (with FILTERBY) and HELP are answered; COMMAND and COMMAND DOCS
 * answer an error, which is what makes redis-cli fall back to its built-in help instead of
 * parsing ours.
 */
export function commandCommand(argv: Buffer[]): Reply {
  if (argv.length === 1) return error("ERR unknown subcommand or wrong number of arguments for 'COMMAND'; use COMMAND COUNT or COMMAND INFO name");
  const sub = argv[1]!.toString('latin1').toLowerCase();
  switch (sub) {
    case 'count':
      return argv.length === 2 ? integer(COMMANDS.length) : error("ERR wrong number of arguments for 'command|count' command");
    case 'info':
      return array(argv.slice(2).map((name) => {
        const spec = lookupCommand(name);
        return spec === undefined ? { kind: 'array', items: null } : commandInfo(spec);
      }));
    case 'list':
      return commandList(argv);
    case 'help':
      return argv.length === 2 ? array(COMMAND_HELP.map((l) => simple(l))) : error("ERR wrong number of arguments for 'command|help' command");
    default:
      return unknownSubcommand('COMMAND', argv[1]!);
  }
}

const COMMAND_HELP = [
  'COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
  'COUNT',
  '    Return the total number of commands in this server.',
  'LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]',
  '    Return a list of all commands in this server, or those the filter selects.',
  'INFO [<command-name> ...]',
  '    Return details about multiple commands.',
  'HELP',
  '    Prints this help.',
];

/** COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob], as Redis parses it. */
function commandList(argv: Buffer[]): Reply {
  if (argv.length === 2) return array(COMMANDS.map((c) => bulk(c.name)));
  if (argv.length !== 5 || argv[2]!.toString('latin1').toLowerCase() !== 'filterby') return error('ERR syntax error');
  const by = argv[3]!.toString('latin1').toLowerCase();
  const value = argv[4]!;
  let selected: readonly CommandSpec[];
  if (by === 'module') selected = [];
  else if (by === 'aclcat') {
    const cat = value.toString('latin1').toLowerCase();
    selected = COMMANDS.filter((c) => aclCategories(c).includes(`@${cat}`));
  } else if (by === 'pattern') {
    // Command names are lower case; Redis matches the pattern without regard to case.
    const pattern = Buffer.from(value.toString('latin1').toLowerCase(), 'latin1');
    selected = COMMANDS.filter((c) => globMatch(pattern, Buffer.from(c.name)));
  }
  else return error('ERR syntax error');
  return array(selected.map((c) => bulk(c.name)));
}

/** Redis' ACL categories of a command, as far as BriseDB's flags tell them. */
function aclCategories(spec: CommandSpec): string[] {
  const cats = [`@${spec.group}`];
  if (spec.flags.includes('readonly')) cats.push('@read');
  if (spec.flags.includes('write')) cats.push('@write');
  if (spec.flags.includes('fast')) cats.push('@fast');
  else cats.push('@slow');
  if (spec.flags.includes('admin')) cats.push('@admin', '@dangerous');
  return cats;
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
    array(aclCategories(spec).map((c) => simple(c))),
  ]);
}

export function unknownSubcommand(command: string, sub: Buffer): Reply {
  return error(`ERR unknown subcommand '${sub.toString('utf8')}'. Try ${command} HELP.`);
}

export async function infoCommand(argv: Buffer[], server: ServerState): Promise<Reply> {
  const wanted = argv.slice(1).map((a) => a.toString('latin1').toLowerCase());
  return bulk(await server.info(wanted));
}
