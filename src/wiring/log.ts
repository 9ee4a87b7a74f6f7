// The programs' logger (master, volume server): pino, JSON lines on stderr (stdout stays free
// for --help and for programs that pipe them), level from `--log-level` or $BRISEDB_LOG_LEVEL.
//
// Invariants: writes are synchronous (pino.destination with sync: true), so a line logged just
// before process.exit is never lost; secrets are never logged: callers pass configs through
// their redaction, and pino's redact replaces any secret key that slips through anyway.
import { pino, type DestinationStream, type Logger } from 'pino';

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
      redact: { paths: ['requirepass', '*.requirepass', '*.*.requirepass', 'httpToken', '*.httpToken', '*.*.httpToken', 'volumeSecret', '*.volumeSecret', '*.*.volumeSecret', 'secret', '*.secret', '*.*.secret'], censor: (value: unknown) => (value === null || value === undefined ? null : '(set)') },
    },
    destination ?? pino.destination({ fd: 2, sync: true }),
  );
}
