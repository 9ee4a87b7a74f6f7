// Taking over (issue 12, docs/replica.md "Taking over"), real processes: a master and two
// replicas; the master killed -9; replica A promoted with REPLICAOF NO ONE (and, in the second
// test, a stopped replica's data dir promoted with `node cmd/replica.js --promote`).
// Invariants checked: the promoted store takes writes; the other replica, restarted with --master
// the new one, continues (CONTINUE through the previous history, no full copy) and ends equal to
// it; the old master started again as a master is refused by that replica, with a clear error in
// its log, and the replica keeps what it had; the old master's data dir started as a replica of
// the new master (its WAL went past the fork) takes a full resync and ends equal.
// Owns: the processes it starts, stopped by PID in `after`. Every wait is bounded.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { sleep, startMaster, stopAll } from './helpers/master_process.js';
import { startMasterAt, startReplica, stopAllReplicas, type ReplicaProcess } from './helpers/replica_process.js';
import { storeDigest, waitEqual } from './helpers/store_digest.js';

const CATCH_UP_MS = 20_000;
const open: Redis[] = [];

after(async () => {
  for (const c of open) c.disconnect();
  await stopAllReplicas();
  await stopAll();
});

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, commandTimeout: 10_000, retryStrategy: () => null });
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

async function writeSome(port: number, tag: string, n = 100): Promise<void> {
  const c = client(port);
  for (let i = 0; i < n; i++) await c.set(`${tag}:${i}`, Buffer.alloc(100 + i * 37, i));
  await c.set(`${tag}:ttl`, 'x', 'EX', 3600);
  await c.del(`${tag}:0`);
  c.disconnect();
}

function countLogs(r: ReplicaProcess, text: string): number {
  return r.logs().filter((l) => typeof l['msg'] === 'string' && l['msg'].includes(text)).length;
}

test('kill the master, REPLICAOF NO ONE on A, write to A: B follows A without a full copy; the old master is refused as a master and resyncs as a replica', { timeout: 120_000 }, async () => {
  const old = await startMaster();
  const oldPort = old.port;
  let a = await startReplica({ master: `127.0.0.1:${oldPort}` });
  let b = await startReplica({ master: `127.0.0.1:${oldPort}` });
  await writeSome(oldPort, 'before');
  await waitEqual(oldPort, [a.port, b.port], CATCH_UP_MS, 'both replicas before the failure');
  await old.kill();

  // A takes over.
  const ca = client(a.port);
  assert.equal(await ca.call('REPLICAOF', 'NO', 'ONE'), 'OK');
  await a.waitLog('replica promoted');
  assert.equal(await ca.set('after:promotion', 'written on A'), 'OK', 'the promoted replica takes writes');
  await writeSome(a.port, 'on-a');

  // B, restarted towards A, continues through A's previous history: no full copy.
  await b.stop();
  b = await startReplica({ master: `127.0.0.1:${a.port}`, dataDir: b.dataDir, port: b.port });
  const following = await b.waitLog('replica following its master');
  assert.ok(Number(following['from']) > 1, `B continues from LSN ${String(following['from'])}`);
  assert.equal(b.logged('full resync'), false, `B took no full resync: ${b.stderr().slice(-2000)}`);
  const onA = await waitEqual(a.port, [b.port], CATCH_UP_MS, 'B to equal A');
  assert.ok(onA.entries.has(Buffer.from('after:promotion').toString('hex')));
  assert.equal(await client(b.port).get('after:promotion'), 'written on A');

  // The old master comes back as a master (and takes a write of its own: a fork). B, pointed at
  // it, refuses: its history is the one B's new master left.
  const back = await startMasterAt({ port: oldPort, dataDir: old.dataDir });
  assert.equal(await client(oldPort).set('fork:only-on-old', 'x'), 'OK');
  const bDigest = await storeDigest(b.port);
  await b.stop();
  b = await startReplica({ master: `127.0.0.1:${oldPort}`, dataDir: b.dataDir, port: b.port });
  const refused = await b.waitLog('replica link down', 15_000);
  assert.match(String(refused['err']), /refusing to follow it/, `a clear error: ${String(refused['err'])}`);
  console.log(`B refuses the old master: ${String(refused['err'])}`);
  await sleep(500);
  assert.equal(b.logged('full resync'), false, 'B did not resync from the old master');
  assert.equal((await storeDigest(b.port)).hash, bDigest.hash, 'B kept what it had');

  // The old master's data dir, started as a replica of A: its WAL went past the fork, so it
  // takes a full copy, and ends equal to A.
  await back.stop();
  const rejoined = await startReplica({ master: `127.0.0.1:${a.port}`, dataDir: old.dataDir });
  await rejoined.waitLog('full resync done', 20_000);
  await writeSome(a.port, 'after-rejoin', 20);
  await waitEqual(a.port, [rejoined.port], CATCH_UP_MS, 'the old master, rejoined as a replica, to equal A');
  assert.equal(await client(rejoined.port).get('fork:only-on-old'), null, 'the fork is dropped');
  await a.stop();
  a = rejoined; // stopped by `after`
});

test('the old master rejoins as a replica without a full copy when it wrote nothing after the fork', { timeout: 90_000 }, async () => {
  const old = await startMaster();
  const a = await startReplica({ master: `127.0.0.1:${old.port}` });
  await writeSome(old.port, 'before');
  await waitEqual(old.port, [a.port], CATCH_UP_MS);
  await old.kill();
  assert.equal(await client(a.port).call('REPLICAOF', 'NO', 'ONE'), 'OK');
  await writeSome(a.port, 'on-a', 30);
  const rejoined = await startReplica({ master: `127.0.0.1:${a.port}`, dataDir: old.dataDir });
  await rejoined.waitLog('replica following its master');
  assert.equal(countLogs(rejoined, 'full resync'), 0, `no full copy: ${rejoined.stderr().slice(-2000)}`);
  await waitEqual(a.port, [rejoined.port], CATCH_UP_MS, 'the old master to equal A');
});

test('node cmd/replica.js --promote on a stopped replica: a master on a new history that the other replica continues from', { timeout: 90_000 }, async () => {
  const m = await startMaster();
  const a = await startReplica({ master: `127.0.0.1:${m.port}` });
  let b = await startReplica({ master: `127.0.0.1:${m.port}` });
  await writeSome(m.port, 'before');
  await waitEqual(m.port, [a.port, b.port], CATCH_UP_MS);
  await m.kill();
  await a.stop();
  const promoted = await startReplica({ promote: true, dataDir: a.dataDir, port: a.port });
  assert.ok(promoted.logged('data dir promoted'), 'the program says it promoted the data dir');
  await writeSome(promoted.port, 'on-promoted', 30);
  await b.stop();
  b = await startReplica({ master: `127.0.0.1:${promoted.port}`, dataDir: b.dataDir, port: b.port });
  await b.waitLog('replica following its master');
  assert.equal(countLogs(b, 'full resync'), 0, 'B continues without a full copy');
  await waitEqual(promoted.port, [b.port], CATCH_UP_MS, 'B to equal the promoted store');
});

test('after a promotion, a replica behind the promoted one continues from it and one ahead of it takes a full copy (its extra records dropped)', { timeout: 90_000 }, async () => {
  const m = await startMaster();
  const a = await startReplica({ master: `127.0.0.1:${m.port}` });
  const behind = await startReplica({ master: `127.0.0.1:${m.port}` });
  const ahead = await startReplica({ master: `127.0.0.1:${m.port}` });
  await writeSome(m.port, 'all', 50);
  await waitEqual(m.port, [a.port, behind.port, ahead.port], CATCH_UP_MS);
  await behind.stop();
  await writeSome(m.port, 'a-and-ahead', 50);
  await waitEqual(m.port, [a.port, ahead.port], CATCH_UP_MS);
  await a.stop();
  await writeSome(m.port, 'only-ahead', 30);
  await waitEqual(m.port, [ahead.port], CATCH_UP_MS);
  await m.kill();
  await ahead.stop();

  const promoted = await startReplica({ promote: true, dataDir: a.dataDir, port: a.port });
  await writeSome(promoted.port, 'on-a', 30);
  const b = await startReplica({ master: `127.0.0.1:${promoted.port}`, dataDir: behind.dataDir, port: behind.port });
  const c = await startReplica({ master: `127.0.0.1:${promoted.port}`, dataDir: ahead.dataDir, port: ahead.port });
  await waitEqual(promoted.port, [b.port, c.port], CATCH_UP_MS, 'both replicas to equal the promoted store');
  assert.equal(countLogs(b, 'full resync'), 0, 'the replica behind continues through the previous history');
  assert.ok(countLogs(c, 'full resync done') > 0, `the replica ahead takes a full copy: ${c.stderr().slice(-1500)}`);
  assert.equal(await client(c.port).get('only-ahead:1'), null, 'what only the replica ahead had is dropped');
  assert.ok((await client(b.port).get('a-and-ahead:1')) !== null, 'the replica behind got the records it missed from the old history');
});
