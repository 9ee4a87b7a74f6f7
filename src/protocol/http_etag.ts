// ETags and the conditional headers of RFC 9110 §13 for blobs. Pure (no I/O).
//
// ETag: strong, derived from the content (protocol/blob_meta.ts etagOfDigest, frontend/blob_info.ts):
// the same bytes give the same ETag wherever and whenever they are stored.
//
// Entity-tags and their lists, for http_conditions.ts: If-Match and If-None-Match are `"*"` or a list of entity-tags
// (`[W/]"opaque"`; the opaque part may hold commas, so lists are scanned, not split).
// If-Match uses the strong comparison (§8.8.3.2: both strong, same opaque), If-None-Match
// the weak one (same opaque, W/ ignored). A header that does not parse is treated as an
// empty list, which fails safe: If-Match never passes (412) and If-None-Match never hits
// (no 304; a PUT goes ahead as if there were no such header).

/** Most entity-tags kept from one header; a longer list is a malformed one. */
export const MAX_CONDITION_TAGS = 64;

/** Strong comparison (§8.8.3.2): both strong and the same opaque-tag. */
export function strongEquals(a: string, b: string): boolean {
  return !isWeak(a) && !isWeak(b) && a === b;
}

/** Weak comparison (§8.8.3.2): the same opaque-tag, W/ ignored on either side. */
export function weakEquals(a: string, b: string): boolean {
  return opaque(a) === opaque(b);
}

/** The value when it is exactly one entity-tag (OWS around it allowed), else null. */
export function parseEntityTag(value: string): string | null {
  const s = trimOws(value);
  return scanTag(s, 0) === s.length ? s : null;
}

/** `*` or a list of entity-tags; null when absent, an empty list when malformed (see the top). */
export function parseTagCondition(header: string | undefined): { any: boolean; tags: string[] } | null {
  if (header === undefined) return null;
  if (trimOws(header) === '*') return { any: true, tags: [] };
  return { any: false, tags: parseTagList(header) ?? [] };
}

/** OWS (SP / HTAB) off both ends; String.trim would also take line breaks and Unicode spaces. */
export function trimOws(s: string): string {
  let i = 0;
  let j = s.length;
  while (i < j && isOws(s.charCodeAt(i))) i++;
  while (j > i && isOws(s.charCodeAt(j - 1))) j--;
  return s.slice(i, j);
}

// ---- private helpers ----

const isWeak = (tag: string): boolean => tag.startsWith('W/');
const opaque = (tag: string): string => (isWeak(tag) ? tag.slice(2) : tag);
const isOws = (c: number): boolean => c === 0x20 || c === 0x09;
/**
 * etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3). obs-text is any code unit from 0x80:
 * the server may hand header bytes over decoded as UTF-8, so a byte 0x80-0xFF can arrive as
 * a character above 0xFF.
 */
const isEtagc = (c: number): boolean => c === 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;

/** `#entity-tag` with empty elements allowed (§5.6.1.2); null when malformed. */
function parseTagList(s: string): string[] | null {
  const tags: string[] = [];
  let i = 0;
  for (;;) {
    while (i < s.length && (isOws(s.charCodeAt(i)) || s[i] === ',')) i++;
    if (i >= s.length) return tags;
    const end = scanTag(s, i);
    if (end < 0) return null;
    tags.push(s.slice(i, end));
    if (tags.length > MAX_CONDITION_TAGS) return null;
    i = end;
    while (i < s.length && isOws(s.charCodeAt(i))) i++;
    if (i < s.length && s[i] !== ',') return null;
  }
}

/** The index just past the entity-tag starting at i, or -1. */
function scanTag(s: string, i: number): number {
  if (s.startsWith('W/', i)) i += 2;
  if (s[i] !== '"') return -1;
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (!isEtagc(c)) return -1;
  }
  return -1;
}
