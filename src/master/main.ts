// The master program behind `node cmd/master.js`: flags and config (config.ts), the logger
// (log.ts), runMaster (master.ts), signals and the exit code. main() answers the exit code;
// cmd/master.js flushes and exits with it.
//
// Exit codes: 0 stopped cleanly on SIGINT/SIGTERM; 1 could not start (port in use, data dir
// locked...), the store died, a stop failed or overran STOP_TIMEOUT_MS, a second signal, an
// unhandled rejection; 2 bad flags or config (one line, nothing started).
//
// Invariants: a failure to start is ONE line on stderr, `brisedb: <what>`; the password is
// never logged (redactedConfig, and pino's redact); the first signal stops cleanly (stop
// accepting, finish in-flight writes, sync, stop the actors), a second exits 1 at once
// without waiting; a signal that arrives while starting stops the master once it is up.
import { formatAddress, isLoopbackHost, notYetSupported, parseMasterArgs } from './config.js';
import { createLogger, redactedConfig, type Logger } from './log.js';
import type { RunningMaster } from './master.js';
import type { ListenAddress, MasterConfig } from './master_config.js';
import { exitOnCrash, firstSignal, raiseHttpHeadLimit, serve, startOrSay } from '../wiring/program.js';

export { STOP_TIMEOUT_MS, startFailureLine } from '../wiring/program.js';

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseMasterArgs(argv, env);
  if ('help' in parsed) {
    process.stdout.write(parsed.help + '\n');
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`brisedb: ${parsed.error}\n`);
    return 2;
  }
  const { config } = parsed;
  const unsupported = notYetSupported(config, parsed.configFile);
  if (unsupported !== null) {
    process.stderr.write(`brisedb: ${unsupported}\n`);
    return 2;
  }
  const log = createLogger(parsed.logLevel);
  exitOnCrash(log);
  // Handlers first: a signal sent by whoever reads "starting" must find them installed.
  const signal = firstSignal(log);
  log.info({ config: redactedConfig(config), configFile: parsed.configFile, node: process.versions.node }, 'starting');
  warnIfExposed(config, log);
  const master = await startOrSay('brisedb', async () => {
    raiseHttpHeadLimit();
    // Loaded only now: --help and bad flags answer without loading the store and the actors.
    const { runMaster } = await import('./master.js');
    return runMaster(config, log);
  });
  if (master === null) return 1;
  logListening(master, config, log);
  return serve(master, signal, log, 'the store stopped for good; exiting');
}

/** A front end beyond loopback without a password or token is said, once, at start. */
export function warnIfExposed(config: MasterConfig, log: Logger): void {
  const fronts: Array<[string, ListenAddress | null, string | null, string]> = [
    ['TCP', config.addr, config.requirepass, 'requirepass'],
    ['HTTP', config.httpAddr, config.httpToken, 'an HTTP token (--http-token)'],
    ['the line protocol', config.textAddr ?? null, config.requirepass, 'requirepass'],
  ];
  for (const [what, a, secret, needed] of fronts) {
    if (a === null || secret !== null || isLoopbackHost(a.host)) continue;
    log.warn({ addr: formatAddress(a) }, `${what} listens on ${formatAddress(a)} without ${needed}: anyone who can reach it can read and write every key`);
  }
}

function logListening(master: RunningMaster, config: MasterConfig, log: Logger): void {
  // HTTP is reported only as runMaster reports it bound (`httpPort`, when the HTTP front end
  // exists): logging the configured address of a server that is not there would mislead.
  const bound = (master as RunningMaster & { readonly httpPort?: number | null }).httpPort;
  const http = config.httpAddr === null || typeof bound !== 'number' ? null : { host: config.httpAddr.host, port: bound };
  const textAddr = config.textAddr ?? null;
  const text = textAddr === null || master.textPort === null ? null : { host: textAddr.host, port: master.textPort };
  log.info(
    {
      tcp: formatAddress({ host: master.tcpHost, port: master.tcpPort }),
      port: master.tcpPort,
      http: http === null ? null : formatAddress(http),
      httpPort: http?.port ?? null,
      text: text === null ? null : formatAddress(text),
      textPort: text?.port ?? null,
    },
    'listening',
  );
}
