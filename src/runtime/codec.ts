// The cbor-x codec, set up in ONE place for messages between threads of this process.
// Owns: encodeBatch/decodeBatch, the byte form of one postMessage worth of envelopes.
// Invariants:
// - Record structures are on (DESIGN §6: 1.2 µs vs 2.1–2.6 µs per small message) but are NOT
//   shared between encoder and decoder: each batch carries the definitions it uses, so a
//   batch decodes in any thread with no shared state. Within a batch, repeated shapes (the
//   same message type many times) pay for their keys once.
// - encodeBatch returns bytes in an ArrayBuffer of exactly their size (byteOffset 0), ready
//   to be transferred: cbor-x reuses its output buffer between calls, and transferring a
//   view would hand over (and detach) the encoder's whole 8 KB+ scratch buffer.
// - Byte strings decode as copies (copyBuffers), so a key a receiver keeps does not pin the
//   whole batch buffer it arrived in.
// Not for anything persisted or sent to another process: those formats must decode without
// this build (see docs/formats.md); this is only for thread-to-thread messages.
import { Decoder, Encoder } from 'cbor-x';
import { StoreError } from './errors.js';

/** A batch above this is a runaway producer, not traffic: refuse it loudly. */
export const MAX_BATCH_BYTES = 256 * 1024 * 1024;

const encoder = new Encoder({ useRecords: true, mapsAsObjects: true });
const decoder = new Decoder({ useRecords: true, mapsAsObjects: true, copyBuffers: true });

export function encodeBatch(messages: unknown[]): Uint8Array {
  const view = encoder.encode(messages);
  if (view.length > MAX_BATCH_BYTES) {
    throw new StoreError('BATCH_TOO_LARGE', `message batch of ${view.length} bytes exceeds ${MAX_BATCH_BYTES}`);
  }
  // new Uint8Array(view) copies into a fresh ArrayBuffer of exactly view.length bytes.
  return new Uint8Array(view);
}

export function decodeBatch(bytes: Uint8Array): unknown[] {
  const out: unknown = decoder.decode(bytes);
  if (!Array.isArray(out)) {
    throw new StoreError('CORRUPT', 'message batch is not a CBOR array');
  }
  return out;
}
