// runReplica: a read-only replica's process (docs/replica.md). Its store is a master's store
// (runMaster with a ReplicaRole: every front end refuses writes, no TTL sweep) whose volume
// groups are its master's; beside it, in this thread, the link that follows the master:
// - at start, a data dir with no history (a new replica) or with an unfinished resync is filled
//   by a full resync (bootstrap.ts) before the store opens;
// - then, in a loop: connect, say where the store is (its last LSN, its volume lengths), and
//   apply what comes: volume regions to the group writers (VolumeMsg.Mirror, durable), records
//   to the WAL committer (WalMsg.Replay: durable, then applied by the index), each acknowledged
//   to the master once applied; on a disconnect, retry with backoff;
// - after records that retire volumes (the master's vacuum), the files of those volumes are
//   removed here too (retired_volumes.ts): a replica never vacuums, it follows;
// - when the master answers FULLRESYNC (the replica is too far behind, or its history is not
//   the master's), or names volume groups the store does not hold, the store is stopped, the
//   data dir refilled or regrouped, and the store started again on the same ports.
// Invariants: records are applied in LSN order, each once (the committer refuses a record that
// does not follow its last LSN); the bytes a record names are durable before it is written;
// a replica never follows a master whose history its own was promoted away from.
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { NodeFs, type Fs } from '../runtime/fs.js';
import { Channel } from '../runtime/channel.js';
import { StoreError } from '../runtime/errors.js';
import { acquireLock } from '../storage/lock_file.js';
import { loadHistory, promote, saveHistory, type History } from '../storage/history.js';
import { loadRegistry, type LocalGroup } from '../storage/registry.js';
import { VolumeFile } from '../storage/volume_file.js';
import { VOLUME_SUPERBLOCK_SIZE, groupOfVolume, parseVolumeFileName } from '../storage/volume_format.js';
import { resyncPending, walLastLsn } from '../storage/store_files.js';
import type { WalRecord } from '../storage/types.js';
import { FrameKind, recordOf, type Frame } from '../protocol/replica_protocol.js';
import { WAL_ACTOR, volumeActorName } from '../protocol/store_actors.js';
import { WalMsg, type WalReplies, type WalRequest } from '../protocol/wal_protocol.js';
import { VolumeMsg, type VolumeReplies, type VolumeRequest } from '../protocol/volume_protocol.js';
import type { LinkView } from '../protocol/frontend_protocol.js';
import { MasterLink } from '../remote/replica_client.js';
import { httpActorName, runMaster, tcpActorName, type RunningMaster } from '../master/master.js';
import type { MasterConfig } from '../master/master_config.js';
import { isProcessAlive } from '../wiring/open.js';
import { fullResync, volumeDirs } from './bootstrap.js';
import { RetiredVolumes } from './retired_volumes.js';

const RETRY_MIN_MS = 100;
/** A replica's group commit is cut at about this many records or payload bytes. */
const MAX_REPLAY_RECORDS = 16_384;
const MAX_REPLAY_BYTES = 16 * 1024 * 1024;
const RETRY_MAX_MS = 2_000;

export interface ReplicaConfig {
  master: { host: string; port: number };
  masterAuth: string | null;
  /** The store and its front ends, as a master's (ports, data dir, drives, limits). */
  server: MasterConfig;
}

export interface RunningReplica {
  readonly tcpPort: number;
  readonly httpPort: number | null;
  stop(): Promise<void>;
  readonly done: Promise<void>;
  /** The link's view (ROLE, INFO replication). */
  link(): LinkView;
}

/** Raised inside the follow loop: the store must be refilled or regrouped before going on. */
class Restart extends Error {
  constructor(readonly why: 'resync' | 'regroup', readonly link: MasterLink | null, readonly until: number) {
    super(why);
  }
}

/**
 * `stopping`: resolves when the program is told to stop (its first signal). A new replica waits
 * for its first copy before it has anything to serve, so a signal must end that wait too.
 */
export async function runReplica(config: ReplicaConfig, log: Logger, stopping?: Promise<unknown>): Promise<RunningReplica> {
  const replica = new Replica(config, log);
  void stopping?.then(() => replica.stopStarting());
  return replica.start();
}

class Replica {
  private readonly fs: Fs = new NodeFs();
  private readonly dataDir: string;
  private readonly drives: string[];
  private server: RunningMaster | null = null;
  private groups: LocalGroup[] = [];
  private history: History | null = null;
  private current: MasterLink | null = null;
  private stopped = false;
  private promoted = false;
  private following: Promise<void> = Promise.resolve();
  private readonly view: LinkView;
  private lastIoAt = 0;
  /** Records received and not yet replayed (the group being gathered). */
  private pending: WalRecord[] = [];
  private pendingBytes = 0;
  /** Groups given bytes since their last sync. */
  private readonly unsynced = new Set<number>();
  private resolveDone!: () => void;
  /** Ends the current pause between tries (stop). */
  private wake: (() => void) | null = null;
  private readonly done = new Promise<void>((r) => (this.resolveDone = r));
  /** The volumes the master vacuumed away: removed here once the index retired them. */
  private readonly retired: RetiredVolumes;

  constructor(
    private readonly config: ReplicaConfig,
    private readonly log: Logger,
  ) {
    this.dataDir = resolve(config.server.dataDir);
    this.drives = [this.dataDir, ...config.server.drives.map((d) => resolve(d))];
    this.view = {
      masterHost: config.master.host,
      masterPort: config.master.port,
      status: 'down',
      appliedLsn: 0,
      masterLsn: 0,
      lastIoMsAgo: -1,
      lagMs: 0,
      history: '',
      fullResyncs: 0,
      lastError: null,
    };
    this.retired = new RetiredVolumes({
      peer: (name) => this.server!.supervisor!.peer(name),
      groups: () => this.groups,
      frontEnds: () => this.frontEnds(),
      log,
      now: () => Date.now(),
    });
  }

  async start(): Promise<RunningReplica> {
    this.fs.mkdir(this.dataDir);
    this.history = loadHistory(this.fs, this.dataDir);
    if (this.history === null && !resyncPending(this.fs, this.dataDir) && walLastLsn(this.fs, this.dataDir) > 0) {
      throw new StoreError('CONFLICT', `${this.dataDir} holds a store that is not a replica's (a WAL and no replication history): a full copy would erase it. Give the replica an empty --data dir`);
    }
    if (this.history === null || resyncPending(this.fs, this.dataDir)) {
      await this.resyncUntilDone(null, 0);
      if (this.stopped) throw new StoreError('CLOSED', 'stopped before the first copy from the master was complete');
    } else this.prepareVolumes();
    this.groups = this.groupsOnDisk();
    await this.startServer();
    this.following = this.follow();
    const server = this.server!;
    return {
      tcpPort: server.tcpPort,
      httpPort: server.httpPort,
      stop: () => this.stop(),
      done: this.done,
      link: () => this.linkView(),
    };
  }

  // ---- the store ----------------------------------------------------------------------------

  private async startServer(): Promise<void> {
    const previous = this.server;
    // A restart keeps the ports the first start bound (a port 0 must not move).
    const server = { ...this.config.server };
    if (previous !== null) {
      server.addr = { ...server.addr, port: previous.tcpPort };
      if (server.httpAddr !== null && previous.httpPort !== null) server.httpAddr = { ...server.httpAddr, port: previous.httpPort };
    }
    this.server = await runMaster(server, this.log, {
      groups: this.groups,
      link: () => this.linkView(),
      promote: () => this.promote(),
    });
    void this.server.done.then(() => {
      if (!this.stopped) this.resolveDone();
    });
    this.retired.restarted();
  }

  /** The running store's front ends (their threads hold read handles on the volumes). */
  private frontEnds(): string[] {
    const names = new Set(this.server?.supervisor?.status().map((s) => s.name) ?? []);
    const out: string[] = [];
    for (let i = 0; names.has(tcpActorName(i)); i++) out.push(tcpActorName(i));
    for (let i = 0; names.has(httpActorName(i)); i++) out.push(httpActorName(i));
    return out;
  }

  private async stopServer(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    await server.stop();
  }

  /** The groups of the registry the last resync wrote (the master's, on this replica's drives). */
  private groupsOnDisk(): LocalGroup[] {
    const registry = loadRegistry(this.fs, this.dataDir);
    if (registry === null) throw new StoreError('CORRUPT', `${this.dataDir}: a replica's data dir without vol-registry.json`);
    return Object.entries(registry.groups).map(([id, g]) => {
      const drive = g.members.find((m): m is { drive: string } => 'drive' in m);
      if (drive === undefined) throw new StoreError('CORRUPT', `${this.dataDir}: group ${id} has no drive on this replica`);
      return { id: Number(id), dir: drive.drive };
    });
  }

  /** After a crash: every volume cut back to its last whole needle (a region torn mid-write). */
  private prepareVolumes(): void {
    for (const dir of volumeDirs(this.fs, this.drives)) {
      for (const name of this.fs.readdir(dir)) {
        if (parseVolumeFileName(name) === null) continue;
        const file = VolumeFile.open(this.fs, join(dir, name), 'write');
        try {
          const before = file.tail;
          if (file.cutTornTail() !== before) file.sync();
        } finally {
          file.close();
        }
      }
    }
  }

  // ---- following ------------------------------------------------------------------------------

  private async follow(): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!this.stopped && !this.promoted) {
      try {
        await this.followOnce();
        delay = RETRY_MIN_MS;
      } catch (err) {
        if (this.stopped || this.promoted) return;
        if (err instanceof Restart) {
          await this.restart(err);
          delay = RETRY_MIN_MS;
          continue;
        }
        // A link that was up failed once: retry soon. Only failures in a row back off, else
        // every cut of a long-lived link would wait longer than the one before.
        if (this.view.status === 'up') delay = RETRY_MIN_MS;
        this.linkDown(err);
        await this.pause(delay);
        delay = Math.min(RETRY_MAX_MS, delay * 2);
      }
    }
  }

  private async followOnce(): Promise<void> {
    const { applied, volumes } = await this.position();
    const { link, answer } = await MasterLink.open({
      ...this.config.master,
      password: this.config.masterAuth,
      listeningPort: this.server?.tcpPort ?? 0,
      history: this.history?.id ?? '',
      applied,
      volumes,
    });
    this.current = link;
    if (this.stopped || this.promoted) return link.close();
    if (answer.mode === 'fullresync') {
      this.refuseForkedMaster(answer.history, link);
      this.refuseUnrelated(answer.history, answer.previous, link);
      throw new Restart('resync', link, answer.until);
    }
    this.view.status = 'up';
    this.view.lastError = null;
    this.log.info({ master: `${this.config.master.host}:${this.config.master.port}`, from: answer.from }, 'replica following its master');
    // The master counts this replica (WAIT, min-replicas, INFO) from its first ACK: say at once.
    link.ack(applied);
    // Volumes retired before a crash, a restart or a full copy, whose files are still here.
    await this.retired.removeDue();
    this.pending = [];
    this.pendingBytes = 0;
    try {
      for (;;) {
        // Group commit: every frame already here is applied, and the records among them are
        // written as one Replay (one fsync per group given bytes, one of the WAL, one ACK).
        let frame: Frame | null = await link.next();
        while (frame !== null) {
          await this.apply(frame, link);
          if (this.pending.length >= MAX_REPLAY_RECORDS || this.pendingBytes >= MAX_REPLAY_BYTES) await this.flushRecords(link);
          frame = link.poll();
        }
        await this.flushRecords(link);
      }
    } finally {
      link.close();
      this.current = null;
    }
  }

  /** The store's last LSN and its volume lengths (a volume made empty at start is none). */
  private async position(): Promise<{ applied: number; volumes: Map<number, number> }> {
    const server = this.server!.supervisor!;
    const applied = await new Channel<WalRequest, WalReplies>(server.peer(WAL_ACTOR)).call({ t: WalMsg.LastLsn });
    const volumes = new Map<number, number>();
    for (const g of this.groups) {
      const list = await new Channel<VolumeRequest, VolumeReplies>(server.peer(volumeActorName(g.id))).call({ t: VolumeMsg.List });
      for (const v of list) if (v.sizeBytes > VOLUME_SUPERBLOCK_SIZE) volumes.set(v.id, v.sizeBytes);
    }
    this.view.appliedLsn = applied;
    return { applied, volumes };
  }

  private async apply(frame: Frame, link: MasterLink): Promise<void> {
    switch (frame.kind) {
      case FrameKind.History:
        if (this.history?.id !== frame.history.id) {
          // CONTINUE on the master's previous history (it was promoted): ours becomes its.
          saveHistory(this.fs, this.dataDir, frame.history);
          this.history = frame.history;
        }
        return;
      case FrameKind.Groups:
        if (frame.ids.some((id) => !this.groups.some((g) => g.id === id))) throw new Restart('regroup', link, 0);
        return;
      case FrameKind.Heartbeat:
        this.view.masterLsn = frame.lastLsn;
        this.lastIoAt = Date.now();
        link.ack(this.view.appliedLsn);
        return;
      case FrameKind.Region: {
        const group = groupOfVolume(frame.volume);
        if (!this.groups.some((g) => g.id === group)) throw new Restart('regroup', link, 0);
        // Bytes of a volume this store retired (a write placed in it before the master's vacuum
        // sealed it, committed after): its record applies nothing; the file is gone or going.
        if (this.retired.has(frame.volume)) return;
        await this.volumeChannel(group).call({ t: VolumeMsg.Mirror, volume: frame.volume, offset: frame.offset, bytes: frame.bytes, sync: false });
        this.unsynced.add(group);
        this.lastIoAt = Date.now();
        return;
      }
      case FrameKind.Records: {
        for (const payload of frame.payloads) {
          const r = recordOf(payload);
          if (r.kind !== 0) continue;
          this.pending.push(r);
          this.pendingBytes += payload.length;
        }
        return;
      }
    }
  }

  /** The records received so far, durable and applied: their bytes first, then one Replay, then the ACK. */
  private async flushRecords(link: MasterLink): Promise<void> {
    const records = this.pending;
    if (records.length === 0) return;
    this.pending = [];
    this.pendingBytes = 0;
    // The bytes these records name are durable before the records are written.
    await Promise.all([...this.unsynced].map((g) => this.volumeChannel(g).call({ t: VolumeMsg.Sync })));
    this.unsynced.clear();
    const lsn = await new Channel<WalRequest, WalReplies>(this.server!.supervisor!.peer(WAL_ACTOR)).call({ t: WalMsg.Replay, records });
    const last = records[records.length - 1]!;
    this.view.appliedLsn = lsn;
    this.view.masterLsn = Math.max(this.view.masterLsn, lsn);
    this.view.lagMs = Math.max(0, Date.now() - last.timeMs);
    this.lastIoAt = Date.now();
    link.ack(lsn);
    // After the ACK: the master need not wait for this replica's disk to come back.
    this.retired.applied(records);
    await this.retired.removeDue();
  }

  private volumeChannel(group: number): Channel<VolumeRequest, VolumeReplies> {
    return new Channel<VolumeRequest, VolumeReplies>(this.server!.supervisor!.peer(volumeActorName(group)));
  }

  private linkView(): LinkView {
    // The delay of the last record applied says nothing once nothing is left to apply: a
    // replica caught up has no lag (a monitor must not alarm on an idle system).
    const caughtUp = this.view.appliedLsn >= this.view.masterLsn;
    return { ...this.view, history: this.history?.id ?? '', lagMs: caughtUp ? 0 : this.view.lagMs, lastIoMsAgo: this.lastIoAt === 0 ? -1 : Date.now() - this.lastIoAt };
  }

  private linkDown(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.view.status === 'up' || this.view.lastError !== message) this.log.warn({ err: message }, 'replica link down; retrying');
    this.view.status = 'down';
    this.view.lastError = message;
  }

  /**
   * A master on the history this replica was promoted away from is the old master come back:
   * following it would throw away what was written since the promotion.
   */
  private refuseForkedMaster(masterHistory: string, link: MasterLink): void {
    if (this.history?.previous?.id !== masterHistory) return;
    link.close();
    throw new StoreError(
      'CONFLICT',
      `the master at ${this.config.master.host}:${this.config.master.port} is on history ${masterHistory}, which this store's history ${this.history.id} left at LSN ${this.history.previous.end} by a promotion (of this store or of its master); refusing to follow it: it may hold writes the new history never had (start that server as a replica of the new master instead)`,
    );
  }

  /**
   * A full copy empties the data dir: only ever over a copy of this master's line of history
   * (compacted past, or an old master rejoining its successor), never over another store's
   * data, which a wrong --master or --data would otherwise destroy without a word.
   */
  private refuseUnrelated(masterHistory: string, masterPrevious: string | undefined, link: MasterLink): void {
    const mine = this.history?.id;
    if (mine === undefined || mine === masterHistory || mine === masterPrevious) return;
    link.close();
    throw new StoreError(
      'CONFLICT',
      `${this.dataDir} holds the data of another store (history ${mine}); the master at ${this.config.master.host}:${this.config.master.port} is on history ${masterHistory}: a full copy would erase it. Give the replica an empty --data dir, or remove this one if its data is not needed`,
    );
  }

  // ---- resync, regroup, promotion -----------------------------------------------------------

  private async restart(r: Restart): Promise<void> {
    this.log.warn({ why: r.why }, r.why === 'resync' ? 'replica: full resync from the master (the store restarts)' : 'replica: the master has volume groups this store lacks (the store restarts)');
    this.view.status = 'sync';
    await this.stopServer();
    if (r.why === 'resync') await this.resyncUntilDone(r.link, r.until);
    else {
      // The master has more volume groups than this store: a full copy takes them all.
      r.link?.close();
      await this.resyncUntilDone(null, 0);
    }
    this.groups = this.groupsOnDisk();
    if (!this.stopped) await this.startServer();
  }

  /** A full copy, retried until it completes (the store is closed meanwhile). */
  private async resyncUntilDone(first: MasterLink | null, until: number): Promise<void> {
    let link = first;
    let delay = RETRY_MIN_MS;
    const lock = acquireLock(this.fs, this.dataDir, { pid: process.pid, host: hostname(), nowMs: Date.now() }, isProcessAlive);
    try {
      while (!this.stopped) {
        try {
          if (link === null) {
            const opened = await MasterLink.open({ ...this.config.master, password: this.config.masterAuth, listeningPort: this.config.server.addr.port, history: '', applied: 0, volumes: new Map() });
            if (opened.answer.mode !== 'fullresync') {
              opened.link.close();
              throw new StoreError('PROTOCOL', 'the master offered to continue a replica that has nothing');
            }
            link = opened.link;
            until = opened.answer.until;
          }
          this.view.status = 'sync';
          this.current = link; // a stop closes it, which ends the copy
          const started = Date.now();
          const result = await fullResync(this.fs, this.dataDir, this.drives, link, until);
          this.history = result.history;
          this.view.fullResyncs += 1;
          this.view.appliedLsn = result.lastLsn;
          this.log.info({ lsn: result.lastLsn, bytes: result.bytes, ms: Date.now() - started }, 'replica: full resync done');
          return;
        } catch (err) {
          link?.close();
          link = null;
          if (this.stopped) return;
          this.linkDown(err);
          await this.pause(delay);
          delay = Math.min(RETRY_MAX_MS, delay * 2);
        }
      }
    } finally {
      lock.release();
    }
  }

  /** REPLICAOF NO ONE: the link stops; a new history begins after the last LSN applied. */
  private async promote(): Promise<{ history: string; lsn: number }> {
    if (this.history === null) throw new StoreError('BAD_ARGUMENT', 'this replica holds no copy yet: nothing to promote');
    this.promoted = true;
    this.current?.close();
    await this.following;
    const { applied } = await this.position();
    this.history = promote(this.fs, this.dataDir, this.history, applied);
    this.view.status = 'down';
    this.log.warn({ history: this.history.id, lsn: applied }, 'replica promoted: this store is a master now, on a new history');
    return { history: this.history.id, lsn: applied };
  }

  /**
   * The wait between two tries. Its timer keeps the process alive: while a new replica waits for
   * its master nothing else does (an unref'd timer let Node exit with code 13, silently); stop()
   * ends it at once.
   */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  /** A stop while start() still waits for the first copy (after it, stop() does it all). */
  stopStarting(): void {
    if (this.server !== null) return;
    this.stopped = true;
    this.wake?.();
    this.current?.close();
  }

  private async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.current?.close();
    await this.following.catch(() => undefined);
    await this.stopServer();
    this.resolveDone();
  }
}
