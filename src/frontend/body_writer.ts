// A response body of known length handed to uWS with tryEnd, shared by the master's blob GETs
// (frontend/http_blobs.ts) and the volume server's reads (actors/volume_reads.ts). When uWS
// takes only part of a chunk, the rest is offered again from onWritable; write() resolves once
// the chunk is wholly taken (true) or the client is gone (false), so a reader never runs ahead
// of the socket. The status line and headers, when given to begin(), go with the first chunk:
// until then a failure can still be answered cleanly.
import type { HttpResponse } from 'uWebSockets.js';
import { statusLine, type ResponseState } from './http_util.js';

export class BodyWriter {
  /** The status line is out: a failure can only cut the connection now. */
  started = false;
  private head: [number, Record<string, string>] | null = null;
  private waiting: { chunk: Uint8Array; start: number; resolve: (taken: boolean) => void } | null = null;

  /** `total`: the body's length, when the status line and headers are already written. */
  constructor(
    private readonly res: HttpResponse,
    private readonly state: ResponseState,
    private total = 0,
  ) {
    res.onWritable(() => this.retry());
    state.onAbort = () => {
      const w = this.waiting;
      this.waiting = null;
      w?.resolve(false);
    };
  }

  /** Status and headers of a body of `total` bytes, sent with its first chunk. */
  begin(status: number, total: number, headers: Record<string, string>): void {
    this.head = [status, headers];
    this.total = total;
  }

  /** A whole answer without a body. */
  whole(status: number, headers: Record<string, string>): void {
    if (this.state.aborted || this.state.done) return;
    this.state.done = true;
    this.started = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const [name, value] of Object.entries(headers)) this.res.writeHeader(name, value);
      this.res.end();
    });
  }

  write(chunk: Uint8Array): Promise<boolean> | boolean {
    if (this.state.aborted) return false;
    let start = 0;
    let taken = false;
    this.res.cork(() => {
      if (this.head !== null) {
        this.started = true;
        this.res.writeStatus(statusLine(this.head[0]));
        for (const [name, value] of Object.entries(this.head[1])) this.res.writeHeader(name, value);
        this.head = null;
      }
      start = this.res.getWriteOffset();
      const [ok, done] = this.res.tryEnd(chunk, this.total);
      taken = ok || done;
      if (done) this.state.done = true;
    });
    if (taken) return true;
    return new Promise((resolve) => (this.waiting = { chunk, start, resolve }));
  }

  /** onWritable: offer what is left of the waiting chunk; true tells uWS it went out. */
  private retry(): boolean {
    const w = this.waiting;
    if (w === null || this.state.aborted) return true;
    const sent = this.res.getWriteOffset() - w.start;
    const [ok, done] = this.res.tryEnd(w.chunk.subarray(sent), this.total);
    if (done) this.state.done = true;
    if (ok || done) {
      this.waiting = null;
      w.resolve(true);
    }
    return ok || done;
  }
}
