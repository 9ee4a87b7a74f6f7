// Replicas following a master that vacuums (issue 13, docs/vacuum.md with docs/replica.md), real
// processes: a master with 1 MB volumes and two replicas, one connected throughout and one
// stopped while the master writes volumes, overwrites them and vacuums them away (it never got
// those volumes' bytes: its stream resumes on records that name volumes the master no longer
// has), then restarted; and a third started after the vacuum (a full copy from a WAL that names
// removed volumes). Every replica ends equal to the master (store digest), serves every value
// over TCP and HTTP, drops the volumes the master removed (its disk falls too, no handle left
// on them), and refuses VACUUM (READONLY).
// Owns: the processes it starts (stopped by PID in `after`) and their temp dirs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { startReplica, stopAllReplicas, type ReplicaProcess } from './helpers/replica_process.js';
import { waitEqual } from './helpers/store_digest.js';
import { Model, checkModel, deleteKey, parseVacuum, putBlob, setSmall, sumBytes, volinfo, volumeFiles, waitNoHandle } from './helpers/vacuum_model.js';
import { volumeFileName } from '../src/storage/volume_format.js';

const MB = 1024 * 1024;
const CATCH_UP_MS = 30_000;
const ARGS = ['--max-volume-size', '1mb', '--vacuum-every', '0', '--vacuum-rate', '0'];

let m: MasterProcess;
let live: ReplicaProcess;
let late: ReplicaProcess;
let writer: Redis;
const model = new Model();
const clients: Redis[] = [];

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, commandTimeout: 60_000 });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

const volumesOf = (dataDir: string): Map<number, number> => volumeFiles(path.join(dataDir, 'volumes'));
/** A replica's volumes that hold bytes (a replica makes an empty current volume of its own at start). */
const filled = (dataDir: string): number[] => [...volumesOf(dataDir)].filter(([, size]) => size > 64).map(([id]) => id).sort((a, b) => a - b);

before(async () => {
  m = await startMaster({ http: true, args: ARGS });
  writer = client(m.port);
  live = await startReplica({ master: `127.0.0.1:${m.port}`, http: true });
  late = await startReplica({ master: `127.0.0.1:${m.port}`, http: true });
});

after(async () => {
  for (const c of clients) c.disconnect();
  await stopAllReplicas();
  await stopAll();
});

async function churn(tag: string, keys: number, round: number): Promise<void> {
  for (let i = 0; i < keys; i++) {
    if (i % 4 === 0) await setSmall(writer, model, `${tag}${i}`, round + 1, 1500 + ((i * 31) % 4000));
    else if (i % 4 === 1 && model.live.has(`${tag}${i}`)) await deleteKey(writer, model, `${tag}${i}`);
    else if (i % 4 === 1) await setSmall(writer, model, `${tag}${i}`, round + 1, 2000);
    else if (i % 4 === 2) await setSmall(writer, model, `${tag}${i}`, round + 1, 3000);
  }
}

test('a live replica and one stopped during the vacuum end equal to the master, serve every value, and drop the removed volumes', { timeout: 90_000 }, async () => {
  for (let i = 0; i < 200; i++) await setSmall(writer, model, `a${i}`, 0, 2000 + ((i * 37) % 5000));
  for (let i = 0; i < 3; i++) await putBlob(m.httpPort, model, `ablob${i}`, MB + 1000 * i, 10 + i);
  await waitEqual(m.port, [live.port, late.port], CATCH_UP_MS, 'both replicas before the vacuum');
  const lateHad = filled(late.dataDir);
  assert.equal(await late.stop(), 0);

  // While the late one is down: volumes it never gets are written, mostly overwritten, and vacuumed.
  for (let i = 0; i < 300; i++) await setSmall(writer, model, `b${i}`, 0, 2500 + ((i * 41) % 4000));
  await putBlob(m.httpPort, model, 'bblob', 2 * MB, 20);
  await churn('a', 200, 0);
  await churn('b', 300, 0);
  await deleteKey(writer, model, 'ablob0');
  await deleteKey(writer, model, 'bblob');
  const liveDiskBefore = sumBytes(volumesOf(live.dataDir));
  const rows = parseVacuum(await writer.call('VACUUM'));
  for (const r of rows) assert.deepEqual(r.errors, [], `volume ${r.volume}: ${r.errors.join('; ')}`);
  const removed = rows.filter((r) => r.removed === 1).map((r) => r.volume);
  assert.ok(removed.some((id) => id > Math.max(...lateHad)), `the vacuum removed volumes the stopped replica never had (${JSON.stringify(removed)}; it had ${JSON.stringify(lateHad)})`);
  assert.ok(removed.some((id) => lateHad.includes(id)), `and volumes it had (${JSON.stringify(removed)})`);
  // More writes after the vacuum: the stream goes on past the moves.
  for (let i = 0; i < 50; i++) await setSmall(writer, model, `c${i}`, 0, 4000);

  // The live replica: equal, every value, the removed volumes gone from its disk and its handles.
  await waitEqual(m.port, [live.port], CATCH_UP_MS, 'the live replica after the vacuum');
  await checkModel(model, client(live.port), live.httpPort, 'the live replica');
  await waitVolumes(live, removed, 'the live replica');
  assert.ok(sumBytes(volumesOf(live.dataDir)) < liveDiskBefore, `the live replica's disk falls: ${liveDiskBefore} -> ${sumBytes(volumesOf(live.dataDir))}`);
  for (const id of removed) await waitNoHandle(live.pid, volumeFileName(id));
  // Nor does the master keep a removed volume open for its replicas' streams.
  for (const id of removed) await waitNoHandle(m.pid, volumeFileName(id));

  // The late one comes back on the same data dir: it continues (no full copy) through records
  // naming volumes the master removed, and ends equal.
  late = await startReplica({ master: `127.0.0.1:${m.port}`, http: true, dataDir: late.dataDir, port: late.port, httpPort: late.httpPort });
  await waitEqual(m.port, [late.port], CATCH_UP_MS, 'the restarted replica after the vacuum');
  assert.ok(!late.logged('full resync'), `the restarted replica continued: ${late.stderr().slice(-2000)}`);
  await checkModel(model, client(late.port), late.httpPort, 'the restarted replica');
  await waitVolumes(late, removed, 'the restarted replica');
  for (const id of removed) await waitNoHandle(late.pid, volumeFileName(id));
});

test('a replica started after the vacuum takes a full copy without the removed volumes; a second vacuum reaches all of them', { timeout: 90_000 }, async () => {
  const fresh = await startReplica({ master: `127.0.0.1:${m.port}`, http: true });
  await fresh.waitLog('full resync done', CATCH_UP_MS);
  await waitEqual(m.port, [fresh.port], CATCH_UP_MS, 'the replica copied after the vacuum');
  await checkModel(model, client(fresh.port), fresh.httpPort, 'the copied replica');
  const master = new Set(volumesOf(m.dataDir).keys());
  for (const id of filled(fresh.dataDir)) assert.ok(master.has(id), `the copy holds volume ${id}, which the master removed`);

  // COMPACT (the snapshot carries the retired volumes), more garbage, another vacuum: all three follow.
  assert.equal(await writer.call('COMPACT'), 'OK');
  await churn('b', 300, 1);
  await churn('c', 50, 1);
  const rows = parseVacuum(await writer.call('VACUUM'));
  for (const r of rows) assert.deepEqual(r.errors, []);
  const removed = rows.filter((r) => r.removed === 1).map((r) => r.volume);
  assert.ok(removed.length > 0, 'the second vacuum removed volumes');
  const replicas = [live, late, fresh];
  await waitEqual(m.port, replicas.map((r) => r.port), CATCH_UP_MS, 'every replica after the second vacuum');
  for (const r of replicas) {
    await checkModel(model, client(r.port), r.httpPort, `replica on port ${r.port}`);
    await waitVolumes(r, removed, `replica on port ${r.port}`);
  }

  // A replica never vacuums by itself: its volumes are its master's.
  const rc = client(live.port);
  await assert.rejects(rc.call('VACUUM'), /READONLY/);
  const post = await fetch(`http://127.0.0.1:${live.httpPort}/v1/admin/vacuum?volume=1`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  assert.equal(post.status, 403);
  assert.equal(((await post.json()) as { code?: string }).code, 'READONLY');
  // Its VOLINFO is the master's, volume for volume (but the empty current volume a replica starts with).
  const mine = new Map((await volinfo(rc)).map((v) => [v.id, v]));
  for (const v of await volinfo(writer)) {
    if (v.size <= 64) continue;
    assert.equal(mine.get(v.id)?.live, v.live, `volume ${v.id}: live bytes on the replica`);
  }
});

/** Waits (bounded) until none of `removed` is among the replica's volume files. */
async function waitVolumes(r: ReplicaProcess, removed: number[], what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const left = removed.filter((id) => volumesOf(r.dataDir).has(id));
    if (left.length === 0) return;
    if (Date.now() > deadline) assert.fail(`${what} still holds volumes ${JSON.stringify(left)} the master removed (it has ${JSON.stringify([...volumesOf(r.dataDir).keys()])})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
