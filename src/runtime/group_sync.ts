// Group commit of an actor's writes: one sync for every caller of this event-loop turn. The
// first waiter defers the sync to the end of the turn, so every request already decoded in
// this turn has written before it runs; each waiter is then resolved, or rejected with the
// sync's error (what a failed sync means is the caller's to decide: it is reported, not
// retried). Used by the master's volume writers and the volume server's drives.
import type { Scheduler } from './scheduler.js';

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupSync {
  private waiters: Waiter[] = [];

  constructor(
    private readonly scheduler: Scheduler,
    private readonly sync: () => void,
  ) {}

  /** Callers waiting for this turn's sync (a flush is scheduled while non-zero). */
  get pending(): number {
    return this.waiters.length;
  }

  /** Resolves once a sync that began after this call has succeeded. */
  wait(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (this.waiters.length === 1) this.scheduler.defer(() => this.flush());
    });
  }

  private flush(): void {
    const waiters = this.waiters;
    this.waiters = [];
    try {
      this.sync();
    } catch (err) {
      for (const w of waiters) w.reject(err);
      return;
    }
    for (const w of waiters) w.resolve();
  }
}
