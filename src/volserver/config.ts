// The volume server's flags (docs/volume-server.md), validated into a VolumeServerConfig.
// Invariants: bad input is ONE line naming the flag and the value, and the secret is never
// echoed; the drives are distinct directories; a server bound to a non-loopback address has a
// secret (anyone who reaches it could otherwise write every volume).
import * as os from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { formatAddress, isLoopbackHost, parseListenAddress, type HostPort } from '../runtime/listen.js';
import { DEFAULT_LOG_LEVEL, LOG_LEVELS, LOG_LEVEL_ENV, parseLogLevel, type LogLevel } from '../wiring/log.js';
import type { SyncPolicy } from '../storage/types.js';

export const DEFAULT_VOLUME_ADDR = '127.0.0.1:8081';
/** The secret from the environment keeps it out of `ps`. */
export const SECRET_ENV = 'BRISEDB_VOLUME_SECRET';
export const MAX_DRIVES = 64;
export const MAX_HTTP_THREADS = 64;
const MAX_SECRET_BYTES = 4096;

export interface VolumeServerConfig {
  addr: HostPort;
  /** The data dir first (it holds LOCK), then the extra drives. */
  drives: string[];
  secret: string | null;
  sync: SyncPolicy;
  httpThreads: number;
}

export type ParsedVolumeArgs = { config: VolumeServerConfig; logLevel: LogLevel } | { help: string } | { error: string };

export const VOLUME_USAGE = `Usage: node cmd/volume-server.js --data DIR [flags]

A BriseDB volume server: holds members of volume groups for masters (docs/volume-server.md).

  --addr HOST:PORT        HTTP listen address (default ${DEFAULT_VOLUME_ADDR}); port 0: any free port
  --data DIR              data directory, the first drive (required)
  --drives DIR,DIR        more drives (a writer thread each)
  --secret SECRET         the secret shared with the masters (X-Brise-Auth); also $${SECRET_ENV};
                          required unless the address is loopback
  --sync always|none      fdatasync before answering an append that asks for it (always)
  --http-threads N        HTTP front-end threads (default min(2, cores))
  --log-level LEVEL       ${LOG_LEVELS.join('|')} (default ${DEFAULT_LOG_LEVEL}; also $${LOG_LEVEL_ENV})
  --help                  show this text

Logs are JSON lines on stderr; the "listening" line names the bound port.
Exit codes: 0 stopped cleanly, 1 could not start or failed, 2 bad flags.`;

const FLAGS = new Set(['--addr', '--data', '--drives', '--secret', '--sync', '--http-threads', '--log-level']);

export function parseVolumeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedVolumeArgs {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { help: VOLUME_USAGE };
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (!FLAGS.has(name)) return { error: `unknown flag ${JSON.stringify(arg.slice(0, 64))} (see --help)` };
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) return { error: `${name} needs a value` };
    given.set(name, value);
  }
  try {
    return { config: configOf(given, env), logLevel: logLevelOf(given.get('--log-level') ?? env[LOG_LEVEL_ENV]) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

function configOf(given: Map<string, string>, env: NodeJS.ProcessEnv): VolumeServerConfig {
  const addr = parseListenAddress(given.get('--addr') ?? DEFAULT_VOLUME_ADDR);
  if (typeof addr === 'string') throw new Error(`--addr: ${JSON.stringify(given.get('--addr'))} ${addr}`);
  const data = given.get('--data');
  if (data === undefined || data === '') throw new Error('--data DIR is required');
  const extra = (given.get('--drives') ?? '').split(',').filter((d) => d !== '');
  const drives = [data, ...extra].map((d) => resolvePath(d));
  if (drives.length > MAX_DRIVES) throw new Error(`--drives: ${drives.length} drives; the limit is ${MAX_DRIVES}`);
  if (new Set(drives).size !== drives.length) throw new Error('--drives: a directory is named twice (the data dir is a drive too)');
  const secret = given.get('--secret') ?? env[SECRET_ENV] ?? null;
  if (secret !== null && (secret === '' || Buffer.byteLength(secret) > MAX_SECRET_BYTES)) throw new Error(`--secret: must be 1 to ${MAX_SECRET_BYTES} bytes`);
  if (secret === null && !isLoopbackHost(addr.host)) {
    throw new Error(`--addr ${formatAddress(addr)} is not loopback: a --secret (or $${SECRET_ENV}) is required, or anyone who reaches it could write every volume`);
  }
  const sync = given.get('--sync') ?? 'always';
  if (sync !== 'always' && sync !== 'none') throw new Error(`--sync: ${JSON.stringify(sync)} is not always or none`);
  const threadsText = given.get('--http-threads');
  const httpThreads = threadsText === undefined ? Math.min(2, os.availableParallelism()) : Number(threadsText);
  if (!Number.isInteger(httpThreads) || httpThreads < 1 || httpThreads > MAX_HTTP_THREADS) {
    throw new Error(`--http-threads: ${JSON.stringify(threadsText)} is not an integer from 1 to ${MAX_HTTP_THREADS}`);
  }
  return { addr, drives, secret, sync, httpThreads };
}

function logLevelOf(text: string | undefined): LogLevel {
  if (text === undefined || text === '') return DEFAULT_LOG_LEVEL;
  const level = parseLogLevel(text);
  if (level === null) throw new Error(`--log-level: ${JSON.stringify(text)} is not one of ${LOG_LEVELS.join(', ')}`);
  return level;
}
