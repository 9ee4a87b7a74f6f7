// The topology of the store, declared in one place: which actors run, in what order they
// start, who talks to whom. Volume writers first (nothing depends on them at start), then the
// WAL committer, then the index (it replays the WAL on start and hears from the committer),
// then the broker. The main thread talks to all of them: it is the embedded API's front end.
import type { ActorSpec } from '../runtime/topology.js';
import type { LocalGroup } from '../storage/registry.js';
import type { SyncPolicy } from '../storage/types.js';
import { BROKER_PROTOCOL } from '../protocol/broker_protocol.js';
import { INDEX_PROTOCOL } from '../protocol/index_protocol.js';
import { BROKER_ACTOR, INDEX_ACTOR, WAL_ACTOR, serverLinks, volumeActorName } from '../protocol/store_actors.js';

/** A volume server request with no byte moving for this long fails (a 1 GB body is slow, not stuck). */
const LINK_IDLE_MS = 30_000;
/** How often each volume server's health is checked. */
const LINK_HEALTH_MS = 1_000;
import { VOLUME_PROTOCOL } from '../protocol/volume_protocol.js';
import { WAL_PROTOCOL } from '../protocol/wal_protocol.js';
import type { VolumeWriterConfig } from '../actors/volume_writer.js';
import type { WalCommitterConfig } from '../actors/wal_committer.js';
import type { VolumeLinkConfig } from '../actors/volume_link.js';
import { LINK_PROTOCOL } from '../protocol/link_protocol.js';
import type { IndexActorConfig } from '../actors/index_actor.js';

export interface StoreTopologyConfig {
  dir: string;
  /** The master's epoch, sent with every write to a volume server (fencing). */
  epoch?: number;
  volumeSecret?: string | null;
  /** The volume groups, each held by one local drive (its writer is one actor). */
  groups: LocalGroup[];
  maxVolumeSize: number;
  sync: SyncPolicy;
  indexBuckets?: number;
  lookupSlots?: SharedArrayBuffer[];
  sharedHeads?: SharedArrayBuffer;
  /** The volume log's directory (absent: none). */
  logDir?: string;
}

export function storeTopology(config: StoreTopologyConfig): ActorSpec[] {
  // Front-end actors name the store's actors in their own talksTo; edges are symmetric.
  const frontEnds = ['main'];
  const links = serverLinks(config.groups);
  const linkSpecs: ActorSpec[] = [...links].map(([url, name]) => {
    const cfg: VolumeLinkConfig = { url, secret: config.volumeSecret ?? null, epoch: config.epoch ?? 0, idleMs: LINK_IDLE_MS, healthMs: LINK_HEALTH_MS };
    return { name, module: new URL('../actors/volume_link.js', import.meta.url), protocol: LINK_PROTOCOL, config: cfg, talksTo: frontEnds };
  });
  const volumes: ActorSpec[] = config.groups.map((g) => {
    const remotes = (g.servers ?? []).map((url) => ({ url, name: links.get(url)! }));
    const cfg: VolumeWriterConfig = { dir: g.dir, group: g.id, maxVolumeSize: config.maxVolumeSize, sync: config.sync, ...(remotes.length > 0 ? { remotes } : {}) };
    const linkNames = remotes.map((r) => r.name);
    return { name: volumeActorName(g.id), module: new URL('../actors/volume_writer.js', import.meta.url), protocol: VOLUME_PROTOCOL, config: cfg, dependsOn: linkNames, talksTo: [...frontEnds, ...linkNames] };
  });
  const walConfig: WalCommitterConfig = { dir: config.dir, sync: config.sync, ...(config.logDir !== undefined ? { logDir: config.logDir } : {}) };
  const indexConfig: IndexActorConfig = {
    dir: config.dir,
    ...(config.indexBuckets ? { indexBuckets: config.indexBuckets } : {}),
    ...(config.lookupSlots ? { lookupSlots: config.lookupSlots } : {}),
    ...(config.sharedHeads ? { sharedHeads: config.sharedHeads } : {}),
    // Records carry their small needles instead of a volume sync only when the store syncs.
    ...(config.sync === 'always' ? { volumeDirs: config.groups.map((g): [number, string] => [g.id, g.dir]), volumeSyncFence: new SharedArrayBuffer(4) } : {}),
  };
  return [
    ...linkSpecs,
    ...volumes,
    {
      name: WAL_ACTOR,
      module: new URL('../actors/wal_committer.js', import.meta.url),
      protocol: WAL_PROTOCOL,
      config: walConfig,
      dependsOn: volumes.map((v) => v.name),
      talksTo: [INDEX_ACTOR, ...frontEnds],
    },
    {
      name: INDEX_ACTOR,
      module: new URL('../actors/index_actor.js', import.meta.url),
      protocol: INDEX_PROTOCOL,
      config: indexConfig,
      dependsOn: [WAL_ACTOR],
      talksTo: [WAL_ACTOR, ...frontEnds],
    },
    { name: BROKER_ACTOR, module: new URL('../actors/broker_actor.js', import.meta.url), protocol: BROKER_PROTOCOL, config: {}, talksTo: frontEnds },
  ];
}
