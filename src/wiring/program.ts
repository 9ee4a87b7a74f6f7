// What a server program does around its composition, shared by the master (master/main.ts)
// and the volume server (volserver/main.ts): the uWS head limit, the crash and signal
// handlers, the one-line start failure, and serving until a signal or a death.
//
// Exit codes: 0 stopped cleanly on the first SIGINT/SIGTERM; 1 could not start, died (an actor
// given up), a stop that failed or overran STOP_TIMEOUT_MS, a second signal, an unhandled
// rejection or exception.
import type { Logger } from 'pino';
import { formatAddress } from '../runtime/listen.js';

/** Largest HTTP request head (request line and headers) the front ends take. */
const HTTP_MAX_HEAD_BYTES = 16 * 1024;
/** How long a clean stop may take before the program gives up and exits 1. */
export const STOP_TIMEOUT_MS = 60_000;
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
export type Signal = (typeof SIGNALS)[number];

/** A started server: stopped in order, `done` settled if it dies for good. */
export interface Stoppable {
  stop(): Promise<void>;
  readonly done: Promise<void>;
}

/**
 * uWS reads its request-head limit from the C environment once, when it loads in a front
 * end's thread: set here, in the main thread (whose process.env is the real environment),
 * before any starts. Its default, 4 KiB, refuses a head that arrives in more than one read
 * past that size with 431 (a 4,096-byte key percent-encoded in the URL is up to 12 KiB).
 */
export function raiseHttpHeadLimit(): void {
  process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= String(HTTP_MAX_HEAD_BYTES);
}

/** A bug that escapes every handler is logged, then the process ends: never half-alive. */
export function exitOnCrash(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.fatal({ err: reason }, 'unhandled rejection; exiting');
    process.exit(1);
  });
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; exiting');
    process.exit(1);
  });
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits 1 at once. */
export function firstSignal(log: Logger): Promise<Signal> {
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

/** Starts the server; a failure is one line on stderr, `prefix: <why>`, and answers null. */
export async function startOrSay<T>(prefix: string, start: () => Promise<T>): Promise<T | null> {
  try {
    return await start();
  } catch (err) {
    process.stderr.write(`${prefix}: ${startFailureLine(err)}\n`);
    return null;
  }
}

/** Waits for a signal (stop cleanly: 0) or the server's death (`diedMessage`, then 1). */
export async function serve(server: Stoppable, signal: Promise<Signal>, log: Logger, diedMessage: string): Promise<number> {
  const ended = await Promise.race([
    signal.then((s) => ({ signal: s })),
    server.done.then(
      () => ({ died: undefined as unknown }),
      (err: unknown) => ({ died: err }),
    ),
  ]);
  if ('died' in ended) {
    log.fatal({ err: ended.died }, diedMessage);
    await stopWithin(server, log);
    return 1;
  }
  log.info({ signal: ended.signal }, 'stopping: finishing in-flight writes (a second signal exits at once)');
  if (!(await stopWithin(server, log))) return 1;
  log.info('stopped');
  return 0;
}

/** server.stop(), bounded; false when it failed or overran. */
async function stopWithin(server: Stoppable, log: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<'overrun'>((resolve) => {
    timer = setTimeout(() => resolve('overrun'), STOP_TIMEOUT_MS);
  });
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

const LISTEN_PROBLEMS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this host',
  ENOTFOUND: 'host not found',
};

/** The one line for a failed start: the server's own message, or a listen error made plain. */
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
