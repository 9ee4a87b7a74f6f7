// The replication feed of the WAL committer: who follows the WAL, from where, and what each
// follower still has to get. A state machine over the WAL file and the records the committer
// hands it after each group commit; it owns no thread and no timer of its own (the committer
// calls pump/sweep when its scheduler says), so it is tested on its own with a simulated file
// system and fake sinks.
// Invariants:
// - a follower gets every record with lsn >= its `from`, in order, exactly once (snapshot
//   chunks first when from <= the snapshot LSN), history read from wal.log one bounded batch
//   per follower per pump, then live records;
// - at most `window` batches are unacknowledged per follower; a live follower's queue is
//   bounded by maxLagBytes, past which it is dropped with a reason; all followers' queues
//   together by FEED_MAX_BACKLOG (the one furthest behind goes first);
// - backlogTotal is the sum of every follower's backlogBytes;
// - followers of a sink that went down or restarted are forgotten, and their reader closed.
import type { Clock } from '../runtime/clock.js';
import { StoreError, toWireError, type ErrorCode } from '../runtime/errors.js';
import type { Fs } from '../runtime/fs.js';
import { readWal, type WalScanEnd } from '../storage/wal_reader.js';
import { withoutRedo } from '../storage/wal_format.js';
import { opKey, type WalRecord } from '../storage/types.js';
import { WAL_FOLLOW_END, WalMsg, type FollowLimits, type FollowReply, type WalRecordsPush } from '../protocol/wal_protocol.js';

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
export const MAX_FOLLOWERS = 256;
/** Live records queued for all followers together; past it the one furthest behind is dropped. */
export const FEED_MAX_BACKLOG = 256 * 1024 * 1024;
/** A follower that acknowledges nothing for this long is dropped (it holds a file handle). */
export const FOLLOW_ACK_TIMEOUT_MS = 5 * 60_000;

/** Where a follower's batches go: a Peer (one-way sends) or a test's fake. */
export interface FollowerSink {
  readonly connected: boolean;
  send(msg: WalRecordsPush): void;
  /** Called when the other side restarted: its followers are gone with its old incarnation. */
  onRewire(listener: () => void): void;
}

/** What the feed reads of the WAL writer. */
export interface WalPosition {
  readonly lastLsn: number;
  readonly snapshotLsn: number;
}

export interface FeedDeps {
  fs: Fs;
  clock: Clock;
  walPath: string;
  wal: WalPosition;
  sinkOf(peerName: string): FollowerSink;
  /** Asks for pump() at the end of this turn (the committer's scheduler). */
  schedulePump(): void;
}

interface Follower {
  /** `${peerName}/${id}`. */
  key: string;
  peerName: string;
  sink: FollowerSink;
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

export class ReplicationFeed {
  private readonly followers = new Map<string, Follower>();
  /** Sinks whose rewire listener is installed (once per sink). */
  private readonly watched = new Set<string>();
  /** The sum of every follower's backlogBytes: the feed's memory. */
  private backlogTotal = 0;
  dropped = 0;

  constructor(private readonly deps: FeedDeps) {}

  get size(): number {
    return this.followers.size;
  }

  follow(from: string, id: number, fromLsn: number, limits: FollowLimits | undefined): FollowReply {
    const key = `${from}/${id}`;
    if (!Number.isSafeInteger(id)) throw new StoreError('BAD_ARGUMENT', `follower id ${String(id)} is not an integer`);
    if (this.followers.has(key)) throw new StoreError('BAD_ARGUMENT', `follower ${key} is already following`);
    if (this.followers.size >= MAX_FOLLOWERS) throw new StoreError('QUEUE_FULL', `more than ${MAX_FOLLOWERS} WAL followers`);
    const { lastLsn, snapshotLsn } = this.deps.wal;
    if (fromLsn !== WAL_FOLLOW_END && !(Number.isSafeInteger(fromLsn) && fromLsn >= 0)) {
      throw new StoreError('BAD_ARGUMENT', `follow from LSN ${String(fromLsn)}: not a non-negative integer`);
    }
    if (fromLsn > lastLsn + 1) {
      throw new StoreError('BAD_ARGUMENT', `follow from LSN ${fromLsn}: past the end of the WAL (last LSN ${lastLsn})`);
    }
    const first = fromLsn === WAL_FOLLOW_END ? lastLsn + 1 : Math.max(fromLsn, 1);
    const sink = this.deps.sinkOf(from);
    const f: Follower = {
      key,
      peerName: from,
      sink,
      id,
      nextLsn: first,
      // Nothing to read when starting at the end; otherwise the file has what it needs.
      reader: first <= lastLsn ? this.openReader(first - 1) : null,
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
      waitingSince: this.deps.clock.now(),
    };
    this.followers.set(key, f);
    this.watch(from, sink);
    if (f.reader !== null) this.deps.schedulePump();
    return { lastLsn, snapshotLsn, from: first };
  }

  ack(from: string, id: number, upTo: number): void {
    const f = this.followers.get(`${from}/${id}`);
    if (f === undefined) return; // dropped or unfollowed: a late ack
    while (f.unacked.length > 0 && f.unacked[0]!.seq <= upTo) f.unackedBytes -= f.unacked.shift()!.bytes;
    f.waitingSince = this.deps.clock.now();
    if (f.reader !== null) this.deps.schedulePump();
    else this.flushBacklog(f);
  }

  unfollow(from: string, id: number): boolean {
    const f = this.followers.get(`${from}/${id}`);
    if (f === undefined) return false;
    this.forget(f);
    return true;
  }

  // ---- history ------------------------------------------------------------------------------

  /** One batch per history follower with room in its window; asks for another pump while needed. */
  pump(): void {
    let again = false;
    for (const f of [...this.followers.values()]) {
      if (f.reader === null || f.unacked.length >= f.window) continue;
      this.readHistoryBatch(f);
      if (f.reader !== null && f.unacked.length < f.window && this.followers.has(f.key)) again = true;
    }
    if (again) this.deps.schedulePump();
  }

  private readHistoryBatch(f: Follower): void {
    const batch: WalRecord[] = [];
    let bytes = 0;
    try {
      while (f.reader !== null && bytes < FOLLOW_BATCH_BYTES && batch.length < FOLLOW_BATCH_RECORDS) {
        const next = f.reader.next();
        if (next.done === true) {
          if (!this.nextReader(f, next.value)) return;
          continue;
        }
        const r = next.value;
        if (r.kind === 1 && !f.snapshotAllowed) {
          this.drop(f, 'NOT_FOUND', compactedMessage(f));
          return;
        }
        f.readerYielded = true;
        // As live records go (wal_committer): a follower has no use for the redo needles.
        batch.push(withoutRedo(r));
        bytes += recordBytes(r);
        f.nextLsn = r.kind === 0 ? r.lsn + 1 : Math.max(f.nextLsn, r.lsn + 1);
      }
    } catch (err) {
      const e = toWireError(err);
      this.drop(f, e.code as ErrorCode, `reading the WAL for follower ${f.key} failed: ${e.message}`);
      return;
    }
    if (batch.length > 0) this.sendBatch(f, batch, bytes);
  }

  /**
   * A reader reached the end of the file as it was when the reader opened. Records committed
   * since are in the file too: open another reader after what was read, or, when the follower
   * has everything the file holds, turn it live (the next group commit pushes to it). False when
   * the follower was dropped.
   */
  private nextReader(f: Follower, end: WalScanEnd): boolean {
    const wal = this.deps.wal;
    f.reader = null;
    // A reader that started below the snapshot LSN passed the snapshot, even an empty one.
    if (f.readerFrom < end.snapshotLsn) f.nextLsn = Math.max(f.nextLsn, end.snapshotLsn + 1);
    if (f.nextLsn > wal.lastLsn) return true;
    if (f.nextLsn - 1 < wal.snapshotLsn) {
      this.drop(f, 'NOT_FOUND', compactedMessage(f));
      return false;
    }
    if (!f.readerYielded) {
      // The file ended without the records the writer says it holds: never loop on it.
      this.drop(f, 'INTERNAL', `wal.log ends at LSN ${end.lastLsn} but the writer is at ${wal.lastLsn}`);
      return false;
    }
    f.reader = this.openReader(f.nextLsn - 1);
    f.readerFrom = f.nextLsn - 1;
    f.readerYielded = false;
    f.snapshotAllowed = false;
    return true;
  }

  private openReader(fromLsn: number): Generator<WalRecord, WalScanEnd> {
    return readWal(this.deps.fs, this.deps.walPath, { fromLsn, chunkSize: FOLLOW_READ_CHUNK });
  }

  // ---- live ---------------------------------------------------------------------------------

  /** Records just committed (and answered), in LSN order: queued for every live follower. */
  pushLive(records: WalRecord[]): void {
    for (const f of [...this.followers.values()]) {
      if (f.reader !== null) continue; // catching up from the file, which has these
      let queued = false;
      for (const r of records) {
        if (r.lsn < f.nextLsn) continue; // read from the file already
        f.backlog.push(r);
        const bytes = recordBytes(r);
        f.backlogBytes += bytes;
        this.backlogTotal += bytes;
        f.nextLsn = r.lsn + 1;
        queued = true;
      }
      if (queued) this.flushBacklog(f);
    }
    while (this.backlogTotal > FEED_MAX_BACKLOG && this.followers.size > 0) {
      const worst = [...this.followers.values()].reduce((a, b) => (b.backlogBytes > a.backlogBytes ? b : a));
      this.drop(worst, 'QUEUE_FULL', `follower ${worst.key} was furthest behind when the WAL feed held more than ${FEED_MAX_BACKLOG} bytes for all followers (slow consumer)`);
    }
  }

  private flushBacklog(f: Follower): void {
    while (f.backlog.length > 0 && f.unacked.length < f.window) {
      let n = 0;
      let bytes = 0;
      while (n < f.backlog.length && n < FOLLOW_BATCH_RECORDS && bytes < FOLLOW_BATCH_BYTES) bytes += recordBytes(f.backlog[n++]!);
      const batch = f.backlog.splice(0, n);
      f.backlogBytes -= bytes;
      this.backlogTotal -= bytes;
      if (!this.sendBatch(f, batch, bytes)) return;
    }
    if (f.backlogBytes + f.unackedBytes > f.maxLagBytes) {
      this.drop(f, 'QUEUE_FULL', `follower ${f.key} fell more than ${f.maxLagBytes} bytes behind the WAL (slow consumer); follow again from the LSN after the last one consumed`);
    }
  }

  /** False when the follower's sink is down (the follower is forgotten). */
  private sendBatch(f: Follower, records: WalRecord[], bytes: number): boolean {
    if (!f.sink.connected) {
      this.forget(f);
      return false;
    }
    f.seq += 1;
    if (f.unacked.length === 0) f.waitingSince = this.deps.clock.now();
    f.unacked.push({ seq: f.seq, bytes });
    f.unackedBytes += bytes;
    f.sink.send({ t: WalMsg.Records, follower: f.id, seq: f.seq, records });
    return true;
  }

  // ---- ending followers ---------------------------------------------------------------------

  /** Ends a follower with a reason it is told (its last Records message carries the error). */
  private drop(f: Follower, code: ErrorCode, message: string): void {
    this.dropped += 1;
    if (f.sink.connected) f.sink.send({ t: WalMsg.Records, follower: f.id, seq: f.seq + 1, records: [], error: { code, message } });
    this.forget(f);
  }

  /** Every follower is told why it ends (the committer is stopping). */
  dropAll(code: ErrorCode, message: string): void {
    for (const f of [...this.followers.values()]) this.drop(f, code, message);
  }

  private forget(f: Follower): void {
    this.followers.delete(f.key);
    f.backlog = [];
    this.backlogTotal -= f.backlogBytes;
    f.backlogBytes = 0;
    const reader = f.reader;
    f.reader = null;
    reader?.return(undefined as never); // closes the file (readWal's finally)
  }

  /** Periodic: forget followers whose sink is gone, drop those that acknowledge nothing. */
  sweep(): void {
    const now = this.deps.clock.now();
    for (const f of [...this.followers.values()]) {
      if (!f.sink.connected) this.forget(f);
      else if (f.unacked.length > 0 && now - f.waitingSince > FOLLOW_ACK_TIMEOUT_MS) {
        this.drop(f, 'TIMEOUT', `follower ${f.key} acknowledged nothing for ${FOLLOW_ACK_TIMEOUT_MS} ms (slow consumer)`);
      }
    }
  }

  /** A restarted front end is a new incarnation: its followers are gone with the old one. */
  private watch(name: string, sink: FollowerSink): void {
    if (this.watched.has(name)) return;
    this.watched.add(name);
    sink.onRewire(() => {
      for (const f of [...this.followers.values()]) if (f.peerName === name) this.forget(f);
    });
  }

  invariants(): void {
    let backlog = 0;
    for (const f of this.followers.values()) {
      if (f.unacked.length > f.window) throw new Error(`follower ${f.key}: ${f.unacked.length} batches unacknowledged (window ${f.window})`);
      let unacked = 0;
      for (const u of f.unacked) unacked += u.bytes;
      if (unacked !== f.unackedBytes) throw new Error(`follower ${f.key}: unackedBytes ${f.unackedBytes}, batches hold ${unacked}`);
      if (f.reader !== null && f.backlog.length > 0) throw new Error(`follower ${f.key} reads history and has a live backlog`);
      backlog += f.backlogBytes;
    }
    if (backlog !== this.backlogTotal) throw new Error(`backlogTotal ${this.backlogTotal}, followers hold ${backlog}`);
    if (this.followers.size > MAX_FOLLOWERS) throw new Error(`${this.followers.size} followers (limit ${MAX_FOLLOWERS})`);
  }
}

function compactedMessage(f: Follower): string {
  return `the WAL was compacted past LSN ${f.nextLsn} while following; follow again from ${f.nextLsn} to get the snapshot`;
}

/** Approximate encoded size of a record: what batches and lag are measured in. */
function recordBytes(r: WalRecord): number {
  let n = 16;
  for (const op of r.ops) n += opKey(op).length + 40;
  return n;
}

function clamp(v: number, lo: number, hi: number): number {
  if (!Number.isFinite(v)) return hi;
  return Math.min(hi, Math.max(lo, Math.floor(v)));
}
