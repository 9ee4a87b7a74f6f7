// The replication stream between a master and a read-only replica (docs/replica.md, "The
// stream"), on the master's TCP port. The replica sends one RESP command,
//   BRISE.SYNC <history-id | ?> <applied-lsn> <volumes: JSON {"id": length}>
// the master answers one line (+CONTINUE <history> <from> | +FULLRESYNC <history> <until> [<previous>] |
// -ERR ...) and then sends only frames: `u32 LE length | CBOR array`, one kind per frame. The
// replica answers with RESP `REPLCONF ACK <lsn>` commands.
//
// Invariants: a frame's CBOR is plain (no records, no tags on byte strings: it decodes without
// shared state, like the WAL's payloads); records travel as their WAL payloads (wal_format.ts),
// so the replica decodes them with the WAL's own checks; a decoder never holds more than one
// frame of at most MAX_FRAME bytes, and refuses a frame of any other shape.
import { Encoder } from 'cbor-x';
import { StoreError } from '../runtime/errors.js';
import { decodePayload } from '../storage/wal_format.js';
import type { WalRecord } from '../storage/types.js';

export const SYNC_COMMAND = 'BRISE.SYNC';
/** A region frame carries at most this many volume bytes. */
export const MAX_REGION_BYTES = 1024 * 1024;
/** The largest frame: a batch of records (the WAL feed cuts batches at about 1 MiB) or a region. */
export const MAX_FRAME = 80 * 1024 * 1024;
/** Heartbeats while nothing else flows; a link silent this long is down. */
export const HEARTBEAT_MS = 1_000;
export const LINK_TIMEOUT_MS = 10_000;

export const FrameKind = {
  /** Raw bytes of a master-local volume at `offset` (the replica's tail). */
  Region: 1,
  /** Committed WAL records, each its WAL payload. */
  Records: 2,
  /** The master's last LSN and clock, every second. */
  Heartbeat: 3,
  /** The master's volume group ids, second in every stream (the replica holds each group's volumes). */
  Groups: 5,
  /** The master's replication history (its id, since, previous), first in every stream. */
  History: 6,
} as const;

export interface HistoryWire {
  id: string;
  since: number;
  previous?: { id: string; end: number };
}

export type Frame =
  | { kind: typeof FrameKind.Region; volume: number; offset: number; bytes: Uint8Array }
  | { kind: typeof FrameKind.Records; payloads: Uint8Array[] }
  | { kind: typeof FrameKind.Heartbeat; lastLsn: number; timeMs: number }
  | { kind: typeof FrameKind.Groups; ids: number[] }
  | { kind: typeof FrameKind.History; history: HistoryWire };

const codec = new Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true });

export function encodeFrame(frame: Frame): Buffer {
  let body: unknown[];
  switch (frame.kind) {
    case FrameKind.Region:
      body = [frame.kind, frame.volume, frame.offset, frame.bytes];
      break;
    case FrameKind.Records:
      body = [frame.kind, frame.payloads];
      break;
    case FrameKind.Heartbeat:
      body = [frame.kind, frame.lastLsn, frame.timeMs];
      break;
    case FrameKind.Groups:
      body = [frame.kind, frame.ids];
      break;
    case FrameKind.History:
      body = [frame.kind, frame.history];
      break;
  }
  const cbor = codec.encode(body);
  const out = Buffer.allocUnsafe(4 + cbor.length);
  out.writeUInt32LE(cbor.length, 0);
  out.set(cbor, 4);
  return out;
}

/**
 * A region frame as two buffers, the head and the volume bytes themselves: the CBOR is written
 * by hand so that the bytes (up to 1 MiB, for every replica) are never copied into an encoder's
 * buffer. It decodes as encodeFrame's would: [1, volume, offset, bytes].
 */
export function encodeRegionFrame(volume: number, offset: number, bytes: Uint8Array): [Buffer, Uint8Array] {
  const head = Buffer.allocUnsafe(4 + 1 + 1 + 9 + 9 + 5);
  let at = 4;
  head[at++] = 0x84; // array of 4
  head[at++] = FrameKind.Region;
  at = writeUint(head, at, volume);
  at = writeUint(head, at, offset);
  head[at++] = 0x5a; // byte string, u32 length
  head.writeUInt32BE(bytes.length, at);
  at += 4;
  head.writeUInt32LE(at - 4 + bytes.length, 0);
  return [head.subarray(0, at), bytes];
}

function writeUint(buf: Buffer, at: number, n: number): number {
  if (n < 2 ** 32) {
    buf[at] = 0x1a;
    buf.writeUInt32BE(n, at + 1);
    return at + 5;
  }
  buf[at] = 0x1b;
  buf.writeBigUInt64BE(BigInt(n), at + 1);
  return at + 9;
}

/** Incremental: push() bytes, next() frames; a malformed frame throws (the link is dropped). */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole frame, or null when more bytes are needed. */
  next(): Frame | null {
    if (this.buffered < 4) return null;
    const head = this.peek(4);
    const n = head.readUInt32LE(0);
    if (n === 0 || n > MAX_FRAME) throw new StoreError('PROTOCOL', `replication frame of ${n} bytes (limit ${MAX_FRAME})`);
    if (this.buffered < 4 + n) return null;
    const all = this.take(4 + n);
    return decodeFrameBody(all.subarray(4));
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private take(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

function decodeFrameBody(bytes: Uint8Array): Frame {
  let v: unknown;
  try {
    v = codec.decode(bytes);
  } catch (err) {
    throw new StoreError('PROTOCOL', `replication frame is not CBOR: ${(err as Error).message}`);
  }
  if (!Array.isArray(v)) throw bad('not an array');
  switch (v[0]) {
    case FrameKind.Region: {
      const [volume, offset] = [safe(v[1]), safe(v[2])];
      if (!isUint(volume) || !isUint(offset) || !(v[3] instanceof Uint8Array)) throw bad('region');
      return { kind: FrameKind.Region, volume, offset, bytes: v[3] };
    }
    case FrameKind.Records:
      if (!Array.isArray(v[1]) || !v[1].every((p) => p instanceof Uint8Array)) throw bad('records');
      return { kind: FrameKind.Records, payloads: v[1] as Uint8Array[] };
    case FrameKind.Heartbeat:
      if (!isUint(v[1]) || !isUint(v[2])) throw bad('heartbeat');
      return { kind: FrameKind.Heartbeat, lastLsn: v[1], timeMs: v[2] };
    case FrameKind.Groups:
      if (!Array.isArray(v[1]) || v[1].length > 65_536 || !v[1].every(isUint)) throw bad('groups');
      return { kind: FrameKind.Groups, ids: v[1] as number[] };
    case FrameKind.History:
      if (!isHistory(v[1])) throw bad('history');
      return { kind: FrameKind.History, history: v[1] };
    default:
      throw bad(`unknown kind ${String(v[0])}`);
  }
}

function isHistory(v: unknown): v is HistoryWire {
  if (typeof v !== 'object' || v === null) return false;
  const h = v as Record<string, unknown>;
  if (typeof h['id'] !== 'string' || !isUint(h['since'])) return false;
  const p = h['previous'];
  if (p === undefined) return true;
  if (typeof p !== 'object' || p === null) return false;
  const q = p as Record<string, unknown>;
  return typeof q['id'] === 'string' && isUint(q['end']);
}

/** A CBOR uint64 decodes as a bigint: a safe one becomes a number. */
function safe(v: unknown): unknown {
  return typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function bad(what: string): StoreError {
  return new StoreError('PROTOCOL', `malformed replication frame: ${what}`);
}

/** A record of a Records frame (its WAL payload): PROTOCOL when it does not decode. */
export function recordOf(payload: Uint8Array): WalRecord {
  const r = decodePayload(payload);
  if (r === null) throw new StoreError('PROTOCOL', 'the master sent a record that does not decode');
  return r;
}

/** The master's answer to BRISE.SYNC, parsed from its status line. */
export type SyncAnswer =
  | { mode: 'continue'; history: string; from: number }
  /** previous: the history the master was promoted from, if any. */
  | { mode: 'fullresync'; history: string; until: number; previous?: string };

export function parseSyncAnswer(line: string): SyncAnswer | null {
  const m = /^(CONTINUE|FULLRESYNC) ([0-9a-f]{40}) (\d+)(?: ([0-9a-f]{40}))?$/.exec(line);
  if (m === null) return null;
  const n = Number(m[3]);
  if (!Number.isSafeInteger(n)) return null;
  if (m[1] === 'CONTINUE') return m[4] === undefined ? { mode: 'continue', history: m[2]!, from: n } : null;
  return m[4] === undefined ? { mode: 'fullresync', history: m[2]!, until: n } : { mode: 'fullresync', history: m[2]!, until: n, previous: m[4] };
}

/** Volume lengths as the handshake carries them: JSON {"id": length}. */
export function parseVolumeLengths(text: string): Map<number, number> | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const out = new Map<number, number>();
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > 1_000_000) return null;
  for (const [k, len] of entries) {
    const id = Number(k);
    if (!isUint(id) || !isUint(len)) return null;
    out.set(id, len);
  }
  return out;
}
