// The WebSocket status stream (GET /v1/status upgraded; docs/websocket.md, issue 13 item 5).
// Over the wire, with real masters and the `ws` package: the first frame matches GET
// /v1/status (which still answers on the same path), a slow vacuum (--vacuum-rate 1) shows as
// progress frames with growing done_bytes and then an 'end' frame, the per-thread subscriber
// limit answers 503 and frees its slot on close, and --http-token is checked at the upgrade.
// In process, with a fake uWS app and a fake source: the frames' order, the idle state, a
// backed-up socket skipping frames, and no poll left running once the last socket closed.
// Owns: the masters it starts (stopped by PID in `after`), their temp dirs, every client.
// Every wait is bounded.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket as UwsSocket, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js';
import { WebSocket } from 'ws';
import { sleep, startHttpMaster, stopAll, within } from './helpers/master_process.js';
import { IDLE_POLLS, MAX_STATUS_SUBSCRIBERS, POLL_MS, registerStatusStream, type StatusSocket, type StatusSource } from '../src/frontend/ws_status.js';
import type { Progress, ScrubSummary } from '../src/protocol/operations.js';
import { VOLUME_SUPERBLOCK_SIZE } from '../src/storage/volume_format.js';

const BOUND_MS = 15_000;
const TOKEN = 'status-token-3';
/** The vacuum's work: 32 values of 128 KiB live (4 MiB), as much garbage beside them. */
const VALUES = 32;
const VALUE_BYTES = 128 * 1024;

const clients: Client[] = [];

after(async () => {
  for (const c of clients) c.ws.terminate();
  await stopAll();
});

type Frame = Record<string, unknown>;

async function until(cond: () => boolean, what: string, ms = BOUND_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** A client that records every text frame and its close. */
class Client {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | null = null;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.frames.push(JSON.parse(data.toString()) as Frame));
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  static async open(port: number, token: string | null = null): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/status`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
    const client = new Client(ws);
    clients.push(client);
    await within(new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`the upgrade was answered ${res.statusCode}`)));
      ws.once('error', reject);
    }), BOUND_MS, 'open /v1/status');
    return client;
  }

  async next(pred: (f: Frame) => boolean, what: string, from = 0, ms = BOUND_MS): Promise<Frame> {
    let found: Frame | undefined;
    await until(() => (found = this.frames.slice(from).find(pred)) !== undefined, what, ms);
    return found!;
  }

  async close(): Promise<void> {
    this.ws.close();
    await until(() => this.closed !== null, 'the close');
  }
}

/** The refusal of an upgrade: its status and JSON body (it must not open). */
async function refusal(port: number, token: string | null): Promise<{ status: number; body: Frame }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/status`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
  try {
    return await within(new Promise<{ status: number; body: Frame }>((resolve, reject) => {
      ws.once('open', () => reject(new Error('the status stream opened')));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as Frame }));
      });
      ws.once('error', () => undefined);
    }), BOUND_MS, 'the refusal of the upgrade');
  } finally {
    ws.terminate();
  }
}

async function put(base: string, key: string, value: Buffer): Promise<void> {
  const res = await fetch(`${base}/v1/blobs/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(BOUND_MS) });
  assert.ok(res.status === 201 || res.status === 204 || res.status === 200, `PUT ${key}: ${res.status} ${await res.text()}`);
}

async function getStatus(base: string, token: string | null = null): Promise<Frame> {
  const res = await fetch(`${base}/v1/status`, { headers: token === null ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(BOUND_MS) });
  assert.equal(res.status, 200);
  return (await res.json()) as Frame;
}

const num = (v: unknown): number => {
  assert.equal(typeof v, 'number', `a number: ${JSON.stringify(v)}`);
  return v as number;
};

// ---- over the wire ------------------------------------------------------------------------------

test('a slow vacuum: the first frame, progress frames with growing done_bytes, an end frame; GET /v1/status still answers', { timeout: 120_000 }, async () => {
  const { base, m } = await startHttpMaster({ args: ['--vacuum-rate', '1', '--vacuum-every', '0', '--scrub-every', '0'] });
  for (let i = 0; i < VALUES; i++) await put(base, `k${i}`, Buffer.alloc(VALUE_BYTES, i));
  for (let i = 0; i < VALUES; i++) await put(base, `k${i}`, Buffer.alloc(VALUE_BYTES, 255 - i));

  const c = await Client.open(m.httpPort);
  const first = await c.next(() => true, 'the first frame');
  // The same path still serves the JSON document to a plain GET; the frame agrees with it.
  const status = await getStatus(base);
  const volumes = status['volumes'] as Frame[];
  assert.equal(first['type'], 'status');
  assert.deepEqual(first['operations'], []);
  assert.equal(first['keys'], VALUES);
  assert.equal(first['keys'], (status['index'] as Frame)['keys']);
  const summary = first['volumes'] as Frame;
  assert.equal(summary['count'], volumes.length);
  assert.equal(summary['live_bytes'], volumes.reduce((n, v) => n + num(v['live_bytes']), 0));
  assert.equal(summary['garbage_bytes'], volumes.reduce((n, v) => n + num(v['garbage_bytes']), 0));
  assert.ok(num(summary['garbage_bytes']) >= VALUES * VALUE_BYTES, `the overwritten values are garbage: ${JSON.stringify(summary)}`);
  assert.equal(first['scrub'], null, 'no scrub ran');

  // 4 MiB at 1 MB/s: the vacuum is paced to take 4 s at least, so several polls see it.
  const vacuum = fetch(`${base}/v1/admin/vacuum`, { method: 'POST', signal: AbortSignal.timeout(90_000) });
  const end = await c.next((f) => f['type'] === 'end', 'the end frame', 1, 90_000);
  const progress = c.frames.slice(1, c.frames.indexOf(end)).filter((f) => f['type'] === 'progress');
  const runs = progress.map((f) => (f['operations'] as Frame[]).find((o) => o['operation'] === 'vacuum'));
  assert.ok(runs.length >= 2, `at least two progress frames before the end: ${JSON.stringify(c.frames)}`);
  let done = -1;
  for (const r of runs) {
    assert.ok(r !== undefined, `each progress frame shows the vacuum: ${JSON.stringify(progress)}`);
    assert.ok(num(r['done_bytes']) >= done, `done_bytes never goes back: ${JSON.stringify(runs)}`);
    done = num(r['done_bytes']);
    const percent = num(r['percent']);
    assert.ok(percent >= 0 && percent <= 100, `percent in 0..100: ${percent}`);
    assert.ok(num(r['total_bytes']) >= VALUES * VALUE_BYTES, `the total is the live bytes: ${JSON.stringify(r)}`);
    assert.ok(num(r['target']) >= 0);
    assert.ok(r['eta_seconds'] === null || num(r['eta_seconds']) >= 0);
  }
  assert.ok(num(runs.at(-1)!['done_bytes']) > num(runs[0]!['done_bytes']), `done_bytes grew: ${JSON.stringify(runs)}`);
  const ended = end['ended'] as Frame[];
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!['operation'], 'vacuum');
  assert.deepEqual(end['operations'], []);
  assert.equal(end['keys'], VALUES, 'the end frame carries a fresh summary');
  const res = await vacuum;
  assert.equal(res.status, 200, await res.text());

  // Idle: nothing for a while (an idle frame comes at most every 10 s).
  const seen = c.frames.length;
  await sleep(2.5 * POLL_MS);
  assert.equal(c.frames.length, seen, `no frame while nothing runs: ${JSON.stringify(c.frames.slice(seen))}`);
  await c.close();
  await m.stop();
});

test(`with --http-token: 401 without it; at most ${MAX_STATUS_SUBSCRIBERS} streams per thread, then 503; a close frees a slot`, { timeout: 120_000 }, async () => {
  const { base, m } = await startHttpMaster({ args: ['--http-token', TOKEN, '--vacuum-every', '0', '--scrub-every', '0'] });
  for (const token of [null, 'wrong']) {
    const r = await refusal(m.httpPort, token);
    assert.equal(r.status, 401, `token ${token}`);
    assert.equal(r.body['code'], 'UNAUTHORIZED');
  }
  // The plain GET on the same path is guarded as before.
  const plain = await fetch(`${base}/v1/status`, { signal: AbortSignal.timeout(BOUND_MS) });
  assert.equal(plain.status, 401);
  await plain.body?.cancel();

  // One HTTP thread (the helper's default): every socket lands on it.
  const open: Client[] = [];
  for (let i = 0; i < MAX_STATUS_SUBSCRIBERS; i++) open.push(await Client.open(m.httpPort, TOKEN));
  for (const c of open) assert.equal((await c.next(() => true, 'a first frame'))['type'], 'status');
  const full = await refusal(m.httpPort, TOKEN);
  assert.equal(full.status, 503);
  assert.equal(full.body['code'], 'BUSY');

  await open.pop()!.close();
  // The server may see the close a moment after the client: retried until the slot is free.
  const deadline = Date.now() + BOUND_MS;
  let again: Client | null = null;
  while (again === null) {
    try {
      again = await Client.open(m.httpPort, TOKEN);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
  assert.equal((await again.next(() => true, 'its first frame'))['type'], 'status');
  open.push(again);
  for (const c of open) await c.close();
  await m.stop();
});

// ---- in process: a fake uWS app and a fake source ----------------------------------------------

/** The source's answers, changed by the test; counts the polls. */
class FakeSource implements StatusSource {
  ops: Progress[] = [];
  calls = 0;
  readonly engine = {
    ports: {
      index: { stats: async () => ({ liveCount: 5 }), volumeUsage: async () => ({ live: [[1, 300], [2, 0]], retired: [2] }) },
      volumes: { list: async () => [{ id: 1, sizeBytes: VOLUME_SUPERBLOCK_SIZE + 1000 }, { id: 2, sizeBytes: VOLUME_SUPERBLOCK_SIZE + 50 }] },
    },
  } as unknown as StatusSource['engine'];

  async operations(): Promise<Progress[]> {
    this.calls++;
    return this.ops.map((p) => ({ ...p }));
  }

  async lastScrub(): Promise<ScrubSummary | null> {
    return { startedAt: 0, durationMs: 7, volumes: 2, needles: 9, bytes: 1050, invalid: 1, unreferenced: 1, repaired: 0, damaged: 0, damagedNeedles: [], errors: [] };
  }
}

/** A uWS socket as far as the stream uses it. */
class FakeSocket {
  readonly sent: Frame[] = [];
  buffered = 0;
  constructor(readonly data: StatusSocket) {}
  getUserData(): StatusSocket {
    return this.data;
  }
  getBufferedAmount(): number {
    return this.buffered;
  }
  cork(cb: () => void): this {
    cb();
    return this;
  }
  send(message: string): number {
    this.sent.push(JSON.parse(message) as Frame);
    return 1;
  }
  end(): void {
    throw new Error('end() is only for a socket past the limit');
  }
}

/** registerStatusStream on a fake app: opens and closes fake sockets through its behavior. */
function fakeStream(source: FakeSource): { open(): FakeSocket; close(s: FakeSocket): void; refusals: string[] } {
  let behavior: WebSocketBehavior<StatusSocket> | undefined;
  const app = { ws: (_pattern: string, b: WebSocketBehavior<StatusSocket>) => (behavior = b) } as unknown as TemplatedApp;
  const refusals: string[] = [];
  let upgraded: StatusSocket | null = null;
  registerStatusStream(app, source, {
    limits: {},
    upgrade: (_res, _req, _context, data) => (upgraded = data()),
    refuse: (_res, status) => refusals.push(status),
  });
  assert.ok(behavior?.upgrade !== undefined && behavior.open !== undefined && behavior.close !== undefined);
  const b = behavior;
  return {
    open: () => {
      upgraded = null;
      b.upgrade!({} as HttpResponse, {} as HttpRequest, {} as us_socket_context_t);
      assert.ok(upgraded !== null, `upgraded (refusals: ${refusals.join(', ')})`);
      const s = new FakeSocket(upgraded);
      void b.open!(s as unknown as UwsSocket<StatusSocket>);
      return s;
    },
    close: (s) => b.close!(s as unknown as UwsSocket<StatusSocket>, 1000, new ArrayBuffer(0)),
    refusals,
  };
}

const vacuumAt = (done: number): Progress => ({ operation: 'vacuum', target: 1, doneBytes: done, totalBytes: 100, startedAt: 1_000, etaMs: 500 });

async function frameOf(s: FakeSocket, pred: (f: Frame) => boolean, what: string, from = 0, ms = BOUND_MS): Promise<Frame> {
  let found: Frame | undefined;
  await until(() => (found = s.sent.slice(from).find(pred)) !== undefined, what, ms);
  return found!;
}

test('in process: status, progress, end, then quiet until the idle frame; no poll once the last socket closed', { timeout: 60_000 }, async () => {
  const source = new FakeSource();
  const stream = fakeStream(source);
  const a = stream.open();
  const first = await frameOf(a, () => true, 'the first frame');
  assert.deepEqual(first, {
    type: 'status',
    operations: [],
    keys: 5,
    volumes: { count: 2, retired: 1, size_bytes: 2 * VOLUME_SUPERBLOCK_SIZE + 1050, live_bytes: 300, garbage_bytes: 700 + 50 },
    scrub: { started_at: new Date(0).toISOString(), duration_ms: 7, volumes: 2, needles: 9, bytes: 1050, invalid: 1, unreferenced: 1, repaired: 0, damaged: 0, errors: 0 },
  });
  source.ops = [vacuumAt(10)];
  const p10 = await frameOf(a, (f) => f['type'] === 'progress', 'a progress frame');
  assert.deepEqual(p10['operations'], [{ operation: 'vacuum', target: 1, percent: 10, done_bytes: 10, total_bytes: 100, started_at: new Date(1_000).toISOString(), eta_seconds: 1 }]);
  source.ops = [vacuumAt(60)];
  await frameOf(a, (f) => f['type'] === 'progress' && (f['operations'] as Frame[])[0]!['percent'] === 60, 'progress at 60 %');
  source.ops = [];
  const end = await frameOf(a, (f) => f['type'] === 'end', 'the end frame');
  assert.deepEqual((end['ended'] as Frame[]).map((o) => [o['operation'], o['percent']]), [['vacuum', 60]]);
  assert.deepEqual(end['operations'], []);
  assert.equal(end['keys'], 5);

  // Quiet: the next frame is the idle status, IDLE_POLLS polls after the end.
  const afterEnd = a.sent.length;
  const callsAtEnd = source.calls;
  const idle = await frameOf(a, () => true, 'the idle frame', afterEnd, (IDLE_POLLS + 5) * POLL_MS);
  assert.equal(idle['type'], 'status');
  assert.ok(source.calls - callsAtEnd >= IDLE_POLLS, `the idle frame came after ${source.calls - callsAtEnd} polls, not before ${IDLE_POLLS}`);

  stream.close(a);
  const calls = source.calls;
  await sleep(2.5 * POLL_MS);
  // One poll may have been in flight at the close; none is started after it.
  assert.ok(source.calls <= calls + 1, `no poll after the last close: ${source.calls - calls} more`);
  const late = source.calls;
  await sleep(1.5 * POLL_MS);
  assert.equal(source.calls, late, 'the timer is stopped');
});

test('in process: a backed-up socket skips frames, then gets one status frame; the limit refuses with 503', { timeout: 60_000 }, async () => {
  const source = new FakeSource();
  const stream = fakeStream(source);
  const a = stream.open();
  const b = stream.open();
  await frameOf(a, () => true, 'a first frame');
  await frameOf(b, () => true, 'b first frame');
  b.buffered = 10 * 1024 * 1024;
  source.ops = [vacuumAt(20)];
  const fromA = a.sent.length;
  await until(() => a.sent.slice(fromA).filter((f) => f['type'] === 'progress').length >= 2, 'two progress frames on a');
  assert.equal(b.sent.length, 1, `b, backed up, got nothing more: ${JSON.stringify(b.sent)}`);
  b.buffered = 0;
  const caughtUp = await frameOf(b, () => true, 'b catching up', 1);
  assert.equal(caughtUp['type'], 'status', 'what b missed comes as one status frame');
  assert.deepEqual((caughtUp['operations'] as Frame[]).map((o) => o['percent']), [20]);
  await frameOf(b, (f) => f['type'] === 'progress', 'then progress again on b', 2);

  const more: FakeSocket[] = [];
  for (let i = 2; i < MAX_STATUS_SUBSCRIBERS; i++) more.push(stream.open());
  assert.throws(() => stream.open(), /upgraded/);
  assert.deepEqual(stream.refusals, ['503 Service Unavailable']);
  stream.close(more.pop()!);
  more.push(stream.open());
  for (const s of [a, b, ...more]) stream.close(s);
  const calls = source.calls;
  await sleep(2.5 * POLL_MS);
  assert.ok(source.calls <= calls + 1, 'no poll after the last close');
});
