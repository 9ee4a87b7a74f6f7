// A small pool of equal-size ArrayBuffers, one per thread, for streams: a 1 GB upload moves
// through a handful of buffers that go to the volume writer and come back (transferred both
// ways), instead of a thousand fresh ones that only a late GC returns. Bounded: at most
// `maxKept` idle buffers are kept; the rest are left to the GC.
export class BufferPool {
  private readonly free: ArrayBuffer[] = [];

  constructor(readonly size: number, private readonly maxKept = 16) {}

  take(): ArrayBuffer {
    return this.free.pop() ?? new ArrayBuffer(this.size);
  }

  /** Returns a buffer for reuse (ignored when it is of another size, detached, or the pool is full). */
  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength !== this.size || this.free.length >= this.maxKept) return;
    this.free.push(buffer);
  }

  get idle(): number {
    return this.free.length;
  }
}

/** The pool of upload chunks of this thread (front ends stream PUT bodies through it). */
export const STREAM_CHUNK_SIZE = 1024 * 1024;
export const streamChunks = new BufferPool(STREAM_CHUNK_SIZE);
