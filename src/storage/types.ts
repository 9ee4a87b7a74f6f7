// Types shared by the storage formats (volumes, WAL, index) and the actors above them.
// See docs/formats.md for the bytes behind each.

/**
 * Where a needle lives: `length` is the whole needle (header, key, value, metadata, CRC); `meta`
 * the length of its metadata section (absent or 0: none, as every version-1 needle).
 */
export interface NeedleAddress {
  volume: number;
  offset: number;
  length: number;
  meta?: number;
}

/** Op codes of the WAL and the index. Never renumbered; a retired code is never reused. */
export const OpCode = {
  Set: 1,
  Del: 2,
  Expire: 3,
  DelIf: 4,
  SetIf: 5,
  Guard: 6,
  Flush: 7,
  /** Vacuum: a key moves to a copy of its needle, only if it still points at the old one. */
  MoveIf: 8,
  /** Vacuum: a volume no entry points into is given up; no later record may name it. */
  Retire: 9,
} as const;

/**
 * The result of a SET, SET_IF or MOVE_IF whose needle is in a retired volume (a write whose
 * needle was placed before its volume was sealed for a vacuum, committed after the vacuum gave
 * the volume up): nothing of its record applies, and the writer writes again.
 */
export const RESULT_VOLUME_RETIRED = -1;

/** Conditions of a SET_IF op, judged when the index applies it (so they are atomic). */
export const SetFlag = {
  /** Only if the key is not live (SET NX). */
  Nx: 1,
  /** Only if the key is live (SET XX). */
  Xx: 2,
  /** Keep the live key's expiry instead of the op's (SET KEEPTTL). */
  KeepTtl: 4,
  /** Only if the key is live at (expectVolume, expectOffset): compare-and-set. */
  IfAt: 8,
} as const;

export type SetOp = {
  code: typeof OpCode.Set;
  key: Uint8Array;
  address: NeedleAddress;
  expiresAt: number;
  /**
   * When the value was written (seconds since the epoch), kept by a snapshot chunk so that a key
   * keeps its Last-Modified through COMPACT; absent: the record's commit time.
   */
  modifiedSec?: number;
};
export type DelOp = { code: typeof OpCode.Del; key: Uint8Array };
/** expiresAt 0 = persist (remove the expiry). */
export type ExpireOp = { code: typeof OpCode.Expire; key: Uint8Array; expiresAt: number };
/** Delete only if the key still points at this needle (TTL sweep, lazy expiry). */
export type DelIfOp = { code: typeof OpCode.DelIf; key: Uint8Array; volume: number; offset: number };

/** A SET under conditions (SetFlag); result 1 when it was applied, 0 when a condition failed. */
export type SetIfOp = {
  code: typeof OpCode.SetIf;
  key: Uint8Array;
  address: NeedleAddress;
  expiresAt: number;
  flags: number;
  expectVolume: number;
  expectOffset: number;
};

/** What a GUARD requires of its key. */
export const GuardKind = {
  /** Not live (absent, deleted or expired). */
  Absent: 0,
  /** Live, at exactly (volume, offset) with exactly this expiry: WATCH (an expiry is a change). */
  Live: 1,
  /**
   * The same entry as read: at exactly (volume, offset) with this expiry, expired since or not;
   * or, once that expiry has passed, the key not live (its deletion by the TTL sweep is no
   * write). What reads guard (INCR, APPEND, a transaction's GET): only a write is a conflict;
   * an expiry since the read changes nothing the command wrote from (it linearizes at its read).
   */
  Same: 2,
} as const;
export type GuardKind = (typeof GuardKind)[keyof typeof GuardKind];

/**
 * A precondition of its record: the record applies only if every guard in it holds when the
 * index applies it (judged before any op of the record, in log order), else nothing of it
 * applies. Read-modify-write commands (INCR, APPEND, RENAME...) and MULTI/EXEC with WATCH guard
 * what they read, so a concurrent change is never lost. `volume`, `offset`, `expiresAt` are 0
 * for an Absent guard.
 */
export type GuardOp = {
  code: typeof OpCode.Guard;
  key: Uint8Array;
  kind: GuardKind;
  volume: number;
  offset: number;
  expiresAt: number;
};

/** Removes every key (FLUSHALL / FLUSHDB): one op, whatever the number of keys. */
export type FlushOp = { code: typeof OpCode.Flush };

/**
 * Vacuum's move: the key points at `address` (a byte-for-byte copy of its needle) only if it is
 * still present at exactly (fromVolume, fromOffset), expired or not; it keeps its expiry and its
 * modified time. Result 1 when moved, 0 when the key changed since the copy (the copy is garbage).
 */
export type MoveIfOp = { code: typeof OpCode.MoveIf; key: Uint8Array; fromVolume: number; fromOffset: number; address: NeedleAddress };

/**
 * Vacuum's last step for a volume: result 1 when no entry points into it (it is retired: any later
 * SET, SET_IF or MOVE_IF naming it answers RESULT_VOLUME_RETIRED and its record applies nothing),
 * 0 when some entry still does (nothing changes).
 */
export type RetireOp = { code: typeof OpCode.Retire; volume: number };

/** An op that names one key. */
export type KeyOp = SetOp | DelOp | ExpireOp | DelIfOp | SetIfOp | GuardOp | MoveIfOp;
export type Op = KeyOp | FlushOp | RetireOp;

const NO_KEY = new Uint8Array(0);

/** The key an op names; FLUSH and RETIRE name none (an empty key). */
export function opKey(op: Op): Uint8Array {
  return op.code === OpCode.Flush || op.code === OpCode.Retire ? NO_KEY : op.key;
}

/** The needle a SET, SET_IF or MOVE_IF points its key at; none for other ops. */
export function opNeedle(op: Op): NeedleAddress | undefined {
  return op.code === OpCode.Set || op.code === OpCode.SetIf || op.code === OpCode.MoveIf ? op.address : undefined;
}

/** Results of a record whose guards failed: nothing applied. */
export function guardsFailed(ops: readonly Op[], results: readonly number[]): boolean {
  for (let i = 0; i < ops.length; i++) if (ops[i]!.code === OpCode.Guard && results[i] !== 1) return true;
  return false;
}

/** One committed WAL record: a transaction, applied whole or not at all. */
export interface WalRecord {
  lsn: number;
  timeMs: number;
  /** 0 = committed batch, 1 = snapshot chunk (start of a compacted WAL). */
  kind: 0 | 1;
  ops: Op[];
  /**
   * First LSN of the group commit that wrote this record (one write, one fdatasync). A later
   * group is written only after the earlier one's fsync returned, so a valid record of a later
   * group after a damaged one proves the damage hit synced data, not a torn unsynced tail.
   */
  batchFirstLsn?: number;
  /**
   * Needles of this record's writes that were written to their volumes but not synced: the
   * record carries them so that one fdatasync (the WAL's) makes the write durable. On open,
   * every record after the index's durable LSN writes them again at their place
   * (storage/wal_redo.ts); the index syncs their volumes before its durable LSN passes them.
   * Kind 0 only. docs/formats.md §WAL, "Redo needles".
   */
  redo?: RedoNeedle[];
}

/** A plain needle (version 1, no flags) at its place: what a record's redo section holds. */
export interface RedoNeedle {
  volume: number;
  offset: number;
  key: Uint8Array;
  value: Uint8Array;
  expiresAt: number;
}

/** What the index holds for a live key. */
export interface IndexEntry {
  key: Uint8Array;
  address: NeedleAddress;
  expiresAt: number;
  /** Commit time of the write (ms, second precision); 0 when unknown. */
  modifiedAt?: number;
}

/** What a lookup found: the live entry, or the address of an expired one to clean up. */
export interface Lookup {
  entry?: IndexEntry;
  expired?: { volume: number; offset: number };
}

/** True when an entry with this expiry is live at `nowMs`. */
export function isLive(expiresAt: number, nowMs: number): boolean {
  return expiresAt === 0 || expiresAt > nowMs;
}

/** Length of the value inside a needle, from its address and key length. */
/** An address; `meta` only when the needle has a metadata section (version-1 needles keep the old shape). */
export function needleAddress(volume: number, offset: number, length: number, meta = 0): NeedleAddress {
  return meta === 0 ? { volume, offset, length } : { volume, offset, length, meta };
}

export function valueLengthOf(address: NeedleAddress, keyLength: number): number {
  return address.length - 36 - keyLength - (address.meta ?? 0);
}

/** File offset of the value inside a needle. */
export function valueOffsetOf(address: NeedleAddress, keyLength: number): number {
  return address.offset + 32 + keyLength;
}

/** When writes are fsynced: 'always' before a write is acknowledged (group-committed), or never. */
export type SyncPolicy = 'always' | 'none';
