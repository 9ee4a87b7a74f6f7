// A request body on its way to the volume writer: the bytes uWS hands in, queued with
// back-pressure, as an async iterable. uWS reuses a chunk's memory after its callback, so the
// bytes are copied, straight into 1 MiB buffers of the thread's stream pool, which the volume
// writer hands back: a body of any size moves through a few recycled buffers.
// Invariants:
// - at most BODY_HIGH_WATER bytes (plus one chunk) are queued: past it the socket is paused,
//   and resumed below BODY_LOW_WATER as the writer takes chunks;
// - once the last byte has arrived (complete), nothing the client does can fail the body: a
//   PUT whose body is whole is stored even if the connection goes right after it.
import type { HttpResponse } from 'uWebSockets.js';
import { streamChunks } from '../runtime/buffer_pool.js';

/** Body bytes queued for the volume writer before the socket is paused. */
export const BODY_HIGH_WATER = 3 * 1024 * 1024;
const BODY_LOW_WATER = 1024 * 1024;

export class BodyQueue implements AsyncIterable<Uint8Array> {
  private readonly chunks: Uint8Array[] = [];
  private filling: Uint8Array | null = null;
  private used = 0;
  private queued = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private paused = false;
  /** Told when the body ends, fails or fills the queue (what a chunked PUT waits for). */
  private settle: (() => void) | null = null;
  received = 0;
  /** When the last chunk arrived (ms, from the clock given to push), or 0. */
  lastChunkAt = 0;

  /** `onBytes` sees every body byte once, in order, as it arrives (the upload's digests). */
  constructor(private readonly res: HttpResponse, private readonly onBytes: (bytes: Uint8Array) => void = () => undefined) {}

  /** The whole body has arrived. */
  get complete(): boolean {
    return this.ended;
  }

  /** Refused, too large, stalled or gone: no more bytes are taken. */
  get failed(): boolean {
    return this.failure !== null;
  }

  /** The socket is paused because the queue is full: the client is not the one stalling. */
  get holding(): boolean {
    return this.paused;
  }

  push(chunk: ArrayBuffer, last: boolean, nowMs: number): void {
    if (this.failure !== null) return; // refused or gone: the bytes go nowhere
    this.lastChunkAt = nowMs;
    const bytes = new Uint8Array(chunk);
    this.onBytes(bytes);
    let at = 0;
    while (at < bytes.length) {
      this.filling ??= new Uint8Array(streamChunks.take());
      const n = Math.min(this.filling.length - this.used, bytes.length - at);
      this.filling.set(bytes.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
      if (this.used === this.filling.length) this.seal();
    }
    this.received += bytes.length;
    if (last) {
      if (this.filling !== null && this.used > 0) this.seal();
      this.ended = true;
    }
    if (!this.paused && this.queued > BODY_HIGH_WATER && !last) {
      this.paused = true;
      this.res.pause();
    }
    if (this.ended || this.paused) this.settled();
    this.wakeUp();
  }

  /** Resolves once the body has ended, failed, or filled the queue: then its kind is known. */
  whenSettled(): Promise<void> {
    if (this.ended || this.paused || this.failure !== null) return Promise.resolve();
    return new Promise((resolve) => (this.settle = resolve));
  }

  /** Ends the body with an error; after complete(), only a server-side failure may. */
  fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.chunks.length = 0;
    this.queued = 0;
    this.settled();
    this.wakeUp();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const chunk = this.chunks.shift();
      if (chunk !== undefined) {
        this.queued -= chunk.length;
        if (this.paused && this.queued < BODY_LOW_WATER && this.failure === null) {
          this.paused = false;
          this.res.resume();
        }
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private seal(): void {
    const full = this.used === this.filling!.length ? this.filling! : this.filling!.subarray(0, this.used);
    this.chunks.push(full);
    this.queued += full.length;
    this.filling = null;
    this.used = 0;
  }

  private settled(): void {
    const settle = this.settle;
    this.settle = null;
    settle?.();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
