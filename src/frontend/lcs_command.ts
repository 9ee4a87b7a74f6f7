// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common subsequence of
// two values, as Redis 7 computes it (t_string.c lcsCommand): the classic dynamic-programming
// table, walked back from its last cell, so the subsequence and the match ranges chosen among
// equal-length answers are exactly Redis'. A missing key is an empty string.
//
// Limit: the table is (len1 + 1) x (len2 + 1) 32-bit cells, computed on the front end's thread;
// past MAX_LCS_CELLS the command answers an error before reading the values (Redis bounds the
// same table by proto-max-bulk-len, 512 MB by default, which would stall a thread for seconds).
import { SYNTAX_ERROR } from '../protocol/commands.js';
import { array, bulk, integer, map, type Reply } from '../protocol/reply.js';
import { fail, optionOf, parseInt64, type Context } from './command_args.js';

/** 32 M cells: a 128 MiB table, about 0.2 s of work. */
export const MAX_LCS_CELLS = 32 * 1024 * 1024;

interface LcsOptions {
  len: boolean;
  idx: boolean;
  withMatchLen: boolean;
  minMatchLen: number;
}

export async function lcsCommand({ session, argv }: Context): Promise<Reply> {
  const opts = optionsOf(argv);
  const [sa, sb] = await Promise.all([session.stat(argv[1]!), session.stat(argv[2]!)]);
  const cells = ((sa?.size ?? 0) + 1) * ((sb?.size ?? 0) + 1);
  if (cells > MAX_LCS_CELLS) fail(`ERR Insufficient memory, transient memory for LCS exceeds ${MAX_LCS_CELLS * 4} bytes`);
  const [a, b] = await Promise.all([session.get(argv[1]!), session.get(argv[2]!)]);
  return lcsReply(a ?? Buffer.alloc(0), b ?? Buffer.alloc(0), opts);
}

function optionsOf(argv: Buffer[]): LcsOptions {
  const opts: LcsOptions = { len: false, idx: false, withMatchLen: false, minMatchLen: 0 };
  for (let j = 3; j < argv.length; j++) {
    const opt = optionOf(argv[j]!);
    if (opt === 'idx') opts.idx = true;
    else if (opt === 'len') opts.len = true;
    else if (opt === 'withmatchlen') opts.withMatchLen = true;
    else if (opt === 'minmatchlen' && j + 1 < argv.length) {
      const n = parseInt64(argv[++j]!);
      // Redis clamps a negative length to 0; anything past a value's length matches nothing.
      opts.minMatchLen = n < 0n ? 0 : n > 0xffffffffn ? 0xffffffff : Number(n);
    } else fail(SYNTAX_ERROR);
  }
  if (opts.len && opts.idx) fail('ERR If you want both the length and indexes, please just use IDX.');
  return opts;
}

/** The table: cell (i, j) holds the LCS length of a[0..i) and b[0..j). */
function tableOf(a: Buffer, b: Buffer): Uint32Array {
  const w = b.length + 1;
  const t = new Uint32Array((a.length + 1) * w);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    const row = i * w;
    const up = row - w;
    for (let j = 1; j <= b.length; j++) {
      if (ai === b[j - 1]) t[row + j] = t[up + j - 1]! + 1;
      else {
        const l1 = t[up + j]!;
        const l2 = t[row + j - 1]!;
        t[row + j] = l1 > l2 ? l1 : l2;
      }
    }
  }
  return t;
}

function lcsReply(a: Buffer, b: Buffer, opts: LcsOptions): Reply {
  const t = tableOf(a, b);
  const w = b.length + 1;
  const total = t[a.length * w + b.length]!;
  if (opts.len) return integer(total);
  const { result, matches } = walkBack(a, b, t, total, opts);
  if (!opts.idx) return bulk(result);
  return map([
    [bulk('matches'), array(matches)],
    [bulk('len'), integer(total)],
  ]);
}

/**
 * From the last cell back to the first: the subsequence, and the ranges of contiguous matches
 * (in both values) in the order Redis emits them, last first.
 */
function walkBack(a: Buffer, b: Buffer, t: Uint32Array, total: number, opts: LcsOptions): { result: Buffer; matches: Reply[] } {
  const w = b.length + 1;
  const result = Buffer.alloc(total);
  const matches: Reply[] = [];
  let idx = total;
  let i = a.length;
  let j = b.length;
  // aStart === a.length means "no range open".
  let aStart = a.length;
  let aEnd = 0;
  let bStart = 0;
  let bEnd = 0;
  while (i > 0 && j > 0) {
    let emit = false;
    if (a[i - 1] === b[j - 1]) {
      result[idx - 1] = a[i - 1]!;
      if (aStart === a.length) {
        aStart = aEnd = i - 1;
        bStart = bEnd = j - 1;
      } else if (aStart === i && bStart === j) {
        aStart--;
        bStart--;
      } else emit = true;
      if (aStart === 0 || bStart === 0) emit = true;
      idx--;
      i--;
      j--;
    } else {
      if (t[(i - 1) * w + j]! > t[i * w + j - 1]!) i--;
      else j--;
      if (aStart !== a.length) emit = true;
    }
    if (emit) {
      const matchLen = aEnd - aStart + 1;
      if (opts.idx && (opts.minMatchLen === 0 || matchLen >= opts.minMatchLen)) {
        const item = [array([integer(aStart), integer(aEnd)]), array([integer(bStart), integer(bEnd)])];
        if (opts.withMatchLen) item.push(integer(matchLen));
        matches.push(array(item));
      }
      aStart = a.length;
    }
  }
  return { result, matches };
}
