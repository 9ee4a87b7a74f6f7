// Messages to and from the pub/sub broker. Subscriber ids are chosen by each front end; the
// broker keys them by the front end they came from, and pushes deliveries back to it one-way.
export const BROKER_PROTOCOL_VERSION = 1;
/** What this actor's start-up handshake checks (runtime/actor.ts). */
export const BROKER_PROTOCOL = { name: 'broker', version: BROKER_PROTOCOL_VERSION } as const;

export const BrokerMsg = {
  Publish: 1,
  Subscribe: 2,
  Unsubscribe: 3,
  /** Broker → front end, one-way. */
  Deliver: 4,
  /** PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB. */
  Introspect: 5,
} as const;

/** What PUBSUB asks: channels with subscribers (matching a glob), subscribers per channel, patterns in use. */
export type PubSubQuery =
  | { what: 'channels'; pattern?: Uint8Array }
  | { what: 'numsub'; channels: Uint8Array[] }
  | { what: 'numpat' }
  /** The same, over shard channels (SSUBSCRIBE/SPUBLISH: a namespace of their own). */
  | { what: 'shardchannels'; pattern?: Uint8Array }
  | { what: 'shardnumsub'; channels: Uint8Array[] };

/** Channel names one PUBSUB CHANNELS may answer. */
export const MAX_CHANNELS_REPLY = 1_000_000;

export type BrokerRequest =
  | { t: typeof BrokerMsg.Publish; channel: Uint8Array; payload: Uint8Array; shard?: true }
  | { t: typeof BrokerMsg.Subscribe; subscriber: number; channels: Uint8Array[]; patterns: Uint8Array[]; shardChannels?: Uint8Array[] }
  | { t: typeof BrokerMsg.Unsubscribe; subscriber: number; channels?: Uint8Array[]; patterns?: Uint8Array[]; shardChannels?: Uint8Array[] }
  | { t: typeof BrokerMsg.Introspect; query: PubSubQuery };

export interface BrokerDeliver {
  t: typeof BrokerMsg.Deliver;
  subscriber: number;
  channel: Uint8Array;
  payload: Uint8Array;
  pattern?: Uint8Array;
  /** A message of a shard channel (SPUBLISH): the client sees `smessage`. */
  shard?: true;
}

export interface BrokerReplies {
  [BrokerMsg.Publish]: number;
  [BrokerMsg.Subscribe]: null;
  /** How many subscriptions the subscriber still has. */
  [BrokerMsg.Unsubscribe]: number;
  /** channels: the names; numsub: one count per channel asked; numpat: one count. */
  [BrokerMsg.Introspect]: Uint8Array[] | number[] | number;
}

/** One message for one subscriber, as the broker hands it to the front end that owns it. */
export interface Delivery {
  subscriber: number;
  channel: Uint8Array;
  payload: Uint8Array;
  pattern?: Uint8Array;
  shard?: true;
}
