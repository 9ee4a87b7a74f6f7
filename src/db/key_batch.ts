// One key's queued updates decided as one batch (redis-benchmark INCR: 50 clients, one key).
// Each update's Decide runs on the state the previous one left, in arrival order, as if they ran
// one after another; what the batch writes is only the net change (the last value, or a delete,
// or an expiry), committed as ONE record guarded by the state the batch started from. So N
// updates of a hot key cost one needle, one record and one group commit, not N round trips to
// the volume writer each waiting behind its fsync. If the guard fails, every update of the batch
// runs again: what each answered was decided on a state that never happened.
//
// Only values kept in memory compose (a later update may read them); an update that writes a
// larger or streamed value ends its batch, and the updates after it go in the next one.
import { StoreError } from '../runtime/errors.js';
import type { Limits } from './api.js';
import { checkValueSize } from './bytes.js';
import type { SizedValue } from './engine.js';
import type { Change, Current, Decide, KeyState } from './key_updates.js';
import type { KeyEvent } from '../protocol/keyspace_events.js';

/** Values up to this size are composed in memory (and kept with a speculation). */
export const COMPOSE_VALUE_MAX = 64 * 1024;
/** Updates decided in one batch at most. */
export const MAX_BATCH = 1024;

/** A queued update: its Decide, and how to answer it. */
export interface Member {
  decide: Decide<unknown>;
  resolve(result: unknown): void;
  reject(err: unknown): void;
  /** Times its batch failed its guard. */
  attempts: number;
}

/** What one member decided: its result and events, or the error its Decide threw. */
export type Outcome = { ok: true; result: unknown; events: KeyEvent[] | undefined } | { ok: false; error: unknown };

/** The key after the batch: absent, the needle it started from (maybe a new expiry), or a new value. */
type Net = null | { value: SizedValue | null; expiresAt: number };

/** A state for a value not placed yet: decides read size, expiry and bytes, never the address. */
const UNPLACED = { volume: -1, offset: -1, length: 0 } as const;

export interface Composed {
  /** Members decided (a prefix of the batch); the rest go to the next batch. */
  decided: number;
  outcomes: Outcome[];
  /** The net change, as at most one Change. */
  changes: Change[];
}

/**
 * Runs the members' Decides in order on `initial` (the key's state as read), each on what the
 * previous left. `current` builds the view a Decide gets of a state.
 */
export async function compose(
  key: Buffer,
  initial: KeyState | null,
  members: readonly Member[],
  now: () => number,
  current: (state: KeyState | null) => Current,
  limits: Limits,
): Promise<Composed> {
  let net: Net = initial === null ? null : { value: null, expiresAt: initial.expiresAt };
  const outcomes: Outcome[] = [];
  for (const member of members) {
    let last = false;
    try {
      const decision = await member.decide([current(stateOf(initial, net))], now());
      let next = net;
      for (const change of decision.changes) {
        if (!change.key.equals(key)) throw new StoreError('INTERNAL', 'an update changes a key it did not read');
        next = applied(next, change, limits);
        if (change.kind === 'set' && !composable(change.value)) last = true;
      }
      net = next;
      outcomes.push({ ok: true, result: decision.result, events: decision.events });
    } catch (error) {
      outcomes.push({ ok: false, error });
    }
    if (last) break;
  }
  return { decided: outcomes.length, outcomes, changes: netChanges(key, initial, net) };
}

function composable(value: SizedValue): boolean {
  return value instanceof Uint8Array && value.length <= COMPOSE_VALUE_MAX;
}

function applied(net: Net, change: Change, limits: Limits): Net {
  if (change.kind === 'del') return null;
  if (change.kind === 'expire') {
    if (net === null) throw new StoreError('INTERNAL', 'an update changes the expiry of a key that is not live');
    return { ...net, expiresAt: change.expiresAt };
  }
  checkValueSize(change.value instanceof Uint8Array ? change.value.length : change.value.size, limits);
  return { value: change.value, expiresAt: change.expiresAt };
}

/** What a Decide sees of the net state. */
function stateOf(initial: KeyState | null, net: Net): KeyState | null {
  if (net === null) return null;
  if (net.value === null) return { ...initial!, expiresAt: net.expiresAt };
  const value = net.value as Uint8Array;
  return { address: UNPLACED, expiresAt: net.expiresAt, size: value.length, value };
}

/** The net change from `initial`: none, a delete, an expiry, or the last value. */
function netChanges(key: Buffer, initial: KeyState | null, net: Net): Change[] {
  if (net === null) return initial === null ? [] : [{ kind: 'del', key }];
  if (net.value === null) return net.expiresAt === initial!.expiresAt ? [] : [{ kind: 'expire', key, expiresAt: net.expiresAt }];
  return [{ kind: 'set', key, value: net.value, expiresAt: net.expiresAt }];
}
