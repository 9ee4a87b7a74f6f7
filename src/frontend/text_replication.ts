// REPLICATE on the seed's line protocol (docs/text-protocol.md): a snapshot of every live key
// as `+{json}` lines, then `+READY`, then live entries, for the seed's replica and its Go
// client (`client.DialReplica`), which apply `{"Type":"SET"|"DELETE","Key","Value","ExpiresAt"}`.
// Owns: one WAL follow (this front end's WalFeed) and the session it reads keys with.
// Why "what the key holds now" rather than a translation of each WAL op: our records name
// needle addresses, carry GUARDs (a record whose guard failed applied nothing) and conditional
// ops (SET NX, the TTL sweep's DELIF); the seed's entries carry values and apply blindly. So for
// every key a record touches, the entry sent is the key's state read after the record was
// committed (the feed pushes a record only once the index applied it): the last entry sent for
// a key is never older than its last change, so a replica that applies the stream in order ends
// equal to the master, whatever the conditions decided.
// Invariants:
// - the follow starts before the snapshot, and what it delivers meanwhile is held until +READY
//   is written (the committer bounds what it keeps for us; past that it drops the follow and the
//   stream ends with an error line), so no change is missed between snapshot and live;
// - entries leave in the order the feed delivers; a batch is acknowledged only once its lines
//   are accepted by the socket (write resolves), so a slow replica slows its own feed;
// - after stop() nothing more is written.
import type { Session } from '../db/api.js';
import { codedMessage } from '../runtime/errors.js';
import { WAL_FOLLOW_END, type FollowHandle, type WalFeed } from '../db/wal_feed.js';
import { OpCode, type WalRecord } from '../storage/types.js';
import { READY_LINE, replicationLine, type ReplicationEntry } from '../protocol/text_reply.js';

/** Where the stream goes: the text connection's socket, with its back-pressure. */
export interface ReplicationSink {
  /** Queues bytes; resolves when the socket can take more. */
  write(bytes: Buffer): Promise<void>;
  /** Ends the stream: one `-message` line, then the connection closes. */
  fail(message: string): void;
  readonly closed: boolean;
}

/** A value larger than this cannot go into one JSON line (memory, and V8's string limit). */
export const MAX_REPLICATED_VALUE = 64 * 1024 * 1024;
/** Keys read per SCAN call of the snapshot. */
const SNAPSHOT_SCAN_COUNT = 256;

export class TextReplication {
  private follow: FollowHandle | null = null;
  private stopped = false;

  constructor(
    private readonly session: Session,
    private readonly feed: WalFeed,
    private readonly sink: ReplicationSink,
  ) {}

  /** Snapshot, then +READY; resolves once +READY is queued (live entries go on after it). */
  async start(): Promise<void> {
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    try {
      const handle = await this.feed.follow(
        WAL_FOLLOW_END,
        async (records) => {
          await gate;
          await this.sendLive(records);
        },
        (why) => {
          if (why !== null && !this.stopped) this.sink.fail(`ERR the replication stream ended: ${why}; send REPLICATE again`);
        },
      );
      if (this.stopped) handle.cancel();
      else this.follow = handle;
      await this.snapshot();
      if (this.stopped || this.sink.closed) return;
      await this.sink.write(READY_LINE);
    } catch (err) {
      if (!this.stopped) this.sink.fail(`ERR ${codedMessage(err)}`);
      this.stop();
    } finally {
      openGate();
    }
  }

  /** The connection is closing: no more entries; the WAL committer forgets the follower. */
  stop(): void {
    this.stopped = true;
    this.follow?.cancel();
    this.follow = null;
  }

  /** Every live key, a SCAN batch at a time (committed data only: a fresh session has no transaction). */
  private async snapshot(): Promise<void> {
    let cursor = '0';
    do {
      const batch = await this.session.scan(cursor, { count: SNAPSHOT_SCAN_COUNT });
      for (const key of batch.keys) {
        if (this.stopped) return;
        const entry = await this.entryOf(key);
        // A key deleted since the scan saw it is simply not in the snapshot.
        if (entry.type === 'SET') await this.sink.write(replicationLine(entry));
      }
      cursor = batch.cursor;
    } while (cursor !== '0' && !this.stopped);
  }

  private async sendLive(records: WalRecord[]): Promise<void> {
    for (const item of touched(records)) {
      if (this.stopped) return;
      const entry = item === 'flush' ? ({ type: 'FLUSH' } as const) : await this.entryOf(item);
      await this.sink.write(replicationLine(entry));
    }
  }

  /** What the key holds now: its value and expiry, read together from one index entry. */
  private async entryOf(key: Buffer): Promise<ReplicationEntry> {
    const found = await this.session.getStream(key);
    if (found === null) return { type: 'DELETE', key };
    if (found.info.size > MAX_REPLICATED_VALUE) {
      throw new Error(
        `key '${key.toString('utf8').slice(0, 128)}' holds ${found.info.size} bytes, more than a REPLICATE line carries (${MAX_REPLICATED_VALUE}); follow the WAL over the HTTP port instead (/v1/wal, docs/websocket.md)`,
      );
    }
    const chunks: Buffer[] = [];
    for await (const chunk of found.body) chunks.push(chunk);
    return { type: 'SET', key, value: Buffer.concat(chunks), expiresAtMs: found.info.expiresAt };
  }
}

/**
 * The keys the records touch, each once, at its last place, with the FLUSHes where they were:
 * a key written before and after a FLUSH is sent after it. GUARDs change nothing, nor do
 * vacuum's MOVE_IF (the same value at a new address) and RETIRE: skipped.
 */
export function touched(records: readonly WalRecord[]): Array<Buffer | 'flush'> {
  const items: Array<Buffer | 'flush'> = [];
  for (const r of records) {
    for (const op of r.ops) {
      if (op.code === OpCode.Flush) items.push('flush');
      else if (op.code !== OpCode.Guard && op.code !== OpCode.MoveIf && op.code !== OpCode.Retire) items.push(Buffer.from(op.key));
    }
  }
  const seen = new Set<string>();
  const out: Array<Buffer | 'flush'> = [];
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i]!;
    if (item !== 'flush') {
      const k = item.toString('latin1');
      if (seen.has(k)) continue;
      seen.add(k);
    }
    out.push(item);
  }
  return out.reverse();
}
