// The ports over actor channels: what the engine of a front end (the embedded API in the main
// thread, the TCP and HTTP front ends in theirs) uses to reach the volume writers, the WAL
// committer, the index and the broker. Values cross as transferred ArrayBuffers of their exact
// size, never inside the CBOR.
import type { SharedIndexReader } from '../storage/shared_heads.js';
import type { Peer } from '../runtime/peer.js';
import { Channel } from '../runtime/channel.js';
import { streamChunks } from '../runtime/buffer_pool.js';
import { needleAddress, type IndexEntry, type NeedleAddress, type Op, type RedoNeedle, type SyncPolicy } from '../storage/types.js';
import { UNKNOWN_SIZE, VolumeMsg, type StrandedNeedle, type VolumeReplies, type VolumeRequest } from '../protocol/volume_protocol.js';
import { WalMsg, type WalReplies, type WalRequest } from '../protocol/wal_protocol.js';
import { IndexMsg, type IndexReplies, type IndexRequest, type LookupReply, type VolumeEntry, type VolumeUsage } from '../protocol/index_protocol.js';
import { BrokerMsg, type BrokerDeliver, type BrokerReplies, type BrokerRequest, type PubSubQuery } from '../protocol/broker_protocol.js';
import { BROKER_ACTOR, INDEX_ACTOR, WAL_ACTOR, volumeActorName } from '../protocol/store_actors.js';
import type { GroupInfo, VolumeInfo } from './api.js';
import { mapKey } from './bytes.js';
import { MovedReader } from './moved_reader.js';
import type {
  AppendRequest,
  BrokerPort,
  CommitPort,
  CommitResult,
  Delivery,
  IndexPort,
  IndexStats,
  Lookup,
  MetaSource,
  Ports,
  ReadPort,
  VolumePort,
  WalAdminPort,
} from './ports.js';
import { StoreError } from '../runtime/errors.js';
import { groupOfVolume } from '../storage/volume_format.js';

/** Chunks of one upload in flight to the writer at once: enough to keep the disk busy. */
const STREAM_WINDOW = 2;
/**
 * How long a write looks for a group that takes it (each refusing with DEGRADED or UNAVAILABLE:
 * a remote member down, a repair running) before it fails: long enough for a repair pass.
 */
const WRITE_RETRY_MS = 3_000;
/** An adopted needle is copied whole by its new group (up to 1 GB): bounded, but not by 30 s. */
const ADOPT_TIMEOUT_MS = 10 * 60_000;
/** A group that refused a write is tried last for this long. */
const REFUSED_FOR_MS = 1_000;

/** A refusal that leaves nothing written that matters: the write may go to another group. */
function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'DEGRADED' || code === 'UNAVAILABLE';
}

/** An exact-size copy: transferring detaches, and a caller's Buffer may sit in a shared slab. */
export function exactCopy(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

/** The volume groups, each reached through its writer (today: the writer of its one local drive). */
type VolumeChannel = Channel<VolumeRequest, VolumeReplies>;

export class ActorVolumes implements VolumePort {
  private readonly byGroup = new Map<number, { channel: VolumeChannel; dir: string; writable: boolean }>();
  /** When each group last refused a write (DEGRADED, UNAVAILABLE). */
  private readonly refusedAt = new Map<number, number>();
  /** When a write last found no group at all (an outage: the next ones do not wait). */
  private noGroupAt = -Infinity;
  readonly groups: readonly number[];
  readonly redoGroups: ReadonlySet<number>;

  /** `redo`: the store syncs (--sync always), so a record may carry its needles (VolumePort.redoGroups). */
  constructor(groups: ReadonlyArray<VolumeGroupSpec & { peer: Peer }>, redo: boolean) {
    for (const g of groups) this.byGroup.set(g.id, { channel: new Channel(g.peer), dir: g.dir, writable: g.writable !== false });
    // A group kept for reads (written before the store was replicated) takes no new needle.
    this.groups = groups.filter((g) => g.writable !== false).map((g) => g.id);
    this.redoGroups = new Set(redo ? groups.filter((g) => (g.servers ?? []).length === 0).map((g) => g.id) : []);
  }

  /** Appends to `group`, or to another when it refuses (its addresses say which took them). */
  append(group: number, needles: AppendRequest[], sync: boolean): Promise<NeedleAddress[]> {
    return this.withFallback(group, (g) => this.appendTo(g, needles, sync));
  }

  /**
   * Runs a write on `first`, or on the other groups in turn when it is refused before anything
   * that matters was written; groups that refused lately go last. Past WRITE_RETRY_MS of
   * refusals everywhere, the last refusal is the answer.
   */
  private async withFallback<T>(first: number, attempt: (group: number) => Promise<T>): Promise<T> {
    // In an outage already seen (the last write found no group), one pass and the answer: a
    // client is not made to wait 3 s for each write while every group is down.
    const outage = Date.now() - this.noGroupAt < WRITE_RETRY_MS;
    const deadline = Date.now() + (outage ? 0 : WRITE_RETRY_MS);
    const refusals = new Map<number, string>();
    for (;;) {
      const now = Date.now();
      const fresh = (g: number): boolean => now - (this.refusedAt.get(g) ?? -Infinity) > REFUSED_FOR_MS;
      const others = this.groups.filter((g) => g !== first);
      const order = [first, ...others].sort((a, b) => Number(fresh(b)) - Number(fresh(a)));
      for (const g of order) {
        try {
          const done = await attempt(g);
          this.noGroupAt = -Infinity;
          return done;
        } catch (err) {
          if (!isRetryable(err)) throw err;
          this.refusedAt.set(g, Date.now());
          refusals.set(g, (err as Error).message);
        }
      }
      if (Date.now() >= deadline) {
        this.noGroupAt = Date.now();
        const all = [...refusals.values()];
        const why = all.slice(0, 3).join('; ') + (all.length > 3 ? `; and ${all.length - 3} more` : '');
        throw new StoreError('UNAVAILABLE', `no volume group can take writes now (${refusals.size} of ${this.groups.length} refused: ${why})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private async appendTo(group: number, needles: AppendRequest[], sync: boolean): Promise<NeedleAddress[]> {
    const msg = {
      t: VolumeMsg.Append,
      sync,
      needles: needles.map((n) => ({ key: n.key, expiresAt: n.expiresAt, flags: n.flags ?? 0 })),
    };
    // The writer hands large value buffers back: they die here, in a thread that collects often.
    const reply = await this.channel(group).request(msg, { blobs: needles.map((n) => exactCopy(n.value)) });
    for (const b of reply.blobs) streamChunks.give(b);
    return reply.body;
  }

  async appendStream(group: number, key: Uint8Array, size: number | null, expiresAt: number, source: AsyncIterable<Uint8Array>, meta?: MetaSource): Promise<NeedleAddress> {
    const metaLength = meta?.length ?? 0;
    const begin = { t: VolumeMsg.StreamBegin, key, size: size ?? UNKNOWN_SIZE, expiresAt };
    // A group refuses a stream at its beginning, before any byte of the body is taken.
    const [peer, stream] = await this.withFallback(group, async (g) => {
      const p = this.channel(g);
      return [p, await p.call(metaLength === 0 ? begin : { ...begin, meta: metaLength })] as const;
    });
    const inFlight = new Set<Promise<unknown>>();
    try {
      for await (const chunk of gather(source)) {
        // The writer sends the chunk's buffer back with its answer: it goes back to the pool.
        const sent = peer.request({ t: VolumeMsg.StreamChunk, stream }, { blobs: [chunk] }).then(
          (reply) => {
            for (const b of reply.blobs) streamChunks.give(b);
          },
        );
        inFlight.add(sent);
        void sent.then(
          () => inFlight.delete(sent),
          () => inFlight.delete(sent),
        );
        // Back-pressure: never more than STREAM_WINDOW chunks between us and the disk.
        if (inFlight.size >= STREAM_WINDOW) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      // The source has ended: the metadata's digests are complete (and checked, or this throws).
      const end = meta === undefined ? { t: VolumeMsg.StreamEnd, stream } : { t: VolumeMsg.StreamEnd, stream, meta: meta.bytes() };
      const ended = await peer.call(end);
      if ('stranded' in ended) return await this.adopt(groupOfVolume(ended.stranded.volume), ended);
      return ended;
    } catch (err) {
      await Promise.allSettled(inFlight);
      await peer.call({ t: VolumeMsg.StreamAbort, stream }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * An upload written whole on its group's drive but refused by a member at its end: another
   * group copies it from that drive and has its members take it (its own group, now degraded,
   * refuses, so the fallback moves on). Fails, clearly, only when no group can take it.
   */
  private async adopt(from: number, s: StrandedNeedle): Promise<NeedleAddress> {
    const others = this.groups.filter((g) => g !== from);
    const first = others[0] ?? from;
    try {
      return await this.withFallback(first, (g) => this.channel(g).call({ t: VolumeMsg.Adopt, path: s.path, address: s.stranded }, { timeoutMs: ADOPT_TIMEOUT_MS }));
    } catch (err) {
      throw new StoreError('UNAVAILABLE', `the upload reached the master but a member of its volume group did not take it (${s.error}), and no other group could (${(err as Error).message}); retry`);
    }
  }

  seal(volume: number): Promise<{ uploads: number }> {
    return this.channel(groupOfVolume(volume)).call({ t: VolumeMsg.Seal, volume });
  }

  remove(group: number, volumes: number[]): Promise<{ removed: number[]; errors: string[] }> {
    return this.channel(group).call({ t: VolumeMsg.Remove, volumes }, { timeoutMs: 120_000 });
  }

  async syncGroup(group: number): Promise<void> {
    await this.channel(group).call({ t: VolumeMsg.Sync });
  }

  async list(): Promise<VolumeInfo[]> {
    const entries = [...this.byGroup];
    const lists = await Promise.all(entries.map(([, g]) => g.channel.call({ t: VolumeMsg.List })));
    return lists.flatMap((list, i) => list.map((v) => ({ id: v.id, group: entries[i]![0], drive: entries[i]![1].dir, sizeBytes: v.sizeBytes, sealed: v.sealed })));
  }

  async groupInfo(): Promise<GroupInfo[]> {
    const entries = [...this.byGroup];
    const members = await Promise.all(entries.map(([, g]) => g.channel.call({ t: VolumeMsg.Members })));
    return entries.map(([id, g], i) => ({ id, drive: g.dir, writable: g.writable, members: members[i]! }));
  }

  private channel(group: number): VolumeChannel {
    const g = this.byGroup.get(group);
    if (g === undefined) throw new StoreError('BAD_ARGUMENT', `no volume group ${group}`);
    return g.channel;
  }
}

/** The index's Lookup answer as the engine takes it (by message or through the sync slot). */
export function lookupOf(key: Uint8Array, r: LookupReply): Lookup {
  if (r === null) return {};
  if (r[0] === -1) return { expired: { volume: r[1], offset: r[2] } };
  const [volume, offset, length, expiresAt, modifiedAt, meta] = r as [number, number, number, number, number, number | undefined];
  return { entry: { key, address: needleAddress(volume, offset, length, meta), expiresAt, modifiedAt } };
}

/**
 * Re-chunks a byte stream into ArrayBuffers of the pool's chunk size (the last one exact):
 * a source chunk that is already a whole pool buffer passes through without a copy.
 */
async function* gather(source: AsyncIterable<Uint8Array>): AsyncGenerator<ArrayBuffer> {
  const size = streamChunks.size;
  let buf: Uint8Array | null = null;
  let used = 0;
  for await (const chunk of source) {
    if (used === 0 && chunk.byteLength === size && chunk.byteOffset === 0 && chunk.buffer.byteLength === size && chunk.buffer instanceof ArrayBuffer) {
      yield chunk.buffer;
      continue;
    }
    let at = 0;
    while (at < chunk.byteLength) {
      buf ??= new Uint8Array(streamChunks.take());
      const n = Math.min(size - used, chunk.byteLength - at);
      buf.set(chunk.subarray(at, at + n), used);
      used += n;
      at += n;
      if (used === size) {
        yield buf.buffer as ArrayBuffer;
        buf = null;
        used = 0;
      }
    }
  }
  if (buf !== null && used > 0) {
    const last = buf.slice(0, used).buffer;
    streamChunks.give(buf.buffer as ArrayBuffer);
    yield last;
  }
}

export class ActorCommit implements CommitPort {
  private readonly wal: Channel<WalRequest, WalReplies>;

  constructor(peer: Peer) {
    this.wal = new Channel(peer);
  }

  commit(ops: Op[], redo?: RedoNeedle[]): Promise<CommitResult> {
    return this.wal.call(redo === undefined || redo.length === 0 ? { t: WalMsg.Commit, ops } : { t: WalMsg.Commit, ops, redo });
  }
}

export class ActorIndex implements IndexPort {
  private readonly index: Channel<IndexRequest, IndexReplies>;

  /** `shared`: this thread's view of the index's heads, tried before a message (shared_heads.ts). */
  constructor(
    peer: Peer,
    private readonly shared?: SharedIndexReader,
  ) {
    this.index = new Channel(peer);
  }

  async lookup(key: Uint8Array): Promise<Lookup> {
    const found = this.shared?.lookup(key);
    if (found) return found;
    return lookupOf(key, await this.index.call({ t: IndexMsg.Lookup, key }));
  }

  async lookupMany(keys: Uint8Array[]): Promise<Lookup[]> {
    const found = this.shared?.lookupMany(keys);
    if (found) return found;
    const replies = await this.index.call({ t: IndexMsg.LookupMany, keys });
    return keys.map((key, i) => lookupOf(key, replies[i] ?? null));
  }

  scan(cursor: number, count: number, match?: Uint8Array): Promise<{ cursor: number; entries: IndexEntry[] }> {
    return this.index.call({ t: IndexMsg.Scan, cursor, count, ...(match ? { match } : {}) });
  }

  dbsize(): Promise<number> {
    return this.index.call({ t: IndexMsg.DbSize });
  }

  expiredSlice(maxBuckets: number): Promise<{ key: Uint8Array; volume: number; offset: number }[]> {
    return this.index.call({ t: IndexMsg.ExpiredSlice, maxBuckets });
  }

  checkpoint(): Promise<number> {
    return this.index.call({ t: IndexMsg.Checkpoint });
  }

  rebuild(): Promise<number> {
    return this.index.call({ t: IndexMsg.Rebuild }, { timeoutMs: 24 * 3600_000 });
  }

  stats(): Promise<IndexStats> {
    return this.index.call({ t: IndexMsg.Stats });
  }

  volumeUsage(): Promise<VolumeUsage> {
    return this.index.call({ t: IndexMsg.VolumeUsage });
  }

  volumeEntries(volumes: number[], cursor: number, maxBuckets: number): Promise<{ cursor: number; entries: VolumeEntry[] }> {
    return this.index.call({ t: IndexMsg.VolumeEntries, volumes, cursor, maxBuckets });
  }
}

export class ActorWalAdmin implements WalAdminPort {
  private readonly wal: Channel<WalRequest, WalReplies>;

  constructor(peer: Peer) {
    this.wal = new Channel(peer);
  }

  async compactBegin(snapshotLsn: number, retired: number[] = []): Promise<void> {
    await this.wal.call({ t: WalMsg.CompactBegin, snapshotLsn, ...(retired.length > 0 ? { retired } : {}) });
  }

  async compactChunk(entries: IndexEntry[]): Promise<void> {
    await this.wal.call({ t: WalMsg.CompactChunk, entries });
  }

  async compactFinish(): Promise<void> {
    await this.wal.call({ t: WalMsg.CompactFinish }, { timeoutMs: 3600_000 });
  }

  async compactAbort(): Promise<void> {
    await this.wal.call({ t: WalMsg.CompactAbort });
  }

  lastLsn(): Promise<number> {
    return this.wal.call({ t: WalMsg.LastLsn });
  }
}

/**
 * Subscriber ids are this front end's; the broker pushes deliveries back one-way. The broker
 * keeps its registry in memory, so this side keeps what it subscribed to and sends it again
 * when the broker restarts (resubscribe): subscribers see a gap, not a silent end.
 */
export class ActorBroker implements BrokerPort {
  private readonly sinks = new Map<number, (d: Delivery) => void>();
  private readonly subscribed = new Map<number, { channels: Map<string, Uint8Array>; patterns: Map<string, Uint8Array>; shard: Map<string, Uint8Array> }>();

  private readonly broker: Channel<BrokerRequest, BrokerReplies>;

  constructor(peer: Peer) {
    this.broker = new Channel(peer);
    peer.onRequest((body) => {
      const msg = body as BrokerDeliver;
      if (msg.t !== BrokerMsg.Deliver) return null;
      const sink = this.sinks.get(msg.subscriber);
      if (sink !== undefined) {
        sink({ subscriber: msg.subscriber, channel: msg.channel, payload: msg.payload, ...(msg.pattern ? { pattern: msg.pattern } : {}), ...(msg.shard ? { shard: true as const } : {}) });
      }
      return null;
    });
  }

  publish(channel: Uint8Array, payload: Uint8Array, shard = false): Promise<number> {
    return this.broker.call({ t: BrokerMsg.Publish, channel, payload, ...(shard ? { shard: true as const } : {}) });
  }

  introspect(query: PubSubQuery): Promise<Uint8Array[] | number[] | number> {
    return this.broker.call({ t: BrokerMsg.Introspect, query });
  }

  async subscribe(subscriber: number, channels: Uint8Array[], patterns: Uint8Array[], deliver: (d: Delivery) => void, shardChannels: Uint8Array[] = []): Promise<void> {
    this.sinks.set(subscriber, deliver);
    let own = this.subscribed.get(subscriber);
    if (own === undefined) this.subscribed.set(subscriber, (own = { channels: new Map(), patterns: new Map(), shard: new Map() }));
    for (const c of channels) own.channels.set(mapKey(c), c);
    for (const p of patterns) own.patterns.set(mapKey(p), p);
    for (const c of shardChannels) own.shard.set(mapKey(c), c);
    await this.broker.call({ t: BrokerMsg.Subscribe, subscriber, channels, patterns, ...(shardChannels.length > 0 ? { shardChannels } : {}) });
  }

  async unsubscribe(subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[], shardChannels?: Uint8Array[]): Promise<void> {
    const own = this.subscribed.get(subscriber);
    if (channels === undefined && patterns === undefined && shardChannels === undefined) this.subscribed.delete(subscriber);
    for (const c of channels ?? []) own?.channels.delete(mapKey(c));
    for (const p of patterns ?? []) own?.patterns.delete(mapKey(p));
    for (const c of shardChannels ?? []) own?.shard.delete(mapKey(c));
    const msg: BrokerRequest = {
      t: BrokerMsg.Unsubscribe,
      subscriber,
      ...(channels ? { channels } : {}),
      ...(patterns ? { patterns } : {}),
      ...(shardChannels ? { shardChannels } : {}),
    };
    const left = await this.broker.call(msg);
    if (left === 0) {
      this.sinks.delete(subscriber);
      this.subscribed.delete(subscriber);
    }
  }

  /** After a broker restart: registers every live subscription again. */
  async resubscribe(): Promise<void> {
    await Promise.all(
      [...this.subscribed].map(([subscriber, own]) =>
        this.broker.call({ t: BrokerMsg.Subscribe, subscriber, channels: [...own.channels.values()], patterns: [...own.patterns.values()], shardChannels: [...own.shard.values()] }),
      ),
    );
  }
}

/** The store's actors as the engine needs them: a Peer by actor name (main's or a neighbour's). */
export type PeerOf = (name: string) => Peer;

/**
 * The ports over the channels to the store's actors, with committed needles read through
 * `reader`. The broker's channel gets an ActorBroker that re-registers this thread's
 * subscriptions when the broker restarts (told by the peer's rewire, or by `onBrokerRestart`).
 */
/** A volume group as the ports see it (a LocalGroup of registry.ts). */
export interface VolumeGroupSpec {
  id: number;
  dir: string;
  writable?: boolean;
  /** Remote members: their needles are synced by them, never carried as redo. */
  servers?: string[];
}

export function actorPorts(peer: PeerOf, groups: ReadonlyArray<VolumeGroupSpec>, reader: ReadPort, sync: SyncPolicy, sharedIndex?: SharedIndexReader): Ports {
  const broker = new ActorBroker(peer(BROKER_ACTOR));
  peer(BROKER_ACTOR).onRewire(() => void broker.resubscribe().catch(() => undefined));
  const index = new ActorIndex(peer(INDEX_ACTOR), sharedIndex);
  return {
    volumes: new ActorVolumes(groups.map((g) => ({ ...g, peer: peer(volumeActorName(g.id)) })), sync === 'always'),
    commit: new ActorCommit(peer(WAL_ACTOR)),
    index,
    wal: new ActorWalAdmin(peer(WAL_ACTOR)),
    reader: new MovedReader(reader, index),
    broker,
  };
}
