// The master's side of the volume-server protocol (docs/volume-server.md): one client per
// server, over a pool of keep-alive connections (node:http), every request signed with the
// shared secret (X-Brise-Auth) and carrying the master's epoch where it writes.
// Owns: its Agent (the pool) and nothing else; the link actor (actors/volume_link.ts) decides
// what to send when.
// Invariants:
// - a timeout is a no-progress timeout (the socket idle that long), never a total one: a 1 GB
//   body is slow, not stuck;
// - a raw region is acknowledged only when the server's CRC-32 of what it received equals the
//   CRC-32 of what was sent (a byte changed in flight is CHECKSUM_MISMATCH, and the server cut
//   nothing back: the caller treats the member as stale);
// - every answer body read is bounded (MAX_ANSWER_BYTES), every error a StoreError with a code
//   the groups act on: CONFLICT (with the server's length), STALE_EPOCH, NOT_FOUND,
//   UNAVAILABLE (cannot reach it, 5xx), TIMEOUT, CHECKSUM_MISMATCH.
import * as http from 'node:http';
import { StoreError, type ErrorCode } from '../runtime/errors.js';
import { crc32 } from '../storage/checksum.js';
import { AUTH_HEADER, signVolumeRequest } from '../protocol/volume_auth.js';

/** JSON answers are small; anything longer is not one of ours. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface VolumeClientOptions {
  /** http://host:port */
  base: string;
  secret: string | null;
  epoch: number;
  /** The no-progress timeout of every request (ms). */
  idleMs: number;
  /** Connections kept to this server. */
  maxSockets: number;
  now?: () => number;
}

export interface RemoteVolumeStat {
  id: number;
  length: number;
  syncedLength: number;
  epoch: number;
}

/** A failure with what the server said about itself (its length, on CONFLICT). */
export class RemoteError extends StoreError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly status: number,
    readonly length?: number,
  ) {
    super(code, message);
  }
}

export class VolumeClient {
  private readonly agent: http.Agent;
  private readonly active = new Set<http.ClientRequest>();
  private readonly url: URL;

  constructor(private readonly options: VolumeClientOptions) {
    this.url = new URL(options.base);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: options.maxSockets });
  }

  get base(): string {
    return this.options.base;
  }

  /** `timeoutMs`: a health check is small; waiting the whole no-progress time would hide a dead link. */
  async health(timeoutMs = this.options.idleMs): Promise<Record<string, unknown>> {
    return (await this.request('GET', '/v1/health', {}, (req) => void req.end(), timeoutMs)) as Record<string, unknown>;
  }

  /**
   * Fails every request in flight (UNAVAILABLE): the server stopped answering its health checks,
   * so requests stuck on it (a blackholed link) fail now, not after the no-progress timeout.
   */
  abortAll(why: string): void {
    for (const req of [...this.active]) req.destroy(new StoreError('UNAVAILABLE', `${this.options.base}: ${why}`));
  }

  /** Claims this master's epoch on every drive of the server (STALE_EPOCH if a newer one did). */
  async claim(): Promise<void> {
    await this.json('POST', `/v1/epoch?epoch=${this.options.epoch}`);
  }

  /** null when the server has no such volume. */
  async stat(id: number): Promise<RemoteVolumeStat | null> {
    try {
      const a = (await this.json('GET', `/v1/volumes/${id}`)) as Record<string, unknown>;
      return { id, length: num(a['length']), syncedLength: num(a['synced_length']), epoch: num(a['epoch']) };
    } catch (err) {
      if (err instanceof RemoteError && err.code === 'NOT_FOUND') return null;
      throw err;
    }
  }

  /** Creates the volume with the master's superblock time; an existing one answers its length. */
  async create(id: number, createdMs: number): Promise<number> {
    try {
      const a = (await this.json('POST', `/v1/volumes/${id}?epoch=${this.options.epoch}&created=${createdMs}`)) as Record<string, unknown>;
      return num(a['length']);
    } catch (err) {
      if (err instanceof RemoteError && err.code === 'CONFLICT' && err.length !== undefined) return err.length;
      throw err;
    }
  }

  /**
   * Appends the region [offset, offset + length) of the master's copy of the volume, its bytes
   * from `body`, at the server's tail (which must be `offset`). Resolves with the new length once
   * the server has it (durable with `sync`) and its CRC matches what was sent.
   */
  async putRaw(id: number, offset: number, length: number, body: AsyncIterable<Uint8Array>, sync: boolean): Promise<number> {
    const path = `/v1/volumes/${id}/raw?offset=${offset}&epoch=${this.options.epoch}&sync=${sync ? 1 : 0}`;
    let crc = 0;
    let sent = 0;
    const answer = await this.request('PUT', path, { 'content-length': String(length) }, async (req) => {
      for await (const chunk of body) {
        crc = crc32(chunk, crc);
        sent += chunk.length;
        if (!req.write(chunk)) await drained(req);
      }
      req.end();
    });
    if (sent !== length) throw new StoreError('INTERNAL', `region of ${length} bytes; ${sent} sent`);
    const a = answer as Record<string, unknown>;
    if (num(a['crc32']) !== crc >>> 0) {
      throw new RemoteError('CHECKSUM_MISMATCH', `${this.options.base}: volume ${id} at ${offset}: the bytes that arrived are not the bytes sent`, 201);
    }
    return num(a['length']);
  }

  /** Cuts the volume back to `length` (repair). */
  async truncate(id: number, length: number): Promise<number> {
    const a = (await this.json('POST', `/v1/volumes/${id}/truncate?length=${length}&epoch=${this.options.epoch}`)) as Record<string, unknown>;
    return num(a['length']);
  }

  async remove(id: number): Promise<void> {
    await this.json('DELETE', `/v1/volumes/${id}?epoch=${this.options.epoch}`);
  }

  /**
   * Bytes [from, to) of the needle at (volume, offset) of `length` bytes. The whole needle is
   * checked by the server (header before the first byte, CRC before the last: a bad one arrives
   * cut short, which is an error here); a part has the header checked only.
   */
  async readNeedle(id: number, offset: number, length: number, from: number, to: number): Promise<Uint8Array> {
    const whole = from === 0 && to === length;
    const headers: Record<string, string> = whole ? {} : { range: `bytes=${from}-${to - 1}` };
    const res = await this.exchange('GET', `/v1/volumes/${id}/needles/${offset}?length=${length}`, headers, (req) => void req.end());
    if (res.statusCode !== 200 && res.statusCode !== 206) throw await failureOf(this.options.base, res);
    const body = await readAll(res, to - from);
    if (body.length !== to - from) {
      throw new RemoteError('CHECKSUM_MISMATCH', `${this.options.base}: needle ${id}/${offset}: ${body.length} of ${to - from} bytes arrived`, res.statusCode);
    }
    return body;
  }

  close(): void {
    this.agent.destroy();
  }

  private async json(method: string, path: string): Promise<unknown> {
    return this.request(method, path, {}, (req) => void req.end());
  }

  /** A request whose answer is JSON: 2xx parsed, anything else a RemoteError. */
  private async request(method: string, path: string, headers: Record<string, string>, send: (req: http.ClientRequest) => Promise<void> | void, idleMs = this.options.idleMs): Promise<unknown> {
    const res = await this.exchange(method, path, headers, send, idleMs);
    if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) throw await failureOf(this.options.base, res);
    if (res.statusCode === 204) {
      res.resume();
      return {};
    }
    return parseJson(this.options.base, await readAll(res, MAX_ANSWER_BYTES));
  }

  /** Sends a request and resolves with its response (headers in); errors become StoreErrors. */
  private exchange(method: string, path: string, headers: Record<string, string>, send: (req: http.ClientRequest) => Promise<void> | void, idleMs = this.options.idleMs): Promise<http.IncomingMessage> {
    const now = (this.options.now ?? Date.now)();
    const all: Record<string, string> = { ...headers };
    if (this.options.secret !== null) all[AUTH_HEADER] = signVolumeRequest(this.options.secret, method, path, now);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: this.url.hostname, port: this.url.port, method, path, headers: all, agent: this.agent });
      this.active.add(req);
      req.on('close', () => this.active.delete(req));
      const fail = (err: unknown): void => reject(transportError(this.options.base, err));
      req.setTimeout(idleMs, () => req.destroy(new StoreError('TIMEOUT', `${this.options.base}: no progress for ${idleMs} ms`)));
      req.on('error', fail);
      req.on('response', (res) => {
        res.setTimeout(idleMs, () => res.destroy(new StoreError('TIMEOUT', `${this.options.base}: no progress for ${idleMs} ms`)));
        res.on('close', () => this.active.delete(req));
        resolve(res);
      });
      Promise.resolve(send(req)).catch((err: unknown) => {
        req.destroy(err instanceof Error ? err : new Error(String(err)));
        fail(err);
      });
    });
  }

  /**
   * The value of an open-ended needle (its length known only at its end: a chunked body) at the
   * server's tail `offset`. Resolves with the bytes sent once the server has them all, its count
   * and CRC-32 equal to what was sent (end to end); the needle then waits for sealOpen/abortOpen.
   */
  async putOpen(id: number, offset: number, keyLength: number, metaLength: number, body: AsyncIterable<Uint8Array>): Promise<number> {
    const path = `/v1/volumes/${id}/open?offset=${offset}&epoch=${this.options.epoch}&key_length=${keyLength}&meta_length=${metaLength}`;
    let crc = 0;
    let sent = 0;
    const answer = await this.request('PUT', path, {}, async (req) => {
      for await (const chunk of body) {
        crc = crc32(chunk, crc);
        sent += chunk.length;
        if (!req.write(chunk)) await drained(req);
      }
      req.end();
    });
    const a = answer as Record<string, unknown>;
    if (num(a['written']) !== sent || num(a['crc32']) !== crc >>> 0) {
      throw new RemoteError('CHECKSUM_MISMATCH', `${this.options.base}: open needle ${id}/${offset}: the value that arrived is not the value sent`, 202);
    }
    return sent;
  }

  /** Seals the open needle: header + key, then metadata + trailer. Resolves with the new length. */
  async sealOpen(id: number, offset: number, bytes: Uint8Array, sync: boolean): Promise<number> {
    const path = `/v1/volumes/${id}/open/seal?offset=${offset}&epoch=${this.options.epoch}&sync=${sync ? 1 : 0}`;
    const a = (await this.request('POST', path, { 'content-length': String(bytes.length) }, (req) => void req.end(bytes))) as Record<string, unknown>;
    return num(a['length']);
  }

  /** The master aborted the open needle; its tail is now `tail`, and the server's becomes it. */
  async abortOpen(id: number, offset: number, tail: number): Promise<number> {
    const a = (await this.json('POST', `/v1/volumes/${id}/open/abort?offset=${offset}&epoch=${this.options.epoch}&tail=${tail}`)) as Record<string, unknown>;
    return num(a['length']);
  }
}

function drained(req: http.ClientRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      req.off('drain', done);
      req.off('close', closed);
      resolve();
    };
    const closed = (): void => {
      req.off('drain', done);
      reject(new StoreError('UNAVAILABLE', 'the connection closed while sending'));
    };
    req.once('drain', done);
    req.once('close', closed);
  });
}

/** The body, at most `limit` bytes (more is an error: a server that sends more is not ours). */
function readAll(res: http.IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    res.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        res.destroy(new StoreError('CORRUPT', `an answer of more than ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    // A body cut short (the server found a bad needle, or the connection died) ends in 'error'
    // or 'aborted'; what arrived is given back and the caller sees it is short.
    res.on('aborted', () => resolve(Buffer.concat(chunks)));
    res.on('error', (err) => (err instanceof StoreError ? reject(err) : resolve(Buffer.concat(chunks))));
  });
}

async function failureOf(base: string, res: http.IncomingMessage): Promise<RemoteError> {
  const status = res.statusCode ?? 0;
  let body: Record<string, unknown> = {};
  try {
    body = parseJson(base, await readAll(res, MAX_ANSWER_BYTES)) as Record<string, unknown>;
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  const message = `${base}: ${typeof body['error'] === 'string' ? body['error'] : `HTTP ${status}`}`;
  const length = typeof body['length'] === 'number' ? body['length'] : undefined;
  return new RemoteError(codeOfAnswer(status, body['code']), message, status, length);
}

function codeOfAnswer(status: number, code: unknown): ErrorCode {
  const known: ErrorCode[] = ['CONFLICT', 'STALE_EPOCH', 'NOT_FOUND', 'CHECKSUM_MISMATCH', 'SIZE_MISMATCH', 'BAD_ARGUMENT', 'NO_SPACE', 'QUEUE_FULL', 'IO_ERROR'];
  if (typeof code === 'string' && (known as string[]).includes(code)) return code as ErrorCode;
  if (status === 404) return 'NOT_FOUND';
  if (status === 401) return 'BAD_ARGUMENT';
  if (status === 507) return 'NO_SPACE';
  return status >= 500 ? 'UNAVAILABLE' : 'BAD_ARGUMENT';
}

function transportError(base: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const e = err as { code?: string; message?: string };
  return new StoreError('UNAVAILABLE', `${base}: ${e.code ?? ''} ${e.message ?? String(err)}`.trim());
}

function parseJson(base: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new StoreError('CORRUPT', `${base}: an answer that is not JSON`);
  }
}

function num(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new StoreError('CORRUPT', `a volume server answered ${JSON.stringify(v)} for a number`);
  return v;
}
