// What every front-end actor (TCP, HTTP) builds first: its engine over the channels to the
// store's actors, batched per event-loop turn (every request read from any socket in one poll
// phase leaves in one message per actor), and a reader of committed needle bytes straight from
// the volume files.
import type { ActorContext } from '../runtime/actor.js';
import { NodeFs } from '../runtime/fs.js';
import { systemClock } from '../runtime/clock.js';
import { VolumeReader } from '../storage/volume_reader.js';
import { DEFAULT_LIMITS, type Limits } from '../db/api.js';
import { frontEndPorts } from '../db/actor_ports.js';
import { Engine } from '../db/engine.js';
import { LocalReader } from '../db/local_ports.js';
import { storeActorNames, volumeActorName } from './store_topology.js';

export function frontEndEngine(ctx: ActorContext, drives: string[], limits: Partial<Limits> = {}): { engine: Engine; reader: VolumeReader } {
  const reader = new VolumeReader(new NodeFs(), drives);
  for (const name of storeActorNames(drives.length)) ctx.peer(name).setFlushMode('turn');
  const ports = frontEndPorts((name) => ctx.peer(name), drives, new LocalReader(reader), volumeActorName);
  return { engine: new Engine(ports, { ...DEFAULT_LIMITS, ...limits }, systemClock), reader };
}
