// Plain SETs (no condition, no metadata, bytes in memory) of one thread, from all of its
// connections, gathered over one event-loop turn and written together: one append per volume
// group, ONE WAL record, one commit. With 50 clients each waiting on one SET (redis-benchmark
// -P 1), the hops, envelopes, records and index flushes were paid once per SET; now once per
// turn. Safe to merge: a plain SET of one client never waits on another's, and a record is
// applied whole, in LSN order, so merged SETs of a key land in the order they were made (the
// order of the batch), and a SET made after another's reply is in a later batch.
//
// Bounds: at most MAX_SET_BATCH SETs and about MAX_SET_BATCH_BYTES of keys and values wait at
// once; past either the batch leaves at once and the next one starts.
import type { NeedleToPlace } from './engine.js';

export const MAX_SET_BATCH = 1024;
export const MAX_SET_BATCH_BYTES = 4 * 1024 * 1024;

interface Waiting {
  needle: NeedleToPlace;
  resolve: (lsn: number) => void;
  reject: (err: unknown) => void;
}

export class SetBatch {
  private waiting: Waiting[] = [];
  private bytes = 0;
  private scheduled = false;

  /** `write`: the needles as one record (Engine.putMany); answers its LSN or fails them all. */
  constructor(private readonly write: (needles: NeedleToPlace[]) => Promise<{ lsn: number }>) {}

  /** Resolves with the LSN of the record that committed the SET, once it is durable and applied. */
  add(needle: NeedleToPlace): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ needle, resolve, reject });
      this.bytes += needle.key.length + needle.value.length;
      if (this.waiting.length >= MAX_SET_BATCH || this.bytes >= MAX_SET_BATCH_BYTES) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        // After the I/O callbacks of this turn: every connection that had a SET has added it.
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    if (this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    this.bytes = 0;
    this.write(batch.map((w) => w.needle)).then(
      ({ lsn }) => {
        for (const w of batch) w.resolve(lsn);
      },
      (err: unknown) => {
        for (const w of batch) w.reject(err);
      },
    );
  }
}
