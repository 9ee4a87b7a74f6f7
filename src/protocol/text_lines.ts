// The input side of the seed's line protocol (docs/text-protocol.md): bytes in, one command
// line at a time out. A line ends at LF; a CR before it is dropped (so `nc -C` and telnet work);
// blank lines are skipped, as the seed skipped them. No I/O: the connection pushes what it read.
// Invariants:
// - memory is bounded by the line limit: a line that grows past it is dropped as it arrives
//   (never buffered whole) and reported once, when its LF comes, as `too-long`; the lines after
//   it are read normally, so one bad line costs one error, not the connection;
// - every byte is looked at once while searching for LF (`scanned`), whatever the chunking.

export type LineEvent =
  | { kind: 'line'; line: Buffer }
  /** A line longer than the limit was dropped; `bytes` is how long it was (at least). */
  | { kind: 'too-long'; bytes: number }
  | { kind: 'need-more' };

const LF = 0x0a;
const CR = 0x0d;

export class LineReader {
  private chunks: Buffer[] = [];
  /** Bytes held in `chunks`. */
  private size = 0;
  /** Bytes at the start of `chunks` known to hold no LF. */
  private scanned = 0;
  /** Bytes dropped of the line being discarded; -1 when not discarding. */
  private discarded = -1;

  constructor(private maxLine: number) {}

  /** CONFIG SET changed the limit (or AUTH lifted the smaller one of an unauthenticated client). */
  setMaxLine(maxLine: number): void {
    this.maxLine = maxLine;
  }

  /** Bytes buffered and not yet returned as lines. */
  get buffered(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  next(): LineEvent {
    for (;;) {
      const at = this.findLf();
      if (at < 0) return this.noLineYet();
      const raw = this.take(at);
      if (this.discarded >= 0) {
        const bytes = this.discarded + raw.length;
        this.discarded = -1;
        return { kind: 'too-long', bytes };
      }
      const line = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
      if (line.length > this.maxLine) return { kind: 'too-long', bytes: line.length };
      if (isBlank(line)) continue;
      return { kind: 'line', line };
    }
  }

  /**
   * The client closed its side: what is left without an LF is its last line (the seed's
   * bufio.Scanner reads it too, so `printf 'GET a' | nc` is answered). Null when nothing is left.
   */
  rest(): LineEvent | null {
    if (this.discarded >= 0) {
      const bytes = this.discarded + this.size;
      this.clear();
      this.discarded = -1;
      return { kind: 'too-long', bytes };
    }
    if (this.size === 0) return null;
    const raw = this.take(this.size);
    const line = raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw;
    if (isBlank(line)) return null;
    return line.length > this.maxLine ? { kind: 'too-long', bytes: line.length } : { kind: 'line', line };
  }

  /** No LF in what is buffered: past the limit, drop it and remember the line is too long. */
  private noLineYet(): LineEvent {
    if (this.discarded >= 0) {
      this.discarded += this.size;
      this.clear();
    } else if (this.size > this.maxLine + 1) {
      // +1: the CR of a CRLF may sit alone at the end of the buffer.
      this.discarded = this.size;
      this.clear();
    }
    return { kind: 'need-more' };
  }

  /** Position of the first LF in the buffered bytes, or -1. */
  private findLf(): number {
    let base = 0;
    for (const c of this.chunks) {
      if (base + c.length > this.scanned) {
        const from = Math.max(0, this.scanned - base);
        const i = c.indexOf(LF, from);
        if (i >= 0) return base + i;
      }
      base += c.length;
    }
    this.scanned = this.size;
    return -1;
  }

  /** Removes `n` bytes and the LF after them (when there is one); answers the `n` bytes. */
  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    const out = all.subarray(0, n);
    const restStart = Math.min(all.length, n + 1);
    this.chunks = restStart < all.length ? [all.subarray(restStart)] : [];
    this.size = all.length - restStart;
    this.scanned = 0;
    return out;
  }

  private clear(): void {
    this.chunks = [];
    this.size = 0;
    this.scanned = 0;
  }
}

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== CR) return false;
  return true;
}
