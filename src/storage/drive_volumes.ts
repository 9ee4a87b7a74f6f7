// All volumes of ONE volume group held on ONE local drive (the data dir or an extra drive),
// owned by that drive's volume-writer actor: appends and streams needles into the newest
// volume, rotates at maxVolumeSize, and makes writes durable in sync().
//
// Invariants:
// - files live in <dir>/volumes and are named by id; ids are volumeIdOf(group, seq) with seq
//   rising, so a group's writer never needs to coordinate with another one;
// - a needle is written at the offset the group names for it, and only there: appendAt()
//   refuses any other offset, so every member of a group holds a needle at the same offset;
// - one volume, the current one, takes needles of known length; older ones stay open for reads
//   and for streams that were reserved in them before the rotation;
// - a needle of unknown length (a chunked upload) streams into a volume of its own kind, a
//   stream volume, which takes one such needle at a time at its tail, so that a long upload
//   never holds up the current volume; stream volumes are reused one upload after another, so
//   their number follows the uploads in flight, not the uploads ever made. After a restart the
//   volume with the highest id is the current one, whichever kind it was;
// - a sealed volume (vacuum) is never the newest, in memory or on disk: seal() rotates past it and
//   makes the new volume's entry durable, so a removed volume's id is never given again and a
//   retired volume never takes needles again after a crash;
// - a needle is durable when sync() returns: every volume written since the last sync is
//   fdatasynced; a volume's directory entry is durable from its creation, so the file cannot
//   vanish in a crash under an acknowledged needle (synced here, or carried by its WAL record);
// - a failed sync fences the drive: every later write and sync fails (never retry-and-ack).
import { join } from 'node:path';
import type { Clock } from '../runtime/clock.js';
import type { Fs } from '../runtime/fs.js';
import type { NeedleAddress } from './types.js';
import { syncDirectory } from './atomic_file.js';
import {
  MAX_GROUP_ID,
  MAX_VALUE_LENGTH,
  MAX_VOLUME_SEQ,
  VOLUME_SUPERBLOCK_SIZE,
  alignUp,
  decodeSuperblock,
  groupOfVolume,
  needleLength,
  parseVolumeFileName,
  volumeFileName,
  volumeIdOf,
  volumeSeqOf,
} from './volume_format.js';
import type { NeedleIngest } from './needle_ingest.js';
import { APPEND_RUN_MAX, VolumeFile, checkNeedleArgs, ioError, type NeedleStream, type NeedleToAppend } from './volume_file.js';
import { StoreError } from '../runtime/errors.js';

export const VOLUMES_DIR = 'volumes';

/** The drive of each local volume group, by group id. */
export type VolumeDirs = ReadonlyMap<number, string>;

/** The file of a volume on its group's local drive; undefined when the group has none here. */
export function volumeFilePath(dirs: VolumeDirs, volume: number): string | undefined {
  const dir = Number.isInteger(volume) && volume >= 0 ? dirs.get(groupOfVolume(volume)) : undefined;
  return dir === undefined ? undefined : join(dir, VOLUMES_DIR, volumeFileName(volume));
}
/** Smallest maxVolumeSize accepted: a superblock and one small needle. */
export const MIN_VOLUME_SIZE = 256;

export interface DriveOptions {
  /** The drive root; volume files live in <dir>/volumes. */
  dir: string;
  /** The volume group this drive holds (the high bits of its volume ids). */
  group: number;
  maxVolumeSize: number;
  clock: Clock;
}

export class DriveVolumes {
  private readonly volumes = new Map<number, VolumeFile>();
  private readonly unsynced = new Set<VolumeFile>();
  /** Directories whose entries changed since the last sync (volumes/ after a creation). */
  private readonly dirtyDirs = new Set<string>();
  private fenced: string | null = null;
  private closed = false;
  /** Stream volumes: each takes one open-ended needle at a time (busy while it streams). */
  private readonly streamVolumes = new Set<VolumeFile>();
  /** Stream volumes holding a sized upload now (reserveApart): no other upload goes there. */
  private readonly apartBusy = new Set<VolumeFile>();

  private constructor(
    private readonly fs: Fs,
    private readonly options: DriveOptions,
    private readonly volumesDir: string,
    private current: VolumeFile,
  ) {}

  static open(fs: Fs, options: DriveOptions): DriveVolumes {
    checkOptions(options);
    const volumesDir = join(options.dir, VOLUMES_DIR);
    // The directory entries of files found here may never have been synced: a process (or an
    // actor) that died after creating a volume and before its first sync leaves one that a
    // power loss would take away with every needle later written into it. So an open syncs the
    // volumes/ folder and its parent, once, before the first append (which may not sync: a
    // redo needle).
    const dirty: string[] = [options.dir, volumesDir];
    fs.mkdir(volumesDir);
    const files = openExisting(fs, volumesDir, options.group, dirty);
    let last = files[files.length - 1];
    if (last === undefined) {
      last = VolumeFile.create(fs, join(volumesDir, volumeFileName(volumeIdOf(options.group, 0))), volumeIdOf(options.group, 0), options.clock.now());
      files.push(last);
    }
    const drive = new DriveVolumes(fs, options, volumesDir, last);
    for (const f of files) drive.volumes.set(f.id, f);
    for (const d of dirty) drive.dirtyDirs.add(d);
    drive.syncDirs(`open of drive ${options.dir}`);
    return drive;
  }

  /**
   * Where the next needle of `length` bytes goes: the current volume's tail, after a rotation
   * when it would pass maxVolumeSize (an oversized needle gets a volume of its own). The group
   * assigns this once; every member then writes there (appendAt, reserveAt).
   */
  place(length: number): { volume: number; offset: number } {
    this.checkUsable();
    const target = this.roomFor(length);
    return { volume: target.id, offset: target.tail };
  }

  append(key: Uint8Array, value: Uint8Array, expiresAt: number, flags = 0): NeedleAddress {
    checkNeedleArgs(key, value.length, expiresAt, flags);
    return this.appendAt(this.place(needleLength(key.length, value.length)), key, value, expiresAt, flags);
  }

  /** Appends at the place the group named; CONFLICT when this drive's volume is not there. */
  appendAt(at: { volume: number; offset: number }, key: Uint8Array, value: Uint8Array, expiresAt: number, flags = 0): NeedleAddress {
    this.checkUsable();
    const target = this.writableVolume(at.volume);
    this.unsynced.add(target);
    return target.appendAt(at.offset, key, value, expiresAt, flags);
  }

  /**
   * Needles at the tail in order, as place() and appendAt() one by one would put them (the same
   * rotations), written in runs of at most APPEND_RUN_MAX bytes, one write each.
   */
  appendMany(needles: readonly NeedleToAppend[]): NeedleAddress[] {
    const out: NeedleAddress[] = [];
    let i = 0;
    while (i < needles.length) {
      const first = needles[i]!;
      const at = this.place(needleLength(first.key.length, first.value.length));
      // The run: what place() would put right after, in the same volume, within one write.
      let end = at.offset + needleLength(first.key.length, first.value.length);
      let j = i + 1;
      for (; j < needles.length; j++) {
        const length = needleLength(needles[j]!.key.length, needles[j]!.value.length);
        const next = alignUp(end) + length;
        if (next - at.offset > APPEND_RUN_MAX || alignUp(end) + length > this.options.maxVolumeSize) break;
        end = next;
      }
      const target = this.writableVolume(at.volume);
      this.unsynced.add(target);
      // A needle alone goes as appendAt writes it (a large value is not copied into a batch).
      if (j === i + 1) out.push(target.appendAt(at.offset, first.key, first.value, first.expiresAt, first.flags));
      else out.push(...target.appendMany(at.offset, needles.slice(i, j)));
      i = j;
    }
    return out;
  }

  /** A whole needle received as raw bytes at the place the group named (checked: NeedleIngest). */
  ingestAt(at: { volume: number; offset: number }): NeedleIngest {
    this.checkUsable();
    const target = this.writableVolume(at.volume);
    this.unsynced.add(target);
    return target.ingestAt(at.offset);
  }

  reserve(key: Uint8Array, valueLength: number, expiresAt: number): NeedleStream {
    checkNeedleArgs(key, valueLength, expiresAt, 0);
    return this.reserveAt(this.place(needleLength(key.length, valueLength)), key, valueLength, expiresAt);
  }

  reserveAt(at: { volume: number; offset: number }, key: Uint8Array, valueLength: number, expiresAt: number, metaLength = 0): NeedleStream {
    this.checkUsable();
    const target = this.writableVolume(at.volume);
    this.unsynced.add(target);
    return new TrackedStream(target.reserveAt(at.offset, key, valueLength, expiresAt, metaLength), () => this.unsynced.add(target));
  }

  /**
   * A needle whose length is known only when its last byte arrives, up to maxValueLength: in a
   * stream volume that no other upload is using (a new one when all are busy or full).
   */
  reserveOpen(key: Uint8Array, expiresAt: number, maxValueLength: number, metaLength = 0): NeedleStream {
    this.checkUsable();
    checkNeedleArgs(key, 0, expiresAt, 0);
    let target = [...this.streamVolumes].find((v) => !v.streaming && !this.apartBusy.has(v) && v.tail < this.options.maxVolumeSize);
    if (target === undefined) {
      target = this.createVolume(this.nextVolumeId(), false);
      this.streamVolumes.add(target);
    }
    // Not marked unsynced while it streams: the group syncs of other writes must not wait for a
    // 1 GB upload's dirty pages. Its own end (finish) marks it, and the sync that follows makes
    // it durable before its record is written.
    const file = target;
    const inner = file.reserveOpen(key, expiresAt, Math.min(maxValueLength, MAX_VALUE_LENGTH), metaLength);
    return new TrackedStream(inner, () => undefined, () => this.unsynced.add(file));
  }

  /**
   * A needle of known length in a stream volume no other upload is using (a new one when all
   * are busy or full), as reserveOpen: in a replicated group, whose members take a volume's
   * regions one after another, an upload that may be slow must not hold up the small writes
   * placed after it in the current volume. Not marked unsynced until it ends (see reserveOpen).
   */
  reserveApart(key: Uint8Array, valueLength: number, expiresAt: number, metaLength = 0): NeedleStream {
    this.checkUsable();
    checkNeedleArgs(key, valueLength, expiresAt, 0);
    const length = needleLength(key.length, valueLength, metaLength);
    let target = [...this.streamVolumes].find((v) => !v.streaming && !this.apartBusy.has(v) && v.tail + length <= this.options.maxVolumeSize);
    if (target === undefined) {
      target = this.createVolume(this.nextVolumeId(), false);
      this.streamVolumes.add(target);
    }
    const file = target;
    const inner = file.reserveAt(file.tail, key, valueLength, expiresAt, metaLength);
    this.apartBusy.add(file);
    return new TrackedStream(inner, () => undefined, () => this.unsynced.add(file), () => this.apartBusy.delete(file));
  }

  /**
   * A replica's copy of its master's volume bytes (docs/replica.md): `bytes` at `offset`, which
   * must be the volume's tail (CONFLICT otherwise). At offset 0 the bytes begin with the
   * master's superblock: the volume is created from it, replacing one this drive made empty at
   * start. Durable at the next sync(), as an append.
   */
  mirror(volumeId: number, offset: number, bytes: Uint8Array): number {
    this.checkUsable();
    if (groupOfVolume(volumeId) !== this.options.group) {
      throw new StoreError('BAD_ARGUMENT', `volume ${volumeId} is not of group ${this.options.group}`);
    }
    const target = offset === 0 ? this.createMirrored(volumeId, bytes) : this.mirrorTarget(volumeId);
    const rest = offset === 0 ? bytes.subarray(VOLUME_SUPERBLOCK_SIZE) : bytes;
    const at = offset === 0 ? VOLUME_SUPERBLOCK_SIZE : offset;
    if (target.tail !== at) throw new StoreError('CONFLICT', `volume ${volumeId} is ${target.tail} bytes here; the master sent bytes at ${at}`);
    if (rest.length > 0) {
      const ingest = target.rawIngestAt(at, rest.length);
      ingest.write(rest);
      ingest.finish();
    }
    this.unsynced.add(target);
    if (volumeId > this.current.id) {
      this.streamVolumes.delete(target);
      this.current = target;
    }
    return target.tail;
  }

  /** The volume as created from the master's superblock (an empty one made here at start is replaced). */
  private createMirrored(volumeId: number, bytes: Uint8Array): VolumeFile {
    const sb = bytes.length >= VOLUME_SUPERBLOCK_SIZE ? decodeSuperblock(bytes.subarray(0, VOLUME_SUPERBLOCK_SIZE)) : null;
    if (sb === null || sb.volumeId !== volumeId) throw new StoreError('CORRUPT', `the master's bytes of volume ${volumeId} do not begin with its superblock`);
    const existing = this.volumes.get(volumeId);
    if (existing !== undefined) {
      if (existing.tail > VOLUME_SUPERBLOCK_SIZE) throw new StoreError('CONFLICT', `volume ${volumeId} is ${existing.tail} bytes here; the master sent bytes at 0`);
      existing.close();
      this.volumes.delete(volumeId);
      this.unsynced.delete(existing);
      this.fs.unlink(existing.path);
    }
    const file = VolumeFile.create(this.fs, join(this.volumesDir, volumeFileName(volumeId)), volumeId, sb.createdAt);
    this.volumes.set(volumeId, file);
    if (existing === this.current) this.current = file;
    this.dirtyDirs.add(this.volumesDir);
    return file;
  }

  /** An existing volume, opened for writing if it was opened read-only (a sealed one here). */
  private mirrorTarget(volumeId: number): VolumeFile {
    const file = this.volumes.get(volumeId);
    if (file === undefined) throw new StoreError('CONFLICT', `volume ${volumeId} does not exist here; the master sent bytes past its start`);
    if (file.writable) return file;
    file.close();
    const reopened = openChecked(this.fs, file.path, volumeId, 'write');
    this.volumes.set(volumeId, reopened);
    if (this.current === file) this.current = reopened;
    return reopened;
  }

  /**
   * Vacuum: `volumeId` takes no new needle from now on. A stream volume leaves the pool unless an
   * upload is writing into it now (false: try again later); the current volume, or a stream
   * volume newer than it, is rotated away from (a new one becomes current). Older volumes are
   * sealed already.
   *
   * A sealed volume is never the newest, now or after a crash: after a restart the newest volume
   * takes needles again, and once a sealed volume is removed, a newest one's id would be given
   * again by the next rotation; either way needles would go into a volume the index has retired,
   * and every write placed there would be refused. So the new volume's directory entry is made
   * durable before the seal is answered (its superblock is synced at its creation).
   */
  seal(volumeId: number): boolean {
    this.checkUsable();
    const file = this.volumes.get(volumeId);
    if (file === undefined) throw new StoreError('NOT_FOUND', `drive ${this.options.dir}: no volume ${volumeId}`);
    if (this.streamVolumes.has(file)) {
      if (file.streaming || this.apartBusy.has(file)) return false;
      this.streamVolumes.delete(file);
    }
    if (file.id >= this.current.id) this.rotate();
    this.syncDirs(`seal of volume ${volumeId}`);
    return true;
  }

  /**
   * Vacuum: removes a sealed volume's file (the index retired it: no entry points into it). The
   * current volume and the stream volumes are refused (BUSY). False when it was not here. The
   * directory entry's removal is made durable with the next sync(); a removal lost in a crash
   * only leaves a retired volume that the next vacuum removes again.
   */
  remove(volumeId: number): boolean {
    this.checkUsable();
    const file = this.volumes.get(volumeId);
    if (file === undefined) return false;
    if (file === this.current || this.streamVolumes.has(file)) {
      throw new StoreError('BUSY', `drive ${this.options.dir}: volume ${volumeId} takes needles; seal it first`);
    }
    // Unlinked first: if this is the last handle, its close frees the blocks, off this thread.
    this.volumes.delete(volumeId);
    this.unsynced.delete(file);
    this.fs.unlink(file.path);
    file.closeInBackground();
    this.dirtyDirs.add(this.volumesDir);
    return true;
  }

  /** Makes every needle written so far durable. A failure fences the drive for good. */
  sync(): void {
    this.checkUsable();
    try {
      for (const file of [...this.unsynced]) {
        file.sync();
        this.unsynced.delete(file);
      }
    } catch (err) {
      this.fence(err, `sync of drive ${this.options.dir}`);
    }
    this.syncDirs(`sync of drive ${this.options.dir}`);
  }

  /** sealed: takes no new needle (neither the current volume nor a stream volume). */
  list(): { id: number; path: string; sizeBytes: number; sealed: boolean }[] {
    return [...this.volumes.values()].map((v) => ({ id: v.id, path: v.path, sizeBytes: v.tail, sealed: v !== this.current && !this.streamVolumes.has(v) }));
  }

  /** Throws when the drive's bookkeeping breaks its rules (checked after every message in tests). */
  checkInvariants(): void {
    if (this.volumes.get(this.current.id) !== this.current) throw new Error(`current volume ${this.current.id} is not among the open volumes`);
    if (this.streamVolumes.has(this.current)) throw new Error(`current volume ${this.current.id} is a stream volume`);
    for (const [id, file] of this.volumes) {
      if (id > this.current.id && !this.streamVolumes.has(file)) throw new Error(`volume ${id} is newer than the current volume ${this.current.id}`);
    }
    for (const f of this.streamVolumes) {
      if (this.volumes.get(f.id) !== f) throw new Error(`stream volume ${f.id} is not open`);
    }
    for (const f of this.unsynced) {
      if (this.volumes.get(f.id) !== f) throw new Error(`unsynced volume ${f.id} is not open`);
    }
  }

  file(volumeId: number): VolumeFile | undefined {
    return this.volumes.get(volumeId);
  }

  /** Closes every volume. Unsynced writes are not synced here: call sync() first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const v of this.volumes.values()) v.close();
  }

  /**
   * Only the current volume takes needles; an older one is sealed. A newer volume of this group
   * is created when the group names it (a member follows the rotation its group decided).
   */
  private writableVolume(volumeId: number): VolumeFile {
    if (volumeId === this.current.id) return this.current;
    if (volumeId > this.current.id && groupOfVolume(volumeId) === this.options.group) return this.createVolume(volumeId);
    throw new StoreError('CONFLICT', `drive ${this.options.dir}: volume ${volumeId} does not take needles (the current volume of group ${this.options.group} is ${this.current.id})`);
  }

  private roomFor(length: number): VolumeFile {
    const cur = this.current;
    if (cur.tail > VOLUME_SUPERBLOCK_SIZE && cur.tail + length > this.options.maxVolumeSize) this.rotate();
    return this.current;
  }

  private rotate(): void {
    this.createVolume(this.nextVolumeId(), true);
  }

  /** The id after every volume of this group (current and stream volumes alike). */
  private nextVolumeId(): number {
    let last = this.current.id;
    for (const id of this.volumes.keys()) last = Math.max(last, id);
    const seq = volumeSeqOf(last) + 1;
    if (seq > MAX_VOLUME_SEQ) {
      throw new StoreError('NO_SPACE', `drive ${this.options.dir} has used all ${MAX_VOLUME_SEQ + 1} volume ids of group ${this.options.group}`);
    }
    return volumeIdOf(this.options.group, seq);
  }

  /**
   * A new volume (the current one, or a stream volume), its directory entry durable at once: a
   * needle appended without sync (a redo needle of its WAL record) is acknowledged with no
   * sync of this drive, and a restart's redo writes needles only into volumes that are there
   * (a missing one was retired and removed).
   */
  private createVolume(id: number, current = true): VolumeFile {
    const file = VolumeFile.create(this.fs, join(this.volumesDir, volumeFileName(id)), id, this.options.clock.now());
    this.volumes.set(id, file);
    if (current) this.current = file;
    this.dirtyDirs.add(this.volumesDir);
    this.syncDirs(`creation of volume ${id}`);
    return file;
  }

  /** Makes the directories whose entries changed durable (new and removed volumes). */
  private syncDirs(what: string): void {
    try {
      for (const dir of [...this.dirtyDirs]) {
        syncDirectory(this.fs, dir);
        this.dirtyDirs.delete(dir);
      }
    } catch (err) {
      this.fence(err, what);
    }
  }

  /** A failed sync is final: the drive refuses every later write and sync. */
  private fence(err: unknown, what: string): never {
    const e = ioError(err, what);
    this.fenced = e.message;
    throw new StoreError('IO_ERROR', `${e.message}; drive ${this.options.dir} refuses writes from now on`);
  }

  private checkUsable(): void {
    if (this.closed) throw new StoreError('CLOSED', `drive ${this.options.dir} is closed`);
    if (this.fenced !== null) throw new StoreError('IO_ERROR', `drive ${this.options.dir} is fenced after a failed sync: ${this.fenced}`);
  }
}

/**
 * Re-marks its volume unsynced on every write, so a sync between chunks cannot miss one (or only
 * at the end, `touchAtEnd`, for a stream volume's needle: see reserveOpen).
 */
class TrackedStream implements NeedleStream {
  constructor(
    private readonly inner: NeedleStream,
    private readonly touch: () => void,
    private readonly touchAtEnd: () => void = touch,
    /** Once it has ended (finished or aborted). */
    private readonly ended: () => void = () => undefined,
  ) {}

  get address(): NeedleAddress {
    return this.inner.address;
  }

  get written(): number {
    return this.inner.written;
  }

  write(chunk: Uint8Array): void {
    this.touch();
    this.inner.write(chunk);
  }

  finish(meta?: Uint8Array): NeedleAddress {
    this.touchAtEnd();
    const address = this.inner.finish(meta);
    this.ended();
    return address;
  }

  abort(): void {
    this.touch();
    this.inner.abort();
    this.ended();
  }
}

function checkOptions(o: DriveOptions): void {
  if (!Number.isInteger(o.group) || o.group < 0 || o.group > MAX_GROUP_ID) {
    throw new StoreError('BAD_ARGUMENT', `volume group out of range: ${o.group}`);
  }
  if (!Number.isSafeInteger(o.maxVolumeSize) || o.maxVolumeSize < MIN_VOLUME_SIZE || o.maxVolumeSize > MAX_VALUE_LENGTH) {
    throw new StoreError('BAD_ARGUMENT', `max volume size out of range: ${o.maxVolumeSize}`);
  }
}

/**
 * Opens this group's volumes in id order: all for read, the last for write. A last file whose
 * superblock is bad and that holds nothing past it is a creation torn by a crash (no needle
 * in it was ever acknowledged, since the superblock is synced first): it is removed. Any other
 * bad volume is CORRUPT, never silently dropped.
 */
function openExisting(fs: Fs, volumesDir: string, group: number, dirty: string[]): VolumeFile[] {
  const ids = fs.readdir(volumesDir)
    .map(parseVolumeFileName)
    .filter((id): id is number => id !== null && groupOfVolume(id) === group)
    .sort((a, b) => a - b);
  const files: VolumeFile[] = [];
  try {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const path = join(volumesDir, volumeFileName(id));
      const isLast = i === ids.length - 1;
      if (isLast && isTornCreation(fs, path)) {
        fs.unlink(path);
        dirty.push(volumesDir);
        break;
      }
      files.push(openChecked(fs, path, id, 'read'));
    }
    reopenLastForWrite(fs, files);
  } catch (err) {
    for (const f of files) f.close();
    throw err;
  }
  return files;
}

function reopenLastForWrite(fs: Fs, files: VolumeFile[]): void {
  const last = files.pop();
  if (last === undefined) return;
  last.close();
  files.push(openChecked(fs, last.path, last.id, 'write'));
}

function openChecked(fs: Fs, path: string, id: number, mode: 'read' | 'write'): VolumeFile {
  const file = VolumeFile.open(fs, path, mode);
  if (file.id !== id) {
    file.close();
    throw new StoreError('CORRUPT', `${path}: its superblock says volume ${file.id}`);
  }
  return file;
}

function isTornCreation(fs: Fs, path: string): boolean {
  try {
    VolumeFile.open(fs, path, 'read').close();
    return false;
  } catch (err) {
    if (!(err instanceof StoreError) || err.code !== 'CORRUPT') throw err;
  }
  const handle = fs.open(path, 'read');
  try {
    return handle.size() <= VOLUME_SUPERBLOCK_SIZE;
  } finally {
    handle.close();
  }
}
