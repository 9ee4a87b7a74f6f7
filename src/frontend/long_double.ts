// INCRBYFLOAT's arithmetic, as Redis does it on x86-64: C `long double` (the x87 80-bit format,
// a 64-bit significand), parsed by strtold, added, printed with "%.17Lf" and trailing zeros cut.
// A JavaScript double would answer differently (Redis says 0.1 + 0.2 = "0.3", a double says
// "0.30000000000000004"), so the format is emulated exactly with BigInt: every value is
// sig * 2^exp, rounded to nearest-even on 64 bits, with the format's exponent range.

/** A finite value sig * 2^exp (sig < 2^64), or an infinity. Zero is sig 0. */
export type LongDouble =
  | { readonly kind: 'finite'; readonly neg: boolean; readonly sig: bigint; readonly exp: number }
  | { readonly kind: 'inf'; readonly neg: boolean };

const PRECISION = 64;
/** Lowest exponent of a significand bit: subnormals end at 2^-16445. */
const MIN_EXP = -16445;
/** Values at or above 2^16384 overflow. */
const MAX_BITS_EXP = 16384;
/** Redis refuses longer inputs (MAX_LONG_DOUBLE_CHARS). */
const MAX_INPUT = 5 * 1024;

/**
 * Redis' string2ld: the whole string must be a strtold number, with no leading space; NaN,
 * overflow and underflow to zero are refused (null). "inf" and "infinity" are accepted.
 */
export function parseLongDouble(text: string): LongDouble | null {
  if (text.length === 0 || text.length >= MAX_INPUT) return null;
  const m = /^([+-]?)(?:(inf(?:inity)?)|0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?|([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?)$/i.exec(text);
  if (m === null) return null;
  const neg = m[1] === '-';
  if (m[2] !== undefined) return { kind: 'inf', neg };
  let value: LongDouble;
  if (m[3] !== undefined || m[4] !== undefined) {
    const int = m[3] ?? '';
    const frac = m[4] ?? '';
    if (int.length + frac.length === 0) return null;
    const exp = clampExp(m[5]);
    value = round(neg, BigInt(`0x${int}${frac}`), 0n, exp - 4 * frac.length);
  } else {
    const int = m[6] ?? '';
    const frac = m[7] ?? '';
    if (int.length + frac.length === 0) return null;
    value = fromDecimal(neg, BigInt(`${int}${frac}`), clampExp(m[8]) - frac.length);
  }
  if (value.kind === 'inf') return null; // ERANGE: overflow
  if (value.sig === 0n && /[1-9a-fA-F]/.test(`${m[3] ?? ''}${m[4] ?? ''}${m[6] ?? ''}${m[7] ?? ''}`)) return null; // underflow
  return value;
}

/** a + b, rounded as the FPU does; an infinity when it overflows, null for inf + -inf (NaN). */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble | null {
  if (a.kind === 'inf' || b.kind === 'inf') {
    if (a.kind === 'inf' && b.kind === 'inf' && a.neg !== b.neg) return null;
    return a.kind === 'inf' ? a : b;
  }
  const base = Math.min(a.exp, b.exp);
  const av = (a.neg ? -a.sig : a.sig) << BigInt(a.exp - base);
  const bv = (b.neg ? -b.sig : b.sig) << BigInt(b.exp - base);
  const sum = av + bv;
  if (sum === 0n) return { kind: 'finite', neg: a.neg && b.neg, sig: 0n, exp: 0 };
  return round(sum < 0n, sum < 0n ? -sum : sum, 0n, base);
}

/** "%.17Lf" with the trailing zeros (and a bare '.') cut, and "-0" as "0": Redis' LD_STR_HUMAN. */
export function formatLongDouble(v: LongDouble): string {
  if (v.kind === 'inf') return v.neg ? '-inf' : 'inf';
  const scale = 10n ** 17n;
  let q: bigint;
  if (v.exp >= 0) q = (v.sig << BigInt(v.exp)) * scale;
  else q = divRoundEven(v.sig * scale, 1n << BigInt(-v.exp));
  const digits = q.toString().padStart(18, '0');
  let text = `${digits.slice(0, -17)}.${digits.slice(-17)}`.replace(/0+$/, '').replace(/\.$/, '');
  if (v.neg) text = `-${text}`;
  return text === '-0' ? '0' : text;
}

export function isInfinite(v: LongDouble): boolean {
  return v.kind === 'inf';
}

// ---- helpers ----------------------------------------------------------------------------------

/** An exponent written in the input, clamped far beyond any finite result (so no huge powers). */
function clampExp(text: string | undefined): number {
  if (text === undefined) return 0;
  const n = Number(text);
  return Math.max(-100_000, Math.min(100_000, n));
}

/** digits * 10^exp10, correctly rounded. */
function fromDecimal(neg: boolean, digits: bigint, exp10: number): LongDouble {
  if (digits === 0n) return { kind: 'finite', neg, sig: 0n, exp: 0 };
  if (exp10 >= 0) return round(neg, digits * 10n ** BigInt(exp10), 0n, 0);
  // digits / 10^-exp10: scale up by 2^k so the quotient has well over 64 bits, keep the rest sticky.
  const den = 10n ** BigInt(-exp10);
  const k = Math.max(0, bitLength(den) - bitLength(digits) + PRECISION + 2);
  const num = digits << BigInt(k);
  const q = num / den;
  return round(neg, q, num % den === 0n ? 0n : 1n, -k);
}

/**
 * (mag + sticky fraction) * 2^exp rounded to 64 significant bits (fewer for subnormals),
 * nearest-even; `sticky` is 1 when bits below mag's last were not all zero.
 */
function round(neg: boolean, mag: bigint, sticky: bigint, exp: number): LongDouble {
  if (mag === 0n) return { kind: 'finite', neg, sig: 0n, exp: 0 };
  const bits = bitLength(mag);
  // Callers give at least 66 bits whenever sticky is set, so an exact `mag` is the only case
  // with nothing to drop.
  const drop = Math.max(bits - PRECISION, MIN_EXP - exp);
  if (drop <= 0) return finite(neg, mag, exp);
  const kept = mag >> BigInt(drop);
  const rest = mag - (kept << BigInt(drop));
  const half = 1n << BigInt(drop - 1);
  let sig = kept;
  if (rest > half || (rest === half && (sticky !== 0n || (kept & 1n) === 1n))) sig += 1n;
  return finite(neg, sig, exp + drop);
}

function finite(neg: boolean, sig: bigint, exp: number): LongDouble {
  if (sig === 0n) return { kind: 'finite', neg, sig: 0n, exp: 0 };
  if (bitLength(sig) + exp > MAX_BITS_EXP) return { kind: 'inf', neg };
  return { kind: 'finite', neg, sig, exp };
}

function divRoundEven(num: bigint, den: bigint): bigint {
  const q = num / den;
  const r2 = (num % den) * 2n;
  if (r2 > den || (r2 === den && (q & 1n) === 1n)) return q + 1n;
  return q;
}

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}
