// A remote-volume link: the master's one actor per volume server (docs/volume-server.md, "In
// the master"). Group writers push regions of their local volume files to it; it reads the
// bytes from the file itself (page cache, nothing large crosses a thread) and streams them to
// the server as raw appends at the offsets the group assigned. Readers ask it for needle bytes
// when their local member fails.
// Owns: the VolumeClient (a pool of keep-alive connections), a queue of regions per volume,
// read-only handles of the local volume files it sends from, the server's health.
// Invariants:
// - regions of one volume are sent in the order they were pushed, one request at a time (the
//   server takes bytes only at its tail); contiguous regions already written are sent as one;
// - a region is sent only as far as its bytes are written (Available); a streamed region waits
//   for them, for at most the no-progress timeout;
// - a failed request fails every region queued behind it on that volume: the group writer
//   marks the member stale at once instead of learning it region by region;
// - at most MAX_QUEUED regions wait per link (QUEUE_FULL past it);
// - an open-ended needle (PushOpen) is a region of its own, in its volume's order: its value is
//   sent as it is written, chunked, and its end (Seal or AbortOpen) ends the body; then its
//   header and trailer are sent (seal) or the server's tail moved as the local one (abort).
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { StoreError } from '../runtime/errors.js';
import { Reply } from '../runtime/peer.js';
import type { Timer } from '../runtime/scheduler.js';
import { VolumeFile } from '../storage/volume_file.js';
import { NEEDLE_HEADER_SIZE, NEEDLE_TRAILER_SIZE, VOLUME_SUPERBLOCK_SIZE, alignUp, decodeSuperblock, needleLength } from '../storage/volume_format.js';
import { LINK_PROTOCOL, LinkMsg, type LinkRequest, type LinkStatus } from '../protocol/link_protocol.js';
import { VolumeClient } from '../remote/volume_client.js';
import { assertNever } from './assert.js';

export interface VolumeLinkConfig {
  url: string;
  secret: string | null;
  epoch: number;
  /** No-progress timeout of a request (ms). */
  idleMs: number;
  /** Health check period (ms). */
  healthMs: number;
}

const MAX_QUEUED = 100_000;
/** Bytes of contiguous regions sent in one request. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
/** Read from the local file and written to the socket at most this much at a time. */
const CHUNK = 1024 * 1024;
const CONNECTIONS = 8;
/**
 * A health check is a few bytes, but the server's drives answer it between their writes (an
 * fdatasync of a large region may hold it): this long without an answer is a failed check, and
 * HEALTH_FAILURES of them in a row take the server for down.
 */
const HEALTH_TIMEOUT_MS = 5_000;
const HEALTH_FAILURES = 2;

interface Region {
  start: number;
  end: number;
  /** The local file holds this region's bytes up to here (a streamed needle grows). */
  available: number;
  sync: boolean;
  resolve: (length: number) => void;
  reject: (err: unknown) => void;
  /** Set for an open-ended needle (its end is unknown until it is sealed or aborted). */
  open?: OpenNeedle;
}

interface OpenNeedle {
  keyLength: number;
  metaLength: number;
  /** How it ended locally: value bytes written, and the needle's length (seal) or the tail (abort). */
  ended: { sealed: number } | { written: number; tail: number } | null;
  /** Its request has settled: the body stops waiting for bytes. */
  done: boolean;
}

interface Volume {
  id: number;
  path: string;
  file: VolumeFile | null;
  queue: Region[];
  sending: boolean;
  /** Woken when a region's `available` grows. */
  wake: (() => void) | null;
}

interface State {
  env: ActorEnv<VolumeLinkConfig>;
  client: VolumeClient;
  volumes: Map<number, Volume>;
  queued: number;
  status: LinkStatus;
  health: Timer;
  /** A health check is running (they never overlap). */
  checking: boolean;
  /** Health checks failed in a row. */
  failedChecks: number;
}

const createVolumeLink: ActorFactory<VolumeLinkConfig> = (env) => {
  const { config } = env;
  const client = new VolumeClient({ base: config.url, secret: config.secret, epoch: config.epoch, idleMs: config.idleMs, maxSockets: CONNECTIONS, now: () => env.clock.now() });
  const s: State = {
    env,
    client,
    volumes: new Map(),
    queued: 0,
    status: { url: config.url, up: false, since: env.clock.now(), lastError: null, pushedBytes: 0, readBytes: 0, queued: 0 },
    health: env.scheduler.every(config.healthMs, () => void checkHealth(s)),
    checking: false,
    failedChecks: 0,
  };
  void checkHealth(s);
  return {
    protocol: LINK_PROTOCOL,
    handle: (_from, body) => handle(s, body as LinkRequest),
    control: { status: () => ({ ...s.status, queued: s.queued }) },
    stop: () => stop(s),
  };
};
export default createVolumeLink;

function handle(s: State, msg: LinkRequest): unknown {
  switch (msg.t) {
    case LinkMsg.Push:
      return onPush(s, msg);
    case LinkMsg.Available:
      return onAvailable(s, msg.volume, msg.upTo);
    case LinkMsg.ReadNeedle:
      return onRead(s, msg);
    case LinkMsg.Stat:
      return s.client.stat(msg.volume).then(
        (st) => st?.length ?? -1,
        (err: unknown) => {
          throw failed(s, err);
        },
      );
    case LinkMsg.Truncate:
      return s.client.truncate(msg.volume, msg.length).catch((err: unknown) => {
        throw failed(s, err);
      });
    case LinkMsg.Status:
      return { ...s.status, queued: s.queued };
    case LinkMsg.PushOpen:
      return onPushOpen(s, msg);
    case LinkMsg.Seal:
      return onOpenEnded(s, msg.volume, msg.offset, { sealed: msg.length });
    case LinkMsg.AbortOpen:
      return onOpenEnded(s, msg.volume, msg.offset, { written: msg.written, tail: msg.tail });
    case LinkMsg.Remove:
      return s.client.remove(msg.volume).then(
        () => null,
        (err: unknown) => {
          if ((err as { code?: unknown }).code === 'NOT_FOUND') return null; // removed before
          throw failed(s, err);
        },
      );
    default:
      return assertNever(msg);
  }
}

function onPush(s: State, msg: Extract<LinkRequest, { t: typeof LinkMsg.Push }>): Promise<number> {
  if (s.queued >= MAX_QUEUED) throw new StoreError('QUEUE_FULL', `${s.status.url}: more than ${MAX_QUEUED} regions waiting`);
  const vol = volumeOf(s, msg.volume, msg.path);
  return new Promise<number>((resolve, reject) => {
    s.queued += 1;
    vol.queue.push({ start: msg.start, end: msg.end, available: msg.available, sync: msg.sync, resolve, reject });
    pump(s, vol);
  });
}

/** The volume's queue, made at its first region. */
function volumeOf(s: State, id: number, path: string): Volume {
  let v = s.volumes.get(id);
  if (v === undefined) {
    v = { id, path, file: null, queue: [], sending: false, wake: null };
    s.volumes.set(id, v);
  }
  return v;
}

/** An open-ended needle, queued behind the volume's regions; answered once sealed or aborted. */
function onPushOpen(s: State, msg: Extract<LinkRequest, { t: typeof LinkMsg.PushOpen }>): Promise<number> {
  if (s.queued >= MAX_QUEUED) throw new StoreError('QUEUE_FULL', `${s.status.url}: more than ${MAX_QUEUED} regions waiting`);
  const vol = volumeOf(s, msg.volume, msg.path);
  const open: OpenNeedle = { keyLength: msg.keyLength, metaLength: msg.metaLength, ended: null, done: false };
  return new Promise<number>((resolve, reject) => {
    s.queued += 1;
    vol.queue.push({ start: msg.offset, end: msg.offset, available: msg.offset, sync: true, resolve, reject, open });
    pump(s, vol);
  });
}

/** The open needle at `offset` ended locally: its body ends where its value does. */
function onOpenEnded(s: State, volume: number, offset: number, ended: NonNullable<OpenNeedle['ended']>): null {
  const v = s.volumes.get(volume);
  const r = v?.queue.find((x) => x.open !== undefined && x.start === offset);
  if (v === undefined || r?.open === undefined) return null; // it failed already: the member is stale
  r.open.ended = ended;
  r.end = 'tail' in ended ? ended.tail : alignUp(offset + ended.sealed);
  // Ended locally: every value byte is in the local file (the last growth said so already).
  r.available = Math.max(r.available, valueEndOf(r.open, offset)!);
  wakeSender(v);
  return null;
}

function wakeSender(v: Volume): void {
  const wake = v.wake;
  v.wake = null;
  wake?.();
}

/**
 * The local file holds bytes up to `upTo` of the region they belong to (a streamed needle grows;
 * an open one, whose end is unknown until it ends, takes any growth past its start). Each region
 * counts its own: a small append placed after an upload still streaming in is written at once,
 * and must not make the upload's unwritten bytes look written.
 */
function onAvailable(s: State, volume: number, upTo: number): null {
  const v = s.volumes.get(volume);
  if (v === undefined) return null;
  const r = v.queue.find((x) => x.start < upTo && (x.open === undefined ? upTo <= x.end : x.open.ended === null));
  if (r !== undefined && upTo > r.available) {
    r.available = upTo;
    wakeSender(v);
  }
  return null;
}

/** Sends the regions at the head of the volume's queue, one request at a time. */
function pump(s: State, v: Volume): void {
  if (v.sending || v.queue.length === 0) return;
  const batch = [v.queue[0]!];
  // Contiguous regions go as one request only when each is written whole (a streamed one that is
  // still coming goes alone, sent as far as it is written).
  const whole = (r: Region): boolean => r.open === undefined && r.available >= r.end;
  for (let i = 1; i < v.queue.length && whole(batch[0]!); i++) {
    const r = v.queue[i]!;
    if (!whole(r) || r.start !== batch[batch.length - 1]!.end || r.end - batch[0]!.start > MAX_BATCH_BYTES) break;
    batch.push(r);
  }
  v.sending = true;
  const start = batch[0]!.start;
  const sync = batch.some((r) => r.sync);
  const open = batch[0]!.open;
  const sent = open === undefined ? sendRegion(s, v, batch[0]!, start, batch[batch.length - 1]!.end, sync) : sendOpen(s, v, batch[0]!, open);
  void sent.then(
    (length) => {
      const end = batch[batch.length - 1]!.end;
      v.queue.splice(0, batch.length);
      s.queued -= batch.length;
      s.status.pushedBytes += end - start;
      for (const r of batch) r.resolve(length);
    },
    (err: unknown) => {
      // Every region behind a failed one would fail too (the server's tail is not where they go).
      const all = v.queue.splice(0);
      s.queued -= all.length;
      for (const r of all) r.reject(err);
    },
  ).finally(() => {
    v.sending = false;
    pump(s, v);
  });
}

async function sendRegion(s: State, v: Volume, head: Region, start: number, end: number, sync: boolean): Promise<number> {
  try {
    // A volume's first region: the server creates it first (with the same superblock). Asked
    // before the body, as a server answering 404 early to a large body cuts it (EPIPE here).
    if (start === VOLUME_SUPERBLOCK_SIZE) await s.client.create(v.id, createdAt(s, v));
    return await s.client.putRaw(v.id, start, end - start, regionBytes(s, v, head, start, end), sync);
  } catch (err) {
    throw failed(s, err);
  }
}

/**
 * An open needle: its value as it is written (chunked), then its seal (header and key, metadata
 * and trailer, read back from the local file, where finish wrote them) or its abort.
 */
async function sendOpen(s: State, v: Volume, r: Region, open: OpenNeedle): Promise<number> {
  const offset = r.start;
  try {
    if (offset === VOLUME_SUPERBLOCK_SIZE) await s.client.create(v.id, createdAt(s, v));
    const written = await s.client.putOpen(v.id, offset, open.keyLength, open.metaLength, openValue(s, v, r, open));
    const ended = open.ended;
    if (ended === null) throw new StoreError('INTERNAL', `volume ${v.id}: an open needle's body ended before the needle did`);
    if ('tail' in ended) return await s.client.abortOpen(v.id, offset, ended.tail);
    return await s.client.sealOpen(v.id, offset, sealOf(s, v, offset, open, written), true);
  } catch (err) {
    throw failed(s, err);
  } finally {
    open.done = true;
    wakeSender(v);
  }
}

/** The open needle's value bytes from the local file, as they are written, until it ends. */
async function* openValue(s: State, v: Volume, r: Region, open: OpenNeedle): AsyncGenerator<Uint8Array> {
  const file = localFile(s, v);
  const offset = r.start;
  const valueStart = offset + NEEDLE_HEADER_SIZE + open.keyLength;
  for (let at = valueStart; ; ) {
    const end = valueEndOf(open, offset);
    if (end !== null && at >= end) return;
    if (open.done) throw new StoreError('ABORTED', `volume ${v.id}: the open needle's request ended`);
    if (at >= r.available) {
      await moreWritten(s, v);
      continue;
    }
    const upTo = Math.min(end ?? Number.MAX_SAFE_INTEGER, r.available, at + CHUNK);
    const chunk = new Uint8Array(upTo - at);
    file.readRegion(chunk, at);
    at = upTo;
    yield chunk;
  }
}

/** Where the value of an ended open needle ends; null while it is open. */
function valueEndOf(open: OpenNeedle, offset: number): number | null {
  const ended = open.ended;
  if (ended === null) return null;
  const written = 'tail' in ended ? ended.written : ended.sealed - needleLength(open.keyLength, 0, open.metaLength);
  return offset + NEEDLE_HEADER_SIZE + open.keyLength + written;
}

/** The seal's body: header and key, then metadata and trailer, as the local file holds them. */
function sealOf(s: State, v: Volume, offset: number, open: OpenNeedle, written: number): Uint8Array {
  const head = NEEDLE_HEADER_SIZE + open.keyLength;
  const out = new Uint8Array(head + open.metaLength + NEEDLE_TRAILER_SIZE);
  const file = localFile(s, v);
  file.readRegion(out.subarray(0, head), offset);
  file.readRegion(out.subarray(head), offset + head + written);
  return out;
}

/**
 * The bytes [start, end) from the local file, each chunk once it is written there: a batch of
 * several regions is written whole; one region alone (a streamed needle) as far as its head is.
 */
async function* regionBytes(s: State, v: Volume, head: Region, start: number, end: number): AsyncGenerator<Uint8Array> {
  const file = localFile(s, v);
  const written = (): number => (head.available >= head.end ? end : head.available);
  for (let at = start; at < end; ) {
    if (at >= written()) {
      await moreWritten(s, v);
      continue;
    }
    const upTo = Math.min(end, written(), at + CHUNK);
    // A fresh buffer each time: the socket may still hold the last one when write() returns.
    const chunk = new Uint8Array(upTo - at);
    file.readRegion(chunk, at);
    at = upTo;
    yield chunk;
  }
}

function moreWritten(s: State, v: Volume): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = s.env.scheduler.after(s.env.config.idleMs, () => {
      if (v.wake === wake) v.wake = null; // a later waiter's wake stays (an abandoned body's timer)
      reject(new StoreError('TIMEOUT', `volume ${v.id}: no bytes written for ${s.env.config.idleMs} ms (the writer stopped)`));
    });
    const wake = (): void => {
      timer.cancel();
      resolve();
    };
    v.wake = wake;
  });
}

function localFile(s: State, v: Volume): VolumeFile {
  v.file ??= VolumeFile.open(s.env.fs, v.path, 'read');
  return v.file;
}

function createdAt(s: State, v: Volume): number {
  const sb = new Uint8Array(VOLUME_SUPERBLOCK_SIZE);
  localFile(s, v).readRegion(sb, 0);
  const decoded = decodeSuperblock(sb);
  if (decoded === null) throw new StoreError('CORRUPT', `${v.path}: bad superblock`);
  return decoded.createdAt;
}

async function onRead(s: State, msg: Extract<LinkRequest, { t: typeof LinkMsg.ReadNeedle }>): Promise<Reply> {
  try {
    const bytes = await s.client.readNeedle(msg.volume, msg.offset, msg.length, msg.from, msg.to);
    s.status.readBytes += bytes.length;
    // A real copy of exactly these bytes: a small Buffer is a view into Node's shared 8 KiB pool
    // (Buffer#slice would not copy, and the whole pool would be sent).
    const out = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    return new Reply(null, [out]);
  } catch (err) {
    throw failed(s, err);
  }
}

async function checkHealth(s: State): Promise<void> {
  if (s.checking) return;
  s.checking = true;
  try {
    await s.client.health(HEALTH_TIMEOUT_MS);
    s.failedChecks = 0;
    // Found (again): the server learns this master's epoch before anything else is asked of it,
    // so a master started earlier is refused from now on (STALE_EPOCH for this one if later).
    if (!s.status.up) await s.client.claim();
    setUp(s, true, null);
  } catch (err) {
    setUp(s, false, (err as Error).message);
    // A server that does not answer its health checks does not answer the rest either: what is
    // in flight fails now, and its group takes no write until the repair finds it back.
    if (++s.failedChecks >= HEALTH_FAILURES) s.client.abortAll(`no answer to ${s.failedChecks} health checks (${(err as Error).message})`);
  } finally {
    s.checking = false;
  }
}

/** A failure seen by a request: a connection-level one also marks the server down now. */
function failed(s: State, err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (code === 'UNAVAILABLE' || code === 'TIMEOUT') setUp(s, false, (err as Error).message);
  else s.status.lastError = (err as Error).message;
  return err;
}

function setUp(s: State, up: boolean, error: string | null): void {
  if (error !== null) s.status.lastError = error;
  if (s.status.up === up) return;
  s.status.up = up;
  s.status.since = s.env.clock.now();
}

function stop(s: State): void {
  s.health.cancel();
  for (const v of s.volumes.values()) {
    v.file?.close();
    for (const r of v.queue) r.reject(new StoreError('CLOSED', 'the link is stopping'));
    v.queue = [];
  }
  s.client.close();
}
