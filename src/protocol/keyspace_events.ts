// Keyspace notifications as Redis defines them: the classes of `notify-keyspace-events`
// (K E g $ l s h z x e t m d n, A = "g$lshzxetd"), their parsing and printing (word for word as
// Redis' keyspaceEventsStringToFlags / FlagsToString), the class of each event name, and the two
// channels an event is published on: `__keyspace@0__:<key>` (message: the event) and
// `__keyevent@0__:<event>` (message: the key).

export const Notify = {
  Keyspace: 1 << 0,
  Keyevent: 1 << 1,
  Generic: 1 << 2,
  String: 1 << 3,
  List: 1 << 4,
  Set: 1 << 5,
  Hash: 1 << 6,
  Zset: 1 << 7,
  Expired: 1 << 8,
  Evicted: 1 << 9,
  Stream: 1 << 10,
  KeyMiss: 1 << 11,
  Module: 1 << 13,
  New: 1 << 14,
} as const;

const ALL = Notify.Generic | Notify.String | Notify.List | Notify.Set | Notify.Hash | Notify.Zset | Notify.Expired | Notify.Evicted | Notify.Stream | Notify.Module;

/** The characters Redis' error names ("Use 'Ag$lshzxeKEtmdn'."). */
export const NOTIFY_ALL_CLASSES = 'Ag$lshzxeKEtmdn';

const BY_CHAR: Readonly<Record<string, number>> = {
  A: ALL,
  g: Notify.Generic,
  $: Notify.String,
  l: Notify.List,
  s: Notify.Set,
  h: Notify.Hash,
  z: Notify.Zset,
  x: Notify.Expired,
  e: Notify.Evicted,
  K: Notify.Keyspace,
  E: Notify.Keyevent,
  t: Notify.Stream,
  m: Notify.KeyMiss,
  d: Notify.Module,
  n: Notify.New,
};

/** The flags of a class string; null when a character is not a class. */
export function parseNotifyFlags(text: string): number | null {
  let flags = 0;
  for (const ch of text) {
    const f = BY_CHAR[ch];
    if (f === undefined) return null;
    flags |= f;
  }
  return flags;
}

/** The class string of flags, in Redis' order ("AKE", "gxnKEm"). */
export function formatNotifyFlags(flags: number): string {
  let out = '';
  if ((flags & ALL) === ALL) out += 'A';
  else {
    for (const [ch, f] of [['g', Notify.Generic], ['$', Notify.String], ['l', Notify.List], ['s', Notify.Set], ['h', Notify.Hash], ['z', Notify.Zset], ['x', Notify.Expired], ['e', Notify.Evicted], ['t', Notify.Stream], ['d', Notify.Module], ['n', Notify.New]] as const) {
      if ((flags & f) !== 0) out += ch;
    }
  }
  if ((flags & Notify.Keyspace) !== 0) out += 'K';
  if ((flags & Notify.Keyevent) !== 0) out += 'E';
  if ((flags & Notify.KeyMiss) !== 0) out += 'm';
  return out;
}

/** The events BriseDB emits, and the class of each (as Redis' commands emit them). */
export const EVENT_CLASS = {
  set: Notify.String,
  append: Notify.String,
  setrange: Notify.String,
  incrby: Notify.String,
  incrbyfloat: Notify.String,
  del: Notify.Generic,
  expire: Notify.Generic,
  persist: Notify.Generic,
  rename_from: Notify.Generic,
  rename_to: Notify.Generic,
  copy_to: Notify.Generic,
  expired: Notify.Expired,
  new: Notify.New,
} as const;

export type KeyEventName = keyof typeof EVENT_CLASS;

/** One event of one key. */
export interface KeyEvent {
  event: KeyEventName;
  key: Uint8Array;
}

/** The (channel, message) pairs an event is published as under `flags` (none when off). */
export function notificationsOf(flags: number, e: KeyEvent): [Uint8Array, Uint8Array][] {
  if ((flags & EVENT_CLASS[e.event]) === 0) return [];
  const out: [Uint8Array, Uint8Array][] = [];
  if ((flags & Notify.Keyspace) !== 0) out.push([Buffer.concat([KEYSPACE_PREFIX, e.key]), Buffer.from(e.event)]);
  if ((flags & Notify.Keyevent) !== 0) out.push([Buffer.from(`__keyevent@0__:${e.event}`), e.key]);
  return out;
}

const KEYSPACE_PREFIX = Buffer.from('__keyspace@0__:');
