// A session's stack of open transaction levels (BEGIN pushes, COMMIT merges into the parent,
// ROLLBACK pops). Each level maps a key to its pending write. A pending SET names a needle that
// was already appended (unsynced) when the SET ran, so memory holds addresses, not values,
// except small values kept for read-your-writes without a disk read. Nothing here is visible
// to other sessions until the outermost COMMIT turns the merged level into one WAL record.
//
// Isolation: the stack also keeps what the transaction read from the committed store (each key's
// state as first seen). The outermost COMMIT guards its record with those states (GUARD ops), so
// the transaction applies only if nothing it read changed meanwhile: serializable, optimistic.
// A FLUSHALL inside the transaction marks its level: below it, nothing is visible.
import { canaries } from '../runtime/canary.js';
import type { Placed } from './engine.js';
import type { KeyState } from './key_updates.js';
import { StoreError } from '../runtime/errors.js';
import type { KeyEvent } from '../protocol/keyspace_events.js';

export type PendingWrite =
  | { kind: 'set'; placed: Placed; expiresAt: number; size: number; value?: Buffer }
  | { kind: 'del' }
  /** An expiry change on a value that is not pending in the transaction (EXPIRE/PERSIST). */
  | { kind: 'expire'; expiresAt: number };

/** One level: its writes, and whether it began with a FLUSHALL (everything below is gone). */
export interface Level {
  writes: Map<string, PendingWrite>;
  flushed: boolean;
  /** Keyspace notifications of the level's writes, published once the transaction commits. */
  events: KeyEvent[];
}

/** What the outermost COMMIT hands over: the merged writes, the flush, and what was read. */
export interface Committed extends Level {
  reads: Map<string, KeyState | null>;
}

const DELETED: PendingWrite = { kind: 'del' };

export class TransactionStack {
  private readonly levels: Level[] = [];
  /** Each key read from the committed store, as first seen (null: not live). */
  private reads = new Map<string, KeyState | null>();
  private ops = 0;
  private bytes = 0;

  constructor(private readonly maxOps: number, private readonly maxBytes: number) {}

  get depth(): number {
    return this.levels.length;
  }

  begin(): void {
    this.levels.push({ writes: new Map(), flushed: false, events: [] });
  }

  /**
   * The newest pending write of a key across all levels, if any; a deletion when a FLUSHALL
   * of the transaction hides everything below.
   */
  find(key: string): PendingWrite | undefined {
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const level = this.levels[i]!;
      const write = level.writes.get(key);
      if (write !== undefined) return write;
      if (level.flushed) return DELETED;
    }
    return undefined;
  }

  /** True when a FLUSHALL of the transaction hides the committed store. */
  get flushed(): boolean {
    return this.levels.some((l) => l.flushed);
  }

  /** Every key with a pending write in any level still visible (above the newest flush). */
  pendingKeys(): Set<string> {
    const keys = new Set<string>();
    let from = 0;
    this.levels.forEach((l, i) => {
      if (l.flushed) from = i;
    });
    for (const level of this.levels.slice(from)) for (const key of level.writes.keys()) keys.add(key);
    return keys;
  }

  /** Notifications of writes of the top level (dropped by its ROLLBACK). */
  noteEvents(events: readonly KeyEvent[]): void {
    const top = this.levels[this.levels.length - 1];
    if (top !== undefined) top.events.push(...events.slice(0, Math.max(0, MAX_EVENTS - top.events.length)));
  }

  /** Records a read of the committed store (the first one of each key counts). */
  noteRead(key: string, state: KeyState | null): void {
    if (this.levels.length > 0 && !this.reads.has(key)) this.reads.set(key, state);
  }

  /** FLUSHALL inside the transaction: the top level forgets its writes and hides all below. */
  flush(): void {
    const top = this.levels[this.levels.length - 1];
    if (top === undefined) throw new StoreError('NO_TRANSACTION', 'no transaction is open');
    top.writes.clear();
    top.flushed = true;
  }

  put(key: string, write: PendingWrite): void {
    const top = this.levels[this.levels.length - 1];
    if (top === undefined) throw new StoreError('NO_TRANSACTION', 'no transaction is open');
    const size = write.kind === 'set' ? (write.value?.length ?? 0) + key.length : key.length;
    if (this.ops + 1 > this.maxOps) {
      throw new StoreError('BATCH_TOO_LARGE', `a transaction may hold at most ${this.maxOps} writes`);
    }
    if (this.bytes + size > this.maxBytes) {
      throw new StoreError('BATCH_TOO_LARGE', `a transaction may buffer at most ${this.maxBytes} bytes`);
    }
    this.ops += 1;
    this.bytes += size;
    top.writes.set(key, write);
  }

  /** Pops the innermost level; returns the whole transaction when it was the outermost. */
  commit(): Committed | undefined {
    const top = this.levels.pop();
    if (top === undefined) throw new StoreError('NO_TRANSACTION', 'COMMIT without BEGIN');
    const parent = this.levels[this.levels.length - 1];
    if (parent === undefined) {
      const reads = this.reads;
      this.reset();
      return { ...top, reads };
    }
    mergeLevel(parent, top);
    return undefined;
  }

  rollback(): void {
    const top = this.levels.pop();
    if (top === undefined) throw new StoreError('NO_TRANSACTION', 'ROLLBACK without BEGIN');
    const parent = this.levels[this.levels.length - 1];
    // Canary: a rolled-back inner level leaks into its parent, so the outer COMMIT applies it.
    if (canaries.applyRollback && parent !== undefined) mergeLevel(parent, top);
    if (parent === undefined) this.reset();
  }

  /** Drops everything (connection closed). */
  clear(): void {
    this.levels.length = 0;
    this.reset();
  }

  private reset(): void {
    this.ops = 0;
    this.bytes = 0;
    this.reads = new Map();
  }
}

/** A committed inner level joins its parent: a flush in it replaces what the parent had. */
function mergeLevel(parent: Level, top: Level): void {
  if (top.flushed) {
    parent.writes.clear();
    parent.flushed = true;
  }
  for (const [key, write] of top.writes) parent.writes.set(key, mergeInto(parent.writes.get(key), write));
  parent.events.push(...top.events.slice(0, Math.max(0, MAX_EVENTS - parent.events.length)));
}

/** Notifications one transaction keeps (one per write at most: maxTransactionOps bounds them too). */
const MAX_EVENTS = 1_000_000;

/** An expiry change on top of a pending set changes that set; anything else replaces. */
function mergeInto(below: PendingWrite | undefined, above: PendingWrite): PendingWrite {
  if (above.kind === 'expire' && below !== undefined) {
    if (below.kind === 'set') return { ...below, expiresAt: above.expiresAt };
    if (below.kind === 'del') return below;
  }
  return above;
}

/** Within one level, applying an expiry to the visible pending write. */
export function withExpiry(current: PendingWrite | undefined, expiresAt: number): PendingWrite {
  return mergeInto(current, { kind: 'expire', expiresAt });
}
