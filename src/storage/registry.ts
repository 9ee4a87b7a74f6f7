// The volume registry `vol-registry.json` (docs/formats.md §Volume registry): which volume groups
// exist, which members hold each group (today one local drive per group, by its path), and which
// volumes each group has. Loaded on open and authoritative: a drive keeps its group id however
// the configured drives are ordered, and a drive that holds volumes cannot silently go missing.
// Written whole through replaceFileAtomically, so a reader sees the old registry or the new one.
//
// Invariants of a loaded registry: version 2 (a version 1 file is read and converted); group
// ids are canonical decimals <= MAX_GROUP_ID; every group has at least one member and no drive
// is a member of two groups; every volume key is a canonical decimal u32 whose group bits name
// a registered group.
import { join } from 'node:path';
import { StoreError } from '../runtime/errors.js';
import type { Fs } from '../runtime/fs.js';
import { removeStaleTemp, replaceFileAtomically } from './atomic_file.js';
import { MAX_GROUP_ID, groupOfVolume } from './volume_format.js';

export const REGISTRY_FILE = 'vol-registry.json';
/** A registry is a few bytes per volume; anything this big is not one. */
export const MAX_REGISTRY_BYTES = 64 * 1024 * 1024;

/**
 * A member of a volume group: a local drive (its root directory) or a remote volume server (its
 * base URL). A group has exactly one local drive (its writer's, which assigns the offsets) and
 * any number of servers; a drive is in at most one group without servers (the groups of a store
 * without replication), and in any number of replicated ones.
 */
export type GroupMember = { drive: string } | { server: string };

export interface Registry {
  version: 2;
  groups: Record<string, { members: GroupMember[] }>;
  volumes: Record<string, { group: number }>;
}

/** A group as the store runs it: its id and the drive that holds it. */
export interface LocalGroup {
  id: number;
  dir: string;
  /** Remote members (volume-server base URLs), in order; absent or empty: none. */
  servers?: string[];
  /** False for a group kept for reads only (it was written with another replication). */
  writable?: boolean;
}

/** How the store's volumes are replicated (issue 11): remote servers, and copies per blob. */
export interface Replication {
  servers: string[];
  factor: number;
}

/** null when there is no registry yet; CORRUPT (naming the file) when it is not valid. */
export function loadRegistry(fs: Fs, dataDir: string): Registry | null {
  const path = join(dataDir, REGISTRY_FILE);
  removeStaleTemp(fs, path);
  if (!fs.exists(path)) return null;
  checkSize(fs, path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(fs.readFile(path)));
  } catch (err) {
    throw new StoreError('CORRUPT', `${path}: not valid JSON (${(err as Error).message})`);
  }
  const old = isObject(parsed) && parsed['version'] === 1 ? version1Problem(parsed) : null;
  if (old !== null) throw new StoreError('CORRUPT', `${path}: ${old}`);
  const registry = isObject(parsed) && parsed['version'] === 1 ? fromVersion1(parsed) : parsed;
  const problem = registryProblem(registry);
  if (problem !== null) throw new StoreError('CORRUPT', `${path}: ${problem}`);
  return registry as Registry;
}

export function saveRegistry(fs: Fs, dataDir: string, registry: Registry): void {
  const problem = registryProblem(registry);
  if (problem !== null) throw new StoreError('BAD_ARGUMENT', `registry not saved: ${problem}`);
  const bytes = new TextEncoder().encode(`${JSON.stringify(registry, null, 2)}\n`);
  replaceFileAtomically(fs, join(dataDir, REGISTRY_FILE), bytes);
}

/**
 * The groups to run for the configured drives (data dir first): a drive the registry knows keeps
 * its group; a new drive gets the lowest free id; a registered drive that is not configured is
 * an error when it holds volumes (they would be unreadable), and is forgotten when it holds none.
 * With no registry (a fresh store, or one from before the registry was read), group i is drive i,
 * which is how volume ids were assigned then.
 */
export function resolveGroups(registry: Registry | null, drives: string[], replication: Replication = { servers: [], factor: 1 }): LocalGroup[] {
  const replicated = replicatedGroupsOf(registry);
  if (replication.factor > 1) return resolveReplicated(registry, replicated, drives, replication);
  const stranded = [...replicated].filter(([, g]) => holdsVolumes(registry, g.id));
  if (stranded.length > 0) {
    const [, g] = stranded[0]!;
    throw new StoreError('BAD_ARGUMENT', `volume group ${g.id} is replicated to ${(g.servers ?? []).join(', ')} and holds volumes: configure its volume servers and a replication factor of ${(g.servers ?? []).length + 1}`);
  }
  return resolveLocal(localOnly(registry), drives);
}

function resolveLocal(registry: Registry | null, drives: string[]): LocalGroup[] {
  const known = new Map<string, number>();
  for (const [id, g] of Object.entries(registry?.groups ?? {})) for (const m of g.members) if ('drive' in m) known.set(m.drive, Number(id));
  if (registry === null) return drives.map((dir, i) => ({ id: i, dir }));
  const configured = new Set(drives);
  for (const [dir, id] of known) {
    if (configured.has(dir)) continue;
    const volumes = Object.entries(registry.volumes).filter(([, v]) => v.group === id).map(([vid]) => vid);
    if (volumes.length > 0) {
      throw new StoreError(
        'BAD_ARGUMENT',
        `drive ${dir} holds volume group ${id} (volumes ${volumes.slice(0, 8).join(', ')}${volumes.length > 8 ? ', ...' : ''}) but is not configured: add it back to --drives`,
      );
    }
  }
  const used = new Set<number>();
  const groups = drives.map((dir) => {
    const id = known.get(dir);
    if (id !== undefined) used.add(id);
    return { dir, id };
  });
  let next = 0;
  return groups.map(({ dir, id }) => {
    if (id !== undefined) return { id, dir };
    while (used.has(next)) next++;
    if (next > MAX_GROUP_ID) throw new StoreError('BAD_ARGUMENT', `more than ${MAX_GROUP_ID + 1} volume groups`);
    used.add(next);
    return { id: next, dir };
  });
}

/**
 * Groups of a replicated store: the registry's replicated groups whose members are all still
 * configured keep their ids (and are written to while they are among the wanted ones); the
 * wanted groups (max(drives, servers) of them, each a drive and factor - 1 servers, round-robin)
 * that do not exist yet get fresh ids; the registry's groups without servers are kept for reads.
 */
function resolveReplicated(registry: Registry | null, replicated: Map<string, LocalGroup>, drives: string[], replication: Replication): LocalGroup[] {
  const { servers, factor } = replication;
  if (servers.length < factor - 1) throw new StoreError('BAD_ARGUMENT', `${factor} copies need ${factor - 1} volume servers; ${servers.length} configured`);
  const configured = new Set(servers);
  for (const g of replicated.values()) {
    const missing = g.servers!.filter((u) => !configured.has(u));
    const noDrive = !drives.includes(g.dir);
    if ((missing.length > 0 || noDrive) && holdsVolumes(registry, g.id)) {
      throw new StoreError('BAD_ARGUMENT', `volume group ${g.id} holds volumes on ${noDrive ? `drive ${g.dir}` : `volume server ${missing.join(', ')}`}, which is not configured: add it back`);
    }
  }
  const used = new Set<number>(Object.keys(registry?.groups ?? {}).map(Number));
  let next = 0;
  const freshId = (): number => {
    while (used.has(next)) next++;
    if (next > MAX_GROUP_ID) throw new StoreError('BAD_ARGUMENT', `more than ${MAX_GROUP_ID + 1} volume groups`);
    used.add(next);
    return next;
  };
  const out: LocalGroup[] = [];
  const count = Math.max(drives.length, servers.length);
  const wanted = new Set<string>();
  for (let i = 0; i < count; i++) {
    const dir = drives[i % drives.length]!;
    const members = Array.from({ length: factor - 1 }, (_, k) => servers[(i * (factor - 1) + k) % servers.length]!);
    const sig = signature(dir, members);
    if (wanted.has(sig)) continue;
    wanted.add(sig);
    out.push({ id: replicated.get(sig)?.id ?? freshId(), dir, servers: members, writable: true });
  }
  for (const [sig, g] of replicated) {
    if (wanted.has(sig) || !holdsVolumes(registry, g.id)) continue;
    out.push({ ...g, writable: true }); // all its members are configured (checked above)
  }
  // The groups of the store before it was replicated: read, never written (one copy only).
  for (const [id, g] of Object.entries(localOnly(registry)?.groups ?? {})) {
    const dir = (g.members[0] as { drive: string }).drive;
    if (!holdsVolumes(registry, Number(id))) continue;
    if (!drives.includes(dir)) throw new StoreError('BAD_ARGUMENT', `drive ${dir} holds volume group ${id} but is not configured: add it back to --drives`);
    out.push({ id: Number(id), dir, writable: false });
  }
  return out.sort((a, b) => a.id - b.id);
}

function signature(dir: string, servers: readonly string[]): string {
  return JSON.stringify([dir, ...servers]);
}

/** The registry's groups that have remote members, by signature. */
function replicatedGroupsOf(registry: Registry | null): Map<string, LocalGroup> {
  const out = new Map<string, LocalGroup>();
  for (const [id, g] of Object.entries(registry?.groups ?? {})) {
    const servers = g.members.flatMap((m) => ('server' in m ? [m.server] : []));
    const dir = g.members.flatMap((m) => ('drive' in m ? [m.drive] : []))[0];
    if (servers.length === 0 || dir === undefined) continue;
    out.set(signature(dir, servers), { id: Number(id), dir, servers });
  }
  return out;
}

/** The registry without its replicated groups (and their volumes). */
function localOnly(registry: Registry | null): Registry | null {
  if (registry === null) return null;
  const groups: Registry['groups'] = {};
  for (const [id, g] of Object.entries(registry.groups)) if (g.members.every((m) => 'drive' in m)) groups[id] = g;
  const volumes: Registry['volumes'] = {};
  for (const [id, v] of Object.entries(registry.volumes)) if (String(v.group) in groups) volumes[id] = v;
  return { version: 2, groups, volumes };
}

function holdsVolumes(registry: Registry | null, group: number): boolean {
  return Object.values(registry?.volumes ?? {}).some((v) => v.group === group);
}

/** The registry of running groups and the volumes they hold now. */
export function registryOf(groups: LocalGroup[], volumes: { id: number }[]): Registry {
  const out: Registry = { version: 2, groups: {}, volumes: {} };
  for (const g of groups) out.groups[String(g.id)] = { members: [{ drive: g.dir }, ...(g.servers ?? []).map((server) => ({ server }))] };
  for (const v of volumes) out.volumes[String(v.id)] = { group: groupOfVolume(v.id) };
  return out;
}

/** Version 1 (issue 2): `drives` by slot, each volume naming its slot; slot i becomes group i. */
function fromVersion1(v1: Record<string, unknown>): Registry {
  const drives = v1['drives'] as string[];
  const volumes = v1['volumes'] as Record<string, { drive: number }>;
  const groups: Registry['groups'] = {};
  drives.forEach((drive, i) => (groups[String(i)] = { members: [{ drive }] }));
  const out: Registry['volumes'] = {};
  for (const [id, v] of Object.entries(volumes)) out[id] = { group: v.drive };
  return { version: 2, groups, volumes: out };
}

function version1Problem(value: Record<string, unknown>): string | null {
  const drives = value['drives'];
  if (!Array.isArray(drives) || drives.length === 0) return '"drives" must be a non-empty array';
  if (!drives.every((d) => typeof d === 'string' && d.length > 0)) return '"drives" must hold non-empty strings';
  const volumes = value['volumes'];
  if (!isObject(volumes)) return '"volumes" must be an object';
  for (const [id, entry] of Object.entries(volumes)) {
    if (!isCanonical(id) || Number(id) > 0xffffffff) return `bad volume id "${id}"`;
    const drive = isObject(entry) ? entry['drive'] : undefined;
    if (typeof drive !== 'number' || !Number.isInteger(drive) || drive < 0 || drive >= drives.length) {
      return `volume ${id}: drive ${JSON.stringify(drive)} is not an index into "drives"`;
    }
  }
  return null;
}

function checkSize(fs: Fs, path: string): void {
  const file = fs.open(path, 'read');
  try {
    const size = file.size();
    if (size > MAX_REGISTRY_BYTES) {
      throw new StoreError('CORRUPT', `${path}: ${size} bytes, more than the ${MAX_REGISTRY_BYTES} a registry may have`);
    }
  } finally {
    file.close();
  }
}

/** Why `value` is not a valid registry, or null when it is. */
export function registryProblem(value: unknown): string | null {
  if (!isObject(value)) return 'not a JSON object';
  if (value['version'] !== 2) return `unknown version ${JSON.stringify(value['version'])}`;
  const groups = value['groups'];
  if (!isObject(groups) || Object.keys(groups).length === 0) return '"groups" must be a non-empty object';
  const drives = new Set<string>();
  for (const [id, group] of Object.entries(groups)) {
    if (!isCanonical(id) || Number(id) > MAX_GROUP_ID) return `bad group id "${id}"`;
    const members = isObject(group) ? group['members'] : undefined;
    if (!Array.isArray(members) || members.length === 0) return `group ${id}: "members" must be a non-empty array`;
    const problem = membersProblem(id, members, drives);
    if (problem !== null) return problem;
  }
  const volumes = value['volumes'];
  if (!isObject(volumes)) return '"volumes" must be an object';
  for (const [id, entry] of Object.entries(volumes)) {
    if (!isCanonical(id) || Number(id) > 0xffffffff) return `bad volume id "${id}"`;
    const group = isObject(entry) ? entry['group'] : undefined;
    if (group !== groupOfVolume(Number(id))) return `volume ${id}: group ${JSON.stringify(group)} is not the group its id names (${groupOfVolume(Number(id))})`;
    if (!(String(group) in groups)) return `volume ${id}: group ${group} is not registered`;
  }
  return null;
}

/** One drive per group, then servers; a drive of a group without servers is in no other such group. */
function membersProblem(id: string, members: unknown[], drives: Set<string>): string | null {
  let driveCount = 0;
  const servers = new Set<string>();
  for (const m of members) {
    const drive = isObject(m) ? m['drive'] : undefined;
    const server = isObject(m) ? m['server'] : undefined;
    if (typeof server === 'string' && server.length > 0 && drive === undefined) {
      if (servers.has(server)) return `group ${id}: server ${server} is a member twice`;
      servers.add(server);
      continue;
    }
    if (typeof drive !== 'string' || drive.length === 0) return `group ${id}: a member needs a non-empty "drive" or "server"`;
    driveCount += 1;
  }
  if (driveCount !== 1) return `group ${id}: a group has one local drive, not ${driveCount}`;
  if (servers.size > 0) return null;
  const drive = (members.find((m) => isObject(m) && typeof m['drive'] === 'string') as { drive: string }).drive;
  if (drives.has(drive)) return `drive ${drive} is a member of two groups`;
  drives.add(drive);
  return null;
}

function isCanonical(id: string): boolean {
  return /^(0|[1-9]\d{0,9})$/.test(id);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
