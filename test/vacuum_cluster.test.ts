// Vacuum in a replicated cluster (issue 13 over issue 11), real processes: a master with two
// volume servers and --replication-factor 3 (each group: the master's drive and both servers),
// 1 MB volumes. After a VACUUM every member holds byte-identical volume files to the master's
// local drive and none of the removed ones; a member killed while a vacuum waits to remove its
// volume loses no acknowledged value, the vacuum names it in its errors, and once the member is
// back and repaired a later VACUUM removes the leftover volume there too (with the master up all
// along, and after its restart); a member killed during the copy loses nothing either.
// Owns: the cluster it starts (stopped by PID in `finally`, and by stopAll in `after`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { sleep, stopAll } from './helpers/master_process.js';
import { stopAllVolumeServers } from './helpers/volume_server_process.js';
import { startCluster, statusOf, type Cluster } from './helpers/cluster.js';
import { Model, checkModel, deleteKey, parseVacuum, putBlob, setSmall, volinfo, volumeFiles, type VacuumRow } from './helpers/vacuum_model.js';

const MB = 1024 * 1024;
const ARGS = ['--max-volume-size', '1mb', '--vacuum-every', '0', '--vacuum-rate', '0'];

after(async () => {
  await stopAll();
  await stopAllVolumeServers();
});

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, commandTimeout: 60_000 });
  c.on('error', () => undefined);
  return c;
}

/** Volume ids holding more than a superblock: the master's local drive, or server i. */
function masterVolumes(c: Cluster): number[] {
  return [...volumeFiles(path.join(c.master.dataDir, 'volumes'))].filter(([, size]) => size > 64).map(([id]) => id).sort((a, b) => a - b);
}

function serverVolumes(c: Cluster, i: number): number[] {
  return [...volumeFiles(path.join(c.servers[i]!.dataDir, 'volumes')).keys()].sort((a, b) => a - b);
}

/** Every member file equals the master's, and no member holds a volume the master has not. */
async function checkMembers(c: Cluster, what: string): Promise<void> {
  await c.waitHealthy();
  const checks = await c.checkMemberFiles();
  const master = new Set(volumeFiles(path.join(c.master.dataDir, 'volumes')).keys());
  for (const [i] of c.servers.entries()) {
    assert.ok(checks.some((f) => f.server === c.urls[i]), `${what}: server ${i} holds the group's volumes`);
    const extra = serverVolumes(c, i).filter((id) => !master.has(id));
    assert.deepEqual(extra, [], `${what}: server ${i} (${c.urls[i]}) holds volumes the master removed`);
  }
}

async function fillAndChurn(redis: Redis, c: Cluster, model: Model, tag: string): Promise<void> {
  for (let i = 0; i < 200; i++) await setSmall(redis, model, `${tag}${i}`, 0, 2000 + ((i * 37) % 5000));
  for (let i = 0; i < 3; i++) await putBlob(c.master.httpPort, model, `${tag}blob${i}`, MB + 1000 * i, 50 + i);
  for (let i = 0; i < 200; i++) {
    if (i % 4 === 0) continue;
    if (i % 4 === 1) await deleteKey(redis, model, `${tag}${i}`);
    else await setSmall(redis, model, `${tag}${i}`, 1, 2500);
  }
  await deleteKey(redis, model, `${tag}blob0`);
}

function noErrors(rows: VacuumRow[]): void {
  for (const r of rows) assert.deepEqual(r.errors, [], `volume ${r.volume}: ${r.errors.join('; ')}`);
}

test('a vacuum in a replicated group: members equal the master, removed volumes gone everywhere; a member killed before the removal gets it after its repair', { timeout: 180_000 }, async () => {
  const c = await startCluster({ servers: 2, rf: 3, masterArgs: ARGS });
  let redis = client(c.master.port);
  const model = new Model();
  try {
    const groups = await c.waitHealthy();
    assert.equal(groups[0]!.members.length, 2, 'both servers are members of the group');
    await fillAndChurn(redis, c, model, 'a');
    const before = masterVolumes(c);
    await checkMembers(c, 'before the vacuum');

    const rows = parseVacuum(await redis.call('VACUUM'));
    noErrors(rows);
    const removed = rows.filter((r) => r.removed === 1).map((r) => r.volume);
    assert.ok(removed.length >= 2, `the vacuum removed volumes: ${JSON.stringify(rows)}`);
    for (const id of removed) {
      assert.ok(before.includes(id));
      for (const [i] of c.servers.entries()) assert.ok(!serverVolumes(c, i).includes(id), `server ${i} no longer holds volume ${id}`);
    }
    await checkMembers(c, 'after the vacuum');
    await checkModel(model, redis, c.master.httpPort, 'after the vacuum');

    // A member killed while the vacuum waits (its grace) to remove a volume; back and repaired,
    // a later VACUUM removes what it left there: with the master up all along, and after a
    // restart of the master (which remembers nothing of the failed removal).
    redis = await memberDownRound(c, redis, model, 'b', false);
    redis = await memberDownRound(c, redis, model, 'c', true);
    await killedDuringCopy(c, redis, model);
    await checkMembers(c, 'at the end');
    await checkModel(model, redis, c.master.httpPort, 'at the end');
  } finally {
    redis.disconnect();
    await c.stop();
  }
});

/**
 * Writes garbage and an 8 MB blob, vacuums the blob's volume by name and kills server 1 once the
 * copy is done (before the removal); checks nothing acknowledged is lost, restarts the master
 * (kill -9, then a start on its data dir) when asked, brings the server back, and checks a later VACUUM removes the volume there.
 * Answers the client (a new one after a master restart).
 */
async function memberDownRound(c: Cluster, redis: Redis, model: Model, tag: string, restartMaster: boolean): Promise<Redis> {
  await putBlob(c.master.httpPort, model, `${tag}big`, 8 * MB, 60);
  await fillAndChurn(redis, c, model, tag);
  await checkMembers(c, `before the vacuum of round ${tag}`);
  const holder = masterVolumes(c).find((id) => id !== Math.max(...masterVolumes(c)) && volumeFiles(path.join(c.master.dataDir, 'volumes')).get(id)! > 8 * MB);
  assert.ok(holder !== undefined, 'a sealed volume holds the 8 MB blob');
  const victim = 1;
  const vacuum = redis.call('VACUUM', String(holder)).then((r) => parseVacuum(r));
  await copiedThenKill(c, holder, victim, vacuum);
  const [report] = await vacuum;
  assert.ok(report !== undefined);
  assert.equal(report.removed, 1, `the master's own copy is removed: ${JSON.stringify(report)}`);
  assert.ok(report.errors.some((e) => e.includes(c.urls[victim]!)), `the vacuum names the member it could not reach: ${JSON.stringify(report.errors)}`);
  assert.ok(serverVolumes(c, victim).includes(holder), 'the killed member still holds the volume');
  assert.ok(!serverVolumes(c, 0).includes(holder), 'the member that was up removed it');
  await checkModel(model, redis, c.master.httpPort, `round ${tag}, a member down`);
  if (restartMaster) {
    redis.disconnect();
    await c.killMaster();
    await c.restartMaster();
    redis = client(c.master.port);
  }
  await c.restartServer(victim);
  await c.waitHealthy();
  await checkModel(model, redis, c.master.httpPort, `round ${tag}, the member back`);
  noErrors(parseVacuum(await redis.call('VACUUM')));
  assert.ok(!serverVolumes(c, victim).includes(holder), `round ${tag}: a later VACUUM removed volume ${holder} on the member that was down (it holds ${JSON.stringify(serverVolumes(c, victim))}; the master ${JSON.stringify(masterVolumes(c))})`);
  return redis;
}

/**
 * A member killed as soon as a vacuum of a volume holding 32 MB shows in /v1/status (its copy
 * under way, or done): whichever way it ends (the copy refused with the group short of a member,
 * or the removal missing it), nothing acknowledged is lost, and once the member is back and
 * repaired a later VACUUM leaves the volume nowhere.
 */
async function killedDuringCopy(c: Cluster, redis: Redis, model: Model): Promise<void> {
  await putBlob(c.master.httpPort, model, 'dbig', 32 * MB, 70);
  await fillAndChurn(redis, c, model, 'd');
  await c.waitHealthy();
  const holder = masterVolumes(c).find((id) => volumeFiles(path.join(c.master.dataDir, 'volumes')).get(id)! > 32 * MB);
  assert.ok(holder !== undefined && holder !== Math.max(...masterVolumes(c)), 'a sealed volume holds the 32 MB blob');
  const vacuum = redis.call('VACUUM', String(holder)).then((r) => parseVacuum(r), (e: Error) => e);
  let seen = false;
  while (!seen) {
    const ops = ((await statusOf(c))['operations'] ?? []) as Array<Record<string, number>>;
    seen = ops.some((o) => o['target'] === holder);
    if (!seen) await sleep(5);
  }
  await c.killServer(1);
  const outcome = await vacuum;
  const errors = outcome instanceof Error ? [outcome.message] : outcome.flatMap((r) => r.errors);
  assert.ok(errors.length > 0, `a vacuum with a member killed under it says so: ${JSON.stringify(outcome)}`);
  await checkModel(model, redis, c.master.httpPort, 'a member killed during the copy');
  await c.restartServer(1);
  await c.waitHealthy();
  await checkModel(model, redis, c.master.httpPort, 'the member back after a kill during the copy');
  if (masterVolumes(c).includes(holder)) noErrors(parseVacuum(await redis.call('VACUUM', String(holder))));
  noErrors(parseVacuum(await redis.call('VACUUM')));
  assert.ok(!masterVolumes(c).includes(holder), `volume ${holder} is gone from the master`);
  for (const [i] of c.servers.entries()) assert.ok(!serverVolumes(c, i).includes(holder), `volume ${holder} is gone from server ${i}`);
}

/**
 * Waits until VOLINFO shows nothing live left in `volume` while its vacuum still runs (every key
 * moved: it waits its grace period before the removal), then kills server `victim`.
 */
async function copiedThenKill(c: Cluster, volume: number, victim: number, vacuum: Promise<unknown>): Promise<void> {
  let settled = false;
  void vacuum.then(() => (settled = true), () => (settled = true));
  const watcher = client(c.master.port);
  try {
    while (!settled) {
      const row = (await volinfo(watcher)).find((v) => v.id === volume);
      if (row !== undefined && row.live === 0 && !settled) {
        await c.killServer(victim);
        return;
      }
      await sleep(10);
    }
  } finally {
    watcher.disconnect();
  }
  assert.fail('the vacuum ended before its volume was seen empty in VOLINFO');
}
