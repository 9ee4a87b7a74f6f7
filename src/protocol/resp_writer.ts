// RESP serialization of replies (server -> client) and of commands (client -> server). Pure:
// bytes in memory, no I/O.
//
// ReplyWriter is the fast path of the reply side: replies are appended into a slab (one
// Buffer.allocUnsafe, reused for many replies and many take() calls) and handed out as
// subarrays of it, so a pipeline of 16 replies costs no allocation beyond the result objects.
// Big bulk values (>= BIG_BULK) are not copied: they become chunks of their own beside the
// slab's bytes, for a writev (takeChunks) or one final concat (take).
//
// Invariants:
// - Bytes handed out by take()/takeChunks() are never written again: the writer only appends
//   past them, and a full slab is replaced by a new one, never rewound. So the caller may pass
//   them to socket.write and forget them.
// - Nothing is ever allocated from a declared size of a peer: sizes here are of replies the
//   server built.
// - RESP2 downgrades of the RESP3 kinds are those of Redis (map -> flat array, set and push ->
//   array, double -> bulk, boolean -> :1/:0, nil -> $-1, verbatim -> bulk); in RESP3 a null
//   bulk and a null array are both `_`, as Redis 6+ writes them.
// - A simple string or error written here never contains CR or LF (replaced by spaces, as
//   Redis' addReplyError does), even when it did not come through reply.ts' constructors.
import { formatDouble, type Reply } from './reply.js';

export type Proto = 2 | 3;

/** Bulk values at least this big are referenced as chunks of their own instead of copied. */
export const BIG_BULK = 64 * 1024;

/** Default slab size: Redis' per-client static reply buffer is 16 KiB too. */
export const DEFAULT_SLAB = 16 * 1024;

const CR = 0x0d, LF = 0x0a;
const EMPTY = Buffer.alloc(0);

function oneLine(text: string): string {
  return text.includes('\r') || text.includes('\n') ? text.replace(/[\r\n]/g, ' ') : text;
}

/** Decimal digits of a non-negative safe integer. */
function digitCount(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

export class ReplyWriter {
  private slab: Buffer = EMPTY;
  /** Start of the bytes in the slab not yet handed out. */
  private start = 0;
  /** Write position in the slab. */
  private pos = 0;
  /** Finished pieces before the slab's pending bytes: old slab tails and big bulk values. */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;
  private readonly slabSize: number;

  constructor(initial: number = DEFAULT_SLAB) {
    if (!Number.isSafeInteger(initial) || initial < 64) throw new RangeError(`slab size too small: ${initial}`);
    this.slabSize = initial;
  }

  /** Bytes written and not yet taken. */
  get length(): number {
    return this.chunkBytes + (this.pos - this.start);
  }

  /** The bytes so far as one Buffer (a subarray of the slab when there are no chunks); resets. */
  take(): Buffer {
    if (this.chunks.length === 0) {
      const out = this.slab.subarray(this.start, this.pos);
      this.start = this.pos;
      return out;
    }
    return Buffer.concat(this.takeChunks());
  }

  /** The bytes so far as a list of Buffers for writev, big values uncopied; resets. */
  takeChunks(): Buffer[] {
    this.flushPending();
    const out = this.chunks;
    this.chunks = [];
    this.chunkBytes = 0;
    return out;
  }

  // ---- one reply at a time ----

  reply(r: Reply, proto: Proto): void {
    switch (r.kind) {
      case 'simple': return this.simple(r.value);
      case 'error': return this.error(r.message);
      case 'integer': return this.integer(r.value);
      case 'bulk': return this.bulk(r.value, proto);
      case 'array': return this.array(r.items, proto);
      case 'map': return this.map(r.pairs, proto);
      case 'set': return this.aggregate(proto === 3 ? 0x7e : 0x2a, r.items, proto);
      case 'push': return this.aggregate(proto === 3 ? 0x3e : 0x2a, r.items, proto);
      case 'double': return this.double(r.value, proto);
      case 'boolean': return this.boolean(r.value, proto);
      case 'nil': return this.nil(proto);
      case 'verbatim': return this.verbatim(r.format, r.value, proto);
    }
  }

  ok(): void {
    this.ensure(5);
    const b = this.slab;
    let p = this.pos;
    b[p++] = 0x2b; b[p++] = 0x4f; b[p++] = 0x4b; b[p++] = CR; b[p++] = LF;
    this.pos = p;
  }

  simple(s: string): void {
    this.line(0x2b, oneLine(s));
  }

  /** An error line; the message carries its code word, e.g. "ERR syntax error". */
  error(msg: string): void {
    this.line(0x2d, oneLine(msg));
  }

  integer(n: number | bigint): void {
    if (typeof n === 'bigint') this.line(0x3a, n.toString());
    else this.header(0x3a, n);
  }

  bulk(buf: Uint8Array | null, proto: Proto): void {
    if (buf === null) return this.nil(proto);
    this.header(0x24, buf.length);
    this.payload(buf);
    this.crlf();
  }

  arrayHeader(n: number): void {
    this.header(0x2a, n);
  }

  /** A map of `pairs` entries follows (2 × pairs replies); a flat array in RESP2. */
  mapHeader(pairs: number, proto: Proto): void {
    if (proto === 3) this.header(0x25, pairs);
    else this.header(0x2a, pairs * 2);
  }

  /** A push frame of n items follows (pub/sub in RESP3); an array in RESP2. */
  pushHeader(n: number, proto: Proto): void {
    this.header(proto === 3 ? 0x3e : 0x2a, n);
  }

  double(d: number, proto: Proto): void {
    const text = formatDouble(d);
    if (proto === 3) return this.line(0x2c, text);
    this.header(0x24, text.length);
    this.ensure(text.length);
    this.ascii(text);
    this.crlf();
  }

  boolean(v: boolean, proto: Proto): void {
    if (proto === 3) return this.line(0x23, v ? 't' : 'f');
    this.header(0x3a, v ? 1 : 0);
  }

  /** RESP3 `_`; RESP2 null bulk `$-1`. */
  nil(proto: Proto): void {
    if (proto === 3) return this.line(0x5f, '');
    this.ensure(5);
    this.ascii('$-1\r\n');
  }

  /** A null array: `*-1` in RESP2, `_` in RESP3. */
  nullArray(proto: Proto): void {
    if (proto === 3) return this.line(0x5f, '');
    this.ensure(5);
    this.ascii('*-1\r\n');
  }

  verbatim(format: string, value: Uint8Array, proto: Proto): void {
    if (proto === 2) return this.bulk(value, 2);
    if (!/^[\x20-\x39\x3b-\x7e]{3}$/.test(format)) throw new RangeError(`verbatim format must be 3 ASCII bytes: ${JSON.stringify(format)}`);
    this.header(0x3d, value.length + 4);
    this.ensure(4);
    this.ascii(format + ':');
    this.payload(value);
    this.crlf();
  }

  // ---- private helpers ----

  private array(items: readonly Reply[] | null, proto: Proto): void {
    if (items === null) return this.nullArray(proto);
    this.aggregate(0x2a, items, proto);
  }

  private aggregate(type: number, items: readonly Reply[], proto: Proto): void {
    this.header(type, items.length);
    for (const item of items) this.reply(item, proto);
  }

  private map(pairs: readonly (readonly [Reply, Reply])[], proto: Proto): void {
    this.mapHeader(pairs.length, proto);
    for (const [k, v] of pairs) {
      this.reply(k, proto);
      this.reply(v, proto);
    }
  }

  /** A type byte, a decimal integer, CRLF: every length header and `:n`. */
  private header(type: number, n: number): void {
    if (!Number.isSafeInteger(n)) throw new RangeError(`RESP integer is not a safe integer: ${n}`);
    const neg = n < 0;
    const abs = neg ? -n : n;
    const digits = digitCount(abs);
    this.ensure(digits + 4);
    const b = this.slab;
    let p = this.pos;
    b[p++] = type;
    if (neg) b[p++] = 0x2d;
    let q = p + digits;
    let v = abs;
    do {
      b[--q] = 0x30 + (v % 10);
      v = Math.floor(v / 10);
    } while (v > 0);
    p += digits;
    b[p++] = CR;
    b[p++] = LF;
    this.pos = p;
  }

  /** A type byte, a line of text (UTF-8), CRLF. */
  private line(type: number, text: string): void {
    const max = text.length * 3 + 3;
    this.ensure(max <= this.slabSize ? max : Buffer.byteLength(text, 'utf8') + 3);
    this.slab[this.pos++] = type;
    this.pos += this.slab.write(text, this.pos, 'utf8');
    this.slab[this.pos++] = CR;
    this.slab[this.pos++] = LF;
  }

  /** ASCII text into room already ensured. */
  private ascii(text: string): void {
    this.pos += this.slab.write(text, this.pos, 'latin1');
  }

  private crlf(): void {
    this.ensure(2);
    this.slab[this.pos++] = CR;
    this.slab[this.pos++] = LF;
  }

  private payload(buf: Uint8Array): void {
    if (buf.length >= BIG_BULK) {
      // Referenced, not copied: the caller must not change a value after handing it over.
      this.flushPending();
      this.chunks.push(Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
      this.chunkBytes += buf.length;
      return;
    }
    this.ensure(buf.length);
    this.slab.set(buf, this.pos);
    this.pos += buf.length;
  }

  /** Moves the slab's pending bytes into the chunk list (zero copy). */
  private flushPending(): void {
    if (this.pos > this.start) {
      this.chunks.push(this.slab.subarray(this.start, this.pos));
      this.chunkBytes += this.pos - this.start;
      this.start = this.pos;
    }
  }

  /** Room for n more bytes in the slab; a full slab is retired, never rewound. */
  private ensure(n: number): void {
    if (this.slab.length - this.pos >= n) return;
    this.flushPending();
    this.slab = Buffer.allocUnsafe(Math.max(this.slabSize, n));
    this.start = 0;
    this.pos = 0;
  }
}

/** One reply as one Buffer. Convenience for tests and rare replies; servers use ReplyWriter. */
export function writeReply(reply: Reply, proto: Proto): Buffer {
  const w = new ReplyWriter(256);
  w.reply(reply, proto);
  return w.take();
}

/** A command as a RESP multibulk: `*N\r\n` then `$len\r\n<bytes>\r\n` per argument. */
export function encodeCommand(args: readonly (Buffer | Uint8Array | string)[]): Buffer {
  const parts = args.map((a) => (typeof a === 'string' ? Buffer.from(a, 'utf8') : a));
  let total = 1 + digitCount(parts.length) + 2;
  for (const p of parts) total += 1 + digitCount(p.length) + 2 + p.length + 2;
  const out = Buffer.allocUnsafe(total);
  let pos = out.write(`*${parts.length}\r\n`, 0, 'latin1');
  for (const p of parts) {
    pos += out.write(`$${p.length}\r\n`, pos, 'latin1');
    out.set(p, pos);
    pos += p.length;
    out[pos++] = CR;
    out[pos++] = LF;
  }
  return out;
}
