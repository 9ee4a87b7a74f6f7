// The volume registry (src/storage/registry.ts): version 2 round-trips, version 1 is read and
// converted, a bad file is CORRUPT naming itself, and the groups of a store are resolved from
// the registry (authoritative) and the configured drives.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../src/runtime/fs.js';
import { StoreError } from '../src/runtime/errors.js';
import { loadRegistry, registryOf, resolveGroups, saveRegistry, type Registry } from '../src/storage/registry.js';
import { volumeIdOf } from '../src/storage/volume_format.js';

let dir = '';
beforeEach(() => {
  dir = nodeFs.mkdtempSync(join(os.tmpdir(), 'brise-registry-'));
});
afterEach(() => {
  nodeFs.rmSync(dir, { recursive: true, force: true });
});

const REG: Registry = {
  version: 2,
  groups: { '0': { members: [{ drive: '/data' }] }, '1': { members: [{ drive: '/disk2' }] } },
  volumes: { '0': { group: 0 }, [String(volumeIdOf(1, 0))]: { group: 1 } },
};

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof StoreError, String(err));
    return { code: err.code, message: err.message };
  }
  assert.fail('expected an error');
}

test('missing is null; save then load round-trips; a stale temp is removed', () => {
  const fs = new NodeFs();
  assert.equal(loadRegistry(fs, dir), null);
  saveRegistry(fs, dir, REG);
  assert.deepEqual(loadRegistry(fs, dir), REG);
  nodeFs.writeFileSync(join(dir, 'vol-registry.json.tmp'), '{');
  assert.deepEqual(loadRegistry(fs, dir), REG);
  assert.equal(nodeFs.existsSync(join(dir, 'vol-registry.json.tmp')), false);
});

test('a version 1 registry (drives by slot) is read as groups, slot i becoming group i', () => {
  const fs = new NodeFs();
  nodeFs.writeFileSync(join(dir, 'vol-registry.json'), JSON.stringify({ version: 1, drives: ['/data', '/disk2'], volumes: { '0': { drive: 0 }, '1048576': { drive: 1 } } }));
  assert.deepEqual(loadRegistry(fs, dir), REG);
});

test('bad JSON or a bad shape is CORRUPT naming the file; a bad save is refused', () => {
  const fs = new NodeFs();
  const path = join(dir, 'vol-registry.json');
  nodeFs.writeFileSync(path, '{"version": 2, "groups": [');
  assert.match(codeOf(() => loadRegistry(fs, dir)).message, /vol-registry\.json.*JSON/);
  const member = { members: [{ drive: '/d' }] };
  const bad: unknown[] = [
    [],
    { version: 3, groups: { '0': member }, volumes: {} },
    { version: 2, groups: {}, volumes: {} },
    { version: 2, groups: { '01': member }, volumes: {} },
    { version: 2, groups: { '0': { members: [] } }, volumes: {} },
    { version: 2, groups: { '0': { members: [{ drive: '' }] } }, volumes: {} },
    { version: 2, groups: { '0': member, '1': member }, volumes: {} },
    { version: 2, groups: { '0': member }, volumes: [] },
    { version: 2, groups: { '0': member }, volumes: { x: { group: 0 } } },
    { version: 2, groups: { '0': member }, volumes: { [String(volumeIdOf(1, 3))]: { group: 1 } } },
    { version: 2, groups: { '0': member }, volumes: { [String(volumeIdOf(1, 3))]: { group: 0 } } },
    { version: 1, drives: [], volumes: {} },
    { version: 1, drives: ['/d'], volumes: { '3': { drive: 1 } } },
    { version: 1, drives: ['/d'], volumes: { '3': { drive: 0.5 } } },
  ];
  for (const b of bad) {
    nodeFs.writeFileSync(path, JSON.stringify(b));
    const e = codeOf(() => loadRegistry(fs, dir));
    assert.equal(e.code, 'CORRUPT', JSON.stringify(b));
    assert.ok(e.message.includes(path), JSON.stringify(b));
  }
  const wrong = { ...REG, volumes: { [String(volumeIdOf(4, 0))]: { group: 4 } } };
  assert.equal(codeOf(() => saveRegistry(fs, dir, wrong)).code, 'BAD_ARGUMENT');
});

test('groups: a fresh store numbers the drives in order', () => {
  assert.deepEqual(resolveGroups(null, ['/data', '/a', '/b']), [
    { id: 0, dir: '/data' },
    { id: 1, dir: '/a' },
    { id: 2, dir: '/b' },
  ]);
});

test('groups: the registry is authoritative: a drive keeps its group however the drives are ordered', () => {
  const reg = registryOf(resolveGroups(null, ['/data', '/a', '/b']), [{ id: volumeIdOf(1, 0) }, { id: volumeIdOf(2, 5) }]);
  assert.deepEqual(resolveGroups(reg, ['/data', '/b', '/a']), [
    { id: 0, dir: '/data' },
    { id: 2, dir: '/b' },
    { id: 1, dir: '/a' },
  ]);
});

test('groups: a new drive gets the lowest free id; an empty registered drive may go; one with volumes may not', () => {
  const reg = registryOf(resolveGroups(null, ['/data', '/a', '/b']), [{ id: volumeIdOf(2, 0) }]);
  // /a holds no volume: dropping it is fine, and its id is free again for /c.
  assert.deepEqual(resolveGroups(reg, ['/data', '/b', '/c']), [
    { id: 0, dir: '/data' },
    { id: 2, dir: '/b' },
    { id: 1, dir: '/c' },
  ]);
  const e = codeOf(() => resolveGroups(reg, ['/data', '/a']));
  assert.equal(e.code, 'BAD_ARGUMENT');
  assert.match(e.message, /drive \/b holds volume group 2 .* is not configured: add it back to --drives/);
});
