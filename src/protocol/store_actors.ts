// The names of the store's actors: the contract between the wiring that starts them
// (wiring/store_topology.ts) and the front ends that talk to them by name.

export const WAL_ACTOR = 'wal';
export const INDEX_ACTOR = 'index';
export const BROKER_ACTOR = 'broker';

/** The writer of a volume group. */
export function volumeActorName(group: number): string {
  return `volume-${group}`;
}

/** Every store actor a front end talks to, for a store of these volume groups. */
export function storeActorNames(groups: readonly number[]): string[] {
  return [...groups.map(volumeActorName), WAL_ACTOR, INDEX_ACTOR, BROKER_ACTOR];
}
