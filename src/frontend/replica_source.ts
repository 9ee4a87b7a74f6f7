// The master's side of one replica's stream (docs/replica.md, "The stream"): after BRISE.SYNC a
// RESP connection becomes this. It decides CONTINUE or FULLRESYNC, then follows the WAL (the
// front end's WalFeed) and sends, for each batch of committed records, first the bytes of the
// master-local volumes those records name that the replica lacks, then the records.
// Owns: the follow, the volume files it reads (read-only handles), what it has sent of each
// volume, the replica's acknowledged LSN, a heartbeat timer.
// Invariants:
// - the bytes a record names (a SET's, a SET_IF's, a vacuum's MOVE_IF's needle) are sent before
//   the record, and a volume's bytes are sent in order from the replica's length (so the replica
//   only ever appends at its tail); only bytes below the end of a committed needle are sent,
//   which the master made durable before it committed the record and never writes again;
// - a volume whose file is gone was removed by a vacuum, after a RETIRE that no entry pointed
//   into it: every record naming it is followed, in the WAL, by one that points its key
//   elsewhere (MOVE_IF, a write, a delete), so its bytes are skipped, never waited for (a
//   replica behind the vacuum, or copying a WAL older than it, would otherwise fail forever);
// - a volume's read handle is closed once a RETIRE of it is sent, so a removal frees its space;
// - a batch of the feed is acknowledged (the next one comes) only once the socket took its
//   frames under OUTPUT_HIGH_WATER: a slow replica slows its own stream, and the committer
//   drops a follower that lags past its bound (the replica then resumes or resyncs);
// - after stop() nothing more is written and every file handle is closed.
import type { Socket } from 'node:net';
import type { Fs } from '../runtime/fs.js';
import { StoreError, codedMessage } from '../runtime/errors.js';
import { canContinue, loadHistory, type History } from '../storage/history.js';
import { OpCode, opNeedle, type WalRecord } from '../storage/types.js';
import { alignUp } from '../storage/volume_format.js';
import { VolumeFile } from '../storage/volume_file.js';
import { encodePayload } from '../storage/wal_format.js';
import { FrameKind, HEARTBEAT_MS, MAX_REGION_BYTES, encodeFrame, encodeRegionFrame, type Frame } from '../protocol/replica_protocol.js';
import type { FollowHandle, WalFeed } from '../db/wal_feed.js';
import { drained } from './socket_drain.js';

const OUTPUT_HIGH_WATER = 8 * 1024 * 1024;
/** A replica silent this long is let go (Redis' repl-timeout default). */
const REPL_TIMEOUT_MS = 60_000;

export interface SourceDeps {
  fs: Fs;
  dataDir: string;
  feed: WalFeed;
  /** The path of a local volume file (throws NOT_FOUND for a group with no local drive). */
  volumePath(id: number): string;
  lastLsn(): Promise<number>;
  /** Commits an empty record and answers its LSN: where a full resync is complete. */
  syncPoint(): Promise<number>;
  now(): number;
  /** The master's volume group ids (sent so the replica holds a writer for each). */
  groupIds: readonly number[];
  /** What the master logs: how a stream began (and why a full copy), and why it ended. */
  event?(e: { replica: string; what: 'continue' | 'fullresync' | 'refused' | 'ended'; detail: string }): void;
}

export interface SyncRequest {
  history: string;
  applied: number;
  volumes: Map<number, number>;
}

/** What INFO, ROLE and WAIT read of a replica. */
export interface ReplicaView {
  addr: string;
  listeningPort: number;
  state: 'sync' | 'online';
  ackedLsn: number;
  ackedAt: number;
  sentLsn: number;
}

export class ReplicaSource {
  readonly view: ReplicaView;
  private follow: FollowHandle | null = null;
  private readonly sent = new Map<number, number>();
  private readonly files = new Map<number, VolumeFile>();
  /** Volumes removed here by a vacuum (their file is gone): nothing of them is sent. */
  private readonly removed = new Set<number>();
  private heartbeat: NodeJS.Timeout | null = null;
  /** Why CONTINUE was not possible (for the log). */
  private fullReason = '';
  private stopped = false;

  constructor(
    private readonly socket: Socket,
    private readonly deps: SourceDeps,
    addr: string,
    listeningPort: number,
    private readonly onEnd: (source: ReplicaSource, why: string | null) => void,
  ) {
    this.view = { addr, listeningPort, state: 'sync', ackedLsn: 0, ackedAt: 0, sentLsn: 0 };
  }

  /** Answers the handshake line and starts the stream; an error ends the connection. */
  async start(req: SyncRequest): Promise<void> {
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const onRecords = async (records: WalRecord[]): Promise<void> => {
      await gate;
      if (!this.stopped) await this.sendBatch(records);
    };
    // A follow ends with null only when it is cancelled here: by stop(), or by tryContinue when
    // the WAL was compacted past the replica, which must go on to a FULLRESYNC, not end the link.
    const onEnd = (why: string | null): void => {
      if (why !== null) this.end(`the WAL feed ended: ${why}`);
    };
    try {
      // Made when the store first opened as a master (wiring/open.ts).
      const history = loadHistory(this.deps.fs, this.deps.dataDir);
      if (history === null) throw new StoreError('INTERNAL', `${this.deps.dataDir} has no replication history`);
      let line = await this.tryContinue(req, history, onRecords, onEnd);
      if (line === null) {
        const until = await this.deps.syncPoint();
        this.sent.clear();
        this.follow = await this.deps.feed.follow(0, onRecords, onEnd);
        // The previous history too: a replica on it (an old master rejoining) may be copied over.
        line = `+FULLRESYNC ${history.id} ${until}${history.previous === undefined ? '' : ` ${history.previous.id}`}\r\n`;
        this.event('fullresync', `${this.fullReason}; a full copy up to LSN ${until}`);
      } else this.event('continue', `from LSN ${req.applied + 1}`);
      if (this.stopped) return this.follow?.cancel();
      this.socket.write(line);
      this.write({ kind: FrameKind.History, history });
      this.write({ kind: FrameKind.Groups, ids: [...this.deps.groupIds] });
      this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
      this.heartbeat.unref();
    } catch (err) {
      if (!this.stopped) this.socket.end(`-ERR ${codedMessage(err)}\r\n`);
      this.event('refused', codedMessage(err));
      this.stop();
    } finally {
      openGate();
    }
  }

  private event(what: 'continue' | 'fullresync' | 'refused' | 'ended', detail: string): void {
    this.deps.event?.({ replica: `${this.view.addr} (port ${this.view.listeningPort})`, what, detail });
  }

  /** The CONTINUE line when the replica may go on from where it is, else null. */
  private async tryContinue(req: SyncRequest, history: History, onRecords: (r: WalRecord[]) => Promise<void>, onEnd: (why: string | null) => void): Promise<string | null> {
    if (!canContinue(history, req.history, req.applied)) {
      this.fullReason = req.history === '' ? 'a new replica' : `its history ${req.history} at LSN ${req.applied} is not this master's (${history.id}${history.previous === undefined ? '' : `, previously ${history.previous.id} up to ${history.previous.end}`})`;
      return null;
    }
    const last = await this.deps.lastLsn();
    if (req.applied > last) {
      this.fullReason = `it is at LSN ${req.applied}, past this master's ${last}`;
      return null;
    }
    for (const [id, length] of req.volumes) {
      // A volume a vacuum removed here: the replica drops it when it applies the RETIRE.
      if (this.removedHere(id)) continue;
      // The replica holds bytes this master never sent (a needle's padding is not in the
      // master's file until the next needle is written, so its end counts aligned).
      if (length > alignUp(this.volumeSize(id))) {
        this.fullReason = `its volume ${id} is ${length} bytes, longer than this master's`;
        return null;
      }
      this.sent.set(id, length);
    }
    const handle = await this.deps.feed.follow(req.applied + 1, onRecords, onEnd);
    if (handle.snapshotLsn > req.applied) {
      handle.cancel(); // compacted past the replica: records it lacks are gone
      this.fullReason = `the WAL was compacted at LSN ${handle.snapshotLsn}, past the replica's ${req.applied}`;
      return null;
    }
    this.follow = handle;
    return `+CONTINUE ${history.id} ${req.applied + 1}\r\n`;
  }

  /** The replica made everything up to `lsn` durable and applied. */
  onAck(lsn: number): void {
    if (lsn > this.view.ackedLsn) this.view.ackedLsn = lsn;
    this.view.ackedAt = this.deps.now();
    this.view.state = 'online';
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.follow?.cancel();
    this.follow = null;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }

  private end(why: string | null): void {
    if (this.stopped) return;
    this.event('ended', why ?? 'stopped');
    this.stop();
    this.onEnd(this, why);
    this.socket.destroy();
  }

  private async sendBatch(records: WalRecord[]): Promise<void> {
    const need = new Map<number, number>();
    const retiring: number[] = [];
    for (const r of records) {
      for (const op of r.ops) {
        if (op.code === OpCode.Retire) retiring.push(op.volume);
        const a = opNeedle(op);
        if (a === undefined) continue;
        const end = alignUp(a.offset + a.length);
        if (end > (need.get(a.volume) ?? 0)) need.set(a.volume, end);
      }
    }
    for (const [volume, end] of need) await this.sendRegions(volume, end);
    this.write({ kind: FrameKind.Records, payloads: records.map(encodePayload) });
    // A RETIRE that applied leaves nothing to send of its volume (a later record naming it
    // applies nothing), and the vacuum removes the file: the handle must not keep its space. One
    // that did not apply (keys still there) is reopened if a record needs more of it.
    for (const volume of retiring) {
      this.files.get(volume)?.close();
      this.files.delete(volume);
    }
    let last = this.view.sentLsn;
    for (const r of records) if (r.kind === 0) last = r.lsn;
    this.view.sentLsn = last;
    if (this.socket.writableLength > OUTPUT_HIGH_WATER) await drained(this.socket);
  }

  /**
   * The bytes of `volume` the replica lacks, up to `end`, a region frame at a time, waiting for
   * the socket between frames: a 1 GB value streams through in constant memory.
   */
  private async sendRegions(volume: number, end: number): Promise<void> {
    let at = this.sent.get(volume) ?? 0;
    if (at >= end || this.removed.has(volume)) return;
    const file = this.fileOf(volume);
    if (file === null) return;
    while (at < end && !this.stopped) {
      const n = Math.min(MAX_REGION_BYTES, end - at);
      const bytes = new Uint8Array(n);
      file.readRegion(bytes, at);
      if (!this.socket.destroyed) {
        // The head and the bytes as two writes, corked into one: the bytes are never copied again.
        const [head, body] = encodeRegionFrame(volume, at, bytes);
        this.socket.cork();
        this.socket.write(head);
        this.socket.write(body);
        this.socket.uncork();
      }
      at += n;
      this.sent.set(volume, at);
      if (this.socket.writableLength > OUTPUT_HIGH_WATER) await drained(this.socket);
    }
  }

  /** The volume's file, open for reading; null when a vacuum removed it (see the invariants). */
  private fileOf(volume: number): VolumeFile | null {
    let file = this.files.get(volume);
    if (file === undefined) {
      const path = this.deps.volumePath(volume);
      try {
        file = VolumeFile.open(this.deps.fs, path, 'read');
      } catch (err) {
        // Ids only grow and a committed needle's file exists until a vacuum removes it: a file
        // that is not there is one the vacuum removed, never one still to come.
        if (this.deps.fs.exists(path)) throw err;
        this.removed.add(volume);
        return null;
      }
      this.files.set(volume, file);
    }
    return file;
  }

  /** Whether a vacuum removed the volume's file here (false for a group with no local drive). */
  private removedHere(id: number): boolean {
    try {
      return !this.deps.fs.exists(this.deps.volumePath(id));
    } catch {
      return false;
    }
  }

  private volumeSize(id: number): number {
    try {
      const handle = this.deps.fs.open(this.deps.volumePath(id), 'read');
      try {
        return handle.size();
      } finally {
        handle.close();
      }
    } catch {
      return 0;
    }
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    // Redis' repl-timeout: a replica that stopped acknowledging (frozen, cut off) is let go and
    // no longer counted; it resumes when it comes back. Not while it copies: a full copy acks
    // only once it is whole.
    const silent = this.deps.now() - this.view.ackedAt;
    if (this.view.state === 'online' && silent > REPL_TIMEOUT_MS) return this.end(`no ACK for ${silent} ms`);
    const lastLsn = await this.deps.lastLsn().catch(() => this.view.sentLsn);
    if (!this.stopped) this.write({ kind: FrameKind.Heartbeat, lastLsn, timeMs: this.deps.now() });
  }

  private write(frame: Frame): void {
    if (!this.stopped && !this.socket.destroyed) this.socket.write(encodeFrame(frame));
  }
}
