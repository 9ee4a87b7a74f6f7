// Black-box tests of the TypeScript client (src/client) over real TCP: against the BriseDB
// master (`node cmd/master.js`, started here as a child process on a free port, required),
// and against redis-server for the commands both speak (when redis-server is installed).
// Failure modes (a server that never answers, answers late, or drops the connection) are
// played by a small scripted RESP server in this file, so they are exact, not timing luck.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type Message, type Subscription } from '../src/client/client.js';
import { BriseError, ConnectionError, LimitError, TimeoutError } from '../src/client/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MASTER = path.join(ROOT, 'cmd', 'master.js');

// --- servers -----------------------------------------------------------------------------

interface Server {
  readonly name: 'brisedb' | 'redis';
  readonly addr: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly dir: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function hasRedis(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

async function startServer(name: Server['name'], extra: string[] = []): Promise<Server> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `brisedb-client-${name}-`));
  const args =
    name === 'brisedb'
      ? [MASTER, '--addr', `127.0.0.1:${port}`, '--http', '', '--data', path.join(dir, 'data'), ...extra]
      : ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra];
  const child = spawn(name === 'brisedb' ? process.execPath : 'redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const server: Server = { name, addr: `127.0.0.1:${port}`, port, child, dir };
  await waitListening(server, () => log);
  return server;
}

/** Polls until the port accepts and answers PING, or fails with the server's own log. */
async function waitListening(server: Server, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) break;
    try {
      const c = await Client.dial(server.addr, { connectTimeoutMs: 500, commandTimeoutMs: 2000 });
      await c.ping();
      await c.close();
      return;
    } catch {
      await sleep(50);
    }
  }
  await stopServer(server);
  throw new Error(`${server.name} did not start on ${server.addr}:\n${log()}`);
}

async function stopServer(server: Server, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const { child } = server;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  fs.rmSync(server.dir, { recursive: true, force: true });
}

// --- a scripted RESP server, for failures ----------------------------------------------------

/** Answers each command through `answer`; returns the replies' raw RESP, or null to stay silent. */
interface Scripted {
  readonly addr: string;
  readonly sockets: Set<net.Socket>;
  commands: string[][];
  close(): Promise<void>;
}

async function scriptedServer(answer: (argv: string[], socket: net.Socket) => string | null): Promise<Scripted> {
  const sockets = new Set<net.Socket>();
  const state: Scripted = { addr: '', sockets, commands: [], close: async () => undefined };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const parsed = parseCommand(buffered);
        if (parsed === null) break;
        buffered = buffered.subarray(parsed.used);
        state.commands.push(parsed.argv);
        const reply = answer(parsed.argv, socket);
        if (reply !== null && !socket.destroyed) socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return Object.assign(state, {
    addr: `127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** Just enough of a RESP request parser for the scripted server: arrays of bulk strings. */
function parseCommand(buf: Buffer): { argv: string[]; used: number } | null {
  let at = 0;
  const line = (): string | null => {
    const end = buf.indexOf('\r\n', at);
    if (end < 0) return null;
    const text = buf.toString('latin1', at, end);
    at = end + 2;
    return text;
  };
  const head = line();
  if (head === null) return null;
  const argv: string[] = [];
  for (let n = Number(head.slice(1)); n > 0; n--) {
    const len = line();
    if (len === null) return null;
    const size = Number(len.slice(1));
    if (buf.length < at + size + 2) return null;
    argv.push(buf.toString('utf8', at, at + size));
    at += size + 2;
  }
  return { argv, used: at };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the next message, or fails after `ms` (a test must never hang on pub/sub). */
async function nextMessage(sub: Subscription, ms = 3000): Promise<Message> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([sub.next(), timeout]);
    assert.equal(r.done, false);
    return r.value as Message;
  } finally {
    clearTimeout(timer);
  }
}

/** Bytes 0..255 and CR LF in the middle: what a text-only client would break. */
const BINARY = Buffer.from([...Array(256).keys()].map((i) => 255 - i).concat([13, 10, 0, 13, 10]));

// --- the shared suite, against each real server ------------------------------------------------

function suite(name: Server['name']): void {
  let server: Server;
  let c: Client;
  let other: Client;
  const brisedb = name === 'brisedb';

  before(async () => {
    server = await startServer(name);
    c = await Client.dial(server.addr, { commandTimeoutMs: 10_000 });
    other = await Client.dial(server.addr, { commandTimeoutMs: 10_000 });
  });
  after(async () => {
    await c?.close();
    await other?.close();
    if (server) await stopServer(server);
  });

  test('set, get, getString, delete; a missing key is null', async () => {
    await c.set('name', 'Alice');
    assert.equal(await c.getString('name'), 'Alice');
    assert.deepEqual(await c.get('name'), Buffer.from('Alice'));
    assert.equal(await c.delete('name', 'never-there'), 1);
    assert.equal(await c.get('name'), null);
    assert.equal(await c.getString('name'), null);
  });

  test('binary-safe keys and values, and a 1 MiB value, byte for byte', async () => {
    const big = Buffer.alloc(1 << 20, 0);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    await c.set(BINARY, BINARY);
    await c.set(new Uint8Array([0, 1, 2]), big);
    assert.deepEqual(await c.get(BINARY), BINARY);
    assert.deepEqual(await c.get(Buffer.from([0, 1, 2])), big);
    assert.equal(await c.exists(BINARY), 1);
    assert.equal(await c.delete(BINARY, Buffer.from([0, 1, 2])), 2);
  });

  test('setEX, ttl, pttl, expire, pexpire, persist', async () => {
    await c.setEX('tok', 'xyz', 60);
    const ttl = await c.ttl('tok');
    assert.ok(ttl > 50 && ttl <= 60, `ttl ${ttl}`);
    const pttl = await c.pttl('tok');
    assert.ok(pttl > 50_000 && pttl <= 60_000, `pttl ${pttl}`);
    assert.equal(await c.persist('tok'), true);
    assert.equal(await c.ttl('tok'), -1);
    assert.equal(await c.persist('tok'), false);
    assert.equal(await c.expire('tok', 100), true);
    assert.ok((await c.ttl('tok')) > 90);
    assert.equal(await c.pexpire('tok', 50), true);
    assert.equal(await c.expire('absent', 10), false);
    assert.equal(await c.ttl('absent'), -2);
    await sleep(120);
    assert.equal(await c.get('tok'), null, 'expired after its PEXPIRE');
    await assert.rejects(c.setEX('k', 'v', 1.5), RangeError);
  });

  test('exists, mset, mget, dbsize, ping', async () => {
    await c.mset({ m1: 'a', m2: 'b' });
    await c.mset([[Buffer.from('m3'), Buffer.from('c')]]);
    assert.deepEqual(await c.mget('m1', 'nope', 'm3'), [Buffer.from('a'), null, Buffer.from('c')]);
    assert.equal(await c.exists('m1', 'm2', 'nope', 'm1'), 3);
    assert.ok((await c.dbsize()) >= 3);
    assert.equal(await c.ping(), 'PONG');
    assert.equal(await c.ping('hello'), 'hello');
    await c.delete('m1', 'm2', 'm3');
  });

  test('keys, scan and scanIterator see every key exactly as written', async () => {
    const written = new Set<string>();
    for (let i = 0; i < 60; i++) written.add(`scan:${i}`);
    await c.mset([...written].map((k): [string, string] => [k, 'v']));
    await c.set('other', 'v');
    const listed = (await c.keys('scan:*')).map(String).sort();
    assert.deepEqual(listed, [...written].sort());
    const page = await c.scan(0, { match: 'scan:*', count: 10 });
    assert.equal(typeof page.cursor, 'string');
    const seen = new Set<string>();
    for await (const key of c.scanIterator({ match: 'scan:*', count: 7 })) seen.add(key.toString());
    assert.deepEqual([...seen].sort(), [...written].sort());
    assert.equal(await c.delete(...written, 'other'), 61);
  });

  test('pipelining: 1000 commands in one exec, replies in order; 1000 concurrent calls too', async () => {
    const p = c.pipeline();
    const sets: Promise<void>[] = [];
    const gets: Promise<Buffer | null>[] = [];
    for (let i = 0; i < 500; i++) sets.push(p.set(`p:${i}`, `value-${i}`));
    for (let i = 0; i < 500; i++) gets.push(p.get(`p:${i}`));
    assert.equal(p.length, 1000);
    const settled = await p.exec();
    assert.equal(settled.length, 1000);
    assert.ok(settled.every((s) => s.status === 'fulfilled'));
    for (let i = 0; i < 500; i++) assert.equal((await gets[i])?.toString(), `value-${i}`);
    await Promise.all(sets);
    const direct = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.get(`p:${i % 500}`)));
    direct.forEach((value, i) => assert.equal(value?.toString(), `value-${i % 500}`));
    assert.equal(await c.delete(...Array.from({ length: 500 }, (_, i) => `p:${i}`)), 500);
  });

  test('a server error inside a pipeline fails that command only', async () => {
    const p = c.pipeline();
    const ok = p.set('pe', '1');
    const bad = p.command(['GET']);
    const after = p.get('pe');
    const settled = await p.exec();
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled']);
    await ok;
    await assert.rejects(bad, (e: unknown) => e instanceof BriseError && e.code === 'ERR');
    assert.equal((await after)?.toString(), '1');
    await assert.rejects(p.exec(), /already executed/);
  });

  test('wrong arity is a BriseError with code ERR, and the connection goes on', async () => {
    await assert.rejects(c.command(['GET']), (e: unknown) => e instanceof BriseError && e.code === 'ERR' && /wrong number of arguments/.test(e.message));
    await assert.rejects(c.command(['NOSUCHCOMMAND', 'x']), (e: unknown) => e instanceof BriseError && e.code === 'ERR');
    assert.equal(await c.ping(), 'PONG');
  });

  test('subscribe and psubscribe across clients; publish counts receivers; close ends the iteration', async () => {
    const sub = await c.subscribe('news', 'sport');
    const psub = await other.psubscribe('w.*');
    assert.equal(await c.publish('news', 'breaking'), 1);
    assert.equal(await other.publish('w.eu', BINARY), 1);
    assert.equal(await c.publish('sport', 'goal'), 1);
    const m1 = await nextMessage(sub);
    assert.deepEqual([m1.channel.toString(), m1.payload.toString(), m1.pattern], ['news', 'breaking', undefined]);
    const m2 = await nextMessage(sub);
    assert.deepEqual([m2.channel.toString(), m2.payload.toString()], ['sport', 'goal']);
    const pm = await nextMessage(psub);
    assert.deepEqual([pm.pattern?.toString(), pm.channel.toString()], ['w.*', 'w.eu']);
    assert.deepEqual(pm.payload, BINARY);

    // A reader waiting when close() comes is released with done, not left hanging.
    const waiting = sub.next();
    await sub.close();
    assert.deepEqual(await waiting, { done: true, value: undefined });
    // for await ... break closes the subscription too.
    assert.equal(await c.publish('w.us', 'x'), 1);
    for await (const m of psub) {
      assert.equal(m.channel.toString(), 'w.us');
      break;
    }
    assert.equal(psub.closed, true);
    // The server notices the closed connections shortly: nobody receives any more.
    let receivers = -1;
    for (let i = 0; i < 100 && receivers !== 0; i++) {
      receivers = (await c.publish('news', 'late')) + (await c.publish('w.x', 'late'));
      if (receivers !== 0) await sleep(20);
    }
    assert.equal(receivers, 0);
  });

  test('RESP3 (HELLO 3): commands and push-frame subscriptions', async () => {
    const c3 = await Client.dial(server.addr, { resp3: true });
    try {
      await c3.set('r3', BINARY);
      assert.deepEqual(await c3.get('r3'), BINARY);
      assert.equal(await c3.get('r3-absent'), null);
      assert.equal(await c3.exists('r3'), 1);
      const sub = await c3.subscribe('r3chan');
      assert.equal(await c.publish('r3chan', 'pushed'), 1);
      assert.equal((await nextMessage(sub)).payload.toString(), 'pushed');
      await sub.close();
      await c3.delete('r3');
    } finally {
      await c3.close();
    }
  });

  test('count (BriseDB only: Redis has no COUNT)', { skip: !brisedb && 'COUNT is a BriseDB command' }, async () => {
    await c.mset({ ca: 'same', cb: 'same', cc: 'diff' });
    assert.equal(await c.count('same'), 2);
    assert.equal(await c.count('none'), 0);
    await c.delete('ca', 'cb', 'cc');
  });

  test('nested transactions: begin/begin/set/rollback/commit, isolated, read-your-writes', { skip: !brisedb && 'BEGIN is a BriseDB command' }, async () => {
    await c.begin();
    await c.set('tx:a', '1');
    await c.begin();
    assert.equal(c.transactionDepth, 2);
    await c.set('tx:b', '2');
    assert.equal(await c.getString('tx:b'), '2', 'read-your-writes inside');
    await c.rollback();
    assert.equal(await c.get('tx:b'), null, 'the inner level is gone');
    assert.equal(await other.get('tx:a'), null, 'not visible to another connection before commit');
    await c.commit();
    assert.equal(c.transactionDepth, 0);
    assert.equal(await other.getString('tx:a'), '1');
    assert.equal(await other.get('tx:b'), null);
    await assert.rejects(c.commit(), (e: unknown) => e instanceof BriseError);
    assert.equal(c.transactionDepth, 0);
    await c.delete('tx:a');
  });

  test('against Redis, BEGIN is an unknown command: a typed error, depth unchanged', { skip: brisedb && 'BriseDB has BEGIN' }, async () => {
    await assert.rejects(c.begin(), (e: unknown) => e instanceof BriseError && e.code === 'ERR');
    assert.equal(c.transactionDepth, 0);
  });

  test('close(): replies already due arrive, later calls reject with CLIENT_CLOSED', async () => {
    const d = await Client.dial(server.addr);
    const pending = d.set('closing', 'v');
    await d.close();
    await pending;
    await assert.rejects(d.get('closing'), (e: unknown) => e instanceof ConnectionError && e.code === 'CLIENT_CLOSED');
    assert.equal(await c.getString('closing'), 'v');
    await c.delete('closing');
  });

  test('server killed mid-request: every pending request rejects with ConnectionError, none hangs', async () => {
    const victim = await startServer(name);
    const d = await Client.dial(victim.addr, { reconnect: false });
    // A steady stream of writes, the kill in the middle of it: some are answered, the rest
    // are in flight or sent after it, and each of those must reject, none may hang.
    const value = Buffer.alloc(4096, 7);
    await d.set('kill:warm', value);
    const inflight: Promise<unknown>[] = [];
    let answered = 0;
    let settled = 0;
    let killedAt = 0;
    const started = Date.now();
    while (Date.now() - started < 5000 && (killedAt === 0 || Date.now() - killedAt < 100)) {
      if (answered > 0 && killedAt === 0) {
        victim.child.kill('SIGKILL');
        killedAt = Date.now();
      }
      // Keep a few hundred in flight (the client's own limit is 10,000).
      for (let i = 0; i < 20 && inflight.length - settled < 500; i++) {
        inflight.push(d.set(`kill:${inflight.length}`, value).then(() => (answered++, settled++, 'ok'), (e: unknown) => (settled++, e)));
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    let hang: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (hang = setTimeout(() => resolve('hung'), 8000)));
    const outcomes = await Promise.race([Promise.all(inflight), hung]);
    clearTimeout(hang);
    assert.notEqual(outcomes, 'hung');
    const failures = (outcomes as unknown[]).filter((o) => o !== 'ok');
    assert.ok(failures.length > 0, 'the kill landed before every reply');
    assert.ok(failures.length < inflight.length, 'some writes were answered before the kill');
    for (const f of failures) assert.ok(f instanceof ConnectionError && f.code === 'CONNECTION_LOST', String(f));
    await assert.rejects(d.ping(), ConnectionError);
    await d.close();
    await stopServer(victim);
  });
}

describe('against the BriseDB master', () => suite('brisedb'));
describe('against redis-server', { skip: !hasRedis() && 'redis-server is not installed (apt-get install redis-server)' }, () => suite('redis'));

// --- failure modes, against a scripted server ----------------------------------------------------

test('connection refused is a ConnectionError', async () => {
  const port = await freePort();
  await assert.rejects(Client.dial(`127.0.0.1:${port}`), (e: unknown) => e instanceof ConnectionError && e.code === 'CONNECTION_REFUSED');
  await assert.rejects(Client.dial(':99999'), RangeError);
});

test('a dial whose handshake gets no answer fails with CONNECT_TIMEOUT, not a hang', async () => {
  const server = await scriptedServer(() => null); // accepts, never answers AUTH
  try {
    const started = Date.now();
    await assert.rejects(Client.dial(server.addr, { password: 'p', connectTimeoutMs: 150 }), (e: unknown) => e instanceof TimeoutError && e.code === 'CONNECT_TIMEOUT');
    assert.ok(Date.now() - started < 2000);
    assert.deepEqual(server.commands, [['AUTH', 'p']]);
  } finally {
    await server.close();
  }
});

test('command timeout: TimeoutError, and the late reply is dropped, not given to the next request', async () => {
  // The first command is answered 400 ms late, together with the second's reply.
  const server = await scriptedServer((argv, socket) => {
    if (argv[0] === 'SLOW') {
      setTimeout(() => socket.write(':1\r\n:2\r\n'), 400);
      return null;
    }
    return null;
  });
  const d = await Client.dial(server.addr, { commandTimeoutMs: 250 });
  try {
    const started = Date.now();
    await assert.rejects(d.command(['SLOW']), (e: unknown) => e instanceof TimeoutError && e.code === 'COMMAND_TIMEOUT');
    assert.ok(Date.now() - started >= 240);
    const second = d.command(['FAST']);
    assert.equal(await second, 2, 'the second request gets its own reply');
  } finally {
    await d.close();
    await server.close();
  }
});

test('requests in flight are bounded: a LimitError past the limit, a too-long pipeline refused whole', async () => {
  const server = await scriptedServer(() => null); // never answers
  const d = await Client.dial(server.addr, { maxInFlight: 4, commandTimeoutMs: 5000 });
  try {
    const held = Array.from({ length: 4 }, () => d.ping().catch((e: unknown) => e));
    await assert.rejects(d.ping(), (e: unknown) => e instanceof LimitError && e.code === 'TOO_MANY_IN_FLIGHT');
    const p = d.pipeline();
    p.ping();
    const settled = await p.exec();
    assert.ok(settled[0]!.status === 'rejected' && settled[0].reason instanceof LimitError);
    await sleep(50);
    assert.equal(server.commands.length, 4, 'nothing past the limit was sent');
    await d.close({ graceMs: 50 });
    for (const h of await Promise.all(held)) assert.ok(h instanceof ConnectionError && h.code === 'CLIENT_CLOSED');
  } finally {
    await server.close();
  }
});

test('connection dropped mid-request: pending reject with ConnectionError; the next call reconnects', async () => {
  const server = await scriptedServer((argv, socket) => {
    if (argv[0] === 'DROP') socket.destroy();
    return argv[0] === 'PING' ? '+PONG\r\n' : null;
  });
  const d = await Client.dial(server.addr);
  try {
    const a = d.command(['DROP']);
    const b = d.ping();
    await assert.rejects(a, (e: unknown) => e instanceof ConnectionError && e.code === 'CONNECTION_LOST');
    await assert.rejects(b, ConnectionError);
    assert.equal(await d.ping(), 'PONG', 'outside a transaction the next call reconnects');
  } finally {
    await d.close();
    await server.close();
  }
});

test('connection lost inside a transaction: no silent reconnect until rollback()', async () => {
  const server = await scriptedServer((argv, socket) => {
    if (argv[0] === 'SET' && argv[1] === 'drop') {
      socket.destroy();
      return null;
    }
    return argv[0] === 'PING' ? '+PONG\r\n' : '+OK\r\n';
  });
  const d = await Client.dial(server.addr);
  try {
    await d.begin();
    await d.begin();
    await assert.rejects(d.set('drop', 'x'), (e: unknown) => e instanceof ConnectionError && e.code === 'CONNECTION_LOST');
    await assert.rejects(d.set('k', 'v'), (e: unknown) => e instanceof ConnectionError && e.code === 'TRANSACTION_LOST');
    await assert.rejects(d.commit(), (e: unknown) => e instanceof ConnectionError && e.code === 'TRANSACTION_LOST');
    const before = server.commands.length;
    await d.rollback();
    await assert.rejects(d.ping(), (e: unknown) => e instanceof ConnectionError && e.code === 'TRANSACTION_LOST');
    await d.rollback();
    assert.equal(server.commands.length, before, 'nothing was sent while the transaction was lost');
    assert.equal(d.transactionDepth, 0);
    assert.equal(await d.ping(), 'PONG', 'reconnected once every level was rolled back');
  } finally {
    await d.close();
    await server.close();
  }
});

test('a reply that is not RESP closes the connection with PROTOCOL_ERROR', async () => {
  const server = await scriptedServer(() => '!!not resp\r\n');
  const d = await Client.dial(server.addr, { reconnect: false });
  try {
    await assert.rejects(d.ping(), (e: unknown) => e instanceof ConnectionError && e.code === 'PROTOCOL_ERROR');
  } finally {
    await d.close();
    await server.close();
  }
});

test('replies are bounded: a bulk past replyLimits.maxBulkLength closes with PROTOCOL_ERROR', async () => {
  const server = await scriptedServer(() => `$2048\r\n${'x'.repeat(2048)}\r\n`);
  const d = await Client.dial(server.addr, { reconnect: false, replyLimits: { maxBulkLength: 1024 } });
  try {
    await assert.rejects(d.get('k'), (e: unknown) => e instanceof ConnectionError && e.code === 'PROTOCOL_ERROR');
  } finally {
    await d.close();
    await server.close();
  }
});

test('password: AUTH is sent first; a wrong one fails the dial with the server error', async () => {
  const server = await scriptedServer((argv) => {
    if (argv[0] === 'AUTH') return argv[1] === 'sesame' ? '+OK\r\n' : '-WRONGPASS invalid username-password pair\r\n';
    return '+PONG\r\n';
  });
  try {
    const d = await Client.dial(server.addr, { password: 'sesame' });
    assert.deepEqual(server.commands[0], ['AUTH', 'sesame']);
    await d.close();
    await assert.rejects(Client.dial(server.addr, { password: 'wrong' }), (e: unknown) => e instanceof BriseError && e.code === 'WRONGPASS');
  } finally {
    await server.close();
  }
});
