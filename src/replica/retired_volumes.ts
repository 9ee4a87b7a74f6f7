// A replica's side of its master's vacuum (docs/vacuum.md, "Delete"): the master removes a
// volume's file after a RETIRE record gives the volume up; the replica applies the same record
// (its index retires the volume: no entry points into it) and then removes its own copy, so its
// disk comes back too. A replica never vacuums by itself: the moves and retirements are its
// master's records, and the removal only follows them.
// Owns: the retired set as the replica's index last answered it; whether a removal is due.
// Invariants:
// - a volume is removed only once the replica's own index has retired it;
// - a removal the drive refuses (its current volume: a replica's newest volume is current until
//   a newer one arrives) is tried again after later records, at most once per RETRY_MS;
// - once removed, every front end is told to close its handle (a handle keeps the space), as
//   the master's main does after its vacuum (MainMsg.Forget);
// - the regions of a retired volume are not written (`has`): a record that names a retired
//   volume applies nothing, and its bytes would recreate a file no one removes.
import type { Logger } from 'pino';
import { Channel } from '../runtime/channel.js';
import type { Peer } from '../runtime/peer.js';
import { OpCode, type WalRecord } from '../storage/types.js';
import type { LocalGroup } from '../storage/registry.js';
import { INDEX_ACTOR, volumeActorName } from '../protocol/store_actors.js';
import { IndexMsg, type IndexReplies, type IndexRequest } from '../protocol/index_protocol.js';
import { VolumeMsg, type VolumeReplies, type VolumeRequest } from '../protocol/volume_protocol.js';
import { MainMsg, type MainToFrontEnd } from '../protocol/frontend_protocol.js';

/** How often a removal the drive refused is tried again (while records keep coming). */
const RETRY_MS = 1000;

export interface RetiredVolumesDeps {
  /** The running store's actors (the supervisor's peers). */
  peer(name: string): Peer;
  groups(): readonly LocalGroup[];
  /** The front ends of the running store (they hold read handles). */
  frontEnds(): string[];
  log: Logger;
  now(): number;
}

export class RetiredVolumes {
  private retired = new Set<number>();
  /** A RETIRE was applied since the last removal (or the store just started). */
  private due = true;
  /** A removal was refused; when it was last tried. */
  private leftover = false;
  private triedAt = 0;

  constructor(private readonly deps: RetiredVolumesDeps) {}

  /** Whether the replica's index has retired `volume` (as of the last removal). */
  has(volume: number): boolean {
    return this.retired.has(volume);
  }

  /** Records the store just applied: a removal is due when one of them retires a volume. */
  applied(records: readonly WalRecord[]): void {
    if (records.some((r) => r.ops.some((op) => op.code === OpCode.Retire))) this.due = true;
  }

  /** A new store (a start, a resync): its index may have retired volumes whose files are still here. */
  restarted(): void {
    this.retired.clear();
    this.due = true;
    this.leftover = false;
  }

  /** Removes the retired volumes still on disk, when due; a failure is logged and tried again later (never thrown). */
  async removeDue(): Promise<void> {
    const retry = this.leftover && this.deps.now() - this.triedAt >= RETRY_MS;
    if (!this.due && !retry) return;
    this.due = false;
    this.triedAt = this.deps.now();
    try {
      await this.removeRetired();
    } catch (err) {
      // An actor restarting, the store stopping: tried again after later records.
      this.leftover = true;
      this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'replica: could not remove the volumes its master vacuumed; trying again later');
    }
  }

  private async removeRetired(): Promise<void> {
    const usage = await new Channel<IndexRequest, IndexReplies>(this.deps.peer(INDEX_ACTOR)).call({ t: IndexMsg.VolumeUsage });
    this.retired = new Set(usage.retired);
    const removed: number[] = [];
    let left = false;
    for (const g of this.deps.groups()) {
      const channel = new Channel<VolumeRequest, VolumeReplies>(this.deps.peer(volumeActorName(g.id)));
      const here = (await channel.call({ t: VolumeMsg.List })).filter((v) => this.retired.has(v.id));
      // One at a time: a refused one (the current volume) must not hold back the others.
      for (const v of here) {
        try {
          removed.push(...(await channel.call({ t: VolumeMsg.Remove, volumes: [v.id] })).removed);
        } catch (err) {
          left = true;
          this.deps.log.debug({ volume: v.id, err: err instanceof Error ? err.message : String(err) }, 'replica: a retired volume is not removed yet');
        }
      }
    }
    this.leftover = left;
    if (removed.length === 0) return;
    const forget: MainToFrontEnd = { t: MainMsg.Forget, volumes: removed };
    await Promise.all(this.deps.frontEnds().map((name) => this.deps.peer(name).call(forget).catch(() => undefined)));
    this.deps.log.info({ volumes: removed }, 'replica: removed the volumes its master vacuumed');
  }
}
