// The key hash of the on-disk index (docs/formats.md §Hash index): 32-bit FNV-1a over the
// key bytes. It is part of the file format (the bucket of a key is `hash & (B - 1)` and the
// hash is stored in every entry), so it must never change. Math.imul keeps it in int32
// arithmetic: no allocation, no floating-point multiply.

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** 32-bit FNV-1a of the key bytes, as an unsigned number. */
export function keyHash(key: Uint8Array): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < key.length; i++) {
    h ^= key[i]!;
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}
