// A replica's full resync (docs/replica.md, "Full resync"), done while its store is closed: the
// data dir is emptied and filled from the master's stream: the volume bytes as they come, the
// WAL as the master's (its snapshot chunks, then its records, with the master's LSNs), the
// registry of the master's volume groups, and the master's history. The store then opens on
// it (the index is rebuilt from the WAL) and follows from its last LSN.
//
// Invariants:
// - DATA/resync exists from before the first file is removed until every file is durable: a
//   replica that finds it at start resyncs again, so a crash mid-way never leaves a store that
//   looks whole and is not;
// - the WAL is written as wal.log.tmp and renamed in only when complete and synced;
// - a volume takes bytes only at its end (the master sends each volume in order from 0).
import { dirname, join } from 'node:path';
import { StoreError } from '../runtime/errors.js';
import type { FileHandle, Fs } from '../runtime/fs.js';
import { replaceFileAtomically, syncDirectory } from '../storage/atomic_file.js';
import { VOLUMES_DIR } from '../storage/drive_volumes.js';
import { HISTORY_FILE, saveHistory, type History } from '../storage/history.js';
import { REGISTRY_FILE, registryOf, saveRegistry } from '../storage/registry.js';
import { INDEX_FILE, RESYNC_MARKER, WAL_FILE } from '../storage/store_files.js';
import { groupOfVolume, parseVolumeFileName, volumeFileName } from '../storage/volume_format.js';
import { encodeRecord, encodeWalHeader } from '../storage/wal_format.js';
import { syncParent } from '../storage/wal_writer.js';
import type { WalRecord } from '../storage/types.js';
import { FrameKind, recordOf } from '../protocol/replica_protocol.js';
import type { MasterLink } from '../remote/replica_client.js';

/** Files of a store's data dir that a resync replaces (and their .tmp/.heads companions). */
const STORE_FILES = [WAL_FILE, INDEX_FILE, REGISTRY_FILE, HISTORY_FILE, 'epoch'];

export interface ResyncResult {
  lastLsn: number;
  history: History;
  bytes: number;
}

/**
 * Receives a full copy from `link` (which answered FULLRESYNC up to `until`) into `dataDir` and
 * `drives` (the data dir first). Resolves once it is durable; the link is then closed.
 */
export async function fullResync(fs: Fs, dataDir: string, drives: readonly string[], link: MasterLink, until: number): Promise<ResyncResult> {
  replaceFileAtomically(fs, join(dataDir, RESYNC_MARKER), new TextEncoder().encode(`${new Date().toISOString()}\n`));
  wipe(fs, dataDir, drives);
  const volumes = new VolumeSink(fs, drives);
  const wal = new WalSink(fs, join(dataDir, WAL_FILE));
  let history: History | null = null;
  let groupIds: number[] | null = null;
  let bytes = 0;
  try {
    for (;;) {
      const frame = await link.next();
      if (frame.kind === FrameKind.History) history = frame.history;
      else if (frame.kind === FrameKind.Groups) groupIds = frame.ids;
      else if (frame.kind === FrameKind.Region) {
        volumes.write(frame.volume, frame.offset, frame.bytes, groupIds);
        bytes += frame.bytes.length;
      } else if (frame.kind === FrameKind.Records) {
        const records = frame.payloads.map(recordOf);
        wal.append(records);
        if (records.some((r) => r.kind === 0 && r.lsn >= until)) break;
      }
    }
    if (history === null || groupIds === null) throw new StoreError('PROTOCOL', 'the master sent records before its history and groups');
    const groups = groupIds.map((id, i) => ({ id, dir: groupDir(drives, i, id) }));
    volumes.finish();
    const lastLsn = wal.finish();
    saveRegistry(fs, dataDir, registryOf(groups, volumes.ids().map((id) => ({ id }))));
    saveHistory(fs, dataDir, history);
    fs.unlink(join(dataDir, RESYNC_MARKER));
    syncDirectory(fs, dataDir);
    return { lastLsn, history, bytes };
  } finally {
    volumes.close();
    wal.close();
    link.close();
  }
}

/**
 * The directory of the master's `index`-th group on this replica: drive `index`, or, when the
 * master has more groups than this replica has drives, a directory of its own on drive
 * `index mod n` (the registry lets a drive belong to one group only; volume files of several
 * groups in one directory would break that).
 */
const GROUP_DIR_PREFIX = 'group-';

export function groupDir(drives: readonly string[], index: number, id: number): string {
  const drive = drives[index % drives.length]!;
  return index < drives.length ? drive : join(drive, `${GROUP_DIR_PREFIX}${id}`);
}


/** Every directory that may hold this replica's volumes: the drives and their group dirs. */
export function volumeDirs(fs: Fs, drives: readonly string[]): string[] {
  const out: string[] = [];
  for (const drive of drives) {
    out.push(join(drive, VOLUMES_DIR));
    for (const name of fs.readdir(drive)) if (name.startsWith(GROUP_DIR_PREFIX) && /^\d+$/.test(name.slice(GROUP_DIR_PREFIX.length))) out.push(join(drive, name, VOLUMES_DIR));
  }
  return out;
}

/** Removes the store's files and every volume: what a full copy replaces. */
function wipe(fs: Fs, dataDir: string, drives: readonly string[]): void {
  for (const name of fs.readdir(dataDir)) {
    if (STORE_FILES.some((f) => name === f || name.startsWith(`${f}.`))) fs.unlink(join(dataDir, name));
  }
  for (const dir of volumeDirs(fs, drives)) {
    for (const name of fs.readdir(dir)) if (parseVolumeFileName(name) !== null) fs.unlink(join(dir, name));
    if (fs.exists(dir)) syncDirectory(fs, dir);
  }
  syncDirectory(fs, dataDir);
}

/** The volume files being filled, each at its end. */
class VolumeSink {
  private readonly files = new Map<number, { handle: FileHandle; size: number }>();

  constructor(
    private readonly fs: Fs,
    private readonly drives: readonly string[],
  ) {}

  write(volume: number, offset: number, bytes: Uint8Array, groupIds: readonly number[] | null): void {
    let file = this.files.get(volume);
    if (file === undefined) {
      if (offset !== 0) throw new StoreError('PROTOCOL', `volume ${volume}: the master's first bytes are at ${offset}, not 0`);
      const index = groupIds?.indexOf(groupOfVolume(volume)) ?? -1;
      if (index < 0) throw new StoreError('PROTOCOL', `volume ${volume} is of a group the master did not name`);
      const dir = join(groupDir(this.drives, index, groupOfVolume(volume)), VOLUMES_DIR);
      this.fs.mkdir(dir);
      file = { handle: this.fs.open(join(dir, volumeFileName(volume)), 'exclusive'), size: 0 };
      this.files.set(volume, file);
    }
    if (offset !== file.size) throw new StoreError('PROTOCOL', `volume ${volume} is ${file.size} bytes here; the master sent bytes at ${offset}`);
    file.handle.write(bytes, offset);
    file.size += bytes.length;
  }

  ids(): number[] {
    return [...this.files.keys()];
  }

  /** Every volume durable, and its directory entry. */
  finish(): void {
    for (const f of this.files.values()) f.handle.sync();
    // The volumes dirs, and their parents (a group dir made by this copy is a new entry there).
    for (const dir of volumeDirs(this.fs, this.drives)) {
      if (!this.fs.exists(dir)) continue;
      syncDirectory(this.fs, dir);
      syncDirectory(this.fs, dirname(dir));
    }
  }

  close(): void {
    for (const f of this.files.values()) f.handle.close();
    this.files.clear();
  }
}

/** wal.log.tmp, its header written once the first record says where the snapshot is. */
class WalSink {
  private handle: FileHandle | null = null;
  private size = 0;
  private last = -1;
  private closed = false;

  constructor(
    private readonly fs: Fs,
    private readonly path: string,
  ) {}

  append(records: WalRecord[]): void {
    if (records.length === 0) return;
    const first = records[0]!;
    if (this.handle === null) {
      const tmp = `${this.path}.tmp`;
      if (this.fs.exists(tmp)) this.fs.unlink(tmp);
      this.handle = this.fs.open(tmp, 'exclusive');
      // A snapshot's chunks all carry its LSN; without one the records start right after it.
      const snapshotLsn = first.kind === 1 ? first.lsn : first.lsn - 1;
      this.put(encodeWalHeader(snapshotLsn));
      this.last = snapshotLsn;
    }
    const batchFirst = records.find((r) => r.kind === 0)?.lsn;
    // One write for the frame's records (a copy of a long WAL is not a syscall per record).
    const frames: Uint8Array[] = [];
    for (const r of records) {
      if (r.kind === 1 ? r.lsn !== this.last : r.lsn !== this.last + 1) {
        throw new StoreError('PROTOCOL', `record ${r.lsn} (kind ${r.kind}) does not follow LSN ${this.last}`);
      }
      frames.push(encodeRecord(r.kind === 0 ? { lsn: r.lsn, timeMs: r.timeMs, kind: 0, ops: r.ops, batchFirstLsn: batchFirst ?? r.lsn } : r));
      this.last = r.lsn;
    }
    this.put(Buffer.concat(frames));
  }

  /** Synced and renamed in: answers the last LSN. */
  finish(): number {
    if (this.handle === null) throw new StoreError('PROTOCOL', 'the master sent no records');
    this.handle.sync();
    this.handle.close();
    this.handle = null;
    this.fs.rename(`${this.path}.tmp`, this.path);
    syncParent(this.fs, this.path);
    return this.last;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle?.close();
  }

  private put(bytes: Uint8Array): void {
    this.handle!.write(bytes, this.size);
    this.size += bytes.length;
  }
}
