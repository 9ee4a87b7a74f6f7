// Errors across threads. Owns the one conversion between thrown errors and the plain
// `{code, message}` that travels in messages (DESIGN §1: errors cross threads as data, never
// as class instances, so a code survives CBOR, structured clone and comlink alike).
// Invariants: toWireError never throws; a StoreError keeps its code; anything else becomes
// INTERNAL with its message kept, so a programmer error still says what went wrong.
import type { TransferHandler } from 'comlink';

/** An error with a stable code (storage, runtime, protocol), safe to send across threads as {code, message}. */
export class StoreError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

/** Stable error codes. Clients and other threads see these, never class instances. */
export type ErrorCode =
  | 'KEY_TOO_LONG'
  | 'KEY_EMPTY'
  | 'VALUE_TOO_LARGE'
  | 'BATCH_TOO_LARGE'
  | 'QUEUE_FULL'
  | 'WAL_FENCED'
  | 'IO_ERROR'
  | 'NO_SPACE'
  | 'CORRUPT'
  | 'CHECKSUM_MISMATCH'
  | 'NOT_FOUND'
  | 'LOCKED'
  | 'CLOSED'
  | 'ACTOR_DOWN'
  | 'TIMEOUT'
  | 'BAD_ARGUMENT'
  | 'NO_TRANSACTION'
  | 'SIZE_MISMATCH'
  // An upload's bytes do not match the digest its headers named (Content-MD5, Repr-Digest...).
  | 'BAD_DIGEST'
  // A write from a master whose epoch is older than one a volume server has seen (fencing).
  | 'STALE_EPOCH'
  | 'ABORTED'
  /** A write at an offset that is not the volume's length: a member that missed a write. */
  | 'CONFLICT'
  /** A remote volume server cannot be reached, or answered that it cannot serve now. */
  | 'UNAVAILABLE'
  /** A volume group with a stale member refuses writes until it is repaired (take another). */
  | 'DEGRADED'
  /** A write sent to a read-only replica (docs/replica.md). */
  | 'READONLY'
  /** A write on a master with fewer good replicas than min-replicas-to-write. */
  | 'NOREPLICAS'
  /** A read that asked for an LSN this replica has not reached within its wait. */
  | 'LAGGING'
  /** The replication stream is malformed or out of order: the link is dropped and resumed. */
  | 'PROTOCOL'
  /** Not now: a vacuum or scrub already runs, a volume is being written to; try again. */
  | 'BUSY'
  | 'INTERNAL';

export interface WireError {
  code: string;
  message: string;
}

/** Longest message that crosses a thread; a runaway message must not bloat a batch. */
export const MAX_WIRE_MESSAGE = 4096;

export function toWireError(err: unknown): WireError {
  if (err instanceof StoreError) return { code: err.code, message: clip(err.message) };
  // Other Error instances (TypeError, a Node SystemError whose `code` is an errno) are not
  // ours to classify: INTERNAL, with the name and message kept for the log.
  if (err instanceof Error) return { code: 'INTERNAL', message: clip(`${err.name}: ${err.message}`) };
  // A plain {code, message} is an error that already crossed a thread: pass it on unchanged.
  if (isWireError(err)) return { code: err.code, message: clip(err.message) };
  return { code: 'INTERNAL', message: clip(safeString(err)) };
}

/**
 * The receiving side's view of a WireError. Codes come from toWireError on the other end of
 * this same build, so they are ErrorCodes; a code that is not (a hand-made reply) is kept as
 * is rather than hidden, because the code is what callers switch on and log.
 */
/** An error as one line for a client or a log: `CODE: message` when it has a code. */
export function codedMessage(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return typeof e?.code === 'string' ? `${e.code}: ${message}` : message;
}

export function fromWireError(e: WireError): StoreError {
  return new StoreError(e.code as ErrorCode, e.message);
}

/** Shorthand for the runtime's own failures. */
export function storeError(code: ErrorCode, message: string): StoreError {
  return new StoreError(code, message);
}

export function isWireError(v: unknown): v is WireError {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { code?: unknown }).code === 'string' &&
    typeof (v as { message?: unknown }).message === 'string'
  );
}

function clip(s: string): string {
  return s.length <= MAX_WIRE_MESSAGE ? s : `${s.slice(0, MAX_WIRE_MESSAGE)}...`;
}

function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    return 'unprintable error';
  }
}

// ---- errors through comlink (control calls) --------------------------------------------------

/**
 * comlink sends a thrown Error as {message, name, stack} and loses its code. Both threads
 * call this once (the actor runtime and the supervisor) so a control call that throws a
 * StoreError rejects with a StoreError of the same code on the caller's side.
 */
export function installComlinkErrorCodes(handlers: Map<string, TransferHandler<unknown, unknown>>): void {
  const original = handlers.get('throw');
  if (!original || installed.has(handlers)) return;
  installed.add(handlers);
  handlers.set('throw', {
    canHandle: original.canHandle,
    serialize(value: unknown) {
      const [serialized, transfer] = original.serialize(value);
      const err = (value as { value?: unknown }).value;
      if (err instanceof StoreError && isErrorPayload(serialized)) serialized.value.code = err.code;
      return [serialized, transfer];
    },
    deserialize(serialized: unknown): unknown {
      if (isErrorPayload(serialized) && typeof serialized.value.code === 'string') {
        throw fromWireError({ code: serialized.value.code, message: String(serialized.value.message) });
      }
      return original.deserialize(serialized);
    },
  });
}

/** What comlink's `throw` handler sends for an error; `code` is ours. */
export function comlinkErrorPayload(e: WireError): { isError: true; value: { message: string; name: string; code: string } } {
  return { isError: true, value: { message: e.message, name: 'StoreError', code: e.code } };
}

const installed = new WeakSet<Map<string, TransferHandler<unknown, unknown>>>();

function isErrorPayload(v: unknown): v is { isError: true; value: { message?: unknown; code?: unknown } } {
  return typeof v === 'object' && v !== null && (v as { isError?: unknown }).isError === true &&
    typeof (v as { value?: unknown }).value === 'object' && (v as { value?: unknown }).value !== null;
}

/**
 * What a client is told of an error that is not its own doing (a bug, an INTERNAL error from
 * another thread): a stable text. The detail goes to the server's log (reportInternal), never
 * to the client: a JavaScript message or a path says nothing to a user and may say too much.
 */
export const INTERNAL_TEXT = 'internal error (see the server log)';

type InternalSink = (detail: string) => void;

/** Where internal errors are logged: stderr as one JSON line, unless the program sets a logger. */
let internalSink: InternalSink = (detail) => {
  process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'internal error answered to a client', detail })}\n`);
};

export function setInternalErrorSink(sink: InternalSink): void {
  internalSink = sink;
}

/** Logs an internal error's detail (never throws); answer INTERNAL_TEXT to the client. */
export function reportInternal(err: unknown): void {
  try {
    const e = err as { stack?: unknown; message?: unknown };
    internalSink(typeof e?.stack === 'string' ? e.stack : typeof e?.message === 'string' ? e.message : safeString(err));
  } catch {
    // Logging must not turn one failure into two.
  }
}
