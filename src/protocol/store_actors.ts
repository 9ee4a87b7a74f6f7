// The names of the store's actors: the contract between the wiring that starts them
// (wiring/store_topology.ts) and the front ends that talk to them by name.

export const WAL_ACTOR = 'wal';
export const INDEX_ACTOR = 'index';
export const BROKER_ACTOR = 'broker';

export function volumeActorName(slot: number): string {
  return `volume-${slot}`;
}

/** Every store actor a front end talks to, for a store of `driveCount` drives. */
export function storeActorNames(driveCount: number): string[] {
  return [...Array.from({ length: driveCount }, (_, slot) => volumeActorName(slot)), WAL_ACTOR, INDEX_ACTOR, BROKER_ACTOR];
}
