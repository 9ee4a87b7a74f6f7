// Messages to a drive's volume writer. Values never travel inside the CBOR: each needle's
// value (and each stream chunk) is a transferred ArrayBuffer beside it, in order.
import type { NeedleAddress } from '../storage/types.js';

export const VOLUME_PROTOCOL_VERSION = 1;
/** What this actor's start-up handshake checks (runtime/actor.ts). */
export const VOLUME_PROTOCOL = { name: 'volume', version: VOLUME_PROTOCOL_VERSION } as const;

/** Wire tags. Never renumbered; a retired tag is never reused. */
export const VolumeMsg = {
  Append: 1,
  StreamBegin: 2,
  StreamChunk: 3,
  StreamEnd: 4,
  StreamAbort: 5,
  Sync: 6,
  List: 7,
  /** Retired (the index counts garbage now): 8.  */
  /** The group's remote members and their states. */
  Members: 9,
  /**
   * Copy a whole needle from another group's local volume file into this group (and its
   * members): an upload whose group lost a member at its very end is kept, in a healthy group.
   */
  Adopt: 10,
  /** A replica's copy of its master's volume bytes at the tail (DriveVolumes.mirror), made durable. */
  Mirror: 11,
  /**
   * Vacuum: the volume takes no new needle from now on (the current one is rotated away, a
   * stream volume leaves the pool). Answers the uploads still open in it: the vacuum waits for 0.
   */
  Seal: 12,
  /**
   * Vacuum: remove these retired volumes' files, here and on every remote member. Only a sealed
   * volume (not the current one, not a stream volume) is removed; one already gone is no error.
   */
  Remove: 13,
} as const;

/** StreamBegin's size when the value's length is known only at its end (a chunked upload). */
export const UNKNOWN_SIZE = -1;

/** One needle to append; its value is blob number i of the request. */
export interface NeedleSpec {
  key: Uint8Array;
  expiresAt: number;
  flags: number;
}

export type VolumeRequest =
  | { t: typeof VolumeMsg.Append; needles: NeedleSpec[]; sync: boolean }
  // meta: the length of the needle's metadata section (0: none), reserved with the value.
  | { t: typeof VolumeMsg.StreamBegin; key: Uint8Array; size: number; expiresAt: number; meta?: number }
  | { t: typeof VolumeMsg.StreamChunk; stream: number }
  // meta: the metadata section, exactly as long as StreamBegin said (digests are known only now).
  | { t: typeof VolumeMsg.StreamEnd; stream: number; meta?: Uint8Array }
  | { t: typeof VolumeMsg.StreamAbort; stream: number }
  | { t: typeof VolumeMsg.Sync }
  | { t: typeof VolumeMsg.List }
  | { t: typeof VolumeMsg.Members }
  | { t: typeof VolumeMsg.Adopt; path: string; address: NeedleAddress }
  /** sync false: durable only at the next Sync (the replica syncs once before the records that need it). */
  | { t: typeof VolumeMsg.Mirror; volume: number; offset: number; bytes: Uint8Array; sync: boolean }
  | { t: typeof VolumeMsg.Seal; volume: number }
  | { t: typeof VolumeMsg.Remove; volumes: number[] };

/**
 * A streamed needle written whole and durable on the group's local drive that a remote member
 * did not take: not acknowledged where it is; its bytes can be adopted by another group.
 */
export interface StrandedNeedle {
  stranded: NeedleAddress;
  /** Its local volume file. */
  path: string;
  /** Why the member did not take it. */
  error: string;
}

/**
 * One-way, from a group writer to main: a remote member changed state (main logs it). Sent on
 * changes only (and when a stale member's error changes), never once per repair attempt.
 */
export const MEMBER_EVENT = 100;
export interface MemberEvent {
  t: typeof MEMBER_EVENT;
  group: number;
  server: string;
  state: 'healthy' | 'stale';
  error: string | null;
  /** Bytes the repair copied (healthy after a repair). */
  copied: number;
}

/** A remote member of a volume group, as its writer sees it. */
export interface MemberStatus {
  link: string;
  url: string;
  state: 'healthy' | 'stale' | 'repairing';
  /** Bytes the member is behind the local member (last measured). */
  lagBytes: number;
  /** Repairs that copied bytes to it since start-up. */
  repairs: number;
  lastError: string | null;
}

export interface VolumeListing {
  id: number;
  path: string;
  sizeBytes: number;
  /** Takes no new needle: neither the current volume nor a stream volume (what the automatic vacuum looks at). */
  sealed: boolean;
}

export interface VolumeReplies {
  [VolumeMsg.Append]: NeedleAddress[];
  [VolumeMsg.StreamBegin]: number;
  [VolumeMsg.StreamChunk]: number;
  [VolumeMsg.StreamEnd]: NeedleAddress | StrandedNeedle;
  [VolumeMsg.StreamAbort]: null;
  [VolumeMsg.Sync]: null;
  [VolumeMsg.List]: VolumeListing[];
  [VolumeMsg.Members]: MemberStatus[];
  [VolumeMsg.Adopt]: NeedleAddress;
  /** The volume's length after the bytes, durable. */
  [VolumeMsg.Mirror]: number;
  /** Uploads still writing into the sealed volume. */
  [VolumeMsg.Seal]: { uploads: number };
  /** The volumes removed from the local drive now (those already gone are not listed). */
  [VolumeMsg.Remove]: { removed: number[]; errors: string[] };
}
