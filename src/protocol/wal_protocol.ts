// Messages to the WAL committer. A commit is answered only once its record is durable AND
// applied by the index (the committer forwards records to the index in LSN order and waits).
import type { IndexEntry, Op } from '../storage/types.js';

export const WAL_PROTOCOL_VERSION = 1;

export const WalMsg = {
  Commit: 1,
  CompactBegin: 2,
  CompactChunk: 3,
  CompactFinish: 4,
  CompactAbort: 5,
  LastLsn: 6,
} as const;

export type WalRequest =
  | { t: typeof WalMsg.Commit; ops: Op[] }
  | { t: typeof WalMsg.CompactBegin; snapshotLsn: number }
  | { t: typeof WalMsg.CompactChunk; entries: IndexEntry[] }
  | { t: typeof WalMsg.CompactFinish }
  | { t: typeof WalMsg.CompactAbort }
  | { t: typeof WalMsg.LastLsn };

export interface WalReplies {
  [WalMsg.Commit]: { lsn: number; results: number[] };
  [WalMsg.CompactBegin]: null;
  [WalMsg.CompactChunk]: null;
  [WalMsg.CompactFinish]: null;
  [WalMsg.CompactAbort]: null;
  [WalMsg.LastLsn]: number;
}
