// The generated body of the blob benchmarks: 16 pre-made 1 MiB blocks of a seeded xorshift
// pattern, chosen in a sequence that depends on the seed. Deterministic, not periodic within
// 16 MiB, and no copy per chunk: the same Buffers are written again and again (never mutated).
import { createHash } from 'node:crypto';

const MB = 1024 * 1024;
export const BLOCK = MB;
export const BLOCK_COUNT = 16;

const BLOCKS: Buffer[] = makeBlocks();

function makeBlocks(): Buffer[] {
  const blocks: Buffer[] = [];
  let x = 0x9e3779b9;
  for (let b = 0; b < BLOCK_COUNT; b++) {
    const buf = Buffer.allocUnsafe(BLOCK);
    for (let i = 0; i < BLOCK; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      buf.writeInt32LE(x | 0, i);
    }
    blocks.push(buf);
  }
  return blocks;
}

/** `size` bytes of pattern `seed`, in blocks of at most 1 MiB. */
export function* body(size: number, seed: number): Generator<Buffer> {
  for (let offset = 0, i = 0; offset < size; offset += BLOCK, i++) {
    const block = BLOCKS[(seed * 5 + i * 7) % BLOCK_COUNT] as Buffer;
    yield size - offset >= BLOCK ? block : block.subarray(0, size - offset);
  }
}

/** The SHA-256 of body(size, seed). */
export function expectedHash(size: number, seed: number): string {
  const h = createHash('sha256');
  for (const chunk of body(size, seed)) h.update(chunk);
  return h.digest('hex');
}
