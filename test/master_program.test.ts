// Black-box tests of the master program: `node cmd/master.js` as a child process on a temp
// data dir. Every child is stopped by its own PID; every wait is bounded.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, afterEach, describe, it } from 'node:test';
import { startFailureLine } from '../src/master/main.js';

const MASTER = fileURLToPath(new URL('../../cmd/master.js', import.meta.url));
const START_MS = 10_000;
const STOP_MS = 10_000;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'brisedb-master-program-'));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let dirs = 0;
const dataDir = (): string => path.join(tmp, `data${dirs++}`);

interface Master {
  child: ChildProcess;
  /** stderr so far, as text and as parsed JSON log lines. */
  stderr(): string;
  logs(): Array<Record<string, unknown>>;
  stdout(): string;
  /** Exit code (or signal name), bounded by ms. */
  exit(ms?: number): Promise<number | string>;
}

function launch(args: string[], env: NodeJS.ProcessEnv = {}): Master {
  const child = spawn(process.execPath, [MASTER, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BRISEDB_LOG_LEVEL: 'info', BRISEDB_REQUIREPASS: undefined, ...env },
  });
  children.push(child);
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    logs: () => err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    exit: (ms = STOP_MS) => within(exited, ms, `master pid ${child.pid} to exit`),
  };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Resolves with the first log line whose msg is `msg`; rejects if the master exits first. */
async function waitForLog(m: Master, msg: string, ms = START_MS): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const line = m.logs().find((l) => l.msg === msg);
    if (line !== undefined) return line;
    if (m.child.exitCode !== null) throw new Error(`master exited ${m.child.exitCode} before "${msg}": ${m.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no "${msg}" within ${ms} ms: ${m.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts a master and waits for `listening`; answers it and its TCP port. */
async function start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ m: Master; port: number }> {
  const m = launch(['--http', '', ...args], env);
  const line = await waitForLog(m, 'listening');
  assert.equal(typeof line.port, 'number');
  return { m, port: line.port as number };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Sends one RESP command with node:net; answers the reply bytes once `expect` is complete. */
function ask(port: number, command: string, expect: string, ms = 5000): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let got = '';
      socket.on('data', (d) => {
        got += d.toString('utf8');
        if (got.length >= expect.length) {
          socket.destroy();
          resolve(got);
        }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(got));
      socket.write(command);
    }),
    ms,
    `a reply to ${JSON.stringify(command)}`,
  );
}

/** The lines of stderr that are not JSON logs: the program's own messages. */
const plainLines = (m: Master): string[] => m.stderr().split('\n').filter((l) => l !== '' && !l.startsWith('{'));

describe('master program', () => {
  it('starts on the port asked, logs `listening` with it, answers PING, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const { m, port: logged } = await start(['--addr', `127.0.0.1:${port}`, '--data', dataDir()]);
    assert.equal(logged, port);
    const listening = m.logs().find((l) => l.msg === 'listening')!;
    assert.equal(listening.tcp, `127.0.0.1:${port}`);
    assert.equal(listening.http, null);
    assert.equal(await ask(port, '*1\r\n$4\r\nPING\r\n', '+PONG\r\n'), '+PONG\r\n');
    m.child.kill('SIGTERM');
    assert.equal(await m.exit(), 0);
    assert.ok(m.logs().some((l) => l.msg === 'stopped'), m.stderr());
    assert.deepEqual(plainLines(m), []);
  });

  it('SIGINT stops it cleanly too; port 0 picks a free port; the data dir is free again after', async () => {
    const dir = dataDir();
    const first = await start(['--addr', '127.0.0.1:0', '--data', dir]);
    assert.ok(first.port > 0);
    first.m.child.kill('SIGINT');
    assert.equal(await first.m.exit(), 0);
    const again = await start(['--addr', '127.0.0.1:0', '--data', dir]);
    again.m.child.kill('SIGTERM');
    assert.equal(await again.m.exit(), 0);
  });

  it('a second master on the same port exits 1 with one clear line; the password is never logged', async () => {
    const { m: first, port } = await start(['--addr', '127.0.0.1:0', '--data', dataDir()]);
    const second = launch(['--addr', `127.0.0.1:${port}`, '--http', '', '--data', dataDir(), '--requirepass', 'hunter2-secret']);
    assert.equal(await second.exit(START_MS), 1);
    assert.deepEqual(plainLines(second), [`brisedb: cannot listen on 127.0.0.1:${port}: address already in use`]);
    assert.ok(!second.stderr().includes('hunter2'), second.stderr());
    assert.equal((second.logs()[0]!.config as Record<string, unknown>).requirepass, '(set)');
    first.child.kill('SIGTERM');
    assert.equal(await first.exit(), 0);
  });

  it('regression: a second master on the same HTTP port exits 1 (uWS binds with SO_REUSEPORT and would have shared it)', async () => {
    const httpPort = await freePort();
    const first = launch(['--addr', '127.0.0.1:0', '--http', `127.0.0.1:${httpPort}`, '--http-threads', '1', '--data', dataDir()]);
    const line = await waitForLog(first, 'listening');
    assert.equal(line.httpPort, httpPort);
    const second = launch(['--addr', '127.0.0.1:0', '--http', `127.0.0.1:${httpPort}`, '--http-threads', '1', '--data', dataDir()]);
    assert.equal(await second.exit(START_MS), 1);
    assert.deepEqual(plainLines(second), [`brisedb: cannot listen on 127.0.0.1:${httpPort} for HTTP: address already in use`]);
    assert.ok(!second.stderr().includes('Assertion failed'), second.stderr());
    first.child.kill('SIGTERM');
    assert.equal(await first.exit(), 0);
  });

  it('a second master on the same data dir exits 1 with a line naming the holder pid', async () => {
    const dir = dataDir();
    const { m: first } = await start(['--addr', '127.0.0.1:0', '--data', dir]);
    const second = launch(['--addr', '127.0.0.1:0', '--http', '', '--data', dir]);
    assert.equal(await second.exit(START_MS), 1);
    const lines = plainLines(second);
    assert.equal(lines.length, 1, second.stderr());
    assert.match(lines[0]!, new RegExp(`^brisedb: .*\\bpid ${first.child.pid}\\b`));
    first.child.kill('SIGTERM');
    assert.equal(await first.exit(), 0);
  });

  it('a second signal while stopping or starting exits 1 at once', async () => {
    const m = launch(['--addr', '127.0.0.1:0', '--http', '', '--data', dataDir()]);
    await waitForLog(m, 'starting'); // the handlers are installed in the same tick as this line
    m.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 20)); // two signals at once would merge into one
    m.child.kill('SIGTERM');
    assert.equal(await m.exit(), 1);
    assert.ok(m.logs().some((l) => typeof l.msg === 'string' && l.msg.startsWith('second signal')), m.stderr());
  });

  it('warns when listening beyond loopback without a password, not with one', async () => {
    const open = await start(['--addr', '0.0.0.0:0', '--data', dataDir()]);
    const warning = open.m.logs().find((l) => l.level === 40);
    assert.ok(warning !== undefined && String(warning.msg).includes('without requirepass'), open.m.stderr());
    open.m.child.kill('SIGTERM');
    assert.equal(await open.m.exit(), 0);
    const guarded = await start(['--addr', '0.0.0.0:0', '--data', dataDir()], { BRISEDB_REQUIREPASS: 'pw' });
    assert.equal(guarded.m.logs().filter((l) => l.level === 40).length, 0, guarded.m.stderr());
    guarded.m.child.kill('SIGTERM');
    assert.equal(await guarded.m.exit(), 0);
  });

  it('a bad flag or config exits 2 with one line and starts nothing', async () => {
    const dir = dataDir();
    const bad = launch(['--bogus', '1', '--data', dir]);
    assert.equal(await bad.exit(), 2);
    assert.equal(bad.stderr(), 'brisedb: unknown flag "--bogus"\n');
    const file = path.join(tmp, 'bad.json');
    fs.writeFileSync(file, '{"adr": ":6380"}');
    const badFile = launch(['--config', file, '--data', dir]);
    assert.equal(await badFile.exit(), 2);
    assert.equal(badFile.stderr(), `brisedb: config ${file}: unknown field "adr" (did you mean "addr"?)\n`);
    assert.equal(fs.existsSync(dir), false, 'nothing was created');
  });

  it('--volume-servers with one copy is refused with one line (exit 2): the servers would hold nothing', async () => {
    const dir = dataDir();
    const servers = launch(['--volume-servers', 'http://127.0.0.1:1', '--data', dir]);
    assert.equal(await servers.exit(), 2);
    assert.match(servers.stderr(), /^brisedb: --volume-servers \(volume_servers\): volume servers hold copies of blobs; with --replication-factor 1 \(replication_factor\) they would hold nothing\./);
    assert.equal(servers.stderr().split('\n').filter(Boolean).length, 1, servers.stderr());
    const file = path.join(tmp, 'cluster.json');
    fs.writeFileSync(file, JSON.stringify({ volume_servers: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] }));
    const cluster = launch(['--config', file, '--data', dir]);
    assert.equal(await cluster.exit(), 2);
    assert.equal(cluster.stderr().startsWith(`brisedb: --volume-servers (volume_servers in config ${file}): volume servers hold copies`), true, cluster.stderr());
    assert.equal(fs.existsSync(dir), false, 'nothing was created');
  });

  it('--help prints the usage on stdout and exits 0', async () => {
    const m = launch(['--help']);
    assert.equal(await m.exit(), 0);
    assert.match(m.stdout(), /^Usage: node cmd\/master\.js/);
    assert.equal(m.stderr(), '');
  });
});

describe('startFailureLine', () => {
  it('makes listen errors plain and keeps one line of any other', () => {
    const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:6380'), { code: 'EADDRINUSE', syscall: 'listen', address: '127.0.0.1', port: 6380 });
    assert.equal(startFailureLine(inUse), 'cannot listen on 127.0.0.1:6380: address already in use');
    const v6 = Object.assign(new Error('x'), { code: 'EACCES', syscall: 'listen', address: '::1', port: 80 });
    assert.equal(startFailureLine(v6), 'cannot listen on [::1]:80: permission denied (ports below 1024 need privileges)');
    assert.equal(startFailureLine(new Error('data dir d is held by pid 7 (started x)\n    at stack')), 'data dir d is held by pid 7 (started x)');
    assert.equal(startFailureLine('plain'), 'plain');
    const wrapped = new Error('actor tcp-0 failed to start: init failed: BAD_ARGUMENT: cannot listen on 127.0.0.1:1: address already in use');
    assert.equal(startFailureLine(wrapped), 'cannot listen on 127.0.0.1:1: address already in use');
    assert.equal(startFailureLine(new Error('actor wal failed to start: exit code 3')), 'actor wal failed to start: exit code 3');
    assert.equal(startFailureLine(new Error('')), 'could not start (no reason given)');
  });
});
