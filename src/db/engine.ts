// The engine: every read and write of the store goes through it, whichever front end asks (the
// embedded API, the RESP executor, the HTTP routes). It owns the paths, not the state: the
// state is the actors', behind the ports.
// - Placement: a needle goes to a volume group (round-robin over the groups that take writes).
// - The write order, in one function (write()): the needles durable first, then ONE WAL record
//   naming them (the committer makes it durable, then the index applies it), then the answer.
//   A crash between any two steps leaves nothing that points at missing bytes.
// - Conditions (NX, XX, compare-and-set) become one SET_IF op, judged when the index applies it.
// - Reads: the index for the address, then the read port for checked bytes; lazy expiry.
// - The TTL sweep, and the COMPACT choreography across the index and the WAL.
import type { Clock } from '../runtime/clock.js';
import { OpCode, RESULT_VOLUME_RETIRED, SetFlag, isLive, type IndexEntry, type NeedleAddress, type Op, type RedoNeedle } from '../storage/types.js';
import { StoreError } from '../runtime/errors.js';
import { groupOfVolume } from '../storage/volume_format.js';
import type { Limits } from './api.js';
import type { CommitResult, Lookup, MetaSource, Ports } from './ports.js';
import { SetBatch } from './set_batch.js';
import { KeyUpdates, type Decide } from './key_updates.js';
import { Notify, notificationsOf, type KeyEvent } from '../protocol/keyspace_events.js';
import { ExpiryTimers } from './expiry_timers.js';
import { advanceProgress, type Progress } from '../protocol/operations.js';

/** Lazy-expiry deletes in flight at once; past it, the background sweep gets the rest. */
const MAX_PENDING_EXPIRIES = 1024;
/** Keys of the sweep committed in one record. */
const SWEEP_BATCH = 512;
/** Entries per WAL snapshot chunk during COMPACT. */
const COMPACT_CHUNK = 4096;

/**
 * A value to write: bytes, or a stream (never held whole) of exactly `size` bytes, or of any
 * length when size is null (a chunked upload: its needle goes to a stream volume).
 */
export type PutValue = SizedValue | { size: null; source: AsyncIterable<Uint8Array> };
/** A value whose length is known before its bytes (what read-modify-write commands write). */
export type SizedValue = Uint8Array | { size: number; source: AsyncIterable<Uint8Array> };

/**
 * What must hold of the key when the write applies (atomically, in the index): nothing; that it
 * is absent (SET NX, If-None-Match: *); present (SET XX, If-Match: *); or live at exactly this
 * needle (compare-and-set: If-Match with an ETag, SET ... GET).
 */
export type Condition = { kind: 'none' } | { kind: 'absent' } | { kind: 'present' } | { kind: 'at'; volume: number; offset: number };

export interface PutOptions {
  expiresAt: number;
  /** A streamed value's metadata section (blob headers, digests); see MetaSource. Streams only. */
  meta?: MetaSource;
  condition?: Condition;
  /** Keep the live key's expiry instead of `expiresAt` (SET KEEPTTL). */
  keepTtl?: boolean;
}

export interface PutResult {
  /** False when the condition did not hold (nothing changed). */
  applied: boolean;
  address: NeedleAddress;
  lsn: number;
}

/**
 * A needle placed in a volume group: durable already, or to be made durable before a record
 * names it (a group sync, or its bytes carried by the record as a redo needle).
 */
export interface Placed {
  address: NeedleAddress;
  group: number;
  durable: boolean;
  /** What it was placed from, when not durable (what a redo needle carries). */
  needle?: NeedleToPlace;
}

/**
 * Values up to this length may ride in their WAL record as redo needles instead of syncing
 * their volume: one fdatasync per write instead of two. The saving is one sync per record, the
 * cost every byte written twice (three times with the volume log), so only small records ride.
 * Measured on this VM with a copy in every record (redis-benchmark SET, 50 clients): 4 KB
 * values lost 11% at -P 1 and 47% at -P 16, 64 KB ones 61% and 74%, their volume sync being
 * shared by the whole turn's appends anyway; 1 KB values gained only with few clients.
 */
export const REDO_MAX_VALUE = 8 * 1024;
/**
 * Key and value bytes of redo needles of this thread's writes between their secure() and their
 * commit's answer; past it a group is synced instead. The saving is latency, and it is there
 * only while few writes are in flight: with many, the volume's one sync per turn is shared by
 * all of them, and copies would only add bytes (1 KB values at -P 16 lost 27% with copies for
 * every record).
 */
export const REDO_MAX_BYTES = 128 * 1024;

export interface NeedleToPlace {
  key: Uint8Array;
  value: Uint8Array;
  expiresAt: number;
}

export class Engine {
  private nextGroup = 0;
  private pendingExpiries = 0;
  private compacting: Promise<void> | null = null;
  private compactState: Progress | null = null;
  private readonly updates: KeyUpdates;
  private readonly plainSets = new SetBatch((needles) => this.putMany(needles));
  /** Bytes of redo needles secured and not yet committed (REDO_MAX_BYTES). */
  private redoInFlight = 0;
  /** Keys written here with an expiry, looked up on time while expired events are wanted. */
  private readonly expiryTimers: ExpiryTimers;
  /** notify-keyspace-events of this thread, as flags (0: off, Redis' default). */
  notifyFlags = 0;

  /**
   * The highest LSN a write through this engine got: every write it answered is at or below it
   * (what WAIT waits for, and BRISE.LSN and X-Brise-LSN answer: a replica at this LSN shows them).
   */
  lastWriteLsn = 0;

  constructor(
    readonly ports: Ports,
    readonly limits: Limits,
    readonly clock: Clock,
  ) {
    this.updates = new KeyUpdates(this, clock);
    this.expiryTimers = new ExpiryTimers(
      () => this.clock.now(),
      (keys) => this.lookupLiveMany(keys).then(() => undefined, () => undefined),
    );
  }

  // ---- writes ----------------------------------------------------------------------------

  /**
   * The write order, the one place it is written: every needle the ops name is made durable
   * (a group sync for those placed unsynced, or carried by the record as a redo needle), then
   * the ops commit as ONE record (durable, then applied by the index), then the caller hears.
   * Every write of every front end ends here.
   */
  async write(placed: readonly Placed[], ops: Op[]): Promise<CommitResult> {
    const redo = await this.secure(placed);
    let result: CommitResult;
    try {
      result = await this.ports.commit.commit(ops, redo);
    } finally {
      this.releaseRedo(redo);
    }
    if (result.lsn > this.lastWriteLsn) this.lastWriteLsn = result.lsn;
    if (result.results.includes(RESULT_VOLUME_RETIRED)) {
      // Placed before a vacuum sealed its volume, committed after the vacuum gave it up: the
      // record applied nothing (docs/vacuum.md). Rare; the client hears it and writes again.
      throw new StoreError('BUSY', 'a vacuum removed the volume this value was written to while it was being written; nothing was changed: write it again');
    }
    this.committed(ops, result.results);
    return result;
  }

  /**
   * After a record committed: while expired events are wanted, each key it gave an expiry is
   * remembered, to be looked up (and so expired and notified) on time (expiry_timers.ts).
   */
  committed(ops: readonly Op[], results: readonly number[]): void {
    if ((this.notifyFlags & Notify.Expired) === 0) return;
    ops.forEach((op, i) => {
      if (results[i] !== 1) return;
      if ((op.code === OpCode.Set || op.code === OpCode.SetIf || op.code === OpCode.Expire) && op.expiresAt > 0) this.expiryTimers.add(op.key, op.expiresAt);
    });
  }

  /** Stops this engine's timers (a closing thread). */
  stopTimers(): void {
    this.expiryTimers.stop();
  }

  /**
   * The first step of write(): every needle placed unsynced is either made durable now (a group
   * sync each) or answered as a redo needle for the record to carry (small values on a group
   * of local drives under --sync always: the WAL's fdatasync is then the write's only one).
   */
  async secure(placed: readonly Placed[]): Promise<RedoNeedle[]> {
    // Per group, all or nothing: once a group is synced, a copy of its needles saves nothing.
    const byGroup = new Map<number, { redo: RedoNeedle[]; bytes: number } | null>();
    const redoGroups = this.ports.volumes.redoGroups;
    for (const p of placed) {
      if (p.durable) continue;
      let g = byGroup.get(p.group);
      if (g === undefined) byGroup.set(p.group, (g = redoGroups.has(p.group) ? { redo: [], bytes: 0 } : null));
      if (g === null) continue;
      const n = p.needle;
      g.bytes += n === undefined ? Infinity : n.key.length + n.value.length;
      if (n === undefined || !this.redoFits(n.value.length, g.bytes)) byGroup.set(p.group, null);
      else g.redo.push({ volume: p.address.volume, offset: p.address.offset, key: n.key, value: n.value, expiresAt: n.expiresAt });
    }
    const redo = [...byGroup.values()].flatMap((g) => g?.redo ?? []);
    this.redoInFlight += redoBytes(redo);
    try {
      await Promise.all([...byGroup].filter(([, g]) => g === null).map(([group]) => this.ports.volumes.syncGroup(group)));
    } catch (err) {
      this.releaseRedo(redo);
      throw err;
    }
    return redo;
  }

  /** After the commit of what secure() answered (or its failure): its bytes are in flight no more. */
  releaseRedo(redo: readonly RedoNeedle[]): void {
    this.redoInFlight -= redoBytes(redo);
  }

  /** Whether needles of `bytes` key and value bytes, the largest value `largest` long, may ride now. */
  private redoFits(largest: number, bytes: number): boolean {
    return largest <= REDO_MAX_VALUE && this.redoInFlight + bytes <= REDO_MAX_BYTES;
  }

  /**
   * Whether these needles may go unsynced, their record carrying them (secure(), which decides
   * again when they are placed): small enough, the thread's copies in flight leave room, and
   * every group that may take them takes redo needles. Otherwise they are placed durable,
   * synced by the append itself (one message fewer than a sync after it).
   */
  private mayRedo(items: readonly { key: Uint8Array; value: Uint8Array }[]): boolean {
    const { groups, redoGroups } = this.ports.volumes;
    let bytes = 0;
    let largest = 0;
    for (const n of items) {
      bytes += n.key.length + n.value.length;
      largest = Math.max(largest, n.value.length);
    }
    return this.redoFits(largest, bytes) && groups.every((g) => redoGroups.has(g));
  }

  /** Read-modify-write of keys, atomic against every other writer (see key_updates.ts). */
  update<R>(keys: Buffer[], decide: Decide<R>): Promise<R> {
    return this.updates.run(keys, decide);
  }

  /** FLUSHALL: every key removed by one op. */
  async flush(): Promise<void> {
    await this.write([], [{ code: OpCode.Flush }]);
  }

  /** One key, bytes or a stream, under a condition: its needle, then write(). */
  async put(key: Uint8Array, value: PutValue, options: PutOptions): Promise<PutResult> {
    const redo = value instanceof Uint8Array && this.mayRedo([{ key, value }]);
    const placed = await this.placeValue(key, value, options.expiresAt, !redo, options.meta);
    const op = setOp(key, placed.address, options.expiresAt, options.condition ?? { kind: 'none' }, options.keepTtl ?? false);
    const { lsn, results } = await this.write([placed], [op]);
    return { applied: results[0] === 1, address: placed.address, lsn };
  }

  /**
   * A plain SET of bytes: batched with the other plain SETs of this turn (set_batch.ts), so it
   * shares their append, record and commit. Answers the record's LSN.
   */
  set(key: Uint8Array, value: Uint8Array, expiresAt: number): Promise<number> {
    return this.plainSets.add({ key, value, expiresAt });
  }

  /** Many keys as ONE record (atomic together): one append per group, one commit. */
  async putMany(items: NeedleToPlace[]): Promise<CommitResult> {
    const placed = await this.place(items, !this.mayRedo(items));
    return this.write(
      placed,
      items.map((item, i) => ({ code: OpCode.Set, key: item.key, address: placed[i]!.address, expiresAt: item.expiresAt })),
    );
  }

  /** Deletes keys (one record); answers how many existed, and notifies a `del` for each. */
  async delete(keys: Uint8Array[]): Promise<number> {
    if (keys.length === 0) return 0;
    const { results } = await this.write([], keys.map((key) => ({ code: OpCode.Del, key })));
    this.notify(keys.filter((_, i) => results[i] === 1).map((key) => ({ event: 'del', key })));
    return results.reduce((a, b) => a + b, 0);
  }

  /** Publishes the keyspace notifications of committed writes (nothing while they are off). */
  notify(events: readonly KeyEvent[]): void {
    if (this.notifyFlags === 0) return;
    for (const e of events) {
      for (const [channel, message] of notificationsOf(this.notifyFlags, e)) {
        this.ports.broker.publish(channel, message).catch(() => undefined); // best effort, as in Redis
      }
    }
  }

  /** Sets a live key's expiry (0: none); false when the key is not live. */
  async setExpiry(key: Uint8Array, expiresAt: number): Promise<boolean> {
    const { results } = await this.write([], [{ code: OpCode.Expire, key, expiresAt }]);
    return results[0] === 1;
  }

  /**
   * Needles into volume groups, round-robin, one append per group. `durable`: synced before
   * this resolves; otherwise write() syncs them (a transaction syncs once, at COMMIT).
   */
  async place(items: NeedleToPlace[], durable: boolean): Promise<Placed[]> {
    const byGroup = new Map<number, number[]>();
    items.forEach((_, i) => {
      const g = this.pickGroup();
      const list = byGroup.get(g);
      if (list === undefined) byGroup.set(g, [i]);
      else list.push(i);
    });
    const out = new Array<Placed>(items.length);
    await Promise.all(
      [...byGroup].map(async ([group, indexes]) => {
        const addresses = await this.ports.volumes.append(group, indexes.map((i) => items[i]!), durable);
        // The group that took them (another when this one refused: a member down).
        indexes.forEach((i, j) => {
          const address = addresses[j]!;
          out[i] = durable ? { address, group: groupOfVolume(address.volume), durable } : { address, group: groupOfVolume(address.volume), durable, needle: items[i]! };
        });
      }),
    );
    return out;
  }

  /** One value, bytes or a stream (a stream is always durable once placed). */
  async placeValue(key: Uint8Array, value: PutValue, expiresAt: number, durable: boolean, meta?: MetaSource): Promise<Placed> {
    if (value instanceof Uint8Array) {
      // Metadata comes with streams only (an HTTP PUT, a blob stream): bytes are a plain needle.
      if (meta !== undefined) throw new StoreError('INTERNAL', 'a needle with metadata is written from a stream');
      return (await this.place([{ key, value, expiresAt }], durable))[0]!;
    }
    const group = this.pickGroup();
    const address = await this.ports.volumes.appendStream(group, key, value.size, expiresAt, value.source, meta);
    return { address, group: groupOfVolume(address.volume), durable: true };
  }

  /** Round-robin over the groups that take writes, so that writes use every disk and writer. */
  private pickGroup(): number {
    const groups = this.ports.volumes.groups;
    if (groups.length === 0) throw new StoreError('NO_SPACE', 'no volume group takes writes');
    this.nextGroup = (this.nextGroup + 1) % groups.length;
    return groups[this.nextGroup]!;
  }

  // ---- reads -----------------------------------------------------------------------------

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

  /** The whole value of an entry, checked. */
  read(entry: IndexEntry): Promise<Uint8Array> {
    return this.ports.reader.read(entry.address, entry.key);
  }

  /**
   * An entry's value and metadata read on this thread (null: not possible here, or bad bytes);
   * with `scratch`, maybe views of it (ReadPort.readNow).
   */
  readNow(entry: IndexEntry, scratch?: Uint8Array): { value: Uint8Array; meta: Uint8Array } | null {
    try {
      return this.ports.reader.readNow?.(entry.address, entry.key, scratch) ?? null;
    } catch {
      return null; // the message path reads it again and reports what is wrong
    }
  }

  /** The metadata section of an entry's needle (empty when it has none). */
  readMeta(entry: IndexEntry): Promise<Uint8Array> {
    return this.ports.reader.meta(entry.address, entry.key);
  }

  /** Value bytes of an entry, streamed and checked (see ReadPort.stream). */
  stream(entry: IndexEntry, start: number, length: number, buf?: Uint8Array): AsyncIterableIterator<Uint8Array> {
    return this.ports.reader.stream(entry.address, entry.key, start, length, buf);
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
    this.write([], [{ code: OpCode.DelIf, key, volume, offset }])
      .then(({ results }) => {
        if (results[0] === 1) this.notify([{ event: 'expired', key }]);
      })
      .catch(() => undefined) // the sweep retries; an expired key is invisible either way
      .finally(() => {
        this.pendingExpiries -= 1;
      });
  }

  // ---- background ------------------------------------------------------------------------

  /** One slice of the TTL sweep: deletes (through the WAL) the expired keys it finds. */
  async sweep(maxBuckets: number): Promise<number> {
    const expired = await this.ports.index.expiredSlice(maxBuckets);
    let deleted = 0;
    for (let i = 0; i < expired.length; i += SWEEP_BATCH) {
      const ops: Op[] = expired
        .slice(i, i + SWEEP_BATCH)
        .map((e) => ({ code: OpCode.DelIf, key: e.key, volume: e.volume, offset: e.offset }));
      const { results } = await this.write([], ops);
      deleted += results.reduce((a, b) => a + b, 0);
      this.notify(ops.filter((_, k) => results[k] === 1).map((op) => ({ event: 'expired', key: (op as { key: Uint8Array }).key })));
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

  private compacted(keys: number): void {
    if (this.compactState !== null) advanceProgress(this.compactState, keys, this.clock.now());
  }

  /** The COMPACT in progress: keys written into the new WAL's snapshot so far. */
  compactProgress(): Progress | null {
    return this.compactState === null ? null : { ...this.compactState };
  }

  private async runCompaction(): Promise<void> {
    const { index } = this.ports;
    const started = this.clock.now();
    this.compactState = { operation: 'compact', target: -1, doneBytes: 0, totalBytes: await index.dbsize(), unit: 'keys', startedAt: started, etaMs: -1 };
    try {
      await this.compactSteps();
    } finally {
      this.compactState = null;
    }
  }

  private async compactSteps(): Promise<void> {
    const { index, wal } = this.ports;
    const snapshotLsn = await index.rebuild();
    // Only those retired by then: a record after the snapshot may still name a volume retired later.
    const retired = (await index.volumeUsage()).retiredAt.filter(([, lsn]) => lsn <= snapshotLsn).map(([volume]) => volume);
    await wal.compactBegin(snapshotLsn, retired);
    try {
      let cursor = 0;
      do {
        const page = await index.scan(cursor, COMPACT_CHUNK);
        if (page.entries.length > 0) await wal.compactChunk(page.entries);
        this.compacted(page.entries.length);
        cursor = page.cursor;
      } while (cursor !== 0);
      await wal.compactFinish();
    } catch (err) {
      await wal.compactAbort().catch(() => undefined);
      throw err;
    }
  }
}

/** The op of a write under a condition: a plain SET, or a SET_IF the index judges atomically. */
export function setOp(key: Uint8Array, address: NeedleAddress, expiresAt: number, condition: Condition, keepTtl: boolean): Op {
  if (condition.kind === 'none' && !keepTtl) return { code: OpCode.Set, key, address, expiresAt };
  let flags = keepTtl ? SetFlag.KeepTtl : 0;
  if (condition.kind === 'absent') flags |= SetFlag.Nx;
  else if (condition.kind === 'present') flags |= SetFlag.Xx;
  else if (condition.kind === 'at') flags |= SetFlag.IfAt;
  const expect = condition.kind === 'at' ? condition : { volume: 0, offset: 0 };
  return { code: OpCode.SetIf, key, address, expiresAt, flags, expectVolume: expect.volume, expectOffset: expect.offset };
}

function redoBytes(redo: readonly RedoNeedle[]): number {
  let n = 0;
  for (const r of redo) n += r.key.length + r.value.length;
  return n;
}
