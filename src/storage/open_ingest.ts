// An open-ended needle received by a member of a volume group (docs/volume-server.md, the
// open/seal/abort routes): the master tees a chunked upload of unknown length to its members
// as it writes it to its own stream volume (volume_file.ts, reserveOpen). The value bytes come
// first, written at offset + 32 + K as they arrive; the header, key, metadata and trailer come
// last, in the seal, exactly as the master wrote them. Until then the region holds no needle
// magic (a crash leaves bytes a scan steps over), as on the master.
//
// Invariants:
// - it holds the volume's tail from begin to seal or abort: no other append can land meanwhile;
// - the seal is checked whole before a byte of it is written: the header (with the key) must
//   declare exactly K, M and the value length received, and the trailer must be the needle's
//   CRC computed from the header's CRC and the value's (crc32Combine: no value byte read back);
// - abandon() (the master aborted its upload) leaves the bytes the master's abort leaves: the
//   value bytes received, the rest zeros, the tail past the needle's whole region;
// - abort() (a refused seal, a body cut or stalled) cuts the volume back to the offset.
import { StoreError } from '../runtime/errors.js';
import { crc32, crc32Combine } from './checksum.js';
import type { IngestTarget } from './needle_ingest.js';
import { MAX_KEY_LENGTH, MAX_META_LENGTH, MAX_VALUE_LENGTH, NEEDLE_HEADER_SIZE, NEEDLE_TRAILER_SIZE, alignUp, decodeNeedleHeader, decodeTrailer, needleLength } from './volume_format.js';

export interface OpenBodyEnded {
  /** Value bytes received. */
  written: number;
  /** CRC-32 of the value bytes. */
  crc32: number;
}

export class OpenIngest {
  private written = 0;
  private valueCrc = 0;
  private state: 'receiving' | 'filled' | 'sealed' | 'aborted' = 'receiving';

  constructor(
    private readonly target: IngestTarget,
    readonly keyLength: number,
    readonly metaLength: number,
  ) {
    checkOpenLengths(keyLength, metaLength);
  }

  get volume(): number {
    return this.target.volume;
  }

  get offset(): number {
    return this.target.offset;
  }

  /** Value bytes received so far. */
  get received(): number {
    return this.written;
  }

  /** True once the body has ended and the needle waits for its seal (or abort). */
  get filled(): boolean {
    return this.state === 'filled';
  }

  write(chunk: Uint8Array): void {
    this.expect('receiving');
    if (this.written + chunk.length > MAX_VALUE_LENGTH) {
      this.abort();
      throw new StoreError('VALUE_TOO_LARGE', `an open needle past ${MAX_VALUE_LENGTH} bytes`);
    }
    try {
      this.target.write(chunk, this.valueStart + this.written);
    } catch (err) {
      this.abort();
      throw err;
    }
    this.valueCrc = crc32(chunk, this.valueCrc);
    this.written += chunk.length;
  }

  /** The body has ended: what came, for the sender to compare with what it sent. */
  endBody(): OpenBodyEnded {
    this.expect('receiving');
    this.state = 'filled';
    return { written: this.written, crc32: this.valueCrc >>> 0 };
  }

  /**
   * `bytes` = header + key (32 + K), then metadata + trailer (M + 4), as the master wrote them.
   * Checked, then written (metadata and trailer first, the header last, as the master does).
   * Answers the needle's length; a refused seal cuts the volume back (CHECKSUM_MISMATCH).
   */
  seal(bytes: Uint8Array): number {
    this.expect('filled');
    const headLength = NEEDLE_HEADER_SIZE + this.keyLength;
    const length = needleLength(this.keyLength, this.written, this.metaLength);
    try {
      if (bytes.length !== headLength + this.metaLength + NEEDLE_TRAILER_SIZE) {
        throw new StoreError('SIZE_MISMATCH', `a seal of ${headLength + this.metaLength + NEEDLE_TRAILER_SIZE} bytes expected, ${bytes.length} given`);
      }
      const head = bytes.subarray(0, headLength);
      const tail = bytes.subarray(headLength);
      this.checkHead(head);
      const crc = crc32(tail.subarray(0, this.metaLength), crc32Combine(crc32(head), this.valueCrc, this.written));
      if (decodeTrailer(tail.subarray(this.metaLength)) !== crc >>> 0) {
        throw new StoreError('CHECKSUM_MISMATCH', `volume ${this.volume} offset ${this.offset}: the trailer is not the CRC of the needle received`);
      }
      this.target.write(tail, this.valueStart + this.written);
      this.target.write(head, this.offset);
    } catch (err) {
      this.abort();
      throw err;
    }
    this.state = 'sealed';
    this.target.end(length);
    return length;
  }

  /**
   * The master aborted its upload and its tail moved to `tail`: the same here. Only when the
   * value bytes received make that tail (else CONFLICT, and the volume is cut back: a repair
   * copies the master's bytes).
   */
  abandon(tail: number): void {
    this.expect('filled');
    const length = needleLength(this.keyLength, this.written, this.metaLength);
    if (alignUp(this.offset + length) !== tail) {
      this.abort();
      throw new StoreError('CONFLICT', `volume ${this.volume}: ${this.written} value bytes at ${this.offset} end at ${alignUp(this.offset + length)}, not ${tail}`);
    }
    this.state = 'aborted';
    this.target.end(length);
  }

  /** Cuts the volume back to the offset. Idempotent. */
  abort(): void {
    if (this.state === 'aborted' || this.state === 'sealed') return;
    this.state = 'aborted';
    this.target.end(null);
  }

  private get valueStart(): number {
    return this.offset + NEEDLE_HEADER_SIZE + this.keyLength;
  }

  private checkHead(head: Uint8Array): void {
    const key = head.subarray(NEEDLE_HEADER_SIZE);
    const header = decodeNeedleHeader(head, key);
    if (header === null) throw new StoreError('CHECKSUM_MISMATCH', `volume ${this.volume} offset ${this.offset}: not a needle header for its key`);
    if (header.valueLength !== this.written || header.metaLength !== this.metaLength || header.flags !== 0) {
      throw new StoreError('CHECKSUM_MISMATCH', `volume ${this.volume} offset ${this.offset}: the header declares ${header.valueLength} value bytes and ${header.metaLength} of metadata; ${this.written} and ${this.metaLength} came`);
    }
  }

  private expect(state: 'receiving' | 'filled'): void {
    if (this.state === state) return;
    if (this.state === 'aborted') throw new StoreError('ABORTED', 'the open needle was aborted');
    throw new StoreError('CONFLICT', `the open needle at ${this.offset} is ${this.state}, not ${state}`);
  }
}

/** Checked before the tail is taken, so a refused open needle holds nothing. */
export function checkOpenLengths(keyLength: number, metaLength: number): void {
  if (!Number.isInteger(keyLength) || keyLength < 1 || keyLength > MAX_KEY_LENGTH) throw new StoreError('BAD_ARGUMENT', `key_length ${keyLength} out of range`);
  if (!Number.isInteger(metaLength) || metaLength < 0 || metaLength > MAX_META_LENGTH) throw new StoreError('BAD_ARGUMENT', `meta_length ${metaLength} out of range`);
}
