// The pub/sub broker: the one registry of channel and pattern subscriptions for every front
// end (TCP, HTTP threads, the embedded API), so a message published anywhere reaches every
// subscriber everywhere.
// Owns: BrokerCore, and the map from (front end, its subscriber id) to a broker-wide id.
// Invariants: a delivery goes one-way to the front end that owns the subscriber; PUBLISH
// answers the number of deliveries made (as Redis counts receivers); owners and ids are the
// two directions of one map, and every subscriber the core knows has an owner.
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { MAIN } from '../runtime/topology.js';
import { BROKER_PROTOCOL, BrokerMsg, MAX_CHANNELS_REPLY, type BrokerDeliver, type BrokerRequest, type PubSubQuery } from '../protocol/broker_protocol.js';
import { BrokerCore } from './broker_core.js';
import { assertNever } from './assert.js';

interface Owner {
  frontEnd: string;
  subscriber: number;
}

interface State {
  env: ActorEnv;
  core: BrokerCore;
  /** broker-wide id → who owns it */
  owners: Map<number, Owner>;
  /** `${frontEnd}:${subscriber}` → broker-wide id */
  ids: Map<string, number>;
  nextId: number;
  published: number;
}

const createBroker: ActorFactory = (env) => {
  const s: State = { env, core: new BrokerCore(), owners: new Map(), ids: new Map(), nextId: 1, published: 0 };
  return {
    protocol: BROKER_PROTOCOL,
    handle: (from, body) => handle(s, from, body as BrokerRequest),
    invariants: () => invariants(s),
    control: { stats: () => ({ subscriptions: s.core.size(), subscribers: s.owners.size, published: s.published }) },
  };
};
export default createBroker;

function handle(s: State, from: string, msg: BrokerRequest): unknown {
  switch (msg.t) {
    case BrokerMsg.Publish:
      return onPublish(s, msg.channel, msg.payload, msg.shard === true);
    case BrokerMsg.Subscribe:
      return onSubscribe(s, from, msg.subscriber, msg.channels, msg.patterns, msg.shardChannels ?? []);
    case BrokerMsg.Unsubscribe:
      return onUnsubscribe(s, from, msg.subscriber, msg.channels, msg.patterns, msg.shardChannels);
    case BrokerMsg.Introspect:
      return onIntrospect(s, msg.query);
    default:
      return assertNever(msg);
  }
}

function onPublish(s: State, channel: Uint8Array, payload: Uint8Array, shard: boolean): number {
  s.published += 1;
  const deliveries = s.core.publish(channel, payload, shard);
  for (const d of deliveries) {
    const owner = s.owners.get(d.subscriber);
    if (owner === undefined) continue;
    const out: BrokerDeliver = { t: BrokerMsg.Deliver, subscriber: owner.subscriber, channel: d.channel, payload: d.payload };
    if (d.pattern !== undefined) out.pattern = d.pattern;
    if (d.shard === true) out.shard = true;
    const peer = owner.frontEnd === MAIN ? s.env.main : s.env.peer(owner.frontEnd);
    peer.send(out);
  }
  return deliveries.length;
}

function onSubscribe(s: State, from: string, subscriber: number, channels: Uint8Array[], patterns: Uint8Array[], shardChannels: Uint8Array[]): null {
  const key = `${from}:${subscriber}`;
  let id = s.ids.get(key);
  if (id === undefined) {
    id = s.nextId++;
    s.ids.set(key, id);
    s.owners.set(id, { frontEnd: from, subscriber });
  }
  s.core.subscribe(id, channels, patterns, shardChannels);
  return null;
}

function onUnsubscribe(s: State, from: string, subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[], shardChannels?: Uint8Array[]): number {
  const key = `${from}:${subscriber}`;
  const id = s.ids.get(key);
  if (id === undefined) return 0;
  const left = s.core.unsubscribe(id, channels, patterns, shardChannels);
  if (left === 0) {
    s.ids.delete(key);
    s.owners.delete(id);
  }
  return left;
}

function onIntrospect(s: State, q: PubSubQuery): Uint8Array[] | number[] | number {
  if (q.what === 'channels') return s.core.channelNames(q.pattern, MAX_CHANNELS_REPLY);
  if (q.what === 'numsub') return q.channels.map((c) => s.core.numSub(c));
  if (q.what === 'shardchannels') return s.core.channelNames(q.pattern, MAX_CHANNELS_REPLY, true);
  if (q.what === 'shardnumsub') return q.channels.map((c) => s.core.numSub(c, true));
  return s.core.numPat();
}

function invariants(s: State): void {
  if (s.ids.size !== s.owners.size) throw new Error(`${s.ids.size} ids but ${s.owners.size} owners`);
  for (const [key, id] of s.ids) {
    const o = s.owners.get(id);
    if (o === undefined || `${o.frontEnd}:${o.subscriber}` !== key) throw new Error(`id ${id} of ${key} has no matching owner`);
  }
  for (const id of s.core.subscribers()) if (!s.owners.has(id)) throw new Error(`subscriber ${id} has no owner`);
}
