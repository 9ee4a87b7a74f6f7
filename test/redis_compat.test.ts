// Byte-for-byte against stock Redis: the same command scripts are sent to a redis-server
// started here and to a BriseDB master, one command at a time over raw sockets, and every reply
// must be the same bytes (error texts included). A script starts from FLUSHALL on both. Replies
// that depend on the clock (TTL, PTTL, EXPIRETIME...) are compared after a tolerance: same type,
// numbers within a second. Skipped where redis-server is not installed (CI installs it).
// Invariants: both servers stopped by PID in `after`; every read bounded.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { hasProgram, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { WireClient, startRedisServer, stopRedisServers, type RedisServer, type WireReply } from './helpers/redis_wire.js';

const HAVE_REDIS = hasProgram('redis-server');
const T = { timeout: 60_000 };

/**
 * A command, on connection 0 unless `on` says 1 (a second client). `clock`: the reply depends
 * on the time (numbers compared with a tolerance); `shape`: only the RESP types and lengths of
 * an aggregate are compared (INFO text, client ids).
 */
type Step = string[] | { argv: string[]; clock?: true; shape?: true; on?: 0 | 1 } | { sleep: number } | { message: 0 | 1 };

let redis: RedisServer;
let master: MasterProcess;
/** [redis-server, BriseDB] for each of two connections. */
let conns: [WireClient, WireClient][] = [];

before(async () => {
  if (!HAVE_REDIS) return;
  [redis, master] = await Promise.all([startRedisServer(), startMaster()]);
  for (let i = 0; i < 2; i++) conns.push(await Promise.all([WireClient.connect(redis.port), WireClient.connect(master.port)]));
});
after(async () => {
  for (const [a, c] of conns) {
    a.close();
    c.close();
  }
  conns = [];
  await Promise.all([stopRedisServers(), stopAll()]);
});

const clock = (...argv: string[]): Step => ({ argv, clock: true });
const shape = (...argv: string[]): Step => ({ argv, shape: true });
const other = (...argv: string[]): Step => ({ argv, on: 1 });

/** Runs a script on both from an empty keyspace; every reply must match. */
async function same(steps: Step[]): Promise<void> {
  const [r, b] = conns[0]!;
  for (const pair of conns) await Promise.all(pair.map(reset));
  await Promise.all([r.send(['FLUSHALL']), b.send(['FLUSHALL'])]);
  for (const step of steps) {
    if ('sleep' in step) {
      await new Promise((res) => setTimeout(res, step.sleep));
      continue;
    }
    if ('message' in step) {
      const [rc, bc] = conns[step.message]!;
      const [want, got] = await Promise.all([rc.read(5000, 'a message'), bc.read(5000, 'a message')]);
      assert.equal(got.text, want.text, 'a pushed message');
      continue;
    }
    const argv = Array.isArray(step) ? step : step.argv;
    const [rc, bc] = conns[Array.isArray(step) ? 0 : (step.on ?? 0)]!;
    const [want, got] = await Promise.all([rc.send(argv), bc.send(argv)]);
    const label = argv.join(' ');
    if (Array.isArray(step)) assert.equal(got.text, want.text, label);
    else if (step.clock) assertClose(got, want, label);
    else if (step.shape) assert.equal(shapeOf(got.value), shapeOf(want.value), label);
    else assert.equal(got.text, want.text, label);
  }
}

/** RESET, then skip what was still pending (messages of a subscription) up to its +RESET. */
async function reset(c: WireClient): Promise<void> {
  let reply = await c.send(['RESET']);
  for (let i = 0; i < 1000 && reply.text !== '+RESET\r\n'; i++) reply = await c.read();
  assert.equal(reply.text, '+RESET\r\n');
}

/** The RESP types of a value, and the lengths of its aggregates. */
function shapeOf(v: unknown): string {
  if (Array.isArray(v)) return `[${v.length}:${v.map(shapeOf).join(',')}]`;
  if (v === null) return 'nil';
  if (Buffer.isBuffer(v)) return 'bulk';
  if (v instanceof Error) return 'error';
  return typeof v;
}

/** Same shape; integers (or numeric bulks) within 1,000 of each other (ms) or 1 (s). */
function assertClose(got: WireReply, want: WireReply, label: string): void {
  const shape = (t: string): string => t.replace(/-?[0-9]+/g, '#');
  assert.equal(shape(got.text), shape(want.text), label);
  const nums = (t: string): number[] => (t.match(/-?[0-9]+/g) ?? []).map(Number);
  const [g, w] = [nums(got.text), nums(want.text)];
  // Milliseconds are the large numbers: a PTTL of 100 s reads 99,99x a few ms later (seed of a
  // fresh-clone CI run: 99994 vs 99998); the TTLs in seconds here are all far below 10,000.
  g.forEach((n, i) => assert.ok(Math.abs(n - w[i]!) <= (Math.abs(w[i]!) >= 10_000 ? 1000 : 1), `${label}: ${n} vs ${w[i]}`));
}

describe('replies are Redis\' own, byte for byte', { skip: HAVE_REDIS ? false : 'redis-server is not installed' }, () => {
  it('SET, its options and their errors', T, () =>
    same([
      ['SET', 'k', 'v'],
      ['SET', 'k', 'w', 'NX'],
      ['SET', 'k', 'w', 'XX', 'GET'],
      ['SET', 'k', 'x', 'nx', 'nx'],
      ['SET', 'k', 'x', 'ex', '10', 'ex', '20'],
      clock('TTL', 'k'),
      ['SET', 'k', 'x', 'NX', 'XX'],
      ['SET', 'k', 'x', 'EX', '10', 'PX', '10'],
      ['SET', 'k', 'x', 'KEEPTTL', 'EX', '1'],
      ['SET', 'k', 'x', 'EX'],
      ['SET', 'k', 'x', 'EX', 'abc'],
      ['SET', 'k', 'x', 'EX', 'abc', 'BOGUS'],
      ['SET', 'k', 'x', 'EX', '0'],
      ['SET', 'k', 'x', 'PX', '-1'],
      ['SET', 'k', 'x', 'EX', '10000000000000000'],
      ['SET', 'k', 'x', 'EX', '99999999999999999999'],
      ['SET', 'k', 'x', 'PERSIST'],
      ['SET', 'empty', ''],
      ['GET', 'empty'],
      ['SET', 'empty', '', 'GET'],
      ['STRLEN', 'empty'],
      ['GET', 'k'],
      ['SET', 'k'],
    ]));

  it('SETNX, SETEX, PSETEX, GETSET, GETDEL, GETEX', T, () =>
    same([
      ['SETNX', 'a', '1'],
      ['SETNX', 'a', '2'],
      ['GET', 'a'],
      ['SETEX', 'b', '100', 'v'],
      clock('TTL', 'b'),
      ['SETEX', 'b', '0', 'v'],
      ['SETEX', 'b', '-5', 'v'],
      ['SETEX', 'b', 'x', 'v'],
      ['PSETEX', 'c', '100000', 'v'],
      clock('PTTL', 'c'),
      ['PSETEX', 'c', '0', 'v'],
      ['GETSET', 'b', 'new'],
      ['TTL', 'b'],
      ['GETSET', 'nokey', 'x'],
      ['GETDEL', 'nokey2'],
      ['GETDEL', 'a'],
      ['EXISTS', 'a'],
      ['GETEX', 'nokey3', 'EX', 'notanumber'],
      ['GETEX', 'b'],
      ['GETEX', 'b', 'EX', '100'],
      clock('TTL', 'b'),
      ['GETEX', 'b', 'PERSIST'],
      ['TTL', 'b'],
      ['GETEX', 'b', 'PX', '0'],
      ['GETEX', 'b', 'EX', 'x'],
      ['GETEX', 'b', 'EX', '10', 'PERSIST'],
      ['GETEX', 'b', 'NX'],
      ['GETEX', 'b', 'EXAT', '1'],
      ['EXISTS', 'b'],
      ['GETEX', 'b'],
    ]));

  it('MSET, MSETNX, MGET', T, () =>
    same([
      ['MSET', 'a', '1', 'b', ''],
      ['MGET', 'a', 'b', 'c'],
      ['MSET', 'a'],
      ['MSET', 'a', '1', 'b'],
      ['MSETNX', 'c', '3', 'a', '9'],
      ['MGET', 'a', 'c'],
      ['MSETNX', 'c', '3', 'd', '4', 'c', '5'],
      ['MGET', 'c', 'd'],
      ['MSETNX', 'e'],
    ]));

  it('APPEND, STRLEN, GETRANGE, SUBSTR, SETRANGE', T, () =>
    same([
      ['APPEND', 's', 'Hello'],
      ['APPEND', 's', ' World'],
      ['APPEND', 's', ''],
      ['GET', 's'],
      ['STRLEN', 's'],
      ['STRLEN', 'nokey'],
      ['GETRANGE', 's', '0', '4'],
      ['GETRANGE', 's', '-5', '-1'],
      ['GETRANGE', 's', '-1', '-5'],
      ['GETRANGE', 's', '5', '3'],
      ['GETRANGE', 's', '0', '-100'],
      ['GETRANGE', 's', '-100', '100'],
      ['GETRANGE', 's', '20', '30'],
      ['GETRANGE', 'nokey', '0', '-1'],
      ['GETRANGE', 's', 'x', '1'],
      ['SUBSTR', 's', '1', '3'],
      ['SETRANGE', 's', '6', 'Redis'],
      ['GET', 's'],
      ['SETRANGE', 's', '20', 'far'],
      ['GET', 's'],
      ['SETRANGE', 'new', '3', 'abc'],
      ['GET', 'new'],
      ['SETRANGE', 'new2', '5', ''],
      ['EXISTS', 'new2'],
      ['SETRANGE', 's', '0', ''],
      ['SETRANGE', 's', '-1', 'x'],
      ['SETRANGE', 's', 'x', 'x'],
      ['SETRANGE', 's', '536870912', 'x'],
      ['APPEND', 'e', ''],
      ['GET', 'e'],
      ['SET', 't', 'v', 'EX', '100'],
      ['APPEND', 't', 'w'],
      clock('TTL', 't'),
      ['SETRANGE', 't', '0', 'z'],
      clock('TTL', 't'),
    ]));

  it('LCS: the subsequence, LEN, IDX with MINMATCHLEN and WITHMATCHLEN, and the errors', T, () =>
    same([
      ['SET', 'a', 'ohmytext'],
      ['SET', 'b', 'mynewtext'],
      ['LCS', 'a', 'b'],
      ['LCS', 'a', 'b', 'LEN'],
      ['LCS', 'a', 'b', 'IDX'],
      ['LCS', 'a', 'b', 'idx', 'MINMATCHLEN', '4', 'WITHMATCHLEN'],
      ['LCS', 'a', 'b', 'WITHMATCHLEN', 'IDX', 'MINMATCHLEN', '-5'],
      ['LCS', 'a', 'b', 'LEN', 'IDX'],
      ['LCS', 'a', 'b', 'FOO'],
      ['LCS', 'a', 'b', 'MINMATCHLEN'],
      ['LCS', 'a', 'b', 'MINMATCHLEN', 'x'],
      ['LCS', 'a', 'nokey'],
      ['LCS', 'nokey', 'nokey2', 'IDX'],
      ['LCS', 'a'],
      ['SET', 'c', 'rosettacode'],
      ['SET', 'd', 'raisethysword'],
      ['LCS', 'c', 'd', 'IDX', 'WITHMATCHLEN'],
      ['LCS', 'd', 'c', 'IDX'],
      ['LCS', 'a', 'a', 'IDX', 'WITHMATCHLEN'],
      ['SET', 'e', ''],
      ['LCS', 'e', 'a', 'IDX'],
    ]));

  it('INCR, DECR, INCRBY, DECRBY: 64 bits and Redis\' overflow errors', T, () =>
    same([
      ['INCR', 'n'],
      ['INCRBY', 'n', '41'],
      ['DECR', 'n'],
      ['DECRBY', 'n', '-10'],
      ['INCRBY', 'n', 'x'],
      ['INCRBY', 'n', '1.5'],
      ['INCRBY', 'n', ' 1'],
      ['INCRBY', 'n', '+1'],
      ['INCRBY', 'n', '01'],
      ['SET', 'big', '9223372036854775806'],
      ['INCR', 'big'],
      ['INCR', 'big'],
      ['GET', 'big'],
      ['SET', 'small', '-9223372036854775807'],
      ['DECR', 'small'],
      ['DECR', 'small'],
      ['DECRBY', 'n', '-9223372036854775808'],
      ['INCRBY', 'n', '9223372036854775808'],
      ['SET', 'f', '1.5'],
      ['INCR', 'f'],
      ['SET', 'sp', ' 1'],
      ['INCR', 'sp'],
      ['SET', 'e', ''],
      ['INCR', 'e'],
      ['SET', 'long', '123456789012345678901'],
      ['INCR', 'long'],
      ['SET', 'neg0', '-0'],
      ['INCR', 'neg0'],
      ['SET', 'ttl', '5', 'EX', '100'],
      ['INCR', 'ttl'],
      clock('TTL', 'ttl'),
      ['INCRBY', 'n', '9223372036854775807'],
      ['INCRBY', 'x', '-9223372036854775808'],
      ['DECR', 'x'],
    ]));

  it('INCRBYFLOAT with Redis\' long double arithmetic and printing', T, () =>
    same([
      ['INCRBYFLOAT', 'f', '0.1'],
      ['INCRBYFLOAT', 'f', '0.2'],
      ['INCRBYFLOAT', 'f', '-0.3'],
      ['INCRBYFLOAT', 'f', '5.0e3'],
      ['INCRBYFLOAT', 'f', '1e300'],
      ['INCRBYFLOAT', 'g', '3'],
      ['INCRBYFLOAT', 'g', 'abc'],
      ['INCRBYFLOAT', 'g', ''],
      ['INCRBYFLOAT', 'g', ' 1'],
      ['INCRBYFLOAT', 'g', 'inf'],
      ['INCRBYFLOAT', 'g', 'nan'],
      ['INCRBYFLOAT', 'g', '1e5000'],
      ['INCRBYFLOAT', 'g', '.5'],
      ['INCRBYFLOAT', 'g', '+2.'],
      ['SET', 's', 'text'],
      ['INCRBYFLOAT', 's', '1'],
      ['SET', 'i', '10'],
      ['INCRBYFLOAT', 'i', '0.1'],
      ['INCRBYFLOAT', 'i', '-10.1'],
      ['GET', 'i'],
      ['INCRBYFLOAT', 'h', '1.23456789012345678901'],
      ['INCRBYFLOAT', 'h', '1e-20'],
    ]));

  it('EXPIRE family: options, errors, deletion by a past time', T, () =>
    same([
      ['SET', 'k', 'v'],
      ['EXPIRE', 'k', '100', 'XX'],
      ['EXPIRE', 'k', '100', 'NX'],
      ['EXPIRE', 'k', '200', 'NX'],
      ['EXPIRE', 'k', '50', 'GT'],
      ['EXPIRE', 'k', '500', 'GT'],
      ['EXPIRE', 'k', '600', 'LT'],
      ['EXPIRE', 'k', '60', 'LT'],
      clock('TTL', 'k'),
      ['EXPIRE', 'k', '100', 'xx', 'gt'],
      ['EXPIRE', 'k', '100', 'NX', 'XX'],
      ['EXPIRE', 'k', '100', 'GT', 'LT'],
      ['EXPIRE', 'k', '100', 'NX', 'GT'],
      ['EXPIRE', 'k', '100', 'Foo'],
      ['EXPIRE', 'k', 'abc', 'Foo'],
      ['EXPIRE', 'k', 'abc'],
      ['EXPIRE', 'k', '9223370399119966'],
      ['PEXPIRE', 'k', '9223372036854775807'],
      ['EXPIRE', 'k', '-9223372036854775808'],
      ['EXPIRE', 'nokey', '100'],
      ['EXPIRE', 'nokey', '100', 'NX', 'XX'],
      ['SET', 'p', 'v'],
      ['EXPIRE', 'p', '100', 'LT'],
      clock('TTL', 'p'),
      ['PERSIST', 'p'],
      ['EXPIRE', 'p', '100', 'GT'],
      ['TTL', 'p'],
      ['EXPIRETIME', 'p'],
      ['PEXPIRETIME', 'p'],
      ['EXPIRETIME', 'nokey'],
      ['EXPIREAT', 'p', '4102444800'],
      ['EXPIRETIME', 'p'],
      ['PEXPIRETIME', 'p'],
      ['PEXPIREAT', 'p', '4102444800123'],
      ['PEXPIRETIME', 'p'],
      ['EXPIRETIME', 'p'],
      ['EXPIREAT', 'p', '4102444800', 'NX'],
      ['EXPIREAT', 'p', '1'],
      ['EXISTS', 'p'],
      ['SET', 'q', 'v'],
      ['PEXPIRE', 'q', '0'],
      ['EXISTS', 'q'],
      ['SET', 'q', 'v'],
      ['EXPIRE', 'q', '-1'],
      ['EXISTS', 'q'],
      ['PERSIST', 'nokey'],
      ['EXPIRE', 'k'],
    ]));

  it('DEL, UNLINK, EXISTS, TOUCH, TYPE, RENAME, RENAMENX, COPY', T, () =>
    same([
      ['MSET', 'a', '1', 'b', '2', 'c', '3'],
      ['EXISTS', 'a', 'a', 'nokey'],
      ['TOUCH', 'a', 'b', 'nokey'],
      ['TYPE', 'a'],
      ['TYPE', 'nokey'],
      ['UNLINK', 'a', 'nokey'],
      ['DEL', 'a'],
      ['RENAME', 'nokey', 'x'],
      ['RENAME', 'nokey', 'nokey'],
      ['RENAME', 'b', 'b'],
      ['RENAMENX', 'b', 'b'],
      ['RENAME', 'b', 'bb'],
      ['MGET', 'b', 'bb'],
      ['RENAMENX', 'bb', 'c'],
      ['RENAMENX', 'bb', 'd'],
      ['MGET', 'bb', 'd'],
      ['SET', 't', 'v', 'EX', '100'],
      ['RENAME', 't', 'c'],
      clock('TTL', 'c'),
      ['COPY', 'c', 'c'],
      ['COPY', 'c', 'd'],
      ['COPY', 'c', 'd', 'REPLACE'],
      clock('TTL', 'd'),
      ['COPY', 'nokey', 'z'],
      ['COPY', 'c', 'z', 'DB', '0'],
      ['COPY', 'c', 'z', 'BOGUS'],
      ['COPY', 'c', 'z', 'DB'],
      ['COPY', 'c', 'z', 'DB', 'x'],
      ['GET', 'z'],
      ['RENAME', 'x'],
    ]));

  it('OBJECT, RANDOMKEY, DBSIZE, FLUSHALL, FLUSHDB, SCAN options', T, () =>
    same([
      ['RANDOMKEY'],
      ['MSET', 'i', '123', 's', 'short', 'l', 'x'.repeat(45)],
      ['OBJECT', 'ENCODING', 'i'],
      ['OBJECT', 'ENCODING', 's'],
      ['OBJECT', 'ENCODING', 'l'],
      ['OBJECT', 'ENCODING', 'nokey'],
      ['OBJECT', 'REFCOUNT', 'nokey'],
      ['OBJECT', 'FREQ', 'i'],
      ['OBJECT', 'FREQ', 'nokey'],
      ['OBJECT', 'BOGUS', 'i'],
      ['OBJECT', 'ENCODING'],
      ['OBJECT', 'HELP'],
      ['DBSIZE'],
      ['FLUSHDB', 'ASYNC'],
      ['DBSIZE'],
      ['RANDOMKEY'],
      ['SET', 'one', '1'],
      ['RANDOMKEY'],
      ['FLUSHALL', 'BOGUS'],
      ['FLUSHALL', 'SYNC', 'ASYNC'],
      ['FLUSHALL', 'SYNC'],
      ['DBSIZE'],
      ['SCAN', 'x'],
      ['SCAN', ' 0'],
      ['SCAN', '0', 'COUNT', '0'],
      ['SCAN', '0', 'COUNT'],
      ['SCAN', '0', 'BOGUS', '1'],
      ['SCAN', '0', 'TYPE', 'string'],
      ['SCAN', '0', 'TYPE', 'hash'],
    ]));

  it('MULTI/EXEC: QUEUED, EXECABORT, errors inside EXEC, front-end commands queued', T, () =>
    same([
      ['MULTI'],
      ['SET', 'a', '1'],
      ['INCR', 'a'],
      ['INCR', 'a', 'extra'],
      ['EXEC'],
      ['GET', 'a'],
      ['MULTI'],
      ['SET', 'a', 'x'],
      ['INCR', 'a'],
      ['GET', 'a'],
      ['MULTI'],
      ['WATCH', 'a'],
      ['EXEC'],
      ['EXEC'],
      ['DISCARD'],
      ['MULTI'],
      ['SET', 'b', '1'],
      ['DISCARD'],
      ['EXISTS', 'b'],
      ['EXEC', 'x'],
      ['MULTI'],
      ['SET', 'b', '1'],
      ['EXEC', 'x'],
      ['EXEC'],
      ['EXISTS', 'b'],
      ['FLUSHALL'],
      ['SET', 'c', '1'],
      ['MULTI'],
      ['SET', 'd', '1'],
      ['SET', 'e', '1'],
      ['DBSIZE'],
      ['DEL', 'c'],
      ['DBSIZE'],
      ['FLUSHALL'],
      ['SET', 'f', '1'],
      ['DBSIZE'],
      ['EXEC'],
      ['DBSIZE'],
      ['MULTI'],
      shape('INFO', 'server'),
      shape('CONFIG', 'GET', 'maxclients'),
      shape('CLIENT', 'ID'),
      ['SELECT', '0'],
      ['PING'],
      ['ECHO', 'e'],
      shape('TIME'),
      shape('EXEC'),
      ['MULTI'],
      ['FLUSHALL'],
      ['SET', 'c', '1'],
      ['EXEC'],
      ['DBSIZE'],
    ]));

  it('WATCH: EXEC is nil when a watched key changed (by anyone, by expiry, by FLUSHALL)', T, () =>
    same([
      ['SET', 'w', '1'],
      ['WATCH', 'w'],
      other('SET', 'w', '2'),
      ['MULTI'],
      ['SET', 'w', 'mine'],
      ['EXEC'],
      ['GET', 'w'],
      ['WATCH', 'w'],
      ['MULTI'],
      ['SET', 'w', 'mine'],
      ['EXEC'],
      ['GET', 'w'],
      ['WATCH', 'w'],
      ['SET', 'w', 'self'],
      ['MULTI'],
      ['GET', 'w'],
      ['EXEC'],
      ['WATCH', 'w', 'nokey'],
      other('SET', 'nokey', 'now'),
      ['MULTI'],
      ['PING'],
      ['EXEC'],
      ['WATCH', 'w'],
      ['UNWATCH'],
      other('SET', 'w', '3'),
      ['MULTI'],
      ['GET', 'w'],
      ['EXEC'],
      // (A key absent at WATCH, then created and deleted again, passes here and fails in Redis:
      // a guard compares states, which every replica judges the same; see docs/redis.md.)
      ['SET', 'f', '1'],
      ['WATCH', 'f'],
      other('FLUSHALL'),
      ['MULTI'],
      ['PING'],
      ['EXEC'],
      ['WATCH', 'f'],
      other('FLUSHALL'),
      ['MULTI'],
      ['PING'],
      ['EXEC'],
      ['WATCH', 'x'],
      ['MULTI'],
      ['EXEC'],
      ['SET', 'short', 'v', 'PX', '100'],
      ['WATCH', 'short'],
      { sleep: 250 },
      ['MULTI'],
      ['PING'],
      ['EXEC'],
      ['WATCH'],
    ]));

  it('PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARD*, HELP and their errors', T, () =>
    same([
      ['PUBSUB', 'CHANNELS'],
      ['PUBSUB', 'NUMPAT'],
      other('SUBSCRIBE', 'news'),
      other('SUBSCRIBE', 'sports'),
      other('PSUBSCRIBE', 'n*'),
      ['PUBSUB', 'NUMSUB', 'news', 'none'],
      ['PUBSUB', 'NUMSUB'],
      ['PUBSUB', 'NUMPAT'],
      ['PUBSUB', 'CHANNELS', 'n*'],
      ['PUBSUB', 'CHANNELS', 'x*'],
      ['PUBSUB', 'SHARDCHANNELS'],
      ['PUBSUB', 'SHARDNUMSUB', 'news'],
      ['PUBSUB', 'NUMPAT', 'x'],
      ['PUBSUB', 'CHANNELS', 'a', 'b'],
      ['PUBSUB', 'BOGUS'],
      ['PUBSUB', 'HELP'],
      ['PUBLISH', 'news', 'hello'],
    ]));

  it('SSUBSCRIBE, SPUBLISH, SUNSUBSCRIBE: shard channels, a namespace of their own', T, () =>
    same([
      other('SSUBSCRIBE', 'orders', 'stock'),
      other('SUBSCRIBE', 'orders'),
      other('SSUBSCRIBE', 'orders'),
      shape('PUBSUB', 'SHARDCHANNELS'),
      ['PUBSUB', 'SHARDCHANNELS', 'o*'],
      ['PUBSUB', 'SHARDNUMSUB', 'orders', 'none'],
      ['PUBSUB', 'NUMSUB', 'orders', 'stock'],
      ['SPUBLISH', 'orders', 'o1'],
      { message: 1 },
      ['PUBLISH', 'orders', 'p1'],
      { message: 1 },
      ['SPUBLISH', 'none', 'x'],
      ['PUBLISH', 'stock', 'not for shard subscribers'],
      other('PING'),
      other('SUNSUBSCRIBE', 'orders'),
      other('UNSUBSCRIBE'),
      other('SUNSUBSCRIBE'),
      other('SUNSUBSCRIBE'),
      ['SPUBLISH', 'orders', 'gone'],
      ['PUBSUB', 'SHARDCHANNELS'],
      ['SPUBLISH', 'orders'],
      ['SSUBSCRIBE'],
    ]));

  it('CONFIG GET/SET/RESETSTAT/HELP: the parameters BriseDB has, Redis\' errors for the rest', T, () =>
    same([
      ['CONFIG', 'SET', 'timeout', '0'],
      ['CONFIG', 'GET', 'timeout'],
      ['CONFIG', 'SET', 'foo', 'bar'],
      ['CONFIG', 'SET', 'maxclients', 'abc'],
      ['CONFIG', 'SET', 'maxclients', '0'],
      ['CONFIG', 'SET', 'maxclients'],
      ['CONFIG', 'SET', 'maxclients', '10', 'maxclients', '20'],
      ['CONFIG', 'SET', 'timeout', '-1'],
      ['CONFIG', 'SET', 'timeout', '5', 'foo', '1'],
      ['CONFIG', 'GET', 'timeout'],
      ['CONFIG', 'SET', 'proto-max-bulk-len', '100'],
      ['CONFIG', 'SET', 'proto-max-bulk-len', '2mb'],
      ['CONFIG', 'GET', 'proto-max-bulk-len'],
      ['CONFIG', 'SET', 'proto-max-bulk-len', '512mb'],
      ['CONFIG', 'SET', 'client-query-buffer-limit', '1kb'],
      ['CONFIG', 'SET', 'notify-keyspace-events', 'Q'],
      ['CONFIG', 'SET', 'notify-keyspace-events', 'KEAn'],
      ['CONFIG', 'GET', 'notify-keyspace-events'],
      ['CONFIG', 'SET', 'notify-keyspace-events', 'gxKEmn'],
      ['CONFIG', 'GET', 'notify-keyspace-events'],
      ['CONFIG', 'SET', 'notify-keyspace-events', ''],
      ['CONFIG', 'GET', 'notify-keyspace-events'],
      ['CONFIG', 'SET', 'save', ''],
      ['CONFIG', 'SET', 'appendonly', 'yes'],
      ['CONFIG', 'RESETSTAT'],
      ['CONFIG', 'RESETSTAT', 'x'],
      ['CONFIG', 'GET'],
      ['CONFIG', 'BOGUS'],
      ['CONFIG', 'HELP'],
    ]));

  it('keyspace notifications: the channels, messages and order of Redis for every string and keyspace command', T, () =>
    same([
      ['CONFIG', 'SET', 'notify-keyspace-events', 'KEA'],
      other('PSUBSCRIBE', '__key*__:*'),
      ['SET', 'k', '1'],
      { message: 1 },
      { message: 1 },
      ['SET', 'k', '2', 'EX', '100'],
      { message: 1 },
      { message: 1 },
      { message: 1 },
      { message: 1 },
      ['INCRBY', 'k', '5'],
      { message: 1 },
      { message: 1 },
      ['APPEND', 'k', 'x'],
      { message: 1 },
      { message: 1 },
      ['SETRANGE', 'k', '0', 'y'],
      { message: 1 },
      { message: 1 },
      ['PERSIST', 'k'],
      { message: 1 },
      { message: 1 },
      ['RENAME', 'k', 'k2'],
      { message: 1 },
      { message: 1 },
      { message: 1 },
      { message: 1 },
      ['COPY', 'k2', 'k3'],
      { message: 1 },
      { message: 1 },
      ['EXPIRE', 'k3', '100'],
      { message: 1 },
      { message: 1 },
      ['DEL', 'k2', 'k3', 'nokey'],
      { message: 1 },
      { message: 1 },
      { message: 1 },
      { message: 1 },
      ['SET', 'f', '1'],
      { message: 1 },
      { message: 1 },
      ['INCRBYFLOAT', 'f', '0.5'],
      { message: 1 },
      { message: 1 },
      ['GETDEL', 'f'],
      { message: 1 },
      { message: 1 },
      ['SET', 'short', 'v', 'PX', '50'],
      { message: 1 },
      { message: 1 },
      { message: 1 },
      { message: 1 },
      { sleep: 200 },
      ['GET', 'short'],
      { message: 1 },
      { message: 1 },
      ['CONFIG', 'SET', 'notify-keyspace-events', 'Eg'],
      ['SET', 'g', '1'],
      ['DEL', 'g'],
      { message: 1 },
      ['CONFIG', 'SET', 'notify-keyspace-events', ''],
    ]));

  it('SELECT, PING, ECHO and wrong arity', T, () =>
    same([
      ['COMMAND', 'COUNT', 'x'],
      ['COMMAND', 'LIST', 'x'],
      ['COMMAND', 'LIST', 'FILTERBY', 'x', 'y'],
      ['COMMAND', 'LIST', 'FILTERBY', 'MODULE', 'none'],
      ['HELLO', 'abc'],
      ['HELLO', '4'],
      ['HELLO', '-1'],
      ['AUTH', 'x'],
      ['AUTH', 'someone', 'x'],
      ['AUTH', 'default', 'x'],
      ['CLIENT', 'KILL', '203.0.113.9:1'],
      ['CLIENT', 'KILL', 'ID', 'abc'],
      ['CLIENT', 'KILL', 'ID', '999999'],
      ['CLIENT', 'KILL', 'FOO', 'bar'],
      ['CLIENT', 'KILL', 'TYPE', 'bogus'],
      ['CLIENT', 'KILL', 'ID', '999999', 'SKIPME', 'maybe'],
      ['CLIENT', 'KILL', 'ID', '999999', 'TYPE'],
      ['SELECT', '0'],
      ['SELECT', 'x'],
      ['PING'],
      ['PING', 'hi'],
      ['PING', 'a', 'b'],
      ['ECHO', ''],
      ['GET'],
      ['INCR'],
      ['INCRBY', 'k'],
      ['GETRANGE', 'k', '0'],
      ['SETRANGE', 'k', '0'],
      ['APPEND', 'k'],
      ['EXPIRETIME'],
      ['NOSUCHCOMMAND', 'a', 'b'],
    ]));
});
