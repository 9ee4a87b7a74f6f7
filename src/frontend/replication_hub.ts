// The replicas of one TCP front end thread (docs/replica.md): the streams started by BRISE.SYNC
// on its connections, each shown in this thread's rows of the replica table (which INFO
// replication, ROLE and WAIT read, from any thread).
// Owns: the set of running sources; the thread's WalFeed is made on first use.
// Invariants: a source is in the set from its start until its connection ends; at most
// MAX_REPLICAS run at once on a thread.
import type { Socket } from 'node:net';
import { StoreError } from '../runtime/errors.js';
import { parseVolumeLengths } from '../protocol/replica_protocol.js';
import type { WalFeed } from '../db/wal_feed.js';
import { ReplicaSource, type SourceDeps } from './replica_source.js';
import type { ReplicaTable } from '../runtime/replica_table.js';

export const MAX_REPLICAS = 64;
const HISTORY = /^([0-9a-f]{40}|\?)$/;

export interface HubDeps extends Omit<SourceDeps, 'feed'> {
  feed(): WalFeed;
  /** True on a replica: it serves no replicas of its own (no chained replication yet). */
  readOnly(): boolean;
  /** Where every thread's replicas are shown (this thread writes its own rows). */
  table: ReplicaTable;
  thread: number;
}

export class ReplicationHub {
  /** Each running source and its row in the replica table. */
  private readonly sources = new Map<ReplicaSource, number>();

  constructor(private readonly deps: HubDeps) {}

  /** Starts a stream on `socket` for `BRISE.SYNC history applied volumes`; throws when refused. */
  start(socket: Socket, args: readonly Buffer[], addr: string, listeningPort: number): ReplicaSource {
    if (this.deps.readOnly()) throw new StoreError('BAD_ARGUMENT', 'this server is a replica: replicate from its master');
    if (this.sources.size >= MAX_REPLICAS) throw new StoreError('QUEUE_FULL', `more than ${MAX_REPLICAS} replicas on one thread`);
    const [historyArg, appliedArg, volumesArg] = args.map((a) => a.toString('utf8'));
    if (historyArg === undefined || !HISTORY.test(historyArg)) throw new StoreError('BAD_ARGUMENT', 'BRISE.SYNC: the history is 40 hex digits or ?');
    const applied = Number(appliedArg);
    if (!Number.isSafeInteger(applied) || applied < 0) throw new StoreError('BAD_ARGUMENT', 'BRISE.SYNC: the applied LSN is not a non-negative integer');
    const volumes = parseVolumeLengths(volumesArg ?? '');
    if (volumes === null) throw new StoreError('BAD_ARGUMENT', 'BRISE.SYNC: the volumes are not a JSON object of id to length');
    const row = this.deps.table.claim(this.deps.thread, addr.slice(0, addr.lastIndexOf(':')), listeningPort);
    if (row === null) throw new StoreError('QUEUE_FULL', `more than ${MAX_REPLICAS} replicas on one thread`);
    const source = new ReplicaSource(socket, { ...this.deps, feed: this.deps.feed() }, addr, listeningPort, (s) => this.forget(s));
    this.sources.set(source, row);
    socket.once('close', () => {
      if (this.sources.has(source)) this.deps.event?.({ replica: `${addr} (port ${listeningPort})`, what: 'ended', detail: 'the connection closed' });
      source.stop();
      this.forget(source);
    });
    void source.start({ history: historyArg === '?' ? '' : historyArg, applied, volumes });
    return source;
  }

  /** REPLCONF ACK from `source`'s replica. */
  ack(source: ReplicaSource, lsn: number): void {
    source.onAck(lsn);
    const row = this.sources.get(source);
    if (row !== undefined) this.deps.table.update(row, { ackedLsn: source.view.ackedLsn, ackedAt: source.view.ackedAt, online: true });
  }

  private forget(source: ReplicaSource): void {
    const row = this.sources.get(source);
    if (row === undefined) return;
    this.sources.delete(source);
    this.deps.table.release(row);
  }
}
