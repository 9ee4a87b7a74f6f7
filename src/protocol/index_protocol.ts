// Messages to the index actor: lookups and scans from front ends, committed records from the
// WAL committer (in LSN order), and the background jobs (checkpoint, rebuild, sweep slices).
import type { IndexEntry, WalRecord } from '../storage/types.js';
import type { VolumeEntryFound } from '../storage/hash_index.js';
import type { VolumeUsageReport } from '../storage/volume_usage.js';

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
  /** Live bytes per volume, and the retired volumes (vacuum's accounting). */
  VolumeUsage: 13,
  /** The entries (live or expired) that point into some volumes, a slice of buckets at a time. */
  VolumeEntries: 14,
} as const;

/**
 * What the index knows of the volumes (docs/vacuum.md, "What is garbage"), and an entry that
 * points into a volume being vacuumed: the hash index's own shapes, as they cross the thread.
 */
export type VolumeUsage = VolumeUsageReport;
export type VolumeEntry = VolumeEntryFound;

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
  | { t: typeof IndexMsg.CatchUp; lsn: number }
  | { t: typeof IndexMsg.VolumeUsage }
  /**
   * cursor 0 starts; the answer's cursor 0 means done. Walks buckets in SCAN's order (so a growth
   * swap between slices skips no bucket), at most maxBuckets non-empty ones per call.
   */
  | { t: typeof IndexMsg.VolumeEntries; volumes: number[]; cursor: number; maxBuckets: number };

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
  [IndexMsg.VolumeUsage]: VolumeUsage;
  [IndexMsg.VolumeEntries]: { cursor: number; entries: VolumeEntry[] };
}

// ---- the synchronous lookup (runtime/sync_slot.ts) -----------------------------------------
// A front end may ask the index a Lookup through a shared-memory slot and block for its answer
// (so an HTTP GET can be answered before its handler returns). Request: the key's bytes.
// Answer: a LookupReply in a fixed binary form: kind (u8: 0 none, 1 live, 2 expired), then for
// live: volume u32, offset f64, length f64, expiresAt f64, modifiedAt f64, meta u32; for
// expired: volume u32, offset f64. Little-endian; every number an exact integer.

const LIVE_BYTES = 1 + 4 + 8 * 4 + 4;

export function encodeLookupReply(r: LookupReply): Uint8Array {
  if (r === null) return new Uint8Array([0]);
  const out = new Uint8Array(LIVE_BYTES);
  const dv = new DataView(out.buffer);
  if (r[0] === -1) {
    out[0] = 2;
    dv.setUint32(1, r[1], true);
    dv.setFloat64(5, r[2], true);
    return out.subarray(0, 13);
  }
  const [volume, offset, length, expiresAt, modifiedAt, meta] = r as [number, number, number, number, number, number?];
  out[0] = 1;
  dv.setUint32(1, volume, true);
  dv.setFloat64(5, offset, true);
  dv.setFloat64(13, length, true);
  dv.setFloat64(21, expiresAt, true);
  dv.setFloat64(29, modifiedAt, true);
  dv.setUint32(37, meta ?? 0, true);
  return out;
}

/** undefined: not a reply of encodeLookupReply (the caller asks by message instead). */
export function decodeLookupReply(b: Uint8Array): LookupReply | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length === 1 && b[0] === 0) return null;
  if (b.length === 13 && b[0] === 2) return [-1, dv.getUint32(1, true), dv.getFloat64(5, true)];
  if (b.length !== LIVE_BYTES || b[0] !== 1) return undefined;
  const meta = dv.getUint32(37, true);
  const fields = [dv.getUint32(1, true), dv.getFloat64(5, true), dv.getFloat64(13, true), dv.getFloat64(21, true), dv.getFloat64(29, true)] as const;
  return meta === 0 ? [...fields] : [...fields, meta];
}
