// The client's errors: one small closed set, each with a stable `code`, so callers switch on
// class or code and never parse messages.
//
// - BriseError: the server answered with an error reply (`-ERR ...`, `-WRONGTYPE ...`). The
//   code is the reply's first word, as Redis clients expose it; the connection stays usable.
// - ConnectionError: no connection, or it was lost. Every request pending on a lost connection
//   rejects with it (its outcome on the server is unknown: it may or may not have applied).
// - TimeoutError: a connect or a command took longer than its limit. A timed-out command's
//   outcome is unknown too; its late reply is read and discarded, never given to another.
// - LimitError: a client-side bound was hit (requests in flight); nothing was sent.
//
// These are classes rather than StoreError because they live in the caller's process and
// are never sent across a thread; the codes follow the same habit (stable, upper case).

export type ConnectionErrorCode =
  | 'CONNECTION_REFUSED' // nothing listens there (ECONNREFUSED), or the host is unreachable
  | 'CONNECTION_LOST' // the socket closed or failed with requests pending or later
  | 'PROTOCOL_ERROR' // the server sent bytes that are not RESP, or past the reply limits
  | 'CLIENT_CLOSED' // close() was called
  | 'TRANSACTION_LOST'; // the connection was lost inside BEGIN: rollback() to leave the level

export type TimeoutErrorCode = 'CONNECT_TIMEOUT' | 'COMMAND_TIMEOUT';

export type LimitErrorCode = 'TOO_MANY_IN_FLIGHT';

/** The base of every error this client raises itself. */
export abstract class ClientError extends Error {
  abstract readonly code: string;
}

/** An error reply from the server. `code` is its first word: ERR, WRONGTYPE, NOAUTH, READONLY... */
export class BriseError extends ClientError {
  override readonly name = 'BriseError';
  readonly code: string;
  constructor(message: string, code?: string) {
    super(message);
    this.code = code ?? errorCodeOf(message);
  }
}

export class ConnectionError extends ClientError {
  override readonly name = 'ConnectionError';
  constructor(readonly code: ConnectionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export class TimeoutError extends ClientError {
  override readonly name = 'TimeoutError';
  constructor(readonly code: TimeoutErrorCode, message: string) {
    super(message);
  }
}

export class LimitError extends ClientError {
  override readonly name = 'LimitError';
  constructor(readonly code: LimitErrorCode, message: string) {
    super(message);
  }
}

/** Redis' convention: the first word of an error reply, when upper case, is its code. */
export function errorCodeOf(message: string): string {
  const space = message.indexOf(' ');
  const word = space < 0 ? message : message.slice(0, space);
  return /^[A-Z][A-Z0-9_]*$/.test(word) ? word : 'ERR';
}
