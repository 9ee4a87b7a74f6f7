// Conditional requests of RFC 9110 §13 for blobs, whole: If-Match, If-Unmodified-Since,
// If-None-Match, If-Modified-Since and If-Range, judged in the order of §13.2.2 against the
// representation the store holds now. Pure (no I/O); the clock is passed in (it is needed only
// to read the two-digit years of RFC 850 dates).
//
// The verdict is one of: proceed (with whether a Range header is to be honoured), 304 Not
// Modified (GET/HEAD only), 412 Precondition Failed. §13.2.1 comes first and is the caller's:
// a request that would fail without its conditions (404 for a GET, HEAD or DELETE of a missing
// blob) fails that way, and its conditions are not asked about.
//
// Policies where the RFC leaves a choice, written here once:
// - Entity-tag lists follow http_etag.ts: a malformed If-Match is an empty list (never holds:
//   412), a malformed If-None-Match an empty list (always holds). Strong comparison for If-Match
//   and If-Range, weak for If-None-Match (§8.8.3.2).
// - A date that is not a valid HTTP-date (§5.6.7: IMF-fixdate, RFC 850, asctime; case-sensitive;
//   a list of dates is not one) makes If-Modified-Since / If-Unmodified-Since ignored, as §13.1.3
//   and §13.1.4 say; so does a representation without a modification date (MUST for
//   If-Modified-Since, MAY for If-Unmodified-Since: taken, so a write to a missing key is not
//   refused for a date it cannot be compared with).
// - Dates compare in whole seconds: the store keeps modification times to the second, and an
//   HTTP-date has no finer resolution. Second 60 (a leap second) is the next second, as timegm
//   counts it. An RFC 850 year `yy` is the latest year ending in yy that is at most 50 years
//   after the current year (§5.6.7: one "more than 50 years in the future" is in the past).
//   The day name must be one of the seven but is not checked against the date (the RFC does
//   not ask it, and the date fields alone name the instant).
// - If-Range with an HTTP-date holds only when Last-Modified is a strong validator (§13.1.5
//   step 1), which for an origin server means it "reliably knows that the associated
//   representation did not change twice during the second covered by the presented validator"
//   (§8.8.2.2); the caller says whether it knows that (`lastModifiedStrong`). A weak or stale
//   ETag, a malformed value, or a missing representation: the condition is false, the Range is
//   ignored and the whole body goes out with 200; never a 206 of another version.
// - HEAD is judged as GET, If-Range included (§9.3.2: a HEAD answers the header fields the GET
//   would), although §13.2.2 step 5 names GET alone.
import { parseEntityTag, parseTagCondition, strongEquals, trimOws, weakEquals } from './http_etag.js';

export type ConditionalMethod = 'GET' | 'HEAD' | 'PUT' | 'DELETE';

/** The request's header fields that conditions read; undefined when a field is absent. */
export interface ConditionalHeaders {
  ifMatch?: string | undefined;
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
  ifUnmodifiedSince?: string | undefined;
  ifRange?: string | undefined;
  range?: string | undefined;
}

/** The validators of the current representation (null for none: a missing blob). */
export interface Validators {
  /** The ETag field value, strong (`"x"`) or weak (`W/"x"`); opaque here. */
  etag: string;
  /** Last-Modified in ms since the epoch, or null when it has none. */
  lastModified: number | null;
  /** The origin knows the representation did not change twice within that second (§8.8.2.2). */
  lastModifiedStrong: boolean;
}

export type FailedHeader = 'If-Match' | 'If-Unmodified-Since' | 'If-None-Match';

/**
 * The verdict. `guard` is for a write: what must still be true when it commits for the verdict
 * to stand ('none': no condition was judged; 'absent': judged against no representation;
 * 'same': judged against the current one, so the write must apply only to that one).
 */
export type ConditionVerdict =
  | { kind: 'proceed'; useRange: boolean; guard: 'none' | 'absent' | 'same' }
  | { kind: 'not-modified' }
  | { kind: 'failed'; header: FailedHeader };

/** Reads the fields through a getter that answers '' for an absent field (as uWS does). */
export function readConditionalHeaders(get: (lowerCaseName: string) => string): ConditionalHeaders {
  const field = (name: string): string | undefined => get(name) || undefined;
  return {
    ifMatch: field('if-match'),
    ifNoneMatch: field('if-none-match'),
    ifModifiedSince: field('if-modified-since'),
    ifUnmodifiedSince: field('if-unmodified-since'),
    ifRange: field('if-range'),
    range: field('range'),
  };
}

/** Whether a write (PUT, DELETE) carries a field that can refuse it; else it needs no look-up. */
export function hasWritePreconditions(h: ConditionalHeaders): boolean {
  return h.ifMatch !== undefined || h.ifNoneMatch !== undefined || h.ifUnmodifiedSince !== undefined;
}

/** §13.2.2, steps 1 to 5. */
export function evaluateConditions(method: ConditionalMethod, h: ConditionalHeaders, current: Validators | null, nowMs: number): ConditionVerdict {
  const read = method === 'GET' || method === 'HEAD';
  let judged = false;
  if (h.ifMatch !== undefined) {
    judged = true;
    if (!ifMatchHolds(h.ifMatch, current)) return { kind: 'failed', header: 'If-Match' };
  } else if (h.ifUnmodifiedSince !== undefined) {
    const date = parseHttpDate(h.ifUnmodifiedSince, nowMs);
    const modified = modifiedSecond(current);
    if (date !== null && modified !== null) {
      judged = true;
      if (modified > date) return { kind: 'failed', header: 'If-Unmodified-Since' };
    }
  }
  if (h.ifNoneMatch !== undefined) {
    judged = true;
    if (!ifNoneMatchHolds(h.ifNoneMatch, current)) return read ? { kind: 'not-modified' } : { kind: 'failed', header: 'If-None-Match' };
  } else if (read && h.ifModifiedSince !== undefined) {
    const date = parseHttpDate(h.ifModifiedSince, nowMs);
    const modified = modifiedSecond(current);
    if (date !== null && modified !== null && modified <= date) return { kind: 'not-modified' };
  }
  const useRange = read && h.range !== undefined && (h.ifRange === undefined || ifRangeHolds(h.ifRange, current, nowMs));
  return { kind: 'proceed', useRange, guard: !judged ? 'none' : current === null ? 'absent' : 'same' };
}

/**
 * An HTTP-date (§5.6.7) as ms since the epoch (a whole second), or null when the value is not
 * one. OWS around the value is allowed; inside, the grammar is exact and case-sensitive.
 */
export function parseHttpDate(value: string, nowMs: number): number | null {
  const s = trimOws(value);
  if (s.length > 40) return null;
  let m = IMF_FIXDATE.exec(s);
  if (m !== null) return instant(Number(m[3]), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = RFC850_DATE.exec(s);
  if (m !== null) return instant(rfc850Year(Number(m[3]), nowMs), m[2]!, Number(m[1]), m[4]!, m[5]!, m[6]!);
  m = ASCTIME_DATE.exec(s);
  if (m !== null) return instant(Number(m[6]), m[1]!, Number(m[2]!.trim()), m[3]!, m[4]!, m[5]!);
  return null;
}

// ---- private helpers ----

const DAYS = 'Mon|Tue|Wed|Thu|Fri|Sat|Sun';
const LONG_DAYS = 'Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = MONTHS.join('|');
const TIME = '([0-9]{2}):([0-9]{2}):([0-9]{2})';
/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(`^(?:${DAYS}), ([0-9]{2}) (${MONTH}) ([0-9]{4}) ${TIME} GMT$`);
/** `Sunday, 06-Nov-94 08:49:37 GMT` */
const RFC850_DATE = new RegExp(`^(?:${LONG_DAYS}), ([0-9]{2})-(${MONTH})-([0-9]{2}) ${TIME} GMT$`);
/** `Sun Nov  6 08:49:37 1994` */
const ASCTIME_DATE = new RegExp(`^(?:${DAYS}) (${MONTH}) ([0-9]{2}| [0-9]) ${TIME} ([0-9]{4})$`);

/** The calendar fields as an instant; null for a day or time that does not exist. */
function instant(year: number, month: string, day: number, hh: string, mm: string, ss: string): number | null {
  const hour = Number(hh);
  const minute = Number(mm);
  const second = Number(ss);
  if (hour > 23 || minute > 59 || second > 60) return null;
  const d = new Date(0);
  d.setUTCFullYear(year, MONTHS.indexOf(month), day); // setUTCFullYear: years 0-99 are not 19xx
  if (d.getUTCDate() !== day) return null; // 00, or past the month's end
  d.setUTCHours(hour, minute, second, 0);
  return d.getTime();
}

function rfc850Year(yy: number, nowMs: number): number {
  const latest = new Date(nowMs).getUTCFullYear() + 50;
  const year = latest - (latest % 100) + yy;
  return year > latest ? year - 100 : year;
}

/** Last-Modified truncated to its second (what the Last-Modified field shows), or null. */
function modifiedSecond(current: Validators | null): number | null {
  if (current === null || current.lastModified === null) return null;
  return Math.floor(current.lastModified / 1000) * 1000;
}

/** §13.1.1: `*` and a representation exists, or a listed tag strongly equals its ETag. */
function ifMatchHolds(header: string, current: Validators | null): boolean {
  const c = parseTagCondition(header)!;
  if (current === null) return false;
  return c.any || c.tags.some((t) => strongEquals(t, current.etag));
}

/** §13.1.2: false when `*` and a representation exists, or a listed tag weakly equals its ETag. */
function ifNoneMatchHolds(header: string, current: Validators | null): boolean {
  const c = parseTagCondition(header)!;
  if (current === null) return true;
  return !(c.any || c.tags.some((t) => weakEquals(t, current.etag)));
}

/** §13.1.5: the entity-tag strongly equal to the ETag, or the date exactly Last-Modified when strong. */
function ifRangeHolds(value: string, current: Validators | null, nowMs: number): boolean {
  if (current === null) return false;
  const tag = parseEntityTag(value);
  if (tag !== null) return strongEquals(tag, current.etag);
  const date = parseHttpDate(value, nowMs);
  return date !== null && current.lastModifiedStrong && date === modifiedSecond(current);
}
