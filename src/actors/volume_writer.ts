// The writer of a volume group: the only writer of the group's volume files on its local drive,
// and the one that sends the same bytes to the group's remote members (group_members.ts). It
// assigns each needle its place (volume, offset) once, writes it there on the local drive
// (DriveVolumes.appendAt), then has every remote member take the same region at the same
// offset; it answers only when every member has it.
// Owns: the group's open volumes on the drive (DriveVolumes), the streams of values being
// uploaded, the remote members' states.
// Invariants:
// - appends land in the order they arrive; a needle's bytes are durable (under the sync
//   policy) before the reply that gives its address, when the request asked for sync;
// - one fdatasync per drive per turn covers every append of that turn (group sync);
// - at most MAX_STREAMS uploads are open at once;
// - with remote members: a write starts only when every member is healthy (DEGRADED before a
//   byte is written otherwise), and its answer waits for every member.
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { StoreError } from '../runtime/errors.js';
import { PACK_BELOW, Reply } from '../runtime/peer.js';
import { GroupSync } from '../runtime/group_sync.js';
import { DriveVolumes } from '../storage/drive_volumes.js';
import { VolumeFile, type NeedleStream } from '../storage/volume_file.js';
import { MAX_VALUE_LENGTH, NEEDLE_HEADER_SIZE, alignUp, needleLength } from '../storage/volume_format.js';
import type { NeedleAddress, SyncPolicy } from '../storage/types.js';
import { UNKNOWN_SIZE, VOLUME_PROTOCOL, VolumeMsg, type NeedleSpec, type StrandedNeedle, type VolumeListing, type VolumeRequest } from '../protocol/volume_protocol.js';
import { assertNever } from './assert.js';
import { GroupMembers } from './group_members.js';

export interface VolumeWriterConfig {
  /** The drive this writer owns. */
  dir: string;
  /** The volume group the drive holds (today each group is one drive). */
  group: number;
  maxVolumeSize: number;
  sync: SyncPolicy;
  /** The group's remote members: the link actor of each, and its server's URL. */
  remotes?: { name: string; url: string }[];
}

const MAX_STREAMS = 1024;
/** Volumes removed in one message (each a DELETE on every remote member). */
const MAX_REMOVE = 256;
/**
 * In a replicated group, uploads from this size on go to a stream volume of their own: members
 * take a volume's regions in order, so a slow upload in the current volume would hold every
 * write placed after it until its last byte came.
 */
const APART_FROM = 1024 * 1024;
/** An adopted needle is copied this much at a time. */
const ADOPT_CHUNK = 1024 * 1024;

interface Upload {
  stream: NeedleStream;
  /** Sent to the members as they come (sized: a region; open-ended: an open needle, sealed at its end). */
  replicated: Promise<void> | null;
  /** Open-ended (a chunked upload): the members are told its end (seal or abort). */
  open: boolean;
  /** Where its value starts in the volume (after header and key). */
  valueStart: number;
}

interface State {
  env: ActorEnv<VolumeWriterConfig>;
  drive: DriveVolumes;
  policy: SyncPolicy;
  streams: Map<number, Upload>;
  members: GroupMembers;
  /** Appends between their first byte and their answer (repair waits for none). */
  appending: number;
  nextStream: number;
  /** One fdatasync per turn for every append that waits on it. */
  syncs: GroupSync;
}

const createVolumeWriter: ActorFactory<VolumeWriterConfig> = (env) => {
  const { config } = env;
  const s: State = {
    env,
    drive: DriveVolumes.open(env.fs, { dir: config.dir, group: config.group, maxVolumeSize: config.maxVolumeSize, clock: env.clock }),
    policy: config.sync,
    streams: new Map(),
    members: new GroupMembers(env, config.group, config.remotes ?? [], { list: () => s.drive.list(), busy: () => s.appending > 0 || s.streams.size > 0 }, (e) => env.main.send(e)),
    appending: 0,
    nextStream: 1,
    syncs: new GroupSync(env.scheduler, () => s.drive.sync()),
  };
  return {
    protocol: VOLUME_PROTOCOL,
    handle: (_from, body, blobs) => handle(s, body as VolumeRequest, blobs),
    invariants: () => invariants(s),
    control: { stats: () => ({ volumes: s.drive.list(), streams: s.streams.size, members: s.members.status() }) },
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
    case VolumeMsg.Members:
      return s.members.status();
    case VolumeMsg.Adopt:
      return onAdopt(s, msg.path, msg.address);
    case VolumeMsg.Mirror:
      return onMirror(s, msg.volume, msg.offset, msg.bytes, msg.sync);
    case VolumeMsg.Seal:
      return onSeal(s, msg.volume);
    case VolumeMsg.Remove:
      return onRemove(s, msg.volumes);
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
  s.members.checkWritable();
  const addresses = s.drive.appendMany(needles.map((n, i) => ({ key: n.key, value: new Uint8Array(blobs[i]!), expiresAt: n.expiresAt, flags: n.flags })));
  s.appending += 1;
  try {
    // Every member takes the same regions; the local sync runs beside them.
    const local = sync ? groupSync(s) : Promise.resolve();
    await Promise.all([local, ...regionsOf(addresses).map((r) => s.members.replicate(r.volume, pathOf(s, r.volume), r.start, r.end, r.end))]);
  } finally {
    s.appending -= 1;
  }
  return new Reply(addresses, blobs.filter((b) => b.byteLength >= PACK_BELOW));
}

/** The contiguous regions needles were written to, one per volume (a batch may rotate once). */
function regionsOf(addresses: readonly NeedleAddress[]): { volume: number; start: number; end: number }[] {
  const out: { volume: number; start: number; end: number }[] = [];
  for (const a of addresses) {
    const last = out[out.length - 1];
    const end = alignUp(a.offset + a.length);
    if (last !== undefined && last.volume === a.volume && last.end === a.offset) last.end = end;
    else out.push({ volume: a.volume, start: a.offset, end });
  }
  return out;
}

function pathOf(s: State, volume: number): string {
  const file = s.drive.file(volume);
  if (file === undefined) throw new StoreError('INTERNAL', `volume ${volume} is not on this drive`);
  return file.path;
}

function onStreamBegin(s: State, key: Uint8Array, size: number, expiresAt: number, metaLength: number): number {
  if (s.streams.size >= MAX_STREAMS) throw new StoreError('QUEUE_FULL', `more than ${MAX_STREAMS} uploads open on this drive`);
  s.members.checkWritable();
  const id = s.nextStream++;
  const stream = size === UNKNOWN_SIZE
    ? s.drive.reserveOpen(key, expiresAt, MAX_VALUE_LENGTH, metaLength)
    : s.members.size > 0 && size >= APART_FROM
      ? s.drive.reserveApart(key, size, expiresAt, metaLength) // a slow upload holds no later write
      : s.drive.reserveAt(s.drive.place(needleLength(key.length, size, metaLength)), key, size, expiresAt, metaLength);
  const a = stream.address;
  const valueStart = a.offset + NEEDLE_HEADER_SIZE + key.length;
  let replicated: Promise<void> | null = null;
  if (size === UNKNOWN_SIZE && s.members.size > 0) {
    // Teed as it is written: the value first, its header and trailer at the seal (onStreamEnd).
    replicated = s.members.replicateOpen(a.volume, pathOf(s, a.volume), a.offset, key.length, metaLength);
    replicated.catch(() => undefined); // awaited at the end; a failure meanwhile is not unhandled
  } else if (s.members.size > 0) {
    // Sent to the members as it is written: the header is written already.
    replicated = s.members.replicate(a.volume, pathOf(s, a.volume), a.offset, alignUp(a.offset + a.length), valueStart);
    replicated.catch(() => undefined); // awaited at the end; a failure meanwhile is not unhandled
  }
  s.streams.set(id, { stream, replicated, open: size === UNKNOWN_SIZE, valueStart });
  return id;
}

/** Writes the chunk, then hands its buffer back (transferred) for the sender to reuse. */
function onStreamChunk(s: State, id: number, blobs: ArrayBuffer[]): Reply {
  const upload = uploadOf(s, id);
  for (const blob of blobs) upload.stream.write(new Uint8Array(blob));
  if (upload.replicated !== null) s.members.grow(upload.stream.address.volume, upload.valueStart + upload.stream.written);
  return new Reply(upload.stream.written, blobs);
}

/**
 * The upload's end: durable locally and on every member, or stranded (whole and durable here,
 * but a member did not take it): the caller has another group adopt it rather than lose an
 * upload whose body cannot be sent again.
 */
async function onStreamEnd(s: State, id: number, meta: Uint8Array | undefined): Promise<NeedleAddress | StrandedNeedle> {
  const upload = uploadOf(s, id);
  const address = upload.stream.finish(meta);
  try {
    const end = alignUp(address.offset + address.length);
    const replicated = upload.replicated ?? (s.members.size > 0 ? s.members.replicate(address.volume, pathOf(s, address.volume), address.offset, end, end) : null);
    if (upload.replicated !== null && upload.open) s.members.sealOpen(address.volume, address.offset, address.length);
    else if (upload.replicated !== null) s.members.grow(address.volume, end);
    const [local, remote] = await Promise.allSettled([groupSync(s), replicated]);
    if (local.status === 'rejected') throw local.reason; // the local drive failed: nothing to keep
    if (remote.status === 'rejected') {
      return { stranded: address, path: pathOf(s, address.volume), error: (remote.reason as Error).message ?? String(remote.reason) };
    }
  } finally {
    s.streams.delete(id);
  }
  return address;
}

/**
 * Copies a whole needle of another group's local volume file into this group, checked as a
 * member checks one it receives (header, lengths, CRC), then has the members take it: the
 * needle's bytes say nothing of where they are, so they move as they are. Synchronous copy (a
 * rare path: a member lost at the end of an upload), holding this group's writes meanwhile.
 */
async function onAdopt(s: State, path: string, from: NeedleAddress): Promise<NeedleAddress> {
  s.members.checkWritable();
  const source = VolumeFile.open(s.env.fs, path, 'read');
  let address: NeedleAddress;
  try {
    const ingest = s.drive.ingestAt(s.drive.place(from.length));
    const buf = new Uint8Array(Math.min(from.length, ADOPT_CHUNK));
    try {
      for (let at = 0; at < from.length; at += buf.length) {
        const part = buf.subarray(0, Math.min(buf.length, from.length - at));
        source.readRegion(part, from.offset + at);
        ingest.write(part);
      }
      address = ingest.finish();
    } catch (err) {
      ingest.abort();
      throw err;
    }
  } finally {
    source.close();
  }
  s.appending += 1;
  try {
    const end = alignUp(address.offset + address.length);
    await Promise.all([groupSync(s), s.members.replicate(address.volume, pathOf(s, address.volume), address.offset, end, end)]);
  } finally {
    s.appending -= 1;
  }
  return address;
}

function onStreamAbort(s: State, id: number): null {
  const upload = s.streams.get(id);
  if (upload !== undefined) {
    s.streams.delete(id);
    upload.stream.abort();
    const a = upload.stream.address;
    // The members take the region as it is (garbage), so their tails stay the local one.
    if (upload.replicated !== null && upload.open) s.members.abortOpen(a.volume, a.offset, upload.stream.written, alignUp(a.offset + a.length));
    else if (upload.replicated !== null) s.members.grow(a.volume, alignUp(a.offset + a.length));
    else if (s.members.size > 0 && a.length > 0) void s.members.replicate(a.volume, pathOf(s, a.volume), a.offset, alignUp(a.offset + a.length), alignUp(a.offset + a.length)).catch(() => undefined);
  }
  return null;
}

/** A replica's copy of its master's bytes: written at the tail; with `sync`, durable (group fsync) when answered. */
async function onMirror(s: State, volume: number, offset: number, bytes: Uint8Array, sync: boolean): Promise<number> {
  const length = s.drive.mirror(volume, offset, bytes);
  if (sync) await groupSync(s);
  return length;
}

/**
 * Vacuum: the volume takes no new needle (a stream volume being written to is sealed on a later
 * try: BUSY). Answers the uploads still writing into it, reserved before the seal.
 */
function onSeal(s: State, volume: number): { uploads: number } {
  if (!s.drive.seal(volume)) throw new StoreError('BUSY', `volume ${volume} is taking an upload now; the vacuum tries again`);
  let uploads = 0;
  for (const u of s.streams.values()) if (u.stream.address.volume === volume) uploads++;
  return { uploads };
}

/**
 * Vacuum: the retired volumes' files go, here (made durable by a sync) and on every remote
 * member (best effort: a member that cannot be reached keeps a file no entry names, removed
 * when a later vacuum asks again).
 */
async function onRemove(s: State, volumes: number[]): Promise<{ removed: number[]; errors: string[] }> {
  if (s.members.size > 0 && volumes.length > MAX_REMOVE) throw new StoreError('BAD_ARGUMENT', `at most ${MAX_REMOVE} volumes per removal`);
  const removed = volumes.filter((v) => s.drive.remove(v));
  if (removed.length > 0) s.drive.sync();
  const errors = await s.members.remove(volumes);
  return { removed, errors };
}

function onList(s: State): VolumeListing[] {
  return s.drive.list();
}

/**
 * One fdatasync for every append of this turn: the first waiter defers it to the end of the
 * turn, so every request already decoded in this turn has written before it runs.
 */
function groupSync(s: State): Promise<void> {
  if (s.policy === 'none') return Promise.resolve();
  return s.syncs.wait();
}

function invariants(s: State): void {
  if (s.streams.size > MAX_STREAMS) throw new Error(`${s.streams.size} streams open (limit ${MAX_STREAMS})`);
  if (s.policy === 'none' && s.syncs.pending > 0) throw new Error('sync waiters under sync policy none');
  s.drive.checkInvariants();
}

function stop(s: State): void {
  s.members.stop();
  for (const upload of s.streams.values()) upload.stream.abort();
  s.streams.clear();
  if (s.policy === 'always') s.drive.sync();
  s.drive.close();
}

function uploadOf(s: State, id: number): Upload {
  const upload = s.streams.get(id);
  if (upload === undefined) throw new StoreError('BAD_ARGUMENT', `no upload stream ${id} on this drive`);
  return upload;
}
