// The volume-server program behind `node cmd/volume-server.js`: flags (config.ts), the logger,
// runVolumeServer (server.ts), signals and the exit code, as the master's main.ts does.
//
// Exit codes: 0 stopped cleanly on SIGINT/SIGTERM; 1 could not start (port in use, data dir
// locked...), an actor given up, a failed stop, a second signal; 2 bad flags (one line).
// Invariants: a failure to start is ONE line on stderr, `brisedb-volume: <what>`; the secret is
// never logged; the `listening` line carries the bound port (`--addr HOST:0` lets the OS pick).
import { createLogger, type Logger } from '../master/log.js';
import { formatAddress } from '../master/config.js';
import { startFailureLine } from '../master/main.js';
import { parseVolumeArgs, type VolumeServerConfig } from './config.js';
import type { RunningVolumeServer } from './server.js';

/** Largest request head the front ends take (uWS reads it from the environment at load). */
const HTTP_MAX_HEAD_BYTES = 16 * 1024;
const STOP_TIMEOUT_MS = 60_000;
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseVolumeArgs(argv, env);
  if ('help' in parsed) {
    process.stdout.write(parsed.help + '\n');
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`brisedb-volume: ${parsed.error}\n`);
    return 2;
  }
  const { config } = parsed;
  const log = createLogger(parsed.logLevel);
  exitOnCrash(log);
  const signal = firstSignal(log);
  log.info({ config: shown(config), node: process.versions.node }, 'starting');
  let server: RunningVolumeServer;
  try {
    process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= String(HTTP_MAX_HEAD_BYTES);
    const { runVolumeServer } = await import('./server.js');
    server = await runVolumeServer(config, log);
  } catch (err) {
    process.stderr.write(`brisedb-volume: ${startFailureLine(err)}\n`);
    return 1;
  }
  const addr = { host: server.host, port: server.port };
  log.info({ http: formatAddress(addr), port: server.port, drives: config.drives }, 'listening');
  const ended = await Promise.race([signal.then((s) => ({ signal: s })), server.done.then(() => ({ died: true as const }))]);
  if ('died' in ended) log.fatal('an actor was given up; exiting');
  else log.info({ signal: ended.signal }, 'stopping');
  const stopped = await stopWithin(server, log);
  if ('died' in ended || !stopped) return 1;
  log.info('stopped');
  return 0;
}

function shown(config: VolumeServerConfig): Record<string, unknown> {
  return { ...config, addr: formatAddress(config.addr), secret: config.secret === null ? null : '(set)' };
}

async function stopWithin(server: RunningVolumeServer, log: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => (timer = setTimeout(() => resolve('overrun'), STOP_TIMEOUT_MS)));
  try {
    const r = await Promise.race([server.stop().then(() => 'stopped' as const), overrun]);
    if (r === 'overrun') log.error({ timeoutMs: STOP_TIMEOUT_MS }, 'stop did not finish in time; exiting');
    return r === 'stopped';
  } catch (err) {
    log.error({ err }, 'stop failed');
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function firstSignal(log: Logger): Promise<string> {
  let seen = false;
  return new Promise((resolve) => {
    for (const s of SIGNALS) {
      process.on(s, () => {
        if (seen) {
          log.warn({ signal: s }, 'second signal: exiting now');
          process.exit(1);
        }
        seen = true;
        resolve(s);
      });
    }
  });
}

function exitOnCrash(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason }, 'unhandled rejection; exiting');
    process.exit(1);
  });
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; exiting');
    process.exit(1);
  });
}
