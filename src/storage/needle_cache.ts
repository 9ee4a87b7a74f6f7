// A front end's cache of small committed needles, by address: a hot GET answers without a
// pread. Sound without any invalidation in LSN order because a committed needle never changes
// and an address is never given to other bytes while its volume exists: the index moves a key
// to a new address instead. What can end an address is the volume's removal (vacuum), and the
// reader forgets the volume's entries then (forgetVolume).
//
// Invariants:
// - at most maxBytes of needle lengths are held, in two generations of at most half each: new
//   needles and needles hit in the old generation go to the young one; when the young one is
//   full it becomes the old one and the old one is dropped whole. So a needle used in the last
//   two generations stays, one not used since is dropped (an LRU approximated without a
//   reordering per hit: a Map that is deleted from and appended to on every hit, and walked
//   from its oldest end to evict, costs more than the pread it saves once most reads miss);
// - needles longer than MAX_CACHED_NEEDLE are never held;
// - a needle is held only after it was read whole and checked (readNeedle checks both CRCs);
// - every hit hands out a copy (one allocation): a caller may keep, change or transfer it.
import type { ReadNeedleResult } from './volume_file.js';
import type { NeedleAddress } from './types.js';

/** Needles longer than this are read from the file every time (the page cache holds them). */
export const MAX_CACHED_NEEDLE = 16 * 1024;

/** Where a held needle's bytes are in its generation's slab: key, then value, then metadata. */
interface Slot {
  at: number;
  keyLength: number;
  valueLength: number;
  metaLength: number;
  expiresAt: number;
  flags: number;
  /** Its length on disk (what the byte bound counts). */
  length: number;
}

/**
 * One generation: its needles' bytes copied into ONE slab, reused from turnover to turnover.
 * A buffer per needle cost more than the pread it saved once most reads missed: each was an
 * ArrayBuffer that outlived the young-generation collections and died later, in the old one.
 */
class Generation {
  slots = new Map<string, Slot>();
  /** Needle lengths held (the bound), and the slab's end (key, value and metadata bytes). */
  bytes = 0;
  end = 0;
  private slab: Uint8Array | null = null;

  constructor(private readonly capacity: number) {}

  fits(length: number, stored: number): boolean {
    return this.bytes + length <= this.capacity && this.end + stored <= this.capacity;
  }

  add(key: string, n: ReadNeedleResult, length: number): void {
    this.slab ??= new Uint8Array(this.capacity); // on first use: an idle front end holds nothing
    const at = this.end;
    this.slab.set(n.key, at);
    this.slab.set(n.value, at + n.key.length);
    this.slab.set(n.meta, at + n.key.length + n.value.length);
    this.end += n.key.length + n.value.length + n.meta.length;
    this.bytes += length;
    this.slots.set(key, { at, keyLength: n.key.length, valueLength: n.value.length, metaLength: n.meta.length, expiresAt: n.expiresAt, flags: n.flags, length });
  }

  /** A copy of a held needle (one allocation; key, value and metadata are views of it). */
  copy(slot: Slot): ReadNeedleResult {
    const k = slot.keyLength;
    const v = slot.valueLength;
    const buf = this.slab!.slice(slot.at, slot.at + k + v + slot.metaLength);
    return { key: buf.subarray(0, k), value: buf.subarray(k, k + v), meta: buf.subarray(k + v), expiresAt: slot.expiresAt, flags: slot.flags };
  }

  delete(key: string, slot: Slot): void {
    this.slots.delete(key);
    this.bytes -= slot.length;
  }

  /** Emptied for reuse as the young generation: the slab stays, its bytes are overwritten. */
  clear(): void {
    this.slots = new Map();
    this.bytes = 0;
    this.end = 0;
  }
}

export class NeedleCache {
  private young: Generation;
  private old: Generation;
  private readonly generationBytes: number;

  constructor(maxBytes: number) {
    this.generationBytes = Math.floor(maxBytes / 2);
    this.young = new Generation(this.generationBytes);
    this.old = new Generation(this.generationBytes);
  }

  get(address: NeedleAddress): ReadNeedleResult | undefined {
    const key = keyOf(address);
    const young = this.young.slots.get(key);
    if (young !== undefined) return this.young.copy(young);
    const slot = this.old.slots.get(key);
    if (slot === undefined) return undefined;
    const needle = this.old.copy(slot);
    // Used again: it moves to the young generation, and lives on past the next turnover.
    this.old.delete(key, slot);
    this.hold(key, needle, slot.length); // copied into the slab: `needle` stays the caller's
    return needle;
  }

  put(address: NeedleAddress, needle: ReadNeedleResult): void {
    if (address.length > MAX_CACHED_NEEDLE || address.length > this.generationBytes) return;
    const key = keyOf(address);
    if (this.young.slots.has(key) || this.old.slots.has(key)) return;
    this.hold(key, needle, address.length);
  }

  /** Drops every needle of a volume (removed by a vacuum, or its handle closed). */
  forgetVolume(volume: number): void {
    const prefix = `${volume}/`;
    for (const g of [this.young, this.old]) {
      for (const [key, slot] of [...g.slots]) if (key.startsWith(prefix)) g.delete(key, slot);
    }
  }

  get bytes(): number {
    return this.young.bytes + this.old.bytes;
  }

  /** Copies a needle into the young generation, turning it over first when it is full. */
  private hold(key: string, needle: ReadNeedleResult, length: number): void {
    const stored = needle.key.length + needle.value.length + needle.meta.length;
    if (!this.young.fits(length, stored)) {
      const dropped = this.old;
      this.old = this.young;
      dropped.clear();
      this.young = dropped;
    }
    this.young.add(key, needle, length);
  }
}

function keyOf(a: NeedleAddress): string {
  return `${a.volume}/${a.offset}`;
}
