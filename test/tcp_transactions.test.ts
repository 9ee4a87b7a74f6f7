// Transactions over TCP across a crash: the master as a child process, a client commits (or
// does not), SIGKILL right after, restart on the same data dir, and the transaction is there
// entirely or not at all. BEGIN/COMMIT/ROLLBACK (nested) and MULTI/EXEC.
// A SIGKILL keeps the page cache, so this proves atomicity of the commit and the restart
// path, not fsync (TESTING.md §3).
// Invariants: every master is stopped by its own PID (kill() or stopAll in `after`); every
// test has a timeout.
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { sleep, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';

const T = { timeout: 30_000 };
const N = 50;
const clients: Redis[] = [];
after(async () => {
  for (const c of clients) c.disconnect();
  await stopAll();
});

function connect(m: MasterProcess): Redis {
  const c = new Redis({ host: '127.0.0.1', port: m.port, protocol: 2, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

const keys = (prefix: string): string[] => Array.from({ length: N }, (_, i) => `${prefix}:${i}`);
const value = (prefix: string, i: number): string => `${prefix}-value-${i}-${'v'.repeat(i * 37)}`;

/** SIGKILL, restart on the same dir; answers the new master and a client on it. */
async function crashAndRestart(m: MasterProcess): Promise<{ m: MasterProcess; c: Redis }> {
  assert.equal(await m.kill(), 'SIGKILL');
  const again = await startMaster({ dataDir: m.dataDir });
  return { m: again, c: connect(again) };
}

describe('transactions across SIGKILL', () => {
  it(`BEGIN..COMMIT of ${N} keys, SIGKILL right after the reply: all ${N} there after restart`, T, async () => {
    const m = await startMaster();
    const c = connect(m);
    const ks = keys('begin');
    assert.equal(await c.call('BEGIN'), 'OK');
    const pipe = c.pipeline();
    ks.forEach((k, i) => pipe.set(k, value('begin', i)));
    for (const [e, r] of (await pipe.exec())!) assert.equal(e ?? r, 'OK');
    assert.equal(await c.call('COMMIT'), 'OK');
    const { m: m2, c: c2 } = await crashAndRestart(m);
    assert.deepEqual(await c2.mget(...ks), ks.map((_, i) => value('begin', i)));
    await m2.stop();
  });

  it(`MULTI/EXEC of ${N} keys, SIGKILL right after the reply: all ${N} there after restart`, T, async () => {
    const m = await startMaster();
    const c = connect(m);
    const ks = keys('multi');
    const tx = c.multi();
    ks.forEach((k, i) => tx.set(k, value('multi', i)));
    const replies = (await tx.exec())!;
    assert.equal(replies.length, N);
    for (const [e, r] of replies) assert.equal(e ?? r, 'OK');
    const { m: m2, c: c2 } = await crashAndRestart(m);
    assert.deepEqual(await c2.mget(...ks), ks.map((_, i) => value('multi', i)));
    await m2.stop();
  });

  it(`an uncommitted BEGIN with ${N} writes, then SIGKILL: none of them after restart; older values stay`, T, async () => {
    const m = await startMaster();
    const c = connect(m);
    const ks = keys('open');
    // Half the keys existed before the transaction: they must come back with their old values.
    const before = ks.slice(0, N / 2);
    await c.mset(...before.flatMap((k) => [k, `old-${k}`]));
    assert.equal(await c.call('BEGIN'), 'OK');
    for (let i = 0; i < N; i++) {
      if (i % 5 === 4) assert.equal(await c.del(ks[i - 1]!), 1);
      else assert.equal(await c.set(ks[i]!, value('open', i)), 'OK');
    }
    assert.equal(await c.get(ks[0]!), value('open', 0), 'the session reads its own writes');
    const { m: m2, c: c2 } = await crashAndRestart(m);
    const got = await c2.mget(...ks);
    assert.deepEqual(got, ks.map((k, i) => (i < N / 2 ? `old-${k}` : null)));
    assert.equal(await c2.exists(...ks.slice(N / 2)), 0);
    await m2.stop();
  });

  it('a MULTI queued but never EXECuted, then SIGKILL: nothing of it', T, async () => {
    const m = await startMaster();
    const c = connect(m);
    const ks = keys('queued');
    assert.equal(await c.call('MULTI'), 'OK');
    for (const k of ks) assert.equal(await c.call('SET', k, 'x'), 'QUEUED');
    const { m: m2, c: c2 } = await crashAndRestart(m);
    assert.equal(await c2.exists(...ks), 0);
    await m2.stop();
  });

  it('nested: an inner ROLLBACK is gone, an inner COMMIT stays, after the outer COMMIT and SIGKILL', T, async () => {
    const m = await startMaster();
    const c = connect(m);
    const other = connect(m);
    assert.equal(await c.call('BEGIN'), 'OK');
    await c.set('n:a', '1');
    assert.equal(await c.call('BEGIN'), 'OK');
    await c.set('n:b', '2');
    await c.set('n:a', 'overwritten');
    assert.equal(await c.call('ROLLBACK'), 'OK');
    assert.equal(await c.call('BEGIN'), 'OK');
    await c.set('n:c', '3');
    assert.equal(await c.call('BEGIN'), 'OK');
    await c.del('n:a');
    assert.equal(await c.call('COMMIT'), 'OK');
    assert.equal(await c.call('COMMIT'), 'OK');
    assert.deepEqual(await other.mget('n:a', 'n:b', 'n:c'), [null, null, null], 'isolation: nothing before the outer COMMIT');
    await c.set('n:a', 'again');
    assert.equal(await c.call('COMMIT'), 'OK');
    assert.deepEqual(await other.mget('n:a', 'n:b', 'n:c'), ['again', null, '3']);
    const { m: m2, c: c2 } = await crashAndRestart(m);
    assert.deepEqual(await c2.mget('n:a', 'n:b', 'n:c'), ['again', null, '3']);
    await m2.stop();
  });

  it('SIGKILL racing a COMMIT (0-8 ms after sending it): all of the transaction or none, 6 rounds', T, async () => {
    let m = await startMaster();
    for (let round = 0; round < 6; round++) {
      const c = connect(m);
      const ks = keys(`race${round}`);
      assert.equal(await c.call('BEGIN'), 'OK');
      const pipe = c.pipeline();
      ks.forEach((k, i) => pipe.set(k, value(`race${round}`, i)));
      await pipe.exec();
      const commit = c.call('COMMIT').then(
        () => true,
        () => false,
      );
      await sleep(round + (round % 2) * 3);
      const { m: m2, c: c2 } = await crashAndRestart(m);
      m = m2;
      const acked = await commit;
      const present = await c2.exists(...ks);
      assert.ok(present === 0 || present === N, `round ${round}: ${present} of ${N} keys after a crash during COMMIT`);
      if (acked) assert.equal(present, N, `round ${round}: COMMIT was acknowledged`);
      if (present === N) assert.deepEqual(await c2.mget(...ks), ks.map((_, i) => value(`race${round}`, i)));
    }
    await m.stop();
  });
});
