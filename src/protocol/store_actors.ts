// The names of the store's actors: the contract between the wiring that starts them
// (wiring/store_topology.ts) and the front ends that talk to them by name.
import { linkActorName } from './link_protocol.js';

export const WAL_ACTOR = 'wal';
export const INDEX_ACTOR = 'index';
export const BROKER_ACTOR = 'broker';

/** The writer of a volume group. */
export function volumeActorName(group: number): string {
  return `volume-${group}`;
}

/** Every store actor a front end talks to, for a store of these volume groups. */
export function storeActorNames(groups: readonly { id: number; servers?: readonly string[] }[]): string[] {
  return [...groups.map((g) => volumeActorName(g.id)), ...serverLinks(groups).values(), WAL_ACTOR, INDEX_ACTOR, BROKER_ACTOR];
}

/** The link actor of each volume server the groups name, by URL: one per server, in order met. */
export function serverLinks(groups: readonly { servers?: readonly string[] }[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const g of groups) for (const url of g.servers ?? []) if (!out.has(url)) out.set(url, linkActorName(out.size));
  return out;
}
