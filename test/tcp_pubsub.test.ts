// Pub/sub over TCP across many connections, against a master started as a child process:
// 20 channel subscribers (half RESP2, half RESP3 push frames) and 5 pattern subscribers, one
// publisher; PUBLISH answers the receiver count, every subscriber gets every message in order,
// a subscriber that disconnects stops counting. The subscribed-mode rules are checked byte for
// byte over raw sockets (the replies are redis-server 7's, compared by hand).
// Invariants: the master is stopped by its own PID in `after`; every client and socket is
// closed; every wait is bounded.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { rawConnect, sleep, startMaster, stopAll, type MasterProcess, type RawConnection } from './helpers/master_process.js';

const T = { timeout: 30_000 };
let master: MasterProcess;
const clients: Redis[] = [];
const sockets: RawConnection[] = [];

before(async () => {
  master = await startMaster();
});
after(async () => {
  for (const c of clients) c.disconnect();
  for (const s of sockets) s.destroy();
  await stopAll();
});

function connect(protocol: 2 | 3): Redis {
  const c = new Redis({ host: '127.0.0.1', port: master.port, protocol, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

async function waitUntil(ready: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Sends and waits until `expected` bytes came back; answers them. */
async function exchange(s: RawConnection, data: string, expected: string): Promise<string> {
  const start = s.received().length;
  s.send(data);
  const text = await s.until((t) => t.length - start >= expected.length, 5000, `a reply to ${JSON.stringify(data)}`);
  return text.slice(start);
}

describe('pub/sub across many connections', () => {
  it('20 channel + 5 pattern subscribers: exact receiver counts, every message in order, disconnects stop counting', T, async () => {
    const channel = 'fan:news';
    const subs = Array.from({ length: 20 }, (_, i) => ({ c: connect(i % 2 === 0 ? 2 : 3), got: [] as string[] }));
    const psubs = Array.from({ length: 5 }, (_, i) => ({ c: connect(i % 2 === 0 ? 3 : 2), got: [] as string[] }));
    for (const s of subs) {
      s.c.on('message', (ch: string, msg: string) => s.got.push(`${ch} ${msg}`));
      assert.equal(await s.c.subscribe(channel), 1);
    }
    for (const s of psubs) {
      s.c.on('pmessage', (pattern: string, ch: string, msg: string) => s.got.push(`${pattern} ${ch} ${msg}`));
      assert.equal(await s.c.psubscribe('fan:*'), 1);
    }
    const pub = connect(2);
    const messages = Array.from({ length: 200 }, (_, i) => `message ${i} ${'x'.repeat(i % 50)}`);
    // Pipelined: the counts come back in order too.
    const pipe = pub.pipeline();
    for (const m of messages) pipe.publish(channel, m);
    for (const [e, n] of (await pipe.exec())!) assert.equal(e ?? n, 25);
    assert.equal(await pub.publish('fan:other', 'only patterns'), 5);
    assert.equal(await pub.publish('elsewhere', 'nobody'), 0);

    await waitUntil(() => subs.every((s) => s.got.length === 200) && psubs.every((s) => s.got.length === 201), 'every message');
    for (const s of subs) assert.deepEqual(s.got, messages.map((m) => `${channel} ${m}`));
    for (const s of psubs) assert.deepEqual(s.got, [...messages.map((m) => `fan:* ${channel} ${m}`), 'fan:* fan:other only patterns']);

    // Three channel subscribers and one pattern subscriber go away without unsubscribing.
    for (const s of [subs[0]!, subs[7]!, subs[13]!, psubs[2]!]) s.c.disconnect();
    // The server learns of a close asynchronously: publish until the counts drop, bounded.
    let count = -1;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      count = await pub.publish('fan:probe', 'p');
      if (count === 4) break;
      await sleep(20);
    }
    assert.equal(count, 4, 'the pattern subscriber that left stops counting');
    while (Date.now() < deadline) {
      count = await pub.publish(channel, 'after');
      if (count === 17 + 4) break;
      await sleep(20);
    }
    assert.equal(count, 17 + 4, 'the channel subscribers that left stop counting');
    const alive = subs.filter((_, i) => ![0, 7, 13].includes(i));
    await waitUntil(() => alive.every((s) => s.got.at(-1) === `${channel} after`), 'the message after the disconnects');
  });

  it('binary channel and message, all 256 byte values, reach a subscriber unchanged', T, async () => {
    const bytes = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) bytes[i] = i;
    const ch = Buffer.concat([Buffer.from('bin:'), bytes]);
    const sub = connect(2);
    let got: Buffer | undefined;
    sub.on('messageBuffer', (_c: Buffer, m: Buffer) => (got = m));
    await sub.subscribe(ch as unknown as string);
    assert.equal(await connect(2).publish(ch as unknown as string, bytes as unknown as string), 1);
    await waitUntil(() => got !== undefined, 'the binary message');
    assert.ok(got!.equals(bytes));
  });
});

describe('subscribed mode, byte for byte', () => {
  it('RESP2: GET is refused with the Redis error; PING answers [pong, msg]; UNSUBSCRIBE all leaves the mode', T, async () => {
    const s = await rawConnect(master.port);
    sockets.push(s);
    assert.equal(await exchange(s, 'SUBSCRIBE ch\r\n', '*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n'), '*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n');
    const refusal = "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";
    assert.equal(await exchange(s, 'GET x\r\n', refusal), refusal);
    assert.equal(await exchange(s, 'PING\r\n', '*2\r\n$4\r\npong\r\n$0\r\n\r\n'), '*2\r\n$4\r\npong\r\n$0\r\n\r\n');
    assert.equal(await exchange(s, 'PING hi\r\n', '*2\r\n$4\r\npong\r\n$2\r\nhi\r\n'), '*2\r\n$4\r\npong\r\n$2\r\nhi\r\n');
    const psub = '*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:2\r\n';
    assert.equal(await exchange(s, 'PSUBSCRIBE p*\r\n', psub), psub);
    const pub = connect(2);
    assert.equal(await pub.publish('ch', 'hello'), 1);
    const msg = '*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n';
    await s.until((t) => t.endsWith(msg), 5000, 'the message');
    assert.equal(await pub.publish('pq', 'x'), 1);
    const pmsg = '*4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$1\r\nx\r\n';
    await s.until((t) => t.endsWith(pmsg), 5000, 'the pmessage');
    const unsub = '*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:1\r\n';
    assert.equal(await exchange(s, 'UNSUBSCRIBE\r\n', unsub), unsub);
    const punsub = '*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:0\r\n';
    assert.equal(await exchange(s, 'PUNSUBSCRIBE\r\n', punsub), punsub);
    assert.equal(await exchange(s, 'GET x\r\n', '$-1\r\n'), '$-1\r\n', 'out of subscribed mode, GET works again');
  });

  it('RESP3: push frames, and ordinary commands still run while subscribed', T, async () => {
    const s = await rawConnect(master.port);
    sockets.push(s);
    s.send('HELLO 3\r\n');
    await s.until((t) => t.includes('proto\r\n:3\r\n'), 5000, 'HELLO 3');
    const mark = s.received().length;
    assert.equal(await exchange(s, 'SUBSCRIBE ch3\r\n', '>3\r\n$9\r\nsubscribe\r\n$3\r\nch3\r\n:1\r\n'), '>3\r\n$9\r\nsubscribe\r\n$3\r\nch3\r\n:1\r\n');
    assert.equal(await exchange(s, 'GET nope\r\n', '_\r\n'), '_\r\n');
    assert.equal(await exchange(s, 'PING\r\n', '+PONG\r\n'), '+PONG\r\n');
    assert.equal(await connect(3).publish('ch3', 'pushed'), 1);
    const push = '>3\r\n$7\r\nmessage\r\n$3\r\nch3\r\n$6\r\npushed\r\n';
    await s.until((t) => t.endsWith(push), 5000, 'the push frame');
    assert.ok(s.received().length > mark);
    const unsub = '>3\r\n$11\r\nunsubscribe\r\n$4\r\nnope\r\n:1\r\n';
    assert.equal(await exchange(s, 'UNSUBSCRIBE nope\r\n', unsub), unsub);
  });

  it('a subscriber that closes its socket mid-stream does not disturb the publisher or others', T, async () => {
    const other = connect(2);
    const got: string[] = [];
    other.on('message', (_c: string, m: string) => got.push(m));
    await other.subscribe('mid');
    const leaving = await rawConnect(master.port);
    sockets.push(leaving);
    leaving.send('SUBSCRIBE mid\r\n');
    await leaving.until((t) => t.endsWith(':1\r\n'), 5000, 'subscribe');
    const pub = connect(2);
    for (let i = 0; i < 100; i++) {
      if (i === 50) leaving.destroy();
      const n = await pub.publish('mid', String(i));
      assert.ok(n === 1 || n === 2, `count ${n}`);
      if (i < 50) assert.equal(n, 2);
    }
    await waitUntil(() => got.length === 100, 'all 100 messages at the subscriber that stayed');
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => String(i)));
    const deadline = Date.now() + 5000;
    while ((await pub.publish('mid', 'x')) !== 1) {
      assert.ok(Date.now() < deadline, 'the closed subscriber stops counting');
      await sleep(20);
    }
  });
});
