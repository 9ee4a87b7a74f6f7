// Byte ranges of RFC 9110 §14 for GET /v1/blobs/{key}: the Range header → what to send.
// Pure (no I/O). The front end turns the result into a status:
//   'none'          → 200 with the whole body (the Range header is ignored)
//   'single'        → 206 with `Content-Range: contentRange(range, size)`
//   'multi'         → 206 multipart/byteranges (multipartByteranges below)
//   'unsatisfiable' → 416 with `Content-Range: unsatisfiedRange(size)` (`bytes */size`)
//
// Grammar (RFC 9110 §14.1.1, §14.1.2, lists per §5.6.1):
//   Range = range-unit "=" range-set          range-unit = token, case-insensitive ("bytes")
//   range-set = 1#range-spec                   range-spec = int-range / suffix-range / other-range
//   int-range = first-pos "-" [ last-pos ]     suffix-range = "-" suffix-length
// Decisions, each one allowed by the RFC:
// - No header, another unit, or a malformed ranges-specifier (garbage, signs, a spec with
//   first-pos > last-pos, a range-set of only empty elements, `bytes=`) → 'none': RFC 9110
//   §14.2 lets a server ignore an invalid Range; one bad spec makes the whole header invalid.
// - OWS (SP / HTAB) is accepted around every list element and at both ends of the field
//   value; empty list elements (`bytes=0-1,,2-3`) are skipped (§5.6.1.2). No whitespace inside
//   a spec or around '='.
// - Numbers are 1*DIGIT, leading zeros allowed, of any length: they are compared as digit
//   strings (never through a lossy parseInt), so a last-pos of 10^30 clamps to size - 1 and a
//   first-pos of 10^30 is unsatisfiable.
// - Satisfiable (§14.1.1): an int-range with first-pos < size, or a suffix-range with a
//   non-zero suffix-length (a suffix longer than the body means the whole body).
//   Unsatisfiable specs are dropped; if none is left → 'unsatisfiable'.
// - Size 0: §14.1.1 says only a non-zero suffix-range is satisfiable on an empty body, but
//   it selects zero bytes, which a 206 cannot express (Content-Range needs first <= last).
//   So on an empty body a header with a non-zero suffix-range → 'none' (200, empty body, as
//   §14.2 lets a server ignore Range on a zero-length representation); a header with only
//   int-ranges and zero suffixes → 'unsatisfiable' (416 `bytes */0`).
// - Several ranges: sorted and coalesced when they overlap or touch (§14.2 allows coalescing
//   regardless of the order asked); one range left → 'single'. Abuse resistance (§14.2,
//   §17.15): more than MAX_RANGE_SPECS specs in the header, or satisfiable ranges whose
//   lengths sum to more than the body (heavy overlap), → 'none' (the whole body once).
//
// Invariants (test/http_range.test.ts, property-tests/http_range.test.ts): every returned
// range has 0 <= start <= end < size; 'multi' ranges are ascending, disjoint and non-adjacent,
// at least 2 and at most MAX_RANGE_SPECS; 'unsatisfiable' only when no spec overlaps the body.
import { randomBytes } from 'node:crypto';

export interface ByteRange { start: number; end: number /* inclusive */ }
export type RangeResult =
  | { kind: 'none' }
  | { kind: 'single'; range: ByteRange }
  | { kind: 'multi'; ranges: ByteRange[] }
  | { kind: 'unsatisfiable' };

/** More range-specs than this in one header → the whole body ('none'). */
export const MAX_RANGE_SPECS = 16;

const NONE: RangeResult = { kind: 'none' };
const UNSATISFIABLE: RangeResult = { kind: 'unsatisfiable' };

/** A parsed spec: digit strings without leading zeros ('' for an absent last-pos). */
type Spec =
  | { kind: 'int'; first: string; last: string | null }
  | { kind: 'suffix'; length: string };

/** `header` is the raw Range field value; `size` the body length (a safe integer >= 0). */
export function parseRange(header: string | undefined, size: number): RangeResult {
  assertSize(size);
  if (header === undefined) return NONE;
  const specs = parseRangesSpecifier(header);
  if (specs === null || specs.length > MAX_RANGE_SPECS) return NONE;
  if (size === 0) return specs.some((s) => s.kind === 'suffix' && s.length !== '0') ? NONE : UNSATISFIABLE;
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const r = resolve(spec, size);
    if (r !== null) ranges.push(r);
  }
  if (ranges.length === 0) return UNSATISFIABLE;
  if (ranges.length === 1) return { kind: 'single', range: ranges[0]! };
  // Counted down from size so the arithmetic stays exact even near 2^53.
  let uncovered = size;
  for (const r of ranges) {
    uncovered -= r.end - r.start + 1;
    if (uncovered < 0) return NONE;
  }
  const merged = coalesce(ranges);
  return merged.length === 1 ? { kind: 'single', range: merged[0]! } : { kind: 'multi', ranges: merged };
}

/** `bytes 0-499/1234` for a 206 (single range or a part of a multipart answer). */
export function contentRange(range: ByteRange, size: number): string {
  assertRange(range, size);
  return `bytes ${range.start}-${range.end}/${size}`;
}

/** `bytes *\/1234` for a 416. */
export function unsatisfiedRange(size: number): string {
  assertSize(size);
  return `bytes */${size}`;
}

export interface MultipartPlan {
  /** Goes in `Content-Type: multipart/byteranges; boundary=<boundary>`. */
  boundary: string;
  /** Send head, then the range's bytes from the body, for each part in order. */
  parts: { head: Buffer; range: ByteRange }[];
  /** The closing delimiter, sent after the last part's bytes. */
  tail: Buffer;
  /** Exact body length (heads + range bytes + tail), for Content-Length. */
  totalLength: number;
}

/**
 * The framing of a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 §5.1.1): for each
 * part `[CRLF] --boundary CRLF Content-Type: t CRLF Content-Range: bytes a-b/size CRLF CRLF`
 * (the leading CRLF on every part but the first), then `CRLF --boundary-- CRLF`.
 * `contentType` '' leaves out the Content-Type line; one with characters outside visible
 * ASCII and SP/HTAB (header injection) is replaced by application/octet-stream.
 * `boundary` is for tests; by default 24 random bytes in hex, which no body will contain by
 * chance (a boundary only has to be absent from the body with overwhelming probability).
 */
export function multipartByteranges(
  ranges: ByteRange[], size: number, contentType: string, boundary: string = randomBoundary(),
): MultipartPlan {
  if (!/^[0-9A-Za-z'()+_,\-./:=?]{1,70}$/.test(boundary)) throw new Error(`invalid multipart boundary ${JSON.stringify(boundary)}`);
  const typeLine = contentType === '' ? '' : `Content-Type: ${safeContentType(contentType)}\r\n`;
  const parts: MultipartPlan['parts'] = [];
  let totalLength = 0;
  ranges.forEach((range, i) => {
    const head = Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\n${typeLine}Content-Range: ${contentRange(range, size)}\r\n\r\n`, 'latin1');
    parts.push({ head, range });
    totalLength += head.length + (range.end - range.start + 1);
  });
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  totalLength += tail.length;
  return { boundary, parts, tail, totalLength };
}

// ---- private helpers ----

function randomBoundary(): string {
  return `brise-${randomBytes(24).toString('hex')}`;
}

function safeContentType(t: string): string {
  return /^[\t\x20-\x7e]+$/.test(t) ? t : 'application/octet-stream';
}

function assertSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new Error(`invalid representation size ${size}`);
}

function assertRange(r: ByteRange, size: number): void {
  assertSize(size);
  if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.start > r.end || r.end >= size) {
    throw new Error(`invalid byte range ${r.start}-${r.end} of ${size}`);
  }
}

const isOws = (c: string): boolean => c === ' ' || c === '\t';
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
/** tchar of RFC 9110 §5.6.2. */
const isTchar = (c: string): boolean => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/.test(c);

/** The specs of a `bytes=` header, or null when it is another unit or malformed. */
function parseRangesSpecifier(header: string): Spec[] | null {
  const eq = header.indexOf('=');
  if (eq < 0) return null;
  const unit = trimOws(header.slice(0, eq), true, false);
  if (unit.length === 0 || ![...unit].every(isTchar) || unit.toLowerCase() !== 'bytes') return null;
  const specs: Spec[] = [];
  for (const element of header.slice(eq + 1).split(',')) {
    const text = trimOws(element, true, true);
    if (text === '') continue; // an empty list element (§5.6.1.2)
    const spec = parseSpec(text);
    if (spec === null) return null;
    specs.push(spec);
    if (specs.length > MAX_RANGE_SPECS) return specs; // enough to decide 'none'; stop the work
  }
  return specs.length === 0 ? null : specs;
}

/** `a-b`, `a-` or `-n` → a Spec; anything else (signs, spaces, a > b) → null. */
function parseSpec(text: string): Spec | null {
  const dash = text.indexOf('-');
  if (dash < 0) return null;
  const left = text.slice(0, dash);
  const right = text.slice(dash + 1);
  if (!allDigits(right, true) || !allDigits(left, true)) return null;
  if (left === '') return right === '' ? null : { kind: 'suffix', length: stripZeros(right) };
  const first = stripZeros(left);
  if (right === '') return { kind: 'int', first, last: null };
  const last = stripZeros(right);
  return compareDigits(first, last) > 0 ? null : { kind: 'int', first, last };
}

/** The range a valid spec selects in a body of `size` > 0 bytes, or null if unsatisfiable. */
function resolve(spec: Spec, size: number): ByteRange | null {
  if (spec.kind === 'suffix') {
    if (spec.length === '0') return null;
    const n = clampDigits(spec.length, size);
    return { start: size - n, end: size - 1 };
  }
  if (compareDigits(spec.first, String(size)) >= 0) return null;
  const start = Number(spec.first); // < size, so exact
  const end = spec.last === null ? size - 1 : Math.min(clampDigits(spec.last, size - 1), size - 1);
  return { start, end };
}

/** Sorted by start, overlapping or adjacent ranges merged. */
function coalesce(ranges: ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [{ ...sorted[0]! }];
  for (const r of sorted.slice(1)) {
    const last = out[out.length - 1]!;
    if (r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

function trimOws(s: string, left: boolean, right: boolean): string {
  let a = 0;
  let b = s.length;
  while (left && a < b && isOws(s[a]!)) a++;
  while (right && b > a && isOws(s[b - 1]!)) b--;
  return s.slice(a, b);
}

function allDigits(s: string, emptyOk: boolean): boolean {
  if (s === '') return emptyOk;
  for (const c of s) if (!isDigit(c)) return false;
  return true;
}

/** '007' → '7', '000' → '0'. */
function stripZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits[i] === '0') i++;
  return digits.slice(i);
}

/** Compares two digit strings without leading zeros as numbers of any length. */
function compareDigits(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** min(digits, cap) as a number, exact for any length of digits (cap is a safe integer). */
function clampDigits(digits: string, cap: number): number {
  return compareDigits(digits, String(cap)) >= 0 ? cap : Number(digits);
}
