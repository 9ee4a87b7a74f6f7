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

/** Largest HTTP request head (request line and headers) the front ends take. */
const HTTP_MAX_HEAD_BYTES = 16 * 1024;
import type { ListenAddress, MasterConfig } from './master_config.js';

/** How long a clean stop may take before the master gives up and exits 1. */
export const STOP_TIMEOUT_MS = 60_000;
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type Signal = (typeof SIGNALS)[number];

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
  let master: RunningMaster;
  try {
    // uWS reads its request-head limit from the C environment once, when it loads in a front
    // end's thread: set here, in the main thread (whose process.env is the real environment),
    // before any starts. Its default, 4 KiB, refuses a head that arrives in more than one read
    // past that size with 431 (a 4,096-byte key percent-encoded in the URL is up to 12 KiB).
    process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= String(HTTP_MAX_HEAD_BYTES);
    // Loaded only now: --help and bad flags answer without loading the store and the actors.
    const { runMaster } = await import('./master.js');
    master = await runMaster(config, log);
  } catch (err) {
    process.stderr.write(`brisedb: ${startFailureLine(err)}\n`);
    return 1;
  }
  logListening(master, config, log);
  return serve(master, signal, log);
}

/** Waits for a signal (stop cleanly: 0) or the store's death (1). */
async function serve(master: RunningMaster, signal: Promise<Signal>, log: Logger): Promise<number> {
  const ended = await Promise.race([
    signal.then((s) => ({ signal: s })),
    master.done.then(
      () => ({ died: undefined as unknown }),
      (err: unknown) => ({ died: err }),
    ),
  ]);
  if ('died' in ended) {
    log.fatal({ err: ended.died }, 'the store stopped for good; exiting');
    await stopWithin(master, log);
    return 1;
  }
  log.info({ signal: ended.signal }, 'stopping: finishing in-flight writes (a second signal exits at once)');
  if (!(await stopWithin(master, log))) return 1;
  log.info('stopped');
  return 0;
}

/** master.stop(), bounded; false when it failed or overran. */
async function stopWithin(master: RunningMaster, log: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => {
    timer = setTimeout(() => resolve('overrun'), STOP_TIMEOUT_MS);
  });
  try {
    const r = await Promise.race([master.stop().then(() => 'stopped' as const), overrun]);
    if (r === 'overrun') log.error({ timeoutMs: STOP_TIMEOUT_MS }, 'stop did not finish in time; exiting');
    return r === 'stopped';
  } catch (err) {
    log.error({ err }, 'stop failed');
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits 1 at once. */
function firstSignal(log: Logger): Promise<Signal> {
  let seen = false;
  return new Promise((resolve) => {
    for (const s of SIGNALS) {
      process.on(s, () => {
        if (seen) {
          log.warn({ signal: s }, 'second signal: exiting now, without a clean stop');
          process.exit(1);
        }
        seen = true;
        resolve(s);
      });
    }
  });
}

/** A bug that escapes every handler is logged, then the process ends: never half-alive. */
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

function warnIfExposed(config: MasterConfig, log: Logger): void {
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

const LISTEN_PROBLEMS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this host',
  ENOTFOUND: 'host not found',
};

/** The one line for a failed start: runMaster's own message, or a listen error made plain. */
export function startFailureLine(err: unknown): string {
  const e = err as (NodeJS.ErrnoException & { address?: string; port?: number }) | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (code !== undefined && code in LISTEN_PROBLEMS && e?.syscall === 'listen' && typeof e.port === 'number') {
    return `cannot listen on ${formatAddress({ host: e.address ?? '', port: e.port })}: ${LISTEN_PROBLEMS[code]}`;
  }
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s*\n[\s\S]*$/, '');
  return unwrapActorStart(message) || 'could not start (no reason given)';
}

/**
 * The supervisor reports an actor that could not start as `actor tcp-0 failed to start: init
 * failed: BAD_ARGUMENT: cannot listen on ...` (src/runtime/supervisor.ts); the user needs only
 * the actor's own reason, which already says what failed.
 */
function unwrapActorStart(message: string): string {
  const m = /^actor \S+ failed to start: init failed: [A-Z_]+: (.+)$/.exec(message);
  return m === null ? message : m[1]!;
}
