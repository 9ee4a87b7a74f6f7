// The topology of the store, declared in one place: which actors run, in what order they
// start, who talks to whom. Volume writers first (nothing depends on them at start), then the
// WAL committer, then the index (it replays the WAL on start and hears from the committer),
// then the broker. The main thread talks to all of them: it is the embedded API's front end.
import type { ActorSpec } from '../runtime/topology.js';
import type { SyncPolicy } from '../db/api.js';
import type { VolumeWriterConfig } from './volume_writer.js';
import type { WalCommitterConfig } from './wal_committer.js';
import type { IndexActorConfig } from './index_actor.js';

export interface StoreTopologyConfig {
  dir: string;
  /** Drive roots by slot: [dataDir, ...extraDrives]. */
  drives: string[];
  maxVolumeSize: number;
  sync: SyncPolicy;
  indexBuckets?: number;
}

export function volumeActorName(slot: number): string {
  return `volume-${slot}`;
}

export function storeTopology(config: StoreTopologyConfig): ActorSpec[] {
  // Front-end actors name the store's actors in their own talksTo; edges are symmetric.
  const frontEnds = ['main'];
  const volumes: ActorSpec[] = config.drives.map((dir, slot) => {
    const cfg: VolumeWriterConfig = { dir, slot, maxVolumeSize: config.maxVolumeSize, sync: config.sync };
    return { name: volumeActorName(slot), module: new URL('./volume_writer.js', import.meta.url), config: cfg, talksTo: frontEnds };
  });
  const walConfig: WalCommitterConfig = { dir: config.dir, sync: config.sync };
  const indexConfig: IndexActorConfig = { dir: config.dir, ...(config.indexBuckets ? { indexBuckets: config.indexBuckets } : {}) };
  return [
    ...volumes,
    {
      name: 'wal',
      module: new URL('./wal_committer.js', import.meta.url),
      config: walConfig,
      dependsOn: volumes.map((v) => v.name),
      talksTo: ['index', ...frontEnds],
    },
    {
      name: 'index',
      module: new URL('./index_actor.js', import.meta.url),
      config: indexConfig,
      dependsOn: ['wal'],
      talksTo: ['wal', ...frontEnds],
    },
    { name: 'broker', module: new URL('./broker_actor.js', import.meta.url), config: {}, talksTo: frontEnds },
  ];
}

/** The names of the store's actors, for front ends that talk to all of them. */
export function storeActorNames(driveCount: number): string[] {
  return [...Array.from({ length: driveCount }, (_, slot) => volumeActorName(slot)), 'wal', 'index', 'broker'];
}
