// The index actor: the only owner of index.hash.
// Owns: the HashIndex (with its live bytes per volume and retired volumes, vacuum's accounting),
// its background jobs (checkpoints, growth and COMPACT rebuilds done a slice at a time between
// requests).
// Invariants:
// - records are applied in LSN order with no gap: after a restart or a failed apply the
//   committer asks this index to catch up (CatchUp) before it sends more, and the index reads
//   the records it lacks from wal.log, where they are durable (the committer forwards only
//   after fsync); a record that still arrives after a gap makes it read the missing ones first;
// - the header LSN on disk only covers what was fsynced (HashIndex.checkpoint does it), so
//   durableLsn <= appliedLsn;
// - a retired volume has no live bytes (no entry points into it);
// - at most one rebuild runs; lookups during it use the old file until the swap; a COMPACT
//   waiting on a rebuild is answered when it swaps (or fails).
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { StoreError, toWireError, type ErrorCode } from '../runtime/errors.js';
import type { Timer } from '../runtime/scheduler.js';
import type { HashIndex } from '../storage/hash_index.js';
import { fillIndexGap, recoverIndex } from '../storage/store_files.js';
import type { WalRecord } from '../storage/types.js';
import { INDEX_PROTOCOL, IndexMsg, encodeLookupReply, type IndexReplies, type IndexRequest, type LookupReply } from '../protocol/index_protocol.js';
import { serveSyncSlot } from '../runtime/sync_slot.js';
import { SharedHeadsWriter } from '../storage/shared_heads.js';
import { syncVolumeFiles } from '../storage/wal_redo.js';
import { assertNever } from './assert.js';

export interface IndexActorConfig {
  dir: string;
  indexBuckets?: number;
  /** Shared-memory slots of the front ends that may look keys up synchronously (sync_slot.ts). */
  lookupSlots?: SharedArrayBuffer[];
  /** The bucket heads front ends read to look keys up on their own thread (shared_heads.ts). */
  sharedHeads?: SharedArrayBuffer;
  /**
   * The drive of each local volume group, as [group, dir]: the volumes a checkpoint syncs first
   * (records may carry their needles as redo needles, wal_redo.ts). Absent under --sync none.
   */
  volumeDirs?: [number, string][];
  /**
   * One word, set for good (across this actor's restarts) when such a sync failed: after a
   * failed fsync the kernel may have dropped the bytes, so no later checkpoint may pass the
   * records that carry them. The index goes on without checkpoints; a restart of the store
   * writes the records' needles back (wal_redo.ts).
   */
  volumeSyncFence?: SharedArrayBuffer;
}

const CHECKPOINT_EVERY_MS = 1000;
const REBUILD_SLICE = 1024;

interface State {
  env: ActorEnv<IndexActorConfig>;
  index: HashIndex;
  /** volumeSyncFence's word (non-zero: no more checkpoints or swaps in this process). */
  fence: Int32Array;
  rebuildWaiters: { resolve: (lsn: number) => void; reject: (err: unknown) => void }[];
  rebuildScheduled: boolean;
  /**
   * Why the last rebuild failed (ENOSPC on index.hash.tmp, say), until one succeeds: growth has
   * no caller to tell, so it is reported in the stats, and retried by the timer, not by every
   * write (a full disk would be hit once per apply).
   */
  rebuildError: StoreError | null;
  timer: Timer;
  /** Stops the synchronous lookup slots. */
  stopSlots: (() => void)[];
}

const createIndexActor: ActorFactory<IndexActorConfig> = (env) => {
  // A restarted index must not let readers follow the old instance's heads while it cuts the
  // file back to its checkpoint and replays: they fall back until it publishes again.
  const shared = env.config.sharedHeads === undefined ? undefined : new SharedHeadsWriter(env.config.sharedHeads);
  shared?.invalidate();
  const index = recoverIndex(env.fs, env.config.dir, env.config.indexBuckets);
  const fence = new Int32Array(env.config.volumeSyncFence ?? new SharedArrayBuffer(4));
  index.syncVolumes = volumeSyncer(env, fence);
  if (shared !== undefined) index.share(shared);
  const s: State = { env, index, fence, rebuildWaiters: [], rebuildScheduled: false, rebuildError: null, timer: { cancel: () => undefined }, stopSlots: [] };
  s.timer = env.scheduler.every(CHECKPOINT_EVERY_MS, () => background(s));
  // The same Lookup as by message, answered between messages (so it sees every applied record).
  s.stopSlots = (env.config.lookupSlots ?? []).map((slot) => serveSyncSlot(slot, (key) => encodeLookupReply(onLookup(s, key))));
  return {
    protocol: INDEX_PROTOCOL,
    handle: (_from, body) => handle(s, body as IndexRequest),
    invariants: () => invariants(s),
    control: { stats: () => onStats(s), checkpoint: () => onCheckpoint(s) },
    stop: () => stop(s),
  };
};
export default createIndexActor;

function handle(s: State, msg: IndexRequest): unknown {
  try {
    return dispatch(s, msg);
  } catch (err) {
    crashIfFenced(s);
    throw err;
  }
}

/**
 * An index fenced by an I/O failure (its memory may be ahead of its file) is of no use until it
 * is reopened, and reopening is what the supervisor does: so this actor crashes, one-for-one,
 * and its restart recovers from disk (the WAL replays what the file lacks). Reads resume by
 * themselves instead of failing until an operator restarts the master. The failed request is
 * answered first (the crash comes a turn later).
 */
function crashIfFenced(s: State): void {
  const fenced = s.index.fenced;
  if (fenced === undefined) return;
  s.env.crash(new StoreError('IO_ERROR', `index actor restarting to recover: ${fenced.message}`));
}

function dispatch(s: State, msg: IndexRequest): unknown {
  switch (msg.t) {
    case IndexMsg.Lookup:
      return onLookup(s, msg.key);
    case IndexMsg.Scan:
      return s.index.scan(msg.cursor, msg.count, s.env.clock.now(), msg.match);
    case IndexMsg.DbSize:
      return s.index.liveCount;
    case IndexMsg.ExpiredSlice:
      return s.index.expiredSlice(s.env.clock.now(), msg.maxBuckets);
    case IndexMsg.Checkpoint:
      return onCheckpoint(s);
    case IndexMsg.Rebuild:
      return onRebuild(s);
    case IndexMsg.Stats:
      return onStats(s);
    case IndexMsg.Apply:
      return onApply(s, msg.records);
    case IndexMsg.AppliedLsn:
      return s.index.appliedLsn;
    case IndexMsg.LookupMany:
      return msg.keys.map((key) => onLookup(s, key));
    case IndexMsg.Maintain:
      return onMaintain(s);
    case IndexMsg.CatchUp:
      return onCatchUp(s, msg.lsn);
    case IndexMsg.VolumeUsage:
      return onVolumeUsage(s);
    case IndexMsg.VolumeEntries:
      return onVolumeEntries(s, msg.volumes, msg.cursor, msg.maxBuckets);
    default:
      return assertNever(msg);
  }
}

function onLookup(s: State, key: Uint8Array): LookupReply {
  const { index } = s;
  const entry = index.get(key, s.env.clock.now());
  if (entry !== undefined) {
    const a = entry.address;
    const meta = a.meta ?? 0;
    return meta === 0 ? [a.volume, a.offset, a.length, entry.expiresAt, entry.modifiedAt ?? 0] : [a.volume, a.offset, a.length, entry.expiresAt, entry.modifiedAt ?? 0, meta];
  }
  const raw = index.getRaw(key);
  return raw === undefined ? null : [-1, raw.address.volume, raw.address.offset];
}

function onApply(s: State, records: WalRecord[]): number[][] {
  const first = records[0];
  if (first !== undefined && first.kind === 0 && first.lsn > s.index.appliedLsn + 1) {
    fillIndexGap(s.env.fs, s.env.config.dir, s.index, first.lsn);
  }
  const results = records.map((r) => s.index.apply(r));
  if (s.rebuildError === null) startGrowthIfDue(s);
  return results;
}

/** Reads from the WAL the records this index has not applied, up to `lsn` (they are durable). */
function onCatchUp(s: State, lsn: number): IndexReplies[typeof IndexMsg.CatchUp] {
  if (s.index.appliedLsn < lsn) fillIndexGap(s.env.fs, s.env.config.dir, s.index, lsn + 1);
  return s.index.appliedLsn;
}

function onVolumeUsage(s: State): IndexReplies[typeof IndexMsg.VolumeUsage] {
  return s.index.volumeUsage();
}

/** A slice of vacuum's walk: bounded by maxBuckets, so lookups and applies go on between slices. */
function onVolumeEntries(s: State, volumes: number[], cursor: number, maxBuckets: number): IndexReplies[typeof IndexMsg.VolumeEntries] {
  return s.index.volumeEntries(volumes, cursor, maxBuckets);
}

/** Growth is background work: its failure is kept for the stats, never thrown at a write. */
function startGrowthIfDue(s: State): void {
  if (!s.index.needsGrowth() || s.index.rebuilding) return;
  try {
    s.index.startRebuild();
  } catch (err) {
    s.rebuildError = asStoreError(err);
    return;
  }
  scheduleRebuild(s);
}

function onCheckpoint(s: State): number {
  if (volumesFenced(s)) throw volumeFenceError();
  s.index.checkpoint();
  return s.index.durableLsn;
}

/**
 * The checkpoint's first step (HashIndex.syncVolumes): every volume the records since the last
 * one named, fdatasynced. A failure fences checkpoints for the process (volumeSyncFence).
 */
function volumeSyncer(env: ActorEnv<IndexActorConfig>, fence: Int32Array): ((volumes: readonly number[]) => void) | undefined {
  const dirs = env.config.volumeDirs;
  if (dirs === undefined) return undefined;
  const byGroup = new Map(dirs);
  return (volumes) => {
    if (Atomics.load(fence, 0) !== 0) throw volumeFenceError();
    try {
      syncVolumeFiles(env.fs, byGroup, volumes);
    } catch (err) {
      Atomics.store(fence, 0, 1);
      throw new StoreError('IO_ERROR', `fsync of a volume failed before an index checkpoint (${err instanceof Error ? err.message : String(err)}): ${VOLUME_FENCE_TEXT}`);
    }
  };
}

const VOLUME_FENCE_TEXT = 'index checkpoints are off until the store restarts; every acknowledged write is in the WAL, and the restart writes the values it holds back into their volumes';

function volumeFenceError(): StoreError {
  return new StoreError('IO_ERROR', `a volume fsync failed earlier: ${VOLUME_FENCE_TEXT}`);
}

function volumesFenced(s: State): boolean {
  return Atomics.load(s.fence, 0) !== 0;
}

/** Rebuild (COMPACT): copied a slice per turn so lookups and applies go on meanwhile. */
function onRebuild(s: State): Promise<number> {
  if (volumesFenced(s)) return Promise.reject(volumeFenceError());
  if (!s.index.rebuilding) s.index.startRebuild();
  return new Promise((resolve, reject) => {
    s.rebuildWaiters.push({ resolve, reject });
    scheduleRebuild(s);
  });
}

function scheduleRebuild(s: State): void {
  if (s.rebuildScheduled) return;
  s.rebuildScheduled = true;
  s.env.scheduler.defer(() => rebuildSlice(s));
}

function rebuildSlice(s: State): void {
  s.rebuildScheduled = false;
  if (!s.index.rebuilding) return;
  let done: boolean;
  try {
    done = s.index.rebuildStep(REBUILD_SLICE);
    if (done) s.index.checkpoint();
  } catch (err) {
    s.rebuildError = asStoreError(err);
    for (const w of s.rebuildWaiters.splice(0)) w.reject(err);
    // A dropped rebuild leaves the index serving; a failed swap fences it: then restart.
    crashIfFenced(s);
    return;
  }
  if (!done) {
    scheduleRebuild(s);
    return;
  }
  s.rebuildError = null;
  for (const w of s.rebuildWaiters.splice(0)) w.resolve(s.index.durableLsn);
}

function onStats(s: State): IndexReplies[typeof IndexMsg.Stats] {
  const { index } = s;
  return {
    liveCount: index.liveCount,
    bucketCount: index.bucketCount,
    entryCount: index.entryCount,
    appliedLsn: index.appliedLsn,
    durableLsn: index.durableLsn,
    rebuilding: index.rebuilding,
    rebuildError: s.rebuildError === null ? null : { code: s.rebuildError.code, message: s.rebuildError.message },
  };
}

/** What the timer does, on demand (the simulation's maintenance): see background(). */
function onMaintain(s: State): IndexReplies[typeof IndexMsg.Maintain] {
  background(s);
  return { rebuilding: s.index.rebuilding, durableLsn: s.index.durableLsn };
}

/**
 * Periodic: checkpoint when due (so recovery replays little), keep a rebuild moving, and start
 * a growth that is due (again, after a failed one: the timer is its retry).
 */
function background(s: State): void {
  if (volumesFenced(s)) return; // the WAL holds what a checkpoint would vouch for
  if (s.index.needsCheckpoint()) s.index.checkpoint();
  if (s.index.rebuilding) scheduleRebuild(s);
  else startGrowthIfDue(s);
}

function invariants(s: State): void {
  const i = s.index;
  if (i.durableLsn > i.appliedLsn) throw new Error(`durable LSN ${i.durableLsn} is past the applied LSN ${i.appliedLsn}`);
  if (i.liveCount < 0 || i.liveCount > i.entryCount) throw new Error(`${i.liveCount} live keys in ${i.entryCount} entries`);
  i.checkUsage();
  if (s.rebuildWaiters.length > 0 && !i.rebuilding) throw new Error(`${s.rebuildWaiters.length} COMPACTs wait on no rebuild`);
}

function stop(s: State): void {
  for (const stopSlot of s.stopSlots) stopSlot();
  s.timer.cancel();
  if (!volumesFenced(s)) s.index.checkpoint();
  s.index.close();
}

function asStoreError(err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const e = toWireError(err);
  return new StoreError(e.code as ErrorCode, e.message);
}
