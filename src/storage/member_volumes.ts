// The volumes a volume server holds as a member of volume groups (docs/volume-server.md): any
// volume id, created when the master asks, appended only at the offsets the master names, read,
// cut back for repair, removed. It knows no keys: needles come as raw bytes (needle_ingest.ts).
//
// Invariants:
// - every write carries the master's epoch; one older than the highest seen is refused
//   (STALE_EPOCH), and a higher one is made durable (DIR/epoch, replaced atomically) before the
//   write it came with is answered;
// - a volume takes bytes only at its tail (CONFLICT with its length otherwise): members of a
//   group hold the same bytes at the same offsets;
// - after a crash every volume is cut back to its last whole, valid needle (cutTornTail), so a
//   volume's length is never past what an acknowledged append wrote;
// - `synced` is the length known durable: what a returning member may serve.
import { join } from 'node:path';
import type { Clock } from '../runtime/clock.js';
import type { Fs } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';
import { replaceFileAtomically, syncDirectory } from './atomic_file.js';
import { VOLUMES_DIR } from './drive_volumes.js';
import type { NeedleIngest } from './needle_ingest.js';
import type { RawIngest } from './raw_ingest.js';
import type { OpenIngest } from './open_ingest.js';
import { VolumeFile } from './volume_file.js';
import { parseVolumeFileName, volumeFileName } from './volume_format.js';

const EPOCH_FILE = 'epoch';

export interface MemberVolumeInfo {
  id: number;
  drive: string;
  length: number;
  syncedLength: number;
}

interface Held {
  file: VolumeFile;
  drive: string;
  synced: number;
}

export class MemberVolumes {
  private readonly volumes = new Map<number, Held>();
  private readonly unsynced = new Set<number>();
  private nextDrive = 0;

  private constructor(
    private readonly fs: Fs,
    private readonly drives: readonly string[],
    private readonly clock: Clock,
    private epochSeen: number,
  ) {}

  /** Opens every volume of every drive, each cut back to its last valid needle. */
  static open(fs: Fs, drives: readonly string[], clock: Clock): MemberVolumes {
    if (drives.length === 0) throw new StoreError('BAD_ARGUMENT', 'a volume server needs at least one drive');
    const store = new MemberVolumes(fs, drives, clock, readEpoch(fs, drives[0]!));
    for (const drive of drives) {
      const dir = join(drive, VOLUMES_DIR);
      fs.mkdir(dir);
      for (const name of fs.readdir(dir)) {
        const id = parseVolumeFileName(name);
        if (id === null) continue;
        if (store.volumes.has(id)) throw new StoreError('CORRUPT', `volume ${id} is on two drives (${store.volumes.get(id)!.drive} and ${drive})`);
        const file = VolumeFile.open(fs, join(dir, name), 'write');
        const length = file.cutTornTail();
        file.sync();
        store.volumes.set(id, { file, drive, synced: length });
      }
    }
    return store;
  }

  get epoch(): number {
    return this.epochSeen;
  }

  /** Fencing: a write from an older master is refused; a newer epoch is made durable first. */
  admit(epoch: number): void {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new StoreError('BAD_ARGUMENT', `bad epoch ${epoch}`);
    if (epoch < this.epochSeen) throw new StoreError('STALE_EPOCH', `epoch ${epoch} is older than ${this.epochSeen}: a newer master writes here`);
    if (epoch === this.epochSeen) return;
    replaceFileAtomically(this.fs, join(this.drives[0]!, EPOCH_FILE), new TextEncoder().encode(`${epoch}\n`));
    this.epochSeen = epoch;
  }

  /**
   * `createdAt` is the superblock's creation time: the master names it, so every member of a
   * group writes a byte-identical superblock (docs/volume-server.md).
   */
  create(id: number, epoch: number, createdAt: number = this.clock.now()): MemberVolumeInfo {
    this.admit(epoch);
    if (this.volumes.has(id)) throw new StoreError('CONFLICT', `volume ${id} exists`);
    const drive = this.drives[this.nextDrive++ % this.drives.length]!;
    const dir = join(drive, VOLUMES_DIR);
    const file = VolumeFile.create(this.fs, join(dir, volumeFileName(id)), id, createdAt);
    syncDirectory(this.fs, dir); // the new file's entry, before anything is acknowledged in it
    this.volumes.set(id, { file, drive, synced: file.tail });
    return this.info(id);
  }

  /** A needle's raw bytes at `offset` (the volume's tail, else CONFLICT naming its length). */
  ingest(id: number, offset: number, epoch: number): NeedleIngest {
    this.admit(epoch);
    const held = this.held(id);
    if (offset !== held.file.tail) throw new StoreError('CONFLICT', `volume ${id} has length ${held.file.tail}, not ${offset}`);
    this.unsynced.add(id);
    return held.file.ingestAt(offset);
  }

  /** A raw region of `length` bytes at `offset` (the volume's tail), CRC given back (raw_ingest.ts). */
  ingestRaw(id: number, offset: number, length: number, epoch: number): RawIngest {
    this.admit(epoch);
    const held = this.held(id);
    if (offset !== held.file.tail) throw new StoreError('CONFLICT', `volume ${id} has length ${held.file.tail}, not ${offset}`);
    this.unsynced.add(id);
    return held.file.rawIngestAt(offset, length);
  }

  /** An open-ended needle at `offset` (the volume's tail): value first, sealed later (open_ingest.ts). */
  ingestOpen(id: number, offset: number, epoch: number, keyLength: number, metaLength: number): OpenIngest {
    this.admit(epoch);
    const held = this.held(id);
    if (offset !== held.file.tail) throw new StoreError('CONFLICT', `volume ${id} has length ${held.file.tail}, not ${offset}`);
    this.unsynced.add(id);
    return held.file.openIngestAt(offset, keyLength, metaLength);
  }

  /** Makes every append so far durable (one fdatasync per written volume). */
  sync(): void {
    for (const id of [...this.unsynced]) {
      const held = this.volumes.get(id);
      this.unsynced.delete(id);
      if (held === undefined) continue;
      held.file.sync();
      held.synced = held.file.tail;
    }
  }

  truncate(id: number, length: number, epoch: number): MemberVolumeInfo {
    this.admit(epoch);
    const held = this.held(id);
    held.file.truncateTo(length);
    held.file.sync();
    held.synced = Math.min(held.synced, length);
    return this.info(id);
  }

  remove(id: number, epoch: number): void {
    this.admit(epoch);
    const held = this.held(id);
    held.file.close();
    this.fs.unlink(held.file.path);
    syncDirectory(this.fs, join(held.drive, VOLUMES_DIR));
    this.volumes.delete(id);
    this.unsynced.delete(id);
  }

  file(id: number): VolumeFile {
    return this.held(id).file;
  }

  info(id: number): MemberVolumeInfo {
    const held = this.held(id);
    return { id, drive: held.drive, length: held.file.tail, syncedLength: held.synced };
  }

  list(): MemberVolumeInfo[] {
    return [...this.volumes.keys()].sort((a, b) => a - b).map((id) => this.info(id));
  }

  close(): void {
    for (const held of this.volumes.values()) held.file.close();
    this.volumes.clear();
  }

  private held(id: number): Held {
    const held = this.volumes.get(id);
    if (held === undefined) throw new StoreError('NOT_FOUND', `no volume ${id} on this server`);
    return held;
  }
}

function readEpoch(fs: Fs, drive: string): number {
  const path = join(drive, EPOCH_FILE);
  if (!fs.exists(path)) return 0;
  const handle = fs.open(path, 'read');
  try {
    const buf = new Uint8Array(Math.min(64, handle.size()));
    handle.read(buf, 0);
    const n = Number(new TextDecoder().decode(buf).trim());
    if (!Number.isSafeInteger(n) || n < 0) throw new StoreError('CORRUPT', `${path}: not an epoch`);
    return n;
  } finally {
    handle.close();
  }
}
