// The index actor: the only owner of index.hash.
// Owns: the HashIndex, its background jobs (checkpoints, growth and COMPACT rebuilds done a
// slice at a time between requests).
// Invariants:
// - records are applied in LSN order with no gap: a record that arrives after a gap (it was
//   forwarded while this actor was restarting) first makes the index read the missing ones
//   from wal.log, where they are durable because the committer forwards only after fsync;
// - the header LSN on disk only covers what was fsynced (HashIndex.checkpoint does it);
// - at most one rebuild runs; lookups during it use the old file until the swap.
import { join } from 'node:path';
import { NodeFs } from '../runtime/fs.js';
import { systemClock } from '../runtime/clock.js';
import { runActor, type ActorContext } from '../runtime/actor.js';
import type { HashIndex } from '../storage/hash_index.js';
import { replayInto } from '../storage/wal_reader.js';
import { type WalRecord } from '../storage/types.js';
import { IndexMsg, type IndexReplies, type IndexRequest, type LookupReply } from '../protocol/index_protocol.js';
import { WAL_FILE, recoverIndex } from '../db/local.js';
import { assertNever } from './assert.js';
import { StoreError } from '../runtime/errors.js';

export interface IndexActorConfig {
  dir: string;
  indexBuckets?: number;
}

const CHECKPOINT_EVERY_MS = 1000;
const REBUILD_SLICE = 1024;

interface State {
  index: HashIndex;
  dir: string;
  rebuildWaiters: { resolve: (lsn: number) => void; reject: (err: unknown) => void }[];
  rebuildScheduled: boolean;
  timer: NodeJS.Timeout;
}

let state: State | null = null;

function init(ctx: ActorContext): void {
  const config = ctx.config as IndexActorConfig;
  const index = recoverIndex(new NodeFs(), config.dir, config.indexBuckets);
  const timer = setInterval(background, CHECKPOINT_EVERY_MS);
  state = { index, dir: config.dir, rebuildWaiters: [], rebuildScheduled: false, timer };
  ctx.onControl({ stats: () => onStats(), checkpoint: () => onCheckpoint() });
}

function onRequest(_from: string, body: unknown): unknown {
  try {
    return dispatch(body as IndexRequest);
  } catch (err) {
    exitIfFenced();
    throw err;
  }
}

/**
 * An index fenced by an I/O failure (its memory may be ahead of its file) is of no use until it
 * is reopened, and reopening is what the supervisor does: so this actor crashes, one-for-one,
 * and its restart recovers from disk (the WAL replays what the file lacks). Reads resume by
 * themselves instead of failing until an operator restarts the master.
 */
function exitIfFenced(): void {
  const s = state;
  if (s === null || s.index.fenced === undefined) return;
  const why = s.index.fenced.message;
  setImmediate(() => {
    throw new StoreError('IO_ERROR', `index actor restarting to recover: ${why}`);
  });
}

function dispatch(msg: IndexRequest): unknown {
  switch (msg.t) {
    case IndexMsg.Lookup:
      return onLookup(msg.key);
    case IndexMsg.Scan:
      return live().index.scan(msg.cursor, msg.count, systemClock.now(), msg.match);
    case IndexMsg.DbSize:
      return live().index.liveCount;
    case IndexMsg.ExpiredSlice:
      return live().index.expiredSlice(systemClock.now(), msg.maxBuckets);
    case IndexMsg.Checkpoint:
      return onCheckpoint();
    case IndexMsg.Rebuild:
      return onRebuild();
    case IndexMsg.Stats:
      return onStats();
    case IndexMsg.Apply:
      return onApply(msg.records);
    case IndexMsg.AppliedLsn:
      return live().index.appliedLsn;
    case IndexMsg.LookupMany:
      return msg.keys.map(onLookup);
    default:
      return assertNever(msg);
  }
}

function onLookup(key: Uint8Array): LookupReply {
  const { index } = live();
  const entry = index.get(key, systemClock.now());
  if (entry !== undefined) return [entry.address.volume, entry.address.offset, entry.address.length, entry.expiresAt, entry.modifiedAt ?? 0];
  const raw = index.getRaw(key);
  return raw === undefined ? null : [-1, raw.address.volume, raw.address.offset];
}

function onApply(records: WalRecord[]): number[][] {
  const s = live();
  const first = records[0];
  if (first !== undefined && first.kind === 0 && first.lsn > s.index.appliedLsn + 1) fillGap(s, first.lsn);
  const results = records.map((r) => s.index.apply(r));
  if (s.index.needsGrowth() && !s.index.rebuilding) {
    s.index.startRebuild();
    scheduleRebuild();
  }
  return results;
}

/** Reads the records this index missed (sent while it was down) from the WAL file. */
function fillGap(s: State, nextLsn: number): void {
  replayInto(new NodeFs(), join(s.dir, WAL_FILE), s.index.appliedLsn, (record) => {
    if (record.lsn < nextLsn) s.index.apply(record);
  });
  if (s.index.appliedLsn !== nextLsn - 1) {
    throw new StoreError('CORRUPT', `index at LSN ${s.index.appliedLsn} cannot reach LSN ${nextLsn - 1} from the WAL`);
  }
}

function onCheckpoint(): number {
  const { index } = live();
  index.checkpoint();
  return index.durableLsn;
}

/** Rebuild (COMPACT): copied a slice per turn so lookups and applies go on meanwhile. */
function onRebuild(): Promise<number> {
  const s = live();
  if (!s.index.rebuilding) s.index.startRebuild();
  return new Promise((resolve, reject) => {
    s.rebuildWaiters.push({ resolve, reject });
    scheduleRebuild();
  });
}

function scheduleRebuild(): void {
  const s = live();
  if (s.rebuildScheduled) return;
  s.rebuildScheduled = true;
  setImmediate(rebuildSlice);
}

function rebuildSlice(): void {
  const s = state;
  if (s === null) return;
  s.rebuildScheduled = false;
  let done: boolean;
  try {
    done = s.index.rebuildStep(REBUILD_SLICE);
    if (done) s.index.checkpoint();
  } catch (err) {
    for (const w of s.rebuildWaiters.splice(0)) w.reject(err);
    // A dropped rebuild leaves the index serving; a failed swap fences it: then restart.
    exitIfFenced();
    return;
  }
  if (!done) {
    scheduleRebuild();
    return;
  }
  for (const w of s.rebuildWaiters.splice(0)) w.resolve(s.index.durableLsn);
}

function onStats(): IndexReplies[typeof IndexMsg.Stats] {
  const { index } = live();
  return {
    liveCount: index.liveCount,
    bucketCount: index.bucketCount,
    entryCount: index.entryCount,
    appliedLsn: index.appliedLsn,
    durableLsn: index.durableLsn,
    rebuilding: index.rebuilding,
  };
}

/** Periodic: checkpoint when due (so recovery replays little), keep a rebuild moving. */
function background(): void {
  const s = state;
  if (s === null) return;
  if (s.index.needsCheckpoint()) s.index.checkpoint();
  if (s.index.rebuilding) scheduleRebuild();
}

function stop(): void {
  const s = state;
  if (s === null) return;
  clearInterval(s.timer);
  s.index.checkpoint();
  s.index.close();
  state = null;
}

function live(): State {
  if (state === null) throw new StoreError('CLOSED', 'index is not running');
  return state;
}

runActor({ init, onRequest, stop });
