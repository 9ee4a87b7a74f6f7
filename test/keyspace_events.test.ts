// Keyspace notifications end to end (issue 9): `CONFIG SET notify-keyspace-events` on one TCP
// connection turns them on for the whole master; events of writes made over TCP and over HTTP,
// and the `expired` events of the TTL sweep (main's thread), reach TCP subscribers (ioredis) and
// WebSocket subscribers (ws) alike, through the broker. Turned off, nothing more is published.
// Owns: one master with two HTTP threads, stopped by PID in `after`; every client is closed.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { sleep, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';

const T = { timeout: 40_000 };
let m: MasterProcess;
const closers: (() => void)[] = [];

before(async () => {
  m = await startMaster({ http: true, httpThreads: 2 });
});
after(async () => {
  for (const close of closers) close();
  await stopAll();
});

function redis(): Redis {
  const r = new Redis({ port: m.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  closers.push(() => r.disconnect());
  return r;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** "channel message" lines, as both kinds of subscriber record them. */
type Seen = string[];

async function tcpSubscriber(pattern: string): Promise<Seen> {
  const sub = redis();
  const seen: Seen = [];
  sub.on('pmessage', (_p: string, channel: string, message: string) => seen.push(`${channel} ${message}`));
  await sub.psubscribe(pattern);
  return seen;
}

async function wsSubscriber(pattern: string): Promise<Seen> {
  const ws = new WebSocket(`ws://127.0.0.1:${m.httpPort}/v1/subscribe?patterns=${encodeURIComponent(pattern)}`);
  closers.push(() => ws.terminate());
  const seen: Seen = [];
  let subscribed = false;
  ws.on('message', (data: Buffer) => {
    const f = JSON.parse(data.toString()) as { op?: string; channel?: string; payload?: string };
    if (f.op === 'subscribed') subscribed = true;
    else if (f.channel !== undefined) seen.push(`${f.channel} ${f.payload}`);
  });
  await within(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  }), 10_000, 'the WebSocket to open');
  await until(() => subscribed, 'the WebSocket subscription');
  return seen;
}

test('events of TCP and HTTP writes and of the TTL sweep reach TCP and WebSocket subscribers; off means none', T, async () => {
  const r = redis();
  const tcp = await tcpSubscriber('__key*@0__:ke:*');
  const ws = await wsSubscriber('__key*@0__:ke:*');
  assert.equal(await r.call('CONFIG', 'SET', 'notify-keyspace-events', 'KEA'), 'OK');
  assert.deepEqual(await r.call('CONFIG', 'GET', 'notify-keyspace-events'), ['notify-keyspace-events', 'AKE']);

  await r.set('ke:a', '1');
  await r.incr('ke:a');
  const viaTcp = ['__keyspace@0__:ke:a set', '__keyspace@0__:ke:a incrby'];
  for (const seen of [tcp, ws]) await until(() => viaTcp.every((e) => seen.includes(e)), `the TCP write's events in ${seen === tcp ? 'TCP' : 'ws'}`);

  // An HTTP PUT and DELETE, on whichever HTTP thread takes them: that thread was told too.
  for (let i = 0; i < 4; i++) {
    const put = await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/ke:h${i}`, { method: 'PUT', body: 'x' });
    assert.equal(put.status, 201);
    assert.equal((await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/ke:h${i}`, { method: 'DELETE' })).status, 204);
  }
  for (const seen of [tcp, ws]) {
    for (let i = 0; i < 4; i++) await until(() => seen.includes(`__keyspace@0__:ke:h${i} set`) && seen.includes(`__keyspace@0__:ke:h${i} del`), `HTTP events of ke:h${i}`);
  }

  // A key that nobody reads expires by the sweep of main's thread.
  await r.set('ke:short', 'v', 'PX', 100);
  for (const seen of [tcp, ws]) await until(() => seen.includes('__keyspace@0__:ke:short expired'), 'the expired event', 20_000);

  // Off: a write and then a marker published after it; the marker arrives, the write's events do not.
  assert.equal(await r.call('CONFIG', 'SET', 'notify-keyspace-events', ''), 'OK');
  const before = tcp.length;
  await r.set('ke:quiet', '1');
  await r.publish('__keyspace@0__:ke:marker', 'marker');
  await until(() => tcp.includes('__keyspace@0__:ke:marker marker'), 'the marker');
  assert.deepEqual(tcp.slice(before), ['__keyspace@0__:ke:marker marker']);
});

test('expired events of keys nobody reads come on time, not when the sweep reaches them', T, async () => {
  const r = redis();
  assert.equal(await r.call('CONFIG', 'SET', 'notify-keyspace-events', 'Ex'), 'OK');
  const seen = await tcpSubscriber('__keyevent@0__:expired');
  // 20 keys over 64 Ki index buckets: the sweep (1,024 buckets per 100 ms) needs 6.4 s for a
  // full pass, so on the sweep alone the last of them is seconds late.
  const t0 = Date.now();
  for (let i = 0; i < 20; i++) await r.set(`ke:t${i}`, 'v', 'PX', 200 + 10 * i);
  const keys = Array.from({ length: 20 }, (_, i) => `__keyevent@0__:expired ke:t${i}`);
  await until(() => keys.every((k) => seen.includes(k)), 'every expired event', 10_000);
  const late = Date.now() - t0 - 390;
  assert.ok(late < 3000, `the last expired event came ${late} ms after its key's time`);
  // A key written again with a later expiry before its time is not reported early.
  await r.set('ke:again', 'v', 'PX', 150);
  await r.set('ke:again', 'v', 'PX', 1500);
  await sleep(600);
  assert.ok(!seen.includes('__keyevent@0__:expired ke:again'), 'ke:again was reported expired while live');
  assert.equal(await r.get('ke:again'), 'v');
  await until(() => seen.includes('__keyevent@0__:expired ke:again'), 'the expired event of ke:again', 5000);
  assert.equal(await r.call('CONFIG', 'SET', 'notify-keyspace-events', ''), 'OK');
});
