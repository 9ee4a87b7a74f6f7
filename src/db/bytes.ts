// Checks at the API edge: a key and a value size within the limits. (Byte conversions are in
// runtime/bytes.ts.)
import type { Bytes, Limits } from './api.js';
import { StoreError } from '../runtime/errors.js';
import { toBuffer } from '../runtime/bytes.js';

export { fromMapKey, mapKey, toBuffer } from '../runtime/bytes.js';

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
