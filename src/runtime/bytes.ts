// Keys and values are bytes everywhere below the API; a string is its UTF-8 bytes. Maps keyed
// by byte strings use the latin1 form of the bytes: lossless, one char per byte, so binary
// keys never collide.

export function toBuffer(value: Uint8Array | string): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** The map key of a byte key: lossless, one char per byte. */
export function mapKey(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export function fromMapKey(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

/** Byte-wise equality. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
