// Reply values: what a command answers, independent of how it is shown. The executor builds
// them; the REPL formats them like redis-cli (formatForRepl, formatRaw); the RESP writer (a
// later issue) will serialize them. The union mirrors RESP2 one to one so that writer is a
// plain switch: simple string (+), error (-), integer (:), bulk ($, null = $-1), array (*,
// null = *-1).
//
// Invariants: a simple string or error never contains \r or \n (RESP would break; the
// constructors replace them with spaces as Redis does in addReplyError); an integer is a safe
// integer; a bulk is bytes, never a JS string, so binary values survive unchanged.

export type Reply =
  | { readonly kind: 'simple'; readonly value: string }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'integer'; readonly value: number }
  | { readonly kind: 'bulk'; readonly value: Buffer | null }
  | { readonly kind: 'array'; readonly items: readonly Reply[] | null };

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

export function integer(value: number): Reply {
  if (!Number.isSafeInteger(value)) throw new RangeError(`integer reply is not a safe integer: ${value}`);
  return { kind: 'integer', value };
}

export function bulk(value: Buffer | Uint8Array | string | null): Reply {
  if (value === null) return NULL_BULK;
  if (typeof value === 'string') return { kind: 'bulk', value: Buffer.from(value, 'utf8') };
  return { kind: 'bulk', value: Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

export function array(items: readonly Reply[] | null): Reply {
  return items === null ? NULL_ARRAY : { kind: 'array', items };
}

export const OK: Reply = { kind: 'simple', value: 'OK' };
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
    case 'array': return reply.items === null ? '(nil)\n' : formatArrayTTY(reply.items, prefix);
  }
}

function formatArrayTTY(items: readonly Reply[], prefix: string): string {
  if (items.length === 0) return '(empty array)\n';
  const width = String(items.length).length;
  // Nested arrays line up under the first character after "N) ".
  const childPrefix = prefix + ' '.repeat(width + 2);
  let out = '';
  items.forEach((item, i) => {
    // The first element's line already carries the parent's "N) " prefix.
    out += (i === 0 ? '' : prefix) + String(i + 1).padStart(width, ' ') + ') ';
    out += formatTTY(item, childPrefix);
  });
  return out;
}

/**
 * The reply as redis-cli prints it when stdout is not a terminal (cliFormatReplyRaw), without
 * the final newline: the bare bytes of a string, the bare integer, nothing for nil, array
 * elements one per line, the error text as is.
 */
export function formatRaw(reply: Reply): Buffer {
  switch (reply.kind) {
    case 'simple': return Buffer.from(reply.value, 'utf8');
    case 'error': return Buffer.from(reply.message, 'utf8');
    case 'integer': return Buffer.from(String(reply.value));
    case 'bulk': return reply.value ?? Buffer.alloc(0);
    case 'array': {
      const parts: Buffer[] = [];
      (reply.items ?? []).forEach((item, i) => {
        if (i > 0) parts.push(NEWLINE);
        parts.push(formatRaw(item));
      });
      return Buffer.concat(parts);
    }
  }
}

const NEWLINE = Buffer.from('\n');
