// Blob keys in HTTP paths: `/v1/blobs/{key}` ↔ key bytes. Pure (no I/O).
//
// decodeBlobKey takes the raw (still percent-encoded) path after '/v1/blobs/' and gives the
// key's bytes, or a 400/414 with a stable code. Rules, in the order they are checked:
// 1. empty → 400 BAD_KEY;
// 2. a raw path longer than 3 × maxKeyLength characters → 414 KEY_TOO_LONG at once (every
//    decoded byte costs at most 3 characters, so the key is surely too long; this bounds the
//    work done on a hostile URL);
// 3. percent-decoding to BYTES: `%XY` with two hex digits (either case) is one byte; a '%'
//    not followed by two hex digits (`%G1`, `%4`, a trailing `%`) → 400 BAD_KEY; other
//    characters are taken as their UTF-8 bytes (curl sends raw UTF-8; a lone surrogate or a
//    raw U+FFFD, the mark of invalid bytes on the wire, → 400); raw control characters → 400;
//    '+' is a literal plus (this is a path, not a form-encoded query); `%2F` and a raw '/'
//    are both the byte '/', which keys may contain;
// 4. more than maxKeyLength bytes → 414 KEY_TOO_LONG;
// 5. a NUL byte (raw or `%00`) → 400 BAD_KEY;
// 6. bytes that are not valid UTF-8 (overlongs, surrogates, > U+10FFFF, truncated) → 400.
// Dot segments ('.', '..', 'a/../b') and empty segments ('a//b', a leading '/') are plain
// key bytes: a key never becomes a file path (docs/formats.md), so there is nothing to
// escape from. (Clients may normalise '..' before sending — curl needs --path-as-is, fetch
// always normalises — so such keys are best sent as %2E%2E.)
//
// encodeBlobKey is the inverse for links and listings: every byte except the unreserved
// characters of RFC 3986 (ALPHA DIGIT - . _ ~) and '/' becomes %XY (upper-case hex), so
// decodeBlobKey(encodeBlobKey(k)) equals k for every valid key.

export type KeyResult =
  | { ok: true; key: Buffer }
  | { ok: false; status: 400 | 414; code: 'BAD_KEY' | 'KEY_TOO_LONG'; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeBlobKey(rawPathAfterPrefix: string, maxKeyLength: number): KeyResult {
  if (rawPathAfterPrefix.length === 0) return bad('empty key');
  if (rawPathAfterPrefix.length > 3 * maxKeyLength) return tooLong(maxKeyLength);
  const decoded = percentDecode(rawPathAfterPrefix);
  if (typeof decoded === 'string') return bad(decoded);
  if (decoded.length > maxKeyLength) return tooLong(maxKeyLength);
  if (decoded.includes(0)) return bad('key contains a NUL byte');
  try {
    utf8.decode(decoded);
  } catch {
    return bad('key is not valid UTF-8');
  }
  return { ok: true, key: decoded };
}

export function encodeBlobKey(key: Uint8Array): string {
  let out = '';
  for (const b of key) out += isUnreservedOrSlash(b) ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  return out;
}

// ---- private helpers ----

const HEX = '0123456789ABCDEF';

function bad(message: string): KeyResult {
  return { ok: false, status: 400, code: 'BAD_KEY', message };
}

function tooLong(max: number): KeyResult {
  return { ok: false, status: 414, code: 'KEY_TOO_LONG', message: `key longer than ${max} bytes` };
}

function isUnreservedOrSlash(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e || b === 0x2f;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function isWellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** The bytes of a percent-encoded string, or an error message. */
function percentDecode(raw: string): Buffer | string {
  // A lone surrogate cannot come from UTF-8; a raw U+FFFD is what the server's UTF-8
  // decoding of the request line leaves for invalid bytes (a real U+FFFD can be sent %-encoded).
  if (/[\uD800-\uDFFF\uFFFD]/.test(raw) && (raw.includes('\uFFFD') || !isWellFormed(raw))) {
    return 'key is not valid UTF-8';
  }
  // Decode the non-escape characters as UTF-8 first, then rewrite the escapes in place: the
  // escapes are ASCII, so their bytes sit exactly where their characters were.
  const bytes = Buffer.from(raw, 'utf8');
  const out = Buffer.alloc(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b === 0x7f) return b === 0 ? 'key contains a NUL byte' : 'key contains a control character';
    if (b !== 0x25) {
      out[n++] = b;
      continue;
    }
    const hi = i + 1 < bytes.length ? hexValue(bytes[i + 1]!) : -1;
    const lo = i + 2 < bytes.length ? hexValue(bytes[i + 2]!) : -1;
    if (hi < 0 || lo < 0) return `malformed percent-escape at character ${i}`;
    out[n++] = (hi << 4) | lo;
    i += 2;
  }
  return n === out.length ? out : exactCopy(out, n);
}

/**
 * The first n bytes in a Buffer of their own: Buffer.alloc never uses Node's shared 8 KiB
 * pool, so the key's ArrayBuffer is exactly the key (posting it to another thread copies or
 * transfers the key, not a pool full of other requests' bytes).
 */
function exactCopy(buf: Buffer, n: number): Buffer {
  const exact = Buffer.alloc(n);
  buf.copy(exact, 0, 0, n);
  return exact;
}
