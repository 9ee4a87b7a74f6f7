// Timely `expired` notifications. The TTL sweep walks the index a slice at a time, so a key
// nobody reads may be deleted seconds (or, on a big index, minutes) after its time; reads never
// see it meanwhile (lazy expiry), but a subscriber to `__keyevent@0__:expired` waits. So while
// notify-keyspace-events asks for expired events, this thread remembers the keys it wrote with
// an expiry (a min-heap by time, bounded) and looks each one up when its time comes: the lookup
// finds it expired, logs its DEL_IF and publishes the event, as a read would. A key written
// again meanwhile is simply found live (or gone) and nothing happens. Past the bound, keys are
// left to the sweep.
//
// Invariants: one timer armed at most, for the earliest time, unref'd (it never holds a process
// open); stop() clears it.

/** Keys remembered at most per thread. */
export const MAX_EXPIRY_TIMERS = 100_000;
/** Keys looked up per firing, in one index request. */
const DUE_BATCH = 512;
/** setTimeout's longest delay. */
const MAX_DELAY_MS = 2 ** 31 - 1;

interface Due {
  at: number;
  key: Uint8Array;
}

export class ExpiryTimers {
  private readonly heap: Due[] = [];
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;

  constructor(
    private readonly now: () => number,
    /** Looks the keys up (expiring those that are due); never rejects. */
    private readonly lookUp: (keys: Uint8Array[]) => Promise<void>,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  add(key: Uint8Array, at: number): void {
    if (at <= 0 || this.heap.length >= MAX_EXPIRY_TIMERS) return;
    this.push({ at, key });
    if (at < this.armedFor) this.arm(at);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
    this.heap.length = 0;
  }

  private arm(at: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedFor = at;
    // One millisecond past the time: a key expires when the clock is past its time.
    this.timer = setTimeout(() => this.fire(), Math.min(MAX_DELAY_MS, Math.max(0, at - this.now() + 1)));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = null;
    this.armedFor = Infinity;
    const now = this.now();
    const keys: Uint8Array[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= now && keys.length < DUE_BATCH) keys.push(this.pop().key);
    const next = (): void => {
      if (this.heap.length > 0 && this.timer === null) this.arm(this.heap[0]!.at);
    };
    if (keys.length === 0) return next();
    void this.lookUp(keys).finally(next);
  }

  private push(d: Due): void {
    const h = this.heap;
    h.push(d);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= d.at) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = d;
  }

  private pop(): Due {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && h[l + 1]!.at < h[l]!.at ? l + 1 : l;
        if (h[c]!.at >= last.at) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
