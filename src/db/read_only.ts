// A replica's store takes no writes of its own (docs/replica.md): its volumes and WAL hold only
// what its master sent. The front ends refuse write commands before they run; this guard on the
// ports is the last line, so that no path (an HTTP PUT, a lazy expiry, a command added later)
// can append a byte to a volume or a record to the WAL while the store is a replica.
import { StoreError } from '../runtime/errors.js';
import type { Ports, VolumePort } from './ports.js';

/** Mutable: a promotion turns a replica's front ends into a master's. */
export interface RoleFlag {
  readOnly: boolean;
}

export const READONLY_TEXT = "You can't write against a read only replica.";

export function guardWrites(ports: Ports, role: RoleFlag): Ports {
  const { volumes: v, commit } = ports;
  const refusal = (): Promise<never> => Promise.reject(new StoreError('READONLY', READONLY_TEXT));
  const volumes: VolumePort = {
    get groups() {
      return v.groups;
    },
    append: (group, needles, sync) => (role.readOnly ? refusal() : v.append(group, needles, sync)),
    appendStream: (group, key, size, expiresAt, source, meta) => (role.readOnly ? refusal() : v.appendStream(group, key, size, expiresAt, source, meta)),
    syncGroup: (group) => v.syncGroup(group),
    list: () => v.list(),
    groupInfo: () => v.groupInfo(),
    discard: (addresses) => v.discard(addresses),
  };
  return { ...ports, volumes, commit: { commit: (ops) => (role.readOnly ? refusal() : commit.commit(ops)) } };
}
