// Small parsers and formatters of the HTTP API's parameters and headers. Pure (no I/O; the
// token comparison uses node:crypto, which is computation only). Each parser returns
// `{ ok: false, message }` for bad input (the front end answers 400 with the message) and
// never throws on what a client sends; programmer errors (a NaN date) throw.
import { createHash, timingSafeEqual } from 'node:crypto';

/** The longest TTL accepted: 100 years of 365 days. */
export const MAX_TTL_MS = 100 * 365 * 86_400_000;

const TTL_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `?ttl=`: a positive whole number with an optional unit, ms s m h d (lower case; `m` is
 * minutes), bare = seconds: '30s' '15m' '1h' '2d' '500ms' '90'. Zero, signs, fractions,
 * spaces, other units and anything over MAX_TTL_MS are errors.
 */
export function parseTtl(text: string): { ok: true; ms: number } | { ok: false; message: string } {
  const m = /^([0-9]+)(ms|s|m|h|d)?$/.exec(text);
  if (m === null) {
    return { ok: false, message: `invalid ttl ${JSON.stringify(text)}: expected a positive whole number with an optional unit ms, s, m, h or d (e.g. 30s, 1h, 2d; bare = seconds)` };
  }
  const digits = m[1]!.replace(/^0+(?=.)/, '');
  const unit = TTL_UNITS[m[2] ?? 's']!;
  // Digits beyond 15 are past any TTL we accept; stop before Number() could round.
  const ms = digits.length > 15 ? Infinity : Number(digits) * unit;
  if (ms === 0) return { ok: false, message: `invalid ttl ${JSON.stringify(text)}: must be positive` };
  if (ms > MAX_TTL_MS) return { ok: false, message: `invalid ttl ${JSON.stringify(text)}: at most 100 years` };
  return { ok: true, ms };
}

/**
 * X-Brise-TTL: the seconds left, rounded up (a key with 1 ms left says 1, not 0), -1 when the
 * key has no expiry (expiresAt 0, as in src/storage/types.ts), 0 if it is already due.
 */
export function formatTtlSeconds(expiresAt: number, nowMs: number): number {
  if (expiresAt === 0) return -1;
  return Math.max(0, Math.ceil((expiresAt - nowMs) / 1000));
}

/** uWS getQuery() gives the part after '?' or undefined. Form decoding: '+' is a space. */
export function parseQuery(query: string | undefined): URLSearchParams {
  return new URLSearchParams(query ?? '');
}

/**
 * `?count=`: absent (null) → def; a positive whole number; above max → max (a count is a
 * hint of how much to return, as in Redis SCAN, and the server bounds it). '', '0', signs,
 * fractions and non-digits are errors.
 */
export function parseCount(text: string | null, def: number, max: number): { ok: true; n: number } | { ok: false; message: string } {
  if (text === null) return { ok: true, n: Math.min(def, max) };
  if (!/^[0-9]+$/.test(text)) return { ok: false, message: `invalid count ${JSON.stringify(text)}: expected a positive whole number` };
  const digits = text.replace(/^0+(?=.)/, '');
  if (digits === '0') return { ok: false, message: 'invalid count "0": must be positive' };
  const n = digits.length > 15 ? Infinity : Number(digits);
  return { ok: true, n: Math.min(n, max) };
}

/**
 * The token of `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is
 * case-insensitive, RFC 9110 §11.1), or null: no header, another scheme, no token, or a
 * token with whitespace or control characters in it.
 */
export function parseBearer(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^[ \t]*bearer +([\x21-\x7e]+)[ \t]*$/i.exec(header);
  return m === null ? null : m[1]!;
}

/**
 * Whether the given token equals the configured one, in time independent of where they
 * differ and of their lengths: both are hashed to 32 bytes first, and the digests are
 * compared with timingSafeEqual. An empty expected token never matches (no token set is
 * the caller's case, not a token that anyone matches).
 */
export function tokenMatches(given: string | null, expected: string): boolean {
  if (given === null || expected === '') return false;
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** IMF-fixdate (RFC 9110 §5.6.7) for Last-Modified: `Sun, 06 Nov 1994 08:49:37 GMT`. */
export function httpDate(ms: number): string {
  if (!Number.isFinite(ms)) throw new Error(`httpDate of ${ms}`);
  return new Date(ms).toUTCString();
}

/**
 * Content-Length (RFC 9110 §8.6: 1*DIGIT). Absent → length null. '', signs, spaces, a list
 * ('5, 5', which the RFC lets a server refuse, and refusing it shuts out request smuggling)
 * and non-digits are errors. A value past Number.MAX_SAFE_INTEGER is an error with
 * `tooLarge: true`, so the front end can answer 413 (it is larger than any body limit).
 */
export function parseContentLength(header: string | undefined):
  { ok: true; length: number | null } | { ok: false; message: string; tooLarge?: boolean } {
  if (header === undefined) return { ok: true, length: null };
  if (!/^[0-9]+$/.test(header)) return { ok: false, message: `invalid Content-Length ${JSON.stringify(header.slice(0, 64))}` };
  const digits = header.replace(/^0+(?=.)/, '');
  const n = digits.length > 16 ? Infinity : Number(digits);
  if (!Number.isSafeInteger(n)) return { ok: false, message: 'Content-Length too large', tooLarge: true };
  return { ok: true, length: n };
}
