// Redis glob matching on bytes (the semantics of Redis's stringmatchlen, case-sensitive):
//   *       any run of bytes (also empty)
//   ?       any one byte
//   [abc]   one byte of the set; [^abc] one byte not in it; [a-z] a range (ends may be
//           given in either order); \x inside a class is a literal x; a class that is never
//           closed runs to the end of the pattern (as in Redis); `[]` is an empty class
//   \x      a literal x (a trailing backslash is a literal backslash)
// Every token other than `*` matches exactly one byte, and where a token ends in the pattern
// does not depend on the key, so the classic greedy algorithm with one backtrack point (the
// last `*`) is exact. It runs in O(pattern × key) time and constant space: a pathological
// pattern such as a*a*a*a*b cannot go exponential, and there is no recursion to overflow.

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const BACKSLASH = 0x5c;
const CARET = 0x5e;
const DASH = 0x2d;

/** True when the whole key matches the whole pattern. */
export function globMatch(pattern: Uint8Array, key: Uint8Array): boolean {
  const m = pattern.length;
  const n = key.length;
  let p = 0;
  let s = 0;
  let starP = -1; // pattern index just after the last `*` run seen
  let starS = 0; // key index that the last `*` is currently taken to end at
  while (s < n) {
    if (p < m && pattern[p] === STAR) {
      while (p < m && pattern[p] === STAR) p++;
      if (p === m) return true; // a trailing star takes the rest
      starP = p;
      starS = s;
      continue;
    }
    if (p < m) {
      const next = matchOne(pattern, p, key[s]!);
      if (next >= 0) {
        p = next;
        s++;
        continue;
      }
    }
    if (starP < 0) return false;
    // Let the last star swallow one more byte and retry the rest of the pattern.
    starS++;
    s = starS;
    p = starP;
  }
  while (p < m && pattern[p] === STAR) p++;
  return p === m;
}

/** True for a pattern made only of stars: it matches every key, so callers skip matching. */
export function isMatchAll(pattern: Uint8Array): boolean {
  if (pattern.length === 0) return false;
  for (let i = 0; i < pattern.length; i++) if (pattern[i] !== STAR) return false;
  return true;
}

/**
 * Matches the one-byte token at pattern[p] (not `*`) against byte c. Returns the index just
 * after the token when it matches, -1 when not.
 */
function matchOne(pattern: Uint8Array, p: number, c: number): number {
  const t = pattern[p]!;
  if (t === QUESTION) return p + 1;
  if (t === OPEN) return matchClass(pattern, p + 1, c);
  if (t === BACKSLASH && p + 1 < pattern.length) return pattern[p + 1] === c ? p + 2 : -1;
  return t === c ? p + 1 : -1;
}

/** A `[...]` class whose body starts at pattern[i]; mirrors Redis's loop, edge cases included. */
function matchClass(pattern: Uint8Array, i: number, c: number): number {
  const m = pattern.length;
  const not = i < m && pattern[i] === CARET;
  if (not) i++;
  let match = false;
  let end: number;
  for (;;) {
    if (i < m && pattern[i] === BACKSLASH && m - i >= 2) {
      if (pattern[i + 1] === c) match = true;
      i += 2;
    } else if (i < m && pattern[i] === CLOSE) {
      end = i + 1;
      break;
    } else if (i >= m) {
      end = m; // unclosed: the class runs to the end of the pattern
      break;
    } else if (m - i >= 3 && pattern[i + 1] === DASH) {
      let lo = pattern[i]!;
      let hi = pattern[i + 2]!;
      if (lo > hi) [lo, hi] = [hi, lo];
      if (c >= lo && c <= hi) match = true;
      i += 3;
    } else {
      if (pattern[i] === c) match = true;
      i++;
    }
  }
  return match !== not ? end : -1;
}
