// Read-modify-write on keys: INCR, APPEND, SETRANGE, GETDEL, RENAME, COPY, MSETNX, EXPIRE GT...
// A command reads the keys it names, decides what to write from what it read (a pure function,
// `Decide`), and commits that as ONE record guarded by what it read (GUARD ops, docs/formats.md):
// the index judges the guards in log order, so a concurrent write from any thread or process
// makes the record a no-op instead of being lost, and the update runs again on fresh state.
//
// Speed on a hot key (redis-benchmark INCR: 50 clients, one key) comes from three things:
// - In this thread, updates of one key take turns (KeyLocks), so they do not conflict with each
//   other; the turn lasts only while reading, deciding and placing the needle, never across a
//   disk sync.
// - Updates of ONE key that queue while a turn is taken are decided together as a batch
//   (key_batch.ts): one needle, one record for all of them.
// - The next turn does not wait for the previous one's commit: it reads what the previous one
//   wrote (a Speculation: its needle, expiry and small value), guards on it, and submits its
//   record after the previous one's, so bursts of updates of one key ride one group commit. If an
//   earlier record fails its guard, every record chained on it fails too (their guards name a
//   state that never happened) and each runs again once its predecessors settled.
import type { Clock } from '../runtime/clock.js';
import { StoreError } from '../runtime/errors.js';
import { GuardKind, OpCode, guardsFailed, valueLengthOf, type IndexEntry, type NeedleAddress, type Op } from '../storage/types.js';
import { checkValueSize, mapKey, toBuffer } from './bytes.js';
import type { KeyEvent } from '../protocol/keyspace_events.js';
import type { Engine, Placed, SizedValue } from './engine.js';
import { COMPOSE_VALUE_MAX, MAX_BATCH, compose, type Member, type Outcome } from './key_batch.js';

/** What a key holds, as an update sees it: its needle and expiry, and its bytes when small. */
export interface KeyState {
  address: NeedleAddress;
  expiresAt: number;
  /** Length of the value. */
  size: number;
  value?: Uint8Array;
  /** When the value was last written (ms, second precision), when known. */
  modifiedAt?: number;
}

/** One key an update read: its state (null: not live) and a way to its bytes. */
export interface Current {
  readonly key: Buffer;
  readonly state: KeyState | null;
  /** The whole value, or null when the key is not live. Mind `state.size` before asking. */
  value(): Promise<Buffer | null>;
  /** `length` bytes of the value from `start`, in chunks, checked (constant memory). */
  stream(start: number, length: number): AsyncIterable<Uint8Array>;
}

/** A write an update decided: only to keys it read, so that what it read guards it. */
export type Change =
  | { kind: 'set'; key: Buffer; value: SizedValue; expiresAt: number }
  | { kind: 'del'; key: Buffer }
  | { kind: 'expire'; key: Buffer; expiresAt: number };

export interface Decision<R> {
  changes: Change[];
  result: R;
  /** Keyspace notifications to publish once the changes are committed. */
  events?: KeyEvent[];
}

/** Decides from the keys' states, in the order asked, at `now`. May throw (nothing is written). */
export type Decide<R> = (current: Current[], now: number) => Promise<Decision<R>> | Decision<R>;

/** Runs of one update before it gives up: only writers in other threads can make it run again. */
const MAX_ATTEMPTS = 64;

/** What an update in flight wrote to a key: the state the next update of the key starts from. */
interface Speculation {
  state: KeyState | null;
  /** Resolves once the record is handed to the WAL committer (records after it go after it). */
  submitted: Promise<void>;
  /** Resolves once the record is answered, applied or not. */
  settled: Promise<void>;
}

export class KeyUpdates {
  private readonly locks = new KeyLocks();
  private readonly speculations = new Map<string, Speculation>();
  /** Per key, the batch of single-key updates waiting for their turn (joined until it starts). */
  private readonly open = new Map<string, Member[]>();

  constructor(
    private readonly engine: Engine,
    private readonly clock: Clock,
  ) {}

  /** Keys with an update in flight in this thread (a gauge for INFO). */
  get inFlight(): number {
    return this.speculations.size;
  }

  run<R>(keys: Buffer[], decide: Decide<R>): Promise<R> {
    if (keys.length !== 1) return this.runAlone(keys, decide);
    return new Promise<R>((resolve, reject) => {
      this.join(keys[0]!, { decide, resolve: resolve as (r: unknown) => void, reject, attempts: 0 });
    });
  }

  /** Queues a single-key update: in the key's open batch, or as the first of a new one. */
  private join(key: Buffer, member: Member): void {
    const mk = mapKey(key);
    const batch = this.open.get(mk);
    if (batch !== undefined && batch.length < MAX_BATCH) {
      batch.push(member);
      return;
    }
    const mine = [member];
    this.open.set(mk, mine);
    void this.runBatch(key, mk, mine);
  }

  /** A batch's turn: decided together, committed as one record, each member answered. */
  private async runBatch(key: Buffer, mk: string, batch: Member[]): Promise<void> {
    const release = await this.locks.acquire([mk]);
    // The batch closes when its turn comes: later updates start the next one.
    if (this.open.get(mk) === batch) this.open.delete(mk);
    let released = false;
    const unlock = (): void => {
      if (!released) release();
      released = true;
    };
    // The members this turn answers (those past a streamed value are handed on).
    let members = batch;
    try {
      const before = this.speculations.get(mk);
      const [initial] = await this.read([key], [before]);
      const composed = await compose(key, initial!, batch, () => this.clock.now(), (state) => this.current(key, state), this.engine.limits);
      members = batch.slice(0, composed.decided);
      // Those after a streamed value go to the next batch, behind this one.
      for (const m of batch.slice(composed.decided)) this.join(key, m);
      if (composed.changes.length === 0) {
        unlock();
        answer(members, composed.outcomes, this.engine);
        return;
      }
      const { placed, ops, after } = await this.prepare([key], [mk], [initial!], composed.changes);
      // On a failed guard this batch counts as settled only once its members are queued again:
      // a later batch of the key (chained on this one, so failing too) waits for that, and so
      // queues behind them. Updates of one key keep their order through any number of retries,
      // which lets one connection run a pipeline of them at once.
      const outcome = await this.commitChained(placed, ops, after, [before], unlock, true);
      if (outcome.applied) answer(members, composed.outcomes, this.engine);
      else {
        try {
          await this.again(key, members, outcome.predecessors);
        } finally {
          outcome.settle();
        }
      }
    } catch (err) {
      for (const m of members) m.reject(err);
    } finally {
      unlock();
    }
  }

  /** A batch whose guard failed: each member runs again, or gives up after MAX_ATTEMPTS. */
  private async again(key: Buffer, members: Member[], predecessors: Promise<unknown>): Promise<void> {
    await predecessors;
    const attempt = Math.max(...members.map((m) => ++m.attempts));
    if (attempt > 2) await new Promise((r) => setTimeout(r, Math.min(50, attempt) * Math.random()));
    for (const m of members) {
      if (m.attempts >= MAX_ATTEMPTS) m.reject(gaveUp());
      else this.join(key, m);
    }
  }

  private async runAlone<R>(keys: Buffer[], decide: Decide<R>): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(keys, decide);
      if (outcome.done) return outcome.result;
      if (attempt >= MAX_ATTEMPTS) throw gaveUp();
      await outcome.predecessors;
      // Another thread or process won: back off a little, more each time.
      if (attempt > 2) await new Promise((r) => setTimeout(r, Math.min(50, attempt) * Math.random()));
    }
  }

  private async attempt<R>(keys: Buffer[], decide: Decide<R>): Promise<{ done: true; result: R } | { done: false; predecessors: Promise<unknown> }> {
    const mks = keys.map(mapKey);
    const release = await this.locks.acquire(mks);
    let released = false;
    const unlock = (): void => {
      if (!released) release();
      released = true;
    };
    try {
      const before = mks.map((mk) => this.speculations.get(mk));
      const states = await this.read(keys, before);
      const currents = keys.map((key, i) => this.current(key, states[i]!));
      const decision = await decide(currents, this.clock.now());
      if (decision.changes.length === 0) {
        if (decision.events !== undefined) this.engine.notify(decision.events);
        return { done: true, result: decision.result };
      }
      const { placed, ops, after } = await this.prepare(keys, mks, states, decision.changes);
      const outcome = await this.commitChained(placed, ops, after, before, unlock);
      if (!outcome.applied) return { done: false, predecessors: outcome.predecessors };
      if (decision.events !== undefined) this.engine.notify(decision.events);
      return { done: true, result: decision.result };
    } finally {
      unlock();
    }
  }

  /**
   * Publishes what the record writes (the next update of these keys starts from it), lets the
   * next update go (`unlock`), then commits the record after those it chained on.
   */
  private async commitChained(
    placed: Placed[],
    ops: Op[],
    after: Map<string, KeyState | null>,
    before: (Speculation | undefined)[],
    unlock: () => void,
    holdOnFailure = false,
  ): Promise<{ applied: boolean; predecessors: Promise<unknown>; settle: () => void }> {
    let submit!: () => void;
    let settle!: () => void;
    const mine = { submitted: new Promise<void>((r) => (submit = r)), settled: new Promise<void>((r) => (settle = r)) };
    const published = new Map<string, Speculation>();
    for (const [mk, state] of after) {
      const spec = { state, ...mine };
      published.set(mk, spec);
      this.speculations.set(mk, spec);
    }
    unlock();
    const predecessors = Promise.all(before.map((b) => b?.settled));
    let held = false;
    try {
      const redo = await this.engine.secure(placed);
      let results: number[];
      try {
        await Promise.all(before.map((b) => b?.submitted));
        const committing = this.engine.ports.commit.commit(ops, redo);
        submit();
        ({ results } = await committing);
      } finally {
        this.engine.releaseRedo(redo);
      }
      this.engine.committed(ops, results);
      const applied = !guardsFailed(ops, results);
      held = !applied && holdOnFailure;
      return { applied, predecessors, settle };
    } finally {
      submit();
      if (!held) settle();
      for (const [mk, spec] of published) if (this.speculations.get(mk) === spec) this.speculations.delete(mk);
    }
  }

  /** Each key's state: what an update in flight wrote, else the index. */
  private async read(keys: Buffer[], before: (Speculation | undefined)[]): Promise<(KeyState | null)[]> {
    const fromIndex = keys.filter((_, i) => before[i] === undefined);
    const entries = fromIndex.length > 0 ? await this.engine.lookupLiveMany(fromIndex) : [];
    let next = 0;
    return keys.map((key, i) => {
      const spec = before[i];
      if (spec !== undefined) return spec.state;
      const entry = entries[next++];
      return entry === undefined ? null : stateOf(key, entry);
    });
  }

  private current(key: Buffer, state: KeyState | null): Current {
    const engine = this.engine;
    return {
      key,
      state,
      async value() {
        if (state === null) return null;
        if (state.value !== undefined) return Buffer.from(state.value);
        return toBuffer(await engine.ports.reader.read(state.address, key));
      },
      stream(start, length) {
        if (state === null) throw new StoreError('INTERNAL', 'stream of a key that is not live');
        // A value decided earlier in this batch is not placed yet: it is in memory.
        if (state.value !== undefined) return inMemory(state.value.subarray(start, start + length));
        return engine.ports.reader.stream(state.address, key, start, length);
      },
    };
  }

  /**
   * The needles of the changes placed, and the record: a GUARD for every key read (its state as
   * read), then the changes. `after`: the state each changed key will have.
   */
  private async prepare(
    keys: Buffer[],
    mks: string[],
    states: (KeyState | null)[],
    changes: Change[],
  ): Promise<{ placed: Placed[]; ops: Op[]; after: Map<string, KeyState | null> }> {
    const ops: Op[] = [];
    const readAt = new Map<string, number>();
    mks.forEach((mk, i) => {
      if (readAt.has(mk)) return;
      readAt.set(mk, i);
      const s = states[i]!;
      ops.push(s === null
        ? { code: OpCode.Guard, key: keys[i]!, kind: GuardKind.Absent, volume: 0, offset: 0, expiresAt: 0 }
        : { code: OpCode.Guard, key: keys[i]!, kind: GuardKind.Same, volume: s.address.volume, offset: s.address.offset, expiresAt: s.expiresAt });
    });
    const placed: Placed[] = [];
    const after = new Map<string, KeyState | null>();
    for (const change of changes) {
      const mk = mapKey(change.key);
      const i = readAt.get(mk);
      if (i === undefined) throw new StoreError('INTERNAL', 'an update changes a key it did not read');
      if (change.kind === 'del') {
        ops.push({ code: OpCode.Del, key: change.key });
        after.set(mk, null);
      } else if (change.kind === 'expire') {
        const was = after.has(mk) ? after.get(mk)! : states[i]!;
        if (was === null) throw new StoreError('INTERNAL', 'an update changes the expiry of a key that is not live');
        ops.push({ code: OpCode.Expire, key: change.key, expiresAt: change.expiresAt });
        after.set(mk, { ...was, expiresAt: change.expiresAt });
      } else {
        const p = await this.engine.placeValue(change.key, change.value, change.expiresAt, false);
        placed.push(p);
        ops.push({ code: OpCode.Set, key: change.key, address: p.address, expiresAt: change.expiresAt });
        checkValueSize(change.value instanceof Uint8Array ? change.value.length : change.value.size, this.engine.limits);
        const small = change.value instanceof Uint8Array && change.value.length <= COMPOSE_VALUE_MAX;
        const size = valueLengthOf(p.address, change.key.length);
        after.set(mk, { address: p.address, expiresAt: change.expiresAt, size, ...(small ? { value: change.value as Uint8Array } : {}) });
      }
    }
    return { placed, ops, after };
  }
}

/** Each member's answer and, when it succeeded, its notifications, in batch order. */
function answer(members: Member[], outcomes: Outcome[], engine: Engine): void {
  members.forEach((m, i) => {
    const o = outcomes[i]!;
    if (!o.ok) return m.reject(o.error);
    if (o.events !== undefined) engine.notify(o.events);
    m.resolve(o.result);
  });
}

function gaveUp(): StoreError {
  return new StoreError('CONFLICT', `the key is written concurrently by other clients: gave up after ${MAX_ATTEMPTS} attempts`);
}

async function* inMemory(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function stateOf(key: Uint8Array, entry: IndexEntry): KeyState {
  const state: KeyState = { address: entry.address, expiresAt: entry.expiresAt, size: valueLengthOf(entry.address, key.length) };
  if (entry.modifiedAt !== undefined) state.modifiedAt = entry.modifiedAt;
  return state;
}

/**
 * Turns per key in this thread. acquire() queues on every key at once, synchronously, so two
 * multi-key updates queue in the same order on every key they share: no deadlock.
 */
export class KeyLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async acquire(keys: string[]): Promise<() => void> {
    const unique = [...new Set(keys)];
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const waits: Promise<void>[] = [];
    for (const k of unique) {
      const prev = this.tails.get(k);
      if (prev !== undefined) waits.push(prev);
      this.tails.set(k, mine);
    }
    await Promise.all(waits);
    return () => {
      release();
      for (const k of unique) if (this.tails.get(k) === mine) this.tails.delete(k);
    };
  }

  get size(): number {
    return this.tails.size;
  }
}
