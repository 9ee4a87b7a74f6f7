// Black-box tests of read-only replicas (issue 12, docs/replica.md) with real processes: a master
// with HTTP (node cmd/master.js) and two replicas (node cmd/replica.js), one started before the
// writes (it follows live) and one after them (it takes a full resync).
// Owns: the processes it starts (stopped by PID in `after`) and their temp dirs.
// Invariants checked: at each quiescent point every replica's digest of every key, value
// (SHA-256) and expiry (PEXPIRETIME) equals the master's, whatever wrote it (TCP, HTTP, MULTI,
// BEGIN/COMMIT, TTLs, DEL, FLUSHALL, COMPACT in between); blobs of 1 KB to 64 MB read back from
// a replica byte for byte; every write path is refused on a replica, PUBLISH works there.
// Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { patternChunks, sha256Of, sleep, startMaster, stopAll, streamRequest, within, type MasterProcess } from './helpers/master_process.js';
import { startReplica, stopAllReplicas, type ReplicaProcess } from './helpers/replica_process.js';
import { storeDigest, waitEqual } from './helpers/store_digest.js';

const KB = 1024;
const MB = 1024 * KB;
const CATCH_UP_MS = 20_000;
const BLOBS = [
  ['blob/1k', KB],
  ['blob/1m', MB],
  ['blob/8m', 8 * MB],
  ['blob/64m', 64 * MB],
] as const;

let m: MasterProcess;
let live: ReplicaProcess;
let late: ReplicaProcess | null = null;
let writer: Redis;

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, commandTimeout: 30_000 });
  c.on('error', () => undefined);
  return c;
}

before(async () => {
  m = await startMaster({ http: true });
  live = await startReplica({ master: `127.0.0.1:${m.port}`, http: true });
  writer = client(m.port);
});

after(async () => {
  writer?.disconnect();
  await stopAllReplicas();
  await stopAll();
});

async function putBlob(key: string, size: number, seed: number): Promise<void> {
  const res = await streamRequest({
    method: 'PUT', port: m.httpPort, path: `/v1/blobs/${key}`, headers: { 'content-length': String(size) },
    body: patternChunks(seed, size), keep: true, ms: 120_000,
  });
  assert.ok(res.status === 201 || res.status === 200, `PUT ${key}: ${res.status} ${res.body.toString()}`);
}

async function httpDelete(port: number, key: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/v1/blobs/${key}`, { method: 'DELETE', signal: AbortSignal.timeout(10_000) });
}

/** Small values, counters, TTLs, transactions and deletes over TCP and HTTP; `tag` keeps rounds apart. */
async function smallWrites(tag: string): Promise<void> {
  for (let i = 0; i < 100; i++) await writer.set(`${tag}:k${i}`, `value ${i} of ${tag}`);
  await writer.mset(`${tag}:m1`, 'one', `${tag}:m2`, 'two');
  for (let i = 0; i < 7; i++) await writer.incr(`${tag}:counter`);
  await writer.set(`${tag}:ex`, 'seconds', 'EX', 3600);
  await writer.set(`${tag}:px`, 'millis', 'PX', 7_200_000);
  await writer.set(`${tag}:later`, 'x');
  await writer.expire(`${tag}:later`, 5000);
  await writer.set(`${tag}:kept`, 'y', 'EX', 100);
  await writer.persist(`${tag}:kept`);
  // Gone before the comparison: the master's expiry must reach the replica as a delete (or the
  // replica must not serve it).
  await writer.set(`${tag}:short`, 'z', 'PX', 200);
  for (let i = 0; i < 100; i += 10) await writer.del(`${tag}:k${i}`);
  const multi = await writer.multi().set(`${tag}:tx1`, 'a').incr(`${tag}:txc`).del(`${tag}:k1`).exec();
  assert.equal(multi?.length, 3);
  assert.equal(await writer.call('BEGIN'), 'OK');
  await writer.set(`${tag}:begin1`, 'b1');
  await writer.set(`${tag}:begin2`, 'b2', 'EX', 900);
  await writer.del(`${tag}:k2`);
  assert.equal(await writer.call('COMMIT'), 'OK');
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/${tag}/h${i}`, { method: 'PUT', body: `http value ${i}`, signal: AbortSignal.timeout(10_000) });
    assert.ok(res.status === 201 || res.status === 200, `HTTP PUT: ${res.status}`);
  }
  assert.equal((await httpDelete(m.httpPort, `${tag}/h3`)).status, 204);
  await sleep(300); // the PX 200 key has expired
}

async function blobOnReplica(r: ReplicaProcess, key: string, size: number, seed: number): Promise<void> {
  const expected = await sha256Of(patternChunks(seed, size));
  const got = await streamRequest({ method: 'GET', port: r.httpPort, path: `/v1/blobs/${key}`, ms: 60_000 });
  assert.equal(got.status, 200, `GET ${key} on the replica`);
  assert.equal(got.length, size);
  assert.equal(got.sha256, expected, `${key}: the replica's bytes are the master's`);
}

test('writes of every kind reach a live replica and one started after them; digests equal at each quiescent point', { timeout: 100_000 }, async () => {
  await smallWrites('round1');
  for (const [i, [key, size]] of BLOBS.entries()) await putBlob(key, size, 100 + i);
  const first = await waitEqual(m.port, [live.port], CATCH_UP_MS, 'the live replica after round 1');
  assert.ok(first.keys > 100, `round 1 wrote keys (${first.keys})`);
  assert.equal(first.entries.has(Buffer.from('round1:short').toString('hex')), false, 'the expired key is gone');
  for (const [i, [key, size]] of BLOBS.entries()) await blobOnReplica(live, key, size, 100 + i);

  // FLUSHALL once, COMPACT once (mid-way): the live replica follows both.
  assert.equal(await writer.flushall(), 'OK');
  await smallWrites('round2');
  await putBlob('blob/after-flush', 2 * MB, 7);
  await putBlob('blob/8m', 8 * MB, 6);
  assert.equal(await writer.call('COMPACT'), 'OK');
  await smallWrites('round3');
  await putBlob('blob/1m', MB, 8); // overwrites, after the compaction
  await waitEqual(m.port, [live.port], CATCH_UP_MS, 'the live replica after FLUSHALL and COMPACT');

  // A replica started now has none of it: a full resync, then it follows.
  late = await startReplica({ master: `127.0.0.1:${m.port}`, http: true });
  await late.waitLog('full resync done');
  await waitEqual(m.port, [live.port, late.port], CATCH_UP_MS, 'both replicas after the late one resynced');

  // Both follow what comes next, blobs included.
  await smallWrites('round4');
  await putBlob('blob/64m', 64 * MB, 9);
  assert.equal((await httpDelete(m.httpPort, 'blob/8m')).status, 204);
  const last = await waitEqual(m.port, [live.port, late.port], CATCH_UP_MS, 'both replicas after round 4');
  assert.equal(last.entries.has(Buffer.from('round1:k5').toString('hex')), false, 'FLUSHALL removed round 1');

  for (const r of [live, late]) {
    await blobOnReplica(r, 'blob/64m', 64 * MB, 9);
    await blobOnReplica(r, 'blob/1m', MB, 8);
    await blobOnReplica(r, 'blob/after-flush', 2 * MB, 7);
    const gone = await fetch(`http://127.0.0.1:${r.httpPort}/v1/blobs/blob/8m`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(gone.status, 404, 'a blob deleted on the master is gone on the replica');
  }
  // GET over TCP on a replica: the same bytes.
  const rc = client(live.port);
  try {
    const value = await rc.getBuffer('blob/1m');
    assert.ok(value !== null);
    assert.equal(await sha256Of((async function* () { yield value; })()), await sha256Of(patternChunks(8, MB)));
    assert.equal(await rc.get('round4:counter'), '7');
    const ttl = await rc.pttl('round4:px');
    assert.ok(ttl > 7_000_000 && ttl <= 7_200_000, `PTTL on the replica ${ttl}`);
  } finally {
    rc.disconnect();
  }
});

test('writes are refused on a replica by every path: TCP commands, MULTI, BEGIN, HTTP PUT and DELETE', { timeout: 30_000 }, async () => {
  await writer.set('ro/existing', 'kept');
  await waitEqual(m.port, [live.port], CATCH_UP_MS);
  const before = await storeDigest(live.port);
  const rc = client(live.port);
  try {
    const refusals: Array<[string, () => Promise<unknown>]> = [
      ['SET', () => rc.set('ro/new', 'x')],
      ['DEL', () => rc.del('ro/existing')],
      ['INCR', () => rc.incr('ro/counter')],
      ['EXPIRE', () => rc.expire('ro/existing', 10)],
      ['FLUSHALL', () => rc.flushall()],
    ];
    for (const [name, run] of refusals) {
      await assert.rejects(run(), (e: Error) => e.message === "READONLY You can't write against a read only replica.", name);
    }

    // MULTI: the write is refused as it is queued, and EXEC aborts.
    const multi = await rc.multi().get('ro/existing').set('ro/new', 'x').exec().then(
      (v) => ({ ok: true as const, v }),
      (e: Error) => ({ ok: false as const, e }),
    );
    assert.equal(multi.ok, false, `EXEC after a refused write: ${JSON.stringify(multi)}`);
    if (!multi.ok) assert.match(multi.e.message, /EXECABORT/);

    // BEGIN + SET: refused at once (and nothing to commit).
    assert.equal(await rc.call('BEGIN'), 'OK');
    await assert.rejects(rc.set('ro/begin', 'x'), /READONLY/);
    await rc.call('ROLLBACK').catch(() => undefined);

    // HTTP PUT and DELETE: 403 READONLY in the JSON error.
    const put = await fetch(`http://127.0.0.1:${live.httpPort}/v1/blobs/ro/http`, { method: 'PUT', body: 'x', signal: AbortSignal.timeout(10_000) });
    assert.equal(put.status, 403);
    assert.equal(((await put.json()) as { code?: string }).code, 'READONLY');
    const del = await httpDelete(live.httpPort, 'ro/existing');
    assert.equal(del.status, 403);
    assert.equal(((await del.json()) as { code?: string }).code, 'READONLY');

    assert.equal(await rc.get('ro/existing'), 'kept', 'reads still answer');
  } finally {
    rc.disconnect();
  }
  const after = await storeDigest(live.port);
  assert.equal(after.hash, before.hash, 'no refused write changed the replica');
});

test('a replica of a replica is refused with a clear error (no chained replication), and the refused one keeps waiting', { timeout: 30_000 }, async () => {
  const chained = await startReplica({ master: `127.0.0.1:${live.port}`, startMs: 4_000 }).then(
    () => null,
    (e: Error) => e,
  );
  assert.ok(chained !== null, 'a replica of a replica does not start serving');
  assert.match(chained.message, /this server is a replica: replicate from its master/);
  assert.doesNotMatch(chained.message, /exited before/, 'it kept retrying until the test stopped it');
});

test('PUBLISH on a replica reaches a SUBSCRIBE on the same replica', { timeout: 20_000 }, async () => {
  const sub = client(live.port);
  const pub = client(live.port);
  try {
    await sub.subscribe('replica-news');
    const got = once(sub, 'message') as Promise<[string, string]>;
    const receivers = await pub.publish('replica-news', 'hello from a replica');
    assert.equal(receivers, 1);
    const [channel, message] = await within(got, 5000, 'the message on the replica');
    assert.equal(channel, 'replica-news');
    assert.equal(message, 'hello from a replica');
  } finally {
    sub.disconnect();
    pub.disconnect();
  }
});
