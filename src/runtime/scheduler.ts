// The time seam's other half: an actor never calls setImmediate, setTimeout or setInterval
// itself; it asks its Scheduler, so a simulation can run the very same actor code in one
// thread, deterministically, with time that only moves when the test moves it.
//
// - systemScheduler: node's timers, unref'd (a timer alone never keeps a process alive).
// - ScopedScheduler: a child whose callbacks all stop when it is closed: one per actor
//   incarnation in the in-thread host, so a "dead" actor's deferred work never runs after its
//   death (as nothing runs in a thread that has exited).
// - ManualScheduler: virtual time on a ManualClock; `after`/`every` fire only when advance()
//   passes their due time, in due order; deferred work runs in FIFO order, a turn's worth per
//   setImmediate, which is deterministic in a thread that does no real I/O.
//   `settle()` waits until no deferred work is left.
import type { ManualClock } from './clock.js';

export interface Timer {
  cancel(): void;
}

export interface Scheduler {
  /** Runs fn after the current event-loop turn (setImmediate): group commits, job slices. */
  defer(fn: () => void): void;
  /**
   * Runs fn once, ms from now. Timers do not keep a process alive unless `keepAlive` (the
   * supervisor's restart backoff must: between a death and its restart nothing else may).
   */
  after(ms: number, fn: () => void, keepAlive?: boolean): Timer;
  /** Runs fn every ms. */
  every(ms: number, fn: () => void): Timer;
}

export const systemScheduler: Scheduler = {
  defer(fn) {
    setImmediate(fn);
  },
  after(ms, fn, keepAlive = false) {
    const t = setTimeout(fn, ms);
    if (!keepAlive) t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

/**
 * A child scheduler that can be closed: afterwards nothing it scheduled runs. A callback that
 * throws is handed to `onError` (the in-thread host crashes the actor with it, as an uncaught
 * error ends a worker thread) instead of escaping into the caller's event loop.
 */
export class ScopedScheduler implements Scheduler {
  private closed = false;
  private readonly timers = new Set<Timer>();

  constructor(
    private readonly parent: Scheduler,
    private readonly onError: (err: unknown) => void,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  defer(fn: () => void): void {
    if (this.closed) return;
    this.parent.defer(() => this.run(fn));
  }

  after(ms: number, fn: () => void, keepAlive = false): Timer {
    return this.track((run) => this.parent.after(ms, run, keepAlive), fn, true);
  }

  every(ms: number, fn: () => void): Timer {
    return this.track((run) => this.parent.every(ms, run), fn, false);
  }

  /** A parent timer whose cancel is remembered until it fires (once) or is cancelled. */
  private track(start: (run: () => void) => Timer, fn: () => void, once: boolean): Timer {
    if (this.closed) return { cancel: () => undefined };
    const handle: Timer = {
      cancel: () => {
        this.timers.delete(handle);
        inner.cancel();
      },
    };
    const inner = start(() => {
      if (once) this.timers.delete(handle);
      this.run(fn);
    });
    this.timers.add(handle);
    return handle;
  }

  close(): void {
    this.closed = true;
    for (const t of [...this.timers]) t.cancel();
    this.timers.clear();
  }

  private run(fn: () => void): void {
    if (this.closed) return;
    try {
      fn();
    } catch (err) {
      this.onError(err);
    }
  }
}

interface ManualTimer {
  due: number;
  seq: number;
  fn: () => void;
  /** 0 for a one-shot timer. */
  every: number;
  cancelled: boolean;
}

/** Deterministic virtual time for tests: see the top of the file. */
export class ManualScheduler implements Scheduler {
  private readonly timers: ManualTimer[] = [];
  private seq = 0;
  /** Deferred callbacks not yet run. */
  private pending = 0;
  private queue: (() => void)[] = [];
  private drainScheduled = false;

  constructor(readonly clock: ManualClock) {}

  defer(fn: () => void): void {
    this.pending++;
    this.queue.push(fn);
    if (!this.drainScheduled) {
      this.drainScheduled = true;
      setImmediate(this.drain);
    }
  }

  /**
   * One setImmediate runs every callback deferred before it, in order; what they defer runs in
   * the next turn (the order a loop of setImmediate calls would give, at a fraction of the cost).
   */
  private readonly drain = (): void => {
    this.drainScheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (let i = 0; i < batch.length; i++) {
      this.pending--;
      try {
        batch[i]!();
      } catch (err) {
        // The rest still runs (next turn); the error surfaces as an uncaught one would.
        this.queue = batch.slice(i + 1).concat(this.queue);
        if (!this.drainScheduled) {
          this.drainScheduled = true;
          setImmediate(this.drain);
        }
        throw err;
      }
    }
  };

  after(ms: number, fn: () => void): Timer {
    return this.add(ms, fn, 0);
  }

  every(ms: number, fn: () => void): Timer {
    return this.add(ms, fn, Math.max(1, ms));
  }

  /** Deferred callbacks scheduled and not yet run (message deliveries among them). */
  get busy(): boolean {
    return this.pending > 0;
  }

  /** Resolves once every deferred callback, and all they deferred in turn, has run. */
  async settle(maxTurns = 100_000): Promise<void> {
    for (let turn = 0; turn < maxTurns; turn++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.pending === 0) return;
    }
    throw new Error(`ManualScheduler.settle: still busy after ${maxTurns} turns (a message loop?)`);
  }

  /**
   * Moves the clock forward by ms, firing every timer that falls due on the way at its due
   * time (the clock reads that time while it runs), each followed by a settle.
   */
  async advance(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    for (;;) {
      const next = this.nextDue();
      if (next === undefined || next.due > target) break;
      this.clock.set(Math.max(this.clock.now(), next.due));
      this.fire(next);
      await this.settle();
    }
    this.clock.set(Math.max(this.clock.now(), target));
  }

  /** Timers not yet fired or cancelled. */
  get timerCount(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  private add(ms: number, fn: () => void, every: number): Timer {
    const timer: ManualTimer = { due: this.clock.now() + Math.max(0, ms), seq: this.seq++, fn, every, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  private nextDue(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (let i = this.timers.length - 1; i >= 0; i--) {
      const t = this.timers[i]!;
      if (t.cancelled) {
        this.timers.splice(i, 1);
        continue;
      }
      if (best === undefined || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }

  private fire(timer: ManualTimer): void {
    if (timer.every > 0) {
      timer.due += timer.every;
      timer.seq = this.seq++;
    } else {
      timer.cancelled = true;
    }
    timer.fn();
  }
}
