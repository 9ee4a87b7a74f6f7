// A session's stack of open transaction levels (BEGIN pushes, COMMIT merges into the parent,
// ROLLBACK pops). Each level maps a key to its pending write. A pending SET names a needle that
// was already appended (unsynced) when the SET ran, so memory holds addresses, not values,
// except small values kept for read-your-writes without a disk read. Nothing here is visible
// to other sessions until the outermost COMMIT turns the merged level into one WAL record.
import { canaries } from '../runtime/canary.js';
import type { Placed } from './engine.js';
import { StoreError } from '../runtime/errors.js';

export type PendingWrite =
  | { kind: 'set'; placed: Placed; expiresAt: number; size: number; value?: Buffer }
  | { kind: 'del' }
  /** An expiry change on a value that is not pending in the transaction (EXPIRE/PERSIST). */
  | { kind: 'expire'; expiresAt: number };

export type Level = Map<string, PendingWrite>;

export class TransactionStack {
  private readonly levels: Level[] = [];
  private ops = 0;
  private bytes = 0;

  constructor(private readonly maxOps: number, private readonly maxBytes: number) {}

  get depth(): number {
    return this.levels.length;
  }

  begin(): void {
    this.levels.push(new Map());
  }

  /** The newest pending write of a key across all levels, if any. */
  find(key: string): PendingWrite | undefined {
    for (let i = this.levels.length - 1; i >= 0; i--) {
      const write = this.levels[i]!.get(key);
      if (write !== undefined) return write;
    }
    return undefined;
  }

  /** Every key with a pending write in any level. */
  pendingKeys(): Set<string> {
    const keys = new Set<string>();
    for (const level of this.levels) for (const key of level.keys()) keys.add(key);
    return keys;
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
    top.set(key, write);
  }

  /** Pops the innermost level; returns it when it was the outermost (ready to commit). */
  commit(): Level | undefined {
    const top = this.levels.pop();
    if (top === undefined) throw new StoreError('NO_TRANSACTION', 'COMMIT without BEGIN');
    const parent = this.levels[this.levels.length - 1];
    if (parent === undefined) {
      this.reset();
      return top;
    }
    for (const [key, write] of top) parent.set(key, mergeInto(parent.get(key), write));
    return undefined;
  }

  rollback(): void {
    const top = this.levels.pop();
    if (top === undefined) throw new StoreError('NO_TRANSACTION', 'ROLLBACK without BEGIN');
    const parent = this.levels[this.levels.length - 1];
    // Canary: a rolled-back inner level leaks into its parent, so the outer COMMIT applies it.
    if (canaries.applyRollback && parent !== undefined) {
      for (const [key, write] of top) parent.set(key, mergeInto(parent.get(key), write));
    }
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
  }
}

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
