// Black-box tests of the string keyspace of issue 9 with node-redis (`redis`, a devDependency):
// its typed methods where it has them, sendCommand otherwise. Every suite runs against a
// BriseDB master AND, where redis-server is installed, against a redis-server started here, with
// the same assertions: what a test expects is what stock Redis answers, checked on every run.
// Both RESP2 and RESP3. Covers SETNX SETEX PSETEX GETSET GETDEL GETEX MSETNX APPEND STRLEN
// GETRANGE SETRANGE LCS INCR* DECR* (ErrorReply texts), the EXPIRE family with NX/XX/GT/LT,
// EXPIRETIME, PERSIST, UNLINK, TOUCH, TYPE, RENAME(NX), COPY, OBJECT ENCODING, RANDOMKEY,
// FLUSHALL/FLUSHDB, WATCH/MULTI/EXEC compare-and-set loops as node-redis users write them,
// empty values, PUBSUB CHANNELS/NUMSUB/NUMPAT, keyspace notifications, CONFIG SET/GET timeout.
// Invariants: every server is stopped by its own PID in `after`; every client is closed; every
// test has a timeout; suites run one after another (FLUSHALL is the last test of a suite).
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { createClient, ErrorReply, RESP_TYPES, WatchError } from 'redis';
import { hasProgram, sleep, startMaster, stopAll } from './helpers/master_process.js';
import { startRedisServer, stopRedisServers } from './helpers/redis_wire.js';

const T = { timeout: 20_000 };
const HAVE_REDIS = hasProgram('redis-server');

type Client = ReturnType<typeof createClient>;
const clients: Client[] = [];

/** The servers under test, by name; filled in `before`. */
const ports = new Map<string, number>();

before(async () => {
  const [m, r] = await Promise.all([startMaster(), HAVE_REDIS ? startRedisServer() : Promise.resolve(null)]);
  ports.set('BriseDB', m.port);
  if (r !== null) ports.set('redis-server', r.port);
});
after(async () => {
  for (const c of clients) if (c.isOpen) c.destroy();
  await Promise.all([stopAll(), stopRedisServers()]);
});

async function connect(port: number, resp: 2 | 3): Promise<Client> {
  const c = createClient({
    socket: { host: '127.0.0.1', port, reconnectStrategy: false, connectTimeout: 5000 },
    RESP: resp,
  } as Parameters<typeof createClient>[0]) as unknown as Client;
  c.on('error', () => undefined);
  clients.push(c);
  await c.connect();
  return c;
}

/** The ErrorReply a command answered (node-redis rejects with it); fails if it succeeded. */
async function replyError(p: Promise<unknown>): Promise<ErrorReply> {
  let value: unknown;
  try {
    value = await p;
  } catch (e) {
    if (e instanceof ErrorReply) return e;
    throw e;
  }
  throw new Error(`expected an error reply, got ${JSON.stringify(value)}`);
}

async function waitUntil(ready: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A map reply as node-redis hands it: an object, a Map, or a flat array. */
function asObject(reply: unknown): Record<string, unknown> {
  if (reply instanceof Map) return Object.fromEntries([...reply].map(([k, v]) => [String(k), v]));
  if (Array.isArray(reply)) {
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1];
    return out;
  }
  return { ...(reply as Record<string, unknown>) };
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

for (const target of ['BriseDB', 'redis-server']) {
  for (const resp of [2, 3] as const) {
    const skip = target === 'redis-server' && !HAVE_REDIS ? 'redis-server is not installed' : false;
    describe(`node-redis RESP${resp} against ${target}: the string keyspace`, { skip }, () => {
      const p = `nrs${resp}:`;
      const k = (name: string): string => `${p}${name}`;
      let c: Client;
      /** The same client, bulk strings as Buffers (binary checks). */
      let bin: ReturnType<Client['withTypeMapping']>;
      /** The same client, integers as their exact decimal text (64-bit checks). */
      let exact: ReturnType<Client['withTypeMapping']>;
      let port: number;
      before(async () => {
        port = ports.get(target)!;
        c = await connect(port, resp);
        bin = c.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
        exact = c.withTypeMapping({ [RESP_TYPES.NUMBER]: String });
      });

      it('SETNX, SETEX, PSETEX, GETSET, GETDEL', T, async () => {
        assert.equal(await c.setNX(k('nx'), 'first'), 1);
        assert.equal(await c.setNX(k('nx'), 'second'), 0);
        assert.equal(await c.get(k('nx')), 'first');

        assert.equal(await c.setEx(k('ex'), 100, 'v'), 'OK');
        const ttl = await c.ttl(k('ex'));
        assert.ok(ttl >= 99 && ttl <= 100, `TTL ${ttl}`);
        assert.equal((await replyError(c.setEx(k('ex'), 0, 'v'))).message, "ERR invalid expire time in 'setex' command");
        assert.equal((await replyError(c.setEx(k('ex'), -5, 'v'))).message, "ERR invalid expire time in 'setex' command");
        assert.equal((await replyError(c.sendCommand(['SETEX', k('ex'), 'ten', 'v']))).message, 'ERR value is not an integer or out of range');
        assert.equal(await c.pSetEx(k('px'), 1500, 'v'), 'OK');
        const pttl = await c.pTTL(k('px'));
        assert.ok(pttl > 1000 && pttl <= 1500, `PTTL ${pttl}`);
        assert.equal((await replyError(c.pSetEx(k('px'), -1, 'v'))).message, "ERR invalid expire time in 'psetex' command");

        // GETSET answers the old value and drops the expiry.
        assert.equal(await c.getSet(k('ex'), 'new'), 'v');
        assert.equal(await c.get(k('ex')), 'new');
        assert.equal(await c.ttl(k('ex')), -1);
        assert.equal(await c.getSet(k('gs-missing'), 'x'), null);
        assert.equal(await c.get(k('gs-missing')), 'x');

        assert.equal(await c.getDel(k('ex')), 'new');
        assert.equal(await c.exists(k('ex')), 0);
        assert.equal(await c.getDel(k('ex')), null);
        assert.equal((await replyError(c.sendCommand(['GETDEL']))).message, "ERR wrong number of arguments for 'getdel' command");
      });

      it('GETEX with EX, PX, EXAT, PXAT, PERSIST; a past time deletes; errors', T, async () => {
        await c.set(k('gx'), 'val');
        assert.equal(await c.getEx(k('gx'), { type: 'EX', value: 100 }), 'val');
        let ttl = await c.ttl(k('gx'));
        assert.ok(ttl >= 99 && ttl <= 100, `EX: TTL ${ttl}`);
        assert.equal(await c.getEx(k('gx'), { type: 'PX', value: 50_000 }), 'val');
        const pttl = await c.pTTL(k('gx'));
        assert.ok(pttl > 48_000 && pttl <= 50_000, `PX: PTTL ${pttl}`);
        const at = nowSeconds() + 200;
        assert.equal(await c.getEx(k('gx'), { type: 'EXAT', value: at }), 'val');
        assert.equal(await c.expireTime(k('gx')), at);
        const pat = Date.now() + 300_000;
        assert.equal(await c.getEx(k('gx'), { PXAT: pat }), 'val');
        assert.equal(await c.pExpireTime(k('gx')), pat);
        assert.equal(await c.getEx(k('gx'), { type: 'PERSIST' }), 'val');
        assert.equal(await c.ttl(k('gx')), -1);
        // Without an option: a plain read that keeps the expiry.
        await c.expire(k('gx'), 100);
        assert.equal(await c.sendCommand(['GETEX', k('gx')]), 'val');
        ttl = await c.ttl(k('gx'));
        assert.ok(ttl >= 99, `kept: TTL ${ttl}`);
        assert.equal(await c.getEx(k('gx-missing'), { type: 'EX', value: 10 }), null);
        assert.equal(await c.exists(k('gx-missing')), 0);
        // A time in the past answers the value and deletes the key.
        assert.equal(await c.getEx(k('gx'), { type: 'EXAT', value: nowSeconds() - 10 }), 'val');
        assert.equal(await c.exists(k('gx')), 0);
        await c.set(k('gx'), 'val');
        assert.equal((await replyError(c.getEx(k('gx'), { type: 'EX', value: 0 }))).message, "ERR invalid expire time in 'getex' command");
        assert.equal((await replyError(c.sendCommand(['GETEX', k('gx'), 'EX', '10', 'PX', '10']))).message, 'ERR syntax error');
        assert.equal((await replyError(c.sendCommand(['GETEX', k('gx'), 'PERSIST', 'EX', '10']))).message, 'ERR syntax error');
        assert.equal(await c.get(k('gx')), 'val', 'an error changed nothing');
        assert.equal(await c.ttl(k('gx')), -1);
      });

      it('MSETNX: all or none', T, async () => {
        assert.equal(await c.mSetNX({ [k('mn1')]: 'a', [k('mn2')]: 'b' }), 1);
        assert.deepEqual(await c.mGet([k('mn1'), k('mn2')]), ['a', 'b']);
        assert.equal(await c.mSetNX([k('mn3'), 'c', k('mn2'), 'changed']), 0);
        assert.equal(await c.exists(k('mn3')), 0, 'none is set when one exists');
        assert.equal(await c.get(k('mn2')), 'b');
        assert.equal((await replyError(c.sendCommand(['MSETNX', k('mn4'), 'v', k('mn5')]))).message, "ERR wrong number of arguments for 'msetnx' command");
      });

      it('APPEND, STRLEN, GETRANGE', T, async () => {
        assert.equal(await c.append(k('ap'), 'Hello'), 5, 'APPEND creates the key');
        assert.equal(await c.append(k('ap'), ' World'), 11);
        assert.equal(await c.append(k('ap'), ''), 11);
        assert.equal(await c.get(k('ap')), 'Hello World');
        assert.equal(await c.strLen(k('ap')), 11);
        assert.equal(await c.strLen(k('ap-missing')), 0);
        await c.setEx(k('ap-ttl'), 100, 'a');
        assert.equal(await c.append(k('ap-ttl'), 'b'), 2);
        assert.ok((await c.ttl(k('ap-ttl'))) > 90, 'APPEND keeps the expiry');

        assert.equal(await c.getRange(k('ap'), 0, 4), 'Hello');
        assert.equal(await c.getRange(k('ap'), -5, -1), 'World');
        assert.equal(await c.getRange(k('ap'), 6, 1000), 'World');
        assert.equal(await c.getRange(k('ap'), 0, -1), 'Hello World');
        assert.equal(await c.getRange(k('ap'), 5, 2), '');
        assert.equal(await c.getRange(k('ap'), 20, 30), '');
        assert.equal(await c.getRange(k('ap-missing'), 0, 10), '');
        assert.equal(await c.sendCommand(['SUBSTR', k('ap'), '0', '4']), 'Hello');
        assert.equal((await replyError(c.sendCommand(['GETRANGE', k('ap'), 'a', '1']))).message, 'ERR value is not an integer or out of range');
      });

      it('LCS, LCS LEN, LCS IDX [MINMATCHLEN] [WITHMATCHLEN]', T, async () => {
        await c.mSet([k('l1'), 'ohmytext', k('l2'), 'mynewtext']);
        assert.equal(await c.lcs(k('l1'), k('l2')), 'mytext');
        assert.equal(await c.lcsLen(k('l1'), k('l2')), 6);
        const idx = asObject(await c.lcsIdx(k('l1'), k('l2')));
        assert.deepEqual(idx.matches, [[[4, 7], [5, 8]], [[2, 3], [0, 1]]]);
        assert.equal(idx.len, 6);
        const long = asObject(await c.lcsIdxWithMatchLen(k('l1'), k('l2'), { MINMATCHLEN: 4 }));
        assert.deepEqual(long.matches, [[[4, 7], [5, 8], 4]]);
        assert.equal(await c.lcs(k('l1'), k('l-missing')), '');
        assert.equal(
          (await replyError(c.sendCommand(['LCS', k('l1'), k('l2'), 'LEN', 'IDX']))).message,
          'ERR If you want both the length and indexes, please just use IDX.',
        );
      });

      it('SETRANGE: overwrite, zero padding past the end, on a missing key, errors', T, async () => {
        await c.set(k('sr'), 'Hello World');
        assert.equal(await c.setRange(k('sr'), 6, 'Redis'), 11);
        assert.equal(await c.get(k('sr')), 'Hello Redis');
        await c.set(k('sr-pad'), 'abc');
        assert.equal(await c.setRange(k('sr-pad'), 10, 'Z'), 11);
        assert.ok((await bin.get(k('sr-pad')))!.equals(Buffer.from('abc\0\0\0\0\0\0\0Z', 'latin1')), 'zero-padded');
        assert.equal(await c.setRange(k('sr-new'), 5, 'x'), 6);
        assert.ok((await bin.get(k('sr-new')))!.equals(Buffer.from('\0\0\0\0\0x', 'latin1')));
        assert.equal(await c.setRange(k('sr-none'), 3, ''), 0, 'an empty value on a missing key');
        assert.equal(await c.exists(k('sr-none')), 0, 'creates nothing');
        assert.equal(await c.setRange(k('sr'), 100, ''), 11, 'an empty value never pads');
        assert.equal(await c.strLen(k('sr')), 11);
        assert.equal((await replyError(c.setRange(k('sr'), -1, 'x'))).message, 'ERR offset is out of range');
        assert.equal(
          (await replyError(c.setRange(k('sr'), 512 * 1024 * 1024, 'x'))).message,
          'ERR string exceeds maximum allowed size (proto-max-bulk-len)',
        );
        assert.equal(await c.get(k('sr')), 'Hello Redis');
        await c.setEx(k('sr-ttl'), 100, 'aaa');
        assert.equal(await c.setRange(k('sr-ttl'), 1, 'b'), 3);
        assert.equal(await c.get(k('sr-ttl')), 'aba');
        assert.ok((await c.ttl(k('sr-ttl'))) > 90, 'SETRANGE keeps the expiry');
      });

      it('INCR, DECR, INCRBY, DECRBY: values, 64-bit limits, ErrorReply with Redis\' text', T, async () => {
        assert.equal(await c.incr(k('n')), 1, 'a missing key counts from 0');
        assert.equal(await c.incrBy(k('n'), 10), 11);
        assert.equal(await c.decr(k('n')), 10);
        assert.equal(await c.decrBy(k('n'), 25), -15);
        assert.equal(await c.get(k('n')), '-15');
        assert.equal(await c.decr(k('n-missing')), -1);
        await c.setEx(k('n-ttl'), 100, '5');
        assert.equal(await c.incr(k('n-ttl')), 6);
        assert.ok((await c.ttl(k('n-ttl'))) > 90, 'INCR keeps the expiry');

        await c.set(k('max'), '9223372036854775806');
        assert.equal(await exact.incr(k('max')), '9223372036854775807');
        let e = await replyError(c.incr(k('max')));
        assert.ok(e instanceof ErrorReply);
        assert.equal(e.message, 'ERR increment or decrement would overflow');
        assert.equal(await c.get(k('max')), '9223372036854775807', 'unchanged by the failed INCR');
        await c.set(k('min'), '-9223372036854775807');
        assert.equal(await exact.decr(k('min')), '-9223372036854775808');
        e = await replyError(c.decr(k('min')));
        assert.equal(e.message, 'ERR increment or decrement would overflow');
        assert.equal(await exact.sendCommand(['INCRBY', k('min'), '9223372036854775807']), '-1');
        assert.equal((await replyError(c.sendCommand(['DECRBY', k('min'), '-9223372036854775808']))).message, 'ERR decrement would overflow');
        assert.equal((await replyError(c.sendCommand(['INCRBY', k('min'), '9223372036854775808']))).message, 'ERR value is not an integer or out of range');

        await c.set(k('word'), 'abc');
        for (const p of [c.incr(k('word')), c.decr(k('word')), c.incrBy(k('word'), 2), c.decrBy(k('word'), 2)]) {
          e = await replyError(p);
          assert.ok(e instanceof ErrorReply, 'an ErrorReply');
          assert.equal(e.message, 'ERR value is not an integer or out of range');
        }
        for (const v of [' 1', '1 ', '1.0', '+1', '', '01x', '99999999999999999999']) {
          await c.set(k('odd'), v);
          assert.equal((await replyError(c.incr(k('odd')))).message, 'ERR value is not an integer or out of range', JSON.stringify(v));
        }
        assert.equal((await replyError(c.sendCommand(['INCRBY', k('n'), '1.5']))).message, 'ERR value is not an integer or out of range');
        assert.equal((await replyError(c.sendCommand(['INCR', k('n'), 'x']))).message, "ERR wrong number of arguments for 'incr' command");
        assert.equal(await c.get(k('n')), '-15');
      });

      it('INCRBYFLOAT: bulk replies, Redis\' printing, its errors', T, async () => {
        assert.equal(await c.incrByFloat(k('f'), 10.5), '10.5');
        assert.equal(await c.incrByFloat(k('f'), 0.1), '10.6');
        assert.equal(await c.incrByFloat(k('f'), -5), '5.6');
        await c.set(k('f2'), '5.0e3');
        assert.equal(await c.sendCommand(['INCRBYFLOAT', k('f2'), '2.0e2']), '5200');
        await c.set(k('f3'), '0.1');
        assert.equal(await c.sendCommand(['INCRBYFLOAT', k('f3'), '0.2']), '0.3');
        assert.equal(await c.get(k('f3')), '0.3');
        await c.set(k('f4'), '3');
        assert.equal(await c.incrByFloat(k('f4'), 1.5), '4.5');
        assert.equal(await c.sendCommand(['INCRBYFLOAT', k('f4'), '-4.5']), '0');
        await c.set(k('fw'), 'abc');
        assert.equal((await replyError(c.incrByFloat(k('fw'), 1))).message, 'ERR value is not a valid float');
        assert.equal((await replyError(c.sendCommand(['INCRBYFLOAT', k('f'), 'abc']))).message, 'ERR value is not a valid float');
        assert.equal((await replyError(c.sendCommand(['INCRBYFLOAT', k('f'), 'nan']))).message, 'ERR value is not a valid float');
        // Past the long double range (about 1.19e4932; 1e308 + 1e308 is fine in Redis).
        await c.set(k('fbig'), '1e4932');
        assert.equal((await replyError(c.sendCommand(['INCRBYFLOAT', k('fbig'), '1e4932']))).message, 'ERR increment would produce NaN or Infinity');
        assert.equal(await c.get(k('fbig')), '1e4932', 'unchanged');
        assert.equal((await replyError(c.sendCommand(['INCRBYFLOAT', k('f'), 'inf']))).message, 'ERR increment would produce NaN or Infinity');
        await c.set(k('f1e308'), '1e308');
        // A long double holds 2e308, printed as Redis prints it (%.17Lf of the x87 value).
        const twice = '199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096';
        assert.equal(await c.sendCommand(['INCRBYFLOAT', k('f1e308'), '1e308']), twice);
      });

      it('EXPIRE with NX, XX, GT, LT; their errors', T, async () => {
        await c.set(k('e'), 'v');
        assert.equal(await c.expire(k('e'), 100, 'XX'), 0, 'XX: no expiry yet');
        assert.equal(await c.expire(k('e'), 100, 'GT'), 0, 'GT: no expiry is infinite');
        assert.equal(await c.ttl(k('e')), -1);
        assert.equal(await c.expire(k('e'), 100, 'NX'), 1);
        assert.equal(await c.expire(k('e'), 200, 'NX'), 0, 'NX: has one');
        assert.equal(await c.expire(k('e'), 50, 'GT'), 0);
        assert.equal(await c.expire(k('e'), 200, 'GT'), 1);
        assert.equal(await c.expire(k('e'), 300, 'LT'), 0);
        assert.equal(await c.expire(k('e'), 150, 'LT'), 1);
        assert.equal(await c.expire(k('e'), 120, 'XX'), 1);
        const ttl = await c.ttl(k('e'));
        assert.ok(ttl >= 119 && ttl <= 120, `TTL ${ttl}`);
        await c.set(k('e2'), 'v');
        assert.equal(await c.expire(k('e2'), 100, 'LT'), 1, 'LT: any expiry is below infinite');
        assert.equal(await c.pExpire(k('e2'), 50_000, 'LT'), 1);
        assert.equal(await c.pExpire(k('e2'), 60_000, 'LT'), 0);
        assert.equal(await c.expire(k('e-missing'), 100, 'NX'), 0);
        assert.equal(
          (await replyError(c.sendCommand(['EXPIRE', k('e'), '10', 'NX', 'XX']))).message,
          'ERR NX and XX, GT or LT options at the same time are not compatible',
        );
        assert.equal((await replyError(c.sendCommand(['EXPIRE', k('e'), '10', 'GT', 'LT']))).message, 'ERR GT and LT options at the same time are not compatible');
        assert.equal((await replyError(c.sendCommand(['EXPIRE', k('e'), '10', 'YY']))).message, 'ERR Unsupported option YY');
        assert.equal((await replyError(c.sendCommand(['EXPIRE', k('e'), 'ten']))).message, 'ERR value is not an integer or out of range');
        assert.equal(
          (await replyError(c.sendCommand(['EXPIRE', k('e'), '9223372036854775807']))).message,
          "ERR invalid expire time in 'expire' command",
        );
        // Zero deletes the key, as in Redis.
        assert.equal(await c.expire(k('e'), 0), 1);
        assert.equal(await c.exists(k('e')), 0);
      });

      it('EXPIREAT, PEXPIREAT, EXPIRETIME, PEXPIRETIME, PERSIST', T, async () => {
        await c.set(k('at'), 'v');
        assert.equal(await c.expireTime(k('at')), -1);
        assert.equal(await c.pExpireTime(k('at')), -1);
        assert.equal(await c.expireTime(k('at-missing')), -2);
        assert.equal(await c.pExpireTime(k('at-missing')), -2);
        const at = nowSeconds() + 1000;
        assert.equal(await c.expireAt(k('at'), at), 1);
        assert.equal(await c.expireTime(k('at')), at);
        assert.equal(await c.pExpireTime(k('at')), at * 1000);
        assert.equal(await c.expireAt(k('at'), new Date((at + 10) * 1000)), 1, 'a Date');
        assert.equal(await c.expireTime(k('at')), at + 10);
        assert.equal(await c.expireAt(k('at'), at, 'GT'), 0);
        const pat = Date.now() + 500_123;
        assert.equal(await c.pExpireAt(k('at'), pat), 1);
        assert.equal(await c.pExpireTime(k('at')), pat);
        assert.equal(await c.expireTime(k('at')), Math.floor(pat / 1000) + (pat % 1000 >= 500 ? 1 : 0));
        assert.equal(await c.persist(k('at')), 1);
        assert.equal(await c.persist(k('at')), 0);
        assert.equal(await c.persist(k('at-missing')), 0);
        assert.equal(await c.expireTime(k('at')), -1);
        assert.equal(await c.expireAt(k('at-missing'), at), 0);
        // A time in the past deletes.
        assert.equal(await c.pExpireAt(k('at'), Date.now() - 1000), 1);
        assert.equal(await c.exists(k('at')), 0);
        await c.set(k('at'), 'v');
        assert.equal(await c.expireAt(k('at'), 1), 1);
        assert.equal(await c.get(k('at')), null);
      });

      it('UNLINK, TOUCH, TYPE', T, async () => {
        await c.mSet([k('u1'), '1', k('u2'), '2', k('u3'), '3']);
        assert.equal(await c.unlink([k('u1'), k('u2'), k('u-missing')]), 2);
        assert.equal(await c.exists([k('u1'), k('u2'), k('u3')]), 1);
        assert.equal(await c.unlink(k('u1')), 0);
        assert.equal(await c.touch([k('u3'), k('u-missing'), k('u3')]), 2);
        assert.equal(await c.touch(k('u-missing')), 0);
        assert.equal(await c.type(k('u3')), 'string');
        assert.equal(await c.type(k('u-missing')), 'none');
        await c.set(k('u-num'), '42');
        assert.equal(await c.type(k('u-num')), 'string');
      });

      it('RENAME, RENAMENX: the value and the expiry move; errors', T, async () => {
        await c.setEx(k('r1'), 100, 'one');
        assert.equal(await c.rename(k('r1'), k('r2')), 'OK');
        assert.equal(await c.exists(k('r1')), 0);
        assert.equal(await c.get(k('r2')), 'one');
        assert.ok((await c.ttl(k('r2'))) > 90, 'the expiry moved');
        await c.set(k('r3'), 'three');
        assert.equal(await c.rename(k('r2'), k('r3')), 'OK', 'overwrites');
        assert.equal(await c.get(k('r3')), 'one');
        assert.ok((await c.ttl(k('r3'))) > 90);
        assert.equal(await c.rename(k('r3'), k('r3')), 'OK', 'to itself');
        assert.equal(await c.get(k('r3')), 'one');
        assert.equal((await replyError(c.rename(k('r-missing'), k('r4')))).message, 'ERR no such key');
        assert.equal((await replyError(c.renameNX(k('r-missing'), k('r4')))).message, 'ERR no such key');
        await c.set(k('r5'), 'five');
        assert.equal(await c.renameNX(k('r3'), k('r5')), 0);
        assert.deepEqual(await c.mGet([k('r3'), k('r5')]), ['one', 'five']);
        assert.equal(await c.renameNX(k('r3'), k('r6')), 1);
        assert.deepEqual(await c.mGet([k('r3'), k('r6')]), [null, 'one']);
        assert.equal(await c.renameNX(k('r6'), k('r6')), 0, 'to itself: 0');
      });

      it('COPY: REPLACE, the expiry is copied, DB 0, a missing source', T, async () => {
        await c.setEx(k('c1'), 100, 'src');
        assert.equal(await c.copy(k('c1'), k('c2')), 1);
        assert.deepEqual(await c.mGet([k('c1'), k('c2')]), ['src', 'src']);
        assert.ok((await c.ttl(k('c2'))) > 90, 'the expiry is copied');
        await c.set(k('c1'), 'changed');
        assert.equal(await c.copy(k('c1'), k('c2')), 0, 'the destination exists');
        assert.equal(await c.get(k('c2')), 'src');
        assert.equal(await c.copy(k('c1'), k('c2'), { REPLACE: true }), 1);
        assert.equal(await c.get(k('c2')), 'changed');
        assert.equal(await c.ttl(k('c2')), -1, 'REPLACE copies "no expiry" too');
        assert.equal(await c.copy(k('c1'), k('c3'), { DB: 0 }), 1);
        assert.equal(await c.get(k('c3')), 'changed');
        assert.equal(await c.copy(k('c-missing'), k('c4')), 0);
        assert.equal(await c.exists(k('c4')), 0);
        assert.equal((await replyError(c.sendCommand(['COPY', k('c1'), k('c5'), 'NOPE']))).message, 'ERR syntax error');
      });

      it('OBJECT ENCODING: int, embstr, raw; nil for a missing key', T, async () => {
        await c.mSet([k('o-int'), '12345', k('o-neg'), '-42', k('o-emb'), 'hello', k('o-raw'), 'x'.repeat(100)]);
        assert.equal(await c.objectEncoding(k('o-int')), 'int');
        assert.equal(await c.objectEncoding(k('o-neg')), 'int');
        assert.equal(await c.objectEncoding(k('o-emb')), 'embstr');
        assert.equal(await c.objectEncoding(k('o-raw')), 'raw');
        assert.equal(await c.objectEncoding(k('o-missing')), null);
        await c.set(k('o-ctr'), '1');
        await c.incr(k('o-ctr'));
        assert.equal(await c.objectEncoding(k('o-ctr')), 'int');
      });

      it('empty values through SET, MSET, MULTI, SET GET, APPEND, GETRANGE', T, async () => {
        assert.equal(await c.set(k('z1'), ''), 'OK');
        assert.equal(await c.get(k('z1')), '');
        assert.equal(await c.exists(k('z1')), 1);
        assert.equal(await c.strLen(k('z1')), 0);
        assert.equal(await c.type(k('z1')), 'string');
        assert.equal(await c.mSet([k('z2'), '', k('z3'), 'x', k('z4'), '']), 'OK');
        assert.deepEqual(await c.mGet([k('z2'), k('z3'), k('z4'), k('z-missing')]), ['', 'x', '', null]);
        assert.deepEqual(await c.multi().set(k('z5'), '').get(k('z5')).strLen(k('z5')).exec(), ['OK', '', 0]);
        assert.equal(await c.set(k('z5'), 'full', { GET: true }), '', 'the old empty value, not nil');
        assert.equal(await c.set(k('z5'), '', { GET: true }), 'full');
        assert.equal(await c.get(k('z5')), '');
        assert.equal(await c.getRange(k('z5'), 0, -1), '');
        assert.equal(await c.append(k('z6'), ''), 0);
        assert.equal(await c.exists(k('z6')), 1, 'APPEND of nothing creates an empty key');
        assert.equal(await c.getDel(k('z6')), '');
        assert.equal(await c.exists(k('z6')), 0);
        assert.equal(await c.getSet(k('z1'), 'y'), '');
        assert.equal(await c.setNX(k('z7'), ''), 1);
        assert.equal(await c.setNX(k('z7'), 'x'), 0, 'an empty value exists');
      });

      it('WATCH + multi().exec(): WatchError when another client changed the key; nothing applied', T, async () => {
        const other = await connect(port, resp);
        await c.set(k('w'), '10');
        assert.equal(await c.watch(k('w')), 'OK');
        const seen = Number(await c.get(k('w')));
        assert.equal(await other.set(k('w'), '100'), 'OK');
        await assert.rejects(c.multi().set(k('w'), String(seen + 1)).exec(), (err: unknown) => err instanceof WatchError);
        assert.equal(await c.get(k('w')), '100', 'the transaction applied nothing');
        // Not changed meanwhile: EXEC runs.
        await c.watch(k('w'));
        const now = Number(await c.get(k('w')));
        assert.deepEqual(await c.multi().set(k('w'), String(now + 1)).get(k('w')).exec(), ['OK', '101']);
        // A key that expires meanwhile counts as changed; UNWATCH forgets.
        await c.set(k('w-exp'), 'v', { expiration: { type: 'PX', value: 50 } });
        await c.watch(k('w-exp'));
        await sleep(150);
        await assert.rejects(c.multi().set(k('w-exp'), 'again').exec(), (err: unknown) => err instanceof WatchError);
        await c.watch(k('w'));
        await other.set(k('w'), '7');
        assert.equal(await c.unwatch(), 'OK');
        assert.deepEqual(await c.multi().incr(k('w')).exec(), [8]);
      });

      it('a compare-and-set loop: 5 concurrent incrementers on their own connections end at the exact total', { timeout: 60_000 }, async () => {
        const workers = 5;
        const each = 15;
        await c.set(k('cas'), '0');
        const conns = await Promise.all(Array.from({ length: workers }, () => connect(port, resp)));
        let conflicts = 0;
        const incrementer = async (cl: Client): Promise<void> => {
          for (let done = 0; done < each; ) {
            await cl.watch(k('cas'));
            const v = Number(await cl.get(k('cas')));
            try {
              const r = await cl.multi().set(k('cas'), String(v + 1)).exec();
              assert.deepEqual(r, ['OK']);
              done++;
            } catch (err) {
              if (!(err instanceof WatchError)) throw err;
              conflicts++;
            }
          }
        };
        await Promise.all(conns.map(incrementer));
        assert.equal(await c.get(k('cas')), String(workers * each), `exact total (${conflicts} WatchErrors retried)`);
        for (const cl of conns) cl.destroy();
      });

      it('PUBSUB CHANNELS, NUMSUB, NUMPAT', T, async () => {
        const sub = await connect(port, resp);
        const numpat0 = await c.pubSubNumPat();
        await sub.subscribe([k('ch1'), k('ch2')], () => undefined);
        await sub.pSubscribe(k('pat*'), () => undefined);
        assert.deepEqual((await c.pubSubChannels(`${p}ch*`)).sort(), [k('ch1'), k('ch2')]);
        assert.deepEqual(await c.pubSubChannels(`${p}nothing*`), []);
        assert.ok((await c.pubSubChannels()).includes(k('ch1')), 'without a pattern: every channel');
        assert.deepEqual(asObject(await c.pubSubNumSub([k('ch1'), k('ch2'), k('nobody')])), { [k('ch1')]: 1, [k('ch2')]: 1, [k('nobody')]: 0 });
        assert.equal(await c.pubSubNumPat(), numpat0 + 1);
        await sub.unsubscribe(k('ch2'));
        await sub.pUnsubscribe(k('pat*'));
        assert.deepEqual(await c.pubSubChannels(`${p}ch*`), [k('ch1')]);
        assert.deepEqual(asObject(await c.pubSubNumSub([k('ch2')])), { [k('ch2')]: 0 });
        assert.equal(await c.pubSubNumPat(), numpat0);
        sub.destroy();
        await waitUntil(() => !sub.isOpen, 'the subscriber to close');
      });

      it('keyspace notifications: CONFIG SET notify-keyspace-events KEA; __keyevent@0__:set and __keyspace@0__:<key>', T, async () => {
        const sub = await connect(port, resp);
        const events: string[] = [];
        const space: string[] = [];
        const key = k('notified');
        await sub.subscribe('__keyevent@0__:set', (message) => {
          if (message.startsWith(p)) events.push(message);
        });
        await sub.subscribe(`__keyspace@0__:${key}`, (message, channel) => space.push(`${channel} ${message}`));
        try {
          assert.equal(await c.configSet('notify-keyspace-events', 'KEA'), 'OK');
          const flags = asObject(await c.configGet('notify-keyspace-events'))['notify-keyspace-events'] as string;
          assert.deepEqual([...flags].sort(), [...'AKE'].sort(), `flags ${flags}`);
          await c.set(key, '1');
          await c.expire(key, 100);
          await c.incrBy(key, 2);
          await c.append(key, 'x');
          await c.set(k('notified-2'), 'v');
          await c.del(key);
          await waitUntil(() => space.length >= 5 && events.length >= 2, 'the notifications');
          await sleep(50);
          const ch = `__keyspace@0__:${key}`;
          assert.deepEqual(space, [`${ch} set`, `${ch} expire`, `${ch} incrby`, `${ch} append`, `${ch} del`]);
          assert.deepEqual(events, [key, k('notified-2')]);
        } finally {
          await c.configSet('notify-keyspace-events', '');
          sub.destroy();
        }
        const before = space.length;
        await c.set(key, 'quiet');
        await sleep(100);
        assert.equal(space.length, before, 'turned off: nothing more');
        assert.equal(asObject(await c.configGet('notify-keyspace-events'))['notify-keyspace-events'], '');
      });

      it('CONFIG SET/GET timeout: a round trip, and a bad value refused', T, async () => {
        assert.equal(await c.configSet('timeout', '300'), 'OK');
        assert.deepEqual(asObject(await c.configGet('timeout')), { timeout: '300' });
        const e = await replyError(c.configSet('timeout', 'abc'));
        assert.match(e.message, /^ERR CONFIG SET failed \(possibly related to argument 'timeout'\)/);
        assert.deepEqual(asObject(await c.configGet('timeout')), { timeout: '300' }, 'a refused value changes nothing');
        assert.equal(await c.configSet('timeout', '0'), 'OK');
        assert.deepEqual(asObject(await c.configGet('timeout')), { timeout: '0' });
      });

      it('RANDOMKEY, FLUSHDB, FLUSHALL (last: empties the database)', T, async () => {
        await c.mSet([k('rk1'), 'a', k('rk2'), 'b']);
        for (let i = 0; i < 5; i++) {
          const key = (await c.randomKey()) as unknown;
          assert.equal(typeof key, 'string');
          assert.equal(await c.exists(key as string), 1, `RANDOMKEY answered a live key (${key})`);
        }
        assert.equal(await c.flushDb(), 'OK');
        assert.equal(await c.dbSize(), 0);
        assert.equal(await c.randomKey(), null);
        await c.mSet([k('rk1'), 'a', k('rk2'), 'b']);
        assert.equal(await c.flushAll('ASYNC'), 'OK');
        assert.equal(await c.dbSize(), 0);
        await c.set(k('rk3'), 'c');
        assert.equal(await c.randomKey(), k('rk3'), 'the only key');
        assert.equal(await c.flushAll('SYNC'), 'OK');
        assert.equal(await c.get(k('rk3')), null);
        assert.equal((await replyError(c.sendCommand(['FLUSHALL', 'NOW']))).message, 'ERR syntax error');
      });
    });
  }
}
