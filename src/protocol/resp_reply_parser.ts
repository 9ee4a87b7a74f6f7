// The client side of RESP: server bytes -> JS values, RESP2 and RESP3. Pure (no I/O), one
// instance per connection; used by src/client and by the tests.
//
// Mapping:  +simple -> string;  -error and !blob error -> RespError;  :integer -> number (a
// bigint beyond 2^53);  $bulk -> Buffer ($-1 -> null);  *array -> RespValue[] (*-1 -> null);
// _ -> null;  ,double -> number (inf, -inf, nan);  #t/#f -> boolean;  (big number -> bigint;
// =verbatim -> Buffer of the text without its "txt:" format;  %map -> Map (keys compare by
// identity: a Buffer key is found by iterating, not by get);  ~set -> RespValue[];
// >push -> RespPush;  |attributes are read and dropped.
//
// Invariants:
// - Incremental: partial aggregates are kept on an explicit stack (no recursion, so a deep
//   nesting cannot overflow the JS stack; the depth is capped by maxDepth) and a value is
//   never re-parsed from its start when more bytes arrive.
// - Never allocates by a declared length: bulks are collected as the bytes arrive
//   (BulkAccumulator), aggregates grow by push.
// - Bounded: lines by maxLineLength, bulks by maxBulkLength, aggregates by
//   maxAggregateCount, nesting by maxDepth, bytes held by maxBuffered.
// - A protocol error throws RespProtocolError from next(); the parser is then dead and
//   throws it again on every call (the connection must be closed).
import { BulkAccumulator, ByteInput, string2ll } from './resp_parser.js';

export type RespValue =
  | string
  | number
  | bigint
  | Buffer
  | null
  | boolean
  | RespValue[]
  | Map<RespValue, RespValue>
  | RespError
  | RespPush;

/** An error reply (-ERR ..., !len blob error). `message` is the whole line, `code` its first word. */
export class RespError extends Error {
  readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = 'RespError';
    const space = message.indexOf(' ');
    this.code = space < 0 ? message : message.slice(0, space);
  }
}

/** An out-of-band RESP3 push frame (>), e.g. a pub/sub message. */
export class RespPush {
  constructor(readonly items: RespValue[]) {}
}

/** The server sent bytes that are not RESP; the connection must be closed. */
export class RespProtocolError extends Error {
  readonly code = 'PROTOCOL_ERROR';

  constructor(message: string) {
    super(message);
    this.name = 'RespProtocolError';
  }
}

export interface RespReplyParserLimits {
  maxBulkLength: number;
  /** Elements in one aggregate (a map counts its pairs). */
  maxAggregateCount: number;
  /** A +simple, -error, :integer (and other one-line types) line. */
  maxLineLength: number;
  /** Nesting of aggregates. */
  maxDepth: number;
  /** Bytes held at once: unread input plus the bulk being collected. */
  maxBuffered: number;
}

export const DEFAULT_REPLY_PARSER_LIMITS: Readonly<RespReplyParserLimits> = Object.freeze({
  maxBulkLength: 512 * 1024 * 1024,
  maxAggregateCount: 2147483647,
  maxLineLength: 1024 * 1024,
  maxDepth: 512,
  maxBuffered: 1024 * 1024 * 1024,
});

const CR = 0x0d, LF = 0x0a;
const T_SIMPLE = 0x2b, T_ERROR = 0x2d, T_INTEGER = 0x3a, T_BULK = 0x24, T_ARRAY = 0x2a;
const T_NULL = 0x5f, T_DOUBLE = 0x2c, T_BOOLEAN = 0x23, T_BLOB_ERROR = 0x21, T_VERBATIM = 0x3d;
const T_BIGNUM = 0x28, T_MAP = 0x25, T_SET = 0x7e, T_ATTRIBUTE = 0x7c, T_PUSH = 0x3e;
/** Bulks from this size on are collected in pieces rather than by re-buffering. */
const BIG_BULK = 32 * 1024;

interface Frame {
  readonly type: number;
  /** Elements still to come (a map or attribute: 2 per pair). */
  left: number;
  readonly items: RespValue[];
}

/** Nothing to deliver yet (an element went into an aggregate, or an attribute was dropped). */
const NONE = Symbol('none');
/** The bytes ran out. */
const NEED = Symbol('need');
type Step = RespValue | typeof NONE | typeof NEED;

export class RespReplyParser {
  private readonly limits: RespReplyParserLimits;
  private readonly input = new ByteInput();
  private readonly stack: Frame[] = [];
  /** The bulk being read: its type byte and length, -1 when reading a line. */
  private bulkType = 0;
  private bulkLen = -1;
  private big: BulkAccumulator | null = null;
  private scanned = 0;
  private failure: RespProtocolError | null = null;

  constructor(limits: Partial<RespReplyParserLimits> = {}) {
    this.limits = { ...DEFAULT_REPLY_PARSER_LIMITS, ...limits };
  }

  get buffered(): number {
    return this.input.held + (this.big === null ? 0 : this.big.have);
  }

  push(chunk: Buffer): void {
    if (this.failure !== null) return;
    this.input.push(chunk);
  }

  /** The next complete reply, or null when more bytes are needed. Throws RespProtocolError. */
  next(): { value: RespValue } | null {
    if (this.failure !== null) throw this.failure;
    if (this.buffered > this.limits.maxBuffered) this.fail(`more than ${this.limits.maxBuffered} bytes buffered`);
    for (;;) {
      const v = this.step();
      if (v !== NEED && v !== NONE) return { value: v };
      if (!this.feed()) {
        this.input.release();
        return null;
      }
    }
  }

  private feed(): boolean {
    const input = this.input;
    if (this.big === null || input.pos !== input.end) return input.pull();
    const chunk = input.shift();
    if (chunk === undefined) return false;
    const taken = this.big.feed(chunk, 0, chunk.length);
    if (taken < chunk.length) input.append(chunk.subarray(taken));
    return true;
  }

  /** Parses until a top-level value is complete (returned) or the bytes run out (NEED). */
  private step(): Step {
    for (;;) {
      const v = this.bulkLen >= 0 ? this.readBulk() : this.readLine();
      if (v === NEED) return NEED;
      const top = this.deliver(v);
      if (top !== NONE) return top;
    }
  }

  /** One type byte and its line: a scalar, NONE after opening a bulk or an aggregate, or NEED. */
  private readLine(): Step {
    const input = this.input;
    const { buf, pos, end } = input;
    if (pos >= end) return NEED;
    // The type byte is not counted in maxLineLength.
    const max = this.limits.maxLineLength + 1;
    const cr = input.indexOf(CR, pos + this.scanned);
    if (cr < 0) {
      this.scanned = end - pos;
      if (end - pos > max) this.fail(`reply line longer than ${max - 1} bytes`);
      return NEED;
    }
    this.scanned = cr - pos;
    if (cr - pos > max) this.fail(`reply line longer than ${max - 1} bytes`);
    if (cr + 1 >= end) return NEED;
    if (buf[cr + 1] !== LF) this.fail('CR not followed by LF');
    input.pos = cr + 2;
    this.scanned = 0;
    return this.scalarOrOpen(buf[pos]!, buf, pos + 1, cr);
  }

  private scalarOrOpen(type: number, buf: Buffer, from: number, to: number): Step {
    switch (type) {
      case T_SIMPLE: return buf.toString('utf8', from, to);
      case T_ERROR: return new RespError(buf.toString('utf8', from, to));
      case T_INTEGER: return this.integer(buf, from, to);
      case T_NULL:
        if (to !== from) this.fail('null with a payload');
        return null;
      case T_DOUBLE: return this.double(buf.toString('latin1', from, to));
      case T_BOOLEAN: return this.boolean(buf, from, to);
      case T_BIGNUM: return this.bignum(buf.toString('latin1', from, to));
      case T_BULK:
      case T_VERBATIM:
      case T_BLOB_ERROR: return this.openBulk(type, string2ll(buf, from, to));
      case T_ARRAY:
      case T_MAP:
      case T_SET:
      case T_PUSH:
      case T_ATTRIBUTE: return this.openAggregate(type, string2ll(buf, from, to));
      default: return this.fail(`unknown reply type byte 0x${type.toString(16).padStart(2, '0')}`);
    }
  }

  private integer(buf: Buffer, from: number, to: number): number | bigint {
    const v = string2ll(buf, from, to);
    if (v === null) this.fail('invalid integer');
    if (Number.isSafeInteger(v)) return v;
    return BigInt(buf.toString('latin1', from, to));
  }

  private double(text: string): number {
    if (text === 'inf' || text === '+inf') return Infinity;
    if (text === '-inf') return -Infinity;
    if (text === 'nan' || text === '-nan') return NaN;
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) this.fail(`invalid double ${JSON.stringify(text.slice(0, 40))}`);
    return Number(text);
  }

  private boolean(buf: Buffer, from: number, to: number): boolean {
    if (to - from === 1 && buf[from] === 0x74) return true;
    if (to - from === 1 && buf[from] === 0x66) return false;
    return this.fail('invalid boolean');
  }

  private bignum(text: string): bigint {
    if (!/^-?\d+$/.test(text)) this.fail('invalid big number');
    return BigInt(text);
  }

  private openBulk(type: number, len: number | null): Step {
    if (len === -1 && type === T_BULK) return null;
    if (len === null || len < 0 || len > this.limits.maxBulkLength) return this.fail('invalid bulk length');
    if (type === T_VERBATIM && len < 4) this.fail('verbatim string shorter than its format');
    this.bulkType = type;
    this.bulkLen = len;
    return NONE;
  }

  private openAggregate(type: number, n: number | null): Step {
    if (n === -1 && type === T_ARRAY) return null;
    if (n === null || n < 0 || n > this.limits.maxAggregateCount) return this.fail('invalid aggregate length');
    if (n === 0) return this.build(type, []);
    if (this.stack.length >= this.limits.maxDepth) this.fail(`replies nested deeper than ${this.limits.maxDepth}`);
    const pairs = type === T_MAP || type === T_ATTRIBUTE;
    this.stack.push({ type, left: pairs ? n * 2 : n, items: [] });
    return NONE;
  }

  private readBulk(): Step {
    const input = this.input;
    const len = this.bulkLen;
    if (this.big === null) {
      if (input.end - input.pos >= len + 2) {
        const data = input.buf.subarray(input.pos, input.pos + len);
        if (input.buf[input.pos + len] !== CR || input.buf[input.pos + len + 1] !== LF) this.fail('bulk not followed by CRLF');
        input.pos += len + 2;
        return this.finishBulk(data);
      }
      if (len < BIG_BULK) return NEED;
      this.big = new BulkAccumulator(len, true);
    }
    input.pos += this.big.feed(input.buf, input.pos, input.end);
    if (!this.big.done) return NEED;
    if (this.big.badTrailer) this.fail('bulk not followed by CRLF');
    const data = this.big.value();
    this.big = null;
    return this.finishBulk(data);
  }

  private finishBulk(data: Buffer): Step {
    const type = this.bulkType;
    this.bulkLen = -1;
    if (type === T_BLOB_ERROR) return new RespError(data.toString('utf8'));
    if (type === T_VERBATIM) {
      if (data[3] !== 0x3a) this.fail('verbatim string without its format');
      return data.subarray(4);
    }
    return data;
  }

  /** Puts a value into the open aggregate; returns a completed top-level value, or NONE. */
  private deliver(v: RespValue | typeof NONE): RespValue | typeof NONE {
    let value = v;
    for (;;) {
      if (value === NONE) return NONE;
      const top = this.stack[this.stack.length - 1];
      if (top === undefined) return value;
      top.items.push(value);
      if (--top.left > 0) return NONE;
      this.stack.pop();
      value = this.build(top.type, top.items);
    }
  }

  private build(type: number, items: RespValue[]): RespValue | typeof NONE {
    switch (type) {
      case T_MAP: {
        const m = new Map<RespValue, RespValue>();
        for (let i = 0; i < items.length; i += 2) m.set(items[i]!, items[i + 1]!);
        return m;
      }
      case T_PUSH: return new RespPush(items);
      case T_ATTRIBUTE: return NONE; // metadata about the next value: dropped
      default: return items;
    }
  }

  private fail(message: string): never {
    this.failure = new RespProtocolError(`Protocol error: ${message}`);
    throw this.failure;
  }
}
