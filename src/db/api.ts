// The embedded API: what `open(dir, options)` returns. The REPL, the TCP and HTTP front ends
// and the property tests all speak to the database through this one surface.
import type { MemberStatus } from '../protocol/volume_protocol.js';
import type { Readable } from 'node:stream';
import type { ScrubReport } from '../storage/volume_scrub.js';
import type { SyncPolicy } from '../storage/types.js';
import type { Change, Current, Decide, Decision, KeyState } from './key_updates.js';
import type { Progress, VacuumReport, VacuumSettings } from './vacuum.js';
import type { AutoCompact } from './auto_compact.js';
import type { ScrubSummary } from '../protocol/operations.js';

export type { AutoCompact, Change, Current, Decide, Decision, KeyState, Progress, ScrubReport, ScrubSummary, SyncPolicy, VacuumReport, VacuumSettings };

/** Keys and values are bytes; a string is taken as its UTF-8 bytes. */
export type Bytes = Uint8Array | string;

export interface SetOptions {
  /** Time to live in milliseconds (EX/PX); mutually exclusive with expiresAt. */
  ttlMs?: number;
  /** Absolute expiry in ms since the epoch. */
  expiresAt?: number;
}

/** SET's conditions, as Redis has them. */
export interface SetCondOptions extends SetOptions {
  /** Only if the key does not exist. */
  nx?: boolean;
  /** Only if the key exists. */
  xx?: boolean;
  /** Keep the existing key's expiry. */
  keepTtl?: boolean;
  /** Answer the value the key had before (atomically). */
  get?: boolean;
}

export interface SetCondResult {
  applied: boolean;
  /** The previous value, when `get` was asked (null: there was none). */
  previous: Buffer | null;
}

/** A key as it was when WATCHed. */
export interface Watched {
  key: Bytes;
  state: KeyState | null;
}

export interface ScanOptions {
  count?: number;
  match?: Bytes;
}

export interface ScanResult {
  /** "0" when the scan is complete. Opaque to callers; pass it back as given. */
  cursor: string;
  keys: Buffer[];
}

/** A volume group as VOLINFO GROUPS, /v1/status and /metrics show it. */
export interface GroupInfo {
  id: number;
  drive: string;
  /** False for a group kept for reads only. */
  writable: boolean;
  members: MemberStatus[];
}

export interface VolumeInfo {
  id: number;
  /** The volume group it belongs to (named by the id's high bits, see vol-registry.json). */
  group: number;
  /** The drive of the group's local member. */
  drive: string;
  sizeBytes: number;
  /** Takes no new needle (neither the current volume nor a stream volume). */
  sealed: boolean;
}

/** A volume with what the index says of it (VOLINFO, /v1/status, /metrics). */
export interface VolumeUsageInfo extends VolumeInfo {
  /** Bytes of the needles the index points at (each rounded up to the needle alignment). */
  liveBytes: number;
  /** Everything else past the superblock: overwritten, deleted, expired, refused, aborted. */
  garbageBytes: number;
  /** The index gave it up (a vacuum): its file goes as soon as no reader needs it. */
  retired: boolean;
}

export interface PubSubMessage {
  channel: Buffer;
  payload: Buffer;
  /** The pattern that matched, for pattern subscriptions. */
  pattern?: Buffer;
}

export interface Subscription {
  /** Messages as they arrive; ends when the subscription is closed. */
  [Symbol.asyncIterator](): AsyncIterator<PubSubMessage>;
  close(): Promise<void>;
}

export interface BlobStreamOptions extends SetOptions {
  /**
   * Exact size of the value in bytes; the stream must deliver exactly this many. Absent: the
   * value is whatever the stream delivers, up to the value size limit (as a chunked HTTP PUT).
   */
  size?: number;
  /**
   * Stored with the value in its needle's metadata section, as an HTTP PUT's Content-Type is
   * (with the value's SHA-256); GET over HTTP gives it back.
   */
  contentType?: string;
}

export interface ReadRange {
  offset?: number;
  length?: number;
}

export interface BlobInfo {
  size: number;
  expiresAt: number;
}

/** One client's view: its own transaction stack. `Database` is itself a session. */
export interface Session {
  set(key: Bytes, value: Bytes, options?: SetOptions): Promise<void>;
  /**
   * Many SETs at once (a pipeline's burst): outside a transaction one append per drive and ONE
   * WAL record for all (atomic together). One result per item: null, or the error of that item
   * (an invalid key or value is refused alone; the others are written).
   */
  setMany(items: { key: Bytes; value: Bytes; options?: SetOptions }[]): Promise<(Error | null)[]>;
  /** SET with NX / XX / KEEPTTL / GET: conditions judged atomically when the write applies. */
  setWith(key: Bytes, value: Bytes, options: SetCondOptions): Promise<SetCondResult>;
  get(key: Bytes): Promise<Buffer | null>;
  /**
   * Many GETs with one index request, the values read and handed to `each` one at a time, in
   * order (it may wait, e.g. for a socket to drain): a pipeline of large values never holds
   * them all at once.
   */
  getEach(keys: Bytes[], each: (value: Buffer | null) => Promise<void> | void): Promise<void>;
  /** Deletes keys; answers how many existed. */
  delete(...keys: Bytes[]): Promise<number>;
  exists(key: Bytes): Promise<boolean>;
  /** Remaining ms; -1 = no expiry; -2 = no such key (Redis PTTL semantics). */
  pttl(key: Bytes): Promise<number>;
  /** Remaining seconds, rounded up as Redis does; -1, -2 as pttl. */
  ttl(key: Bytes): Promise<number>;
  persist(key: Bytes): Promise<boolean>;
  expire(key: Bytes, ttlMs: number): Promise<boolean>;
  /**
   * Read-modify-write of `keys`, atomic against every other writer: `decide` gets each key as
   * it is now and answers the changes (to those keys only) and a result. Outside a transaction
   * the changes commit as one record guarded by what was read, and `decide` runs again when
   * another client changed a key first; inside one they are staged, and COMMIT guards the reads.
   */
  update<R>(keys: Bytes[], decide: Decide<R>): Promise<R>;
  /** Removes every key, as one durable op (inside a transaction, at its COMMIT). */
  flushAll(): Promise<void>;
  /** Number of live keys whose value equals `value`. */
  count(value: Bytes): Promise<number>;
  /** Keys matching a Redis glob; bounded by the `maxKeysReply` limit (an error past it). */
  keys(pattern: Bytes): Promise<Buffer[]>;
  scan(cursor: string, options?: ScanOptions): Promise<ScanResult>;
  dbsize(): Promise<number>;

  /** Pushes a savepoint. Writes after it are visible only to this session until the outermost commit. */
  begin(): void;
  /**
   * Merges the innermost level into its parent; the outermost commit is one atomic WAL record,
   * applied only if no key the transaction read was changed meanwhile by another client (else
   * CONFLICT, with nothing applied).
   */
  commit(): Promise<void>;
  /**
   * COMMIT guarded also by watched keys' states (WATCH, from watchState): 'watched' when one of
   * them changed, 'conflict' when a key read changed; nothing applied in either case.
   */
  commitWatching(watched: readonly Watched[]): Promise<'ok' | 'watched' | 'conflict'>;
  /** A key's state now, to WATCH it (compare with commitWatching). */
  watchState(key: Bytes): Promise<KeyState | null>;
  /** Discards the innermost level. */
  rollback(): void;
  /** How many levels are open. */
  readonly depth: number;

  setStream(key: Bytes, source: AsyncIterable<Uint8Array> | Readable, options: BlobStreamOptions): Promise<void>;
  getStream(key: Bytes, range?: ReadRange): Promise<{ info: BlobInfo; body: AsyncIterable<Buffer> } | null>;
  stat(key: Bytes): Promise<BlobInfo | null>;

  /** `shard`: to the shard channel of that name (SPUBLISH), a namespace of its own. */
  publish(channel: Bytes, payload: Bytes, shard?: boolean): Promise<number>;
  /** Channels with at least one subscriber, those matching a glob when given (PUBSUB CHANNELS, SHARDCHANNELS). */
  pubsubChannels(pattern?: Bytes, shard?: boolean): Promise<Buffer[]>;
  /** Subscribers of each channel, by name (PUBSUB NUMSUB, SHARDNUMSUB). */
  pubsubNumsub(channels: Bytes[], shard?: boolean): Promise<number[]>;
  /** Patterns with at least one subscriber (PUBSUB NUMPAT). */
  pubsubNumpat(): Promise<number>;
  subscribe(channels: Bytes[], patterns?: Bytes[]): Promise<Subscription>;
}

export interface Database extends Session {
  /** A new independent session (its own transaction stack), like a new connection. */
  session(): Session;
  compact(): Promise<void>;
  /** Every volume with its live and garbage bytes. */
  volinfo(): Promise<VolumeUsageInfo[]>;
  /** Each volume group: its local drive, whether it takes writes, its remote members' states. */
  groups(): Promise<GroupInfo[]>;
  /** Reads every volume and checks every needle's checksums (on the CPU pool); one report per volume. */
  verify(): Promise<ScrubReport[]>;
  /**
   * Gives back the space of garbage needles (docs/vacuum.md): `volume`, or every volume whose
   * garbage passes the vacuum threshold. Resolves when done (a call during a run joins it).
   */
  vacuum(volume?: number): Promise<VacuumReport[]>;
  /**
   * Reads every needle and checks it; a damaged one the index points at is rewritten from a good
   * copy (a member of its group) or reported (docs/vacuum.md, "Scrub"). `wait` (default): answers
   * the summary when done; else starts it (started: false when one was running) and answers at once.
   */
  scrub(wait?: boolean): Promise<{ started: boolean; summary: ScrubSummary | null }>;
  /** The last scrub's summary (null: none since start-up). */
  lastScrub(): Promise<ScrubSummary | null>;
  /** The long operations in progress (vacuum, scrub), with bytes done and an ETA. */
  operations(): Promise<Progress[]>;
  /** Checkpoints the index now (normally done in the background). */
  checkpoint(): Promise<void>;
  stats(): Promise<Record<string, unknown>>;
  /** Settings of the running store: keyspace notifications (flags of protocol/keyspace_events.ts). */
  configure(settings: { notifyKeyspaceEvents?: number }): void;
  close(): Promise<void>;
}

export interface Limits {
  maxKeyLength: number;
  maxValueSize: number;
  /** Bytes buffered in one transaction (all levels). */
  maxTransactionBytes: number;
  /** Ops in one transaction / one WAL record. */
  maxTransactionOps: number;
  /** Keys one KEYS call may answer. */
  maxKeysReply: number;
  /** Requests in flight to one actor. */
  maxInFlight: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxKeyLength: 4096,
  maxValueSize: 4 * 1024 * 1024 * 1024,
  maxTransactionBytes: 64 * 1024 * 1024,
  maxTransactionOps: 100_000,
  maxKeysReply: 1_000_000,
  maxInFlight: 100_000,
};


export interface OpenOptions {
  /** Extra drive directories; new volumes are spread over the data dir and these. */
  drives?: string[];
  maxVolumeSize?: number;
  /** 'always' (default): a reply means fsynced (group-committed). 'none': never fsync. */
  sync?: SyncPolicy;
  limits?: Partial<Limits>;
  /** Initial bucket count of a new index (a power of two). */
  indexBuckets?: number;
  /**
   * Wiring, not a setting: shared-memory slots through which front ends on other threads may
   * look keys up synchronously (runtime/sync_slot.ts; the master makes one per HTTP thread).
   */
  lookupSlots?: SharedArrayBuffer[];
  /**
   * Wiring, not a setting: the index's bucket heads in shared memory, which front ends on other
   * threads read to look keys up without a message (storage/shared_heads.ts).
   */
  sharedHeads?: SharedArrayBuffer;
  /** Remote volume servers (base URLs) for replicated volume groups (docs/volume-server.md). */
  volumeServers?: string[];
  /** Copies of each needle: the local drive's and factor - 1 servers' (default 1). */
  replicationFactor?: number;
  /** The secret shared with the volume servers (null: none, loopback only). */
  volumeSecret?: string | null;
  /**
   * Wiring, not a setting: a read-only replica's store (docs/replica.md). Its volume groups are
   * its master's, each on one of its drives (the registry written by the resync), and it runs
   * no TTL sweep: its master's deletes come through the stream; startBackground() starts it at
   * a promotion.
   */
  replicaGroups?: Array<{ id: number; dir: string }>;
  /** The vacuum's settings (docs/vacuum.md); defaults: DEFAULT_VACUUM. */
  vacuum?: Partial<VacuumSettings>;
  /** How often the automatic vacuum looks for volumes over the threshold (ms; 0: never). Default 60 s. */
  autoVacuumEveryMs?: number;
  /** The scrub's average read rate (bytes/s; 0: no limit). Default 32 MiB/s. */
  scrubRateBytesPerSec?: number;
  /** How often a background scrub runs (ms; 0: only when asked). Default 24 h. */
  autoScrubEveryMs?: number;
  /** When wal.log is compacted by itself; default DEFAULT_AUTO_COMPACT. */
  autoCompact?: Partial<AutoCompact>;
  /**
   * The drive whose `log/` holds the volume log, the copy of the WAL that cmd/rebuild.js
   * rebuilds from (docs/formats.md §Log volumes). Default: the drive of the highest volume
   * group when there are extra drives (not the data dir's disk), else the data dir.
   */
  logDrive?: string;
}
