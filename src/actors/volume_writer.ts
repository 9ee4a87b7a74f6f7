// The volume writer of one drive: the only thread that appends to that drive's volume files.
// Owns: the drive's open volumes (DriveVolumes) and the streams of values being uploaded.
// Invariants:
// - appends land in the order they arrive; a needle's bytes are durable (under the sync
//   policy) before the reply that gives its address, when the request asked for sync;
// - one fdatasync per drive per turn covers every append of that turn (group sync);
// - at most MAX_STREAMS uploads are open at once.
import { NodeFs } from '../runtime/fs.js';
import { systemClock } from '../runtime/clock.js';
import { runActor, type ActorContext } from '../runtime/actor.js';
import { PACK_BELOW, Reply } from '../runtime/peer.js';
import { DriveVolumes } from '../storage/drive_volumes.js';
import type { NeedleStream } from '../storage/volume_file.js';
import { type NeedleAddress } from '../storage/types.js';
import { VolumeMsg, type NeedleSpec, type VolumeListing, type VolumeRequest } from '../protocol/volume_protocol.js';
import type { SyncPolicy } from '../db/api.js';
import { assertNever } from './assert.js';
import { StoreError } from '../runtime/errors.js';

export interface VolumeWriterConfig {
  dir: string;
  slot: number;
  maxVolumeSize: number;
  sync: SyncPolicy;
}

const MAX_STREAMS = 1024;

interface State {
  drive: DriveVolumes;
  policy: SyncPolicy;
  streams: Map<number, NeedleStream>;
  nextStream: number;
  /** Callers waiting for the group sync of this turn. */
  syncWaiters: { resolve: () => void; reject: (err: unknown) => void }[];
}

let state: State | null = null;

function init(ctx: ActorContext): void {
  const config = ctx.config as VolumeWriterConfig;
  state = {
    drive: DriveVolumes.open(new NodeFs(), { dir: config.dir, slot: config.slot, maxVolumeSize: config.maxVolumeSize, clock: systemClock }),
    policy: config.sync,
    streams: new Map(),
    nextStream: 1,
    syncWaiters: [],
  };
  ctx.onControl({ stats: () => ({ volumes: live().drive.list(), streams: live().streams.size }) });
}

function onRequest(_from: string, body: unknown, blobs: ArrayBuffer[]): unknown {
  const msg = body as VolumeRequest;
  switch (msg.t) {
    case VolumeMsg.Append:
      return onAppend(msg.needles, blobs, msg.sync);
    case VolumeMsg.StreamBegin:
      return onStreamBegin(msg.key, msg.size, msg.expiresAt);
    case VolumeMsg.StreamChunk:
      return onStreamChunk(msg.stream, blobs);
    case VolumeMsg.StreamEnd:
      return onStreamEnd(msg.stream);
    case VolumeMsg.StreamAbort:
      return onStreamAbort(msg.stream);
    case VolumeMsg.Sync:
      return groupSync().then(() => null);
    case VolumeMsg.List:
      return onList();
    default:
      return assertNever(msg);
  }
}

/**
 * Appends, then hands the value buffers back (transferred): a thread that allocates little
 * rarely collects, so buffers left to die here would pile up (1 GB of pipelined 1 MB SETs grew
 * the process by as much); back in the front end they are reclaimed by its regular collections.
 */
async function onAppend(needles: NeedleSpec[], blobs: ArrayBuffer[], sync: boolean): Promise<Reply> {
  const s = live();
  if (blobs.length !== needles.length) {
    throw new StoreError('BAD_ARGUMENT', `append of ${needles.length} needles came with ${blobs.length} values`);
  }
  const addresses = needles.map((n, i) => s.drive.append(n.key, new Uint8Array(blobs[i]!), n.expiresAt, n.flags));
  if (sync) await groupSync();
  return new Reply(addresses, blobs.filter((b) => b.byteLength >= PACK_BELOW));
}

function onStreamBegin(key: Uint8Array, size: number, expiresAt: number): number {
  const s = live();
  if (s.streams.size >= MAX_STREAMS) throw new StoreError('QUEUE_FULL', `more than ${MAX_STREAMS} uploads open on this drive`);
  const id = s.nextStream++;
  s.streams.set(id, s.drive.reserve(key, size, expiresAt));
  return id;
}

/** Writes the chunk, then hands its buffer back (transferred) for the sender to reuse. */
function onStreamChunk(id: number, blobs: ArrayBuffer[]): Reply {
  const stream = streamOf(id);
  for (const blob of blobs) stream.write(new Uint8Array(blob));
  return new Reply(stream.written, blobs);
}

async function onStreamEnd(id: number): Promise<NeedleAddress> {
  const stream = streamOf(id);
  live().streams.delete(id);
  const address = stream.finish();
  await groupSync();
  return address;
}

function onStreamAbort(id: number): null {
  const s = live();
  const stream = s.streams.get(id);
  if (stream !== undefined) {
    s.streams.delete(id);
    stream.abort();
  }
  return null;
}

function onList(): VolumeListing[] {
  return live().drive.list();
}

/**
 * One fdatasync for every append of this turn: the first waiter schedules it with
 * setImmediate, so every request already decoded in this turn has written before it runs.
 */
function groupSync(): Promise<void> {
  const s = live();
  if (s.policy === 'none') return Promise.resolve();
  return new Promise((resolve, reject) => {
    s.syncWaiters.push({ resolve, reject });
    if (s.syncWaiters.length === 1) setImmediate(flushSync);
  });
}

function flushSync(): void {
  const s = live();
  const waiters = s.syncWaiters;
  s.syncWaiters = [];
  try {
    s.drive.sync();
  } catch (err) {
    for (const w of waiters) w.reject(err);
    return;
  }
  for (const w of waiters) w.resolve();
}

function stop(): void {
  const s = state;
  if (s === null) return;
  for (const stream of s.streams.values()) stream.abort();
  s.streams.clear();
  if (s.policy === 'always') s.drive.sync();
  s.drive.close();
  state = null;
}

function streamOf(id: number): NeedleStream {
  const stream = live().streams.get(id);
  if (stream === undefined) throw new StoreError('BAD_ARGUMENT', `no upload stream ${id} on this drive`);
  return stream;
}

function live(): State {
  if (state === null) throw new StoreError('CLOSED', 'volume writer is not running');
  return state;
}

runActor({ init, onRequest, stop });
