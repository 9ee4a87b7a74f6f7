// The ports through which the database logic (src/db/engine.ts) reaches the state owners.
// Production implements them over actor channels (src/db/actor_ports.ts); the in-process
// engine used by the crash property tests implements them over the storage objects directly
// (src/db/local_ports.ts). Same logic above both, so the tests test the product.
import type { IndexEntry, NeedleAddress, Op } from '../storage/types.js';
import type { VolumeInfo } from './api.js';
import type { IndexMsg, IndexReplies } from '../protocol/index_protocol.js';
import type { Delivery } from '../protocol/broker_protocol.js';

export type { Delivery };

export interface AppendRequest {
  key: Uint8Array;
  value: Uint8Array;
  expiresAt: number;
  flags?: number;
}

export interface VolumePort {
  /** How many drives there are (the data dir is drive 0). */
  readonly driveCount: number;
  /**
   * Appends needles to one drive. With `sync`, the needles are durable (under the sync
   * policy) when this resolves; without it, `syncDrive` must be called before a WAL record
   * names them.
   */
  append(drive: number, needles: AppendRequest[], sync: boolean): Promise<NeedleAddress[]>;
  /** Streams one value of exactly `size` bytes into a reserved region; durable when resolved. */
  appendStream(
    drive: number,
    key: Uint8Array,
    size: number,
    expiresAt: number,
    source: AsyncIterable<Uint8Array>,
  ): Promise<NeedleAddress>;
  syncDrive(drive: number): Promise<void>;
  list(): Promise<VolumeInfo[]>;
}

export interface CommitResult {
  lsn: number;
  results: number[];
}

export interface CommitPort {
  /**
   * Commits ops as ONE WAL record (atomic), group-committed with others; resolves when the
   * record is durable and applied to the index, with one result per op.
   */
  commit(ops: Op[]): Promise<CommitResult>;
}

/** What a lookup found: the live entry, or the address of an expired one to clean up. */
export interface Lookup {
  entry?: IndexEntry;
  expired?: { volume: number; offset: number };
}

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
}

/** WAL compaction, driven by the engine: the snapshot comes from the index in chunks. */
export interface WalAdminPort {
  compactBegin(snapshotLsn: number): Promise<void>;
  compactChunk(entries: IndexEntry[]): Promise<void>;
  compactFinish(): Promise<void>;
  compactAbort(): Promise<void>;
  lastLsn(): Promise<number>;
}

/** Reading committed needle bytes: any thread may do it (a committed needle never changes). */
export interface ReadPort {
  readValue(address: NeedleAddress, keyLength: number, start: number, length: number): Promise<Uint8Array>;
  /** The whole value, with both needle checksums verified. */
  readVerified(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array>;
  readChunks(address: NeedleAddress, keyLength: number, start: number, length: number): AsyncIterable<Uint8Array>;
}


export interface BrokerPort {
  publish(channel: Uint8Array, payload: Uint8Array): Promise<number>;
  /** Registers a subscriber; `deliver` is called for each message until it is removed. */
  subscribe(
    subscriber: number,
    channels: Uint8Array[],
    patterns: Uint8Array[],
    deliver: (d: Delivery) => void,
  ): Promise<void>;
  unsubscribe(subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[]): Promise<void>;
}

export interface Ports {
  volumes: VolumePort;
  commit: CommitPort;
  index: IndexPort;
  wal: WalAdminPort;
  reader: ReadPort;
  broker: BrokerPort;
}
