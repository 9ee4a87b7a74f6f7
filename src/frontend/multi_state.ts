// MULTI / EXEC / DISCARD / WATCH of one connection, as Redis has them.
// - MULTI opens a queue; commands answer QUEUED; an error while queueing (unknown command,
//   wrong arity, a command not allowed) makes EXEC answer EXECABORT.
// - EXEC runs the queue as one transaction of the session: its writes are ONE WAL record,
//   guarded by everything it read and by the watched keys as they were at WATCH. A watched key
//   that changed (a write from any client, this one included, an expiry, a FLUSHALL) makes EXEC
//   answer nil with nothing applied. A key the queue read that another client changed while
//   it ran makes it run again from the start (its replies are those of the run that applied):
//   so EXEC is atomic, as Redis' is, without stopping other clients.
// - EXEC, DISCARD, RESET and the end of the connection forget the watched keys.
// Bounded: the queue by count and bytes, the watched keys by count.
import type { KeyState, Session } from '../db/api.js';
import { mapKey } from '../db/bytes.js';
import { NULL_ARRAY, OK, array, error, simple, type Reply } from '../protocol/reply.js';
import { errorReply } from './executor.js';

export const EXECABORT = 'EXECABORT Transaction discarded because of previous errors.';
/** Commands one MULTI may queue. */
const MAX_QUEUED = 100_000;
/** Argument bytes one MULTI may queue. */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
/** Keys one connection may watch. */
const MAX_WATCHED = 100_000;
/** Runs of one EXEC when other clients keep changing what it reads. */
const EXEC_ATTEMPTS = 16;

/** Runs one queued command and answers its reply (never throws). */
export type QueuedRunner = (argv: Buffer[]) => Promise<Reply>;

export class MultiState {
  private queue: Buffer[][] | null = null;
  private queuedBytes = 0;
  private failed = false;
  private readonly watched = new Map<string, { key: Buffer; state: KeyState | null }>();

  get active(): boolean {
    return this.queue !== null;
  }

  get watching(): number {
    return this.watched.size;
  }

  /** Bytes held by the queue (CLIENT LIST multi-mem). */
  get memory(): number {
    return this.queuedBytes;
  }

  /** Commands queued (CLIENT LIST multi=). */
  get queued(): number {
    return this.queue?.length ?? -1;
  }

  begin(): Reply {
    if (this.queue !== null) return error('ERR MULTI calls can not be nested');
    this.queue = [];
    this.queuedBytes = 0;
    this.failed = false;
    return OK;
  }

  /** Queues a command that passed the table; answers QUEUED or the error that dooms EXEC. */
  add(argv: Buffer[]): Reply {
    const bytes = argv.reduce((n, a) => n + a.length, 0);
    if (this.queue!.length >= MAX_QUEUED || this.queuedBytes + bytes > MAX_QUEUED_BYTES) {
      this.failed = true;
      return error(`ERR MULTI queue is full (at most ${MAX_QUEUED} commands, ${MAX_QUEUED_BYTES} bytes)`);
    }
    this.queue!.push(argv);
    this.queuedBytes += bytes;
    return simple('QUEUED');
  }

  /** An error answered while queueing: EXEC will abort. */
  markFailed(): void {
    this.failed = true;
  }

  discard(): Reply {
    if (this.queue === null) return error('ERR DISCARD without MULTI');
    this.reset();
    return OK;
  }

  async watch(session: Session, keys: Buffer[]): Promise<Reply> {
    if (this.queue !== null) return error('ERR WATCH inside MULTI is not allowed');
    for (const key of keys) {
      const mk = mapKey(key);
      if (this.watched.has(mk)) continue;
      if (this.watched.size >= MAX_WATCHED) return error(`ERR too many watched keys (at most ${MAX_WATCHED})`);
      try {
        this.watched.set(mk, { key, state: await session.watchState(key) });
      } catch (err) {
        return errorReply(err);
      }
    }
    return OK;
  }

  unwatch(): Reply {
    this.watched.clear();
    return OK;
  }

  /** EXEC: nil when a watched key changed, EXECABORT after a queueing error, else the replies. */
  async exec(session: Session, run: QueuedRunner): Promise<Reply> {
    const queue = this.queue;
    if (queue === null) return error('ERR EXEC without MULTI');
    const failed = this.failed;
    const watched = [...this.watched.values()];
    this.reset();
    if (failed) return error(EXECABORT);
    for (let attempt = 1; ; attempt++) {
      session.begin();
      const replies: Reply[] = [];
      let outcome: 'ok' | 'watched' | 'conflict';
      try {
        for (const argv of queue) replies.push(await run(argv));
        outcome = await session.commitWatching(watched);
      } catch (err) {
        while (session.depth > 0) session.rollback();
        return errorReply(err);
      }
      if (outcome === 'ok') return array(replies);
      if (outcome === 'watched') return NULL_ARRAY;
      if (attempt >= EXEC_ATTEMPTS) {
        return error(`ERR EXEC gave up after ${EXEC_ATTEMPTS} runs: other clients kept changing the keys it reads; nothing was applied`);
      }
    }
  }

  /** Forgets the queue and the watched keys (EXEC, DISCARD, RESET). */
  reset(): void {
    this.queue = null;
    this.queuedBytes = 0;
    this.failed = false;
    this.watched.clear();
  }
}
