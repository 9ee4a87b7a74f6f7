// A blob's metadata: the representation headers a PUT sent (Content-Type and the like), user
// metadata (X-Brise-Meta-*) and the digests of its bytes, as stored in a version-2 needle's
// metadata section (docs/formats.md §Volume file). Pure: parse from request headers, encode,
// decode, and the response headers a GET or HEAD gives back.
//
// Invariants:
// - everything is bounded before it is stored: each header value, the count and bytes of user
//   metadata, the whole section (MAX_META_LENGTH);
// - the SHA-256 of the value is always there (the ETag derives from it); its length is fixed, so
//   the section's length is known before the value's digests are;
// - decode never throws on bytes it did not write: unknown tags are skipped, a malformed section
//   decodes as null.
import { MAX_META_LENGTH } from '../storage/volume_format.js';

/** Representation headers kept with a blob, by tag (the order of the section). */
export const STORED_HEADERS = [
  [1, 'Content-Type'],
  [2, 'Content-Disposition'],
  [3, 'Content-Encoding'],
  [4, 'Content-Language'],
  [5, 'Cache-Control'],
  [6, 'Expires'],
] as const;
const TAG_USER = 7;
const TAG_SHA256 = 16;
const TAG_MD5 = 17;
const TAG_CRC32C = 18;

export const USER_META_PREFIX = 'x-brise-meta-';
export const MAX_HEADER_VALUE = 1024;
export const MAX_USER_ENTRIES = 32;
export const MAX_USER_NAME = 64;
export const MAX_USER_BYTES = 2048;

export interface BlobMeta {
  /** Stored representation headers, as [canonical name, value], in tag order. */
  headers: [string, string][];
  /** User metadata, as [lower-case name without the prefix, value]. */
  user: [string, string][];
  sha256: Uint8Array | null;
  md5: Uint8Array | null;
  crc32c: number | null;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Header values we store must be printable ASCII (what HTTP/1.1 clients send and proxies keep). */
const VALUE_RE = /^[\x20-\x7e\t]*$/;
const NAME_RE = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * The metadata a PUT asks to store, from its headers (`all`: every header as [lower-case name,
 * value], as uWS's forEach gives them). Digests are filled in later, from the bytes.
 */
export function metaFromHeaders(all: readonly [string, string][]): Parsed<BlobMeta> {
  const meta: BlobMeta = { headers: [], user: [], sha256: null, md5: null, crc32c: null };
  for (const [, name] of STORED_HEADERS) {
    const value = all.find(([n]) => n === name.toLowerCase())?.[1];
    if (value === undefined || value === '') continue;
    if (value.length > MAX_HEADER_VALUE || !VALUE_RE.test(value)) {
      return { ok: false, message: `${name} must be printable ASCII of at most ${MAX_HEADER_VALUE} bytes` };
    }
    meta.headers.push([name, value]);
  }
  let userBytes = 0;
  for (const [n, value] of all) {
    if (!n.startsWith(USER_META_PREFIX)) continue;
    const name = n.slice(USER_META_PREFIX.length);
    if (name.length === 0 || name.length > MAX_USER_NAME || !NAME_RE.test(name)) {
      return { ok: false, message: `user metadata name ${JSON.stringify(n.slice(0, 80))}: 1..${MAX_USER_NAME} token characters after X-Brise-Meta-` };
    }
    if (!VALUE_RE.test(value)) return { ok: false, message: `X-Brise-Meta-${name} must be printable ASCII` };
    if (meta.user.some(([u]) => u === name)) return { ok: false, message: `X-Brise-Meta-${name} given twice` };
    userBytes += name.length + value.length;
    meta.user.push([name, value]);
  }
  if (meta.user.length > MAX_USER_ENTRIES) return { ok: false, message: `at most ${MAX_USER_ENTRIES} X-Brise-Meta-* headers` };
  if (userBytes > MAX_USER_BYTES) return { ok: false, message: `X-Brise-Meta-* names and values: at most ${MAX_USER_BYTES} bytes together` };
  return { ok: true, value: meta };
}

/** The section's bytes. The SHA-256 field is always written (zeros until the digest is known). */
export function encodeMeta(meta: BlobMeta): Uint8Array {
  const fields: [number, Uint8Array][] = [];
  const text = (s: string): Uint8Array => Buffer.from(s, 'latin1');
  for (const [tag, name] of STORED_HEADERS) {
    const value = meta.headers.find(([n]) => n === name)?.[1];
    if (value !== undefined) fields.push([tag, text(value)]);
  }
  for (const [name, value] of meta.user) {
    const n = text(name);
    fields.push([TAG_USER, Buffer.concat([Buffer.from([n.length]), n, text(value)])]);
  }
  fields.push([TAG_SHA256, meta.sha256 ?? new Uint8Array(32)]);
  if (meta.md5 !== null) fields.push([TAG_MD5, meta.md5]);
  if (meta.crc32c !== null) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(meta.crc32c >>> 0);
    fields.push([TAG_CRC32C, b]);
  }
  const size = fields.reduce((a, [, b]) => a + 3 + b.length, 0);
  if (size > MAX_META_LENGTH) throw new RangeError(`metadata of ${size} bytes`);
  const out = Buffer.alloc(size);
  let at = 0;
  for (const [tag, bytes] of fields) {
    out[at] = tag;
    out.writeUInt16LE(bytes.length, at + 1);
    out.set(bytes, at + 3);
    at += 3 + bytes.length;
  }
  return out;
}

/** The section read back; null when it is not one we wrote (an empty section has no fields). */
export function decodeMeta(bytes: Uint8Array): BlobMeta | null {
  const meta: BlobMeta = { headers: [], user: [], sha256: null, md5: null, crc32c: null };
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < buf.length) {
    if (at + 3 > buf.length) return null;
    const tag = buf[at]!;
    const length = buf.readUInt16LE(at + 1);
    if (at + 3 + length > buf.length) return null;
    const field = buf.subarray(at + 3, at + 3 + length);
    at += 3 + length;
    const header = STORED_HEADERS.find(([t]) => t === tag);
    if (header !== undefined) meta.headers.push([header[1], field.toString('latin1')]);
    else if (tag === TAG_USER) {
      const n = field[0] ?? 0;
      if (field.length < 1 + n) return null;
      meta.user.push([field.subarray(1, 1 + n).toString('latin1'), field.subarray(1 + n).toString('latin1')]);
    } else if (tag === TAG_SHA256 && length === 32) meta.sha256 = new Uint8Array(field);
    else if (tag === TAG_MD5 && length === 16) meta.md5 = new Uint8Array(field);
    else if (tag === TAG_CRC32C && length === 4) meta.crc32c = field.readUInt32BE(0);
    // any other tag: written by a later version; skipped
  }
  return meta;
}

/** The strong ETag of a value: the first 128 bits of its SHA-256, in hex (same bytes, same tag). */
export function etagOfDigest(sha256: Uint8Array): string {
  return `"${Buffer.from(sha256.buffer, sha256.byteOffset, 16).toString('hex')}"`;
}

/** What a GET or HEAD gives back of the metadata (Content-Type defaults to octet-stream). */
export function metaResponseHeaders(meta: BlobMeta | null): [string, string][] {
  const out: [string, string][] = [];
  const type = meta?.headers.find(([n]) => n === 'Content-Type')?.[1];
  out.push(['Content-Type', type ?? 'application/octet-stream']);
  if (meta === null) return out;
  for (const [name, value] of meta.headers) if (name !== 'Content-Type') out.push([name, value]);
  for (const [name, value] of meta.user) out.push([`X-Brise-Meta-${name}`, value]);
  if (meta.md5 !== null) out.push(['Content-MD5', Buffer.from(meta.md5).toString('base64')]);
  if (meta.crc32c !== null) out.push(['X-Brise-Checksum-CRC32C', crc32cText(meta.crc32c)]);
  return out;
}

/** The digest headers of a value: Repr-Digest (RFC 9530), from its SHA-256. */
export function reprDigest(sha256: Uint8Array): string {
  return `sha-256=:${Buffer.from(sha256).toString('base64')}:`;
}

/** CRC-32C as S3 and gsutil show it: base64 of the 4 big-endian bytes. */
export function crc32cText(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  return b.toString('base64');
}
