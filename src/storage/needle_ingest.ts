// A needle received as raw bytes (header, key, value, metadata, trailer), as a member of a
// volume group receives it from the master or from a peer during repair (docs/volume-server.md):
// checked as it streams in, written where it belongs, and either whole and valid at the end or
// cut back as if it had never come.
//
// Invariants:
// - nothing is written before the header and key are in and their CRC holds: the lengths a
//   header declares are trusted only then, and bound what may follow;
// - the needle's CRC covers every byte before the trailer; finish() checks it against the
//   trailer and refuses a needle that is short, long, or damaged (CHECKSUM_MISMATCH, SIZE_MISMATCH);
// - on any refusal or abort the volume is cut back to the offset the needle started at.
import { StoreError } from '../runtime/errors.js';
import { crc32 } from './checksum.js';
import { needleAddress, type NeedleAddress } from './types.js';
import { NEEDLE_HEADER_SIZE, NEEDLE_TRAILER_SIZE, decodeNeedleHeader, decodeTrailer, needleLength } from './volume_format.js';

export interface IngestTarget {
  readonly volume: number;
  readonly offset: number;
  /** Writes bytes at a file position. */
  write(buf: Uint8Array, position: number): void;
  /** The needle is whole (length) or refused (null: cut back to the offset). */
  end(length: number | null): void;
}

export class NeedleIngest {
  private head: Uint8Array = new Uint8Array(0);
  private length = -1;
  private received = 0;
  private crc = 0;
  private readonly trailer = new Uint8Array(NEEDLE_TRAILER_SIZE);
  private state: 'open' | 'finished' | 'aborted' = 'open';

  constructor(private readonly target: IngestTarget) {}

  /** The needle's length once its header is in; -1 before. */
  get declaredLength(): number {
    return this.length;
  }

  write(chunk: Uint8Array): void {
    this.checkOpen();
    try {
      let at = 0;
      if (this.length < 0) at = this.takeHead(chunk);
      if (this.length < 0 || at >= chunk.length) return;
      this.takeBody(chunk.subarray(at));
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  finish(): NeedleAddress {
    this.checkOpen();
    if (this.length < 0 || this.received !== this.length) {
      this.abort();
      throw new StoreError('SIZE_MISMATCH', `needle of ${this.length < 0 ? 'no whole header' : `${this.length} bytes`}; ${this.received} received`);
    }
    if (decodeTrailer(this.trailer) !== this.crc) {
      this.abort();
      throw new StoreError('CHECKSUM_MISMATCH', `needle at volume ${this.target.volume} offset ${this.target.offset}: CRC mismatch`);
    }
    this.state = 'finished';
    this.target.end(this.length);
    const meta = decodeNeedleHeader(this.head)!.metaLength;
    return needleAddress(this.target.volume, this.target.offset, this.length, meta);
  }

  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.target.end(null);
  }

  /** Gathers the header and key; returns how much of the chunk it took. */
  private takeHead(chunk: Uint8Array): number {
    let at = 0;
    while (this.length < 0 && at < chunk.length) {
      const want = this.head.length < NEEDLE_HEADER_SIZE ? NEEDLE_HEADER_SIZE : NEEDLE_HEADER_SIZE + this.keyLength();
      const take = Math.min(want - this.head.length, chunk.length - at);
      const head = new Uint8Array(this.head.length + take);
      head.set(this.head);
      head.set(chunk.subarray(at, at + take), this.head.length);
      this.head = head;
      at += take;
      // The lengths are checked as soon as the fixed header is in, before the key is waited for.
      if (head.length === NEEDLE_HEADER_SIZE && decodeNeedleHeader(head) === null) {
        throw new StoreError('CHECKSUM_MISMATCH', `bytes at volume ${this.target.volume} offset ${this.target.offset} are not a needle header`);
      }
      if (head.length > NEEDLE_HEADER_SIZE || (head.length === NEEDLE_HEADER_SIZE && this.keyLength() === 0)) this.headIn();
    }
    return at;
  }

  private keyLength(): number {
    return new DataView(this.head.buffer, this.head.byteOffset).getUint16(6, true);
  }

  /** Header and key whole: their CRC checked, the needle's length known, written. */
  private headIn(): void {
    if (this.head.length < NEEDLE_HEADER_SIZE + this.keyLength()) return;
    const header = decodeNeedleHeader(this.head.subarray(0, NEEDLE_HEADER_SIZE), this.head.subarray(NEEDLE_HEADER_SIZE));
    if (header === null) throw new StoreError('CHECKSUM_MISMATCH', `needle header at volume ${this.target.volume} offset ${this.target.offset}: CRC mismatch`);
    this.length = needleLength(header.keyLength, header.valueLength, header.metaLength);
    this.target.write(this.head, this.target.offset);
    this.crc = crc32(this.head);
    this.received = this.head.length;
  }

  private takeBody(bytes: Uint8Array): void {
    if (this.received + bytes.length > this.length) {
      throw new StoreError('SIZE_MISMATCH', `needle of ${this.length} bytes; more received`);
    }
    const bodyEnd = this.length - NEEDLE_TRAILER_SIZE;
    const beforeTrailer = Math.max(0, Math.min(bytes.length, bodyEnd - this.received));
    if (beforeTrailer > 0) this.crc = crc32(bytes.subarray(0, beforeTrailer), this.crc);
    for (let i = beforeTrailer; i < bytes.length; i++) this.trailer[this.received + i - bodyEnd] = bytes[i]!;
    this.target.write(bytes, this.target.offset + this.received);
    this.received += bytes.length;
  }

  private checkOpen(): void {
    if (this.state === 'aborted') throw new StoreError('ABORTED', 'the needle was refused or aborted');
    if (this.state === 'finished') throw new StoreError('BAD_ARGUMENT', 'the needle is already finished');
  }
}
