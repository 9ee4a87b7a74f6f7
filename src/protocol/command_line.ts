// Splits one typed command line into arguments exactly as redis-cli does (sdssplitargs in
// Redis' sds.c), so a line pasted from redis-cli means the same thing here:
//   - runs of whitespace separate arguments;
//   - "double quotes" take the escapes \n \r \t \b \a \xHH and \<any> = that character;
//   - 'single quotes' take only \' ; everything else is literal;
//   - a quote may start in the middle of a word (ab"cd" is abcd);
//   - an unterminated quote, or a closing quote followed by anything but whitespace, is an
//     error.
// Arguments are Buffers: a line is bytes and \xHH can produce any byte, \x00 included.
// One deliberate difference: C stops at a raw NUL byte; we treat it as an ordinary byte,
// because our lines are length-delimited Buffers, not C strings.
//
// Never throws on any input: errors come back as a typed value. Bounded: the line length and
// the argument count are checked before any argument is built.

export interface CommandLineLimits {
  /** Bytes in one line. */
  maxLineBytes: number;
  /** Arguments in one line. */
  maxArgs: number;
}

export const DEFAULT_COMMAND_LINE_LIMITS: CommandLineLimits = {
  maxLineBytes: 64 * 1024,
  maxArgs: 1024 * 1024,
};

export type CommandLineErrorCode = 'UNBALANCED_QUOTES' | 'LINE_TOO_LONG' | 'TOO_MANY_ARGS';

export interface CommandLineError {
  code: CommandLineErrorCode;
  message: string;
}

export type SplitResult =
  | { ok: true; args: Buffer[] }
  | { ok: false; error: CommandLineError };

const SPACE = 0x20, TAB = 0x09, LF = 0x0a, CR = 0x0d, VT = 0x0b, FF = 0x0c;
const DQUOTE = 0x22, SQUOTE = 0x27, BACKSLASH = 0x5c, LOWER_X = 0x78;

/** C isspace() in the C locale: where sdssplitargs skips between arguments. */
function isSpace(b: number | undefined): boolean {
  return b === SPACE || b === TAB || b === LF || b === CR || b === VT || b === FF;
}

/** What ends an unquoted word in sdssplitargs (narrower than isspace: no \v, no \f). */
function endsWord(b: number): boolean {
  return b === SPACE || b === TAB || b === LF || b === CR;
}

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}

const ESCAPES: Record<number, number> = { 0x6e: LF, 0x72: CR, 0x74: TAB, 0x62: 0x08, 0x61: 0x07 };

function fail(code: CommandLineErrorCode, message: string): SplitResult {
  return { ok: false, error: { code, message } };
}

const UNBALANCED = 'Invalid argument(s): unbalanced quotes';

/** A parse of one argument: its bytes and the position after it, or null on bad quoting. */
type ArgParse = { arg: Buffer; next: number } | null;

/** Parses one argument starting at `start` (not whitespace) of `line`. */
function parseArg(line: Buffer, start: number): ArgParse {
  const out: number[] = [];
  let p = start;
  for (;;) {
    const b = line[p];
    if (b === undefined || endsWord(b)) return { arg: Buffer.from(out), next: p };
    if (b === DQUOTE || b === SQUOTE) {
      const end = b === DQUOTE ? readDoubleQuoted(line, p + 1, out) : readSingleQuoted(line, p + 1, out);
      // The closing quote must be followed by whitespace or the end of the line.
      if (end < 0 || (end < line.length && !isSpace(line[end]))) return null;
      return { arg: Buffer.from(out), next: end };
    }
    out.push(b);
    p++;
  }
}

/** Reads a "..." body from p; returns the position after the closing quote, or -1. */
function readDoubleQuoted(line: Buffer, p: number, out: number[]): number {
  while (p < line.length) {
    const b = line[p]!;
    if (b === DQUOTE) return p + 1;
    if (b === BACKSLASH && line[p + 1] === LOWER_X && hexValue(line[p + 2]) >= 0 && hexValue(line[p + 3]) >= 0) {
      out.push(hexValue(line[p + 2]) * 16 + hexValue(line[p + 3]));
      p += 4;
    } else if (b === BACKSLASH && p + 1 < line.length) {
      const c = line[p + 1]!;
      out.push(ESCAPES[c] ?? c);
      p += 2;
    } else {
      out.push(b);
      p++;
    }
  }
  return -1;
}

/** Reads a '...' body from p; returns the position after the closing quote, or -1. */
function readSingleQuoted(line: Buffer, p: number, out: number[]): number {
  while (p < line.length) {
    const b = line[p]!;
    if (b === BACKSLASH && line[p + 1] === SQUOTE) {
      out.push(SQUOTE);
      p += 2;
    } else if (b === SQUOTE) {
      return p + 1;
    } else {
      out.push(b);
      p++;
    }
  }
  return -1;
}

/** Splits a command line (a string is taken as UTF-8) into its arguments. */
export function splitCommandLine(input: string | Uint8Array, limits: Partial<CommandLineLimits> = {}): SplitResult {
  const { maxLineBytes, maxArgs } = { ...DEFAULT_COMMAND_LINE_LIMITS, ...limits };
  const line = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (line.length > maxLineBytes) {
    return fail('LINE_TOO_LONG', `Invalid argument(s): line is ${line.length} bytes, the limit is ${maxLineBytes}`);
  }
  const args: Buffer[] = [];
  let p = 0;
  for (;;) {
    while (p < line.length && isSpace(line[p])) p++;
    if (p >= line.length) return { ok: true, args };
    if (args.length >= maxArgs) {
      return fail('TOO_MANY_ARGS', `Invalid argument(s): more than ${maxArgs} arguments`);
    }
    const parsed = parseArg(line, p);
    if (parsed === null) return fail('UNBALANCED_QUOTES', UNBALANCED);
    args.push(parsed.arg);
    p = parsed.next;
  }
}

/**
 * One argument written so that splitCommandLine gives its bytes back: bare when it is a
 * plain printable word, else double-quoted with escapes (the redis-cli repr).
 */
export function quoteArg(arg: Uint8Array): string {
  let plain = arg.length > 0;
  for (const b of arg) {
    if (b <= 0x20 || b >= 0x7f || b === DQUOTE || b === SQUOTE || b === BACKSLASH) {
      plain = false;
      break;
    }
  }
  if (plain) return Buffer.from(arg).toString('latin1');
  let out = '"';
  for (const b of arg) out += quoteByte(b);
  return out + '"';
}

function quoteByte(b: number): string {
  if (b === BACKSLASH) return '\\\\';
  if (b === DQUOTE) return '\\"';
  if (b === LF) return '\\n';
  if (b === CR) return '\\r';
  if (b === TAB) return '\\t';
  if (b >= 0x20 && b <= 0x7e) return String.fromCharCode(b);
  return '\\x' + b.toString(16).padStart(2, '0');
}

/** Joins arguments into one line that splitCommandLine splits back into the same bytes. */
export function joinCommandLine(args: readonly Uint8Array[]): string {
  return args.map(quoteArg).join(' ');
}
