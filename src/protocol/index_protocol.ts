// Messages to the index actor: lookups and scans from front ends, committed records from the
// WAL committer (in LSN order), and the background jobs (checkpoint, rebuild, sweep slices).
import type { IndexEntry, WalRecord } from '../storage/types.js';

export const INDEX_PROTOCOL_VERSION = 1;
/** What this actor's start-up handshake checks (runtime/actor.ts). */
export const INDEX_PROTOCOL = { name: 'index', version: INDEX_PROTOCOL_VERSION } as const;

export const IndexMsg = {
  Lookup: 1,
  Scan: 2,
  DbSize: 3,
  ExpiredSlice: 4,
  Checkpoint: 5,
  Rebuild: 6,
  Stats: 7,
  Apply: 8,
  AppliedLsn: 9,
  LookupMany: 10,
  Maintain: 11,
  CatchUp: 12,
} as const;

export type IndexRequest =
  | { t: typeof IndexMsg.Lookup; key: Uint8Array }
  | { t: typeof IndexMsg.Scan; cursor: number; count: number; match?: Uint8Array }
  | { t: typeof IndexMsg.DbSize }
  | { t: typeof IndexMsg.ExpiredSlice; maxBuckets: number }
  | { t: typeof IndexMsg.Checkpoint }
  | { t: typeof IndexMsg.Rebuild }
  | { t: typeof IndexMsg.Stats }
  /** From the WAL committer: records in LSN order; answers one result list per record. */
  | { t: typeof IndexMsg.Apply; records: WalRecord[] }
  | { t: typeof IndexMsg.AppliedLsn }
  /** Many keys in one message (a pipeline's GETs, MGET): one answer per key, in order. */
  | { t: typeof IndexMsg.LookupMany; keys: Uint8Array[] }
  /** The background timer's work, now: checkpoint when due, growth when due, a rebuild slice. */
  | { t: typeof IndexMsg.Maintain }
  /** From the WAL committer after a restart or a failed apply: apply from wal.log every record up to `lsn`. */
  | { t: typeof IndexMsg.CatchUp; lsn: number };

export type LookupReply =
  | [volume: number, offset: number, length: number, expiresAt: number, modifiedAt: number]
  | [volume: number, offset: number, length: number, expiresAt: number, modifiedAt: number, meta: number]
  | [expired: -1, volume: number, offset: number]
  | null;

export interface IndexReplies {
  /**
   * Positional, the cheapest CBOR (lookups are the hottest message): a live entry as
   * [volume, offset, length, expiresAt, modifiedAt] (plus the metadata length when the needle has
   * metadata); an expired one as [-1, volume, offset]; none as null.
   * The key is not echoed: the asker has it.
   */
  [IndexMsg.Lookup]: LookupReply;
  [IndexMsg.Scan]: { cursor: number; entries: IndexEntry[] };
  [IndexMsg.DbSize]: number;
  [IndexMsg.ExpiredSlice]: { key: Uint8Array; volume: number; offset: number }[];
  [IndexMsg.Checkpoint]: number;
  [IndexMsg.Rebuild]: number;
  [IndexMsg.Stats]: {
    liveCount: number;
    bucketCount: number;
    entryCount: number;
    appliedLsn: number;
    durableLsn: number;
    rebuilding: boolean;
    /** Why the last rebuild (growth or COMPACT) failed, until one succeeds. */
    rebuildError: { code: string; message: string } | null;
  };
  [IndexMsg.Apply]: number[][];
  [IndexMsg.AppliedLsn]: number;
  [IndexMsg.LookupMany]: LookupReply[];
  [IndexMsg.Maintain]: { rebuilding: boolean; durableLsn: number };
  /** The applied LSN after catching up. */
  [IndexMsg.CatchUp]: number;
}
