// The code of the StoreError a call throws: fails the test when it throws nothing or throws
// something that is not a StoreError (an untyped error is a bug: every operating error has a code).
import assert from 'node:assert/strict';
import { StoreError } from '../../src/runtime/errors.js';

export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StoreError, `not a StoreError: ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a StoreError');
}
