// The volume-server program behind `node cmd/volume-server.js`: flags (config.ts), the logger,
// runVolumeServer (server.ts), signals and the exit code, as the master's main.ts does.
//
// Exit codes: 0 stopped cleanly on SIGINT/SIGTERM; 1 could not start (port in use, data dir
// locked...), an actor given up, a failed stop, a second signal; 2 bad flags (one line).
// Invariants: a failure to start is ONE line on stderr, `brisedb-volume: <what>`; the secret is
// never logged; the `listening` line carries the bound port (`--addr HOST:0` lets the OS pick).
import { createLogger } from '../wiring/log.js';
import { formatAddress } from '../runtime/listen.js';
import { exitOnCrash, firstSignal, raiseHttpHeadLimit, serve, startOrSay } from '../wiring/program.js';
import { parseVolumeArgs, type VolumeServerConfig } from './config.js';

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
  const server = await startOrSay('brisedb-volume', async () => {
    raiseHttpHeadLimit();
    const { runVolumeServer } = await import('./server.js');
    return runVolumeServer(config, log);
  });
  if (server === null) return 1;
  const addr = { host: server.host, port: server.port };
  log.info({ http: formatAddress(addr), port: server.port, drives: config.drives }, 'listening');
  return serve(server, signal, log, 'an actor was given up; exiting');
}

function shown(config: VolumeServerConfig): Record<string, unknown> {
  return { ...config, addr: formatAddress(config.addr), secret: config.secret === null ? null : '(set)' };
}
