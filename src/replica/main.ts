// The replica program behind `node cmd/replica.js` (docs/replica.md): the seed's
//   ./replica --master localhost:6380 --data DIR --addr :6382
// Its own flags are --master HOST:PORT (also --replicaof), --masterauth PASSWORD (or
// BRISEDB_MASTERAUTH) and --promote; every other flag is the master's (--addr, --http, --data,
// --drives, --requirepass, --sync, limits...), with a replica's defaults: TCP 127.0.0.1:6382,
// no HTTP unless --http is given, data dir brisedb-replica.
//
// --promote: the data dir is promoted at once (a new history after its last LSN, as REPLICAOF
// NO ONE does) and served as a master; no --master is needed.
//
// Exit codes as the master's: 0 stopped cleanly, 1 could not start or died, 2 bad flags.
import { formatAddress, parseListenAddress } from '../runtime/listen.js';
import { parseMasterArgs } from '../master/config.js';
import { createLogger, redactedConfig } from '../master/log.js';
import { warnIfExposed } from '../master/main.js';
import { readFileSync } from 'node:fs';
import { exitOnCrash, firstSignal, raiseHttpHeadLimit, serve, startOrSay } from '../wiring/program.js';

export const MASTERAUTH_ENV = 'BRISEDB_MASTERAUTH';

export const REPLICA_USAGE = `Usage: node cmd/replica.js --master HOST:PORT [--masterauth PASSWORD] [master flags]
       node cmd/replica.js --promote --data DIR [master flags]

A read-only replica: it follows the master's WAL over the master's TCP port, keeps its own copy
(WAL, index, volumes) and serves every read on its own ports. Writes are refused (-READONLY).

  --master HOST:PORT     the master's TCP (RESP) address (also --replicaof)
  --masterauth PASSWORD  the master's requirepass (or ${MASTERAUTH_ENV})
  --promote              promote the data dir to a master (new history) and serve it as one

Defaults that differ from the master's: --addr 127.0.0.1:6382, no HTTP (give --http ADDR to
serve the read routes), --data brisedb-replica. See node cmd/master.js --help for the rest.`;

interface ReplicaArgs {
  master: { host: string; port: number } | null;
  masterAuth: string | null;
  promote: boolean;
  rest: string[];
}

export function parseReplicaArgs(argv: string[], env: NodeJS.ProcessEnv): ReplicaArgs | { error: string } | { help: string } {
  if (argv.includes('--help') || argv.includes('-h')) return { help: REPLICA_USAGE };
  const out: ReplicaArgs = { master: null, masterAuth: env[MASTERAUTH_ENV] ?? null, promote: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    if (flag === '--master' || flag === '--replicaof') {
      const v = value();
      const addr = v === undefined ? 'is missing' : parseListenAddress(v.replace(/^([^:[]+) (\d+)$/, '$1:$2'));
      if (typeof addr === 'string') return { error: `${flag} ${v ?? ''}: ${addr}` };
      out.master = { host: addr.host === '0.0.0.0' || addr.host === '::' ? '127.0.0.1' : addr.host, port: addr.port };
    } else if (flag === '--masterauth') {
      const v = value();
      if (v === undefined) return { error: '--masterauth: missing the password' };
      out.masterAuth = v;
    } else if (flag === '--promote') out.promote = true;
    else out.rest.push(a);
  }
  if (out.master === null && !out.promote) return { error: '--master HOST:PORT is required (the master to follow)' };
  // A replica's own defaults, unless a flag or the config file sets the field: without them a
  // replica beside its master would take the master's port and data dir.
  const inFile = configKeys(out.rest);
  const given = (f: string, key: string): boolean => out.rest.some((a) => a === f || a.startsWith(`${f}=`)) || inFile.has(key);
  if (!given('--addr', 'addr')) out.rest.push('--addr', '127.0.0.1:6382');
  if (!given('--http', 'http_addr')) out.rest.push('--http', '');
  if (!given('--data', 'data_dir')) out.rest.push('--data', 'brisedb-replica');
  return out;
}

/** The keys of the --config file, when it is a readable JSON object (the master's parser says what is wrong otherwise). */
function configKeys(args: readonly string[]): Set<string> {
  const at = args.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (at < 0) return new Set();
  const file = args[at]!.includes('=') ? args[at]!.slice(args[at]!.indexOf('=') + 1) : args[at + 1];
  try {
    const parsed: unknown = JSON.parse(readFileSync(file ?? '', 'utf8'));
    return typeof parsed === 'object' && parsed !== null ? new Set(Object.keys(parsed)) : new Set();
  } catch {
    return new Set();
  }
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = parseReplicaArgs(argv, env);
  if ('help' in args) {
    process.stdout.write(args.help + '\n');
    return 0;
  }
  if ('error' in args) {
    process.stderr.write(`brisedb-replica: ${args.error}\n`);
    return 2;
  }
  const parsed = parseMasterArgs(args.rest, env);
  if ('help' in parsed) {
    process.stdout.write(REPLICA_USAGE + '\n');
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`brisedb-replica: ${parsed.error}\n`);
    return 2;
  }
  const { config } = parsed;
  if (config.volumeServers.length > 0) {
    process.stderr.write('brisedb-replica: a replica holds its own copy of every volume; --volume-servers is for masters\n');
    return 2;
  }
  const log = createLogger(parsed.logLevel);
  exitOnCrash(log);
  const signal = firstSignal(log);
  let signalled = false;
  void signal.then(() => (signalled = true));
  log.info({ config: redactedConfig(config), master: args.master, masterauth: args.masterAuth === null ? null : '(set)', promote: args.promote, node: process.versions.node }, 'starting replica');
  warnIfExposed(config, log);
  if (args.masterAuth !== null && config.requirepass === null) {
    log.warn('--masterauth is set but --requirepass is not: this replica serves every key of a password-protected master without a password');
  }
  raiseHttpHeadLimit();
  if (args.promote) {
    const server = await startOrSay('brisedb-replica', async () => {
      const { promoteDataDir } = await import('./promote.js');
      promoteDataDir(config.dataDir, log);
      const { runMaster } = await import('../master/master.js');
      return runMaster(config, log);
    });
    if (server === null) return 1;
    log.info({ tcp: formatAddress({ host: server.tcpHost, port: server.tcpPort }), port: server.tcpPort, httpPort: server.httpPort }, 'listening (promoted: a master)');
    return serve(server, signal, log, 'the store stopped for good; exiting');
  }
  const master = args.master!;
  const replica = await startOrSay('brisedb-replica', async () => {
    const { runReplica } = await import('./replica.js');
    // The first signal also ends a wait for the first copy (a master down or refusing).
    return runReplica({ master, masterAuth: args.masterAuth, server: config }, log, signal);
  });
  // A signal while it waited for its first copy is a clean stop, not a failure.
  if (replica === null) return signalled ? 0 : 1;
  log.info({ tcp: formatAddress({ host: config.addr.host, port: replica.tcpPort }), port: replica.tcpPort, httpPort: replica.httpPort, master: formatAddress(master) }, 'listening (a read-only replica)');
  return serve(replica, signal, log, 'the replica stopped for good; exiting');
}
