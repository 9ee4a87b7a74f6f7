// A replica's store takes no writes of its own (docs/replica.md): its volumes and WAL hold only
// what its master sent. The front ends refuse write commands before they run; this guard on the
// ports is the last line, so that no path (an HTTP PUT, a lazy expiry, a command added later)
// can append a byte to a volume or a record to the WAL while the store is a replica.
// The same guard refuses writes on a master while fewer replicas than min-replicas-to-write are
// good (Redis' NOREPLICAS), before any byte is written.
import { StoreError } from '../runtime/errors.js';
import type { ReplicaTable } from '../runtime/replica_table.js';
import type { Ports, VolumePort } from './ports.js';

/** Mutable: a promotion turns a replica's front ends into a master's. */
export interface RoleFlag {
  readOnly: boolean;
  /** The master's replicas and min-replicas settings; absent: no such check. */
  replicas?: ReplicaTable;
}

export const READONLY_TEXT = "You can't write against a read only replica.";

export function guardWrites(ports: Ports, role: RoleFlag): Ports {
  const { volumes: v, commit } = ports;
  /** Why no write may start now, or null. */
  const refused = (): StoreError | null => {
    if (role.readOnly) return new StoreError('READONLY', READONLY_TEXT);
    const why = role.replicas?.writeRefusal(Date.now()) ?? null;
    return why === null ? null : new StoreError('NOREPLICAS', 'Not enough good replicas to write.');
  };
  const guard = <T>(write: () => Promise<T>): Promise<T> => {
    const err = refused();
    return err === null ? write() : Promise.reject(err);
  };
  const volumes: VolumePort = {
    get groups() {
      return v.groups;
    },
    get redoGroups() {
      return v.redoGroups;
    },
    append: (group, needles, sync) => guard(() => v.append(group, needles, sync)),
    appendStream: (group, key, size, expiresAt, source, meta) => guard(() => v.appendStream(group, key, size, expiresAt, source, meta)),
    syncGroup: (group) => v.syncGroup(group),
    list: () => v.list(),
    groupInfo: () => v.groupInfo(),
    seal: (volume) => guard(() => v.seal(volume)),
    remove: (group, volumes) => v.remove(group, volumes),
  };
  return { ...ports, volumes, commit: { commit: (ops, redo) => guard(() => commit.commit(ops, redo)) } };
}
