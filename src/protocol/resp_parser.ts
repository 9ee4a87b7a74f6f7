// The server side of RESP: client bytes -> commands. Pure (no I/O), one instance per
// connection. Multibulk (`*N\r\n$len\r\n<bytes>\r\n...`) and inline commands (a line not
// starting with '*', split like redis-cli's sdssplitargs), with the behaviour and the error
// wording of Redis' networking.c (processMultibulkBuffer, processInlineBuffer):
// - `*0` and negative counts (`*-1`, `*-5`) are an empty request and are skipped; so are
//   empty or blank inline lines;
// - a length line ends at the first CR, and the byte after it is skipped unchecked; the two
//   bytes after a bulk's data are skipped unchecked too (Redis does not check them either);
// - a count or length is parsed as Redis' string2ll: no sign '+', no leading zeros, no
//   spaces, within a signed 64-bit integer.
//
// Invariants (each checked by test/resp_parser.test.ts or property-tests/resp_fuzz.test.ts):
// - Never throws on any input; after one error the parser is dead and answers that error.
// - Never allocates by a declared length: a bulk is collected from the bytes that arrive, in
//   pieces (BulkAccumulator), and joined once when complete; arrays grow by push.
// - Chunking invariance: any split of a byte stream into push() calls gives the same commands
//   and the same final error. Every limit decision depends only on the bytes, never on where
//   a chunk ended (an unterminated line is "too big" exactly when its terminated form would be).
// - Bounded: `buffered` (unread bytes + the current command's bytes) never exceeds the bytes
//   pushed; a push taking it past maxQueryBuffer makes the next next() an error.
// - Zero copy in the common case: an argument is a subarray of the pushed chunk when the
//   whole bulk arrived in it. Bytes are never written after being handed out, so an argument
//   stays valid for as long as the caller holds it (chunks from sockets are fresh Buffers).
import { splitCommandLine } from './command_line.js';
import type { PreAuthLimits, RespParserLimits } from './tcp_limits.js';

export type ParseResult =
  | { kind: 'command'; args: Buffer[]; inline: boolean }
  | { kind: 'need-more' }
  | { kind: 'error'; message: string };

export const PROTOCOL_ERRORS = Object.freeze({
  invalidMultibulkLength: 'Protocol error: invalid multibulk length',
  invalidBulkLength: 'Protocol error: invalid bulk length',
  unauthenticatedMultibulkLength: 'Protocol error: unauthenticated multibulk length',
  unauthenticatedBulkLength: 'Protocol error: unauthenticated bulk length',
  tooBigMbulkCount: 'Protocol error: too big mbulk count string',
  tooBigBulkCount: 'Protocol error: too big bulk count string',
  tooBigInline: 'Protocol error: too big inline request',
  unbalancedQuotes: 'Protocol error: unbalanced quotes in request',
  queryBufferLimit: 'Protocol error: query buffer limit reached',
});

/** Redis' "expected '$', got 'x'" (CR and LF shown as spaces, as addReplyErrorFormat does). */
export function expectedDollar(byte: number): string {
  const c = byte === 0x0d || byte === 0x0a ? ' ' : String.fromCharCode(byte);
  return `Protocol error: expected '$', got '${c}'`;
}

const CR = 0x0d, LF = 0x0a, STAR = 0x2a, DOLLAR = 0x24;
const INT_MAX = 2147483647;
/** Redis' PROTO_MBULK_BIG_ARG: bulks from here on are collected in pieces, not by re-buffering. */
const BIG_ARG = 32 * 1024;
const EMPTY = Buffer.alloc(0);
const NEED_MORE: ParseResult = Object.freeze({ kind: 'need-more' });

// ---------------------------------------------------------------------------------------
// Shared pieces (also used by resp_reply_parser.ts)
// ---------------------------------------------------------------------------------------

/**
 * Redis' string2ll on buf[start, end): an optional '-', then "0" or a digit 1-9 and digits,
 * within a signed 64-bit integer. Returns null when Redis would reject it. Values beyond
 * 2^53 come back as the nearest double; callers only compare them with limits far below.
 */
export function string2ll(buf: Uint8Array, start: number, end: number): number | null {
  let p = start;
  const neg = buf[p] === 0x2d;
  if (neg) p++;
  const digits = end - p;
  if (digits <= 0 || digits > 19) return null;
  if (buf[p] === 0x30) return digits === 1 && !neg ? 0 : null;
  let v = 0;
  for (let q = p; q < end; q++) {
    const c = buf[q]! - 0x30;
    if (c < 0 || c > 9) return null;
    v = v * 10 + c;
  }
  if (digits >= 16) {
    // Exactness matters only at the int64 boundary; check it with BigInt (rare path).
    const big = BigInt(Buffer.from(buf.buffer, buf.byteOffset + p, digits).toString('latin1'));
    if (neg ? big > 9223372036854775808n : big > 9223372036854775807n) return null;
    return neg ? -Number(big) : Number(big);
  }
  return neg ? -v : v;
}

/**
 * Unread input: a window [pos, end) of `buf` plus chunks queued behind it. A chunk is adopted
 * without a copy when nothing is left unread; otherwise the unread tail and the chunk are put
 * together in an owned buffer, which is only ever appended to (never rewound), so subarrays
 * handed out earlier stay intact.
 */
export class ByteInput {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;
  /** Bytes in the queue. */
  queued = 0;
  /** True when buf[end..] is ours to append into. */
  private owned = false;
  private readonly queue: Buffer[] = [];

  /** Unread bytes, queued ones included. */
  get held(): number {
    return this.end - this.pos + this.queued;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.pos === this.end && this.queue.length === 0) this.adopt(chunk);
    else {
      this.queue.push(chunk);
      this.queued += chunk.length;
    }
  }

  /** The next queued chunk, removed from the queue; undefined when none. */
  shift(): Buffer | undefined {
    const chunk = this.queue.shift();
    if (chunk !== undefined) this.queued -= chunk.length;
    return chunk;
  }

  /** Moves the next queued chunk behind the unread bytes; false when none is queued. */
  pull(): boolean {
    const chunk = this.shift();
    if (chunk === undefined) return false;
    this.append(chunk);
    return true;
  }

  append(chunk: Buffer): void {
    const left = this.end - this.pos;
    if (left === 0) return this.adopt(chunk);
    if (this.owned && this.buf.length - this.end >= chunk.length) {
      chunk.copy(this.buf, this.end);
      this.end += chunk.length;
      return;
    }
    // Room for the slowly growing part (a line or small bulk arriving in drips) doubles, so
    // drip-fed input costs amortized O(1) per byte; a big chunk gets only what it needs.
    const next = Buffer.allocUnsafe(left + chunk.length + Math.max(4096, left));
    this.buf.copy(next, 0, this.pos, this.end);
    chunk.copy(next, left);
    this.buf = next;
    this.pos = 0;
    this.end = left + chunk.length;
    this.owned = true;
  }

  /** Drops the buffer once everything in it is read, so a consumed chunk is not kept alive. */
  release(): void {
    if (this.pos === this.end) this.adopt(EMPTY);
  }

  /** Index of `byte` in buf[from, end), or -1. */
  indexOf(byte: number, from: number): number {
    if (from >= this.end) return -1;
    const i = this.buf.indexOf(byte, from);
    return i < 0 || i >= this.end ? -1 : i;
  }

  private adopt(chunk: Buffer): void {
    this.buf = chunk;
    this.pos = 0;
    this.end = chunk.length;
    this.owned = false;
  }
}

/** Pieces smaller than this are copied into a staging buffer; bigger ones are kept as they are. */
const SMALL_PIECE = 16 * 1024;
/** Staging buffers are at most this big, whatever the declared length. */
const STAGE = 64 * 1024;

/**
 * A bulk of a declared length collected from the bytes as they arrive, followed by its CRLF. Memory follows the bytes received, never the declared length:
 * big pieces are referenced, small ones copied into staging buffers of at most 64 KiB; the
 * value is joined once, at the end.
 */
export class BulkAccumulator {
  /** Data bytes received so far. */
  have = 0;
  private readonly parts: Buffer[] = [];
  private stage: Buffer = EMPTY;
  private stageStart = 0;
  private stagePos = 0;
  /** CRLF bytes still to skip after the data. */
  private trailer = 2;
  /** Set when checkTrailer is on and the two bytes after the data were not CRLF. */
  badTrailer = false;

  /** checkTrailer: the client side checks the CRLF; the server side skips it unchecked, as Redis does. */
  constructor(readonly length: number, private readonly checkTrailer = false) {}

  get done(): boolean {
    return this.have === this.length && this.trailer === 0;
  }

  /** Takes what it still needs from src[from, to); returns the number of bytes taken. */
  feed(src: Buffer, from: number, to: number): number {
    let p = from;
    const want = Math.min(this.length - this.have, to - p);
    if (want > 0) {
      this.add(src, p, p + want);
      p += want;
    }
    while (this.have === this.length && this.trailer > 0 && p < to) {
      if (this.checkTrailer && src[p] !== (this.trailer === 2 ? CR : LF)) this.badTrailer = true;
      this.trailer--;
      p++;
    }
    return p - from;
  }

  /** The whole value; call once, when done. */
  value(): Buffer {
    this.flushStage();
    if (this.parts.length === 1) return this.parts[0]!;
    return Buffer.concat(this.parts, this.length);
  }

  private add(src: Buffer, from: number, to: number): void {
    if (to - from >= SMALL_PIECE) {
      this.flushStage();
      this.parts.push(src.subarray(from, to));
      this.have += to - from;
      return;
    }
    while (from < to) {
      if (this.stagePos === this.stage.length) {
        this.flushStage();
        this.stage = Buffer.allocUnsafe(Math.min(STAGE, this.length - this.have));
        this.stageStart = 0;
        this.stagePos = 0;
      }
      const n = Math.min(to - from, this.stage.length - this.stagePos);
      src.copy(this.stage, this.stagePos, from, from + n);
      this.stagePos += n;
      this.have += n;
      from += n;
    }
  }

  private flushStage(): void {
    if (this.stagePos > this.stageStart) {
      this.parts.push(this.stage.subarray(this.stageStart, this.stagePos));
      this.stageStart = this.stagePos;
    }
  }
}

// ---------------------------------------------------------------------------------------
// The command parser
// ---------------------------------------------------------------------------------------

const S_START = 0, S_ARGS = 1, S_BIG = 2;
/** lengthLine results besides a value >= 0. */
const LINE_NEED = -1, LINE_ERROR = -2;
/** A request was consumed without producing a command (an empty one): keep going. */
const SKIPPED = Symbol('skipped');

export class RespCommandParser {
  private limits: RespParserLimits;
  private readonly input = new ByteInput();
  private state = S_START;
  /** Arguments of the multibulk being collected, and how many are still to come. */
  private args: Buffer[] = [];
  private argsLeft = 0;
  private argBytes = 0;
  /** Length of the bulk being read, -1 before its `$` line. */
  private bulkLen = -1;
  private big: BulkAccumulator | null = null;
  /** Bytes from input.pos known to hold no line terminator (so a drip-fed line is not rescanned). */
  private scanned = 0;
  private overLimit = false;
  private failure: ParseResult | null = null;
  private preAuth: PreAuthLimits | null = null;

  constructor(limits: RespParserLimits) {
    this.limits = { ...limits };
  }

  setLimits(limits: Partial<RespParserLimits>): void {
    this.limits = { ...this.limits, ...limits };
  }

  /**
   * The smaller limits of a client that has not authenticated (null once it has), checked as
   * Redis checks them: after the ordinary limits, with their own error texts.
   */
  setPreAuthLimits(limits: PreAuthLimits | null): void {
    this.preAuth = limits === null ? null : { ...limits };
  }

  /** Bytes held: unread input plus the command being collected. */
  get buffered(): number {
    return this.input.held + this.argBytes + (this.big === null ? 0 : this.big.have);
  }

  /** Never throws. After an error, input is dropped. */
  push(chunk: Buffer): void {
    if (this.failure !== null) return;
    this.input.push(chunk);
    if (this.buffered > this.limits.maxQueryBuffer) this.overLimit = true;
  }

  /** The next command, need-more, or the error that ends this connection (then always that error). */
  next(): ParseResult {
    if (this.failure !== null) return this.failure;
    if (this.overLimit) return this.fail(PROTOCOL_ERRORS.queryBufferLimit);
    for (;;) {
      const r = this.step();
      if (r !== null) return r;
      if (!this.feed()) {
        this.input.release();
        return NEED_MORE;
      }
    }
  }

  /** Brings in the next queued chunk; a big bulk takes its bytes directly, without re-buffering. */
  private feed(): boolean {
    const input = this.input;
    if (this.state !== S_BIG || input.pos !== input.end) return input.pull();
    const chunk = input.shift();
    if (chunk === undefined) return false;
    const taken = this.big!.feed(chunk, 0, chunk.length);
    if (taken < chunk.length) input.append(chunk.subarray(taken));
    return true;
  }

  /** Parses from the buffered bytes: a result, or null when they run out. */
  private step(): ParseResult | null {
    for (;;) {
      let r: ParseResult | null | typeof SKIPPED;
      if (this.state === S_START) {
        const input = this.input;
        if (input.pos >= input.end) return null;
        r = input.buf[input.pos] === STAR ? this.startMultibulk() : this.inline();
      } else if (this.state === S_ARGS) {
        r = this.readArgs();
      } else {
        r = this.readBig();
      }
      if (r !== SKIPPED) return r;
    }
  }

  private startMultibulk(): ParseResult | null | typeof SKIPPED {
    const n = this.lengthLine(STAR);
    if (n === LINE_NEED) return null;
    if (n === LINE_ERROR) return this.failure;
    if (n === 0) return SKIPPED;
    this.state = S_ARGS;
    this.argsLeft = n;
    return this.readArgs();
  }

  /** Reads `$len` lines and their data until the command is complete or the bytes run out. */
  private readArgs(): ParseResult | null {
    const input = this.input;
    while (this.argsLeft > 0) {
      if (this.bulkLen < 0) {
        const len = this.lengthLine(DOLLAR);
        if (len === LINE_NEED) return null;
        if (len === LINE_ERROR) return this.failure;
        this.bulkLen = len;
      }
      const pos = input.pos;
      const len = this.bulkLen;
      if (input.end - pos >= len + 2) {
        this.addArg(input.buf.subarray(pos, pos + len));
        input.pos = pos + len + 2;
        continue;
      }
      if (len >= BIG_ARG) {
        this.big = new BulkAccumulator(len);
        input.pos += this.big.feed(input.buf, pos, input.end);
        this.state = S_BIG;
      }
      return null;
    }
    return this.complete();
  }

  private readBig(): ParseResult | null {
    const input = this.input;
    const big = this.big!;
    input.pos += big.feed(input.buf, input.pos, input.end);
    if (!big.done) return null;
    this.big = null;
    this.state = S_ARGS;
    this.addArg(big.value());
    return this.readArgs();
  }

  private addArg(arg: Buffer): void {
    this.args.push(arg);
    this.argBytes += arg.length;
    this.argsLeft--;
    this.bulkLen = -1;
  }

  private complete(): ParseResult {
    const args = this.args;
    this.args = [];
    this.argBytes = 0;
    this.state = S_START;
    return { kind: 'command', args, inline: false };
  }

  /**
   * A `*N` or `$N` line at input.pos: N (negative counts as 0), LINE_NEED, or LINE_ERROR.
   * The fast path takes a plain line of digits; anything else goes the slow, exact way.
   */
  private lengthLine(type: number): number {
    const { buf, pos, end } = this.input;
    if (buf[pos] === type && pos + 1 < end) {
      let q = pos + 1;
      let v = 0;
      const first = buf[q]!;
      if (first >= 0x31 && first <= 0x39 || (first === 0x30 && q + 1 < end && buf[q + 1] === CR)) {
        while (q < end && q - pos <= 10) {
          const c = buf[q]! - 0x30;
          if (c < 0 || c > 9) break;
          v = v * 10 + c;
          q++;
        }
        if (q + 1 < end && buf[q] === CR && q - pos <= this.limits.maxInlineLength) {
          this.input.pos = q + 2;
          this.scanned = 0;
          return this.checkLength(type, v);
        }
      }
    }
    return this.lengthLineSlow(type);
  }

  private lengthLineSlow(type: number): number {
    const input = this.input;
    const { buf, pos, end } = input;
    const max = this.limits.maxInlineLength;
    const tooBig = type === STAR ? PROTOCOL_ERRORS.tooBigMbulkCount : PROTOCOL_ERRORS.tooBigBulkCount;
    const cr = input.indexOf(CR, pos + this.scanned);
    if (cr < 0) {
      this.scanned = end - pos;
      if (end - pos > max) return this.failLine(tooBig);
      return LINE_NEED;
    }
    this.scanned = cr - pos;
    if (cr - pos > max) return this.failLine(tooBig);
    if (cr + 1 >= end) return LINE_NEED;
    if (buf[pos] !== type) return this.failLine(expectedDollar(buf[pos]!));
    const v = string2ll(buf, pos + 1, cr);
    input.pos = cr + 2;
    this.scanned = 0;
    if (v === null) return this.failLine(type === STAR ? PROTOCOL_ERRORS.invalidMultibulkLength : PROTOCOL_ERRORS.invalidBulkLength);
    return this.checkLength(type, v);
  }

  private checkLength(type: number, v: number): number {
    if (type === STAR) {
      if (v > INT_MAX || v > this.limits.maxMultibulkCount) return this.failLine(PROTOCOL_ERRORS.invalidMultibulkLength);
      if (this.preAuth !== null && v > this.preAuth.maxMultibulkCount) return this.failLine(PROTOCOL_ERRORS.unauthenticatedMultibulkLength);
      return v < 0 ? 0 : v;
    }
    if (v < 0 || v > this.limits.maxBulkLength) return this.failLine(PROTOCOL_ERRORS.invalidBulkLength);
    if (this.preAuth !== null && v > this.preAuth.maxBulkLength) return this.failLine(PROTOCOL_ERRORS.unauthenticatedBulkLength);
    return v;
  }

  /** One inline command line: split like redis-cli; a blank line is skipped. */
  private inline(): ParseResult | null | typeof SKIPPED {
    const input = this.input;
    const { buf, pos, end } = input;
    const max = this.limits.maxInlineLength;
    const lf = input.indexOf(LF, pos + this.scanned);
    if (lf < 0) {
      this.scanned = end - pos;
      // A trailing CR may yet be stripped as part of CRLF: not counted, so that the unfinished
      // line is too big exactly when the finished one will be.
      const len = end - pos - (buf[end - 1] === CR ? 1 : 0);
      return len > max ? this.fail(PROTOCOL_ERRORS.tooBigInline) : null;
    }
    const lineEnd = lf > pos && buf[lf - 1] === CR ? lf - 1 : lf;
    input.pos = lf + 1;
    this.scanned = 0;
    if (lineEnd - pos > max) return this.fail(PROTOCOL_ERRORS.tooBigInline);
    const split = splitCommandLine(buf.subarray(pos, lineEnd), { maxLineBytes: max, maxArgs: lineEnd - pos + 1 });
    if (!split.ok) {
      return this.fail(split.error.code === 'UNBALANCED_QUOTES' ? PROTOCOL_ERRORS.unbalancedQuotes : PROTOCOL_ERRORS.tooBigInline);
    }
    if (split.args.length === 0) return SKIPPED;
    return { kind: 'command', args: split.args, inline: true };
  }

  private failLine(message: string): number {
    this.fail(message);
    return LINE_ERROR;
  }

  /** Kills the parser: the error is final, buffered input is dropped. */
  private fail(message: string): ParseResult {
    this.failure = Object.freeze({ kind: 'error', message });
    this.args = [];
    this.argBytes = 0;
    this.big = null;
    const input = this.input;
    while (input.shift() !== undefined);
    input.pos = input.end;
    input.release();
    return this.failure;
  }
}
