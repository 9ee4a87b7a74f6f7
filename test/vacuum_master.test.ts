// Vacuum as a user meets it (issue 13, docs/vacuum.md), against a real master (node cmd/master.js)
// with 1 MB volumes: values written over TCP (ioredis) and HTTP (PUT, blobs of a few MB), most
// overwritten or deleted; VOLINFO shows the garbage; VACUUM over redis-cli and ioredis answers its
// documented shape and gives the disk back (the volume files end within 10 % of the live bytes,
// plus superblocks); every live value reads back by SHA-256 over TCP and HTTP (GET and Range),
// deleted keys stay gone; the errors (VACUUM 99999, POST ?volume=abc) are clear; a 64 MB GET
// streaming while its volume is vacuumed and removed completes byte for byte; /v1/status and
// /metrics show the fields; the automatic pass (--vacuum-every 1) vacuums by itself; a restart
// keeps all of it.
// Owns: the master it starts (stopped by PID in `after`) and its temp dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { hasProgram, patternChunks, sha256Of, sleep, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';
import {
  Model, checkModel, deleteKey, parseVacuum, putBlob, setSmall, sumBytes, totals, volinfo, volumeFiles, waitNoHandle, type VolumeRow,
} from './helpers/vacuum_model.js';
import { VOLUME_SUPERBLOCK_SIZE, volumeFileName as fileOf } from '../src/storage/volume_format.js';

const MB = 1024 * 1024;
const BIG = 64 * MB;
const BASE_ARGS = ['--max-volume-size', '1mb', '--vacuum-rate', '0'];
const MANUAL = [...BASE_ARGS, '--vacuum-every', '0'];
const AUTO = [...BASE_ARGS, '--vacuum-every', '1', '--vacuum-threshold', '30'];

let m: MasterProcess;
let redis: Redis;
const model = new Model();

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, commandTimeout: 60_000 });
  c.on('error', () => undefined);
  return c;
}

async function restart(args: string[]): Promise<void> {
  redis.disconnect();
  assert.equal(await m.stop(), 0, 'the master stops cleanly');
  m = await startMaster({ http: true, dataDir: m.dataDir, args });
  redis = client(m.port);
}

const volumesDir = (): string => path.join(m.dataDir, 'volumes');

before(async () => {
  m = await startMaster({ http: true, args: MANUAL });
  redis = client(m.port);
});

after(async () => {
  redis?.disconnect();
  await stopAll();
});

function redisCli(...args: string[]): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(m.port), ...args], { timeout: 60_000 }, (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`${err.message}: ${stderr}`))));
    }),
    70_000,
    `redis-cli ${args.join(' ')}`,
  );
}

test('garbage in VOLINFO; VACUUM over redis-cli and ioredis gives the disk back; every value reads back', { timeout: 90_000 }, async () => {
  for (let i = 0; i < 300; i++) await setSmall(redis, model, `k${i}`, 0, 2000 + ((i * 37) % 6000));
  for (let i = 0; i < 6; i++) await putBlob(m.httpPort, model, `blob${i}`, (1 + (i % 3)) * MB + i * 1000, 100 + i);
  // Most of it overwritten or deleted: a quarter of the small keys kept, the rest half each.
  for (let i = 0; i < 300; i++) {
    if (i % 4 === 0) continue;
    if (i % 4 === 1) await deleteKey(redis, model, `k${i}`);
    else await setSmall(redis, model, `k${i}`, 1, 2000 + ((i * 53) % 6000));
  }
  await deleteKey(redis, model, 'blob0');
  await deleteKey(redis, model, 'blob1');
  await putBlob(m.httpPort, model, 'blob2', MB + 77, 200);

  const dirty = await volinfo(redis);
  const t = totals(dirty);
  assert.ok(t.garbage > 0.4 * t.size, `VOLINFO shows the garbage: ${t.garbage} of ${t.size} bytes`);
  assert.ok(t.live >= model.liveValueBytes(), `live bytes ${t.live} hold the model's ${model.liveValueBytes()} bytes of values`);
  const diskBefore = sumBytes(volumeFiles(volumesDir()));
  // Less the padding of each volume's last needle, not written until a next one.
  assert.ok(diskBefore <= t.size && diskBefore > t.size - 8 * dirty.length, `VOLINFO sizes (${t.size}) are the files on disk (${diskBefore})`);

  // redis-cli, one volume: the sealed one with the most garbage.
  const target = dirty.slice(0, -1).reduce((a, b) => (b.garbage > a.garbage ? b : a));
  assert.ok(hasProgram('redis-cli'), 'redis-cli is installed');
  const text = (await redisCli('VACUUM', String(target.id))).trim().split('\n');
  assert.deepEqual(text.filter((_, i) => i % 2 === 0 && i < 16), ['volume', 'moved', 'copied_bytes', 'changed', 'expired', 'freed_bytes', 'removed', 'duration_ms'], `redis-cli VACUUM's fields: ${text.join(' | ')}`);
  assert.equal(text[1], String(target.id), 'the volume vacuumed');
  assert.equal(text[13], '1', `redis-cli VACUUM ${target.id} removed it: ${text.join(' | ')}`);
  assert.equal(fs.existsSync(path.join(volumesDir(), fileOf(target.id))), false, `volume ${target.id}'s file is gone`);

  // ioredis, every volume over the threshold.
  const rows = parseVacuum(await redis.call('VACUUM'));
  assert.ok(rows.length > 0, 'volumes over the threshold were vacuumed');
  for (const r of rows) assert.deepEqual(r.errors, [], `volume ${r.volume}: ${r.errors.join('; ')}`);
  assert.ok(rows.some((r) => r.removed === 1 && r.freed_bytes > 0 && r.moved > 0), `a volume with live keys was moved and removed: ${JSON.stringify(rows)}`);
  assert.ok(rows.some((r) => r.copied_bytes > 0));
  // Whatever garbage is left (volumes under the threshold), each vacuumed by name.
  for (const v of await volinfo(redis)) if (v.garbage > 0) for (const r of parseVacuum(await redis.call('VACUUM', String(v.id)))) assert.deepEqual(r.errors, []);

  const after = await volinfo(redis);
  const files = volumeFiles(volumesDir());
  const disk = sumBytes(files);
  const live = totals(after).live;
  assert.ok(disk <= diskBefore - 0.9 * t.garbage, `disk ${diskBefore} -> ${disk}: ${t.garbage} bytes of garbage given back`);
  assert.ok(disk <= 1.1 * live + files.size * VOLUME_SUPERBLOCK_SIZE, `disk ${disk} B within 10 % of live ${live} B + ${files.size} superblocks`);
  // The index's live bytes are the values and their needles' headers, not more.
  assert.ok(live <= model.liveValueBytes() + model.live.size * 20_000, `live ${live} vs values ${model.liveValueBytes()}`);
  for (const id of dirty.map((v) => v.id)) {
    if (!after.some((v) => v.id === id)) assert.equal(files.has(id), false, `removed volume ${id} has no file`);
  }
  await checkModel(model, redis, m.httpPort, 'after VACUUM');
});

test('VACUUM of a volume that does not exist, a bad id; POST /v1/admin/vacuum', { timeout: 60_000 }, async () => {
  await assert.rejects(redis.call('VACUUM', '99999'), /no volume 99999/);
  await assert.rejects(redis.call('VACUUM', 'abc'), /volume must be a volume id/);
  await assert.rejects(redis.call('VACUUM', '1', '2'), /wrong number of arguments/);
  assert.match(await redisCli('VACUUM', '99999'), /no volume 99999/);

  const base = `http://127.0.0.1:${m.httpPort}`;
  const bad = await fetch(`${base}/v1/admin/vacuum?volume=abc`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /volume must be a volume id/);
  const missing = await fetch(`${base}/v1/admin/vacuum?volume=99999`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /no volume 99999/);

  // Garbage again, then a vacuum over HTTP: one volume by name, then every one over the threshold.
  for (let i = 0; i < 300; i += 4) await setSmall(redis, model, `k${i}`, 2, 3000);
  for (let i = 2; i < 300; i += 4) await deleteKey(redis, model, `k${i}`);
  const dirty = (await volinfo(redis)).filter((v) => v.garbage > 0);
  const one = dirty.reduce((a, b) => (b.garbage > a.garbage ? b : a));
  const byName = await postVacuum(base, `?volume=${one.id}`);
  assert.equal(byName.length, 1);
  assert.equal(byName[0]!['volume'], one.id);
  assert.equal(byName[0]!['removed'], true);
  const again = await fetch(`${base}/v1/admin/vacuum?volume=${one.id}`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  assert.equal(again.status, 404, 'a volume removed is no volume');
  const all = await postVacuum(base, '');
  assert.ok(all.length > 0, 'POST /v1/admin/vacuum vacuumed the volumes over the threshold');
  await checkModel(model, redis, m.httpPort, 'after POST /v1/admin/vacuum');
});

test('a 64 MB GET streaming while its volume is vacuumed and removed completes byte for byte; /v1/status and /metrics', { timeout: 90_000 }, async () => {
  await waitHttp();
  await putBlob(m.httpPort, model, 'big', BIG, 7);
  const holder = (await volinfo(redis)).find((v) => v.live >= BIG);
  assert.ok(holder !== undefined, 'a volume holds the 64 MB blob');

  // A GET that takes its first bytes and then waits, its socket paused.
  const stream = pausedGet(m.httpPort, '/v1/blobs/big');
  await stream.started;
  const vacuum = redis.call('VACUUM', String(holder.id));
  // While it runs (its copy, then the grace before the removal), /v1/status shows its progress.
  const progress = await pollProgress(holder.id, vacuum);
  assert.ok(progress !== null, 'a running vacuum shows in /v1/status operations');
  assert.equal(progress['operation'], 'vacuum');
  for (const f of ['percent', 'done_bytes', 'total_bytes', 'eta_seconds']) assert.ok(f in progress, `operations[].${f}: ${JSON.stringify(progress)}`);
  assert.ok((progress['total_bytes'] as number) >= BIG);
  const [report] = parseVacuum(await vacuum);
  assert.deepEqual(report!.errors, []);
  assert.equal(report!.removed, 1, 'the blob\'s volume was removed');
  assert.equal(fs.existsSync(path.join(volumesDir(), fileOf(holder.id))), false, 'its file is gone from the directory');

  assert.ok(stream.received() < BIG / 2, `the GET had ${stream.received()} bytes of ${BIG} when the volume was removed`);
  const got = await stream.finish();
  assert.equal(got.status, 200);
  assert.equal(got.length, BIG, 'the paused GET got every byte');
  assert.equal(got.sha256, await sha256Of(patternChunks(7, BIG)), 'the paused GET got the blob byte for byte');

  // The space comes back: once the stream is done and every thread forgot the volume, no handle is left on it.
  await waitNoHandle(m.pid, fileOf(holder.id));

  const status = (await (await fetch(`http://127.0.0.1:${m.httpPort}/v1/status`, { signal: AbortSignal.timeout(10_000) })).json()) as { volumes: Array<Record<string, number>>; operations: unknown[] };
  const rows = await volinfo(redis);
  assert.equal(status.volumes.length, rows.length);
  for (const r of rows) {
    const s = status.volumes.find((v) => v['id'] === r.id);
    assert.ok(s !== undefined, `volume ${r.id} in /v1/status`);
    assert.equal(s['live_bytes'], r.live);
    assert.equal(s['garbage_bytes'], r.garbage);
  }
  assert.deepEqual(status.operations, [], 'no vacuum runs now');
  const metrics = await (await fetch(`http://127.0.0.1:${m.httpPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const moved = rows.find((v) => v.live >= BIG)!;
  assert.match(metrics, new RegExp(`^brisedb_volume_live_bytes\\{volume="${moved.id}"[^}]*\\} ${moved.live}$`, 'm'));
  assert.match(metrics, new RegExp(`^brisedb_volume_garbage_bytes\\{volume="${moved.id}"[^}]*\\} ${moved.garbage}$`, 'm'));
  assert.doesNotMatch(metrics, new RegExp(`volume="${holder.id}"`), 'the removed volume is not in /metrics');
  await checkModel(model, redis, m.httpPort, 'after the 64 MB move');
});

test('the automatic pass vacuums sealed volumes over the threshold by itself; a restart keeps everything', { timeout: 90_000 }, async () => {
  await restart(AUTO);
  // Blobs larger than the volume size (volumes of their own), then deleted or overwritten: sealed
  // volumes that are nearly all garbage. And small keys overwritten in the 1 MB volumes.
  for (let i = 0; i < 4; i++) await putBlob(m.httpPort, model, `auto${i}`, 2 * MB + i, 300 + i);
  for (let i = 0; i < 300; i += 4) await setSmall(redis, model, `k${i}`, 3, 2500);
  await deleteKey(redis, model, 'auto0');
  await deleteKey(redis, model, 'auto1');
  await putBlob(m.httpPort, model, 'auto2', 100, 400);
  // What the pass takes: sealed (not the newest), garbage over the threshold, and at least 1 MiB
  // of it or nothing live (those with less are left alone: not worth a copy).
  const newest = Math.max(...(await volinfo(redis)).map((b) => b.id));
  const dirty = (await volinfo(redis)).filter((v) => v.id !== newest && v.garbage > 0.3 * (v.size - VOLUME_SUPERBLOCK_SIZE) && (v.garbage >= MB || v.live === 0));
  assert.ok(dirty.length >= 3, `sealed volumes over the threshold: ${JSON.stringify(dirty)}`);
  const garbageBefore = totals(await volinfo(redis)).garbage;

  // Nothing asked: the pass every second finds them.
  const deadline = Date.now() + 30_000;
  let rows: VolumeRow[] = [];
  for (;;) {
    rows = await volinfo(redis);
    if (dirty.every((d) => !rows.some((r) => r.id === d.id))) break;
    if (Date.now() > deadline) assert.fail(`the automatic vacuum left ${JSON.stringify(dirty.filter((d) => rows.some((r) => r.id === d.id)))}; VOLINFO ${JSON.stringify(rows)}`);
    await sleep(250);
  }
  for (const d of dirty) assert.equal(fs.existsSync(path.join(volumesDir(), fileOf(d.id))), false, `volume ${d.id}'s file is gone`);
  assert.ok(totals(rows).garbage < garbageBefore, `garbage ${garbageBefore} -> ${totals(rows).garbage}`);
  await checkModel(model, redis, m.httpPort, 'after the automatic vacuum');

  // A restart: the same values, the same live bytes per volume, the removed volumes stay removed.
  const atStop = await volinfo(redis);
  await restart(AUTO);
  const again = await volinfo(redis);
  for (const v of atStop) {
    const w = again.find((x) => x.id === v.id);
    if (w === undefined) continue; // vacuumed again by the pass since (it may have found more)
    assert.equal(w.live, v.live, `volume ${v.id}'s live bytes after the restart`);
  }
  assert.equal(totals(again).live, totals(atStop).live, 'live bytes after the restart');
  for (const d of dirty) assert.ok(!again.some((r) => r.id === d.id), `removed volume ${d.id} stays removed`);
  await checkModel(model, redis, m.httpPort, 'after a restart');
});

/** Waits (bounded) until the HTTP front end answers /v1/status. */
async function waitHttp(): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${m.httpPort}/v1/status`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > deadline) assert.fail('the HTTP front end does not answer /v1/status');
    await sleep(100);
  }
}

/** POST /v1/admin/vacuum with `query`: its reports, each with the documented fields and no error. */
async function postVacuum(base: string, query: string): Promise<Array<Record<string, unknown>>> {
  const res = await fetch(`${base}/v1/admin/vacuum${query}`, { method: 'POST', signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /v1/admin/vacuum${query}: ${text}`);
  const body = JSON.parse(text) as { volumes: Array<Record<string, unknown>> };
  assert.ok(Array.isArray(body.volumes), `POST /v1/admin/vacuum${query}: ${text}`);
  for (const v of body.volumes) {
    assert.deepEqual(Object.keys(v).sort(), ['changed', 'copied_bytes', 'duration_ms', 'errors', 'expired', 'freed_bytes', 'group', 'moved', 'removed', 'volume']);
    assert.deepEqual(v['errors'], [], `POST /v1/admin/vacuum${query}: ${text}`);
  }
  return body.volumes;
}

/** Polls /v1/status until it shows a vacuum of `volume` (answers it) or `done` settles (null). */
async function pollProgress(volume: number, done: Promise<unknown>): Promise<Record<string, unknown> | null> {
  let settled = false;
  void done.then(() => (settled = true), () => (settled = true));
  while (!settled) {
    const res = await fetch(`http://127.0.0.1:${m.httpPort}/v1/status`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { operations?: Array<Record<string, unknown>> };
    const op = body.operations?.find((o) => o['target'] === volume);
    if (op !== undefined) return op;
    await sleep(20);
  }
  return null;
}

/** A GET whose response is paused after its first bytes until finish() reads the rest. */
function pausedGet(port: number, urlPath: string): { started: Promise<void>; received(): number; finish(): Promise<{ status: number; length: number; sha256: string }> } {
  const hash = createHash('sha256');
  let length = 0;
  let status = 0;
  let res: http.IncomingMessage | null = null;
  let resolveStarted!: () => void;
  let rejectAll!: (e: Error) => void;
  const started = new Promise<void>((resolve, reject) => {
    resolveStarted = resolve;
    rejectAll = reject;
  });
  const ended = new Promise<void>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (r) => {
      res = r;
      status = r.statusCode ?? 0;
      r.on('data', (d: Buffer) => {
        hash.update(d);
        if (length === 0) {
          r.pause();
          resolveStarted();
        }
        length += d.length;
      });
      r.once('end', resolve);
      r.once('error', reject);
    });
    req.once('error', (e) => {
      rejectAll(e);
      reject(e);
    });
  });
  return {
    started: within(started, 30_000, 'the first bytes of the GET'),
    received: () => length,
    async finish() {
      res!.resume();
      await within(ended, 60_000, 'the rest of the paused GET');
      return { status, length, sha256: hash.digest('hex') };
    },
  };
}
