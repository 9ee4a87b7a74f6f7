// Messages to the WAL committer. A commit is answered only once its record is durable AND
// applied by the index (the committer forwards records to the index in LSN order and waits).
//
// The replication feed (tags 7..10): a front end asks to follow the WAL from an LSN; the
// committer pushes Records one-way to the peer the Follow came from, history first (read from
// wal.log, snapshot chunks first when `from` <= the snapshot LSN), then live after each group
// commit. Each Records batch has a sequence number per follower; the front end acknowledges
// batches with Ack, and the committer keeps at most `window` batches unacknowledged. A Records
// message with `error` is the last one for that follower (dropped: too slow, WAL compacted
// under it, limits). Follower ids are the front end's own; the committer keys them by peer.
import type { IndexEntry, Op, RedoNeedle, WalRecord } from '../storage/types.js';

export const WAL_PROTOCOL_VERSION = 2;
/** What this actor's start-up handshake checks (runtime/actor.ts). */
export const WAL_PROTOCOL = { name: 'wal', version: WAL_PROTOCOL_VERSION } as const;

/** Wire tags: never renumbered; a retired number is never reused. */
export const WalMsg = {
  Commit: 1,
  CompactBegin: 2,
  CompactChunk: 3,
  CompactFinish: 4,
  CompactAbort: 5,
  LastLsn: 6,
  Follow: 7,
  Ack: 8,
  Unfollow: 9,
  Records: 10,
  /** A replica's records from its master, written as they are (WalWriter.appendVerbatim). */
  Replay: 11,
} as const;

/** `from` of a Follow that means "the current end": live records only. */
export const WAL_FOLLOW_END = -1;

/** What a follower may ask for; the committer clamps both to its own hard limits. */
export interface FollowLimits {
  /** Batches in flight unacknowledged (default 4). */
  window?: number;
  /** Bytes a live follower may lag (unacknowledged plus queued) before it is dropped (default 64 MiB). */
  maxLagBytes?: number;
}

export type WalRequest =
  | { t: typeof WalMsg.Commit; ops: Op[]; redo?: RedoNeedle[] }
  /** retired: the volumes retired at or before the snapshot (kept in the new WAL as RETIRE ops). */
  | { t: typeof WalMsg.CompactBegin; snapshotLsn: number; retired?: number[] }
  | { t: typeof WalMsg.CompactChunk; entries: IndexEntry[] }
  | { t: typeof WalMsg.CompactFinish }
  | { t: typeof WalMsg.CompactAbort }
  | { t: typeof WalMsg.LastLsn }
  /** Request. `from`: the first LSN wanted (0 or 1: all that is in the WAL), or WAL_FOLLOW_END. */
  | { t: typeof WalMsg.Follow; follower: number; from: number; limits?: FollowLimits }
  /** One-way: batches with seq <= upTo are consumed. */
  | { t: typeof WalMsg.Ack; follower: number; upTo: number }
  /** Request (answers whether it was following) or one-way. */
  | { t: typeof WalMsg.Unfollow; follower: number }
  /** Request: answers the last LSN once the records are durable and applied by the index. */
  | { t: typeof WalMsg.Replay; records: WalRecord[] };

/** Pushed one-way by the committer to the front end that follows. */
export interface WalRecordsPush {
  t: typeof WalMsg.Records;
  follower: number;
  /** 1, 2, 3 ... per follower; what Ack's upTo refers to. */
  seq: number;
  records: WalRecord[];
  /** Set on the last message of a follower that was dropped: why. */
  error?: { code: string; message: string };
}

export interface FollowReply {
  /** The last LSN in the WAL when the follow began. */
  lastLsn: number;
  snapshotLsn: number;
  /** The first LSN this follower will get (after the snapshot chunks, if any). */
  from: number;
}

export interface WalReplies {
  [WalMsg.Commit]: { lsn: number; results: number[] };
  [WalMsg.CompactBegin]: null;
  [WalMsg.CompactChunk]: null;
  [WalMsg.CompactFinish]: null;
  [WalMsg.CompactAbort]: null;
  [WalMsg.LastLsn]: number;
  [WalMsg.Follow]: FollowReply;
  [WalMsg.Ack]: null;
  [WalMsg.Unfollow]: boolean;
  [WalMsg.Replay]: number;
}
