// What every front-end actor (TCP, HTTP) builds first: its engine over the channels to the
// store's actors, batched per event-loop turn (every request read from any socket in one poll
// phase leaves in one message per actor), and a reader of committed needle bytes straight from
// the volume files.
import type { ActorEnv } from '../runtime/actor.js';
import { VolumeReader } from '../storage/volume_reader.js';
import { DEFAULT_LIMITS, type Limits } from '../db/api.js';
import { frontEndPorts } from '../db/actor_ports.js';
import { Engine } from '../db/engine.js';
import { DriveReader } from '../db/read_port.js';
import { storeActorNames, volumeActorName } from '../protocol/store_actors.js';

export function frontEndEngine(env: ActorEnv, drives: string[], limits: Partial<Limits> = {}): { engine: Engine; reader: VolumeReader } {
  const reader = new VolumeReader(env.fs, drives);
  for (const name of storeActorNames(drives.length)) env.peer(name).setFlushMode('turn');
  const ports = frontEndPorts((name) => env.peer(name), drives, new DriveReader(reader), volumeActorName);
  return { engine: new Engine(ports, { ...DEFAULT_LIMITS, ...limits }, env.clock), reader };
}
