// The remote members of a volume group, as its writer (volume_writer.ts) sees them: each is a
// volume server reached through its link actor (volume_link.ts). The writer writes every needle
// to its local drive at the place it assigned; these are the same bytes sent to every remote
// member at the same offsets (docs/volume-server.md, "Identical offsets").
// Owns: each member's state (healthy, stale) and the repair that brings a stale one back.
// Invariants:
// - a write is acknowledged only when every member has its region durably (the writer awaits
//   `replicate`); a member that fails any region is stale from then on;
// - while any member is stale the group takes no new write (DEGRADED, before a byte is
//   written): the engine writes to another group, and no write is ever acknowledged that is
//   not on every member of its group;
// - repair runs only while nothing is being written in the group (the writer's `busy`), so the
//   local tails it copies up to do not move under it; it makes each member's volumes equal to
//   the local ones (cut back what is past the local tail, copy what is missing), then marks it
//   healthy: that is the barrier, as no write can start meanwhile.
import type { ActorEnv } from '../runtime/actor.js';
import { Channel } from '../runtime/channel.js';
import { StoreError } from '../runtime/errors.js';
import type { Timer } from '../runtime/scheduler.js';
import { VOLUME_SUPERBLOCK_SIZE } from '../storage/volume_format.js';
import { LinkMsg, type LinkReplies, type LinkRequest } from '../protocol/link_protocol.js';
import { MEMBER_EVENT, type MemberEvent, type MemberStatus } from '../protocol/volume_protocol.js';

/** How often a stale member is looked at for repair. */
const REPAIR_EVERY_MS = 500;
/** A push is bounded by the link's no-progress timeout, not by the channel's. */
const PUSH_TIMEOUT_MS = 24 * 3600_000;

interface Member {
  link: string;
  channel: Channel<LinkRequest, LinkReplies>;
  url: string;
  state: MemberStatus['state'];
  lagBytes: number;
  repairs: number;
  lastError: string | null;
  /**
   * Per volume, the start of the earliest region a push of which failed: what the member holds
   * from there on is not trusted (a region may have landed with a byte changed in flight, or
   * landed while the answer was lost) and the repair cuts it back there before copying.
   */
  suspect: Map<number, number>;
}

/** What the members need of the writer: its volumes as they are now, and whether it writes. */
export interface LocalVolumes {
  list(): { id: number; path: string; sizeBytes: number }[];
  /** True while any write of the group is in flight (appends, open streams). */
  busy(): boolean;
}

export class GroupMembers {
  private readonly members: Member[];
  private readonly timer: Timer | null;
  private repairing = false;

  constructor(
    env: ActorEnv,
    private readonly group: number,
    links: readonly { name: string; url: string }[],
    private readonly local: LocalVolumes,
    /** Told of every change of a member's state (the writer sends it to main, which logs it). */
    private readonly onEvent: (e: MemberEvent) => void = () => undefined,
  ) {
    // Every member starts stale: the first repair pass checks it holds what the local drive
    // holds (after a crash of either) before the group takes a write.
    this.members = links.map((l) => ({ link: l.name, url: l.url, channel: new Channel(env.peer(l.name)), state: 'stale', lagBytes: 0, repairs: 0, lastError: 'not checked yet', suspect: new Map() }));
    this.timer = this.members.length > 0 ? env.scheduler.every(REPAIR_EVERY_MS, () => void this.watchHealth().then(() => this.repairStale())) : null;
    if (this.members.length > 0) env.scheduler.defer(() => void this.repairStale());
  }

  get size(): number {
    return this.members.length;
  }

  /** Throws DEGRADED when a member is not healthy: the write goes to another group. */
  checkWritable(): void {
    const bad = this.members.find((m) => m.state !== 'healthy');
    if (bad !== undefined) {
      throw new StoreError('DEGRADED', `volume group ${this.group}: member ${bad.url} is ${bad.state}${bad.lastError ? ` (${bad.lastError})` : ''}`);
    }
  }

  /**
   * Sends [start, end) of a local volume to every member; resolves when all have it (durable
   * with `sync`). `available`: how much of it is written locally now (more comes with grow()).
   */
  async replicate(volume: number, path: string, start: number, end: number, available: number): Promise<void> {
    // Always synced on the members: a later local sync (a transaction's COMMIT) cannot reach them.
    const results = await Promise.allSettled(this.members.map((m) => this.push(m, volume, path, start, end, available, true)));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const m = this.members[failed]!;
      throw new StoreError('UNAVAILABLE', `volume group ${this.group}: member ${m.url} did not take the write (${m.lastError ?? 'failed'}); retry`);
    }
  }

  /**
   * An open-ended needle at `offset` (a chunked upload) teed to every member: its value as it is
   * written (grow), its end by sealOpen or abortOpen. Resolves when every member has sealed or
   * aborted it (sealed: durably); a member that fails is stale and this rejects (UNAVAILABLE).
   */
  async replicateOpen(volume: number, path: string, offset: number, keyLength: number, metaLength: number): Promise<void> {
    const msg: LinkRequest = { t: LinkMsg.PushOpen, volume, path, offset, keyLength, metaLength };
    const results = await Promise.allSettled(this.members.map((m) => this.call(m, msg)));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const m = this.members[failed]!;
      throw new StoreError('UNAVAILABLE', `volume group ${this.group}: member ${m.url} did not take the upload (${m.lastError ?? 'failed'}); retry`);
    }
  }

  /** The open needle at `offset` is finished locally (its header written): `length` bytes. */
  sealOpen(volume: number, offset: number, length: number): void {
    for (const m of this.members) m.channel.send({ t: LinkMsg.Seal, volume, offset, length });
  }

  /** The open needle at `offset` was aborted locally after `written` value bytes; the tail is `tail`. */
  abortOpen(volume: number, offset: number, written: number, tail: number): void {
    for (const m of this.members) m.channel.send({ t: LinkMsg.AbortOpen, volume, offset, written, tail });
  }

  /** The local file holds the region's bytes up to `upTo` (a streamed needle grows). */
  grow(volume: number, upTo: number): void {
    // Stale members too: a region already queued on a link waits for these bytes either way.
    for (const m of this.members) m.channel.send({ t: LinkMsg.Available, volume, upTo });
  }

  /**
   * Removes retired volumes on every member. A member that fails keeps the files (no entry names
   * them: only space); the errors are answered for the vacuum to report, and it asks again.
   */
  async remove(volumes: readonly number[]): Promise<string[]> {
    const errors: string[] = [];
    await Promise.all(
      this.members.map(async (m) => {
        for (const volume of volumes) {
          try {
            await m.channel.call({ t: LinkMsg.Remove, volume });
          } catch (err) {
            errors.push(`${m.url}: volume ${volume}: ${(err as Error).message ?? String(err)}`);
            return;
          }
        }
      }),
    );
    return errors;
  }

  status(): MemberStatus[] {
    return this.members.map((m) => ({ link: m.link, url: m.url, state: m.state, lagBytes: m.lagBytes, repairs: m.repairs, lastError: m.lastError }));
  }

  stop(): void {
    this.timer?.cancel();
  }

  private async push(m: Member, volume: number, path: string, start: number, end: number, available: number, sync: boolean): Promise<void> {
    try {
      await this.call(m, { t: LinkMsg.Push, volume, path, start, end, available, sync });
    } catch (err) {
      m.suspect.set(volume, Math.min(m.suspect.get(volume) ?? Infinity, start));
      throw err;
    }
  }

  /** A push (bounded by the link's no-progress timeout); a failure makes the member stale. */
  private async call(m: Member, msg: LinkRequest): Promise<void> {
    try {
      await m.channel.call(msg, { timeoutMs: PUSH_TIMEOUT_MS });
    } catch (err) {
      this.markStale(m, err);
      throw err;
    }
  }

  private markStale(m: Member, err: unknown): void {
    const error = (err as Error).message ?? String(err);
    const changed = m.state === 'healthy' || (m.state === 'stale' && error !== m.lastError);
    m.lastError = error;
    if (m.state === 'healthy') m.state = 'stale';
    if (changed) this.onEvent({ t: MEMBER_EVENT, group: this.group, server: m.url, state: 'stale', error, copied: 0 });
  }

  /**
   * A healthy member whose server misses its health checks (its link says so) is stale now, not
   * at the next write that would find it so: that write goes to another group from the start.
   */
  private async watchHealth(): Promise<void> {
    await Promise.all(
      this.members
        .filter((m) => m.state === 'healthy')
        .map(async (m) => {
          const status = await m.channel.call({ t: LinkMsg.Status }).catch(() => null);
          if (status !== null && !status.up && m.state === 'healthy') this.markStale(m, new Error(status.lastError ?? 'the server does not answer its health checks'));
        }),
    );
  }

  /** One member at a time, only while the group writes nothing. */
  private async repairStale(): Promise<void> {
    if (this.repairing || this.local.busy()) return;
    const m = this.members.find((x) => x.state === 'stale');
    if (m === undefined) return;
    this.repairing = true;
    m.state = 'repairing';
    try {
      const copied = await this.repair(m);
      if (this.local.busy()) {
        m.state = 'stale'; // a write slipped in (it was refused, but started before): look again
        return;
      }
      m.state = 'healthy';
      m.lastError = null;
      this.onEvent({ t: MEMBER_EVENT, group: this.group, server: m.url, state: 'healthy', error: null, copied });
      m.lagBytes = 0;
    } catch (err) {
      m.state = 'stale';
      this.markStale(m, err);
    } finally {
      this.repairing = false;
    }
  }

  /** Makes every volume of the member equal to the local one; answers the bytes it copied. */
  private async repair(m: Member): Promise<number> {
    // Only a server its link has found (health check answered, this master's epoch claimed).
    const link = await m.channel.call({ t: LinkMsg.Status });
    if (!link.up) throw new Error(link.lastError ?? 'the server has not answered a health check yet');
    const volumes = this.local.list();
    // One Stat per volume: the lag first (shown while the copy runs), then the repair.
    const remotes = await Promise.all(volumes.map((v) => m.channel.call({ t: LinkMsg.Stat, volume: v.id })));
    m.lagBytes = volumes.reduce((lag, v, i) => lag + Math.max(0, v.sizeBytes - Math.max(remotes[i]!, VOLUME_SUPERBLOCK_SIZE)), 0);
    let copied = 0;
    for (const [i, v] of volumes.entries()) {
      const remote = remotes[i]!;
      // Past the local tail: bytes no write acknowledged (the master crashed after sending them);
      // past a failed push: bytes not trusted. Both are cut back and copied again.
      const trusted = Math.min(v.sizeBytes, m.suspect.get(v.id) ?? Infinity);
      const have = remote < 0 ? VOLUME_SUPERBLOCK_SIZE : Math.min(remote, trusted);
      if (remote > have) await m.channel.call({ t: LinkMsg.Truncate, volume: v.id, length: have });
      m.suspect.delete(v.id);
      if (have < v.sizeBytes) {
        try {
          await m.channel.call({ t: LinkMsg.Push, volume: v.id, path: v.path, start: have, end: v.sizeBytes, available: v.sizeBytes, sync: true }, { timeoutMs: PUSH_TIMEOUT_MS });
        } catch (err) {
          m.suspect.set(v.id, have); // what it took of the copy is not trusted either
          throw err;
        }
        m.lagBytes = Math.max(0, m.lagBytes - (v.sizeBytes - have));
        copied += v.sizeBytes - have;
      }
    }
    if (copied > 0) m.repairs += 1;
    return copied;
  }
}
