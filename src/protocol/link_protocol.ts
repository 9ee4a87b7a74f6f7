// Messages to a remote-volume link (actors/volume_link.ts): the master's one actor per volume
// server. Group writers push regions of their local volume files to it (the link reads the
// bytes from the file itself: nothing large crosses a thread); readers ask it for needle bytes.
export const LINK_PROTOCOL_VERSION = 1;
export const LINK_PROTOCOL = { name: 'volume-link', version: LINK_PROTOCOL_VERSION } as const;

/** Wire tags. Never renumbered; a retired tag is never reused. */
export const LinkMsg = {
  /** Send [start, end) of a local volume file to the server, at its tail `start`. */
  Push: 1,
  /** Bytes of the local file are written up to `upTo` (a streamed needle grows). */
  Available: 2,
  /** Bytes [from, to) of a needle, checked by the server (whole) or by the reader (a part). */
  ReadNeedle: 3,
  /** The server's length of a volume (-1: it has none). */
  Stat: 4,
  /** Cut the server's volume back to `length` (repair). */
  Truncate: 5,
  /** Whether the server answers its health checks, and what went wrong last. */
  Status: 6,
  /**
   * An open-ended needle at `offset` (a chunked upload): its value is sent as it is written
   * (Available), at offset + 32 + keyLength; Seal or AbortOpen ends it. Answered when the
   * server has sealed or aborted it.
   */
  PushOpen: 7,
  /** The open needle at `offset` is finished locally (header written): its length. */
  Seal: 8,
  /** The open needle at `offset` was aborted locally: `written` value bytes; the tail is `tail`. */
  AbortOpen: 9,
  /** Remove a volume the group retired (vacuum); one the server does not have is no error. */
  Remove: 10,
} as const;

export type LinkRequest =
  | { t: typeof LinkMsg.Push; volume: number; path: string; start: number; end: number; available: number; sync: boolean }
  | { t: typeof LinkMsg.Available; volume: number; upTo: number }
  | { t: typeof LinkMsg.ReadNeedle; volume: number; offset: number; length: number; from: number; to: number }
  | { t: typeof LinkMsg.Stat; volume: number }
  | { t: typeof LinkMsg.Truncate; volume: number; length: number }
  | { t: typeof LinkMsg.Status }
  | { t: typeof LinkMsg.PushOpen; volume: number; path: string; offset: number; keyLength: number; metaLength: number }
  | { t: typeof LinkMsg.Seal; volume: number; offset: number; length: number }
  | { t: typeof LinkMsg.AbortOpen; volume: number; offset: number; written: number; tail: number }
  | { t: typeof LinkMsg.Remove; volume: number };

export interface LinkStatus {
  url: string;
  up: boolean;
  /** ms since the epoch of the last change of `up`. */
  since: number;
  lastError: string | null;
  /** Bytes pushed and read since start-up. */
  pushedBytes: number;
  readBytes: number;
  /** Regions waiting or in flight. */
  queued: number;
}

export interface LinkReplies {
  /** The server's new length of the volume. */
  [LinkMsg.Push]: number;
  [LinkMsg.Available]: null;
  /** The bytes come as one blob beside the reply. */
  [LinkMsg.ReadNeedle]: null;
  [LinkMsg.Stat]: number;
  [LinkMsg.Truncate]: number;
  [LinkMsg.Status]: LinkStatus;
  /** The server's new length of the volume. */
  [LinkMsg.PushOpen]: number;
  [LinkMsg.Seal]: null;
  [LinkMsg.AbortOpen]: null;
  [LinkMsg.Remove]: null;
}

/** The link actor of the volume server at position i of the configuration. */
export function linkActorName(server: number): string {
  return `link-${server}`;
}
