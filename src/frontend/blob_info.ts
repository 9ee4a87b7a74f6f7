// What a response says about a stored blob besides its bytes: its metadata (Content-Type and the
// other headers its PUT stored, user metadata, digests) and its ETag, derived from its content
// (the first 128 bits of the SHA-256 of the value: the same bytes give the same ETag wherever
// and whenever they are stored, RFC 9110 §8.8.3).
// A blob PUT over HTTP carries its SHA-256 in its needle's metadata section. A value written
// another way (a SET over TCP, or a needle from before metadata existed) has none: its digest is
// computed from its bytes when first asked, and remembered by needle address (a needle never
// changes), in a bounded cache per front end.
import { createHash } from 'node:crypto';
import type { Engine } from '../db/engine.js';
import { decodeMeta, etagOfDigest, type BlobMeta } from '../protocol/blob_meta.js';
import { valueLengthOf, type IndexEntry } from '../storage/types.js';

export interface BlobInfo {
  etag: string;
  meta: BlobMeta | null;
  sha256: Uint8Array;
}

/** Digests of values without a stored one, by needle address. */
const DIGEST_CACHE_ENTRIES = 4096;
const digests = new Map<string, Uint8Array>();
const HASH_CHUNK = 1024 * 1024;

export async function blobInfo(engine: Engine, entry: IndexEntry): Promise<BlobInfo> {
  const { meta, sha256 } = await described(engine, entry, Infinity);
  return { etag: etagOfDigest(sha256!), meta, sha256: sha256! };
}

/**
 * The ETag when it is cheap: stored, cached, or a value of at most `hashUpTo` bytes to hash; null
 * otherwise (a listing must not read gigabytes to fill in a field).
 */
export async function cheapEtag(engine: Engine, entry: IndexEntry, hashUpTo: number): Promise<{ etag: string | null; meta: BlobMeta | null }> {
  const { meta, sha256 } = await described(engine, entry, hashUpTo);
  return { etag: sha256 === null ? null : etagOfDigest(sha256), meta };
}

/** The metadata and the digest: stored, cached, or hashed from a value of at most hashUpTo bytes (else null). */
async function described(engine: Engine, entry: IndexEntry, hashUpTo: number): Promise<{ meta: BlobMeta | null; sha256: Uint8Array | null }> {
  const meta = metaOf(await engine.readMeta(entry));
  const known = meta?.sha256 ?? digests.get(addressKey(entry)) ?? null;
  if (known !== null || valueLengthOf(entry.address, entry.key.length) > hashUpTo) return { meta, sha256: known };
  return { meta, sha256: await valueDigest(engine, entry) };
}

function metaOf(bytes: Uint8Array): BlobMeta | null {
  return bytes.length === 0 ? null : decodeMeta(bytes);
}

/** The info of a needle already read whole (the synchronous GET): no I/O. */
export function infoOfNeedle(entry: IndexEntry, meta: Uint8Array, value: Uint8Array): BlobInfo {
  const decoded = metaOf(meta);
  let sha256 = decoded?.sha256 ?? digests.get(addressKey(entry));
  if (sha256 === undefined) {
    sha256 = createHash('sha256').update(value).digest();
    remember(addressKey(entry), sha256);
  }
  return { etag: etagOfDigest(sha256), meta: decoded, sha256 };
}

function remember(id: string, digest: Uint8Array): void {
  if (digests.size >= DIGEST_CACHE_ENTRIES) digests.delete(digests.keys().next().value!);
  digests.set(id, digest);
}

/** The value's SHA-256 hashed from its bytes (the caller has looked in the cache), then cached. */
async function valueDigest(engine: Engine, entry: IndexEntry): Promise<Uint8Array> {
  const size = valueLengthOf(entry.address, entry.key.length);
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(HASH_CHUNK, size)));
  for await (const chunk of engine.stream(entry, 0, size, buf)) hash.update(chunk);
  const digest = hash.digest();
  remember(addressKey(entry), digest);
  return digest;
}

function addressKey(entry: IndexEntry): string {
  return `${entry.address.volume}:${entry.address.offset}`;
}
