// A region of a member volume received as raw bytes: one or more needles, each followed by its
// zero padding to 8 bytes, i.e. exactly the volume's bytes [offset, end) (docs/volume-server.md,
// the append and copy routes). Each needle goes through a NeedleIngest (checked as it streams);
// the padding is checked to be zeros and not written (the file reads zeros there anyway).
//
// Invariants:
// - all or nothing: a needle that fails, a short body, or an abort cut the volume back to the
//   region's offset, as if the request had never come;
// - a needle is fed exactly its own bytes: the split between needles is found from each header,
//   trusted only once NeedleIngest has checked the header CRC;
// - the body may end right after the last needle's trailer (its padding left out).
import { StoreError } from '../runtime/errors.js';
import { crc32 } from './checksum.js';
import type { MemberVolumes } from './member_volumes.js';
import type { NeedleIngest } from './needle_ingest.js';
import { NEEDLE_HEADER_SIZE, alignUp } from './volume_format.js';

export class RegionIngest {
  private needle: NeedleIngest | null = null;
  /** Bytes of the current needle fed so far. */
  private fed = 0;
  /** The current needle's first bytes, for its key length before the header is whole. */
  private readonly head = new Uint8Array(NEEDLE_HEADER_SIZE);
  /** Padding bytes still expected after the last needle. */
  private padding = 0;
  private taken = 0;
  private crc = 0;
  private state: 'open' | 'ended' | 'aborted' = 'open';

  constructor(
    private readonly store: MemberVolumes,
    readonly volume: number,
    readonly offset: number,
    private readonly epoch: number,
  ) {
    // Checks the epoch, the volume and the offset (CONFLICT naming the length) before any byte.
    this.store.admit(epoch);
    const tail = this.store.info(volume).length;
    if (offset !== tail) throw new StoreError('CONFLICT', `volume ${volume} has length ${tail}, not ${offset}`);
  }

  /** Body bytes taken so far. */
  get received(): number {
    return this.taken;
  }

  write(chunk: Uint8Array): void {
    this.checkOpen();
    try {
      for (let at = 0; at < chunk.length; ) at += this.step(chunk.subarray(at));
      this.taken += chunk.length;
      this.crc = crc32(chunk, this.crc);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /**
   * The body has ended: the last needle whole, or SIZE_MISMATCH (cut back). Answers the volume's
   * new length and the CRC-32 of the body (the sender may compare it with what it sent).
   */
  finish(): { length: number; crc32: number } {
    this.checkOpen();
    try {
      if (this.needle !== null) this.needle.finish(); // short: throws SIZE_MISMATCH
      if (this.taken === 0) throw new StoreError('SIZE_MISMATCH', 'an append of no bytes');
    } catch (err) {
      this.abort();
      throw err;
    }
    this.state = 'ended';
    return { length: this.store.info(this.volume).length, crc32: this.crc >>> 0 };
  }

  /** Cuts the volume back to the region's offset. Idempotent. */
  abort(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.needle?.abort();
    this.needle = null;
    if (this.store.info(this.volume).length !== this.offset) this.store.truncate(this.volume, this.offset, this.epoch);
  }

  /** Takes what it can of `bytes` for the current needle or padding; answers how much. */
  private step(bytes: Uint8Array): number {
    if (this.needle === null && this.padding > 0) return this.skipPadding(bytes);
    if (this.needle === null) {
      this.needle = this.store.ingest(this.volume, this.store.info(this.volume).length, this.epoch);
      this.fed = 0;
    }
    const n = Math.min(bytes.length, this.wanted());
    if (n <= 0) throw new StoreError('INTERNAL', `volume ${this.volume}: a needle that takes no bytes at ${this.fed}`);
    const part = bytes.subarray(0, n);
    if (this.fed < NEEDLE_HEADER_SIZE) this.head.set(part.subarray(0, NEEDLE_HEADER_SIZE - this.fed), this.fed);
    this.needle.write(part);
    this.fed += n;
    const length = this.needle.declaredLength;
    if (length >= 0 && this.fed === length) {
      this.needle.finish();
      this.needle = null;
      this.padding = alignUp(length) - length;
    }
    return n;
  }

  /** Bytes the current needle takes next without running into the next needle. */
  private wanted(): number {
    const length = this.needle!.declaredLength;
    if (length >= 0) return length - this.fed;
    if (this.fed < NEEDLE_HEADER_SIZE) return NEEDLE_HEADER_SIZE - this.fed;
    const keyLength = new DataView(this.head.buffer).getUint16(6, true);
    return NEEDLE_HEADER_SIZE + keyLength - this.fed;
  }

  private skipPadding(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.padding);
    for (let i = 0; i < n; i++) {
      if (bytes[i] !== 0) throw new StoreError('CHECKSUM_MISMATCH', `volume ${this.volume}: the padding after a needle is not zeros`);
    }
    this.padding -= n;
    return n;
  }

  private checkOpen(): void {
    if (this.state === 'aborted') throw new StoreError('ABORTED', 'the append was refused or aborted');
    if (this.state === 'ended') throw new StoreError('BAD_ARGUMENT', 'the append has ended');
  }
}
