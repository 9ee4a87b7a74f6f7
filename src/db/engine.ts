// The database logic shared by every session: where a value goes, the crash-safe write order
// (needle durable first, then the WAL record that names it, then the index), lazy expiry and
// the TTL sweep, and the COMPACT choreography across the index and the WAL. It owns no state
// on disk: that is the actors' (or, in-process, the storage objects') behind the ports.
import type { Clock } from '../runtime/clock.js';
import { OpCode, isLive, type IndexEntry, type NeedleAddress, type Op } from '../storage/types.js';
import type { Limits } from './api.js';
import type { CommitResult, Lookup, Ports } from './ports.js';

/** Lazy-expiry deletes in flight at once; past it, the background sweep gets the rest. */
const MAX_PENDING_EXPIRIES = 1024;
/** Keys of the sweep committed in one record. */
const SWEEP_BATCH = 512;
/** Entries per WAL snapshot chunk during COMPACT. */
const COMPACT_CHUNK = 4096;

export class Engine {
  private nextDrive = 0;
  private pendingExpiries = 0;
  private compacting: Promise<void> | null = null;

  constructor(readonly ports: Ports, readonly limits: Limits, readonly clock: Clock) {}

  /** Round-robin over the drives, so that writes use every disk (and every writer thread). */
  pickDrive(): number {
    const drive = this.nextDrive;
    this.nextDrive = (this.nextDrive + 1) % this.ports.volumes.driveCount;
    return drive;
  }

  async writeNeedle(
    key: Uint8Array,
    value: Uint8Array,
    expiresAt: number,
    sync: boolean,
  ): Promise<{ address: NeedleAddress; drive: number }> {
    const drive = this.pickDrive();
    const [address] = await this.ports.volumes.append(drive, [{ key, value, expiresAt }], sync);
    return { address: address!, drive };
  }

  commit(ops: Op[]): Promise<CommitResult> {
    return this.ports.commit.commit(ops);
  }

  /** The live entry of a key; an expired one is treated as absent and its deletion logged. */
  async lookupLive(key: Uint8Array): Promise<IndexEntry | undefined> {
    return this.liveOf(key, await this.ports.index.lookup(key), this.clock.now());
  }

  /** lookupLive for many keys in one index request. */
  async lookupLiveMany(keys: Uint8Array[]): Promise<(IndexEntry | undefined)[]> {
    const found = await this.ports.index.lookupMany(keys);
    const now = this.clock.now();
    return found.map((f, i) => this.liveOf(keys[i]!, f, now));
  }

  private liveOf(key: Uint8Array, found: Lookup, now: number): IndexEntry | undefined {
    if (found.entry !== undefined && isLive(found.entry.expiresAt, now)) return found.entry;
    const expired = found.expired ?? found.entry?.address;
    if (expired !== undefined) this.scheduleExpiry(key, expired.volume, expired.offset);
    return undefined;
  }

  /** Logs a DEL_IF for an expired key, without making the reader wait for it. */
  private scheduleExpiry(key: Uint8Array, volume: number, offset: number): void {
    if (this.pendingExpiries >= MAX_PENDING_EXPIRIES) return;
    this.pendingExpiries += 1;
    this.commit([{ code: OpCode.DelIf, key, volume, offset }])
      .catch(() => undefined) // the sweep retries; an expired key is invisible either way
      .finally(() => {
        this.pendingExpiries -= 1;
      });
  }

  /** One slice of the TTL sweep: deletes (through the WAL) the expired keys it finds. */
  async sweep(maxBuckets: number): Promise<number> {
    const expired = await this.ports.index.expiredSlice(maxBuckets);
    let deleted = 0;
    for (let i = 0; i < expired.length; i += SWEEP_BATCH) {
      const ops: Op[] = expired
        .slice(i, i + SWEEP_BATCH)
        .map((e) => ({ code: OpCode.DelIf, key: e.key, volume: e.volume, offset: e.offset }));
      const { results } = await this.commit(ops);
      deleted += results.reduce((a, b) => a + b, 0);
    }
    return deleted;
  }

  /**
   * COMPACT: rebuild the index with only live entries (and checkpoint it at LSN X), then
   * rewrite the WAL as a snapshot of the live keys at X plus every record after X. The
   * snapshot is read with a SCAN while writes go on; that is safe because every change after
   * X is in the records that follow the snapshot, and replaying them is idempotent on the
   * final state (a fuzzy checkpoint, as ARIES has it). Index first, WAL second: an index is
   * never older than the snapshot of the WAL it is replayed from.
   */
  compact(): Promise<void> {
    if (this.compacting === null) {
      this.compacting = this.runCompaction().finally(() => {
        this.compacting = null;
      });
    }
    return this.compacting;
  }

  private async runCompaction(): Promise<void> {
    const { index, wal } = this.ports;
    const snapshotLsn = await index.rebuild();
    await wal.compactBegin(snapshotLsn);
    try {
      let cursor = 0;
      do {
        const page = await index.scan(cursor, COMPACT_CHUNK);
        if (page.entries.length > 0) await wal.compactChunk(page.entries);
        cursor = page.cursor;
      } while (cursor !== 0);
      await wal.compactFinish();
    } catch (err) {
      await wal.compactAbort().catch(() => undefined);
      throw err;
    }
  }
}
