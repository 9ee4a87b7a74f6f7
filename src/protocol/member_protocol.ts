// Messages to a volume server's drive actor (actors/member_drive.ts), which owns the member
// volumes of one drive (storage/member_volumes.ts). Bytes never travel inside the CBOR: an
// ingest chunk is a transferred ArrayBuffer beside its message, and comes back beside the reply
// so the front end reuses it (runtime/buffer_pool.ts).
//
// An append is an ingest: begin (the volume's length must be the offset), chunks of the body in
// order (the front end keeps at most MAX_CHUNKS_IN_FLIGHT unanswered), end (answered once
// durable) or abort (cut back to the offset). The body is one or more needles, each followed by
// its zero padding to 8 bytes: exactly the bytes of the volume region [offset, end).

export const MEMBER_PROTOCOL_VERSION = 1;
/** What this actor's start-up handshake checks (runtime/actor.ts). */
export const MEMBER_PROTOCOL = { name: 'member-drive', version: MEMBER_PROTOCOL_VERSION } as const;

/** Wire tags. Never renumbered; a retired tag is never reused. */
export const MemberMsg = {
  Create: 1,
  IngestBegin: 2,
  IngestChunk: 3,
  IngestEnd: 4,
  IngestAbort: 5,
  Truncate: 6,
  Remove: 7,
  Stat: 8,
  List: 9,
  Sync: 10,
  Health: 11,
  /** A master claims its epoch (at start, on reconnecting): raised durably, or STALE_EPOCH. */
  Admit: 12,
  /** An open-ended needle (docs/volume-server.md, open/seal/abort): its value comes as ingest chunks. */
  OpenBegin: 13,
  /** The open needle's body has ended: its value length and CRC; it waits for its seal. */
  OpenBodyEnd: 14,
  /** The open needle's header, key, metadata and trailer: checked, written, synced. */
  OpenSeal: 15,
  /** The master aborted the upload: the tail moves where the master's moved. */
  OpenAbandon: 16,
} as const;

/** Chunks of one ingest sent and not yet answered: back-pressure from the drive to the socket. */
export const MAX_CHUNKS_IN_FLIGHT = 2;
/** Ingests open at once on one drive; past it QUEUE_FULL (503). */
export const MAX_INGESTS_PER_DRIVE = 1024;

export type MemberRequest =
  | { t: typeof MemberMsg.Create; volume: number; epoch: number; createdAt: number }
  // raw: the region's length when its bytes are taken as they are (PUT .../raw: the master's own
  // copy of the region, garbage needles included; only their CRC is checked, by the sender);
  // absent: the body is needles, each checked (PUT .../needles, and a copy from a peer).
  | { t: typeof MemberMsg.IngestBegin; volume: number; offset: number; epoch: number; raw?: number }
  // length: the bytes of the blob beside it that are body (the rest of the buffer is not).
  | { t: typeof MemberMsg.IngestChunk; ingest: number; length: number }
  // sync: the master asked for durability (the drive's --sync none still skips the fdatasync).
  | { t: typeof MemberMsg.IngestEnd; ingest: number; sync: boolean }
  | { t: typeof MemberMsg.IngestAbort; ingest: number }
  | { t: typeof MemberMsg.Truncate; volume: number; length: number; epoch: number }
  | { t: typeof MemberMsg.Remove; volume: number; epoch: number }
  | { t: typeof MemberMsg.Stat; volume: number }
  | { t: typeof MemberMsg.List }
  | { t: typeof MemberMsg.Sync }
  | { t: typeof MemberMsg.Health }
  | { t: typeof MemberMsg.Admit; epoch: number }
  | { t: typeof MemberMsg.OpenBegin; volume: number; offset: number; epoch: number; keyLength: number; metaLength: number }
  | { t: typeof MemberMsg.OpenBodyEnd; ingest: number }
  // bytes: header + key, then metadata + trailer (at most 32 + 64 KiB + 16 KiB + 4: small
  // enough to travel inside the CBOR, unlike a value).
  | { t: typeof MemberMsg.OpenSeal; volume: number; offset: number; epoch: number; bytes: Uint8Array; sync: boolean }
  | { t: typeof MemberMsg.OpenAbandon; volume: number; offset: number; epoch: number; tail: number };

/** One volume as a drive reports it. */
export interface MemberVolumeState {
  id: number;
  /** The volume's length: where the next needle goes. */
  length: number;
  /** The length known durable. */
  syncedLength: number;
  /** The highest epoch this drive has seen. */
  epoch: number;
  /** The volume file, for the front end's reads of committed bytes. */
  path: string;
  /** The drive directory. */
  drive: string;
}

export interface IngestEnded {
  offset: number;
  /** The volume's new length. */
  length: number;
  /** CRC-32 of the body as it arrived. */
  crc32: number;
}

export interface OpenBodyEnded {
  /** Value bytes received. */
  written: number;
  /** CRC-32 of the value bytes. */
  crc32: number;
}

export interface DriveHealth {
  dir: string;
  volumes: number;
  /** Bytes free for this process on the drive's file system; -1 when unknown. */
  freeBytes: number;
  epoch: number;
}

export interface MemberReplies {
  [MemberMsg.Create]: MemberVolumeState;
  [MemberMsg.IngestBegin]: number;
  /** Bytes of the body taken so far (the chunk's buffer comes back beside it). */
  [MemberMsg.IngestChunk]: number;
  [MemberMsg.IngestEnd]: IngestEnded;
  [MemberMsg.IngestAbort]: null;
  [MemberMsg.Truncate]: MemberVolumeState;
  [MemberMsg.Remove]: null;
  [MemberMsg.Stat]: MemberVolumeState;
  [MemberMsg.List]: MemberVolumeState[];
  [MemberMsg.Sync]: null;
  [MemberMsg.Health]: DriveHealth;
  [MemberMsg.Admit]: number;
  [MemberMsg.OpenBegin]: number;
  [MemberMsg.OpenBodyEnd]: OpenBodyEnded;
  /** The volume's new length. */
  [MemberMsg.OpenSeal]: number;
  [MemberMsg.OpenAbandon]: number;
}

/** The name of drive i's actor on a volume server. */
export function memberDriveName(i: number): string {
  return `drive-${i}`;
}
