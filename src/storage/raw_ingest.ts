// A region of a volume received as raw bytes: what the master sends a member of a volume group
// (docs/volume-server.md, "raw appends"). The master's own copy of the region is the reference:
// it may hold garbage needles (an aborted upload) that no needle check would pass, so the bytes
// are written as they come and the CRC-32 of all of them is given back for the sender to
// compare with the CRC of what it sent: a byte changed in flight is found, end to end.
//
// Invariants:
// - the region is all or nothing: finish() with a length that is not a multiple of 8, or
//   abort(), cuts the volume back to the offset it started at;
// - nothing is written past the length the request declared.
import { StoreError } from '../runtime/errors.js';
import { crc32 } from './checksum.js';
import type { IngestTarget } from './needle_ingest.js';
import { NEEDLE_ALIGN } from './volume_format.js';

export class RawIngest {
  private received = 0;
  private crc = 0;
  private state: 'open' | 'finished' | 'aborted' = 'open';

  constructor(
    private readonly target: IngestTarget,
    private readonly declared: number,
  ) {
    checkRegionLength(declared);
  }

  get written(): number {
    return this.received;
  }

  write(chunk: Uint8Array): void {
    if (this.state !== 'open') throw new StoreError('ABORTED', 'the region was refused or aborted');
    if (this.received + chunk.length > this.declared) {
      this.abort();
      throw new StoreError('SIZE_MISMATCH', `region of ${this.declared} bytes; more received`);
    }
    try {
      this.target.write(chunk, this.target.offset + this.received);
    } catch (err) {
      this.abort();
      throw err;
    }
    this.crc = crc32(chunk, this.crc);
    this.received += chunk.length;
  }

  /** The region is whole: its length and the CRC-32 of its bytes. */
  finish(): { length: number; crc32: number } {
    if (this.state !== 'open') throw new StoreError('ABORTED', 'the region was refused or aborted');
    if (this.received !== this.declared) {
      this.abort();
      throw new StoreError('SIZE_MISMATCH', `region of ${this.declared} bytes; ${this.received} received`);
    }
    this.state = 'finished';
    this.target.end(this.received);
    return { length: this.received, crc32: this.crc };
  }

  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.target.end(null);
  }
}

/** Checked before the tail is taken, so a refused region holds nothing. */
export function checkRegionLength(length: number): void {
  if (!Number.isSafeInteger(length) || length <= 0 || length % NEEDLE_ALIGN !== 0) {
    throw new StoreError('BAD_ARGUMENT', `a raw region is a positive multiple of ${NEEDLE_ALIGN} bytes, not ${length}`);
  }
}
