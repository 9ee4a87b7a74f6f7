// The ports through which the engine (src/db/engine.ts) reaches the state owners. One set of
// implementations, over the actors' channels (src/db/actor_ports.ts), whatever thread the
// engine runs in and whichever host runs the actors (worker threads, or the calling thread in
// the simulation); reads of committed needles go through the ReadPort, behind which a local
// drive (src/db/drive_reader.ts) and, next, a remote member of a volume group both fit.
import type { IndexEntry, Lookup, NeedleAddress, Op, RedoNeedle } from '../storage/types.js';
import type { GroupInfo, VolumeInfo } from './api.js';
import type { IndexMsg, IndexReplies, VolumeEntry, VolumeUsage } from '../protocol/index_protocol.js';
import type { Delivery, PubSubQuery } from '../protocol/broker_protocol.js';

export type { Delivery };

/**
 * A needle's metadata section for a streamed value: its length is known when the stream begins,
 * its bytes only once the source has ended (they hold digests of the value). bytes() may throw
 * (a digest the client sent does not match): the needle is then abandoned, nothing committed.
 */
export interface MetaSource {
  length: number;
  bytes(): Uint8Array;
}

export interface AppendRequest {
  key: Uint8Array;
  value: Uint8Array;
  expiresAt: number;
  flags?: number;
}

/** Where needles go: volume groups, each with its own writer, named by id (vol-registry.json). */
export interface VolumePort {
  /** The groups that take writes now, by id. */
  readonly groups: readonly number[];
  /**
   * The groups whose needles appended without sync a WAL record may carry as redo needles
   * instead of a syncGroup: those of local drives only (a remote member must hold its copy
   * itself), and none under --sync none (nothing is synced).
   */
  readonly redoGroups: ReadonlySet<number>;
  /**
   * Appends needles to one group. With `sync`, the needles are durable (under the sync policy)
   * when this resolves; without it, syncGroup must be called before a WAL record names them.
   */
  append(group: number, needles: AppendRequest[], sync: boolean): Promise<NeedleAddress[]>;
  /**
   * Streams one value of exactly `size` bytes into a reserved region, or of any length when size
   * is null (the value's length is what the source gives); durable when resolved.
   */
  appendStream(group: number, key: Uint8Array, size: number | null, expiresAt: number, source: AsyncIterable<Uint8Array>, meta?: MetaSource): Promise<NeedleAddress>;
  syncGroup(group: number): Promise<void>;
  list(): Promise<VolumeInfo[]>;
  /** Each group with its members' states (remote members: healthy, stale, repairing). */
  groupInfo(): Promise<GroupInfo[]>;
  /** Vacuum: the volume takes no new needle; answers the uploads still writing into it. */
  seal(volume: number): Promise<{ uploads: number }>;
  /** Vacuum: removes retired volumes of one group, locally and on its remote members. */
  remove(group: number, volumes: number[]): Promise<{ removed: number[]; errors: string[] }>;
}

export interface CommitResult {
  lsn: number;
  results: number[];
}

export interface CommitPort {
  /**
   * Commits ops as ONE WAL record (atomic), group-committed with others; resolves when the
   * record is durable and applied to the index, with one result per op. `redo`: needles of
   * these ops not synced in their volumes, which the record carries (WalRecord.redo).
   */
  commit(ops: Op[], redo?: RedoNeedle[]): Promise<CommitResult>;
}

export type { Lookup } from '../storage/types.js';

/** What the index reports about itself (the index actor's Stats reply). */
export type IndexStats = IndexReplies[typeof IndexMsg.Stats];

export interface IndexPort {
  lookup(key: Uint8Array): Promise<Lookup>;
  /** Many lookups in one request; one answer per key, in order. */
  lookupMany(keys: Uint8Array[]): Promise<Lookup[]>;
  scan(cursor: number, count: number, match?: Uint8Array): Promise<{ cursor: number; entries: IndexEntry[] }>;
  dbsize(): Promise<number>;
  /** The next slice of the TTL sweep: expired keys with their addresses. */
  expiredSlice(maxBuckets: number): Promise<{ key: Uint8Array; volume: number; offset: number }[]>;
  checkpoint(): Promise<number>;
  /** Rebuilds the index with only live entries (background slices); resolves with the durable LSN after the swap. */
  rebuild(): Promise<number>;
  stats(): Promise<IndexStats>;
  /** Live bytes per volume and the retired volumes. */
  volumeUsage(): Promise<VolumeUsage>;
  /** Entries (live or expired) pointing into `volumes`, a slice of buckets at a time; cursor 0: done. */
  volumeEntries(volumes: number[], cursor: number, maxBuckets: number): Promise<{ cursor: number; entries: VolumeEntry[] }>;
}

/** WAL compaction, driven by the engine: the snapshot comes from the index in chunks. */
export interface WalAdminPort {
  compactBegin(snapshotLsn: number, retired?: number[]): Promise<void>;
  compactChunk(entries: IndexEntry[]): Promise<void>;
  compactFinish(): Promise<void>;
  compactAbort(): Promise<void>;
  lastLsn(): Promise<number>;
}

/**
 * Reading committed needles, checked: every read checks the needle's head (header CRC, lengths,
 * that it is the key's own needle) before handing out a byte; a read of the whole value checks
 * the needle CRC too, before the last byte leaves (CHECKSUM_MISMATCH instead). A range read
 * cannot check the value bytes it skips: the needle's one CRC covers them all.
 */
export interface ReadPort {
  /**
   * The whole value, in memory of its own (no other read or cache reuses it): the caller may
   * keep it, and a Buffer view of it needs no copy.
   */
  read(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array>;
  /**
   * Value bytes [start, start + length) in chunks. With `buf`, each chunk is a view of it, valid
   * until the next one is asked for (a GET streams a 1 GB value through one buffer); without,
   * each is a fresh buffer of at most 1 MiB.
   */
  stream(address: NeedleAddress, key: Uint8Array, start: number, length: number, buf?: Uint8Array): AsyncIterableIterator<Uint8Array>;
  /** The needle's metadata section (empty when it has none), its header checked. */
  meta(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array>;
  /**
   * The whole needle read now, on the calling thread, both CRCs checked (a reader of local files
   * can; one that cannot answers null). For small values answered before a handler returns.
   * With `scratch` (at least the needle's length) the answer may be views of it, valid until the
   * caller uses `scratch` again: a thread answering 1 MB GETs one after another reads them all
   * into one buffer instead of a fresh megabyte each.
   */
  readNow?(address: NeedleAddress, key: Uint8Array, scratch?: Uint8Array): { value: Uint8Array; meta: Uint8Array } | null;
}

export interface BrokerPort {
  /** `shard`: to the shard channel of that name (SPUBLISH), a namespace of its own. */
  publish(channel: Uint8Array, payload: Uint8Array, shard?: boolean): Promise<number>;
  /** Registers a subscriber; `deliver` is called for each message until it is removed. */
  subscribe(subscriber: number, channels: Uint8Array[], patterns: Uint8Array[], deliver: (d: Delivery) => void, shardChannels?: Uint8Array[]): Promise<void>;
  /** Without lists: every subscription of the subscriber. */
  unsubscribe(subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[], shardChannels?: Uint8Array[]): Promise<void>;
  /** PUBSUB CHANNELS / NUMSUB / NUMPAT, from the broker's registry. */
  introspect(query: PubSubQuery): Promise<Uint8Array[] | number[] | number>;
}

export interface Ports {
  volumes: VolumePort;
  commit: CommitPort;
  index: IndexPort;
  wal: WalAdminPort;
  reader: ReadPort;
  broker: BrokerPort;
}
