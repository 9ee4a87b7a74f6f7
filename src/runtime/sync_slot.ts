// A synchronous call between two threads over shared memory: the caller (an HTTP front end)
// writes a request into a SharedArrayBuffer and blocks, for a bounded time, on Atomics.wait
// until the server (an actor) has written the answer. Why: uWebSockets.js closes a connection
// whose next request it parses while the previous answer is still to come ("async
// pipelining"), so a front end that can answer a GET before its handler returns keeps pipelined
// requests working. Messages stay the rule; this is a fast path beside them, never instead:
// when the server does not answer in time the caller falls back to its message.
//
// Layout: Int32 words [state, seq, answeredSeq, length], then the payload (request, then
// answer, in place). States: IDLE → REQUEST (caller) → ANSWERED (server) → IDLE (caller).
// Invariants:
// - one call at a time per slot (a front end is one thread); the caller starts one only when
//   the slot is IDLE, so it never overwrites a request the server may be reading;
// - a caller that gave up leaves the slot in REQUEST; the server still answers it, and the
//   caller resets it to IDLE on its next call (the stale answer's seq is not the new one's);
// - the server never blocks: it waits with Atomics.waitAsync, between its messages, with a
//   timeout, so a stopping actor's thread is never held open by it.

const STATE = 0;
const SEQ = 1;
const ANSWERED_SEQ = 2;
const LENGTH = 3;
const HEADER_BYTES = 16;
const IDLE = 0;
const REQUEST = 1;
const ANSWERED = 2;
/** The server re-arms its wait this often, to see that it was stopped. */
const SERVER_POLL_MS = 1000;

export const SYNC_SLOT_BYTES = 64 * 1024;

/** Atomics.waitAsync (Node 16+; in TypeScript's ES2024 lib, which this build does not use). */
type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync(ta: Int32Array, index: number, value: number, timeoutMs: number): WaitAsyncResult }).waitAsync;

/** A slot's memory, made by whoever wires the two threads (it crosses in their configs). */
export function createSyncSlot(bytes = SYNC_SLOT_BYTES): SharedArrayBuffer {
  return new SharedArrayBuffer(bytes);
}

export class SyncSlotClient {
  private readonly ctrl: Int32Array;
  private readonly payload: Uint8Array;
  private seq = 0;

  constructor(buffer: SharedArrayBuffer) {
    this.ctrl = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.payload = new Uint8Array(buffer, HEADER_BYTES);
  }

  /** The answer's bytes (a copy), or null: busy, too big, or not answered within timeoutMs. */
  call(request: Uint8Array, timeoutMs: number): Uint8Array | null {
    if (request.length > this.payload.length) return null;
    const state = Atomics.load(this.ctrl, STATE);
    if (state === REQUEST) return null; // an abandoned call is still with the server
    if (state === ANSWERED) Atomics.store(this.ctrl, STATE, IDLE); // a late answer: dropped
    this.seq = (this.seq + 1) | 0;
    this.payload.set(request);
    Atomics.store(this.ctrl, LENGTH, request.length);
    Atomics.store(this.ctrl, SEQ, this.seq);
    Atomics.store(this.ctrl, STATE, REQUEST);
    Atomics.notify(this.ctrl, STATE);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      if (Atomics.load(this.ctrl, STATE) === ANSWERED || left <= 0) break;
      Atomics.wait(this.ctrl, STATE, REQUEST, left);
    }
    if (Atomics.load(this.ctrl, STATE) !== ANSWERED || Atomics.load(this.ctrl, ANSWERED_SEQ) !== this.seq) return null;
    const answer = this.payload.slice(0, Atomics.load(this.ctrl, LENGTH));
    Atomics.store(this.ctrl, STATE, IDLE);
    return answer;
  }
}

/**
 * Serves a slot on the current thread's event loop: `handle` gets each request's bytes and
 * answers bytes (or null: the caller falls back to its message). Answers that do not fit are
 * refused the same way. Returns the stop function.
 */
export function serveSyncSlot(buffer: SharedArrayBuffer, handle: (request: Uint8Array) => Uint8Array | null): () => void {
  const ctrl = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  const payload = new Uint8Array(buffer, HEADER_BYTES);
  let stopped = false;
  const answer = (): void => {
    const seq = Atomics.load(ctrl, SEQ);
    let reply: Uint8Array | null = null;
    try {
      reply = handle(payload.slice(0, Atomics.load(ctrl, LENGTH)));
    } catch {
      reply = null; // the caller asks again by message, and hears the error there
    }
    const fits = reply !== null && reply.length <= payload.length;
    if (fits) payload.set(reply!);
    Atomics.store(ctrl, LENGTH, fits ? reply!.length : 0);
    Atomics.store(ctrl, ANSWERED_SEQ, fits ? seq : -1);
    Atomics.store(ctrl, STATE, ANSWERED);
    Atomics.notify(ctrl, STATE);
  };
  const loop = async (): Promise<void> => {
    while (!stopped) {
      const state = Atomics.load(ctrl, STATE);
      if (state === REQUEST) {
        answer();
        continue;
      }
      const waited = waitAsync(ctrl, STATE, state, SERVER_POLL_MS);
      if (waited.async) await waited.value;
    }
  };
  void loop();
  return () => {
    stopped = true;
    Atomics.notify(ctrl, STATE); // wakes the pending waitAsync, so the loop ends now
  };
}
