// The WebSocket endpoints over the wire: a uWebSockets.js app in this process with
// registerWebSockets over a real store (openStore: actors on worker threads), and the `ws`
// package as the client. Pub/sub by query and by frames, bad frames, the token, the WAL
// stream in CBOR and JSON, from an LSN, resumed without gap or duplicate, and a consumer that
// stops reading closed with 1008 and a reason. Every wait is bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import uWS from 'uWebSockets.js';
import { WebSocket } from 'ws';
import { decode } from 'cbor-x';
import { openStore, type OpenedStore } from '../src/wiring/open.js';
import { WalFeed } from '../src/db/wal_feed.js';
import { registerWebSockets, type WsContext } from '../src/frontend/ws_routes.js';

const BOUND_MS = 5_000;
const TOKEN = 'sesame';
const MAX_BACKPRESSURE = 256 * 1024;

let dir = '';
let store: OpenedStore;
let app: uWS.TemplatedApp;
let listenSocket: uWS.us_listen_socket;
let port = 0;
let nextId = 1;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'brise-ws-'));
  store = await openStore(dir, { sync: 'none' });
  const ctx: WsContext = {
    broker: store.engine.ports.broker,
    walFeed: new WalFeed(store.supervisor.peer('wal')),
    nextSubscriberId: () => 1_000_000 + nextId++,
    authorize: (req) => req.getHeader('authorization') === `Bearer ${TOKEN}`,
    maxBackpressure: MAX_BACKPRESSURE,
    maxPayload: 64 * 1024,
    idleTimeoutSeconds: 60,
  };
  app = uWS.App();
  registerWebSockets(app, ctx);
  listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (s) => (s === false ? reject(new Error('cannot listen')) : resolve(s)));
  });
  port = uWS.us_socket_local_port(listenSocket);
});

after(async () => {
  uWS.us_listen_socket_close(listenSocket);
  app.close();
  await store.db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A client that records every frame and its close; waits are bounded. */
class Client {
  readonly frames: { data: Buffer; binary: boolean }[] = [];
  closed: { code: number; reason: string } | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary: boolean) => this.frames.push({ data, binary }));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  static async open(path: string, token: string | null = TOKEN): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
    const client = new Client(ws);
    await bounded(new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }), `open ${path}`);
    return client;
  }

  /** The JSON frames (text). */
  get json(): Record<string, unknown>[] {
    return this.frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString()) as Record<string, unknown>);
  }

  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  /** Waits for the first JSON frame after index `from` that matches. */
  async nextJson(pred: (m: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
    let found: Record<string, unknown> | undefined;
    await until(() => (found = this.json.find(pred)) !== undefined, what);
    return found!;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close();
    await until(() => this.closed !== null, 'the close');
  }
}

async function until(cond: () => boolean, what: string, ms = BOUND_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${BOUND_MS} ms`)), BOUND_MS);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** The HTTP status an upgrade is answered with when it is refused. */
async function refusedStatus(path: string, token: string | null): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
  return bounded(new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error(`${path} was upgraded`)));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', () => undefined);
  }), `the refusal of ${path}`);
}

async function lastLsn(): Promise<number> {
  return store.engine.ports.wal.lastLsn();
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

// ---- /v1/subscribe ----

test('subscribe by query: messages published from the store API arrive as JSON frames', async () => {
  const c = await Client.open('/v1/subscribe?channels=q.a,q.b&patterns=qnews.*');
  const ack = await c.nextJson((m) => m.op === 'subscribed', 'the subscribed frame');
  assert.deepEqual(ack, { op: 'subscribed', channels: ['q.a', 'q.b'], patterns: ['qnews.*'], count: 3 });
  assert.equal(await store.db.publish('q.a', 'hello'), 1);
  assert.deepEqual(await c.nextJson((m) => m.channel === 'q.a', 'the q.a message'), { channel: 'q.a', payload: 'hello' });
  assert.equal(await store.db.publish('qnews.sport', 'goal'), 1);
  assert.deepEqual(await c.nextJson((m) => m.channel === 'qnews.sport', 'the pattern message'), { channel: 'qnews.sport', payload: 'goal', pattern: 'qnews.*' });
  // A payload that is not UTF-8 comes base64, and says so.
  const raw = Buffer.from([0xff, 0x00, 0xfe]);
  assert.equal(await store.db.publish('q.b', raw), 1);
  const bin = await c.nextJson((m) => m.encoding === 'base64', 'the binary message');
  assert.equal(Buffer.from(bin.payload as string, 'base64').compare(raw), 0);
  assert.equal(Buffer.from(bin.channel as string, 'base64').toString(), 'q.b');
  assert.equal(await store.db.publish('q.other', 'x'), 0);
  await c.close();
  // Closing unsubscribes everything.
  let receivers = -1;
  const deadline = Date.now() + BOUND_MS;
  while ((receivers = await store.db.publish('q.a', 'after')) !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(receivers, 0, 'the closed socket is still subscribed');
});

test('subscribe, publish, unsubscribe and ping frames; a bad frame gets an error, not a close', async () => {
  const sub = await Client.open('/v1/subscribe');
  const pub = await Client.open('/v1/subscribe');
  sub.send({ op: 'subscribe', channels: ['f.c'], patterns: ['f.p.*'] });
  await sub.nextJson((m) => m.op === 'subscribed', 'subscribed');
  pub.send({ op: 'publish', channel: 'f.c', payload: 'one' });
  assert.deepEqual(await pub.nextJson((m) => m.op === 'published', 'published'), { op: 'published', receivers: 1 });
  assert.deepEqual(await sub.nextJson((m) => m.channel === 'f.c', 'the message'), { channel: 'f.c', payload: 'one' });
  pub.send({ op: 'publish', channel: 'f.p.x', payload: 'two' });
  assert.deepEqual(await sub.nextJson((m) => m.channel === 'f.p.x', 'the pattern message'), { channel: 'f.p.x', payload: 'two', pattern: 'f.p.*' });
  sub.send({ op: 'unsubscribe', channels: ['f.c'] });
  assert.deepEqual(await sub.nextJson((m) => m.op === 'unsubscribed', 'unsubscribed'), { op: 'unsubscribed', channels: ['f.c'], patterns: [], count: 1 });
  assert.equal(await store.db.publish('f.c', 'three'), 0);
  sub.send({ op: 'ping' });
  await sub.nextJson((m) => m.op === 'pong', 'pong');
  const bad: [unknown, RegExp][] = [
    ['not json', /not valid JSON/],
    [{ op: 'dance' }, /unknown op/],
    [{ op: 'subscribe' }, /needs "channels" or "patterns"/],
    [{ op: 'publish', channel: 5, payload: 'x' }, /"channel" is a string/],
    [[1, 2], /JSON object/],
  ];
  for (const [frame, why] of bad) {
    const before = sub.json.length;
    sub.send(frame);
    await until(() => sub.json.length > before, `the answer to ${JSON.stringify(frame)}`);
    const answer = sub.json[before]!;
    assert.equal(answer.code, 'BAD_FRAME');
    assert.match(String(answer.error), why);
  }
  sub.ws.send(Buffer.from('{"op":"ping"}'), { binary: true });
  await sub.nextJson((m) => m.code === 'BAD_FRAME' && /JSON text/.test(String(m.error)), 'the binary frame refused');
  assert.equal(sub.closed, null, 'bad frames do not close');
  const pongs = sub.json.filter((m) => m.op === 'pong').length;
  sub.send({ op: 'ping' });
  await until(() => sub.json.filter((m) => m.op === 'pong').length === pongs + 1, 'still answering');
  // A frame over maxPayload is a protocol violation: uWS closes.
  sub.send({ op: 'ping', pad: 'x'.repeat(70 * 1024) });
  await until(() => sub.closed !== null, 'the close after an oversized frame');
  await pub.close();
});

test('without the token the upgrade is answered 401; bad query parameters 400', async () => {
  for (const path of ['/v1/subscribe?channels=a', '/v1/wal?from=1']) {
    const none = await refusedStatus(path, null);
    assert.equal(none.status, 401);
    assert.equal((JSON.parse(none.body) as { code: string }).code, 'UNAUTHORIZED');
    assert.equal((await refusedStatus(path, 'wrong')).status, 401);
  }
  for (const path of ['/v1/wal?from=-1', '/v1/wal?from=abc', '/v1/wal?format=xml']) {
    const r = await refusedStatus(path, TOKEN);
    assert.equal(r.status, 400, path);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'BAD_ARGUMENT');
  }
});

// ---- /v1/wal ----

/** CBOR frames decoded as the WAL payload [lsn, timeMs, kind, ops]. */
function cborRecords(c: Client): [number, number, number, unknown[][]][] {
  return c.frames.filter((f) => f.binary).map((f) => decode(f.data) as [number, number, number, unknown[][]]);
}

test('the WAL stream in CBOR: every record from an LSN, then live ones, each frame with its LSN', async () => {
  const first = (await lastLsn()) + 1;
  for (let i = 0; i < 10; i++) await store.db.set(`cbor-${i}`, `v${i}`);
  const c = await Client.open(`/v1/wal?from=${first}`);
  await until(() => c.frames.length >= 10, 'the history frames');
  let recs = cborRecords(c);
  assert.deepEqual(recs.map((r) => r[0]), range(first, first + 9));
  assert.ok(recs.every((r) => r[2] === 0 && typeof r[1] === 'number'));
  assert.deepEqual(recs.map((r) => Buffer.from(r[3][0]![1] as Uint8Array).toString()), range(0, 9).map((i) => `cbor-${i}`));
  assert.equal(recs[0]![3][0]![0], 1, 'op code Set');
  await store.db.delete('cbor-0');
  await until(() => c.frames.length >= 11, 'the live frame');
  recs = cborRecords(c);
  assert.equal(recs[10]![0], first + 10);
  assert.deepEqual(recs[10]![3][0]!.slice(0, 1), [2], 'op code Del');
  await c.close();
});

test('the WAL stream in JSON from the middle; live only without from; from past the end closes 1008', async () => {
  const start = (await lastLsn()) + 1;
  for (let i = 0; i < 6; i++) await store.db.set(`json-${i}`, 'v', { ttlMs: 60_000 });
  const c = await Client.open(`/v1/wal?from=${start + 3}&format=json`);
  await until(() => c.frames.length >= 3, 'the JSON frames');
  const recs = c.json;
  assert.deepEqual(recs.map((r) => r.lsn), [start + 3, start + 4, start + 5]);
  const op = (recs[0]!.ops as Record<string, unknown>[])[0]!;
  assert.equal(op.op, 'set');
  assert.equal(op.key, 'json-3');
  for (const f of ['volume', 'offset', 'length', 'expiresAt']) assert.equal(typeof op[f], 'number', f);
  assert.ok((op.expiresAt as number) > Date.now());
  assert.equal(recs[0]!.kind, 0);
  assert.equal(typeof recs[0]!.time, 'number');
  // A key that is not UTF-8 comes base64 with an encoding field.
  await store.db.set(Buffer.from([0xc3, 0x28]), 'v');
  await until(() => c.frames.length >= 4, 'the binary-key frame');
  const binOp = (c.json[3]!.ops as Record<string, unknown>[])[0]!;
  assert.equal(binOp.encoding, 'base64');
  assert.deepEqual([...Buffer.from(binOp.key as string, 'base64')], [0xc3, 0x28]);
  await c.close();

  const liveOnly = await Client.open('/v1/wal?format=json');
  await new Promise((r) => setTimeout(r, 50)); // the follow is registered on open
  const end = await lastLsn();
  await store.db.set('live-only', 'v');
  await until(() => liveOnly.frames.length >= 1, 'the live frame');
  assert.equal(liveOnly.json[0]!.lsn, end + 1);
  assert.equal(liveOnly.frames.length, 1, 'nothing from before');
  await liveOnly.close();

  const past = await Client.open(`/v1/wal?from=${(await lastLsn()) + 1000}`);
  await until(() => past.closed !== null, 'the refusal');
  assert.equal(past.closed!.code, 1008);
  assert.match(past.closed!.reason, /past the end of the WAL/);
});

test('resume after a disconnect from last + 1: no gap, no duplicate', async () => {
  const first = (await lastLsn()) + 1;
  // One after another: concurrent plain SETs would share records (the SET batch), and the
  // stream must be long enough to be cut in the middle.
  const writes = async (prefix: string, n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await store.db.set(`${prefix}-${i}`, 'v');
  };
  await writes('resume-a', 40);
  const seen: number[] = [];
  const c1 = await Client.open(`/v1/wal?from=${first}`);
  // Writing while the first client reads, then a disconnect in the middle of the stream.
  const during = writes('resume-b', 40);
  await until(() => c1.frames.length >= 25, 'some frames');
  c1.ws.terminate();
  await until(() => c1.closed !== null, 'the disconnect');
  seen.push(...cborRecords(c1).map((r) => r[0]));
  await during;
  await writes('resume-c', 20);
  const end = await lastLsn();
  const c2 = await Client.open(`/v1/wal?from=${seen.at(-1)! + 1}`);
  await until(() => cborRecords(c2).at(-1)?.[0] === end, 'the rest');
  seen.push(...cborRecords(c2).map((r) => r[0]));
  assert.deepEqual(seen, range(first, end));
  await c2.close();
});

test('a consumer that stops reading is closed with 1008 and a reason; others are unaffected', async () => {
  const slow = await Client.open('/v1/wal');
  const healthy = await Client.open('/v1/subscribe?channels=still.here');
  await healthy.nextJson((m) => m.op === 'subscribed', 'subscribed');
  (slow.ws as unknown as { _socket: Socket })._socket.pause();
  // Live records of ~1 MiB each (one setMany = one WAL record) until the server gives up on it:
  // past the kernel's socket buffers, uWS buffers, the ack is held back, the feed lags.
  const key = (i: number, j: number): string => `slow-${i}-${j}-${'k'.repeat(3900)}`;
  const deadline = Date.now() + 15_000;
  let closedAfter = -1;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    await store.db.setMany(range(0, 249).map((j) => ({ key: key(i, j), value: 'v' })));
    // The server's side: the socket is gone once the store's feed has no follower for it.
    const stats = await store.supervisor.control<{ stats(): { followers: number } }>('wal').stats();
    if (stats.followers === 0) {
      closedAfter = i;
      break;
    }
  }
  assert.ok(closedAfter >= 0, 'the server never gave up on the paused consumer');
  // Reading again lets the client see the close frame the server sent.
  (slow.ws as unknown as { _socket: Socket })._socket.resume();
  await until(() => slow.closed !== null, 'the slow consumer to be closed', 15_000);
  assert.equal(slow.closed!.code, 1008);
  assert.match(slow.closed!.reason, /^slow consumer: more than \d+ bytes (buffered|behind the WAL)$/);
  assert.equal(await store.db.publish('still.here', 'ok'), 1);
  await healthy.nextJson((m) => m.channel === 'still.here', 'the healthy subscriber still served');
  await healthy.close();
});
