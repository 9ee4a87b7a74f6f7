// The WAL committer: the only writer of wal.log.
// Owns: the WAL file (WalWriter), the commits waiting for this turn's group, a WAL compaction
// in progress.
// Invariants:
// - records get consecutive LSNs and reach the index in LSN order, over one channel;
// - a commit is answered only after its record is durable (one write + one fdatasync for the
//   whole group) and the index has applied it, so a reply means visible to every later read;
// - after a failed fsync the WAL is fenced and every later commit fails (WalWriter does it).
// - the replication feed never delays a commit's answer: live records reach followers only
//   after the group's waiters have been answered (chained in LSN order), and history is read
//   from wal.log one bounded batch per follower per event-loop turn;
// - a follower gets every record with lsn >= its `from`, in order, exactly once (snapshot
//   chunks first when from <= the snapshot LSN); at most `window` batches are unacknowledged;
//   a live follower's queue is bounded by maxLagBytes, past which it is dropped with a reason;
//   followers of a peer that went down or restarted are forgotten.
import { join } from 'node:path';
import { NodeFs } from '../runtime/fs.js';
import { systemClock } from '../runtime/clock.js';
import { runActor, type ActorContext } from '../runtime/actor.js';
import type { Peer } from '../runtime/peer.js';
import { toWireError, StoreError, type ErrorCode } from '../runtime/errors.js';
import { WalWriter } from '../storage/wal_writer.js';
import { readWal, type WalScanEnd } from '../storage/wal_reader.js';
import { type IndexEntry, type Op, type WalRecord } from '../storage/types.js';
import { WAL_FOLLOW_END, WalMsg, type FollowLimits, type FollowReply, type WalRecordsPush, type WalRequest } from '../protocol/wal_protocol.js';
import { IndexMsg } from '../protocol/index_protocol.js';
import { WalCompactionDriver } from '../db/local_ports.js';
import { WAL_FILE } from '../db/local.js';
import type { SyncPolicy } from '../db/api.js';
import { assertNever } from './assert.js';

export interface WalCommitterConfig {
  dir: string;
  sync: SyncPolicy;
}

/** Commits waiting for the next group; past it, QUEUE_FULL (back-pressure to front ends). */
const MAX_QUEUED = 65_536;
const APPLY_TIMEOUT_MS = 60_000;

interface Waiter {
  ops: Op[];
  resolve: (reply: { lsn: number; results: number[] }) => void;
  reject: (err: unknown) => void;
}

// ---- the replication feed: limits ----
/** Batches in flight to one follower by default, and at most. */
const FOLLOW_WINDOW = 4;
const MAX_FOLLOW_WINDOW = 64;
/** How far (bytes of records queued + unacknowledged) a live follower may lag, by default and at most. */
const FOLLOW_MAX_LAG = 64 * 1024 * 1024;
const MIN_FOLLOW_LAG = 1024;
/** A batch is cut at about this many bytes of records, or this many records. */
const FOLLOW_BATCH_BYTES = 1024 * 1024;
const FOLLOW_BATCH_RECORDS = 4096;
/**
 * The read chunk of a history reader: each holds one buffer of this size while it is open
 * (more only for a record larger than it), so readers hold at most MAX_FOLLOWERS times this.
 */
const FOLLOW_READ_CHUNK = 256 * 1024;
const MAX_FOLLOWERS = 256;
/** Live records queued for all followers together; past it the one furthest behind is dropped. */
const FEED_MAX_BACKLOG = 256 * 1024 * 1024;
/** A follower that acknowledges nothing for this long is dropped (it holds a file handle). */
const FOLLOW_ACK_TIMEOUT_MS = 5 * 60_000;
const FOLLOW_SWEEP_MS = 5_000;

interface Follower {
  /** `${peerName}/${id}`. */
  key: string;
  peerName: string;
  peer: Peer;
  id: number;
  /** The next kind-0 LSN this follower needs (records below it are sent or queued). */
  nextLsn: number;
  /** Reading history from wal.log; null once caught up (live). */
  reader: Generator<WalRecord, WalScanEnd> | null;
  /** The reader's fromLsn, whether it yielded anything yet, whether it may yield snapshot chunks. */
  readerFrom: number;
  readerYielded: boolean;
  /** Only the first reader may: a snapshot in a later one means the WAL was compacted under us. */
  snapshotAllowed: boolean;
  /** Last sequence number sent. */
  seq: number;
  unacked: { seq: number; bytes: number }[];
  unackedBytes: number;
  /** Live records waiting for the window to open. */
  backlog: WalRecord[];
  backlogBytes: number;
  window: number;
  maxLagBytes: number;
  /** When the oldest unacknowledged batch started waiting (or the last ack came). */
  waitingSince: number;
}

interface State {
  ctx: ActorContext;
  walPath: string;
  wal: WalWriter;
  index: Peer;
  queue: Waiter[];
  compaction: WalCompactionDriver;
  groups: number;
  /** Time spent in group commits (one write + one fdatasync each), and the longest one. */
  commitSeconds: number;
  commitSecondsMax: number;
  records: number;
  followers: Map<string, Follower>;
  /** Peers whose rewire listener is installed (once per peer). */
  watched: Set<string>;
  /** Live pushes, chained so they leave in LSN order whatever order the index answers in. */
  feedTail: Promise<void>;
  pumpScheduled: boolean;
  sweeper: NodeJS.Timeout;
  dropped: number;
  /** The sum of every follower's backlogBytes: the feed's memory in this thread. */
  backlogTotal: number;
}

let state: State | null = null;

function init(ctx: ActorContext): void {
  const config = ctx.config as WalCommitterConfig;
  const fs = new NodeFs();
  const walPath = join(config.dir, WAL_FILE);
  const sweeper = setInterval(sweepFollowers, FOLLOW_SWEEP_MS);
  sweeper.unref();
  state = {
    ctx,
    walPath,
    wal: WalWriter.open(fs, walPath, { sync: config.sync }),
    index: ctx.peer('index'),
    queue: [],
    compaction: new WalCompactionDriver(fs, walPath, systemClock),
    groups: 0,
    commitSeconds: 0,
    commitSecondsMax: 0,
    records: 0,
    followers: new Map(),
    watched: new Set(),
    feedTail: Promise.resolve(),
    pumpScheduled: false,
    sweeper,
    dropped: 0,
    backlogTotal: 0,
  };
  ctx.onControl({
    stats: () => {
      const s = live();
      return {
        lastLsn: s.wal.lastLsn,
        snapshotLsn: s.wal.snapshotLsn,
        size: s.wal.size,
        groups: s.groups,
        records: s.records,
        commitSeconds: s.commitSeconds,
        commitSecondsMax: s.commitSecondsMax,
        fenced: s.wal.fenced?.message ?? null,
        followers: s.followers.size,
        followersDropped: s.dropped,
      };
    },
  });
}

function onRequest(from: string, body: unknown): unknown {
  const msg = body as WalRequest;
  switch (msg.t) {
    case WalMsg.Commit:
      return onCommit(msg.ops);
    case WalMsg.CompactBegin:
      live().compaction.begin(msg.snapshotLsn);
      return null;
    case WalMsg.CompactChunk:
      return onCompactChunk(msg.entries);
    case WalMsg.CompactFinish:
      live().compaction.finish(live().wal);
      return null;
    case WalMsg.CompactAbort:
      live().compaction.abort();
      return null;
    case WalMsg.LastLsn:
      return live().wal.lastLsn;
    case WalMsg.Follow:
      return onFollow(from, msg.follower, msg.from, msg.limits);
    case WalMsg.Ack:
      return onAck(from, msg.follower, msg.upTo);
    case WalMsg.Unfollow:
      return onUnfollow(from, msg.follower);
    default:
      return assertNever(msg);
  }
}

function onCommit(ops: Op[]): Promise<{ lsn: number; results: number[] }> {
  const s = live();
  if (s.queue.length >= MAX_QUEUED) {
    return Promise.reject(new StoreError('QUEUE_FULL', `more than ${MAX_QUEUED} commits waiting for the WAL`));
  }
  return new Promise((resolve, reject) => {
    s.queue.push({ ops, resolve, reject });
    // setImmediate, not a microtask: every commit decoded in this turn joins the group.
    if (s.queue.length === 1) setImmediate(flushGroup);
  });
}

/** Group commit: one write, one fdatasync, then the index applies, then every waiter hears. */
function flushGroup(): void {
  const s = live();
  const group = s.queue;
  s.queue = [];
  const timeMs = systemClock.now();
  let records: WalRecord[];
  const started = performance.now();
  try {
    records = s.wal.commit(group.map((w) => ({ ops: w.ops, timeMs })));
  } catch (err) {
    for (const w of group) w.reject(err);
    return;
  }
  const seconds = (performance.now() - started) / 1000;
  s.commitSeconds += seconds;
  s.commitSecondsMax = Math.max(s.commitSecondsMax, seconds);
  s.groups += 1;
  s.records += records.length;
  const answered = s.index.call<number[][]>({ t: IndexMsg.Apply, records }, { timeoutMs: APPLY_TIMEOUT_MS }).then(
    (results) => records.forEach((r, i) => group[i]!.resolve({ lsn: r.lsn, results: results[i] ?? [] })),
    (err: unknown) => {
      // The record is durable; only its answer is lost. The index replays it when it returns.
      const why = err instanceof Error ? err.message : String(err);
      const fail = new StoreError('ACTOR_DOWN', `the write is durable in the WAL, but the index did not confirm it: ${why}`);
      for (const w of group) w.reject(fail);
    },
  );
  // With no follower now, one that joins later reads these records from the file (history)
  // or starts after them (live only), so nothing needs pushing.
  if (s.followers.size > 0) {
    // After the answers (durable either way: a failed apply is replayed), in LSN order.
    s.feedTail = s.feedTail.then(() => answered).then(() => pushLiveSafely(records));
  }
}

function onCompactChunk(entries: IndexEntry[]): null {
  live().compaction.chunk(entries);
  return null;
}

// ---- the replication feed: handlers ----

function onFollow(from: string, id: number, fromLsn: number, limits: FollowLimits | undefined): FollowReply {
  const s = live();
  const key = `${from}/${id}`;
  if (!Number.isSafeInteger(id)) throw new StoreError('BAD_ARGUMENT', `follower id ${String(id)} is not an integer`);
  if (s.followers.has(key)) throw new StoreError('BAD_ARGUMENT', `follower ${key} is already following`);
  if (s.followers.size >= MAX_FOLLOWERS) throw new StoreError('QUEUE_FULL', `more than ${MAX_FOLLOWERS} WAL followers`);
  const lastLsn = s.wal.lastLsn;
  if (fromLsn !== WAL_FOLLOW_END && !(Number.isSafeInteger(fromLsn) && fromLsn >= 0)) {
    throw new StoreError('BAD_ARGUMENT', `follow from LSN ${String(fromLsn)}: not a non-negative integer`);
  }
  if (fromLsn > lastLsn + 1) {
    throw new StoreError('BAD_ARGUMENT', `follow from LSN ${fromLsn}: past the end of the WAL (last LSN ${lastLsn})`);
  }
  const first = fromLsn === WAL_FOLLOW_END ? lastLsn + 1 : Math.max(fromLsn, 1);
  const peer = peerOf(s, from);
  const f: Follower = {
    key,
    peerName: from,
    peer,
    id,
    nextLsn: first,
    // Nothing to read when starting at the end; otherwise the file has what it needs.
    reader: first <= lastLsn ? openReader(s, first - 1) : null,
    readerFrom: first - 1,
    readerYielded: false,
    snapshotAllowed: true,
    seq: 0,
    unacked: [],
    unackedBytes: 0,
    backlog: [],
    backlogBytes: 0,
    window: clamp(limits?.window ?? FOLLOW_WINDOW, 1, MAX_FOLLOW_WINDOW),
    maxLagBytes: clamp(limits?.maxLagBytes ?? FOLLOW_MAX_LAG, MIN_FOLLOW_LAG, FOLLOW_MAX_LAG),
    waitingSince: systemClock.now(),
  };
  s.followers.set(key, f);
  watchPeer(s, from, peer);
  if (f.reader !== null) schedulePump();
  return { lastLsn, snapshotLsn: s.wal.snapshotLsn, from: first };
}

function onAck(from: string, id: number, upTo: number): null {
  const f = live().followers.get(`${from}/${id}`);
  if (f === undefined) return null; // dropped or unfollowed: a late ack
  while (f.unacked.length > 0 && f.unacked[0]!.seq <= upTo) f.unackedBytes -= f.unacked.shift()!.bytes;
  f.waitingSince = systemClock.now();
  if (f.reader !== null) schedulePump();
  else flushBacklog(f);
  return null;
}

function onUnfollow(from: string, id: number): boolean {
  const f = live().followers.get(`${from}/${id}`);
  if (f === undefined) return false;
  forget(f);
  return true;
}

// ---- the replication feed: history ----

function schedulePump(): void {
  const s = live();
  if (s.pumpScheduled) return;
  s.pumpScheduled = true;
  setImmediate(pump);
}

/** One batch per history follower with room in its window, then yield to commits. */
function pump(): void {
  const s = state;
  if (s === null) return;
  s.pumpScheduled = false;
  let again = false;
  for (const f of [...s.followers.values()]) {
    if (f.reader === null || f.unacked.length >= f.window) continue;
    readHistoryBatch(s, f);
    if (f.reader !== null && f.unacked.length < f.window && s.followers.has(f.key)) again = true;
  }
  if (again) schedulePump();
}

function readHistoryBatch(s: State, f: Follower): void {
  const batch: WalRecord[] = [];
  let bytes = 0;
  try {
    while (f.reader !== null && bytes < FOLLOW_BATCH_BYTES && batch.length < FOLLOW_BATCH_RECORDS) {
      const next = f.reader.next();
      if (next.done === true) {
        if (!nextReader(s, f, next.value)) return;
        continue;
      }
      const r = next.value;
      if (r.kind === 1 && !f.snapshotAllowed) {
        drop(f, 'NOT_FOUND', compactedMessage(f));
        return;
      }
      f.readerYielded = true;
      batch.push(r);
      bytes += recordBytes(r);
      f.nextLsn = r.kind === 0 ? r.lsn + 1 : Math.max(f.nextLsn, r.lsn + 1);
    }
  } catch (err) {
    const e = toWireError(err);
    drop(f, e.code as ErrorCode, `reading the WAL for follower ${f.key} failed: ${e.message}`);
    return;
  }
  if (batch.length > 0) sendBatch(f, batch, bytes);
}

/**
 * A reader reached the end of the file as it was when the reader opened. Records committed
 * since are in the file too: open another reader after what was read, or, when the follower
 * has everything the file holds, turn it live (the next group commit pushes to it). False when
 * the follower was dropped.
 */
function nextReader(s: State, f: Follower, end: WalScanEnd): boolean {
  f.reader = null;
  // A reader that started below the snapshot LSN passed the snapshot, even an empty one.
  if (f.readerFrom < end.snapshotLsn) f.nextLsn = Math.max(f.nextLsn, end.snapshotLsn + 1);
  if (f.nextLsn > s.wal.lastLsn) return true;
  if (f.nextLsn - 1 < s.wal.snapshotLsn) {
    drop(f, 'NOT_FOUND', compactedMessage(f));
    return false;
  }
  if (!f.readerYielded) {
    // The file ended without the records the writer says it holds: never loop on it.
    drop(f, 'INTERNAL', `wal.log ends at LSN ${end.lastLsn} but the writer is at ${s.wal.lastLsn}`);
    return false;
  }
  f.reader = openReader(s, f.nextLsn - 1);
  f.readerFrom = f.nextLsn - 1;
  f.readerYielded = false;
  f.snapshotAllowed = false;
  return true;
}

function openReader(s: State, fromLsn: number): Generator<WalRecord, WalScanEnd> {
  return readWal(new NodeFs(), s.walPath, { fromLsn, chunkSize: FOLLOW_READ_CHUNK });
}

function compactedMessage(f: Follower): string {
  return `the WAL was compacted past LSN ${f.nextLsn} while following; follow again from ${f.nextLsn} to get the snapshot`;
}

// ---- the replication feed: live ----

function pushLiveSafely(records: WalRecord[]): void {
  try {
    pushLive(records);
  } catch (err) {
    // A bug here must not stop later pushes (the chain would stay rejected).
    process.emitWarning(`WAL feed: live push failed: ${toWireError(err).message}`);
  }
}

function pushLive(records: WalRecord[]): void {
  const s = state;
  if (s === null) return;
  for (const f of [...s.followers.values()]) {
    if (f.reader !== null) continue; // catching up from the file, which has these
    let queued = false;
    for (const r of records) {
      if (r.lsn < f.nextLsn) continue; // read from the file already
      f.backlog.push(r);
      const bytes = recordBytes(r);
      f.backlogBytes += bytes;
      s.backlogTotal += bytes;
      f.nextLsn = r.lsn + 1;
      queued = true;
    }
    if (queued) flushBacklog(f);
  }
  while (s.backlogTotal > FEED_MAX_BACKLOG && s.followers.size > 0) {
    const worst = [...s.followers.values()].reduce((a, b) => (b.backlogBytes > a.backlogBytes ? b : a));
    drop(worst, 'QUEUE_FULL', `follower ${worst.key} was furthest behind when the WAL feed held more than ${FEED_MAX_BACKLOG} bytes for all followers (slow consumer)`);
  }
}

function flushBacklog(f: Follower): void {
  while (f.backlog.length > 0 && f.unacked.length < f.window) {
    let n = 0;
    let bytes = 0;
    while (n < f.backlog.length && n < FOLLOW_BATCH_RECORDS && bytes < FOLLOW_BATCH_BYTES) bytes += recordBytes(f.backlog[n++]!);
    const batch = f.backlog.splice(0, n);
    f.backlogBytes -= bytes;
    live().backlogTotal -= bytes;
    if (!sendBatch(f, batch, bytes)) return;
  }
  if (f.backlogBytes + f.unackedBytes > f.maxLagBytes) {
    drop(f, 'QUEUE_FULL', `follower ${f.key} fell more than ${f.maxLagBytes} bytes behind the WAL (slow consumer); follow again from the LSN after the last one consumed`);
  }
}

/** False when the follower's peer is down (the follower is forgotten). */
function sendBatch(f: Follower, records: WalRecord[], bytes: number): boolean {
  if (!f.peer.connected) {
    forget(f);
    return false;
  }
  f.seq += 1;
  if (f.unacked.length === 0) f.waitingSince = systemClock.now();
  f.unacked.push({ seq: f.seq, bytes });
  f.unackedBytes += bytes;
  f.peer.send({ t: WalMsg.Records, follower: f.id, seq: f.seq, records } satisfies WalRecordsPush);
  return true;
}

/** Ends a follower with a reason it is told (its last Records message carries the error). */
function drop(f: Follower, code: ErrorCode, message: string): void {
  const s = live();
  s.dropped += 1;
  if (f.peer.connected) {
    f.peer.send({ t: WalMsg.Records, follower: f.id, seq: f.seq + 1, records: [], error: { code, message } } satisfies WalRecordsPush);
  }
  forget(f);
}

function forget(f: Follower): void {
  live().followers.delete(f.key);
  f.backlog = [];
  live().backlogTotal -= f.backlogBytes;
  f.backlogBytes = 0;
  const reader = f.reader;
  f.reader = null;
  reader?.return(undefined as never); // closes the file (readWal's finally)
}

function sweepFollowers(): void {
  const s = state;
  if (s === null) return;
  const now = systemClock.now();
  for (const f of [...s.followers.values()]) {
    if (!f.peer.connected) forget(f);
    else if (f.unacked.length > 0 && now - f.waitingSince > FOLLOW_ACK_TIMEOUT_MS) {
      drop(f, 'TIMEOUT', `follower ${f.key} acknowledged nothing for ${FOLLOW_ACK_TIMEOUT_MS} ms (slow consumer)`);
    }
  }
}

function peerOf(s: State, name: string): Peer {
  return name === 'main' ? s.ctx.main : s.ctx.peer(name);
}

/** A restarted front end is a new incarnation: its followers are gone with the old one. */
function watchPeer(s: State, name: string, peer: Peer): void {
  if (s.watched.has(name)) return;
  s.watched.add(name);
  peer.onRewire(() => {
    const now = state;
    if (now === null) return;
    for (const f of [...now.followers.values()]) if (f.peerName === name) forget(f);
  });
}

/** Approximate encoded size of a record: what batches and lag are measured in. */
function recordBytes(r: WalRecord): number {
  let n = 16;
  for (const op of r.ops) n += op.key.length + 40;
  return n;
}

function clamp(v: number, lo: number, hi: number): number {
  if (!Number.isFinite(v)) return hi;
  return Math.min(hi, Math.max(lo, Math.floor(v)));
}

function stop(): void {
  const s = state;
  if (s === null) return;
  if (s.queue.length > 0) flushGroup();
  clearInterval(s.sweeper);
  for (const f of [...s.followers.values()]) drop(f, 'CLOSED', 'the WAL committer is stopping');
  s.compaction.abort();
  s.wal.close();
  state = null;
}

function live(): State {
  if (state === null) throw new StoreError('CLOSED', 'WAL committer is not running');
  return state;
}

runActor({ init, onRequest, stop });
