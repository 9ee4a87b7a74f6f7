// Reply values: what a command answers, independent of how it is shown. The executor builds
// them; the REPL formats them like redis-cli (formatForRepl, formatRaw); the RESP writer
// (resp_writer.ts) serializes them. The RESP2 kinds map one to one onto RESP2 types: simple
// string (+), error (-), integer (:), bulk ($, null = $-1), array (*, null = *-1). The RESP3
// kinds (map %, set ~, push >, double ",", boolean #, nil _, verbatim =) are written as such
// to a RESP3 connection and downgraded for RESP2 by the writer (map -> flat array, set and
// push -> array, double -> bulk, boolean -> integer 1/0, nil -> $-1, verbatim -> bulk).
//
// Invariants: a simple string or error never contains \r or \n (RESP would break; the
// constructors replace them with spaces as Redis does in addReplyError); an integer is a safe
// integer or a 64-bit bigint; a bulk is bytes, never a JS string, so binary values survive unchanged; a
// verbatim format is exactly three bytes without ':' , \r or \n.

export type Reply =
  | { readonly kind: 'simple'; readonly value: string }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'integer'; readonly value: number | bigint }
  | { readonly kind: 'bulk'; readonly value: Buffer | null }
  | { readonly kind: 'array'; readonly items: readonly Reply[] | null }
  | { readonly kind: 'map'; readonly pairs: readonly (readonly [Reply, Reply])[] }
  | { readonly kind: 'set'; readonly items: readonly Reply[] }
  | { readonly kind: 'push'; readonly items: readonly Reply[] }
  | { readonly kind: 'double'; readonly value: number }
  | { readonly kind: 'boolean'; readonly value: boolean }
  | { readonly kind: 'nil' }
  | { readonly kind: 'verbatim'; readonly format: string; readonly value: Buffer };

/** Redis sanitizes status and error lines: a CR or LF would end the line early on the wire. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]/g, ' ');
}

export function simple(value: string): Reply {
  return { kind: 'simple', value: oneLine(value) };
}

/** An error reply; the message carries its prefix word, e.g. "ERR syntax error". */
export function error(message: string): Reply {
  return { kind: 'error', message: oneLine(message) };
}

/** A safe integer, or a 64-bit one as a bigint (INCR and friends reach the whole int64 range). */
export function integer(value: number | bigint): Reply {
  if (typeof value === 'bigint') {
    if (value < INT64_MIN || value > INT64_MAX) throw new RangeError(`integer reply is outside 64 bits: ${value}`);
    return Number.isSafeInteger(Number(value)) && BigInt(Number(value)) === value ? { kind: 'integer', value: Number(value) } : { kind: 'integer', value };
  }
  if (!Number.isSafeInteger(value)) throw new RangeError(`integer reply is not a safe integer: ${value}`);
  return { kind: 'integer', value };
}

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

export function bulk(value: Buffer | Uint8Array | string | null): Reply {
  if (value === null) return NULL_BULK;
  if (typeof value === 'string') return { kind: 'bulk', value: Buffer.from(value, 'utf8') };
  return { kind: 'bulk', value: Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

export function array(items: readonly Reply[] | null): Reply {
  return items === null ? NULL_ARRAY : { kind: 'array', items };
}

/** A RESP3 map (%); RESP2 connections get a flat array key, value, key, value... */
export function map(pairs: readonly (readonly [Reply, Reply])[]): Reply {
  return { kind: 'map', pairs };
}

/** A RESP3 set (~); RESP2 connections get an array. */
export function set(items: readonly Reply[]): Reply {
  return { kind: 'set', items };
}

/** A RESP3 out-of-band push (>), e.g. a pub/sub message; RESP2 connections get an array. */
export function push(items: readonly Reply[]): Reply {
  return { kind: 'push', items };
}

/** A RESP3 double (,); RESP2 connections get it as a bulk string ("inf", "-inf", "nan" included). */
export function double(value: number): Reply {
  return { kind: 'double', value };
}

/** A RESP3 boolean (#t / #f); RESP2 connections get :1 / :0. */
export function boolean(value: boolean): Reply {
  return value ? TRUE : FALSE;
}

/** The RESP3 null (_); RESP2 connections get a null bulk ($-1). */
export function nil(): Reply {
  return NIL;
}

/**
 * A RESP3 verbatim string (=), e.g. format 'txt' or 'mkd' (INFO, CLIENT LIST in Redis);
 * RESP2 connections get the text as a bulk string without the format.
 */
export function verbatim(value: Buffer | string, format = 'txt'): Reply {
  if (!/^[^:\r\n]{3}$/.test(format) || Buffer.byteLength(format) !== 3) {
    throw new RangeError(`verbatim format must be three bytes: ${JSON.stringify(format)}`);
  }
  return { kind: 'verbatim', format, value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value };
}

export const OK: Reply = { kind: 'simple', value: 'OK' };
export const NIL: Reply = { kind: 'nil' };
export const TRUE: Reply = { kind: 'boolean', value: true };
export const FALSE: Reply = { kind: 'boolean', value: false };
export const NULL_BULK: Reply = { kind: 'bulk', value: null };
export const NULL_ARRAY: Reply = { kind: 'array', items: null };

export function isError(reply: Reply): reply is { kind: 'error'; message: string } {
  return reply.kind === 'error';
}

/**
 * A bulk as redis-cli shows it (sdscatrepr): double-quoted; \\ \" \n \r \t \a \b escaped;
 * other bytes outside printable ASCII (0x20..0x7e, C locale isprint) as \xHH, lowercase.
 * The result is parsed back to the same bytes by splitCommandLine.
 */
export function quoteBytes(bytes: Uint8Array): string {
  let out = '"';
  for (const b of bytes) out += escapeByte(b);
  return out + '"';
}

function escapeByte(b: number): string {
  switch (b) {
    case 0x5c: return '\\\\';
    case 0x22: return '\\"';
    case 0x0a: return '\\n';
    case 0x0d: return '\\r';
    case 0x09: return '\\t';
    case 0x07: return '\\a';
    case 0x08: return '\\b';
    default:
      return b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : '\\x' + b.toString(16).padStart(2, '0');
  }
}

/**
 * The reply as redis-cli prints it on a terminal (cliFormatReplyTTY), without the final
 * newline: `OK`, `(nil)`, `(integer) 1`, `"quoted"`, `(error) ERR ...`, `(empty array)`, and
 * numbered arrays where nested arrays are indented by the width of the index plus two.
 * RESP3 kinds as `redis-cli -3` shows them: `(double) 1.5`, `(true)`, `(false)`, `(nil)`;
 * maps numbered `1# "k" => "v"` (one number per pair), sets `1~ "a"`, pushes like arrays;
 * empty ones `(empty hash)`, `(empty set)`, `(empty push)`; a verbatim string bare, unquoted.
 */
export function formatForRepl(reply: Reply): string {
  const out = formatTTY(reply, '');
  return out.endsWith('\n') ? out.slice(0, -1) : out;
}

function formatTTY(reply: Reply, prefix: string): string {
  switch (reply.kind) {
    case 'simple': return reply.value + '\n';
    case 'error': return '(error) ' + reply.message + '\n';
    case 'integer': return `(integer) ${reply.value}\n`;
    case 'bulk': return reply.value === null ? '(nil)\n' : quoteBytes(reply.value) + '\n';
    case 'array': return reply.items === null ? '(nil)\n' : formatAggregateTTY(reply.items, prefix, ')', '(empty array)');
    case 'set': return formatAggregateTTY(reply.items, prefix, '~', '(empty set)');
    case 'push': return formatAggregateTTY(reply.items, prefix, ')', '(empty push)');
    case 'map': return formatMapTTY(reply.pairs, prefix);
    case 'double': return `(double) ${formatDouble(reply.value)}\n`;
    case 'boolean': return reply.value ? '(true)\n' : '(false)\n';
    case 'nil': return '(nil)\n';
    case 'verbatim': return reply.value.toString('utf8') + '\n';
  }
}

function formatAggregateTTY(items: readonly Reply[], prefix: string, sep: string, empty: string): string {
  if (items.length === 0) return empty + '\n';
  const width = String(items.length).length;
  // Nested arrays line up under the first character after "N) ".
  const childPrefix = prefix + ' '.repeat(width + 2);
  let out = '';
  items.forEach((item, i) => {
    // The first element's line already carries the parent's "N) " prefix.
    out += (i === 0 ? '' : prefix) + String(i + 1).padStart(width, ' ') + sep + ' ';
    out += formatTTY(item, childPrefix);
  });
  return out;
}

/** redis-cli numbers a map by pairs and prints the key's line, minus its newline, then " => " and the value. */
function formatMapTTY(pairs: readonly (readonly [Reply, Reply])[], prefix: string): string {
  if (pairs.length === 0) return '(empty hash)\n';
  const width = String(pairs.length).length;
  const childPrefix = prefix + ' '.repeat(width + 2);
  let out = '';
  pairs.forEach(([key, value], i) => {
    out += (i === 0 ? '' : prefix) + String(i + 1).padStart(width, ' ') + '# ';
    out += formatTTY(key, childPrefix).slice(0, -1) + ' => ' + formatTTY(value, childPrefix);
  });
  return out;
}

/**
 * A double as Redis writes it (d2string): "inf", "-inf", "nan", "-0", integers without a
 * fraction, otherwise the shortest text that reads back to the same number.
 */
export function formatDouble(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  if (Object.is(value, -0)) return '-0';
  return String(value);
}

/**
 * The reply as redis-cli prints it when stdout is not a terminal (cliFormatReplyRaw), without
 * the final newline: the bare bytes of a string, the bare integer, nothing for nil, array
 * elements one per line, the error text as is. RESP3: a double as its text, `(true)` or
 * `(false)`, a map one `key value` pair per line, sets and pushes as arrays.
 */
export function formatRaw(reply: Reply): Buffer {
  switch (reply.kind) {
    case 'simple': return Buffer.from(reply.value, 'utf8');
    case 'error': return Buffer.from(reply.message, 'utf8');
    case 'integer': return Buffer.from(String(reply.value));
    case 'bulk': return reply.value ?? Buffer.alloc(0);
    case 'array': return joinLines((reply.items ?? []).map(formatRaw));
    case 'set':
    case 'push': return joinLines(reply.items.map(formatRaw));
    case 'map': return joinLines(reply.pairs.map(([k, v]) => Buffer.concat([formatRaw(k), SPACE, formatRaw(v)])));
    case 'double': return Buffer.from(formatDouble(reply.value));
    case 'boolean': return Buffer.from(reply.value ? '(true)' : '(false)');
    case 'nil': return Buffer.alloc(0);
    case 'verbatim': return reply.value;
  }
}

function joinLines(parts: readonly Buffer[]): Buffer {
  const out: Buffer[] = [];
  parts.forEach((part, i) => {
    if (i > 0) out.push(NEWLINE);
    out.push(part);
  });
  return Buffer.concat(out);
}

const NEWLINE = Buffer.from('\n');
const SPACE = Buffer.from(' ');
