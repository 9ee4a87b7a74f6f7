// A front end's cache of small committed needles, by address: a hot GET answers without a
// pread. Sound without any invalidation in LSN order because a committed needle never changes
// and an address is never given to other bytes while its volume exists: the index moves a key
// to a new address instead. What can end an address is the volume's removal (vacuum), and the
// reader forgets the volume's entries then (forgetVolume).
//
// Invariants:
// - at most maxBytes of needle bytes are held (values, metadata and keys), least recently used
//   dropped first; needles longer than MAX_CACHED_NEEDLE are never held;
// - a needle is held only after it was read whole and checked (readNeedle checks both CRCs);
// - every hit hands out copies: a caller may keep, change or transfer what it gets.
import type { ReadNeedleResult } from './volume_file.js';
import type { NeedleAddress } from './types.js';

/** Needles longer than this are read from the file every time (the page cache holds them). */
export const MAX_CACHED_NEEDLE = 16 * 1024;

export class NeedleCache {
  /** Needles by address, least recently used first, each with its length on disk. */
  private readonly entries = new Map<string, { needle: ReadNeedleResult; length: number }>();
  private used = 0;

  constructor(private readonly maxBytes: number) {}

  get(address: NeedleAddress): ReadNeedleResult | undefined {
    const key = keyOf(address);
    const hit = this.entries.get(key);
    if (hit === undefined) return undefined;
    this.entries.delete(key); // most recently used last
    this.entries.set(key, hit);
    return copyOf(hit.needle);
  }

  put(address: NeedleAddress, needle: ReadNeedleResult): void {
    if (address.length > MAX_CACHED_NEEDLE || address.length > this.maxBytes) return;
    const key = keyOf(address);
    if (this.entries.has(key)) return;
    this.entries.set(key, { needle: copyOf(needle), length: address.length });
    this.used += address.length;
    for (const [oldest, e] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.used -= e.length;
    }
  }

  /** Drops every needle of a volume (removed by a vacuum, or its handle closed). */
  forgetVolume(volume: number): void {
    const prefix = `${volume}/`;
    for (const [key, e] of this.entries) {
      if (!key.startsWith(prefix)) continue;
      this.entries.delete(key);
      this.used -= e.length;
    }
  }

  get bytes(): number {
    return this.used;
  }
}

function keyOf(a: NeedleAddress): string {
  return `${a.volume}/${a.offset}`;
}

// new Uint8Array(x) copies; a Buffer's slice() would not.
function copyOf(n: ReadNeedleResult): ReadNeedleResult {
  return { ...n, key: new Uint8Array(n.key), value: new Uint8Array(n.value), meta: new Uint8Array(n.meta) };
}
