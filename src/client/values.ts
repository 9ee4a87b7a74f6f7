// Conversions from the reply parser's RespValue to what the client's typed methods return.
// The only file of the client that knows the shape of RespValue, so a change to the parser
// touches this file alone. Each converter checks the shape and throws a ConnectionError
// (PROTOCOL_ERROR) on a reply of the wrong type: a client must never return a value of the
// wrong type silently (it would mean the stream is out of step with the requests).
//
// RESP2 and RESP3 forms are both accepted (a null bulk or a RESP3 null; a simple or bulk
// string; an integer, also as a bigint when it fits a double exactly).
import { RespError, RespPush, type RespValue } from '../protocol/resp_reply_parser.js';
import { BriseError, ConnectionError } from './errors.js';

function wrong(expected: string, value: RespValue): never {
  throw new ConnectionError('PROTOCOL_ERROR', `expected ${expected} in the reply, got ${describe(value)}`);
}

function describe(value: RespValue): string {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value)) return 'a bulk string';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value;
}

export function isNull(value: RespValue): boolean {
  return value === null;
}

export function asBuffer(value: RespValue): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return wrong('a string', value);
}

export function asBufferOrNull(value: RespValue): Buffer | null {
  return isNull(value) ? null : asBuffer(value);
}

export function asString(value: RespValue): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return wrong('a string', value);
}

export function asInteger(value: RespValue): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'bigint' && Number.isSafeInteger(Number(value))) return Number(value);
  return wrong('an integer', value);
}

export function asBoolean(value: RespValue): boolean {
  if (typeof value === 'boolean') return value;
  return asInteger(value) !== 0;
}

export function asArray(value: RespValue): readonly RespValue[] {
  if (Array.isArray(value)) return value as readonly RespValue[];
  return wrong('an array', value);
}

export function expectOk(value: RespValue): void {
  if (asString(value) !== 'OK') wrong('OK', value);
}

export function asBufferArray(value: RespValue): Buffer[] {
  return asArray(value).map(asBuffer);
}

export function asNullableBufferArray(value: RespValue): (Buffer | null)[] {
  return asArray(value).map(asBufferOrNull);
}

export interface ScanPage {
  /** The next cursor; '0' when the iteration is over. A string: Redis cursors are u64. */
  readonly cursor: string;
  readonly keys: Buffer[];
}

export function asScanPage(value: RespValue): ScanPage {
  const [cursor, keys] = asArray(value);
  if (cursor === undefined || keys === undefined) wrong('[cursor, keys]', value);
  return { cursor: asString(cursor), keys: asBufferArray(keys) };
}

export function isErrorReply(value: RespValue): boolean {
  return value instanceof RespError;
}

export function asBriseError(value: RespValue): BriseError {
  if (value instanceof RespError) return new BriseError(value.message, value.code);
  return wrong('an error', value);
}

/** The elements of a RESP3 push frame, or of the RESP2 array that carries the same message. */
export function pushItems(value: RespValue): readonly RespValue[] {
  if (value instanceof RespPush) return value.items;
  return asArray(value);
}
