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
