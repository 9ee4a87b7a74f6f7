// Black-box tests of the TCP front end with ioredis (a devDependency), against a master started
// as a child process. Every command of issue 3, in RESP2 and in RESP3 (ioredis 6 speaks 3 by
// default). Keys carry a per-suite prefix so the suites can share one master; tests that need
// a count of the whole database compare against KEYS '*' taken at the same moment.
// Invariants: every server is stopped by its own PID in `after`; every client is closed.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { sleep, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';

/** Every test is bounded: a reply that never comes fails the test instead of hanging the run. */
const T = { timeout: 20_000 };
let master: MasterProcess;
const clients: Redis[] = [];

function connect(protocol: 2 | 3, extra: Record<string, unknown> = {}, port = master.port): Redis {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    protocol,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: true,
    ...extra,
  });
  r.on('error', () => undefined);
  clients.push(r);
  return r;
}

before(async () => {
  master = await startMaster();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await stopAll();
});

const errorOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error reply');
};

/** An INFO text as section → field → value. */
function parseInfo(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    if (line.startsWith('# ')) {
      current = new Map();
      sections.set(line.slice(2).toLowerCase(), current);
    } else if (line.includes(':')) {
      const at = line.indexOf(':');
      current.set(line.slice(0, at), line.slice(at + 1));
    }
  }
  return sections;
}

for (const protocol of [2, 3] as const) {
  describe(`ioredis, RESP${protocol}`, () => {
    const p = `io${protocol}:`;
    let r: Redis;
    before(() => {
      r = connect(protocol);
    });

    it('PING, ECHO', T, async () => {
      assert.equal(await r.ping(), 'PONG');
      assert.equal(await r.ping('hi'), 'hi');
      assert.equal(await r.echo('hello world'), 'hello world');
    });

    it('regression: an empty value (SET k "") is stored and read back, alone and in a pipeline (was: an error, then a failed checksum)', T, async () => {
      assert.equal(await r.set(`${p}empty`, ''), 'OK');
      assert.equal(await r.get(`${p}empty`), '');
      assert.equal(await r.exists(`${p}empty`), 1);
      const replies = await r.pipeline().set(`${p}e1`, '').set(`${p}e2`, 'x').set(`${p}e3`, '').mget(`${p}e1`, `${p}e2`, `${p}e3`).exec();
      assert.deepEqual(replies?.map(([err, v]) => [err, v]), [[null, 'OK'], [null, 'OK'], [null, 'OK'], [null, ['', 'x', '']]]);
    });

    it('a pipeline of 2,000 plain SETs rides a few WAL records, answers each in order (a bad one alone), and its last write of a key wins', T, async () => {
      const before = Number(await r.call('brise.lsn'));
      const pipe = r.pipeline();
      for (let i = 0; i < 2000; i++) {
        if (i === 777) pipe.set('', 'empty key'); // refused alone; the group goes on
        else pipe.set(i % 2 === 0 ? `${p}bulk:same` : `${p}bulk:${i}`, `v${i}`);
      }
      pipe.get(`${p}bulk:same`).get(`${p}bulk:1999`);
      const replies = (await pipe.exec())!;
      assert.equal(replies.length, 2002);
      replies.slice(0, 2000).forEach(([err, v], i) => {
        if (i === 777) assert.match(String(err), /key/i, 'the empty key answers its own error');
        else assert.deepEqual([err, v], [null, 'OK'], `reply ${i}`);
      });
      assert.deepEqual(replies.slice(2000).map(([, v]) => v), ['v1998', 'v1999'], 'read its own writes, the last SET of the key won');
      // Groups of up to 1,024 SETs: 2,000 of them in groups of 16 would have taken 125 records.
      const records = Number(await r.call('brise.lsn')) - before;
      assert.ok(records >= 2 && records <= 40, `${records} records for 2,000 pipelined SETs`);
    });

    it('plain SETs of 40 connections at once share records, and each reads its own write and sees the others', T, async () => {
      const conns = Array.from({ length: 40 }, () => connect(protocol));
      await Promise.all(conns.map((c) => c.ping()));
      const before = Number(await r.call('brise.lsn'));
      const replies = await Promise.all(conns.map((c, i) => c.set(`${p}many:${i}`, `value ${i}`)));
      assert.deepEqual(replies, conns.map(() => 'OK'));
      const records = Number(await r.call('brise.lsn')) - before;
      assert.ok(records >= 1 && records < 40, `${records} records for 40 SETs sent at once`);
      assert.deepEqual(await Promise.all(conns.map((c, i) => c.get(`${p}many:${i}`))), conns.map((_, i) => `value ${i}`));
      assert.deepEqual(await r.mget(conns.map((_, i) => `${p}many:${i}`)), conns.map((_, i) => `value ${i}`));
      // One key from every connection: the last record wins, and every reader agrees on it.
      await Promise.all(conns.map((c, i) => c.set(`${p}many:same`, `from ${i}`)));
      const seen = new Set(await Promise.all(conns.map((c) => c.get(`${p}many:same`))));
      assert.equal(seen.size, 1, `readers disagree: ${[...seen].join(', ')}`);
      assert.match([...seen][0]!, /^from \d+$/);
      for (const c of conns) c.disconnect();
    });

    it('SET and GET, with EX, PX, NX, XX, KEEPTTL, GET', T, async () => {
      assert.equal(await r.set(`${p}a`, '1'), 'OK');
      assert.equal(await r.get(`${p}a`), '1');
      assert.equal(await r.get(`${p}missing`), null);
      assert.equal(await r.set(`${p}ex`, 'v', 'EX', 100), 'OK');
      const ttl = await r.ttl(`${p}ex`);
      assert.ok(ttl > 95 && ttl <= 100, `TTL ${ttl}`);
      assert.equal(await r.set(`${p}px`, 'v', 'PX', 50_000), 'OK');
      const pttl = await r.pttl(`${p}px`);
      assert.ok(pttl > 45_000 && pttl <= 50_000, `PTTL ${pttl}`);
      assert.equal(await r.set(`${p}a`, '2', 'NX'), null, 'NX on an existing key');
      assert.equal(await r.get(`${p}a`), '1');
      assert.equal(await r.set(`${p}nx`, 'n', 'NX'), 'OK');
      assert.equal(await r.set(`${p}xx`, 'x', 'XX'), null, 'XX on a missing key');
      assert.equal(await r.exists(`${p}xx`), 0);
      assert.equal(await r.set(`${p}a`, '3', 'XX'), 'OK');
      assert.equal(await r.get(`${p}a`), '3');
      assert.equal(await r.set(`${p}ex`, 'w', 'KEEPTTL'), 'OK');
      assert.ok((await r.ttl(`${p}ex`)) > 90, 'KEEPTTL keeps the time to live');
      assert.equal(await r.get(`${p}ex`), 'w');
      assert.equal(await r.set(`${p}ex`, 'z'), 'OK');
      assert.equal(await r.ttl(`${p}ex`), -1, 'a plain SET clears the time to live');
      assert.equal(await r.set(`${p}a`, '4', 'GET'), '3', 'GET answers the old value');
      assert.equal(await r.set(`${p}new`, '1', 'GET'), null);
      assert.equal(await r.get(`${p}a`), '4');
      assert.match(await errorOf(r.call('SET', `${p}a`, 'v', 'NX', 'XX')), /^ERR syntax error/);
      assert.match(await errorOf(r.call('SET', `${p}a`, 'v', 'EX', '0')), /^ERR invalid expire time in 'set' command/);
      assert.match(await errorOf(r.call('SET', `${p}a`, 'v', 'EX', 'abc')), /^ERR value is not an integer or out of range/);
      assert.match(await errorOf(r.call('GET')), /^ERR wrong number of arguments for 'get' command/);
    });

    it('DEL and DELETE of many keys, EXISTS', T, async () => {
      await r.mset(`${p}d1`, '1', `${p}d2`, '2', `${p}d3`, '3', `${p}d4`, '4');
      assert.equal(await r.exists(`${p}d1`, `${p}d2`, `${p}nope`, `${p}d1`), 3, 'a key named twice counts twice');
      assert.equal(await r.del(`${p}d1`, `${p}d2`, `${p}nope`), 2);
      assert.equal(await r.call('DELETE', `${p}d3`, `${p}d4`, `${p}d1`), 2);
      assert.equal(await r.exists(`${p}d1`, `${p}d2`, `${p}d3`, `${p}d4`), 0);
    });

    it('TTL, PTTL, EXPIRE, PEXPIRE, PERSIST, and a key that expires is gone', T, async () => {
      await r.set(`${p}t`, 'v');
      assert.equal(await r.ttl(`${p}t`), -1);
      assert.equal(await r.pttl(`${p}t`), -1);
      assert.equal(await r.ttl(`${p}none`), -2);
      assert.equal(await r.pttl(`${p}none`), -2);
      assert.equal(await r.expire(`${p}t`, 100), 1);
      assert.ok((await r.ttl(`${p}t`)) > 95);
      assert.equal(await r.expire(`${p}none`, 100), 0);
      assert.equal(await r.pexpire(`${p}t`, 200_000), 1);
      assert.ok((await r.pttl(`${p}t`)) > 195_000);
      assert.equal(await r.persist(`${p}t`), 1);
      assert.equal(await r.ttl(`${p}t`), -1);
      assert.equal(await r.persist(`${p}t`), 0, 'nothing to remove');
      assert.equal(await r.pexpire(`${p}t`, 80), 1);
      await sleep(250);
      assert.equal(await r.get(`${p}t`), null);
      assert.equal(await r.exists(`${p}t`), 0);
      assert.equal(await r.ttl(`${p}t`), -2);
      await r.set(`${p}neg`, 'v');
      assert.equal(await r.expire(`${p}neg`, -1), 1);
      assert.equal(await r.exists(`${p}neg`), 0, 'a negative time to live deletes');
    });

    it('COUNT value', T, async () => {
      const v = `count-me-${protocol}-${Date.now()}`;
      assert.equal(await r.call('COUNT', v), 0);
      await r.mset(`${p}c1`, v, `${p}c2`, v, `${p}c3`, 'other');
      assert.equal(await r.call('COUNT', v), 2);
      await r.del(`${p}c1`);
      assert.equal(await r.call('COUNT', v), 1);
    });

    it('KEYS pattern', T, async () => {
      await r.mset(`${p}k:one`, '1', `${p}k:two`, '2', `${p}k:three`, '3', `${p}kx`, '4');
      assert.deepEqual((await r.keys(`${p}k:*`)).sort(), [`${p}k:one`, `${p}k:three`, `${p}k:two`]);
      assert.deepEqual((await r.keys(`${p}k:t?o`)).sort(), [`${p}k:two`]);
      assert.deepEqual((await r.keys(`${p}k:[o]*`)).sort(), [`${p}k:one`]);
      assert.deepEqual(await r.keys(`${p}nothing*`), []);
    });

    it('SCAN cursor MATCH COUNT: a full iteration collects every key', T, async () => {
      const want = new Set<string>();
      const args: string[] = [];
      for (let i = 0; i < 300; i++) {
        want.add(`${p}scan:${i}`);
        args.push(`${p}scan:${i}`, String(i));
      }
      await r.mset(...args);
      const got = new Set<string>();
      let cursor = '0';
      let rounds = 0;
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${p}scan:*`, 'COUNT', 25);
        for (const k of keys) got.add(k);
        cursor = next;
        assert.ok(++rounds < 10_000, 'SCAN ends');
      } while (cursor !== '0');
      assert.deepEqual([...got].sort(), [...want].sort());
      // Without MATCH: every key of the database, which includes ours.
      const all = new Set<string>();
      cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor);
        for (const k of keys) all.add(k);
        cursor = next;
      } while (cursor !== '0');
      for (const k of want) assert.ok(all.has(k), k);
      // ioredis' scanStream drives the cursor itself.
      const streamed = new Set<string>();
      await within(
        new Promise<void>((resolve, reject) => {
          const s = r.scanStream({ match: `${p}scan:1*`, count: 7 });
          s.on('data', (keys: string[]) => keys.forEach((k) => streamed.add(k)));
          s.on('end', resolve);
          s.on('error', reject);
        }),
        10_000,
        'scanStream',
      );
      assert.deepEqual([...streamed].sort(), [...want].filter((k) => k.startsWith(`${p}scan:1`)).sort());
    });

    it('MGET, MSET, DBSIZE', T, async () => {
      assert.equal(await r.mset(`${p}m1`, 'a', `${p}m2`, 'b'), 'OK');
      assert.deepEqual(await r.mget(`${p}m1`, `${p}nope`, `${p}m2`), ['a', null, 'b']);
      const size = await r.dbsize();
      assert.equal(size, (await r.keys('*')).length);
      await r.set(`${p}dbsize-extra-${Date.now()}`, 'x');
      assert.equal(await r.dbsize(), size + 1);
      assert.match(await errorOf(r.call('MSET', `${p}m1`)), /wrong number of arguments for 'mset'/);
    });

    it('BEGIN/COMMIT/ROLLBACK: nested, read-your-writes, isolation from another connection', T, async () => {
      const other = connect(protocol);
      await r.set(`${p}tx:base`, 'before');
      assert.equal(await r.call('BEGIN'), 'OK');
      await r.set(`${p}tx:a`, '1');
      await r.set(`${p}tx:base`, 'inside');
      assert.equal(await r.get(`${p}tx:a`), '1', 'read-your-writes');
      assert.equal(await other.get(`${p}tx:a`), null, 'another connection does not see it');
      assert.equal(await other.get(`${p}tx:base`), 'before');
      assert.equal(await r.call('BEGIN'), 'OK');
      await r.set(`${p}tx:b`, '2');
      await r.del(`${p}tx:a`);
      assert.equal(await r.get(`${p}tx:a`), null);
      assert.equal(await r.call('ROLLBACK'), 'OK', 'rolls back the inner level only');
      assert.equal(await r.get(`${p}tx:a`), '1');
      assert.equal(await r.get(`${p}tx:b`), null);
      assert.equal(await r.call('BEGIN'), 'OK');
      await r.set(`${p}tx:c`, '3');
      assert.equal(await r.call('COMMIT'), 'OK', 'inner commit merges into the outer level');
      assert.equal(await other.get(`${p}tx:c`), null, 'still invisible until the outermost COMMIT');
      assert.equal(await r.call('COMMIT'), 'OK');
      assert.deepEqual(await other.mget(`${p}tx:a`, `${p}tx:b`, `${p}tx:c`, `${p}tx:base`), ['1', null, '3', 'inside']);
      // A whole rolled-back transaction leaves nothing.
      await r.call('BEGIN');
      await r.set(`${p}tx:gone`, 'x');
      await r.call('ROLLBACK');
      assert.equal(await r.get(`${p}tx:gone`), null);
      assert.equal(await other.get(`${p}tx:gone`), null);
      assert.match(await errorOf(r.call('COMMIT')), /^ERR/, 'COMMIT without BEGIN is an error');
      assert.match(await errorOf(r.call('ROLLBACK')), /^ERR/, 'ROLLBACK without BEGIN is an error');
    });

    it('MULTI/EXEC/DISCARD: QUEUED, EXEC replies, EXECABORT after a queued error', T, async () => {
      const results = await r.multi().set(`${p}mx:a`, '1').get(`${p}mx:a`).hset(`${p}none`, 'f', 'v').exec().catch((e: Error) => e);
      // hset is not a BriseDB command: the whole transaction aborts.
      assert.ok(results instanceof Error, 'EXEC after a queued error fails');
      assert.match(results.message, /EXECABORT/);
      assert.equal(await r.get(`${p}mx:a`), null, 'nothing of an aborted transaction ran');
      const ok = await r.multi().set(`${p}mx:a`, '1').get(`${p}mx:a`).del(`${p}mx:a`, `${p}mx:none`).ping().exec();
      assert.deepEqual(ok, [[null, 'OK'], [null, '1'], [null, 1], [null, 'PONG']]);
      // By hand: QUEUED, then EXEC's array; DISCARD drops the queue.
      const raw = connect(protocol);
      assert.equal(await raw.call('MULTI'), 'OK');
      assert.equal(await raw.call('SET', `${p}mx:b`, '2'), 'QUEUED');
      assert.equal(await raw.call('GET', `${p}mx:b`), 'QUEUED');
      assert.deepEqual(await raw.call('EXEC'), ['OK', '2']);
      assert.equal(await raw.call('MULTI'), 'OK');
      assert.equal(await raw.call('SET', `${p}mx:c`, '3'), 'QUEUED');
      assert.equal(await raw.call('DISCARD'), 'OK');
      assert.equal(await raw.get(`${p}mx:c`), null);
      assert.match(await errorOf(raw.call('EXEC')), /^ERR EXEC without MULTI/);
      assert.match(await errorOf(raw.call('DISCARD')), /^ERR DISCARD without MULTI/);
      assert.equal(await raw.call('MULTI'), 'OK');
      assert.match(await errorOf(raw.call('MULTI')), /^ERR MULTI calls can not be nested/);
      assert.match(await errorOf(raw.call('NOSUCHCMD')), /^ERR unknown command/);
      assert.match(await errorOf(raw.call('EXEC')), /^EXECABORT Transaction discarded because of previous errors/);
      // A runtime error inside EXEC is that command's reply; the others still run.
      const mixed = await r.multi().set(`${p}mx:d`, '4').call('SET', `${p}mx:e`, 'v', 'EX', 'abc').get(`${p}mx:d`).exec();
      assert.ok(mixed !== null);
      assert.equal(mixed[0]![1], 'OK');
      assert.ok(mixed[1]![0] instanceof Error);
      assert.equal(mixed[2]![1], '4');
    });

    it('SUBSCRIBE, PSUBSCRIBE, PUBLISH, UNSUBSCRIBE, PUNSUBSCRIBE', T, async () => {
      const sub = connect(protocol);
      const pub = connect(protocol);
      const got: string[] = [];
      sub.on('message', (channel: string, message: string) => got.push(`m ${channel} ${message}`));
      sub.on('pmessage', (pattern: string, channel: string, message: string) => got.push(`p ${pattern} ${channel} ${message}`));
      assert.equal(await sub.subscribe(`${p}ch1`, `${p}ch2`), 2);
      assert.equal(await sub.psubscribe(`${p}ch*`), 3);
      assert.equal(await pub.publish(`${p}ch1`, 'hello'), 2, 'one channel and one pattern subscription');
      assert.equal(await pub.publish(`${p}ch3`, 'pattern only'), 1);
      assert.equal(await pub.publish(`${p}other`, 'nobody'), 0);
      await waitUntil(() => got.length === 3, 'three messages');
      assert.deepEqual(got.sort(), [`m ${p}ch1 hello`, `p ${p}ch* ${p}ch1 hello`, `p ${p}ch* ${p}ch3 pattern only`].sort());
      assert.equal(await sub.unsubscribe(`${p}ch1`), 2, 'the count of subscriptions left');
      assert.equal(await pub.publish(`${p}ch1`, 'x'), 1, 'only the pattern now');
      // ioredis 6 never resolves a PUNSUBSCRIBE without arguments (against redis-server too),
      // so name the pattern.
      assert.equal(await sub.punsubscribe(`${p}ch*`), 1);
      assert.equal(await pub.publish(`${p}ch1`, 'y'), 0);
      assert.equal(await pub.publish(`${p}ch2`, 'z'), 1);
      assert.equal(await sub.unsubscribe(), 0);
      assert.equal(await pub.publish(`${p}ch2`, 'z'), 0);
      if (protocol === 2) {
        await sub.subscribe(`${p}ch1`);
        // ioredis refuses GET itself in subscriber mode; ask through call() on a raw command.
        assert.match(
          await errorOf(sub.call('GET', `${p}a`)),
          /only \(P\|S\)SUBSCRIBE \/ \(P\|S\)UNSUBSCRIBE \/ PING \/ QUIT(?: \/ RESET)? are allowed in this context|Connection in subscriber mode/,
        );
        await sub.unsubscribe();
      }
    });

    it('COMPACT and VOLINFO', T, async () => {
      await r.set(`${p}cmp`, 'kept');
      await r.set(`${p}cmp-del`, 'gone');
      await r.del(`${p}cmp-del`);
      assert.equal(await r.call('COMPACT'), 'OK');
      assert.equal(await r.get(`${p}cmp`), 'kept');
      assert.equal(await r.get(`${p}cmp-del`), null);
      const vols = (await r.call('VOLINFO')) as unknown[][];
      assert.ok(Array.isArray(vols) && vols.length >= 1, 'at least one volume');
      for (const v of vols) {
        assert.equal(v.length, 6, 'id, drive, size, group, garbage, live');
        assert.equal(typeof v[2], 'number');
        assert.ok(typeof v[4] === 'number' && v[4] >= 0 && v[4] <= (v[2] as number), 'garbage is a part of the volume');
        assert.ok(typeof v[5] === 'number' && (v[4] as number) + v[5] <= (v[2] as number), 'garbage and live bytes are parts of the volume');
        assert.equal(v[3], Math.floor((v[0] as number) / 2 ** 20), 'the group is named by the id');
      }
    });

    it('HELLO 2 and 3, SELECT 0 and 1', T, async () => {
      const c = connect(protocol);
      const h3 = (await c.call('HELLO', '3')) as unknown[];
      const m3 = pairs(h3);
      assert.equal(m3.get('server'), 'redis');
      assert.equal(m3.get('proto'), 3);
      assert.equal(typeof m3.get('version'), 'string');
      const h2 = pairs((await c.call('HELLO', '2')) as unknown[]);
      assert.equal(h2.get('proto'), 2);
      assert.match(await errorOf(c.call('HELLO', '4')), /^NOPROTO/);
      assert.equal(await c.select(0), 'OK');
      assert.match(await errorOf(c.select(1)), /^ERR DB index is out of range/);
      assert.equal(await c.ping(), 'PONG');
    });

    it('INFO: every section, keyspace count equals DBSIZE, actors listed', T, async () => {
      const all = parseInfo((await r.info()) as string);
      for (const s of ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'keyspace', 'actors']) {
        assert.ok(all.has(s), `section ${s}`);
      }
      assert.equal(all.get('server')!.get('tcp_port'), String(master.port));
      assert.ok(Number(all.get('clients')!.get('connected_clients')) >= 1);
      const size = await r.dbsize();
      const keyspace = parseInfo((await r.info('keyspace')) as string);
      assert.deepEqual([...keyspace.keys()], ['keyspace']);
      assert.match(keyspace.get('keyspace')!.get('db0') ?? '', new RegExp(`^keys=${size}(,|$)`));
      for (const s of ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'actors']) {
        const one = parseInfo((await r.info(s)) as string);
        assert.deepEqual([...one.keys()], [s], `INFO ${s} answers that section only`);
        assert.ok(one.get(s)!.size > 0, `INFO ${s} has fields`);
      }
      const actors = parseInfo((await r.info('actors')) as string).get('actors')!;
      const names = [...actors.keys()].filter((k) => k.startsWith('actor_'));
      for (const a of ['actor_wal', 'actor_index', 'actor_broker']) assert.ok(names.includes(a), a);
      for (const n of names) assert.match(actors.get(n)!, /thread=\d+.*restarts=\d+/);
    });

    it('CONFIG GET, CLIENT SETNAME/GETNAME/SETINFO/ID, COMMAND COUNT', T, async () => {
      const c = connect(protocol);
      const save = (await c.config('GET', 'save')) as unknown;
      assert.deepEqual(flat(save).slice(0, 1), ['save']);
      const appendonly = flat(await c.config('GET', 'appendonly'));
      assert.equal(appendonly[0], 'appendonly');
      assert.equal(await c.client('SETNAME', 'my-conn'), 'OK');
      assert.equal(await c.client('GETNAME'), 'my-conn');
      assert.equal(await c.client('SETINFO', 'LIB-NAME', 'brisetest'), 'OK');
      const id = await c.client('ID');
      assert.equal(typeof id, 'number');
      const id2 = await connect(protocol).client('ID');
      assert.notEqual(id, id2, 'each connection has its own id');
      const count = (await c.command('COUNT')) as unknown as number;
      assert.ok(count >= 40, `COMMAND COUNT ${count}`);
      const gets = ((await c.call('COMMAND', 'LIST', 'FILTERBY', 'PATTERN', 'GET*')) as string[]).sort();
      assert.deepEqual(gets, ['get', 'getdel', 'getex', 'getrange', 'getset']);
      const strings = (await c.call('COMMAND', 'LIST', 'FILTERBY', 'ACLCAT', 'string')) as string[];
      assert.ok(strings.includes('incrbyfloat') && !strings.includes('del'), strings.join(' '));
      assert.ok(((await c.call('COMMAND', 'HELP')) as string[]).some((l) => l.startsWith('LIST [FILTERBY')));
    });

    it('binary-safe keys and values: all 256 byte values', T, async () => {
      const bytes = Buffer.alloc(256);
      for (let i = 0; i < 256; i++) bytes[i] = i;
      const key = Buffer.concat([Buffer.from(p), bytes]);
      assert.equal(await r.set(key, bytes), 'OK');
      assert.ok((await r.getBuffer(key))!.equals(bytes));
      for (let i = 0; i < 256; i += 17) {
        const k = Buffer.from([0, i, 13, 10, 255]);
        await r.set(k, Buffer.from([i, 0, 10, 13]));
        assert.ok((await r.getBuffer(k))!.equals(Buffer.from([i, 0, 10, 13])));
      }
      const mg = (await r.mgetBuffer(key)) as Array<Buffer | null>;
      assert.ok(mg[0]!.equals(bytes));
    });

    it('large values: 1 MB and 16 MB round trip byte for byte', T, async () => {
      for (const size of [1 << 20, 16 << 20]) {
        const value = Buffer.alloc(size);
        for (let i = 0; i < size; i += 4) value.writeUInt32LE((i * 2654435761) >>> 0, i);
        assert.equal(await r.set(`${p}big:${size}`, value), 'OK');
        const back = await r.getBuffer(`${p}big:${size}`);
        assert.equal(back!.length, size);
        assert.ok(back!.equals(value), `${size} bytes identical`);
      }
    });

    it('STOP and QUIT close the connection after OK', T, async () => {
      const a = connect(protocol);
      assert.equal(await a.ping(), 'PONG');
      const closedA = new Promise<void>((resolve) => a.once('end', resolve));
      assert.equal(await a.call('STOP'), 'OK');
      await within(closedA, 5000, 'STOP to close the connection');
      const b = connect(protocol);
      assert.equal(await b.ping(), 'PONG');
      assert.equal(await b.quit(), 'OK');
      assert.equal(await r.ping(), 'PONG', 'others keep working');
    });
  });
}

describe('ioredis with --requirepass', () => {
  let secure: MasterProcess;
  before(async () => {
    secure = await startMaster({ args: ['--requirepass', 's3cret'] });
  });
  after(async () => {
    await secure.stop();
  });

  it('AUTH: NOAUTH before, WRONGPASS, OK after (RESP2, no HELLO at connect)', T, async () => {
    const c = connect(2, { enableReadyCheck: false, disableClientInfo: true }, secure.port);
    assert.match(await errorOf(c.get('x')), /^NOAUTH Authentication required/);
    assert.match(await errorOf(c.set('x', 'y')), /^NOAUTH Authentication required/);
    assert.match(await errorOf(c.auth('wrong')), /^WRONGPASS invalid username-password pair or user is disabled/);
    assert.match(await errorOf(c.auth('default', 'wrong')), /^WRONGPASS/);
    assert.equal(await c.auth('s3cret'), 'OK');
    assert.equal(await c.set('x', 'y'), 'OK');
    assert.equal(await c.get('x'), 'y');
  });

  it('RESP3 without a password: HELLO 3 at connect is refused with NOAUTH, as Redis does', T, async () => {
    const c = connect(3, { enableReadyCheck: false, disableClientInfo: true }, secure.port);
    assert.match(await errorOf(c.get('x')), /^NOAUTH HELLO must be called with the client already authenticated/);
  });

  for (const protocol of [2, 3] as const) {
    it(`a client given the password works; a wrong one gets WRONGPASS (RESP${protocol})`, T, async () => {
      const d = connect(protocol, { password: 's3cret' }, secure.port);
      assert.equal(await d.set(`pw${protocol}`, 'ok'), 'OK');
      assert.equal(await d.get(`pw${protocol}`), 'ok');
      const h = pairs((await d.call('HELLO', String(protocol), 'AUTH', 'default', 's3cret')) as unknown[]);
      assert.equal(h.get('proto'), protocol);
      const w = connect(protocol, { password: 'wrong' }, secure.port);
      assert.match(await errorOf(w.get('x')), /WRONGPASS invalid username-password pair or user is disabled/);
    });
  }
});

async function waitUntil(ready: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A map reply as ioredis hands it (flat array in "legacy" mode, or an object). */
function pairs(reply: unknown): Map<string, unknown> {
  return new Map(Object.entries(flatToObject(reply)));
}

function flatToObject(reply: unknown): Record<string, unknown> {
  if (Array.isArray(reply)) {
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1];
    return out;
  }
  return reply as Record<string, unknown>;
}

function flat(reply: unknown): unknown[] {
  if (Array.isArray(reply)) return reply;
  return Object.entries(reply as Record<string, unknown>).flat();
}
