// What the routes of a volume server's HTTP front end share (actors/volume_http.ts): the drives
// (their actors, and which drive holds which volume), the answers (JSON, errors with the status
// of their code), and the request's parameters. One per front-end thread.
// Invariants:
// - a volume id is looked up on every drive when this thread does not know it, and forgotten
//   when its drive says it is not there (removed through another thread): the map is a cache;
// - a CONFLICT answer carries the volume's length (the master's repair starts from it);
// - a bug's message is logged, never sent (INTERNAL).
import type { HttpResponse } from 'uWebSockets.js';
import type { Fs } from '../runtime/fs.js';
import type { Peer } from '../runtime/peer.js';
import { INTERNAL_TEXT, StoreError, reportInternal } from '../runtime/errors.js';
import { MemberMsg, type MemberReplies, type MemberRequest, type MemberVolumeState } from '../protocol/member_protocol.js';
import type { ResponseState } from '../frontend/http_util.js';

/** The status of each error code a volume server answers (docs/volume-server.md). */
const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  BAD_ARGUMENT: 400,
  BAD_REQUEST: 400,
  CHECKSUM_MISMATCH: 400,
  SIZE_MISMATCH: 400,
  ABORTED: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  STALE_EPOCH: 409,
  LENGTH_REQUIRED: 411,
  NOT_IMPLEMENTED: 501,
  PEER_FAILED: 502,
  QUEUE_FULL: 503,
  UNAVAILABLE: 503,
  DEGRADED: 503,
  ACTOR_DOWN: 503,
  CLOSED: 503,
  TIMEOUT: 503,
  NO_SPACE: 507,
};

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  206: 'Partial Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  411: 'Length Required',
  416: 'Range Not Satisfiable',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Status'}`;
}

export function statusOfCode(code: string): number {
  return STATUS_OF_CODE[code] ?? 500;
}

export function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'INTERNAL';
}

/** A JSON answer (corked); nothing when the client is gone or it was answered. */
export function answerJson(res: HttpResponse, state: ResponseState, status: number, body: unknown, closeConnection = false): void {
  if (state.aborted || state.done) return;
  state.done = true;
  res.cork(() => {
    res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'application/json');
    if (status === 204) res.endWithoutBody(0, closeConnection);
    else res.end(JSON.stringify(body), closeConnection);
  });
}

export function answerError(res: HttpResponse, state: ResponseState, code: string, message: string, extra: Record<string, unknown> = {}, closeConnection = false): void {
  answerJson(res, state, statusOfCode(code), { error: message, code, ...extra }, closeConnection);
}

/** Positive integers of the query and path: digits only, a safe integer. */
export function parseCount(text: string | null | undefined): number | null {
  if (text === null || text === undefined || !/^[0-9]{1,16}$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/** A volume id: the u32 of the superblock. */
export function parseVolumeId(text: string): number | null {
  const n = parseCount(text);
  return n !== null && n <= 0xffffffff ? n : null;
}

/** A request's parameter that must be there and be a count; BAD_ARGUMENT naming it. */
export function requireCount(query: URLSearchParams, name: string): number {
  const n = parseCount(query.get(name));
  if (n === null) throw new StoreError('BAD_ARGUMENT', `${name} must be a non-negative integer, got ${JSON.stringify(query.get(name))}`);
  return n;
}

export interface VolumeContextConfig {
  drives: string[];
  /** The shared secret (peers are asked with it too); null: no auth. */
  secret: string | null;
}

export class VolumeContext {
  /** Which drive (index) holds which volume, as far as this thread knows. */
  private readonly where = new Map<number, number>();

  constructor(
    readonly fs: Fs,
    readonly config: VolumeContextConfig,
    private readonly peers: Peer[],
    readonly now: () => number,
  ) {}

  get driveCount(): number {
    return this.peers.length;
  }

  /** Fills the map from every drive's list (at start). */
  async learn(): Promise<void> {
    for (let i = 0; i < this.peers.length; i++) {
      for (const v of await this.ask(i, { t: MemberMsg.List })) this.where.set(v.id, i);
    }
  }

  async ask<T extends MemberRequest>(drive: number, msg: T, options: { blobs?: ArrayBuffer[]; timeoutMs?: number } = {}): Promise<MemberReplies[T['t']]> {
    return this.peers[drive]!.call<MemberReplies[T['t']]>(msg, options);
  }

  /** A request whose answer has blobs beside it (an ingest chunk's buffer, handed back). */
  async askWithBlobs(drive: number, msg: MemberRequest, blobs: ArrayBuffer[]): Promise<ArrayBuffer[]> {
    const reply = await this.peers[drive]!.request(msg, { blobs });
    return reply.blobs;
  }

  /** The drive and state of a volume, looking on every drive when unknown; NOT_FOUND if none has it. */
  async locate(volume: number): Promise<{ drive: number; state: MemberVolumeState }> {
    const known = this.where.get(volume);
    if (known !== undefined) {
      const state = await this.statOn(known, volume);
      if (state !== null) return { drive: known, state };
      this.where.delete(volume);
    }
    for (let i = 0; i < this.peers.length; i++) {
      const state = await this.statOn(i, volume);
      if (state === null) continue;
      this.where.set(volume, i);
      return { drive: i, state };
    }
    throw new StoreError('NOT_FOUND', `no volume ${volume} on this server`);
  }

  /** The drive a new volume goes to: a hash of its id, so two threads never put one id on two drives. */
  driveForNew(volume: number): number {
    // Fibonacci hashing: consecutive ids (a group's volumes) spread over the drives.
    return (Math.imul(volume, 0x9e3779b1) >>> 16) % this.peers.length;
  }

  placed(volume: number, drive: number): void {
    this.where.set(volume, drive);
  }

  forget(volume: number): void {
    this.where.delete(volume);
  }

  /** A failure as an answer: CONFLICT with the volume's length, INTERNAL logged not sent. */
  async fail(res: HttpResponse, state: ResponseState, err: unknown, volume: number | null, closeConnection = false): Promise<void> {
    const code = codeOf(err);
    if (code === 'INTERNAL') reportInternal(err);
    const message = code === 'INTERNAL' ? INTERNAL_TEXT : err instanceof Error ? err.message : String(err);
    const extra: Record<string, unknown> = {};
    if (code === 'CONFLICT' && volume !== null) {
      const length = await this.locate(volume).then((v) => v.state.length, () => null);
      if (length !== null) extra.length = length;
    }
    answerError(res, state, code, message, extra, closeConnection);
  }

  private async statOn(drive: number, volume: number): Promise<MemberVolumeState | null> {
    try {
      return await this.ask(drive, { t: MemberMsg.Stat, volume });
    } catch (err) {
      if (codeOf(err) === 'NOT_FOUND') return null;
      throw err;
    }
  }
}
