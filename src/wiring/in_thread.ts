// The shipped store in the calling thread: the same supervisor, the same actor factories, the
// same Peer code and the same engine as open(), hosted by InThreadHost over the seams given
// (a simulated file system, a ManualClock and a ManualScheduler in the crash/recovery suites;
// node's in tools that want no threads). Deterministic when the seams are.
//
// On top of Database it gives what the crash suites need:
// - abandon(): process death (every actor dies at once; no stop hook, no flush, no close);
// - maintenance(): a slice of background work now (TTL sweep, the index's timer work), settled;
// - dump(): the live state as the index serves it; rebuildCheck(): as the WAL alone gives it;
// - actorCrashes(): actors that died of an error (a broken invariant among them).
import { join } from 'node:path';
import type { Clock } from '../runtime/clock.js';
import { mapKey } from '../runtime/bytes.js';
import type { Fs } from '../runtime/fs.js';
import { InThreadHost, type InThreadCrash } from '../runtime/host.js';
import type { InvariantMode } from '../runtime/actor.js';
import type { Scheduler } from '../runtime/scheduler.js';
import type { Supervisor } from '../runtime/supervisor.js';
import { indexFromWal } from '../storage/store_files.js';
import { isLive, type IndexEntry } from '../storage/types.js';
import { scrubVolume } from '../storage/volume_scrub.js';
import { IndexMsg, type IndexReplies, type IndexRequest } from '../protocol/index_protocol.js';
import { Channel } from '../runtime/channel.js';
import { INDEX_ACTOR } from '../protocol/store_actors.js';
import type { Database, OpenOptions } from '../db/api.js';
import { isProcessAlive, openStore, type OpenedStore } from './open.js';

export interface InThreadOptions extends OpenOptions {
  fs: Fs;
  clock: Clock;
  scheduler: Scheduler;
  dir: string;
  pid?: number;
  isAlive?: (pid: number) => boolean;
  /** Default: after every message. */
  invariants?: InvariantMode;
}

export type DumpedState = Map<string, { value: Buffer; expiresAt: number }>;

export interface InThreadDatabase extends Database {
  /** One slice of background work: TTL sweep, index checkpoint/growth when due, settled. */
  maintenance(): Promise<void>;
  /** Simulates process death: no flush, no close; the object is unusable afterwards. */
  abandon(): void;
  /** The live state as rebuilt from scratch: a fresh index replayed from the whole WAL. */
  rebuildCheck(): Promise<DumpedState>;
  /** Every live key with its value, read through the index. */
  dump(): Promise<DumpedState>;
  /** Actors that died of an error since the open (a broken invariant is one). */
  actorCrashes(): InThreadCrash[];
  readonly supervisor: Supervisor;
}

/** Keys per scan page of dump(). */
const DUMP_PAGE = 1000;

export async function openInThread(options: InThreadOptions): Promise<InThreadDatabase> {
  const { fs, clock, scheduler, dir } = options;
  const host = new InThreadHost({ fs, clock, scheduler }, options.invariants ?? 'every-message');
  const store = await openStore(dir, options, () => [], {
    fs,
    clock,
    scheduler,
    host,
    pid: options.pid ?? process.pid,
    isAlive: options.isAlive ?? isProcessAlive,
    scrub: async (inputs) => inputs.map((input) => scrubVolume(input, fs)),
  });
  let dead = false;
  // A ManualScheduler can tell when every deferred message and slice has run; node's cannot.
  const settle = async (): Promise<void> => {
    await (scheduler as { settle?: () => Promise<void> }).settle?.call(scheduler);
  };
  return Object.assign(store.db, {
    supervisor: store.supervisor,
    async maintenance(): Promise<void> {
      await store.engine.sweep(256);
      await new Channel<IndexRequest, IndexReplies>(store.supervisor.peer(INDEX_ACTOR)).call({ t: IndexMsg.Maintain });
      await settle();
    },
    abandon(): void {
      if (dead) return;
      dead = true;
      store.halt();
      store.supervisor.halt();
    },
    dump: () => dumpLive(store, clock),
    async rebuildCheck(): Promise<DumpedState> {
      const entries = indexFromWal(fs, dir, join(dir, 'rebuild-check.hash'), (index) => [...index.entries(clock.now())], options.indexBuckets);
      return valuesOf(store, entries);
    },
    actorCrashes: () => [...host.crashes],
  });
}

/** The live keys and values, as a scan of the index and reads of their needles give them. */
async function dumpLive(store: OpenedStore, clock: Clock): Promise<DumpedState> {
  const entries: IndexEntry[] = [];
  const index = store.engine.ports.index;
  let cursor = 0;
  do {
    const page = await index.scan(cursor, DUMP_PAGE);
    for (const e of page.entries) if (isLive(e.expiresAt, clock.now())) entries.push(e);
    cursor = page.cursor;
  } while (cursor !== 0);
  return valuesOf(store, entries);
}

/** Each entry's value, read through the store's read port (checked, as every read is). */
async function valuesOf(store: OpenedStore, entries: IndexEntry[]): Promise<DumpedState> {
  const out: DumpedState = new Map();
  for (const e of entries) out.set(mapKey(e.key), { value: Buffer.from(await store.engine.read(e)), expiresAt: e.expiresAt });
  return out;
}
