// Byte handling at the API edge: keys and values are bytes; strings are their UTF-8 bytes.
// Maps inside the database are keyed by the latin1 form of the key bytes, which is a
// lossless one-char-per-byte string, so binary keys never collide.
import type { Bytes, Limits } from './api.js';
import { StoreError } from '../runtime/errors.js';

export function toBuffer(value: Bytes): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** The map key of a byte key: lossless, one char per byte. */
export function mapKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export function fromMapKey(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

export function checkKey(key: Bytes, limits: Limits): Buffer {
  const bytes = toBuffer(key);
  if (bytes.length === 0) throw new StoreError('KEY_EMPTY', 'key is empty');
  if (bytes.length > limits.maxKeyLength) {
    throw new StoreError('KEY_TOO_LONG', `key is ${bytes.length} bytes; the limit is ${limits.maxKeyLength}`);
  }
  return bytes;
}

export function checkValueSize(size: number, limits: Limits): void {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new StoreError('BAD_ARGUMENT', `value size ${size} is not a non-negative integer`);
  }
  if (size > limits.maxValueSize) {
    throw new StoreError('VALUE_TOO_LARGE', `value is ${size} bytes; the limit is ${limits.maxValueSize}`);
  }
}
