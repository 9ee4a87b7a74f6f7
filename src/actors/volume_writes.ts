// The routes of a volume server that write a volume's bytes (docs/volume-server.md): an append
// of needles at an offset (PUT .../needles, the body streamed to the drive's actor) and a copy
// of a range from a peer (POST .../copy, for repair: the peer's raw range streamed the same way),
// and an open-ended needle (PUT .../open, its value as it comes, then POST .../open/seal or
// .../open/abort: a chunked upload the master tees to its members).
// Invariants:
// - the body never sits whole in memory: it moves in 1 MiB pool buffers, at most
//   MAX_CHUNKS_IN_FLIGHT unanswered at the drive, and the socket is paused behind them;
// - a body (client's or peer's) that makes no progress for NO_PROGRESS_MS is dropped and the
//   volume cut back to the offset; so is one the client abandons;
// - all or nothing: a refused needle anywhere in the body cuts the volume back to the offset;
// - an answer made before the body was wholly read closes the connection.
import * as http from 'node:http';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { StoreError } from '../runtime/errors.js';
import { streamChunks } from '../runtime/buffer_pool.js';
import { AUTH_HEADER, signVolumeRequest } from '../protocol/volume_auth.js';
import { MAX_CHUNKS_IN_FLIGHT, MemberMsg, type IngestEnded } from '../protocol/member_protocol.js';
import { BodyQueue } from '../frontend/http_body.js';
import { watchAbort } from '../frontend/http_util.js';
import { answerError, answerJson, codeOf, parseVolumeId, requireCount, type VolumeContext } from './volume_context.js';

/** A body, ours to receive or a peer's to send, that moves no byte this long is dropped. */
export const NO_PROGRESS_MS = 30_000;
/** The end of an ingest waits for its fdatasync: longer than a chunk may. */
const END_TIMEOUT_MS = 120_000;

/** One keep-alive pool for copies from peers. */
const peerAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** PUT /v1/volumes/{id}/needles?offset=N&epoch=E[&sync=1]: needles, each checked. */
export function appendRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  append(res, req, ctx, false);
}

/** PUT /v1/volumes/{id}/raw?offset=N&epoch=E[&sync=1]: a raw region, its CRC answered. */
export function rawAppendRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  append(res, req, ctx, true);
}

function append(res: HttpResponse, req: HttpRequest, ctx: VolumeContext, raw: boolean): void {
  const volume = parseVolumeId(req.getParameter(0));
  const query = new URLSearchParams(req.getQuery() ?? '');
  const lengthHeader = req.getHeader('content-length');
  const chunked = req.getHeader('transfer-encoding') !== '';
  const body = new BodyQueue(res);
  const state = watchAbort(res, () => {
    if (!body.complete) body.fail(new StoreError('ABORTED', 'the client went away during the append'));
  });
  res.onData((chunk, last) => body.push(chunk, last, ctx.now()));
  // Every early answer closes: the body was not read.
  const refuse = (code: string, message: string): void => {
    answerError(res, state, code, message, {}, true);
    body.fail(new StoreError('ABORTED', message));
  };
  if (volume === null) return refuse('BAD_ARGUMENT', 'the volume id must be an integer below 2^32');
  if (query.get('open') === '1') return refuse('BAD_ARGUMENT', 'open-ended appends go to PUT /v1/volumes/{id}/open');
  const length = lengthHeader === '' ? null : Number(lengthHeader);
  if (chunked || length === null || !Number.isSafeInteger(length)) return refuse('LENGTH_REQUIRED', 'an append needs a Content-Length (the bytes of the region [offset, end))');
  if (length === 0) return refuse('BAD_ARGUMENT', 'an append of no bytes');
  let offset: number;
  let epoch: number;
  try {
    offset = requireCount(query, 'offset');
    epoch = requireCount(query, 'epoch');
  } catch (err) {
    return refuse('BAD_ARGUMENT', (err as Error).message);
  }
  const sync = query.get('sync') === '1';
  answerBody({ res, state, ctx, body, volume, what: 'append', status: 201 }, () => ingestFrom(ctx, volume, offset, epoch, sync, body, raw ? length : undefined));
}

/**
 * Runs the work that takes a streamed body and answers it (`status` and the work's JSON), or
 * its failure (the body refused from then on); a body that stalls NO_PROGRESS_MS is dropped.
 */
function answerBody(
  a: { res: HttpResponse; state: ReturnType<typeof watchAbort>; ctx: VolumeContext; body: BodyQueue; volume: number; what: string; status: number },
  work: () => Promise<object>,
): void {
  const { res, state, ctx, body, volume, what, status } = a;
  const stall = watchStall(body, ctx, () => {
    answerError(res, state, 'REQUEST_TIMEOUT', `no body bytes for ${NO_PROGRESS_MS / 1000} s; the ${what} is dropped`, {}, true);
    body.fail(new StoreError('TIMEOUT', `the ${what} stalled`));
  });
  void work()
    .then(
      (ended) => answerJson(res, state, status, ended),
      (err: unknown) => {
        body.fail(err instanceof Error ? err : new StoreError('ABORTED', String(err)));
        return ctx.fail(res, state, err, volume, !body.complete);
      },
    )
    .finally(() => clearTimeout(stall.timer));
}

/**
 * PUT /v1/volumes/{id}/open?offset=N&epoch=E&key_length=K&meta_length=M: an open-ended needle's
 * value, chunked or not, written at N + 32 + K as it comes. 202 {"written", "crc32"} when the
 * body ends; the needle then holds the tail until its seal or abort (POST .../open/seal|abort).
 */
export function openRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const volume = parseVolumeId(req.getParameter(0));
  const query = new URLSearchParams(req.getQuery() ?? '');
  const body = new BodyQueue(res);
  const state = watchAbort(res, () => {
    if (!body.complete) body.fail(new StoreError('ABORTED', 'the client went away during the open needle'));
  });
  res.onData((chunk, last) => body.push(chunk, last, ctx.now()));
  let args: { offset: number; epoch: number; keyLength: number; metaLength: number };
  try {
    if (volume === null) throw new StoreError('BAD_ARGUMENT', 'the volume id must be an integer below 2^32');
    args = { offset: requireCount(query, 'offset'), epoch: requireCount(query, 'epoch'), keyLength: requireCount(query, 'key_length'), metaLength: requireCount(query, 'meta_length') };
  } catch (err) {
    answerError(res, state, 'BAD_ARGUMENT', (err as Error).message, {}, true);
    return body.fail(new StoreError('ABORTED', (err as Error).message));
  }
  const open = { ...args };
  answerBody({ res, state, ctx, body, volume, what: 'open needle', status: 202 }, async () => {
    const { drive } = await ctx.locate(volume);
    const ingest = await ctx.ask(drive, { t: MemberMsg.OpenBegin, volume, ...open });
    return feed(ctx, drive, ingest, body, () => ctx.ask(drive, { t: MemberMsg.OpenBodyEnd, ingest }));
  });
}

/**
 * POST /v1/volumes/{id}/open/seal?offset=N&epoch=E[&sync=1]: the body is the needle's header
 * and key, then its metadata and trailer; checked against the value received, written, synced.
 * 201 {"length"} (the volume's new length); 400 CHECKSUM_MISMATCH (cut back to N).
 */
export function sealRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const volume = parseVolumeId(req.getParameter(0));
  const query = new URLSearchParams(req.getQuery() ?? '');
  const state = watchAbort(res);
  void (async () => {
    const bytes = await smallBody(res, SEAL_MAX_BYTES);
    if (volume === null) throw new StoreError('BAD_ARGUMENT', 'the volume id must be an integer below 2^32');
    const offset = requireCount(query, 'offset');
    const epoch = requireCount(query, 'epoch');
    const { drive } = await ctx.locate(volume);
    const length = await ctx.ask(drive, { t: MemberMsg.OpenSeal, volume, offset, epoch, bytes, sync: query.get('sync') === '1' }, { timeoutMs: END_TIMEOUT_MS });
    return { length };
  })().then(
    (answer) => answerJson(res, state, 201, answer),
    (err: unknown) => ctx.fail(res, state, err, volume, codeOf(err) === 'SIZE_MISMATCH'),
  );
}

/**
 * POST /v1/volumes/{id}/open/abort?offset=N&epoch=E&tail=T: the master aborted the upload and
 * its tail moved to T; the member's does too (the value bytes received kept, as the master's).
 */
export function abandonRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const volume = parseVolumeId(req.getParameter(0));
  const query = new URLSearchParams(req.getQuery() ?? '');
  const state = watchAbort(res);
  void (async () => {
    if (volume === null) throw new StoreError('BAD_ARGUMENT', 'the volume id must be an integer below 2^32');
    const offset = requireCount(query, 'offset');
    const epoch = requireCount(query, 'epoch');
    const tail = requireCount(query, 'tail');
    const { drive } = await ctx.locate(volume);
    return { length: await ctx.ask(drive, { t: MemberMsg.OpenAbandon, volume, offset, epoch, tail }) };
  })().then(
    (answer) => answerJson(res, state, 200, answer),
    (err: unknown) => ctx.fail(res, state, err, volume),
  );
}

/** A seal's body: header + key (at most 32 + 64 KiB) and metadata + trailer (at most 16 KiB + 4). */
const SEAL_MAX_BYTES = 32 + 65_535 + 16 * 1024 + 4;

/** A short body, whole (at most `limit` bytes: SIZE_MISMATCH past it, and the connection closes). */
function smallBody(res: HttpResponse, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    res.onData((chunk, last) => {
      if (n < 0) return;
      n += chunk.byteLength;
      if (n > limit) {
        n = -1;
        return reject(new StoreError('SIZE_MISMATCH', `a seal of more than ${limit} bytes`));
      }
      parts.push(Buffer.from(chunk.slice(0))); // uWS reuses the chunk's memory after this call
      if (last) resolve(new Uint8Array(Buffer.concat(parts)));
    });
  });
}

/** POST /v1/volumes/{id}/copy?from=URL&start=S&end=T&epoch=E */
export function copyRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const volume = parseVolumeId(req.getParameter(0));
  const query = new URLSearchParams(req.getQuery() ?? '');
  const state = watchAbort(res);
  void (async () => {
    if (volume === null) throw new StoreError('BAD_ARGUMENT', 'the volume id must be an integer below 2^32');
    const start = requireCount(query, 'start');
    const end = requireCount(query, 'end');
    const epoch = requireCount(query, 'epoch');
    const from = peerUrl(query.get('from'));
    if (end < start) throw new StoreError('BAD_ARGUMENT', `end ${end} is before start ${start}`);
    if (end === start) return checkLength(ctx, volume, start);
    const peer = new PeerBody(ctx, from, `/v1/volumes/${volume}/raw?start=${start}&end=${end}`, end - start);
    try {
      return await ingestFrom(ctx, volume, start, epoch, true, peer);
    } finally {
      peer.close();
    }
  })().then(
    (ended) => answerJson(res, state, 200, ended),
    (err: unknown) => ctx.fail(res, state, err, volume),
  );
}

/** A copy of nothing: the volume's length must already be `start`. */
async function checkLength(ctx: VolumeContext, volume: number, start: number): Promise<IngestEnded> {
  const { state } = await ctx.locate(volume);
  if (state.length !== start) throw new StoreError('CONFLICT', `volume ${volume} has length ${state.length}, not ${start}`);
  return { offset: start, length: state.length, crc32: 0 };
}

/**
 * Streams a body into the drive that holds the volume as one ingest: begin (the offset and epoch
 * checked), chunks with at most MAX_CHUNKS_IN_FLIGHT unanswered, end (durable when `sync`). Any
 * failure aborts the ingest: the volume is cut back to the offset.
 */
async function ingestFrom(ctx: VolumeContext, volume: number, offset: number, epoch: number, sync: boolean, body: AsyncIterable<Uint8Array>, raw?: number): Promise<IngestEnded> {
  const { drive } = await ctx.locate(volume);
  const ingest = await ctx.ask(drive, raw === undefined ? { t: MemberMsg.IngestBegin, volume, offset, epoch } : { t: MemberMsg.IngestBegin, volume, offset, epoch, raw });
  return feed(ctx, drive, ingest, body, () => ctx.ask(drive, { t: MemberMsg.IngestEnd, ingest, sync }, { timeoutMs: END_TIMEOUT_MS }));
}

/**
 * The body's chunks to an open ingest, at most MAX_CHUNKS_IN_FLIGHT unanswered, then `end`. Any
 * failure aborts the ingest: the volume is cut back to its offset.
 */
async function feed<T>(ctx: VolumeContext, drive: number, ingest: number, body: AsyncIterable<Uint8Array>, end: () => Promise<T>): Promise<T> {
  const inFlight: Promise<unknown>[] = [];
  try {
    for await (const chunk of body) {
      if (inFlight.length >= MAX_CHUNKS_IN_FLIGHT) await inFlight.shift();
      const sent = sendChunk(ctx, drive, ingest, chunk);
      sent.catch(() => undefined); // awaited below; marked handled so a failure waits its turn
      inFlight.push(sent);
    }
    await Promise.all(inFlight);
    return await end();
  } catch (err) {
    await Promise.allSettled(inFlight);
    await ctx.ask(drive, { t: MemberMsg.IngestAbort, ingest }).catch(() => undefined);
    throw err;
  }
}

/** Sends a pool buffer (transferred) and takes it back from the reply for reuse. */
async function sendChunk(ctx: VolumeContext, drive: number, ingest: number, chunk: Uint8Array): Promise<void> {
  if (chunk.byteOffset !== 0 || chunk.buffer.byteLength !== streamChunks.size) throw new StoreError('INTERNAL', 'an ingest chunk must be a whole pool buffer');
  const buffer = chunk.buffer as ArrayBuffer;
  const reply = await ctx.askWithBlobs(drive, { t: MemberMsg.IngestChunk, ingest, length: chunk.length }, [buffer]);
  for (const b of reply) streamChunks.give(b);
}

/**
 * A 408 for a client that stops sending mid-body. The clock runs only while the server waits on
 * the client: not while the socket is paused for back-pressure, nor once the body is whole.
 */
function watchStall(body: BodyQueue, ctx: VolumeContext, onStall: () => void): { timer: ReturnType<typeof setTimeout> | undefined } {
  const watch: { timer: ReturnType<typeof setTimeout> | undefined } = { timer: undefined };
  body.lastChunkAt = ctx.now();
  const check = (): void => {
    if (body.complete || body.failed) return;
    const idle = ctx.now() - body.lastChunkAt;
    if (body.holding || idle < NO_PROGRESS_MS) {
      watch.timer = setTimeout(check, body.holding ? NO_PROGRESS_MS : NO_PROGRESS_MS - idle);
      return;
    }
    onStall();
  };
  watch.timer = setTimeout(check, NO_PROGRESS_MS);
  return watch;
}

/** `from` of a copy: an http URL of a peer (its origin is what is used). */
function peerUrl(text: string | null): URL {
  let url: URL | null = null;
  try {
    url = text === null ? null : new URL(text);
  } catch {
    url = null;
  }
  if (url === null || url.protocol !== 'http:') throw new StoreError('BAD_ARGUMENT', `from must be a peer's http://host:port, got ${JSON.stringify(text)}`);
  return url;
}

/**
 * A peer's raw range as 1 MiB pool buffers: GET with this server's own X-Brise-Auth, 200 and
 * exactly `length` bytes expected; no progress for NO_PROGRESS_MS drops it. Async iteration of
 * the response paces the peer (back-pressure reaches its socket).
 */
class PeerBody implements AsyncIterable<Uint8Array> {
  private request: http.ClientRequest | null = null;

  constructor(
    private readonly ctx: VolumeContext,
    private readonly origin: URL,
    private readonly target: string,
    private readonly length: number,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    const response = await this.open();
    let filling = new Uint8Array(streamChunks.take());
    let used = 0;
    let got = 0;
    try {
      for await (const part of response as AsyncIterable<Buffer>) {
        got += part.length;
        if (got > this.length) throw peerFailed(`the peer sent more than the ${this.length} bytes asked`);
        for (let at = 0; at < part.length; ) {
          const n = Math.min(filling.length - used, part.length - at);
          filling.set(part.subarray(at, at + n), used);
          used += n;
          at += n;
          if (used < filling.length) continue;
          yield filling;
          filling = new Uint8Array(streamChunks.take());
          used = 0;
        }
      }
    } catch (err) {
      throw err instanceof StoreError || err instanceof PeerFailed ? err : peerFailed(`the peer's answer broke off: ${(err as Error).message}`);
    }
    if (got !== this.length) throw peerFailed(`the peer sent ${got} of the ${this.length} bytes asked (it cut a bad needle, or went away)`);
    if (used > 0) yield filling.subarray(0, used);
  }

  close(): void {
    this.request?.destroy();
  }

  private open(): Promise<http.IncomingMessage> {
    const headers: Record<string, string> = {};
    const secret = this.ctx.config.secret;
    if (secret !== null) headers[AUTH_HEADER] = signVolumeRequest(secret, 'GET', this.target, this.ctx.now());
    return new Promise((resolve, reject) => {
      const req = http.get(new URL(this.target, this.origin), { agent: peerAgent, headers }, (response) => {
        if (response.statusCode === 200) return resolve(response);
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.length < 16 && chunks.push(c));
        response.on('end', () => reject(peerFailed(`the peer answered ${response.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`)));
        response.on('error', () => reject(peerFailed(`the peer answered ${response.statusCode}`)));
      });
      this.request = req;
      // An idle socket, while connecting or mid-answer: no progress, not a total time.
      req.setTimeout(NO_PROGRESS_MS, () => req.destroy(new Error(`no progress for ${NO_PROGRESS_MS / 1000} s`)));
      req.on('error', (err) => reject(peerFailed(`cannot read from the peer ${this.origin.origin}: ${err.message}`)));
    });
  }
}

/** A peer that failed to give its range: the volume server's own code (502), not a store error. */
class PeerFailed extends Error {
  readonly code = 'PEER_FAILED';
}

function peerFailed(message: string): PeerFailed {
  return new PeerFailed(message);
}
