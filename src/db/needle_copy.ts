// Moving keys to fresh copies of their needles: what the vacuum does to the live needles of a
// volume it empties, and what the scrub does to a damaged one (read from a good member of its
// group). Each value is read checked (a replicated group's reader falls back to a member whose
// copy checks; a damaged single copy fails the read and is left where it is), written again
// through the ordinary write path into its group (so the group's members and the replicas get
// the copy as any write), then a MOVE_IF record points the key at the copy only if the key still
// points at the old needle: a write since wins, and the copy is garbage.
import { OpCode, valueLengthOf, type NeedleAddress, type Op } from '../storage/types.js';
import { groupOfVolume } from '../storage/volume_format.js';
import type { VolumeEntry } from '../protocol/index_protocol.js';
import type { Ports } from './ports.js';

/** Values up to this size are copied in batches, read whole; larger ones (or with metadata) are streamed. */
const SMALL_VALUE = 64 * 1024;
/** Bytes of small values read and appended per batch, and MOVE_IF ops per record. */
const BATCH_BYTES = 1024 * 1024;
export const BATCH_OPS = 512;

export interface CopyCounts {
  /** Keys pointed at their copies. */
  moved: number;
  /** Keys written or deleted meanwhile: their copies are garbage. */
  changed: number;
  /** Bytes of needles copied. */
  copiedBytes: number;
}

/** A needle whose bytes fail their checks everywhere the reader could look: left where it is. */
export interface Unreadable {
  entry: VolumeEntry;
  error: string;
}

/** Errors that say the needle's bytes are bad (not that the write path is down). */
const BAD_BYTES: ReadonlySet<string> = new Set(['CHECKSUM_MISMATCH', 'CORRUPT']);

export class NeedleCopier {
  constructor(
    private readonly ports: Pick<Ports, 'reader' | 'volumes' | 'commit'>,
    /** Called with every chunk of bytes copied (progress), then awaited (a rate limit). */
    private readonly onBytes: (bytes: number) => Promise<void> = async () => undefined,
  ) {}

  /**
   * Copies the entries' needles and moves their keys; counts what happened into `counts`. A needle
   * whose bytes fail their checks with no good copy is left where it is and answered (the others
   * go on); a failure of the write path throws.
   */
  async copy(entries: readonly VolumeEntry[], counts: CopyCounts): Promise<Unreadable[]> {
    const unreadable: Unreadable[] = [];
    const small = entries.filter((e) => e.meta === 0 && valueLengthOf(addressOf(e), e.key.length) <= SMALL_VALUE);
    for (const batch of batches(small)) await this.copySmall(batch, counts, unreadable);
    for (const e of entries) {
      if (small.includes(e)) continue;
      try {
        await this.copyLarge(e, counts);
      } catch (err) {
        if (!isBadBytes(err)) throw err;
        unreadable.push({ entry: e, error: (err as Error).message });
      }
    }
    return unreadable;
  }

  /** Small values: read whole (checked), appended as one batch, one sync per group, one record of moves. */
  private async copySmall(batch: VolumeEntry[], counts: CopyCounts, unreadable: Unreadable[]): Promise<void> {
    const read: VolumeEntry[] = [];
    const needles = [];
    for (const e of batch) {
      try {
        needles.push({ key: e.key, value: await this.ports.reader.read(addressOf(e), e.key), expiresAt: e.expiresAt });
        read.push(e);
      } catch (err) {
        if (!isBadBytes(err)) throw err;
        unreadable.push({ entry: e, error: (err as Error).message });
      }
    }
    if (read.length === 0) return;
    const copies = await this.ports.volumes.append(groupOfVolume(read[0]!.volume), needles, false);
    await Promise.all([...new Set(copies.map((c) => groupOfVolume(c.volume)))].map((g) => this.ports.volumes.syncGroup(g)));
    await this.move(read, copies, counts);
    await this.onBytes(copies.reduce((n, c) => n + c.length, 0));
  }

  /** A large value, or one with a metadata section: streamed from the old needle into a new one. */
  private async copyLarge(e: VolumeEntry, counts: CopyCounts): Promise<void> {
    const from = addressOf(e);
    const size = valueLengthOf(from, e.key.length);
    const meta = e.meta === 0 ? undefined : await this.ports.reader.meta(from, e.key);
    const source = this.paced(this.ports.reader.stream(from, e.key, 0, size));
    const copy = await this.ports.volumes.appendStream(groupOfVolume(e.volume), e.key, size, e.expiresAt, source, meta === undefined ? undefined : { length: meta.length, bytes: () => meta });
    await this.move([e], [copy], counts);
  }

  private async move(entries: readonly VolumeEntry[], copies: readonly NeedleAddress[], counts: CopyCounts): Promise<void> {
    const ops: Op[] = entries.map((e, i) => ({ code: OpCode.MoveIf, key: e.key, fromVolume: e.volume, fromOffset: e.offset, address: copies[i]! }));
    const { results } = await this.ports.commit.commit(ops);
    const moved = results.filter((r) => r === 1).length;
    counts.moved += moved;
    counts.changed += results.length - moved;
    counts.copiedBytes += copies.reduce((n, c) => n + c.length, 0);
  }

  /** A large copy's bytes, reported (and paced) chunk by chunk. */
  private async *paced(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      yield chunk;
      await this.onBytes(chunk.length);
    }
  }
}

function isBadBytes(err: unknown): boolean {
  return BAD_BYTES.has(String((err as { code?: unknown }).code));
}

export function addressOf(e: VolumeEntry): NeedleAddress {
  return e.meta === 0 ? { volume: e.volume, offset: e.offset, length: e.length } : { volume: e.volume, offset: e.offset, length: e.length, meta: e.meta };
}

/** Small entries in batches of at most BATCH_BYTES of needles and BATCH_OPS keys. */
function* batches(entries: readonly VolumeEntry[]): Generator<VolumeEntry[]> {
  let batch: VolumeEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    if (batch.length > 0 && (bytes + e.length > BATCH_BYTES || batch.length >= BATCH_OPS)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(e);
    bytes += e.length;
  }
  if (batch.length > 0) yield batch;
}
