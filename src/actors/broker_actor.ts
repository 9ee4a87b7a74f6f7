// The pub/sub broker: the one registry of channel and pattern subscriptions for every front
// end (TCP, HTTP threads, the embedded API), so a message published anywhere reaches every
// subscriber everywhere.
// Owns: BrokerCore, and the map from (front end, its subscriber id) to a broker-wide id.
// Invariants: a delivery goes one-way to the front end that owns the subscriber; PUBLISH
// answers the number of deliveries made (as Redis counts receivers).
import { runActor, type ActorContext } from '../runtime/actor.js';
import { MAIN } from '../runtime/topology.js';
import { BrokerMsg, type BrokerDeliver, type BrokerRequest } from '../protocol/broker_protocol.js';
import { BrokerCore } from '../db/broker_core.js';
import { assertNever } from './assert.js';
import { StoreError } from '../runtime/errors.js';

interface Owner {
  frontEnd: string;
  subscriber: number;
}

interface State {
  ctx: ActorContext;
  core: BrokerCore;
  /** broker-wide id → who owns it */
  owners: Map<number, Owner>;
  /** `${frontEnd}:${subscriber}` → broker-wide id */
  ids: Map<string, number>;
  nextId: number;
  published: number;
}

let state: State | null = null;

function init(ctx: ActorContext): void {
  state = { ctx, core: new BrokerCore(), owners: new Map(), ids: new Map(), nextId: 1, published: 0 };
  ctx.onControl({
    stats: () => ({ subscriptions: live().core.size(), subscribers: live().owners.size, published: live().published }),
  });
}

function onRequest(from: string, body: unknown): unknown {
  const msg = body as BrokerRequest;
  switch (msg.t) {
    case BrokerMsg.Publish:
      return onPublish(msg.channel, msg.payload);
    case BrokerMsg.Subscribe:
      return onSubscribe(from, msg.subscriber, msg.channels, msg.patterns);
    case BrokerMsg.Unsubscribe:
      return onUnsubscribe(from, msg.subscriber, msg.channels, msg.patterns);
    default:
      return assertNever(msg);
  }
}

function onPublish(channel: Uint8Array, payload: Uint8Array): number {
  const s = live();
  s.published += 1;
  const deliveries = s.core.publish(channel, payload);
  for (const d of deliveries) {
    const owner = s.owners.get(d.subscriber);
    if (owner === undefined) continue;
    const out: BrokerDeliver = { t: BrokerMsg.Deliver, subscriber: owner.subscriber, channel: d.channel, payload: d.payload };
    if (d.pattern !== undefined) out.pattern = d.pattern;
    const peer = owner.frontEnd === MAIN ? s.ctx.main : s.ctx.peer(owner.frontEnd);
    peer.send(out);
  }
  return deliveries.length;
}

function onSubscribe(from: string, subscriber: number, channels: Uint8Array[], patterns: Uint8Array[]): null {
  const s = live();
  const key = `${from}:${subscriber}`;
  let id = s.ids.get(key);
  if (id === undefined) {
    id = s.nextId++;
    s.ids.set(key, id);
    s.owners.set(id, { frontEnd: from, subscriber });
  }
  s.core.subscribe(id, channels, patterns);
  return null;
}

function onUnsubscribe(from: string, subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[]): number {
  const s = live();
  const key = `${from}:${subscriber}`;
  const id = s.ids.get(key);
  if (id === undefined) return 0;
  const left = s.core.unsubscribe(id, channels, patterns);
  if (left === 0) {
    s.ids.delete(key);
    s.owners.delete(id);
  }
  return left;
}

function live(): State {
  if (state === null) throw new StoreError('CLOSED', 'broker is not running');
  return state;
}

runActor({ init, onRequest });
