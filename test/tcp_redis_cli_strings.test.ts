// Black-box tests of the string keyspace of issue 9 with redis-cli, side by side: every script
// of string and expiry commands is piped into redis-cli against a redis-server started here and
// against a BriseDB master, and what redis-cli prints must be the same text, in its default
// (piped: raw) output, with --no-raw, and with -3 (RESP3). Times are absolute (EXPIREAT in the
// year 2100) or far from a rounding edge, so the output is deterministic. Then `redis-cli
// --pipe` of 100,000 SETs: every reply counted, none lost, every key stored; and a --pipe mixing
// writes and errors counts the same errors as redis-server does.
// Skipped where redis-cli (or, for the side-by-side part, redis-server) is not installed.
// Invariants: both servers stopped by PID in `after`; every redis-cli run has a timeout and is
// killed past it (by its own PID); the temp dir of the --pipe input is removed in `after`.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hasProgram, startMaster, stopAll, tempDir, type MasterProcess } from './helpers/master_process.js';
import { startRedisServer, stopRedisServers, type RedisServer } from './helpers/redis_wire.js';

const CLI = hasProgram('redis-cli');
const REDIS = hasProgram('redis-server');
const T = { timeout: 30_000 };
let master: MasterProcess;
let redis: RedisServer | null = null;

before(async () => {
  if (!CLI) return;
  [master, redis] = await Promise.all([startMaster(), REDIS ? startRedisServer() : Promise.resolve(null)]);
});
after(async () => {
  await Promise.all([stopAll(), stopRedisServers()]);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs redis-cli with a bounded time; stdin is a string, or a file (by path) for --pipe. */
function cli(port: number, args: string[], input: string | { file: string } = '', ms = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const fromFile = typeof input !== 'string';
    const fd = fromFile ? fs.openSync(input.file, 'r') : null;
    const child = spawn('redis-cli', ['-p', String(port), ...args], { stdio: [fd ?? 'pipe', 'pipe', 'pipe'] });
    if (fd !== null) fs.closeSync(fd);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-cli ${args.join(' ')} did not finish within ${ms} ms; stdout: ${stdout.slice(-500)}`));
    }, ms);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (!fromFile) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(input);
    }
  });
}

/** The output modes compared: piped default (raw), --no-raw, RESP3 --no-raw. */
const MODES: string[][] = [[], ['--no-raw'], ['-3', '--no-raw']];

/** Runs the script (one command a line, after a FLUSHALL) on both, in every mode; same text. */
async function same(script: string[]): Promise<void> {
  const input = ['FLUSHALL', ...script].join('\n') + '\n';
  for (const mode of MODES) {
    const want = await cli(redis!.port, mode, input);
    const got = await cli(master.port, mode, input);
    assert.equal(want.code, 0, want.stderr);
    const wantLines = want.stdout.split('\n');
    const gotLines = got.stdout.split('\n');
    // Line by line first: a failure names the first line that differs, and its command.
    for (let i = 0; i < Math.max(wantLines.length, gotLines.length); i++) {
      assert.equal(gotLines[i], wantLines[i], `mode ${JSON.stringify(mode)}, output line ${i + 1}\n--- redis-server printed:\n${want.stdout}\n--- BriseDB printed:\n${got.stdout}`);
    }
    assert.equal(got.code, want.code);
  }
}

/** 2100-01-01T00:00:00Z: an absolute expiry far enough to never be reached by a run. */
const Y2100 = 4102444800;

describe('redis-cli against redis-server and BriseDB: the same output', { skip: CLI && REDIS ? false : 'redis-cli or redis-server is not installed' }, () => {
  it('SETNX, SETEX, PSETEX, GETSET, GETDEL', T, () =>
    same([
      'SETNX a 1',
      'SETNX a 2',
      'GET a',
      'SETEX b 1000 v',
      'TTL b',
      'SETEX b 0 v',
      'SETEX b -1 v',
      'SETEX b x v',
      'SETEX b 10',
      'PSETEX c 1000000 v',
      'PSETEX c 0 v',
      'GETSET b w',
      'TTL b',
      'GETSET nokey 1',
      'GETDEL a',
      'GETDEL a',
      'GET a',
      'GETDEL',
    ]));

  it('GETEX with every option, its errors, and a time in the past', T, () =>
    same([
      'SET g "a value"',
      'GETEX g',
      'GETEX g EX 1000',
      'TTL g',
      `GETEX g EXAT ${Y2100}`,
      'EXPIRETIME g',
      `GETEX g PXAT ${Y2100}123`,
      'PEXPIRETIME g',
      'EXPIRETIME g',
      'GETEX g PERSIST',
      'TTL g',
      'GETEX g EX 0',
      'GETEX g PX -1',
      'GETEX g EX 10 PX 10',
      'GETEX g PERSIST EX 10',
      'GETEX g EX',
      'GETEX g FOO',
      'GETEX g EX abc',
      'GETEX nokey EX abc',
      'GETEX nokey PERSIST',
      'GETEX g EXAT 1',
      'EXISTS g',
    ]));

  it('MSET, MSETNX, MGET: quoted and empty values, arity', T, () =>
    same([
      'MSETNX k1 "a b" k2 ""',
      'MSETNX k2 x k3 y',
      'MGET k1 k2 k3',
      'MSETNX k4 1 k4 2',
      'GET k4',
      'MSET k1',
      'MSETNX k1',
      'MSETNX',
      'MSET k5 "\\x00\\xff" k6 "line\\nbreak"',
      'MGET k5 k6',
      'STRLEN k5',
    ]));

  it('APPEND, STRLEN, GETRANGE, SUBSTR, SETRANGE with padding, errors', T, () =>
    same([
      'APPEND s Hello',
      'APPEND s " World"',
      'APPEND s ""',
      'STRLEN s',
      'STRLEN nokey',
      'GETRANGE s 0 4',
      'GETRANGE s -5 -1',
      'GETRANGE s 5 2',
      'GETRANGE s -1 -5',
      'GETRANGE s 0 -100',
      'GETRANGE s -100 3',
      'GETRANGE s 100 200',
      'GETRANGE s 0 9223372036854775807',
      'GETRANGE nokey 0 -1',
      'SUBSTR s 0 0',
      'GETRANGE s x 1',
      'GETRANGE s 0',
      'SETRANGE s 6 Redis',
      'GET s',
      'SETRANGE p 3 x',
      'GET p',
      'SETRANGE s 13 "!"',
      'GET s',
      'STRLEN s',
      'SETRANGE s -1 x',
      'SETRANGE s 536870912 x',
      'SETRANGE s 536870911 ""',
      'SETRANGE s abc x',
      'SETRANGE nokey 5 ""',
      'EXISTS nokey',
      'SETEX t 1000 aaa',
      'SETRANGE t 1 b',
      'APPEND t c',
      'GET t',
      'TTL t',
    ]));

  it('LCS with LEN, IDX, MINMATCHLEN, WITHMATCHLEN; errors', T, () =>
    same([
      'MSET key1 ohmytext key2 mynewtext',
      'LCS key1 key2',
      'LCS key1 key2 LEN',
      'LCS key1 key2 IDX',
      'LCS key1 key2 IDX MINMATCHLEN 4',
      'LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN',
      'LCS key1 key2 IDX WITHMATCHLEN',
      'LCS key1 nokey',
      'LCS nokey nokey2 IDX',
      'LCS key1 key2 LEN IDX',
      'LCS key1 key2 MINMATCHLEN -1 IDX',
      'LCS key1 key2 MINMATCHLEN abc',
      'LCS key1 key2 FOO',
      'LCS key1',
      'SET n 123',
      'LCS n key1',
      'SET e ""',
      'LCS e key1 IDX',
    ]));

  it('INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT: values, limits, errors', T, () =>
    same([
      'INCR n',
      'INCRBY n 41',
      'DECR n',
      'DECRBY n 50',
      'GET n',
      'INCRBY n x',
      'INCRBY n 1.5',
      'INCRBY n ""',
      'SET n 9223372036854775806',
      'INCR n',
      'INCR n',
      'SET n -9223372036854775807',
      'DECR n',
      'DECR n',
      'DECRBY n -9223372036854775808',
      'INCRBY n 9223372036854775807',
      'INCRBY n 9223372036854775808',
      'SET w abc',
      'INCR w',
      'DECRBY w 1',
      'SET sp " 1"',
      'INCR sp',
      'SET z 007',
      'INCR z',
      'SETEX e 1000 10',
      'INCRBY e 5',
      'TTL e',
      'INCRBYFLOAT f 10.5',
      'INCRBYFLOAT f 0.1',
      'INCRBYFLOAT f -5',
      'INCRBYFLOAT f 5.0e3',
      'INCRBYFLOAT f -5005.6',
      'INCRBYFLOAT f abc',
      'INCRBYFLOAT w 1',
      'INCRBYFLOAT f inf',
      'INCRBYFLOAT f nan',
      'SET big 1e308',
      'INCRBYFLOAT big 1e308',
      'SET tiny 0.1',
      'INCRBYFLOAT tiny 0.2',
      'INCRBYFLOAT tiny 1e-20',
      'INCRBYFLOAT n2 3',
      'GET n2',
    ]));

  it('EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT; EXPIRETIME, PEXPIRETIME, PERSIST, TTL', T, () =>
    same([
      'SET e v',
      'EXPIRE e 1000 XX',
      'EXPIRE e 1000 GT',
      'EXPIRE e 1000 NX',
      'EXPIRE e 2000 NX',
      'EXPIRE e 500 GT',
      'EXPIRE e 2000 GT',
      'EXPIRE e 3000 LT',
      'EXPIRE e 1500 LT',
      'TTL e',
      'EXPIRE e 1200 xx',
      'TTL e',
      `EXPIREAT e ${Y2100}`,
      'EXPIRETIME e',
      'PEXPIRETIME e',
      `PEXPIREAT e ${Y2100}499`,
      'EXPIRETIME e',
      `PEXPIREAT e ${Y2100}500`,
      'EXPIRETIME e',
      'PEXPIRETIME e',
      `EXPIREAT e ${Y2100} GT`,
      `EXPIREAT e ${Y2100 + 1} GT`,
      `PEXPIREAT e ${Y2100}000 LT`,
      'EXPIRETIME e',
      'EXPIRE e 10 NX XX',
      'EXPIRE e 10 GT LT',
      'EXPIRE e 10 NX GT',
      'EXPIRE e 10 FOO',
      'EXPIRE e abc',
      'EXPIRE e 9223372036854775807',
      'PEXPIRE e 9223372036854775807',
      'EXPIREAT e 9223372036854775807',
      'EXPIRE e',
      'PERSIST e',
      'PERSIST e',
      'EXPIRETIME e',
      'TTL e',
      'PTTL e',
      'EXPIRETIME nokey',
      'PEXPIRETIME nokey',
      'TTL nokey',
      'PTTL nokey',
      'PERSIST nokey',
      'EXPIRE nokey 10',
      'EXPIRE e -1',
      'EXISTS e',
      'SET e2 v',
      'EXPIREAT e2 1',
      'EXISTS e2',
      'SET e3 v',
      'PEXPIRE e3 0',
      'GET e3',
    ]));

  it('UNLINK, TOUCH, TYPE, RENAME, RENAMENX, COPY, OBJECT, DBSIZE, RANDOMKEY, FLUSHDB, FLUSHALL', T, () =>
    same([
      'MSET a 1 b 2 c 3',
      'UNLINK a nokey',
      'UNLINK a',
      'TOUCH b b nokey',
      'TYPE b',
      'TYPE nokey',
      'SETEX b 1000 two',
      'RENAME b b2',
      'TTL b2',
      'RENAME nokey x',
      'RENAME b2 b2',
      'RENAMENX b2 c',
      'RENAMENX b2 b3',
      'RENAMENX b3 b3',
      'RENAMENX nokey x',
      'COPY b3 c',
      'COPY b3 c REPLACE',
      'TTL c',
      'COPY b3 b3',
      'COPY nokey z',
      'COPY b3 d DB 0',
      'COPY b3 d FOO',
      'GET d',
      'OBJECT ENCODING c',
      'SET i 12345',
      'OBJECT ENCODING i',
      'SET i2 -0',
      'OBJECT ENCODING i2',
      'SET raw aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
      'OBJECT ENCODING raw',
      'OBJECT ENCODING nokey',
      'OBJECT REFCOUNT raw',
      'OBJECT FOO raw',
      'OBJECT ENCODING',
      'DBSIZE',
      'FLUSHDB',
      'DBSIZE',
      'RANDOMKEY',
      'SET only 1',
      'RANDOMKEY',
      'FLUSHALL ASYNC',
      'FLUSHALL FOO',
      'FLUSHDB SYNC',
      'DBSIZE',
    ]));

  it('MULTI/EXEC and WATCH with string commands; wrong arity of each command', T, () =>
    same([
      'SET w 1',
      'WATCH w',
      'SET w 2',
      'MULTI',
      'INCR w',
      'EXEC',
      'GET w',
      'MULTI',
      'INCR w',
      'APPEND w x',
      'GETRANGE w 0 -1',
      'INCR w',
      'SETRANGE w 0 9',
      'GETDEL w',
      'EXEC',
      'EXISTS w',
      'MULTI',
      'SET q ""',
      'GETSET q x',
      'GETEX q PERSIST',
      'EXEC',
      'SETNX a',
      'SETEX a 1',
      'PSETEX a',
      'GETSET a',
      'GETEX',
      'APPEND a',
      'STRLEN',
      'GETRANGE a 1',
      'SETRANGE a 1',
      'INCRBY a',
      'DECRBY a',
      'INCRBYFLOAT a',
      'EXPIREAT a',
      'PEXPIREAT a',
      'EXPIRETIME',
      'PEXPIRETIME a b',
      'PERSIST',
      'UNLINK',
      'TOUCH',
      'TYPE',
      'RENAME a',
      'RENAMENX a',
      'COPY a',
      'RANDOMKEY x',
    ]));
});

describe('redis-cli --pipe', { skip: CLI ? false : 'redis-cli is not installed' }, () => {
  it('100,000 SETs: "errors: 0, replies: 100000", DBSIZE 100000, a sample of GETs right', { timeout: 120_000 }, async () => {
    const N = 100_000;
    const file = path.join(tempDir('brisedb-pipe-'), 'sets.resp');
    const out = fs.createWriteStream(file);
    const key = (i: number): string => `pipe:${i}`;
    const value = (i: number): string => `value-${i}-${(i * 2654435761) % 1000003}`;
    const cmd = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    let chunk = '';
    for (let i = 0; i < N; i++) {
      chunk += cmd('SET', key(i), value(i));
      if (chunk.length > 1 << 20) {
        out.write(chunk);
        chunk = '';
      }
    }
    out.end(chunk);
    await new Promise<void>((resolve, reject) => {
      out.once('finish', resolve);
      out.once('error', reject);
    });
    assert.equal((await cli(master.port, ['FLUSHALL'])).stdout, 'OK\n');
    const started = Date.now();
    const r = await cli(master.port, ['--pipe', '--pipe-timeout', '60'], { file }, 100_000);
    const took = Date.now() - started;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const summary = r.stdout.split('\n').find((l) => l.startsWith('errors:'));
    assert.equal(summary, `errors: 0, replies: ${N}`, `redis-cli printed ${JSON.stringify(r.stdout)} after ${took} ms`);
    assert.match(r.stdout, /All data transferred/);
    assert.equal((await cli(master.port, ['DBSIZE'])).stdout, `${N}\n`);
    const sample = [0, 1, 2, 999, 12_345, 50_000, 77_777, 99_998, N - 1];
    for (let s = 0; s < 20; s++) sample.push((s * 7919 + 13) % N);
    const got = await cli(master.port, ['MGET', ...sample.map(key)]);
    assert.equal(got.stdout, sample.map((i) => `${value(i)}\n`).join(''));
    assert.equal((await cli(master.port, ['GET', key(N)])).stdout, '\n', 'nothing past the last key');
  });

  it('a stream mixing SET, INCR, APPEND, GETRANGE and errors: the same error and reply counts as redis-server', { skip: REDIS ? false : 'redis-server is not installed', timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const cmd = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    lines.push(cmd('FLUSHALL'));
    for (let i = 0; i < 500; i++) {
      lines.push(cmd('SET', `mix:${i}`, String(i)));
      lines.push(cmd('INCR', `mix:${i}`));
      lines.push(cmd('APPEND', `mix:${i}`, 'x'));
      lines.push(cmd('GETRANGE', `mix:${i}`, '0', '-1'));
      // Errors: on a value that is no longer an integer, and every 50th an unknown command.
      lines.push(cmd('INCR', `mix:${i}`));
      if (i % 50 === 0) lines.push(cmd('NOSUCHCOMMAND', String(i)));
    }
    const file = path.join(tempDir('brisedb-pipe-'), 'mixed.resp');
    fs.writeFileSync(file, lines.join(''));
    const want = await cli(redis!.port, ['--pipe'], { file }, 50_000);
    const got = await cli(master.port, ['--pipe'], { file }, 50_000);
    const summary = (r: Run): string | undefined => r.stdout.split('\n').find((l) => l.startsWith('errors:'));
    assert.equal(summary(want), `errors: 510, replies: ${lines.length}`);
    assert.equal(summary(got), summary(want));
    assert.equal((await cli(master.port, ['MGET', 'mix:0', 'mix:499'])).stdout, '1x\n500x\n');
  });
});

describe('differences from Redis found by this suite (fail until src/ answers as Redis does)', { skip: CLI && REDIS ? false : 'redis-cli or redis-server is not installed' }, () => {
  it('SETRANGE with an offset past 2^53 answers Redis\' errors, not "value is not an integer"', T, () =>
    same([
      'SET s v',
      'SETRANGE s 9007199254740992 x',
      'SETRANGE s 9223372036854775807 x',
      'SETRANGE s -9223372036854775808 x',
    ]));
});
