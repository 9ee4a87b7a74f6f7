// The limits of the TCP (RESP) protocol, defined once: the master's config fills them from
// flags, the front end applies them per connection, and the RESP parser enforces the four that
// concern input. Redis' defaults and names are kept (proto-max-bulk-len and friends).

export interface TcpLimits {
  /** Longest bulk string accepted (Redis proto-max-bulk-len). */
  maxBulkLength: number;
  /** Most arguments in one command. */
  maxMultibulkCount: number;
  /** Longest inline command line, and longest `*`/`$` length line (Redis: 64 KiB for both). */
  maxInlineLength: number;
  /** Bytes buffered from one client before a command completes (client-query-buffer-limit). */
  maxQueryBuffer: number;
  /** Connected clients at once; past it new connections get an error and are closed. */
  maxClients: number;
  /** Seconds of silence before a client is closed; 0 = never (Redis `timeout`). */
  idleTimeoutSeconds: number;
  /** Reply bytes queued for one client before it is disconnected (client-output-buffer-limit). */
  maxOutputBuffer: number;
}

/** The limits the RESP parser enforces: the input side of TcpLimits. */
export type RespParserLimits = Pick<TcpLimits, 'maxBulkLength' | 'maxMultibulkCount' | 'maxInlineLength' | 'maxQueryBuffer'>;

export const DEFAULT_TCP_LIMITS: Readonly<TcpLimits> = Object.freeze({
  maxBulkLength: 512 * 1024 * 1024,
  maxMultibulkCount: 1024 * 1024,
  maxInlineLength: 64 * 1024,
  maxQueryBuffer: 1024 * 1024 * 1024,
  maxClients: 10_000,
  idleTimeoutSeconds: 0,
  maxOutputBuffer: 256 * 1024 * 1024,
});

/**
 * What a client may send before AUTH when a password is set, as Redis limits it: 10 arguments
 * of at most 16 KiB. The query buffer holds such a command whole (10 x 16 KiB plus framing),
 * so 1 MiB; anything beyond is not a login.
 */
export const UNAUTHENTICATED_TCP_LIMITS: Readonly<Pick<TcpLimits, 'maxBulkLength' | 'maxMultibulkCount' | 'maxQueryBuffer'>> = Object.freeze({
  maxBulkLength: 16 * 1024,
  maxMultibulkCount: 10,
  maxQueryBuffer: 1024 * 1024,
});

/** The parser limits of an authenticated connection (Redis' defaults). */
export const DEFAULT_PARSER_LIMITS: Readonly<RespParserLimits> = Object.freeze(parserLimitsOf(DEFAULT_TCP_LIMITS));

/** What the parser checks, besides its limits, for a client that has not authenticated yet. */
export type PreAuthLimits = Pick<TcpLimits, 'maxBulkLength' | 'maxMultibulkCount'>;

export function parserLimitsOf(limits: RespParserLimits): RespParserLimits {
  return {
    maxBulkLength: limits.maxBulkLength,
    maxMultibulkCount: limits.maxMultibulkCount,
    maxInlineLength: limits.maxInlineLength,
    maxQueryBuffer: limits.maxQueryBuffer,
  };
}
