// The one CRC-32 (IEEE, zlib's) of every on-disk format: needles, WAL records, index headers
// and entries, volume superblocks. Incremental: crc32(b, crc32(a)) === crc32(a ++ b).
import * as zlib from 'node:zlib';

export function crc32(data: Uint8Array, previous = 0): number {
  // zlib.crc32 of an empty view over a zero-length ArrayBuffer (one that crossed a thread, or
  // `new ArrayBuffer(0)`) returns 0 instead of `previous` on Node 20: an empty value then got a
  // zero trailer and failed its own checksum. Nothing to add: the running CRC is unchanged.
  if (data.byteLength === 0) return previous >>> 0;
  return zlib.crc32(data, previous) >>> 0;
}

// ---- combining ---------------------------------------------------------------------------
// crc32Combine(crc(a), crc(b), b.length) === crc(a ++ b), without the bytes of a or b (zlib's
// crc32_combine: multiply crc(a) by x^(8·len(b)) modulo the CRC polynomial, over GF(2), then
// add crc(b)). A needle whose value length is known only at its end (a chunked upload) is
// written value first, header last; its trailer is the CRC of header ++ key ++ value all the
// same, from the value's CRC computed as it streamed and the header's computed at the end.

/** Reversed IEEE polynomial, as zlib uses it. */
const POLY = 0xedb88320;

function gf2Times(mat: Uint32Array, vec: number): number {
  let sum = 0;
  for (let i = 0; vec !== 0; i++, vec >>>= 1) if ((vec & 1) !== 0) sum ^= mat[i]!;
  return sum >>> 0;
}

function gf2Square(square: Uint32Array, mat: Uint32Array): void {
  for (let n = 0; n < 32; n++) square[n] = gf2Times(mat, mat[n]!);
}

export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (!Number.isSafeInteger(lengthB) || lengthB < 0) throw new RangeError(`crc32Combine length ${lengthB}`);
  if (lengthB === 0) return crcA >>> 0;
  const even = new Uint32Array(32); // operator for 2^(2k) zero bits
  const odd = new Uint32Array(32); // operator for 2^(2k+1) zero bits
  odd[0] = POLY; // the operator for one zero bit
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  gf2Square(even, odd); // two zero bits
  gf2Square(odd, even); // four zero bits
  let crc = crcA >>> 0;
  let len = lengthB;
  // Apply len zero bytes to crcA, one bit of len at a time (the first square gives one byte).
  do {
    gf2Square(even, odd);
    if (len % 2 === 1) crc = gf2Times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    gf2Square(odd, even);
    if (len % 2 === 1) crc = gf2Times(odd, crc);
    len = Math.floor(len / 2);
  } while (len !== 0);
  return (crc ^ crcB) >>> 0;
}

// ---- CRC-32C -----------------------------------------------------------------------------
// CRC-32C (Castagnoli, as iSCSI, ext4, S3's x-amz-checksum-crc32c and gsutil use it), for a
// client that names it for its upload. Not a format checksum of ours: only uploads that ask
// for it pay for it. Table-driven, a byte at a time; incremental like crc32.

const CRC32C_TABLE = ((): Uint32Array => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) crc = CRC32C_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}
