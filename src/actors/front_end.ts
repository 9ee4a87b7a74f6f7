// What every front-end actor (TCP, HTTP) builds first: its engine over the channels to the
// store's actors, batched per event-loop turn (every request read from any socket in one poll
// phase leaves in one message per actor), reading committed needles through the read port of
// the local drives. The front end's routes see only the engine.
import type { ActorEnv } from '../runtime/actor.js';
import { DEFAULT_MAX_OPEN, VolumeReader } from '../storage/volume_reader.js';
import type { LocalGroup } from '../storage/registry.js';
import type { SyncPolicy } from '../storage/types.js';
import { DEFAULT_LIMITS, type Limits } from '../db/api.js';
import { actorPorts } from '../db/actor_ports.js';
import { DriveReader } from '../db/drive_reader.js';
import { groupReader } from '../db/group_reader.js';
import type { ReadPort } from '../db/ports.js';
import { Engine } from '../db/engine.js';
import { storeActorNames } from '../protocol/store_actors.js';
import { guardWrites, type RoleFlag } from '../db/read_only.js';
import type { StoreAdmin } from '../db/database.js';
import { Channel } from '../runtime/channel.js';
import { SharedIndexReader } from '../storage/shared_heads.js';
import { FrontEndMsg, type FrontEndReplies, type FrontEndToMain } from '../protocol/frontend_protocol.js';

/** Bytes of small needles each front-end thread keeps by default (storage/needle_cache.ts). */
export const NEEDLE_CACHE_BYTES = 32 * 1024 * 1024;
/** The most --needle-cache-size takes: two slabs of half of it each (Uint8Array bounds). */
export const MAX_NEEDLE_CACHE_BYTES = 2 * 1024 * 1024 * 1024;

/** What a front end's engine is built on, from its actor config. */
export interface FrontEndStore {
  /** The index's heads in shared memory (absent: lookups are messages), and whose index.hash. */
  indexHeads?: SharedArrayBuffer;
  dataDir: string;
  sync: SyncPolicy;
  /** Bytes of the needle cache (0: none); absent: NEEDLE_CACHE_BYTES. */
  needleCacheBytes?: number;
}

/** The store-wide operations (the vacuum) of a front end's database: run by main. */
export function storeAdmin(env: ActorEnv): StoreAdmin {
  const toMain = new Channel<FrontEndToMain, FrontEndReplies>(env.main);
  return {
    // A vacuum of a large volume takes minutes: the answer waits for it.
    vacuum: (volume) => toMain.call(volume === undefined ? { t: FrontEndMsg.Vacuum } : { t: FrontEndMsg.Vacuum, volume }, { timeoutMs: 24 * 3600_000 }),
    scrub: (wait) => toMain.call({ t: FrontEndMsg.Scrub, wait }, { timeoutMs: 24 * 3600_000 }),
    lastScrub: () => toMain.call({ t: FrontEndMsg.LastScrub }),
    compact: async () => {
      await toMain.call({ t: FrontEndMsg.Compact }, { timeoutMs: 24 * 3600_000 });
    },
    operations: () => toMain.call({ t: FrontEndMsg.Operations }),
  };
}

/**
 * The engine of a front-end thread, its reader of the local volume files, the reader of committed
 * needles (with a volume group's failover counters), and how to close what it opened.
 */
export function frontEndEngine(
  env: ActorEnv,
  groups: LocalGroup[],
  limits: Partial<Limits>,
  role: RoleFlag,
  store: FrontEndStore,
): { engine: Engine; reader: VolumeReader; needles: ReadPort; shared: SharedIndexReader | undefined; close(): void } {
  // A master's front end keeps its hot small values (needle_cache.ts); a replica's volumes are
  // its master's bytes, rewritten by a full copy, so it reads them from the files every time.
  const reader = new VolumeReader(env.fs, groups, DEFAULT_MAX_OPEN, role.readOnly ? 0 : (store.needleCacheBytes ?? NEEDLE_CACHE_BYTES));
  for (const name of storeActorNames(groups)) env.peer(name).setFlushMode('turn');
  const needles = groupReader((name) => env.peer(name), groups, new DriveReader(reader));
  // Lookups read the index's shared heads and index.hash on this thread; a message only when
  // the index is changing (shared_heads.ts).
  const shared = store.indexHeads === undefined ? undefined : SharedIndexReader.of(store.indexHeads, env.fs, store.dataDir, () => env.clock.now());
  const ports = guardWrites(actorPorts((name) => env.peer(name), groups, needles, store.sync, shared), role);
  const engine = new Engine(ports, { ...DEFAULT_LIMITS, ...limits }, env.clock);
  return {
    engine,
    reader,
    needles,
    shared,
    close: () => {
      engine.stopTimers();
      reader.close();
      shared?.close();
    },
  };
}
