// The volume writer of one drive: the only writer of that drive's volume files, and the writer
// of the volume group the drive holds (one member today). It assigns each needle its place
// (volume, offset) once and writes it there (DriveVolumes.appendAt): the step a group of
// several members repeats on each of them.
// Owns: the drive's open volumes (DriveVolumes) and the streams of values being uploaded.
// Invariants:
// - appends land in the order they arrive; a needle's bytes are durable (under the sync
//   policy) before the reply that gives its address, when the request asked for sync;
// - one fdatasync per drive per turn covers every append of that turn (group sync);
// - at most MAX_STREAMS uploads are open at once.
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { StoreError } from '../runtime/errors.js';
import { PACK_BELOW, Reply } from '../runtime/peer.js';
import { DriveVolumes } from '../storage/drive_volumes.js';
import type { NeedleStream } from '../storage/volume_file.js';
import { MAX_VALUE_LENGTH, alignUp, needleLength } from '../storage/volume_format.js';
import type { NeedleAddress, SyncPolicy } from '../storage/types.js';
import { UNKNOWN_SIZE, VOLUME_PROTOCOL, VolumeMsg, type NeedleSpec, type VolumeListing, type VolumeRequest } from '../protocol/volume_protocol.js';
import { assertNever } from './assert.js';

export interface VolumeWriterConfig {
  /** The drive this writer owns. */
  dir: string;
  /** The volume group the drive holds (today each group is one drive). */
  group: number;
  maxVolumeSize: number;
  sync: SyncPolicy;
}

const MAX_STREAMS = 1024;

interface State {
  env: ActorEnv<VolumeWriterConfig>;
  drive: DriveVolumes;
  policy: SyncPolicy;
  streams: Map<number, NeedleStream>;
  /**
   * Garbage bytes per volume seen by this writer: aborted uploads and discarded needles (writes
   * whose record did not apply). Counted from start-up only; recovering it at restart is the
   * accounting of issue 13 (vacuum).
   */
  garbage: Map<number, number>;
  nextStream: number;
  /** Callers waiting for the group sync of this turn (a flush is scheduled while non-empty). */
  syncWaiters: { resolve: () => void; reject: (err: unknown) => void }[];
}

const createVolumeWriter: ActorFactory<VolumeWriterConfig> = (env) => {
  const { config } = env;
  const s: State = {
    env,
    drive: DriveVolumes.open(env.fs, { dir: config.dir, group: config.group, maxVolumeSize: config.maxVolumeSize, clock: env.clock }),
    policy: config.sync,
    streams: new Map(),
    garbage: new Map(),
    nextStream: 1,
    syncWaiters: [],
  };
  return {
    protocol: VOLUME_PROTOCOL,
    handle: (_from, body, blobs) => handle(s, body as VolumeRequest, blobs),
    invariants: () => invariants(s),
    control: { stats: () => ({ volumes: s.drive.list(), streams: s.streams.size }) },
    stop: () => stop(s),
  };
};
export default createVolumeWriter;

function handle(s: State, msg: VolumeRequest, blobs: ArrayBuffer[]): unknown {
  switch (msg.t) {
    case VolumeMsg.Append:
      return onAppend(s, msg.needles, blobs, msg.sync);
    case VolumeMsg.StreamBegin:
      return onStreamBegin(s, msg.key, msg.size, msg.expiresAt, msg.meta ?? 0);
    case VolumeMsg.StreamChunk:
      return onStreamChunk(s, msg.stream, blobs);
    case VolumeMsg.StreamEnd:
      return onStreamEnd(s, msg.stream, msg.meta);
    case VolumeMsg.StreamAbort:
      return onStreamAbort(s, msg.stream);
    case VolumeMsg.Sync:
      return groupSync(s).then(() => null);
    case VolumeMsg.List:
      return onList(s);
    case VolumeMsg.Discard:
      return onDiscard(s, msg.needles);
    default:
      return assertNever(msg);
  }
}

/**
 * Appends, then hands the value buffers back (transferred): a thread that allocates little
 * rarely collects, so buffers left to die here would pile up (1 GB of pipelined 1 MB SETs grew
 * the process by as much); back in the front end they are reclaimed by its regular collections.
 */
async function onAppend(s: State, needles: NeedleSpec[], blobs: ArrayBuffer[], sync: boolean): Promise<Reply> {
  if (blobs.length !== needles.length) {
    throw new StoreError('BAD_ARGUMENT', `append of ${needles.length} needles came with ${blobs.length} values`);
  }
  const addresses = needles.map((n, i) => {
    const value = new Uint8Array(blobs[i]!);
    const at = s.drive.place(needleLength(n.key.length, value.length));
    return s.drive.appendAt(at, n.key, value, n.expiresAt, n.flags);
  });
  if (sync) await groupSync(s);
  return new Reply(addresses, blobs.filter((b) => b.byteLength >= PACK_BELOW));
}

function onStreamBegin(s: State, key: Uint8Array, size: number, expiresAt: number, metaLength: number): number {
  if (s.streams.size >= MAX_STREAMS) throw new StoreError('QUEUE_FULL', `more than ${MAX_STREAMS} uploads open on this drive`);
  const id = s.nextStream++;
  const stream = size === UNKNOWN_SIZE
    ? s.drive.reserveOpen(key, expiresAt, MAX_VALUE_LENGTH, metaLength)
    : s.drive.reserveAt(s.drive.place(needleLength(key.length, size, metaLength)), key, size, expiresAt, metaLength);
  s.streams.set(id, stream);
  return id;
}

/** Writes the chunk, then hands its buffer back (transferred) for the sender to reuse. */
function onStreamChunk(s: State, id: number, blobs: ArrayBuffer[]): Reply {
  const stream = streamOf(s, id);
  for (const blob of blobs) stream.write(new Uint8Array(blob));
  return new Reply(stream.written, blobs);
}

async function onStreamEnd(s: State, id: number, meta: Uint8Array | undefined): Promise<NeedleAddress> {
  const stream = streamOf(s, id);
  s.streams.delete(id);
  const address = stream.finish(meta);
  await groupSync(s);
  return address;
}

function onStreamAbort(s: State, id: number): null {
  const stream = s.streams.get(id);
  if (stream !== undefined) {
    s.streams.delete(id);
    stream.abort();
    addGarbage(s, stream.address.volume, stream.address.length);
  }
  return null;
}

function onDiscard(s: State, needles: { volume: number; length: number }[]): null {
  for (const n of needles) addGarbage(s, n.volume, n.length);
  return null;
}

/** A needle's whole region (padding included) counts: that is what a vacuum gives back. */
function addGarbage(s: State, volume: number, length: number): void {
  if (s.drive.file(volume) === undefined) return; // not ours (a stale report): ignore
  s.garbage.set(volume, (s.garbage.get(volume) ?? 0) + alignUp(length));
}

function onList(s: State): VolumeListing[] {
  return s.drive.list().map((v) => ({ ...v, garbageBytes: s.garbage.get(v.id) ?? 0 }));
}

/**
 * One fdatasync for every append of this turn: the first waiter defers it to the end of the
 * turn, so every request already decoded in this turn has written before it runs.
 */
function groupSync(s: State): Promise<void> {
  if (s.policy === 'none') return Promise.resolve();
  return new Promise((resolve, reject) => {
    s.syncWaiters.push({ resolve, reject });
    if (s.syncWaiters.length === 1) s.env.scheduler.defer(() => flushSync(s));
  });
}

function flushSync(s: State): void {
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

function invariants(s: State): void {
  if (s.streams.size > MAX_STREAMS) throw new Error(`${s.streams.size} streams open (limit ${MAX_STREAMS})`);
  if (s.policy === 'none' && s.syncWaiters.length > 0) throw new Error('sync waiters under sync policy none');
  s.drive.checkInvariants();
}

function stop(s: State): void {
  for (const stream of s.streams.values()) stream.abort();
  s.streams.clear();
  if (s.policy === 'always') s.drive.sync();
  s.drive.close();
}

function streamOf(s: State, id: number): NeedleStream {
  const stream = s.streams.get(id);
  if (stream === undefined) throw new StoreError('BAD_ARGUMENT', `no upload stream ${id} on this drive`);
  return stream;
}
