// Black-box tests of the string keyspace of issue 9 with ioredis (a devDependency), for what
// test/tcp_ioredis.test.ts (the commands of issue 3) does not cover: the string and expiry
// commands through ioredis' own methods and reply conversions (Buffer variants, numbers vs
// strings), WATCH + multi().exec() answering null on a conflict and a compare-and-set loop of
// concurrent clients, pipelines mixing INCR/APPEND/GETRANGE/INCRBYFLOAT and errors, INCRBYFLOAT
// string results, and 64-bit INCRBY near the int64 limits (ioredis' default numbers are lossy
// there; `stringNumbers` gives the exact text). Every suite runs against a BriseDB master AND,
// where redis-server is installed, a redis-server started here, with the same assertions: what a
// test expects is what stock Redis answers, checked on every run. RESP2 and RESP3.
// Invariants: every server is stopped by its own PID in `after`; every client is disconnected;
// every test has a timeout; suites run one after another.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { Redis, ReplyError } from 'ioredis';
import { hasProgram, sleep, startMaster, stopAll } from './helpers/master_process.js';
import { startRedisServer, stopRedisServers } from './helpers/redis_wire.js';

const T = { timeout: 20_000 };
const HAVE_REDIS = hasProgram('redis-server');
const clients: Redis[] = [];
const ports = new Map<string, number>();

before(async () => {
  const [m, r] = await Promise.all([startMaster(), HAVE_REDIS ? startRedisServer() : Promise.resolve(null)]);
  ports.set('BriseDB', m.port);
  if (r !== null) ports.set('redis-server', r.port);
});
after(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all([stopAll(), stopRedisServers()]);
});

function connect(port: number, protocol: 2 | 3, extra: Record<string, unknown> = {}): Redis {
  const r = new Redis({ host: '127.0.0.1', port, protocol, maxRetriesPerRequest: 0, retryStrategy: () => null, ...extra });
  r.on('error', () => undefined);
  clients.push(r);
  return r;
}

/** The error text a command answered; fails if it succeeded. */
async function errorOf(p: Promise<unknown>): Promise<string> {
  let value: unknown;
  try {
    value = await p;
  } catch (e) {
    assert.ok(e instanceof ReplyError, `a ReplyError, got ${String(e)}`);
    return (e as Error).message;
  }
  throw new Error(`expected an error reply, got ${JSON.stringify(value)}`);
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

for (const target of ['BriseDB', 'redis-server']) {
  for (const protocol of [2, 3] as const) {
    const skip = target === 'redis-server' && !HAVE_REDIS ? 'redis-server is not installed' : false;
    describe(`ioredis RESP${protocol} against ${target}: the string keyspace`, { skip }, () => {
      const p = `ios${protocol}:`;
      const k = (name: string): string => `${p}${name}`;
      let port: number;
      let r: Redis;
      before(() => {
        port = ports.get(target)!;
        r = connect(port, protocol);
      });

      it('SETNX, SETEX, PSETEX, GETSET, GETDEL, GETEX, MSETNX through ioredis\' methods', T, async () => {
        assert.equal(await r.setnx(k('nx'), 'a'), 1);
        assert.equal(await r.setnx(k('nx'), 'b'), 0);
        assert.equal(await r.setex(k('ex'), 100, 'v'), 'OK');
        assert.ok((await r.ttl(k('ex'))) >= 99);
        assert.equal(await r.psetex(k('px'), 5000, 'v'), 'OK');
        assert.ok((await r.pttl(k('px'))) > 4000);
        assert.equal(await errorOf(r.setex(k('ex'), 0, 'v')), "ERR invalid expire time in 'setex' command");
        assert.equal(await r.getset(k('ex'), 'w'), 'v');
        assert.equal(await r.ttl(k('ex')), -1, 'GETSET drops the expiry');
        assert.equal(await r.getdel(k('ex')), 'w');
        assert.equal(await r.getdel(k('ex')), null);
        await r.set(k('gx'), 'val');
        assert.equal(await r.getex(k('gx'), 'EX', 100), 'val');
        assert.ok((await r.ttl(k('gx'))) >= 99);
        const at = nowSeconds() + 500;
        assert.equal(await r.getex(k('gx'), 'EXAT', at), 'val');
        assert.equal(await r.expiretime(k('gx')), at);
        assert.equal(await r.getex(k('gx'), 'PXAT', at * 1000 + 250), 'val');
        assert.equal(await r.pexpiretime(k('gx')), at * 1000 + 250);
        assert.equal(await r.getex(k('gx'), 'PERSIST'), 'val');
        assert.equal(await r.ttl(k('gx')), -1);
        assert.equal(await r.getex(k('gx'), 'PX', -1).catch((e: Error) => e.message), "ERR invalid expire time in 'getex' command");
        assert.equal(await r.getex(k('gx'), 'PXAT', Date.now() - 5), 'val', 'a past time answers the value');
        assert.equal(await r.exists(k('gx')), 0, 'and deletes the key');
        assert.equal(await r.msetnx(k('m1'), '1', k('m2'), '2'), 1);
        assert.equal(await r.msetnx(k('m2'), 'x', k('m3'), '3'), 0);
        assert.deepEqual(await r.mget(k('m1'), k('m2'), k('m3')), ['1', '2', null]);
      });

      it('APPEND, STRLEN, GETRANGE, SETRANGE; the Buffer variants are byte-exact', T, async () => {
        assert.equal(await r.append(k('ap'), 'Hello'), 5);
        assert.equal(await r.append(k('ap'), Buffer.from([0, 255, 10])), 8);
        assert.equal(await r.strlen(k('ap')), 8);
        assert.ok((await r.getrangeBuffer(k('ap'), 5, -1)).equals(Buffer.from([0, 255, 10])));
        assert.equal(await r.getrange(k('ap'), 0, 4), 'Hello');
        assert.equal(await r.getrange(k('ap'), -100, 1), 'He');
        assert.equal(await r.getrange(k('nope'), 0, -1), '');
        assert.equal(await r.setrange(k('sr'), 3, 'ab'), 5);
        assert.ok((await r.getBuffer(k('sr')))!.equals(Buffer.from([0, 0, 0, 0x61, 0x62])), 'zero-padded from nothing');
        assert.equal(await r.setrange(k('sr'), 1, Buffer.from([0xff])), 5);
        assert.ok((await r.getdelBuffer(k('sr')))!.equals(Buffer.from([0, 0xff, 0, 0x61, 0x62])));
        // Past the end of a longer value: zeros in the gap, the old bytes kept.
        const head = Buffer.alloc(70_000, 0x41);
        await r.set(k('big'), head);
        assert.equal(await r.setrange(k('big'), 80_000, 'tail'), 80_004);
        const back = (await r.getBuffer(k('big')))!;
        assert.equal(back.length, 80_004);
        assert.ok(back.subarray(0, 70_000).equals(head));
        assert.ok(back.subarray(70_000, 80_000).equals(Buffer.alloc(10_000)), 'the gap is zeros');
        assert.equal(back.subarray(80_000).toString(), 'tail');
        assert.equal(await r.getrange(k('big'), 79_998, 80_100), '\0\0tail');
        assert.equal(await errorOf(r.setrange(k('big'), -1, 'x')), 'ERR offset is out of range');
      });

      it('a pipeline mixing INCR, INCRBY, APPEND, GETRANGE, INCRBYFLOAT, STRLEN and an error: replies in order', T, async () => {
        const key = k('pl');
        const replies = await r
          .pipeline()
          .set(key, '0')
          .incr(key)
          .incrby(key, 41)
          .append(key, '7')
          .getrange(key, 0, -1)
          .decrby(key, 27)
          .append(key, 'x')
          .incr(key)
          .getrange(key, -2, -1)
          .strlen(key)
          .set(key, '1.5')
          .incrbyfloat(key, '0.25')
          .incr(key)
          .get(key)
          .exec();
        assert.ok(replies !== null);
        const values = replies.map(([err, v]) => (err === null ? v : `error: ${err.message}`));
        assert.deepEqual(values, [
          'OK',
          1,
          42,
          3,
          '427',
          400,
          4,
          'error: ERR value is not an integer or out of range',
          '0x',
          4,
          'OK',
          '1.75',
          'error: ERR value is not an integer or out of range',
          '1.75',
        ]);
      });

      it('a pipeline of 500 INCRs on one key: each reply one more than the last, no reply lost', T, async () => {
        const key = k('many');
        await r.del(key);
        const pl = r.pipeline();
        for (let i = 0; i < 500; i++) pl.incr(key);
        const replies = (await pl.exec())!;
        assert.equal(replies.length, 500);
        replies.forEach(([err, v], i) => {
          assert.equal(err, null);
          assert.equal(v, i + 1);
        });
        assert.equal(await r.get(key), '500');
      });

      it('INCRBYFLOAT answers strings with Redis\' printing', T, async () => {
        const key = k('f');
        assert.equal(await r.incrbyfloat(key, 10.5), '10.5');
        assert.equal(await r.incrbyfloat(key, '0.1'), '10.6');
        assert.equal(await r.incrbyfloat(key, '-10.6'), '0');
        assert.equal(typeof (await r.incrbyfloat(key, 3)), 'string');
        await r.set(key, '0');
        const pl = r.pipeline();
        for (let i = 0; i < 10; i++) pl.incrbyfloat(key, '0.1');
        const sums = (await pl.exec())!.map(([, v]) => v);
        assert.deepEqual(sums, ['0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9', '1']);
        await r.set(key, '1e3');
        assert.equal(await r.incrbyfloat(key, '1e-3'), '1000.001');
        await r.set(key, '-0');
        assert.equal(await r.incrbyfloat(key, '0'), '0');
        await r.set(key, '3.0000000000000000001');
        assert.equal(await r.incrbyfloat(key, '0'), '3');
        assert.equal(await errorOf(r.incrbyfloat(key, 'x')), 'ERR value is not a valid float');
        await r.set(key, '1 ');
        assert.equal(await errorOf(r.incrbyfloat(key, '1')), 'ERR value is not a valid float');
      });

      it('INCRBY/DECRBY near the int64 limits: exact with stringNumbers, Redis\' overflow errors', T, async () => {
        const exact = connect(port, protocol, { stringNumbers: true });
        const key = k('i64');
        await r.set(key, '9223372036854775800');
        assert.equal(await exact.incrby(key, 7), '9223372036854775807');
        // ioredis' default reply is a JS number: the nearest double, not the exact value.
        await r.set(key, '9223372036854775800');
        assert.equal(await r.incrby(key, 7), 9223372036854775807);
        assert.equal(await r.get(key), '9223372036854775807', 'the stored text is exact');
        assert.equal(await errorOf(r.incrby(key, 1)), 'ERR increment or decrement would overflow');
        assert.equal(await errorOf(r.incr(key)), 'ERR increment or decrement would overflow');
        assert.equal(await exact.decrby(key, '9223372036854775807'), '0');
        assert.equal(await exact.decrby(key, '9223372036854775807'), '-9223372036854775807');
        assert.equal(await exact.decr(key), '-9223372036854775808');
        assert.equal(await errorOf(r.decr(key)), 'ERR increment or decrement would overflow');
        assert.equal(await errorOf(r.incrby(key, '-1')), 'ERR increment or decrement would overflow');
        assert.equal(await exact.incrby(key, '9223372036854775807'), '-1');
        assert.equal(await errorOf(r.decrby(key, '-9223372036854775808')), 'ERR decrement would overflow');
        assert.equal(await errorOf(r.incrby(key, '-9223372036854775808')), 'ERR increment or decrement would overflow');
        assert.equal(await exact.incrby(key, '-9223372036854775807'), '-9223372036854775808');
        assert.equal(await r.get(key), '-9223372036854775808');
        assert.equal(await errorOf(r.incrby(key, '9223372036854775808')), 'ERR value is not an integer or out of range');
        assert.equal(await errorOf(r.incrby(key, '1e3')), 'ERR value is not an integer or out of range');
        await r.set(key, '18446744073709551615');
        assert.equal(await errorOf(r.incr(key)), 'ERR value is not an integer or out of range');
      });

      it('EXPIRE NX/XX/GT/LT, EXPIREAT, PEXPIREAT, EXPIRETIME, PERSIST, TOUCH, UNLINK, TYPE', T, async () => {
        const key = k('e');
        await r.set(key, 'v');
        assert.equal(await r.expire(key, 100, 'XX'), 0);
        assert.equal(await r.expire(key, 100, 'NX'), 1);
        assert.equal(await r.expire(key, 50, 'GT'), 0);
        assert.equal(await r.expire(key, 500, 'GT'), 1);
        assert.equal(await r.pexpire(key, 400_000, 'LT'), 1);
        const pttl = await r.pttl(key);
        assert.ok(pttl > 395_000 && pttl <= 400_000, `PTTL ${pttl}`);
        const at = nowSeconds() + 3600;
        assert.equal(await r.expireat(key, at), 1);
        assert.equal(await r.expiretime(key), at);
        assert.equal(await r.pexpireat(key, at * 1000 + 1), 1);
        assert.equal(await r.pexpiretime(key), at * 1000 + 1);
        assert.equal(await r.persist(key), 1);
        assert.equal(await r.expiretime(key), -1);
        assert.equal(await r.expiretime(k('nope')), -2);
        assert.equal(await errorOf(r.call('EXPIRE', key, '10', 'GT', 'LT')), 'ERR GT and LT options at the same time are not compatible');
        assert.equal(await r.touch(key, k('nope'), key), 2);
        assert.equal(await r.type(key), 'string');
        assert.equal(await r.type(k('nope')), 'none');
        assert.equal(await r.unlink(key, k('nope')), 1);
        assert.equal(await r.type(key), 'none');
      });

      it('RENAME, RENAMENX, COPY, OBJECT ENCODING', T, async () => {
        await r.set(k('r1'), 'v', 'EX', 100);
        assert.equal(await r.rename(k('r1'), k('r2')), 'OK');
        assert.ok((await r.ttl(k('r2'))) > 90);
        assert.equal(await errorOf(r.rename(k('r1'), k('r2'))), 'ERR no such key');
        await r.set(k('r3'), 'x');
        assert.equal(await r.renamenx(k('r2'), k('r3')), 0);
        assert.equal(await r.copy(k('r2'), k('r3')), 0);
        assert.equal(await r.copy(k('r2'), k('r3'), 'REPLACE'), 1);
        assert.equal(await r.get(k('r3')), 'v');
        assert.ok((await r.ttl(k('r3'))) > 90, 'COPY copies the expiry');
        assert.equal(await errorOf(r.copy(k('r2'), k('r2'))), 'ERR source and destination objects are the same');
        await r.set(k('o1'), '-9223372036854775808');
        assert.equal(await r.object('ENCODING', k('o1')), 'int');
        await r.set(k('o2'), '9223372036854775808');
        assert.equal(await r.object('ENCODING', k('o2')), 'embstr');
        await r.set(k('o3'), 'a'.repeat(44));
        assert.equal(await r.object('ENCODING', k('o3')), 'embstr');
        await r.set(k('o3'), 'a'.repeat(45));
        assert.equal(await r.object('ENCODING', k('o3')), 'raw');
        assert.equal(await r.object('ENCODING', k('nope')), null);
        assert.equal(await r.object('REFCOUNT', k('o3')), 1);
      });

      it('empty values: SET, SET GET, MSET, pipeline, MULTI, GETEX, APPEND', T, async () => {
        assert.equal(await r.set(k('z'), ''), 'OK');
        assert.equal(await r.set(k('z'), 'x', 'GET'), '');
        assert.equal(await r.set(k('z'), '', 'GET'), 'x');
        assert.equal(await r.getex(k('z'), 'EX', 100), '');
        assert.ok((await r.ttl(k('z'))) > 90);
        assert.equal(await r.append(k('z'), ''), 0);
        assert.equal(await r.exists(k('z')), 1);
        assert.deepEqual(await r.multi().set(k('z2'), '').get(k('z2')).getdel(k('z2')).exists(k('z2')).exec(), [
          [null, 'OK'],
          [null, ''],
          [null, ''],
          [null, 0],
        ]);
        assert.equal(await r.mset(k('z3'), '', k('z4'), ''), 'OK');
        assert.deepEqual(await r.mget(k('z3'), k('z4')), ['', '']);
        assert.ok((await r.getBuffer(k('z3')))!.equals(Buffer.alloc(0)));
      });

      it('WATCH + multi().exec(): null when another client changed the watched key; nothing applied', T, async () => {
        const other = connect(port, protocol);
        const key = k('w');
        await r.set(key, '1');
        assert.equal(await r.watch(key), 'OK');
        const seen = Number(await r.get(key));
        await other.set(key, '50');
        assert.equal(await r.multi().set(key, String(seen + 1)).get(key).exec(), null);
        assert.equal(await r.get(key), '50');
        // Deleted by another client: changed too.
        await r.watch(key);
        await other.del(key);
        assert.equal(await r.multi().incr(key).exec(), null);
        assert.equal(await r.exists(key), 0);
        // A write by the watching client itself counts, as in Redis.
        await r.watch(key);
        await r.set(key, 'mine');
        assert.equal(await r.multi().get(key).exec(), null);
        // Unchanged: the replies.
        await r.watch(key, k('w-other'));
        assert.deepEqual(await r.multi().append(key, '!').get(key).exec(), [
          [null, 5],
          [null, 'mine!'],
        ]);
        // A change to another key does not matter.
        await r.watch(key);
        await other.set(k('w-unrelated'), 'x');
        assert.deepEqual(await r.multi().strlen(key).exec(), [[null, 5]]);
      });

      it('a compare-and-set loop (WATCH, GET, MULTI/EXEC, retry on null): 5 clients end at the exact total', { timeout: 60_000 }, async () => {
        const key = k('cas');
        await r.set(key, '0');
        const workers = Array.from({ length: 5 }, () => connect(port, protocol));
        const each = 15;
        let retries = 0;
        await Promise.all(
          workers.map(async (c) => {
            for (let done = 0; done < each; ) {
              await c.watch(key);
              const v = Number(await c.get(key));
              const result = await c.multi().set(key, String(v + 1)).exec();
              if (result === null) retries++;
              else {
                assert.deepEqual(result, [[null, 'OK']]);
                done++;
              }
            }
          }),
        );
        assert.equal(await r.get(key), String(5 * each), `exact total after ${retries} retries`);
      });

      it('PUBSUB NUMSUB/NUMPAT/CHANNELS and CONFIG SET/GET timeout through ioredis', T, async () => {
        const sub = connect(port, protocol);
        const before = Number(await r.pubsub('NUMPAT'));
        await sub.subscribe(k('ch'));
        await sub.psubscribe(k('p*'));
        assert.deepEqual(await r.pubsub('CHANNELS', `${p}c*`), [k('ch')]);
        const numsub = (await r.pubsub('NUMSUB', k('ch'), k('none'))) as unknown;
        const flat = Array.isArray(numsub) ? numsub : Object.entries(numsub as Record<string, unknown>).flat();
        assert.deepEqual(flat, [k('ch'), 1, k('none'), 0]);
        assert.equal(Number(await r.pubsub('NUMPAT')), before + 1);
        sub.disconnect();
        for (let i = 0; i < 100 && Number(await r.pubsub('NUMPAT')) !== before; i++) await sleep(20);
        assert.equal(Number(await r.pubsub('NUMPAT')), before, 'a closed connection is unsubscribed');
        assert.equal(await r.config('SET', 'timeout', '120'), 'OK');
        const got = (await r.config('GET', 'timeout')) as unknown;
        assert.deepEqual(Array.isArray(got) ? got : Object.entries(got as Record<string, unknown>).flat(), ['timeout', '120']);
        assert.equal(await r.config('SET', 'timeout', '0'), 'OK');
      });

      it('RANDOMKEY, FLUSHDB, FLUSHALL (last: empties the database)', T, async () => {
        await r.set(k('rk'), 'v');
        const key = await r.randomkey();
        assert.ok(key !== null && (await r.exists(key)) === 1);
        assert.equal(await r.flushdb('SYNC'), 'OK');
        assert.equal(await r.randomkey(), null);
        assert.equal(await r.dbsize(), 0);
        await r.set(k('rk'), 'v');
        assert.equal(await r.flushall(), 'OK');
        assert.equal(await r.dbsize(), 0);
      });
    });
  }
}
