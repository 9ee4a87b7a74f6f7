// What the hash index knows of the volumes (docs/vacuum.md, "What is garbage"): the live bytes
// of each volume and the retired volumes, and their sidecar file index.hash.usage
// (docs/formats.md §Volume usage). HashIndex keeps the ledger current in apply() and saves it
// at its checkpoints and rebuild swaps; this file owns the bytes of the sidecar.
//
// Invariants:
// - a volume's live bytes are the sum of alignUp(length) over the entries that point into it
//   (present, not tombstones, expired or not); never negative; a volume at 0 is not kept;
// - the retired set only grows (a FLUSH or a snapshot keeps it: ids are never reused), and each
//   retired volume keeps the LSN of the RETIRE that retired it, so a sidecar saved ahead of the
//   index header it belongs to (a crash between the two) still yields exactly the set at the
//   header's LSN;
// - a retired volume has 0 live bytes (HashIndex refuses a record that would point a key into
//   one).
import { StoreError } from '../runtime/errors.js';
import type { Fs } from '../runtime/fs.js';
import { replaceFileAtomically } from './atomic_file.js';
import { crc32 } from './checksum.js';
import { readU64, writeU64 } from './hash_index_format.js';
import { alignUp } from './volume_format.js';

export const USAGE_MAGIC = 'BRISEUSG';
export const USAGE_VERSION = 1;
const USAGE_FIXED_SIZE = 32;
const USAGE_PAIR_SIZE = 16;
const MAX_VOLUME_ID = 0xffffffff;

/** The ledger's state as the index answers it; same shape as the protocol's VolumeUsage. */
export interface VolumeUsageReport {
  /** [volume, live bytes], ascending volumes; volumes with 0 are left out. */
  live: [volume: number, bytes: number][];
  /** Ascending. */
  retired: number[];
  /** [volume, LSN of the RETIRE that retired it], ascending volumes: COMPACT keeps those at or before its snapshot. */
  retiredAt: [volume: number, lsn: number][];
}

/** What a sidecar holds: the ledger at `lsn`. */
export interface UsageFile {
  lsn: number;
  live: [volume: number, bytes: number][];
  /** [volume, LSN of the RETIRE that retired it]. */
  retired: [volume: number, lsn: number][];
}

export class VolumeUsageLedger {
  private readonly live = new Map<number, number>();
  private readonly retiredAt = new Map<number, number>();

  /** A needle of `length` bytes is now pointed at in `volume`. */
  add(volume: number, length: number): void {
    const bytes = alignUp(length);
    if (bytes === 0) return;
    this.live.set(volume, (this.live.get(volume) ?? 0) + bytes);
  }

  /** A needle of `length` bytes in `volume` is no longer pointed at. */
  remove(volume: number, length: number): void {
    const bytes = alignUp(length);
    if (bytes === 0) return;
    const left = (this.live.get(volume) ?? 0) - bytes;
    // The entry being dropped was counted when it was written: anything else is a bug here.
    if (left < 0) throw new StoreError('INTERNAL', `volume ${volume}: live bytes would go below 0 (${left})`);
    if (left === 0) this.live.delete(volume);
    else this.live.set(volume, left);
  }

  /** FLUSH and a snapshot's reset: no entry is left; the retired volumes stay retired. */
  clearLive(): void {
    this.live.clear();
  }

  bytesOf(volume: number): number {
    return this.live.get(volume) ?? 0;
  }

  isRetired(volume: number): boolean {
    return this.retiredAt.has(volume);
  }

  /** RETIRE at `lsn`: true (and retired, if not already) when no entry points into `volume`. */
  retire(volume: number, lsn: number): boolean {
    if (this.bytesOf(volume) !== 0) return false;
    if (!this.retiredAt.has(volume)) this.retiredAt.set(volume, lsn);
    return true;
  }

  report(): VolumeUsageReport {
    return {
      live: [...this.live].sort((a, b) => a[0] - b[0]),
      retired: [...this.retiredAt.keys()].sort((a, b) => a - b),
      retiredAt: [...this.retiredAt].sort((a, b) => a[0] - b[0]),
    };
  }

  /** The ledger as a sidecar describes it at `lsn`. */
  toFile(lsn: number): UsageFile {
    return { lsn, live: this.report().live, retired: [...this.retiredAt].sort((a, b) => a[0] - b[0]) };
  }

  /** A retired volume that still has live bytes, if any (an invariant's breach). */
  retiredWithLiveBytes(): number | undefined {
    for (const v of this.retiredAt.keys()) if (this.live.has(v)) return v;
    return undefined;
  }

  /**
   * The ledger of an index whose header says `durableLsn`, from a sidecar: `current` when the
   * sidecar describes exactly that LSN (its live bytes hold); otherwise the live bytes are to
   * be recounted, and the retired volumes kept are those retired at or before `durableLsn`
   * (the records after it are replayed, and retire the others again).
   */
  static fromFile(file: UsageFile | undefined, durableLsn: number): { ledger: VolumeUsageLedger; current: boolean } {
    const ledger = new VolumeUsageLedger();
    if (file === undefined) return { ledger, current: false };
    for (const [volume, lsn] of file.retired) if (lsn <= durableLsn) ledger.retiredAt.set(volume, lsn);
    const current = file.lsn === durableLsn;
    if (current) for (const [volume, bytes] of file.live) ledger.live.set(volume, bytes);
    return { ledger, current };
  }
}

/** The sidecar of the index at `indexPath`. */
export function usagePath(indexPath: string): string {
  return `${indexPath}.usage`;
}

/** Replaces the sidecar atomically (NAME.tmp, fsync, rename, fsync of the directory). */
export function saveUsage(fs: Fs, path: string, file: UsageFile): void {
  replaceFileAtomically(fs, path, encodeUsage(file));
}

/** The sidecar, or undefined when it is missing or damaged (the caller recounts). */
export function loadUsage(fs: Fs, path: string): UsageFile | undefined {
  if (!fs.exists(path)) return undefined;
  return decodeUsage(fs.readFile(path));
}

export function encodeUsage(file: UsageFile): Uint8Array {
  const n = file.live.length;
  const r = file.retired.length;
  const size = USAGE_FIXED_SIZE + (n + r) * USAGE_PAIR_SIZE;
  const buf = new Uint8Array(size + 4);
  const view = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode(USAGE_MAGIC), 0);
  view.setUint32(8, USAGE_VERSION, true);
  writeU64(view, 16, file.lsn);
  view.setUint32(24, n, true);
  view.setUint32(28, r, true);
  let at = USAGE_FIXED_SIZE;
  for (const [volume, value] of [...file.live, ...file.retired]) {
    if (!Number.isInteger(volume) || volume < 0 || volume > MAX_VOLUME_ID) {
      throw new StoreError('INTERNAL', `volume id ${volume} does not fit the usage file`);
    }
    view.setUint32(at, volume, true);
    writeU64(view, at + 8, value);
    at += USAGE_PAIR_SIZE;
  }
  view.setUint32(size, crc32(buf.subarray(0, size)), true);
  return buf;
}

/** undefined for anything that is not a whole, valid sidecar (never throws). */
export function decodeUsage(buf: Uint8Array): UsageFile | undefined {
  if (buf.length < USAGE_FIXED_SIZE + 4) return undefined;
  if (new TextDecoder().decode(buf.subarray(0, 8)) !== USAGE_MAGIC) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(8, true) !== USAGE_VERSION || view.getUint32(12, true) !== 0) return undefined;
  const n = view.getUint32(24, true);
  const r = view.getUint32(28, true);
  const size = USAGE_FIXED_SIZE + (n + r) * USAGE_PAIR_SIZE;
  if (buf.length !== size + 4 || view.getUint32(size, true) !== crc32(buf.subarray(0, size))) return undefined;
  const lsn = readU64(view, 16);
  if (lsn < 0) return undefined;
  const pairs: [number, number][] = [];
  for (let at = USAGE_FIXED_SIZE; at < size; at += USAGE_PAIR_SIZE) {
    const value = readU64(view, at + 8);
    if (value < 0 || view.getUint32(at + 4, true) !== 0) return undefined;
    pairs.push([view.getUint32(at, true), value]);
  }
  return { lsn, live: pairs.slice(0, n), retired: pairs.slice(n) };
}
