// The master's logger: pino, JSON lines on stderr (stdout stays free for --help and for
// programs that pipe the master), level from `--log-level` or $BRISEDB_LOG_LEVEL (info).
//
// Invariants: writes are synchronous (pino.destination with sync: true), so a line logged
// just before process.exit is never lost; the password is never logged: callers pass a
// config through redactedConfig(), and pino's redact removes any `requirepass` key that
// slips through anyway.
import { pino, type DestinationStream, type Logger } from 'pino';
import type { MasterConfig } from './master_config.js';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';
export const LOG_LEVEL_ENV = 'BRISEDB_LOG_LEVEL';

export function parseLogLevel(text: string): LogLevel | null {
  const lower = text.toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(lower) ? (lower as LogLevel) : null;
}

/** A logger to stderr, or to `destination` (tests). */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      name: 'brisedb',
      level,
      // Belt and braces: redactedConfig() already hides it; this catches a careless caller.
      redact: { paths: ['requirepass', '*.requirepass', '*.*.requirepass', 'httpToken', '*.httpToken', '*.*.httpToken'], censor: (value: unknown) => (value === null || value === undefined ? null : '(set)') },
    },
    destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** The config as it may be logged: the password replaced by whether one is set. */
export function redactedConfig(config: MasterConfig): Record<string, unknown> {
  return { ...config, requirepass: config.requirepass === null ? null : '(set)', httpToken: config.httpToken === null ? null : '(set)' };
}
