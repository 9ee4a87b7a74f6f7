// The volume registry `vol-registry.json` (docs/formats.md §Volume registry): volume id → the
// drive slot holding it. Written whole by the supervisor through replaceFileAtomically, so a
// reader sees the old registry or the new one. For local volumes it is derivable from the
// drives' volumes/ folders; it exists so remote members of a volume group have a place.
//
// Invariants of a loaded registry: version 1; `drives` is a non-empty list of non-empty
// strings; every volume key is a canonical decimal u32 and its `drive` indexes `drives`.
import { join } from 'node:path';
import type { Fs } from '../runtime/fs.js';
import { removeStaleTemp, replaceFileAtomically } from './atomic_file.js';
import { StoreError } from '../runtime/errors.js';

export const REGISTRY_FILE = 'vol-registry.json';
/** A registry is a few bytes per volume; anything this big is not one. */
export const MAX_REGISTRY_BYTES = 64 * 1024 * 1024;

export interface Registry {
  version: 1;
  drives: string[];
  volumes: Record<string, { drive: number }>;
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
  const problem = registryProblem(parsed);
  if (problem !== null) throw new StoreError('CORRUPT', `${path}: ${problem}`);
  return parsed as Registry;
}

export function saveRegistry(fs: Fs, dataDir: string, registry: Registry): void {
  const problem = registryProblem(registry);
  if (problem !== null) throw new StoreError('BAD_ARGUMENT', `registry not saved: ${problem}`);
  const bytes = new TextEncoder().encode(`${JSON.stringify(registry, null, 2)}\n`);
  replaceFileAtomically(fs, join(dataDir, REGISTRY_FILE), bytes);
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
  if (value['version'] !== 1) return `unknown version ${JSON.stringify(value['version'])}`;
  const drives = value['drives'];
  if (!Array.isArray(drives) || drives.length === 0) return '"drives" must be a non-empty array';
  if (!drives.every((d) => typeof d === 'string' && d.length > 0)) return '"drives" must hold non-empty strings';
  const volumes = value['volumes'];
  if (!isObject(volumes)) return '"volumes" must be an object';
  for (const [id, entry] of Object.entries(volumes)) {
    if (!/^(0|[1-9]\d{0,9})$/.test(id) || Number(id) > 0xffffffff) return `bad volume id "${id}"`;
    if (!isObject(entry)) return `volume ${id}: not an object`;
    const drive = entry['drive'];
    if (typeof drive !== 'number' || !Number.isInteger(drive) || drive < 0 || drive >= drives.length) {
      return `volume ${id}: drive ${JSON.stringify(drive)} is not an index into "drives"`;
    }
  }
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
