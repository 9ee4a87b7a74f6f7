// The WAL committer: the only writer of wal.log.
// Owns: the WAL file (WalWriter), the commits waiting for this turn's group, a WAL compaction
// in progress, and the replication feed (replication_feed.ts).
// Invariants:
// - records get consecutive LSNs and reach the index in LSN order, over one channel;
// - a commit is answered only after its record is durable (one write + one fdatasync for the
//   whole group) and the index has applied it, so a reply means visible to every later read;
// - after a failed fsync the WAL is fenced and every later commit fails (WalWriter does it);
// - a group goes to the WAL only when the index holds every record before it: at start, after
//   an index restart and after a failed apply, the index first catches up from wal.log
//   (CatchUp); while it cannot (down, starting), commits are refused BEFORE the WAL is written,
//   so such an error means "not written"; only the group in flight when the index failed is
//   left uncertain (durable, not confirmed), and the catch-up makes it visible before the next;
// - the replication feed never delays a commit's answer: live records reach followers only
//   after the group's waiters have been answered (chained in LSN order).
import { join } from 'node:path';
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { canaries } from '../runtime/canary.js';
import { StoreError, toWireError } from '../runtime/errors.js';
import { Channel } from '../runtime/channel.js';
import type { Timer } from '../runtime/scheduler.js';
import { WalCompactionDriver } from '../storage/wal_compaction.js';
import { WAL_FILE } from '../storage/store_files.js';
import { WalWriter } from '../storage/wal_writer.js';
import { withoutRedo } from '../storage/wal_format.js';
import { VolumeLog } from '../storage/log_volume.js';
import { logRecordsAfter } from '../storage/log_rebuild.js';
import { moveLogPointer } from '../storage/log_pointer.js';
import type { IndexEntry, Op, RedoNeedle, SyncPolicy, WalRecord } from '../storage/types.js';
import { WAL_PROTOCOL, WalMsg, type WalReplies, type WalRequest } from '../protocol/wal_protocol.js';
import { IndexMsg, type IndexReplies, type IndexRequest } from '../protocol/index_protocol.js';
import { INDEX_ACTOR } from '../protocol/store_actors.js';
import { ReplicationFeed } from './replication_feed.js';
import { assertNever } from './assert.js';

export interface WalCommitterConfig {
  dir: string;
  sync: SyncPolicy;
  /** The volume log's directory (docs/formats.md §Log volumes); absent: no volume log. */
  logDir?: string;
}

/** Commits waiting for the next group; past it, QUEUE_FULL (back-pressure to front ends). */
const MAX_QUEUED = 65_536;
const APPLY_TIMEOUT_MS = 60_000;
const FOLLOW_SWEEP_MS = 5_000;
/** The volume log is fdatasynced at most this often, off the commit path. */
const VOLUME_LOG_SYNC_MS = 1_000;

type CommitReply = WalReplies[typeof WalMsg.Commit];

interface Waiter {
  ops: Op[];
  redo: RedoNeedle[] | undefined;
  resolve: (reply: CommitReply) => void;
  reject: (err: unknown) => void;
}

interface State {
  env: ActorEnv<WalCommitterConfig>;
  wal: WalWriter;
  index: Channel<IndexRequest, IndexReplies>;
  queue: Waiter[];
  compaction: WalCompactionDriver;
  feed: ReplicationFeed;
  /** The second copy of the records, for cmd/rebuild.js; null when absent or it could not open. */
  log: VolumeLog | null;
  logFailureReported: boolean;
  pumpScheduled: boolean;
  sweeper: Timer;
  logSyncer: Timer;
  /**
   * Whether the index holds every record of the WAL (so the next group may go straight to it).
   * False at start (a committer that died may have left a durable record the index never got),
   * after a failed apply, and after an index restart, until a catch-up succeeds.
   */
  indexCaughtUp: boolean;
  /** A catch-up is running: commits queue meanwhile and go as one group once it ends. */
  catchingUp: boolean;
  /** Live pushes, chained so they leave in LSN order whatever order the index answers in. */
  feedTail: Promise<void>;
  groups: number;
  /** Time spent in group commits (one write + one fdatasync each), and the longest one. */
  commitSeconds: number;
  commitSecondsMax: number;
  records: number;
}

const createWalCommitter: ActorFactory<WalCommitterConfig> = (env) => {
  const walPath = join(env.config.dir, WAL_FILE);
  const wal = WalWriter.open(env.fs, walPath, { sync: env.config.sync });
  restoreCutTail(env, wal);
  const s: State = {
    env,
    wal,
    index: new Channel(env.peer(INDEX_ACTOR)),
    queue: [],
    compaction: new WalCompactionDriver(env.fs, walPath, env.clock),
    feed: null as unknown as ReplicationFeed,
    log: openVolumeLog(env, wal, walPath),
    logFailureReported: false,
    pumpScheduled: false,
    sweeper: { cancel: () => undefined },
    logSyncer: { cancel: () => undefined },
    indexCaughtUp: false,
    catchingUp: false,
    feedTail: Promise.resolve(),
    groups: 0,
    commitSeconds: 0,
    commitSecondsMax: 0,
    records: 0,
  };
  s.feed = new ReplicationFeed({
    fs: env.fs,
    clock: env.clock,
    walPath,
    wal,
    sinkOf: (name) => (name === 'main' ? env.main : env.peer(name)),
    schedulePump: () => schedulePump(s),
  });
  s.sweeper = env.scheduler.every(FOLLOW_SWEEP_MS, () => s.feed.sweep());
  s.logSyncer = env.scheduler.every(VOLUME_LOG_SYNC_MS, () => logged(s, (log) => log.syncIfDirty()));
  // A restarted index recovers from wal.log while it starts; it is caught up before the next
  // group goes to it.
  s.index.peer.onRewire(() => {
    s.indexCaughtUp = false;
  });
  // A committer that replaces a dead one brings the index up to the WAL now, so that a record
  // its predecessor made durable and never forwarded is visible before any later read.
  if (s.index.peer.connected) void catchUpIndex(s);
  return {
    protocol: WAL_PROTOCOL,
    handle: (from, body) => handle(s, from, body as WalRequest),
    invariants: () => invariants(s),
    control: { stats: () => stats(s) },
    stop: () => stop(s),
  };
};
export default createWalCommitter;

function handle(s: State, from: string, msg: WalRequest): unknown {
  switch (msg.t) {
    case WalMsg.Commit:
      return onCommit(s, msg.ops, msg.redo);
    case WalMsg.CompactBegin:
      return onCompactBegin(s, msg.snapshotLsn, msg.retired ?? []);
    case WalMsg.CompactChunk:
      return onCompactChunk(s, msg.entries);
    case WalMsg.CompactFinish:
      return onCompactFinish(s);
    case WalMsg.CompactAbort:
      s.compaction.abort();
      s.log?.abandonGeneration();
      return null;
    case WalMsg.LastLsn:
      return s.wal.lastLsn;
    case WalMsg.Follow:
      return s.feed.follow(from, msg.follower, msg.from, msg.limits);
    case WalMsg.Ack:
      s.feed.ack(from, msg.follower, msg.upTo);
      return null;
    case WalMsg.Unfollow:
      return s.feed.unfollow(from, msg.follower);
    case WalMsg.Replay:
      return onReplay(s, msg.records);
    default:
      return assertNever(msg);
  }
}

function onCommit(s: State, ops: Op[], redo: RedoNeedle[] | undefined): Promise<CommitReply> {
  if (s.queue.length >= MAX_QUEUED) {
    return Promise.reject(new StoreError('QUEUE_FULL', `more than ${MAX_QUEUED} commits waiting for the WAL`));
  }
  return new Promise((resolve, reject) => {
    s.queue.push({ ops, redo, resolve, reject });
    // Deferred to the end of the turn: every commit decoded in this turn joins the group.
    if (s.queue.length === 1) s.env.scheduler.defer(() => flushGroup(s));
  });
}

/** Group commit: one write, one fdatasync, then the index applies, then every waiter hears. */
function flushGroup(s: State): void {
  if (s.catchingUp) return; // the catch-up flushes what queued meanwhile
  if (s.queue.length === 0) return;
  if (!s.indexCaughtUp) {
    void catchUpIndex(s);
    return;
  }
  const group = s.queue;
  s.queue = [];
  const timeMs = s.env.clock.now();
  let records: WalRecord[];
  // Wall time of the write and fdatasync, for the metrics only (nothing depends on it).
  const started = performance.now();
  // canary answerBeforeSync: the group is answered first and synced later.
  const early = canaries.answerBeforeSync;
  try {
    records = s.wal.commit(
      group.map((w) => ({ ops: w.ops, timeMs, redo: w.redo })),
      { sync: !early },
    ).map(withoutRedo);
  } catch (err) {
    for (const w of group) w.reject(err);
    return;
  }
  const seconds = (performance.now() - started) / 1000;
  s.commitSeconds += seconds;
  s.commitSecondsMax = Math.max(s.commitSecondsMax, seconds);
  s.groups += 1;
  s.records += records.length;
  const answered = applyAndAnswer(s, group, records);
  // While the index applies: a write to the page cache, synced by the timer.
  copyToLog(s, records);
  // The canary's sync comes 10 ms later, as `appendfsync everysec` would have it.
  if (early) void answered.then(() => s.env.scheduler.after(10, () => s.wal.syncNow()));
  // With no follower now, one that joins later reads these records from the file (history)
  // or starts after them (live only), so nothing needs pushing.
  if (s.feed.size > 0) {
    // After the answers (durable either way: a failed apply is replayed), in LSN order.
    s.feedTail = s.feedTail.then(() => answered).then(() => pushLiveSafely(s, records));
  }
}

/**
 * A replica's batch of its master's records: written as they are (their LSNs must follow the
 * WAL's), made durable, applied by the index, then answered with the last LSN. The replica link
 * sends one batch at a time; a replica takes no commits of its own, so none is queued here.
 */
async function onReplay(s: State, records: WalRecord[]): Promise<number> {
  if (s.queue.length > 0) throw new StoreError('CONFLICT', 'commits are waiting: a store that takes writes is not a replica');
  if (!s.indexCaughtUp) {
    await catchUpIndex(s);
    if (!s.indexCaughtUp) throw new StoreError('ACTOR_DOWN', 'the index is down or recovering: nothing was written; retry');
  }
  const written = s.wal.appendVerbatim(records);
  copyToLog(s, written);
  s.groups += 1;
  s.records += written.length;
  try {
    await s.index.call({ t: IndexMsg.Apply, records: written }, { timeoutMs: APPLY_TIMEOUT_MS });
  } catch (err) {
    s.indexCaughtUp = false;
    throw new StoreError('ACTOR_DOWN', `the records are durable in the WAL, but the index did not confirm them: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (s.feed.size > 0) s.feedTail = s.feedTail.then(() => pushLiveSafely(s, written));
  return s.wal.lastLsn;
}

/** The index applies the group's records; then each waiter gets its LSN and results. */
function applyAndAnswer(s: State, group: Waiter[], records: WalRecord[]): Promise<void> {
  const apply = s.index.call({ t: IndexMsg.Apply, records }, { timeoutMs: APPLY_TIMEOUT_MS });
  return apply.then(
    (results) => records.forEach((r, i) => group[i]!.resolve({ lsn: r.lsn, results: results[i] ?? [] })),
    (err: unknown) => {
      // The record is durable; only its answer is lost. The index replays it when it returns;
      // until then nothing more is written (see the invariants at the top).
      s.indexCaughtUp = false;
      const why = err instanceof Error ? err.message : String(err);
      const fail = new StoreError('ACTOR_DOWN', `the write is durable in the WAL, but the index did not confirm it: ${why}`);
      for (const w of group) w.reject(fail);
    },
  );
}

/**
 * Brings the index up to the WAL: it applies, from wal.log, every record up to the last LSN it
 * lacks; then the commits that queued meanwhile go as one group. Until that succeeds nothing
 * more is written: when the index is down or still starting, the commits waiting are refused
 * (ACTOR_DOWN, nothing written) and the next commit tries again.
 */
async function catchUpIndex(s: State): Promise<void> {
  if (s.catchingUp) return;
  s.catchingUp = true;
  const lsn = s.wal.lastLsn;
  try {
    const applied = s.index.peer.connected ? await s.index.call({ t: IndexMsg.CatchUp, lsn }) : -1;
    s.indexCaughtUp = applied >= lsn && lsn === s.wal.lastLsn;
  } catch {
    s.indexCaughtUp = false;
  } finally {
    s.catchingUp = false;
  }
  if (s.indexCaughtUp) {
    flushGroup(s); // what queued meanwhile
    return;
  }
  const refusal = new StoreError('ACTOR_DOWN', 'the index is down or recovering: nothing was written; retry');
  for (const w of s.queue.splice(0)) w.reject(refusal);
}

/**
 * When open cut wal.log's tail, the volume log may hold the records cut: it copies a group only
 * after its fdatasync, so those were durable and acknowledged, and the cut was damage (a flipped
 * bit in the last record looks like a torn tail). They are written back, as a replica writes its
 * master's records, before anything reads the WAL.
 */
function restoreCutTail(env: ActorEnv<WalCommitterConfig>, wal: WalWriter): void {
  const dir = env.config.logDir;
  if (dir === undefined || wal.recovery.truncatedBytes === 0) return;
  let records: WalRecord[];
  try {
    records = logRecordsAfter(env.fs, dir, wal.snapshotLsn, wal.lastLsn);
  } catch (err) {
    process.emitWarning(`wal.log's tail was cut on open (${wal.recovery.truncatedBytes} bytes); the volume log could not be read to restore it: ${toWireError(err).message}`);
    return;
  }
  if (records.length === 0) return;
  wal.appendVerbatim(records);
  process.emitWarning(
    `wal.log's tail was damaged (${wal.recovery.stopReason ?? 'bad record'}, ${wal.recovery.truncatedBytes} bytes cut on open); ` +
      `restored LSN ${records[0]!.lsn}..${records[records.length - 1]!.lsn} from the volume log`,
  );
}

/** Opens the volume log and brings it up to the WAL; a failure leaves the store without one. */
function openVolumeLog(env: ActorEnv<WalCommitterConfig>, wal: WalWriter, walPath: string): VolumeLog | null {
  const dir = env.config.logDir;
  if (dir === undefined) return null;
  try {
    const log = VolumeLog.open(env.fs, dir, { path: walPath, snapshotLsn: wal.snapshotLsn, lastLsn: wal.lastLsn }, { sync: env.config.sync, now: () => env.clock.now() });
    // Only once this copy is whole and synced: an older one elsewhere (the log drive changed)
    // goes, so that a rebuild cannot take it for the newest.
    const removed = moveLogPointer(env.fs, env.config.dir, dir);
    if (removed.length > 0) process.emitWarning(`the volume log moved to ${dir}; removed the old copy: ${removed.join(', ')}`);
    return log;
  } catch (err) {
    process.emitWarning(`volume log ${dir} could not open, so cmd/rebuild.js has nothing new to rebuild from: ${toWireError(err).message}`);
    return null;
  }
}

function copyToLog(s: State, records: WalRecord[]): void {
  const first = records[0];
  if (first !== undefined) logged(s, (log) => log.append(s.wal.lastBatchBytes, first.lsn));
}

/** Runs a volume-log step; its first failure is reported once (the WAL goes on without it). */
function logged(s: State, step: (log: VolumeLog) => void): void {
  const log = s.log;
  if (log === null) return;
  step(log);
  if (log.failed !== null && !s.logFailureReported) {
    s.logFailureReported = true;
    process.emitWarning(`volume log ${log.dir} stopped (the WAL goes on; restart to rebuild it): ${log.failed}`);
  }
}

/** The compaction writes the volume log's next generation as it writes the new WAL. */
function onCompactBegin(s: State, snapshotLsn: number, retired: number[]): null {
  const generation = s.log?.beginGeneration(snapshotLsn) ?? null;
  try {
    s.compaction.begin(snapshotLsn, retired, generation);
  } catch (err) {
    s.log?.abandonGeneration();
    throw err;
  }
  return null;
}

function onCompactFinish(s: State): null {
  try {
    s.compaction.finish(s.wal);
  } catch (err) {
    s.log?.abandonGeneration();
    throw err;
  }
  logged(s, (log) => log.adoptGeneration({ path: s.wal.path, snapshotLsn: s.wal.snapshotLsn, lastLsn: s.wal.lastLsn }));
  return null;
}

function onCompactChunk(s: State, entries: IndexEntry[]): null {
  s.compaction.chunk(entries);
  return null;
}

function schedulePump(s: State): void {
  if (s.pumpScheduled) return;
  s.pumpScheduled = true;
  s.env.scheduler.defer(() => {
    s.pumpScheduled = false;
    s.feed.pump();
  });
}

function pushLiveSafely(s: State, records: WalRecord[]): void {
  try {
    s.feed.pushLive(records);
  } catch (err) {
    // A bug here must not stop later pushes (the chain would stay rejected).
    process.emitWarning(`WAL feed: live push failed: ${toWireError(err).message}`);
  }
}

function stats(s: State): Record<string, unknown> {
  return {
    lastLsn: s.wal.lastLsn,
    snapshotLsn: s.wal.snapshotLsn,
    size: s.wal.size,
    groups: s.groups,
    records: s.records,
    commitSeconds: s.commitSeconds,
    commitSecondsMax: s.commitSecondsMax,
    fenced: s.wal.fenced?.message ?? null,
    followers: s.feed.size,
    followersDropped: s.feed.dropped,
    volumeLog: s.log?.stats() ?? null,
  };
}

function invariants(s: State): void {
  if (s.catchingUp && s.indexCaughtUp) throw new Error('catching up an index that is caught up');
  if (s.queue.length > MAX_QUEUED) throw new Error(`${s.queue.length} commits queued (limit ${MAX_QUEUED})`);
  if (s.wal.snapshotLsn > s.wal.lastLsn) throw new Error(`snapshot LSN ${s.wal.snapshotLsn} is past the last LSN ${s.wal.lastLsn}`);
  s.feed.invariants();
}

function stop(s: State): void {
  if (s.queue.length > 0) flushGroup(s);
  s.sweeper.cancel();
  s.logSyncer.cancel();
  s.log?.close();
  s.feed.dropAll('CLOSED', 'the WAL committer is stopping');
  s.compaction.abort();
  s.wal.close();
}
