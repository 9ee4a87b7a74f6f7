// The digests of an upload, computed as its bytes arrive (on the thread that receives them,
// before they go to the volume writer), and the check against the ones the client named: the
// needle's metadata section is sealed with them only when every named digest matches, so a PUT
// whose bytes differ from what it said commits nothing (BAD_DIGEST, 400). Hashing is
// computation only (node:crypto), as in url_signing.ts.
import { createHash, type Hash } from 'node:crypto';
import { encodeMeta, type BlobMeta } from './blob_meta.js';
import type { ExpectedDigests } from './http_digest.js';
import { crc32c } from '../storage/checksum.js';
import { StoreError } from '../runtime/errors.js';

/** No digest named: only the SHA-256 behind the ETag is computed. */
export const NO_EXPECTED_DIGESTS: ExpectedDigests = { sha256: null, md5: null, crc32c: null };

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

  /**
   * The needle's metadata section as the engine takes it (MetaSource): its length now (the
   * digests have fixed sizes), its bytes sealed once the value has passed through update().
   */
  metaSource(meta: BlobMeta): { length: number; bytes(): Uint8Array } {
    const placeholder: BlobMeta = { ...meta, sha256: null, md5: this.md5 === null ? null : new Uint8Array(16), crc32c: this.crc === null ? null : 0 };
    return { length: encodeMeta(placeholder).length, bytes: () => this.seal(placeholder) };
  }

  /** Checks the named digests, then answers the metadata section with the value's digests. */
  private seal(meta: BlobMeta): Uint8Array {
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
