// The digests of an upload, computed as its bytes arrive (on the front end's thread, before they
// go to the volume writer), and the check against the ones the client named: the needle's
// metadata section is sealed with them only when every named digest matches, so a PUT whose
// bytes differ from what it said commits nothing (BAD_DIGEST, 400).
import { createHash, type Hash } from 'node:crypto';
import { encodeMeta, type BlobMeta } from '../protocol/blob_meta.js';
import type { ExpectedDigests } from '../protocol/http_digest.js';
import { crc32c } from '../storage/checksum.js';
import { StoreError } from '../runtime/errors.js';

export class UploadDigest {
  private readonly sha256: Hash = createHash('sha256');
  private readonly md5: Hash | null;
  private crc: number | null;
  /** The value's SHA-256, once sealed. */
  digest: Buffer | null = null;

  constructor(private readonly expected: ExpectedDigests) {
    this.md5 = expected.md5 === null ? null : createHash('md5');
    this.crc = expected.crc32c === null ? null : 0;
  }

  update(bytes: Uint8Array): void {
    this.sha256.update(bytes);
    this.md5?.update(bytes);
    if (this.crc !== null) this.crc = crc32c(bytes, this.crc);
  }

  /** The metadata as it will be stored: same length before and after sealing (placeholders). */
  placeholder(meta: BlobMeta): BlobMeta {
    return { ...meta, sha256: null, md5: this.md5 === null ? null : new Uint8Array(16), crc32c: this.crc === null ? null : 0 };
  }

  /** Checks the named digests, then answers the metadata section with the value's digests. */
  seal(meta: BlobMeta): Uint8Array {
    const sha256 = this.sha256.digest();
    const md5 = this.md5?.digest() ?? null;
    const mismatch = (this.expected.sha256 !== null && !sha256.equals(this.expected.sha256)) ? 'SHA-256'
      : (this.expected.md5 !== null && md5 !== null && !md5.equals(this.expected.md5)) ? 'MD5'
      : (this.expected.crc32c !== null && this.crc !== this.expected.crc32c) ? 'CRC-32C'
      : null;
    if (mismatch !== null) throw new StoreError('BAD_DIGEST', `the body's ${mismatch} is not the one its headers named; nothing was stored`);
    this.digest = sha256;
    return encodeMeta({ ...meta, sha256, md5, crc32c: this.crc });
  }
}
