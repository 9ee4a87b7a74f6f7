// The master's log: the programs' logger (wiring/log.ts) and the master's config as it may be
// logged, every secret (password, HTTP token, volume secret) replaced by whether one is set.
import type { MasterConfig } from './master_config.js';

export { DEFAULT_LOG_LEVEL, LOG_LEVELS, LOG_LEVEL_ENV, createLogger, parseLogLevel, type LogLevel, type Logger } from '../wiring/log.js';

/** The config as it may be logged: each secret replaced by whether one is set. */
export function redactedConfig(config: MasterConfig): Record<string, unknown> {
  return {
    ...config,
    requirepass: config.requirepass === null ? null : '(set)',
    httpToken: config.httpToken === null ? null : '(set)',
    volumeSecret: (config.volumeSecret ?? null) === null ? null : '(set)',
  };
}
