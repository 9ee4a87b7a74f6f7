// The writer of one drive of a volume server (docs/volume-server.md): the only writer of that
// drive's member volumes (MemberVolumes over this one drive, its epoch file on the drive, so
// fencing holds at every drive). It takes appends as ingests of raw needle bytes at the offsets
// the master names, cuts volumes back for repair, removes them, and reports their lengths.
// Owns: the drive's MemberVolumes, the open ingests, the waiters of this turn's group sync.
// Invariants:
// - a volume has at most one open ingest; truncate and remove wait for none (CONFLICT instead);
//   an open-ended needle (open_ingest.ts) stays an open ingest from its begin to its seal or
//   abort, its body's end included, so it holds the volume's tail all that time;
// - an ingest is answered at its end only once durable (when asked and the policy is always);
//   one fdatasync per drive per turn covers every append of that turn (group sync);
// - at most MAX_INGESTS_PER_DRIVE ingests are open; one left idle past INGEST_IDLE_MS (its
//   front end died) is aborted and its volume cut back;
// - appends not yet synced are synced within SYNC_EVERY_MS, so synced_length catches up.
import { statfsSync } from 'node:fs';
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { StoreError } from '../runtime/errors.js';
import { Reply } from '../runtime/peer.js';
import type { Timer } from '../runtime/scheduler.js';
import { GroupSync } from '../runtime/group_sync.js';
import { MemberVolumes, type MemberVolumeInfo } from '../storage/member_volumes.js';
import { RegionIngest } from '../storage/region_ingest.js';
import type { OpenIngest } from '../storage/open_ingest.js';
import type { SyncPolicy } from '../storage/types.js';
import {
  MAX_INGESTS_PER_DRIVE,
  MEMBER_PROTOCOL,
  MemberMsg,
  type DriveHealth,
  type IngestEnded,
  type MemberRequest,
  type OpenBodyEnded,
  type MemberVolumeState,
} from '../protocol/member_protocol.js';
import { assertNever } from './assert.js';

export interface MemberDriveConfig {
  dir: string;
  sync: SyncPolicy;
}

/** An ingest with no message this long is taken for abandoned (its front end's limit is 30 s). */
export const INGEST_IDLE_MS = 60_000;
const SWEEP_EVERY_MS = 5_000;
/** Appends not asked to sync are made durable this often (synced_length catches up). */
const SYNC_EVERY_MS = 1_000;

/** What an open append writes through: needles checked one by one, or a raw region. */
interface Ingest {
  readonly volume: number;
  readonly offset: number;
  readonly received: number;
  write(chunk: Uint8Array): void;
  /** The volume's new length and the CRC-32 of the body. */
  finish(): { length: number; crc32: number };
  abort(): void;
}

interface Held {
  region: Ingest;
  /** Set for an open-ended needle: the seal and the abandon find it by its volume. */
  open?: OpenIngest;
  touchedAt: number;
}

interface State {
  env: ActorEnv<MemberDriveConfig>;
  store: MemberVolumes;
  policy: SyncPolicy;
  ingests: Map<number, Held>;
  /** Volumes with an open ingest. */
  busy: Set<number>;
  nextIngest: number;
  dirty: boolean;
  syncs: GroupSync;
  timers: Timer[];
}

const createMemberDrive: ActorFactory<MemberDriveConfig> = (env) => {
  const { config } = env;
  const s: State = {
    env,
    store: MemberVolumes.open(env.fs, [config.dir], env.clock),
    policy: config.sync,
    ingests: new Map(),
    busy: new Set(),
    nextIngest: 1,
    dirty: false,
    syncs: new GroupSync(env.scheduler, () => flushDrive(s)),
    timers: [],
  };
  s.timers.push(env.scheduler.every(SWEEP_EVERY_MS, () => sweepIdle(s)));
  s.timers.push(
    env.scheduler.every(SYNC_EVERY_MS, () => {
      if (s.dirty) groupSync(s, true).catch(() => undefined);
    }),
  );
  return {
    protocol: MEMBER_PROTOCOL,
    handle: (_from, body, blobs) => handle(s, body as MemberRequest, blobs),
    invariants: () => invariants(s),
    control: { stats: () => ({ volumes: s.store.list(), ingests: s.ingests.size }) },
    stop: () => stop(s),
  };
};
export default createMemberDrive;

function handle(s: State, msg: MemberRequest, blobs: ArrayBuffer[]): unknown {
  switch (msg.t) {
    case MemberMsg.Create:
      return onCreate(s, msg.volume, msg.epoch, msg.createdAt);
    case MemberMsg.IngestBegin:
      return onIngestBegin(s, msg.volume, msg.offset, msg.epoch, msg.raw);
    case MemberMsg.IngestChunk:
      return onIngestChunk(s, msg.ingest, msg.length, blobs);
    case MemberMsg.IngestEnd:
      return onIngestEnd(s, msg.ingest, msg.sync);
    case MemberMsg.IngestAbort:
      return onIngestAbort(s, msg.ingest);
    case MemberMsg.Truncate:
      return onTruncate(s, msg.volume, msg.length, msg.epoch);
    case MemberMsg.Remove:
      return onRemove(s, msg.volume, msg.epoch);
    case MemberMsg.Stat:
      return stateOf(s, s.store.info(msg.volume));
    case MemberMsg.List:
      return s.store.list().map((v) => stateOf(s, v));
    case MemberMsg.Sync:
      return groupSync(s, true).then(() => null);
    case MemberMsg.Health:
      return onHealth(s);
    case MemberMsg.Admit:
      s.store.admit(msg.epoch);
      return s.store.epoch;
    case MemberMsg.OpenBegin:
      return onOpenBegin(s, msg.volume, msg.offset, msg.epoch, msg.keyLength, msg.metaLength);
    case MemberMsg.OpenBodyEnd:
      return onOpenBodyEnd(s, msg.ingest);
    case MemberMsg.OpenSeal:
      return onOpenSeal(s, msg.volume, msg.offset, msg.epoch, msg.bytes, msg.sync);
    case MemberMsg.OpenAbandon:
      return onOpenAbandon(s, msg.volume, msg.offset, msg.epoch, msg.tail);
    default:
      return assertNever(msg);
  }
}

function onCreate(s: State, volume: number, epoch: number, createdAt: number): MemberVolumeState {
  return stateOf(s, s.store.create(volume, epoch, createdAt));
}

function onIngestBegin(s: State, volume: number, offset: number, epoch: number, raw: number | undefined): number {
  checkRoom(s, volume);
  const region = raw === undefined ? new RegionIngest(s.store, volume, offset, epoch) : rawRegion(s, volume, offset, raw, epoch);
  return addIngest(s, { region, touchedAt: s.env.clock.now() });
}

function checkRoom(s: State, volume: number): void {
  if (s.ingests.size >= MAX_INGESTS_PER_DRIVE) throw new StoreError('QUEUE_FULL', `more than ${MAX_INGESTS_PER_DRIVE} appends in flight on this drive`);
  if (s.busy.has(volume)) throw new StoreError('CONFLICT', `volume ${volume}: another append is in progress`);
}

function addIngest(s: State, held: Held): number {
  const id = s.nextIngest++;
  s.ingests.set(id, held);
  s.busy.add(held.region.volume);
  return id;
}

/** An open-ended needle: its value comes as ingest chunks; it holds the tail until sealed or abandoned. */
function onOpenBegin(s: State, volume: number, offset: number, epoch: number, keyLength: number, metaLength: number): number {
  checkRoom(s, volume);
  const open = s.store.ingestOpen(volume, offset, epoch, keyLength, metaLength);
  const region: Ingest = {
    volume,
    offset,
    get received() {
      return open.received;
    },
    write: (chunk) => open.write(chunk),
    finish: () => {
      throw new StoreError('INTERNAL', 'an open needle ends with OpenBodyEnd, then a seal');
    },
    abort: () => open.abort(),
  };
  return addIngest(s, { region, open, touchedAt: s.env.clock.now() });
}

/** The body has ended: the needle stays open (and the tail held) until its seal or abandon. */
function onOpenBodyEnd(s: State, id: number): OpenBodyEnded {
  const held = ingestOf(s, id);
  if (held.open === undefined) throw new StoreError('INTERNAL', `append ${id} is not an open needle`);
  held.touchedAt = s.env.clock.now();
  try {
    return held.open.endBody();
  } catch (err) {
    closeIngest(s, id);
    held.open.abort();
    throw err;
  }
}

async function onOpenSeal(s: State, volume: number, offset: number, epoch: number, bytes: Uint8Array, sync: boolean): Promise<number> {
  const [id, open] = openAt(s, volume, offset, epoch);
  closeIngest(s, id);
  s.dirty = true;
  open.seal(bytes); // refused: cut back to the offset
  if (sync) await groupSync(s, false);
  return s.store.info(volume).length;
}

function onOpenAbandon(s: State, volume: number, offset: number, epoch: number, tail: number): number {
  const [id, open] = openAt(s, volume, offset, epoch);
  closeIngest(s, id);
  open.abandon(tail); // a tail its bytes do not make: cut back (CONFLICT)
  return s.store.info(volume).length;
}

/** The open needle of the volume at `offset`, its body ended; CONFLICT when there is none. */
function openAt(s: State, volume: number, offset: number, epoch: number): [number, OpenIngest] {
  s.store.admit(epoch);
  for (const [id, held] of s.ingests) {
    if (held.open === undefined || held.region.volume !== volume) continue;
    if (held.region.offset !== offset) break;
    if (!held.open.filled) throw new StoreError('CONFLICT', `volume ${volume}: the open needle at ${offset} is still receiving its value`);
    return [id, held.open];
  }
  throw new StoreError('CONFLICT', `volume ${volume}: no open needle at ${offset} waits for its end (aborted, timed out, or never begun)`);
}

/** Writes the chunk (checked as it goes), then hands its buffer back for the sender to reuse. */
function onIngestChunk(s: State, id: number, length: number, blobs: ArrayBuffer[]): Reply {
  const open = ingestOf(s, id);
  const blob = blobs[0];
  if (blobs.length !== 1 || blob === undefined || length > blob.byteLength) throw badChunk(s, id, 'an ingest chunk is one buffer holding its length');
  open.touchedAt = s.env.clock.now();
  s.dirty = true;
  try {
    open.region.write(new Uint8Array(blob, 0, length));
  } catch (err) {
    closeIngest(s, id);
    throw err;
  }
  return new Reply(open.region.received, blobs);
}

async function onIngestEnd(s: State, id: number, sync: boolean): Promise<IngestEnded> {
  const open = ingestOf(s, id);
  closeIngest(s, id);
  const { length, crc32 } = open.region.finish();
  if (sync) await groupSync(s, false);
  return { offset: open.region.offset, length, crc32 };
}

/** A raw region (storage/raw_ingest.ts) as an Ingest: its length is the offset plus what came. */
function rawRegion(s: State, volume: number, offset: number, length: number, epoch: number): Ingest {
  const raw = s.store.ingestRaw(volume, offset, length, epoch);
  return {
    volume,
    offset,
    get received() {
      return raw.written;
    },
    write: (chunk) => raw.write(chunk),
    finish: () => {
      const r = raw.finish();
      return { length: offset + r.length, crc32: r.crc32 >>> 0 };
    },
    abort: () => raw.abort(),
  };
}

function onIngestAbort(s: State, id: number): null {
  const open = s.ingests.get(id);
  if (open === undefined) return null; // already ended or refused
  closeIngest(s, id);
  open.region.abort();
  return null;
}

function onTruncate(s: State, volume: number, length: number, epoch: number): MemberVolumeState {
  if (s.busy.has(volume)) throw new StoreError('CONFLICT', `volume ${volume}: an append is in progress`);
  const now = s.store.info(volume).length;
  if (length > now) throw new StoreError('BAD_ARGUMENT', `volume ${volume} has length ${now}; it cannot be cut to ${length}`);
  return stateOf(s, s.store.truncate(volume, length, epoch));
}

function onRemove(s: State, volume: number, epoch: number): null {
  if (s.busy.has(volume)) throw new StoreError('CONFLICT', `volume ${volume}: an append is in progress`);
  s.store.remove(volume, epoch);
  return null;
}

function onHealth(s: State): DriveHealth {
  let freeBytes = -1;
  try {
    const st = statfsSync(s.env.config.dir);
    freeBytes = st.bavail * st.bsize;
  } catch {
    // unknown: the drive may be gone; the volumes' own errors will say so
  }
  return { dir: s.env.config.dir, volumes: s.store.list().length, freeBytes, epoch: s.store.epoch };
}

/** Aborts ingests whose front end stopped talking (it died, or lost the request). */
function sweepIdle(s: State): void {
  const now = s.env.clock.now();
  for (const [id, open] of [...s.ingests]) {
    if (now - open.touchedAt < INGEST_IDLE_MS) continue;
    closeIngest(s, id);
    try {
      open.region.abort();
    } catch {
      // the volume is failing; its next write says so
    }
  }
}

/**
 * One fdatasync for every append of this turn: the first waiter defers it to the end of the
 * turn, so every request already decoded in this turn has written before it runs. Under the
 * policy none, only the background sync (`always`) runs one.
 */
function groupSync(s: State, always: boolean): Promise<void> {
  if (s.policy === 'none' && !always) return Promise.resolve();
  return s.syncs.wait();
}

/** The group's one sync: what was dirty before it is durable after it. */
function flushDrive(s: State): void {
  s.dirty = false;
  s.store.sync();
}

function closeIngest(s: State, id: number): void {
  const open = s.ingests.get(id);
  if (open === undefined) return;
  s.ingests.delete(id);
  s.busy.delete(open.region.volume);
}

function badChunk(s: State, id: number, why: string): StoreError {
  onIngestAbort(s, id);
  return new StoreError('BAD_ARGUMENT', why);
}

function ingestOf(s: State, id: number): Held {
  const open = s.ingests.get(id);
  if (open === undefined) throw new StoreError('ABORTED', `no append ${id} open on this drive (ended, refused or timed out)`);
  return open;
}

function stateOf(s: State, v: MemberVolumeInfo): MemberVolumeState {
  return { id: v.id, length: v.length, syncedLength: v.syncedLength, epoch: s.store.epoch, path: s.store.file(v.id).path, drive: v.drive };
}

function invariants(s: State): void {
  if (s.ingests.size > MAX_INGESTS_PER_DRIVE) throw new Error(`${s.ingests.size} ingests open (limit ${MAX_INGESTS_PER_DRIVE})`);
  if (s.busy.size !== s.ingests.size) throw new Error(`${s.busy.size} busy volumes for ${s.ingests.size} ingests`);
}

function stop(s: State): void {
  for (const t of s.timers) t.cancel();
  for (const open of s.ingests.values()) {
    try {
      open.region.abort();
    } catch {
      // stopping anyway: a torn tail is cut at the next start
    }
  }
  s.ingests.clear();
  s.busy.clear();
  s.store.sync();
  s.store.close();
}
