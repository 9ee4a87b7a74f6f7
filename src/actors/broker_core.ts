// The pub/sub registry of the broker actor: which subscriber listens to which channel and
// pattern. Pure data, tested without a thread. PUBLISH answers the number of
// deliveries, as Redis does (a subscriber matching by channel and by a pattern counts twice).
import { globMatch } from '../storage/glob.js';
import { fromMapKey, mapKey } from '../runtime/bytes.js';
import { StoreError } from '../runtime/errors.js';
import type { Delivery } from '../protocol/broker_protocol.js';

export class BrokerCore {
  private readonly channels = new Map<string, Set<number>>();
  private readonly patterns = new Map<string, { pattern: Uint8Array; subscribers: Set<number> }>();
  private readonly bySubscriber = new Map<number, { channels: Set<string>; patterns: Set<string> }>();

  constructor(private readonly maxSubscriptions = 1_000_000) {}

  subscribe(subscriber: number, channels: Uint8Array[], patterns: Uint8Array[]): void {
    const own = this.own(subscriber);
    if (this.size() + channels.length + patterns.length > this.maxSubscriptions) {
      throw new StoreError('BAD_ARGUMENT', `max number of subscriptions reached (${this.maxSubscriptions} on this server)`);
    }
    for (const channel of channels) {
      const key = mapKey(channel);
      own.channels.add(key);
      let set = this.channels.get(key);
      if (set === undefined) this.channels.set(key, (set = new Set()));
      set.add(subscriber);
    }
    for (const pattern of patterns) {
      const key = mapKey(pattern);
      own.patterns.add(key);
      let entry = this.patterns.get(key);
      if (entry === undefined) this.patterns.set(key, (entry = { pattern: Uint8Array.from(pattern), subscribers: new Set() }));
      entry.subscribers.add(subscriber);
    }
  }

  /** Without lists: everything of that subscriber. Answers how many subscriptions it still has. */
  unsubscribe(subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[]): number {
    const own = this.bySubscriber.get(subscriber);
    if (own === undefined) return 0;
    const all = channels === undefined && patterns === undefined;
    const chans = all ? [...own.channels] : (channels ?? []).map(mapKey);
    const pats = all ? [...own.patterns] : (patterns ?? []).map(mapKey);
    for (const key of chans) {
      own.channels.delete(key);
      const set = this.channels.get(key);
      set?.delete(subscriber);
      if (set?.size === 0) this.channels.delete(key);
    }
    for (const key of pats) {
      own.patterns.delete(key);
      const entry = this.patterns.get(key);
      entry?.subscribers.delete(subscriber);
      if (entry?.subscribers.size === 0) this.patterns.delete(key);
    }
    const left = own.channels.size + own.patterns.size;
    if (left === 0) this.bySubscriber.delete(subscriber);
    return left;
  }

  publish(channel: Uint8Array, payload: Uint8Array): Delivery[] {
    const out: Delivery[] = [];
    for (const subscriber of this.channels.get(mapKey(channel)) ?? []) out.push({ subscriber, channel, payload });
    for (const { pattern, subscribers } of this.patterns.values()) {
      if (!globMatch(pattern, channel)) continue;
      for (const subscriber of subscribers) out.push({ subscriber, channel, payload, pattern });
    }
    return out;
  }

  /** Channels with at least one subscriber, those matching `pattern` when given (bounded). */
  channelNames(pattern: Uint8Array | undefined, max: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const key of this.channels.keys()) {
      const name = fromMapKey(key);
      if (pattern !== undefined && !globMatch(pattern, name)) continue;
      if (out.length >= max) throw new StoreError('BAD_ARGUMENT', `more than ${max} channels match: use a narrower pattern`);
      out.push(name);
    }
    return out;
  }

  /** Subscribers of a channel by name (pattern subscriptions not counted, as in Redis). */
  numSub(channel: Uint8Array): number {
    return this.channels.get(mapKey(channel))?.size ?? 0;
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
    for (const own of this.bySubscriber.values()) n += own.channels.size + own.patterns.size;
    return n;
  }

  private own(subscriber: number): { channels: Set<string>; patterns: Set<string> } {
    let own = this.bySubscriber.get(subscriber);
    if (own === undefined) this.bySubscriber.set(subscriber, (own = { channels: new Set(), patterns: new Set() }));
    return own;
  }
}
