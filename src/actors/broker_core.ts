// The pub/sub registry of the broker actor: which subscriber listens to which channel and
// pattern. Pure data, tested without a thread. PUBLISH answers the number of
// deliveries, as Redis does (a subscriber matching by channel and by a pattern counts twice).
// Shard channels (SSUBSCRIBE/SPUBLISH) are a namespace of their own, as in Redis: a shard
// channel and a plain channel of the same name never see each other's messages, and patterns
// never match shard channels.
import { globMatch } from '../storage/glob.js';
import { fromMapKey, mapKey } from '../runtime/bytes.js';
import { StoreError } from '../runtime/errors.js';
import type { Delivery } from '../protocol/broker_protocol.js';

export class BrokerCore {
  private readonly channels = new Map<string, Set<number>>();
  private readonly shardChannels = new Map<string, Set<number>>();
  private readonly patterns = new Map<string, { pattern: Uint8Array; subscribers: Set<number> }>();
  private readonly bySubscriber = new Map<number, Own>();

  constructor(private readonly maxSubscriptions = 1_000_000) {}

  subscribe(subscriber: number, channels: Uint8Array[], patterns: Uint8Array[], shardChannels: Uint8Array[] = []): void {
    const own = this.own(subscriber);
    if (this.size() + channels.length + patterns.length + shardChannels.length > this.maxSubscriptions) {
      throw new StoreError('BAD_ARGUMENT', `max number of subscriptions reached (${this.maxSubscriptions} on this server)`);
    }
    for (const channel of channels) add(this.channels, own.channels, channel, subscriber);
    for (const channel of shardChannels) add(this.shardChannels, own.shard, channel, subscriber);
    for (const pattern of patterns) {
      const key = mapKey(pattern);
      own.patterns.add(key);
      let entry = this.patterns.get(key);
      if (entry === undefined) this.patterns.set(key, (entry = { pattern: Uint8Array.from(pattern), subscribers: new Set() }));
      entry.subscribers.add(subscriber);
    }
  }

  /** Without lists: everything of that subscriber. Answers how many subscriptions it still has. */
  unsubscribe(subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[], shardChannels?: Uint8Array[]): number {
    const own = this.bySubscriber.get(subscriber);
    if (own === undefined) return 0;
    const all = channels === undefined && patterns === undefined && shardChannels === undefined;
    const chans = all ? [...own.channels] : (channels ?? []).map(mapKey);
    const pats = all ? [...own.patterns] : (patterns ?? []).map(mapKey);
    const shards = all ? [...own.shard] : (shardChannels ?? []).map(mapKey);
    for (const key of chans) remove(this.channels, own.channels, key, subscriber);
    for (const key of shards) remove(this.shardChannels, own.shard, key, subscriber);
    for (const key of pats) {
      own.patterns.delete(key);
      const entry = this.patterns.get(key);
      entry?.subscribers.delete(subscriber);
      if (entry?.subscribers.size === 0) this.patterns.delete(key);
    }
    const left = own.channels.size + own.patterns.size + own.shard.size;
    if (left === 0) this.bySubscriber.delete(subscriber);
    return left;
  }

  publish(channel: Uint8Array, payload: Uint8Array, shard = false): Delivery[] {
    const out: Delivery[] = [];
    if (shard) {
      for (const subscriber of this.shardChannels.get(mapKey(channel)) ?? []) out.push({ subscriber, channel, payload, shard: true });
      return out;
    }
    for (const subscriber of this.channels.get(mapKey(channel)) ?? []) out.push({ subscriber, channel, payload });
    for (const { pattern, subscribers } of this.patterns.values()) {
      if (!globMatch(pattern, channel)) continue;
      for (const subscriber of subscribers) out.push({ subscriber, channel, payload, pattern });
    }
    return out;
  }

  /** Channels with at least one subscriber, those matching `pattern` when given (bounded). */
  channelNames(pattern: Uint8Array | undefined, max: number, shard = false): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const key of (shard ? this.shardChannels : this.channels).keys()) {
      const name = fromMapKey(key);
      if (pattern !== undefined && !globMatch(pattern, name)) continue;
      if (out.length >= max) throw new StoreError('BAD_ARGUMENT', `more than ${max} channels match: use a narrower pattern`);
      out.push(name);
    }
    return out;
  }

  /** Subscribers of a channel by name (pattern subscriptions not counted, as in Redis). */
  numSub(channel: Uint8Array, shard = false): number {
    return (shard ? this.shardChannels : this.channels).get(mapKey(channel))?.size ?? 0;
  }

  /** Patterns with at least one subscriber. */
  numPat(): number {
    return this.patterns.size;
  }

  /** Subscribers that are gone (a front end restarted): forget them all. */
  dropWhere(test: (subscriber: number) => boolean): void {
    for (const id of [...this.bySubscriber.keys()]) if (test(id)) this.unsubscribe(id);
  }

  /** Every subscriber with at least one subscription. */
  subscribers(): IterableIterator<number> {
    return this.bySubscriber.keys();
  }

  size(): number {
    let n = 0;
    for (const own of this.bySubscriber.values()) n += own.channels.size + own.patterns.size + own.shard.size;
    return n;
  }

  private own(subscriber: number): Own {
    let own = this.bySubscriber.get(subscriber);
    if (own === undefined) this.bySubscriber.set(subscriber, (own = { channels: new Set(), patterns: new Set(), shard: new Set() }));
    return own;
  }
}

/** One subscriber's subscriptions, by map key. */
interface Own {
  channels: Set<string>;
  patterns: Set<string>;
  shard: Set<string>;
}

function add(registry: Map<string, Set<number>>, own: Set<string>, channel: Uint8Array, subscriber: number): void {
  const key = mapKey(channel);
  own.add(key);
  let set = registry.get(key);
  if (set === undefined) registry.set(key, (set = new Set()));
  set.add(subscriber);
}

function remove(registry: Map<string, Set<number>>, own: Set<string>, key: string, subscriber: number): void {
  own.delete(key);
  const set = registry.get(key);
  set?.delete(subscriber);
  if (set?.size === 0) registry.delete(key);
}
