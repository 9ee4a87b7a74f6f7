// The WebSocket endpoints of a real master over the wire, with the `ws` package as client and
// ioredis for the TCP side: /v1/subscribe (messages from TCP PUBLISH and from other WebSocket
// clients, across two HTTP front-end threads), /v1/wal (records of writes made over TCP and
// HTTP, resumed after a disconnect without gap or duplicate), slow consumers closed with 1008,
// and the token checked at the upgrade.
// Owns: the masters it starts (stopped by PID in `after`), their temp dirs, every client.
// Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { sleep, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';

/** Every test is bounded (fetch itself waits minutes by default). */
const BOUNDED = { timeout: 30_000 };

const BOUND_MS = 10_000;
const TOKEN = 'ws-token-7';

let m: MasterProcess;
let redis: Redis;
const clients: Client[] = [];

before(async () => {
  m = await startMaster({ http: true, httpThreads: 2 });
  redis = new Redis({ port: m.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  await within(redis.connect(), 5000, 'ioredis connect');
});

after(async () => {
  for (const c of clients) c.ws.terminate();
  redis?.disconnect();
  await stopAll();
});

async function until(cond: () => boolean, what: string, ms = BOUND_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A client that records every frame and its close. */
class Client {
  readonly frames: { data: Buffer; binary: boolean }[] = [];
  closed: { code: number; reason: string } | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary: boolean) => this.frames.push({ data, binary }));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  static async open(port: number, path: string, token: string | null = null): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
    const client = new Client(ws);
    clients.push(client);
    await within(new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }), BOUND_MS, `open ${path}`);
    return client;
  }

  get json(): Record<string, unknown>[] {
    return this.frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString()) as Record<string, unknown>);
  }

  send(value: unknown): void {
    this.ws.send(JSON.stringify(value));
  }

  async nextJson(pred: (m: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await until(() => (found = this.json.find(pred)) !== undefined, what);
    return found!;
  }

  /** The underlying TCP socket (to stop reading, as a slow consumer does). */
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }
}

const sub = (port: number, query: string): Promise<Client> => Client.open(port, `/v1/subscribe?${query}`);

test('subscribe: messages from TCP PUBLISH (ioredis) and from another ws client arrive as {channel, payload}', BOUNDED, async () => {
  const c = await sub(m.httpPort, 'channels=a&patterns=n.*');
  assert.deepEqual(await c.nextJson((f) => f.op === 'subscribed', 'subscribed'), { op: 'subscribed', channels: ['a'], patterns: ['n.*'], count: 2 });
  assert.equal(await redis.publish('a', 'from tcp'), 1);
  assert.deepEqual(await c.nextJson((f) => f.payload === 'from tcp', 'the TCP message'), { channel: 'a', payload: 'from tcp' });
  assert.equal(await redis.publish('n.sport', 'pattern hit'), 1);
  assert.deepEqual(await c.nextJson((f) => f.payload === 'pattern hit', 'the pattern message'), { channel: 'n.sport', payload: 'pattern hit', pattern: 'n.*' });
  assert.equal(await redis.publish('nx', 'no match'), 0);

  const pub = await sub(m.httpPort, '');
  pub.send({ op: 'publish', channel: 'a', payload: 'from ws' });
  assert.deepEqual(await pub.nextJson((f) => f.op === 'published', 'published'), { op: 'published', receivers: 1 });
  assert.deepEqual(await c.nextJson((f) => f.payload === 'from ws', 'the ws message'), { channel: 'a', payload: 'from ws' });

  // A TCP subscriber gets what a ws client publishes.
  const tcpSub = redis.duplicate();
  try {
    const got: string[] = [];
    tcpSub.on('message', (_ch: string, msg: string) => got.push(msg));
    await tcpSub.subscribe('to-tcp');
    pub.send({ op: 'publish', channel: 'to-tcp', payload: 'ws to tcp' });
    await until(() => got.includes('ws to tcp'), 'the TCP subscriber');
  } finally {
    tcpSub.disconnect();
  }
  assert.equal(c.json.filter((f) => f.channel !== undefined).length, 3, 'nothing else arrived');
});

test('a message published through one HTTP thread reaches subscribers on every thread', BOUNDED, async () => {
  // Eight subscribers and four publishers, each on a connection of its own: the kernel spreads
  // them over the two threads, so some publisher and subscriber are on different threads
  // (all twelve on one thread: chance 2^-11).
  const subscribers = await Promise.all(Array.from({ length: 8 }, () => sub(m.httpPort, 'channels=fan')));
  for (const s of subscribers) await s.nextJson((f) => f.op === 'subscribed', 'subscribed');
  const publishers = await Promise.all(Array.from({ length: 4 }, () => sub(m.httpPort, '')));
  publishers.forEach((p, i) => p.send({ op: 'publish', channel: 'fan', payload: `msg-${i}` }));
  for (const p of publishers) assert.deepEqual(await p.nextJson((f) => f.op === 'published', 'published'), { op: 'published', receivers: 8 });
  for (const [i, s] of subscribers.entries()) {
    await until(() => s.json.filter((f) => f.channel === 'fan').length === 4, `subscriber ${i} to get 4 messages`);
    const payloads = s.json.filter((f) => f.channel === 'fan').map((f) => f.payload as string).sort();
    assert.deepEqual(payloads, ['msg-0', 'msg-1', 'msg-2', 'msg-3']);
  }
  assert.equal(await redis.publish('fan', 'tcp too'), 8);
  for (const s of subscribers) await s.nextJson((f) => f.payload === 'tcp too', 'the TCP message');
  for (const c of [...subscribers, ...publishers]) c.ws.close();
});

interface WalFrame { lsn: number; kind: unknown; ops: Array<{ op: string; key: string }> }

const walFrames = (c: Client): WalFrame[] => c.json as unknown as WalFrame[];

test('/v1/wal?from=1&format=json: records of SETs made through TCP and HTTP, an LSN in each, live', BOUNDED, async () => {
  await redis.set('wal/tcp/1', 'x');
  const put = await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/wal/http/1`, { method: 'PUT', body: 'y' });
  assert.equal(put.status, 201);
  const c = await Client.open(m.httpPort, '/v1/wal?from=1&format=json');
  const keysSeen = (): string[] => walFrames(c).flatMap((f) => f.ops.map((o) => o.key));
  await until(() => keysSeen().includes('wal/tcp/1') && keysSeen().includes('wal/http/1'), 'the history');
  // Live: written after the follow began.
  await redis.set('wal/tcp/2', 'x');
  assert.equal((await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/wal/http/2`, { method: 'PUT', body: 'z' })).status, 201);
  await until(() => keysSeen().includes('wal/tcp/2') && keysSeen().includes('wal/http/2'), 'the live records');
  const frames = walFrames(c);
  assert.equal(frames[0]!.lsn, 1, 'from=1 starts at LSN 1');
  frames.forEach((f, i) => assert.equal(f.lsn, 1 + i, 'consecutive LSNs, no gap, no duplicate'));
  const setOf = (key: string): string | undefined => frames.flatMap((f) => f.ops).find((o) => o.key === key)?.op;
  assert.equal(setOf('wal/tcp/1'), 'set');
  assert.match(String(setOf('wal/http/1')), /^set/);
  c.ws.close();
});

test('/v1/wal: resume after a disconnect from the last LSN + 1, without gap or duplicate', BOUNDED, async () => {
  const start = (await (await fetch(`http://127.0.0.1:${m.httpPort}/v1/status`)).json()) as { wal: { last_lsn: number } };
  const from = start.wal.last_lsn + 1;
  const first = await Client.open(m.httpPort, `/v1/wal?from=${from}&format=json`);
  for (let i = 0; i < 30; i++) await redis.set(`resume/a/${i}`, String(i));
  await until(() => walFrames(first).length >= 30, '30 records');
  const seen = walFrames(first).map((f) => f.lsn);
  first.ws.terminate();
  // Written while no one follows.
  const pipeline = redis.pipeline();
  for (let i = 0; i < 30; i++) pipeline.set(`resume/b/${i}`, String(i));
  await pipeline.exec();
  const last = seen[seen.length - 1]!;
  const second = await Client.open(m.httpPort, `/v1/wal?from=${last + 1}&format=json`);
  for (let i = 0; i < 10; i++) await redis.set(`resume/c/${i}`, String(i));
  const wanted = (): boolean => walFrames(second).some((f) => f.ops.some((o) => o.key === 'resume/c/9'));
  await until(wanted, 'the records after the resume');
  const all = [...seen, ...walFrames(second).map((f) => f.lsn)];
  all.forEach((lsn, i) => assert.equal(lsn, from + i, 'no gap, no duplicate across the reconnect'));
  const keys = [...walFrames(first), ...walFrames(second)].flatMap((f) => f.ops.map((o) => o.key));
  for (const part of ['a', 'b', 'c']) {
    const n = part === 'c' ? 10 : 30;
    for (let i = 0; i < n; i++) assert.ok(keys.includes(`resume/${part}/${i}`), `resume/${part}/${i}`);
  }
  second.ws.close();
});

test('a slow subscriber (socket not read while 48 MB are published) is closed 1008 "slow consumer"', BOUNDED, async () => {
  const c = await sub(m.httpPort, 'channels=flood');
  await c.nextJson((f) => f.op === 'subscribed', 'subscribed');
  c.socket.pause();
  const payload = 'p'.repeat(1024 * 1024);
  for (let i = 0; i < 48; i++) await redis.publish('flood', payload);
  // Let the server notice, then read what it buffered: the close frame comes last.
  await sleep(300);
  c.socket.resume();
  await until(() => c.closed !== null, 'the server to close the slow subscriber', 20_000);
  console.log(`slow subscriber closed: ${c.closed!.code} ${c.closed!.reason}`);
  assert.equal(c.closed!.code, 1008);
  assert.match(c.closed!.reason, /slow consumer/);
  assert.ok(c.json.filter((f) => f.channel === 'flood').length < 48, 'not everything was delivered');
  // Others are fine.
  const other = await sub(m.httpPort, 'channels=after-flood');
  await other.nextJson((f) => f.op === 'subscribed', 'subscribed');
  assert.equal(await redis.publish('after-flood', 'ok'), 1);
  await other.nextJson((f) => f.payload === 'ok', 'a message after the flood');
});

test('a slow WAL follower (socket not read while the WAL grows) is closed 1008 "slow consumer"', { timeout: 60_000 }, async () => {
  const start = (await (await fetch(`http://127.0.0.1:${m.httpPort}/v1/status`)).json()) as { wal: { last_lsn: number } };
  const c = await Client.open(m.httpPort, `/v1/wal?from=${start.wal.last_lsn + 1}&format=json`);
  c.socket.pause();
  // Long keys make big records: the follower falls more than its bound (64 MiB) behind.
  const long = 'w'.repeat(3500);
  const deadline = Date.now() + 40_000;
  let written = 0;
  while (c.closed === null && written < 40_000 && Date.now() < deadline) {
    const p = redis.pipeline();
    for (let i = 0; i < 1000; i++) p.set(`${long}/${written + i}`, 'v');
    await p.exec();
    written += 1000;
    if (written % 5000 === 0) {
      // Read a little now and then so a close frame already sent can arrive.
      c.socket.resume();
      await sleep(5);
      c.socket.pause();
    }
  }
  c.socket.resume();
  await until(() => c.closed !== null, `the server to close the slow follower (${written} records written)`, 20_000);
  console.log(`slow WAL follower closed after ${written} records written, ${walFrames(c).length} received: ${c.closed!.code} ${c.closed!.reason}`);
  assert.equal(c.closed!.code, 1008);
  assert.match(c.closed!.reason, /slow consumer/);
  const lsns = walFrames(c).map((f) => f.lsn);
  lsns.forEach((lsn, i) => assert.equal(lsn, start.wal.last_lsn + 1 + i, 'what did arrive has no gap'));
});

test('with --http-token, the upgrade is 401 without the token and opens with it', BOUNDED, async () => {
  const secured = await startMaster({ http: true, args: ['--http-token', TOKEN] });
  for (const [path, token] of [['/v1/subscribe?channels=x', null], ['/v1/wal?from=1', null], ['/v1/subscribe', 'wrong']] as const) {
    const ws = new WebSocket(`ws://127.0.0.1:${secured.httpPort}${path}`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
    const refused = await within(new Promise<{ status: number; body: string; auth: string | undefined }>((resolve, reject) => {
      ws.once('open', () => reject(new Error(`${path} was upgraded without the token`)));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, auth: res.headers['www-authenticate'] }));
      });
      ws.once('error', () => undefined);
    }), BOUND_MS, `the refusal of ${path}`);
    assert.equal(refused.status, 401, path);
    assert.equal(refused.auth, 'Bearer');
    assert.equal((JSON.parse(refused.body) as { code: string }).code, 'UNAUTHORIZED');
  }
  const ok = await Client.open(secured.httpPort, '/v1/subscribe?channels=sec', TOKEN);
  await ok.nextJson((f) => f.op === 'subscribed', 'subscribed with the token');
  ok.ws.close();
  await secured.stop();
});
