// One bit per bucket of the hash index, in 32-bit words: which buckets are dirty since the
// checkpoint, which may hold a key with an expiry, which have a known key filter (index_file.ts).
export class BucketBits {
  private readonly words: Uint32Array;

  /** `buckets` bits, every one set when `on`. */
  constructor(buckets: number, on: boolean) {
    this.words = new Uint32Array(Math.ceil(buckets / 32)).fill(on ? 0xffffffff : 0);
  }

  has(bucket: number): boolean {
    return (this.words[bucket >>> 5]! & (1 << (bucket & 31))) !== 0;
  }

  /** Sets the bucket's bit; true when it was clear. */
  set(bucket: number): boolean {
    const word = bucket >>> 5;
    const bit = 1 << (bucket & 31);
    const was = this.words[word]!;
    this.words[word] = was | bit;
    return (was & bit) === 0;
  }

  clear(bucket: number): void {
    this.words[bucket >>> 5] = this.words[bucket >>> 5]! & ~(1 << (bucket & 31));
  }

  fill(on: boolean): void {
    this.words.fill(on ? 0xffffffff : 0);
  }

  /** Becomes a copy of `other` (the same bucket count). */
  copyFrom(other: BucketBits): void {
    this.words.set(other.words);
  }

  /** Calls fn for every set bit, in ascending order. */
  forEach(fn: (bucket: number) => void): void {
    const words = this.words;
    for (let w = 0; w < words.length; w++) {
      let bits = words[w]!;
      while (bits !== 0) {
        const low = bits & -bits;
        fn(w * 32 + (31 - Math.clz32(low)));
        bits ^= low;
      }
    }
  }
}
