// Black-box tests of the TCP front end with the Redis tools people already have: redis-cli
// (RESP2 and `-3`, arguments, stdin, --pipe, --no-raw formatting, error replies) and
// redis-benchmark (`-t ping,set,get`, with and without `-P 16`). The expected texts are what
// redis-cli prints against redis-server itself (checked by hand against redis-server 7.0).
// Skipped where the tools are not installed (CI installs redis-tools in .ci/run).
// Invariants: one master for the file, stopped by its PID in `after`; every tool run has a
// timeout and is killed past it.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { hasProgram, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';

const CLI = hasProgram('redis-cli');
const BENCH = hasProgram('redis-benchmark');
const T = { timeout: 30_000 };
let master: MasterProcess;

before(async () => {
  if (CLI || BENCH) master = await startMaster();
});
after(stopAll);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program with a bounded time; answers its exit code and output. */
function run(program: string, args: string[], input?: string | Buffer, ms = 25_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${program} ${args.join(' ')} did not finish within ${ms} ms; stdout: ${stdout.slice(-500)}`));
    }, ms);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

const cli = (...args: string[]): Promise<Run> => run('redis-cli', ['-p', String(master.port), ...args]);

describe('redis-cli', { skip: CLI ? false : 'redis-cli is not installed' }, () => {
  it('SET and GET as arguments', T, async () => {
    assert.deepEqual(await cli('SET', 'a', 'b'), { code: 0, stdout: 'OK\n', stderr: '' });
    assert.equal((await cli('GET', 'a')).stdout, 'b\n');
    assert.equal((await cli('--no-raw', 'GET', 'a')).stdout, '"b"\n');
    assert.equal((await cli('--no-raw', 'GET', 'no-such-key')).stdout, '(nil)\n');
    assert.equal((await cli('--no-raw', 'SET', 'sp', 'x y')).stdout, 'OK\n');
    assert.equal((await cli('--no-raw', 'MGET', 'sp', 'no-such-key')).stdout, '1) "x y"\n2) (nil)\n');
    assert.equal((await cli('--no-raw', 'DEL', 'sp', 'no-such-key')).stdout, '(integer) 1\n');
    assert.equal((await cli('PING')).stdout, 'PONG\n');
  });

  it('-3: HELLO 3 is a map, GET works', T, async () => {
    const hello = await cli('-3', '--no-raw', 'HELLO', '3');
    assert.equal(hello.code, 0);
    assert.match(hello.stdout, /^1# "server" => "redis"\n/);
    assert.match(hello.stdout, /\n\d+# "proto" => \(integer\) 3\n/);
    assert.equal((await cli('-3', 'GET', 'a')).stdout, 'b\n');
    assert.equal((await cli('-3', '--no-raw', 'GET', 'a')).stdout, '"b"\n');
    assert.equal((await cli('-3', '--no-raw', 'GET', 'no-such-key')).stdout, '(nil)\n');
  });

  it('commands piped on stdin run in order', T, async () => {
    const r = await run('redis-cli', ['-p', String(master.port)], 'SET p1 v1\nGET p1\nDEL p1 nope\nGET p1\nSET p2 "x y"\nGET p2\n');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'OK\nv1\n1\n\nOK\nx y\n');
  });

  it('--pipe: a RESP stream of 1000 SETs, all replied, all stored', T, async () => {
    const parts: string[] = [];
    for (let i = 0; i < 1000; i++) parts.push(`*3\r\n$3\r\nSET\r\n$${`pipe:${i}`.length}\r\npipe:${i}\r\n$${String(i).length}\r\n${i}\r\n`);
    const r = await run('redis-cli', ['-p', String(master.port), '--pipe'], parts.join(''));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /errors: 0, replies: 1000/);
    assert.equal((await cli('GET', 'pipe:999')).stdout, '999\n');
    assert.equal((await cli('EXISTS', 'pipe:0', 'pipe:500', 'pipe:999')).stdout, '3\n');
  });

  it('--no-raw KEYS formats a numbered list', T, async () => {
    await cli('MSET', 'kfmt:1', 'a', 'kfmt:2', 'b', 'kfmt:3', 'c');
    const r = await cli('--no-raw', 'KEYS', 'kfmt:*');
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    lines.forEach((l, i) => assert.match(l, new RegExp(`^${i + 1}\\) "kfmt:[123]"$`)));
    assert.deepEqual(lines.map((l) => l.replace(/^\d\) /, '')).sort(), ['"kfmt:1"', '"kfmt:2"', '"kfmt:3"']);
    assert.equal((await cli('--no-raw', 'KEYS', 'nothing-matches-*')).stdout, '(empty array)\n');
    // Many items: redis-cli pads the numbers to one width ("   1) ...", "1000) ...").
    const all = (await cli('--no-raw', 'KEYS', '*')).stdout.trimEnd().split('\n');
    assert.equal(all.length, Number((await cli('DBSIZE')).stdout.trim()));
    const width = String(all.length).length;
    all.forEach((l, i) => assert.ok(l.startsWith(`${String(i + 1).padStart(width)}) "`), l));
  });

  it('error replies print as Redis prints them', T, async () => {
    assert.equal((await cli('--no-raw', 'FOO')).stdout, "(error) ERR unknown command 'FOO', with args beginning with: \n");
    assert.equal((await cli('FOO', 'x')).stdout, "ERR unknown command 'FOO', with args beginning with: 'x' \n\n");
    assert.equal((await cli('--no-raw', 'GET')).stdout, "(error) ERR wrong number of arguments for 'get' command\n");
    assert.equal((await cli('--no-raw', 'SET', 'a', 'b', 'EX', '0')).stdout, "(error) ERR invalid expire time in 'set' command\n");
    assert.equal((await cli('--no-raw', 'SET', 'a', 'b', 'NX', 'XX')).stdout, '(error) ERR syntax error\n');
    assert.equal((await cli('--no-raw', 'SELECT', '1')).stdout, '(error) ERR DB index is out of range\n');
    assert.equal((await cli('--no-raw', 'EXEC')).stdout, '(error) ERR EXEC without MULTI\n');
  });

  it('INFO keyspace, DBSIZE, COMMAND COUNT, CONFIG GET', T, async () => {
    const size = Number((await cli('DBSIZE')).stdout.trim());
    assert.ok(size > 1000, `DBSIZE ${size}`);
    assert.match((await cli('INFO', 'keyspace')).stdout, new RegExp(`db0:keys=${size}\\b`));
    assert.ok(Number((await cli('COMMAND', 'COUNT')).stdout.trim()) >= 40);
    assert.match((await cli('--no-raw', 'CONFIG', 'GET', 'save')).stdout, /^1\) "save"\n2\) "/);
  });

  it('with -a: a wrong password is WRONGPASS, the right one works', T, async () => {
    const secure = await startMaster({ args: ['--requirepass', 'cli-pw'] });
    try {
      const p = String(secure.port);
      assert.match((await run('redis-cli', ['-p', p, '--no-raw', 'GET', 'x'])).stdout, /^\(error\) NOAUTH Authentication required/);
      const wrong = await run('redis-cli', ['-p', p, '--no-auth-warning', '-a', 'nope', 'GET', 'x']);
      assert.match(wrong.stdout + wrong.stderr, /WRONGPASS invalid username-password pair/);
      assert.equal((await run('redis-cli', ['-p', p, '--no-auth-warning', '-a', 'cli-pw', 'SET', 'x', '1'])).stdout, 'OK\n');
      assert.equal((await run('redis-cli', ['-p', p, '--no-auth-warning', '-3', '-a', 'cli-pw', 'GET', 'x'])).stdout, '1\n');
    } finally {
      await secure.stop();
    }
  });
});

describe('redis-benchmark', { skip: BENCH && CLI ? false : 'redis-benchmark or redis-cli is not installed' }, () => {
  for (const pipeline of [1, 16]) {
    it(`-t ping,set,get -n 2000 -c 10 -P ${pipeline}: completes, prints requests per second, keys exist`, T, async () => {
      const r = await run('redis-benchmark', ['-p', String(master.port), '-t', 'ping,set,get', '-n', '2000', '-c', '10', '-P', String(pipeline), '-q'], undefined, 25_000);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      // -q prints one line per test, "NAME: 12345.67 requests per second, p50=..."; the
      // progress lines before it end in \r.
      const lines = r.stdout.split(/[\r\n]+/).filter((l) => / requests per second/.test(l));
      for (const test of ['PING_INLINE', 'PING_MBULK', 'SET', 'GET']) {
        const line = lines.find((l) => l.startsWith(`${test}: `));
        assert.ok(line !== undefined, `a line for ${test} in ${JSON.stringify(r.stdout.slice(-800))}`);
        assert.match(line, new RegExp(`^${test}: \\d+(\\.\\d+)? requests per second`));
      }
      assert.doesNotMatch(r.stdout + r.stderr, /error/i);
      assert.ok(Number((await cli('DBSIZE')).stdout.trim()) > 0);
      // Without -r every SET writes the literal key with the default 3-byte payload (random
      // letters in redis-benchmark 7, "xxx" before).
      assert.match((await cli('GET', 'key:__rand_int__')).stdout, /^[A-Za-z]{3}\n$/);
    });
  }
});
