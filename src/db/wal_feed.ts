// The front-end side of the WAL replication feed: follows the WAL committer's log from an LSN
// and hands each batch of records to a consumer, acknowledging a batch only once the consumer
// has finished with it, so a slow consumer slows its own feed (the committer keeps at most a
// window of unacknowledged batches per follower and drops a follower that lags too far).
// Owns: this front end's follower ids and, per follow, the batches received but not consumed.
// Invariants:
//  - batches reach onRecords one at a time, in the committer's order; the next waits for the
//    previous one's promise;
//  - onEnd is called at most once per follow, and nothing reaches onRecords after it;
//  - it is the handler of one-way messages from the WAL peer (one WalFeed per peer): requests
//    to the committer are answered as replies, never through this handler, so commits on the
//    same peer are unaffected.
import type { Peer } from '../runtime/peer.js';
import type { WalRecord } from '../storage/types.js';
import { WalMsg, type FollowLimits, type FollowReply, type WalRecordsPush, type WalReplies, type WalRequest } from '../protocol/wal_protocol.js';
import { Channel } from '../runtime/channel.js';

export { WAL_FOLLOW_END } from '../protocol/wal_protocol.js';

export interface FollowHandle {
  lastLsn: number;
  snapshotLsn: number;
  /** The first LSN that will be delivered (after the snapshot chunks, if any). */
  from: number;
  /** Stops delivery now; onEnd(null) is called. */
  cancel(): void;
}

export type RecordsConsumer = (records: WalRecord[]) => Promise<void> | void;
/** `reason`: null when cancelled here; otherwise `CODE: message` (e.g. QUEUE_FULL for a slow follower). */
export type EndListener = (reason: string | null) => void;

/** Batches received and not yet consumed: the committer's window bounds it; this is a guard. */
const MAX_QUEUED_BATCHES = 1024;

interface Follow {
  id: number;
  onRecords: RecordsConsumer;
  onEnd: EndListener;
  queue: WalRecordsPush[];
  busy: boolean;
  ended: boolean;
}

export class WalFeed {
  private nextId = 1;
  private readonly follows = new Map<number, Follow>();

  private readonly wal: Channel<WalRequest, WalReplies>;

  constructor(peer: Peer) {
    this.wal = new Channel(peer);
    const wal = peer;
    wal.onRequest((body) => {
      const msg = body as WalRecordsPush;
      if (typeof msg === 'object' && msg !== null && msg.t === WalMsg.Records) this.onPush(msg);
      return null;
    });
    // A restarted committer forgot its followers: end ours so their consumers can follow again.
    wal.onRewire(() => {
      for (const f of [...this.follows.values()]) this.end(f, 'ACTOR_DOWN: the WAL committer restarted; follow again from the LSN after the last one consumed');
    });
  }

  /** How many follows are running. */
  get size(): number {
    return this.follows.size;
  }

  /**
   * Follows the WAL from `from` (0 or 1: everything in the WAL, the snapshot first when it was
   * compacted; WAL_FOLLOW_END: live records only). Rejects when the committer refuses (e.g. a
   * `from` past the end of the WAL).
   */
  async follow(from: number, onRecords: RecordsConsumer, onEnd: EndListener, limits?: FollowLimits): Promise<FollowHandle> {
    const id = this.nextId++;
    const f: Follow = { id, onRecords, onEnd, queue: [], busy: false, ended: false };
    // Registered before asking: the first records may arrive in the same message as the reply.
    this.follows.set(id, f);
    let reply: FollowReply;
    try {
      reply = await this.wal.call({ t: WalMsg.Follow, follower: id, from, ...(limits ? { limits } : {}) });
    } catch (err) {
      this.follows.delete(id);
      f.ended = true;
      throw err;
    }
    return { lastLsn: reply.lastLsn, snapshotLsn: reply.snapshotLsn, from: reply.from, cancel: () => this.cancel(f) };
  }

  private cancel(f: Follow): void {
    if (f.ended) return;
    this.end(f, null);
    this.wal.call({ t: WalMsg.Unfollow, follower: f.id }).catch(() => undefined);
  }

  private onPush(msg: WalRecordsPush): void {
    const f = this.follows.get(msg.follower);
    if (f === undefined || f.ended) return; // cancelled: the committer hears Unfollow
    if (msg.error !== undefined) {
      this.end(f, `${msg.error.code}: ${msg.error.message}`);
      return;
    }
    if (f.queue.length >= MAX_QUEUED_BATCHES) {
      this.cancel(f);
      return;
    }
    f.queue.push(msg);
    if (!f.busy) void this.drain(f);
  }

  /** Hands queued batches to the consumer one at a time, acknowledging each when it is done. */
  private async drain(f: Follow): Promise<void> {
    f.busy = true;
    try {
      while (!f.ended && f.queue.length > 0) {
        const batch = f.queue.shift()!;
        await f.onRecords(batch.records);
        if (f.ended) return;
        this.wal.send({ t: WalMsg.Ack, follower: f.id, upTo: batch.seq });
      }
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (!f.ended) {
        this.end(f, `ABORTED: the consumer failed: ${why}`);
        this.wal.call({ t: WalMsg.Unfollow, follower: f.id }).catch(() => undefined);
      }
    } finally {
      f.busy = false;
    }
  }

  private end(f: Follow, reason: string | null): void {
    if (f.ended) return;
    f.ended = true;
    f.queue = [];
    this.follows.delete(f.id);
    f.onEnd(reason);
  }
}
