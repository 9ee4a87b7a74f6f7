// Black-box tests of the TCP front end with node-redis (`redis`, a devDependency), against a
// master started as a child process: every command of issue 3, with RESP2 and RESP3
// (`createClient({ RESP: 3 })`, which sends HELLO 3 on connect and takes push frames for
// pub/sub). Keys carry a per-suite prefix so both suites share one master.
// Invariants: every server is stopped by its own PID in `after`; every client is closed;
// every test has a timeout.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { createClient, RESP_TYPES } from 'redis';
import { sleep, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';

const T = { timeout: 20_000 };
let master: MasterProcess;

type Client = ReturnType<typeof createClient>;
const clients: Client[] = [];

async function connect(resp: 2 | 3, extra: Record<string, unknown> = {}, port = master.port): Promise<Client> {
  const c = createClient({
    socket: { host: '127.0.0.1', port, reconnectStrategy: false, connectTimeout: 5000 },
    RESP: resp,
    ...extra,
  } as Parameters<typeof createClient>[0]) as unknown as Client;
  c.on('error', () => undefined);
  clients.push(c);
  await c.connect();
  return c;
}

before(async () => {
  master = await startMaster();
});
after(async () => {
  for (const c of clients) if (c.isOpen) c.destroy();
  await stopAll();
});

const errorOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error reply');
};

async function waitUntil(ready: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A map reply as node-redis hands it: an object (RESP3 map), a Map, or a flat array. */
function asMap(reply: unknown): Map<string, unknown> {
  if (reply instanceof Map) return new Map([...reply].map(([k, v]) => [String(k), v]));
  if (Array.isArray(reply)) {
    const out = new Map<string, unknown>();
    for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), reply[i + 1]);
    return out;
  }
  return new Map(Object.entries(reply as Record<string, unknown>));
}

function infoSections(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    if (line.startsWith('# ')) sections.set(line.slice(2).toLowerCase(), (current = new Map()));
    else if (line.includes(':')) current.set(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1));
  }
  return sections;
}

for (const resp of [2, 3] as const) {
  describe(`node-redis, RESP${resp}`, () => {
    const p = `nr${resp}:`;
    let c: Client;
    before(async () => {
      c = await connect(resp);
    });

    it('PING, ECHO', T, async () => {
      assert.equal(await c.ping(), 'PONG');
      assert.equal(await c.ping('hey'), 'hey');
      assert.equal(await c.echo('hello'), 'hello');
    });

    it('SET with EX, PX, NX, XX, KEEPTTL, GET; GET', T, async () => {
      assert.equal(await c.set(`${p}a`, '1'), 'OK');
      assert.equal(await c.get(`${p}a`), '1');
      assert.equal(await c.get(`${p}none`), null);
      assert.equal(await c.set(`${p}ex`, 'v', { expiration: { type: 'EX', value: 100 } }), 'OK');
      const ttl = await c.ttl(`${p}ex`);
      assert.ok(ttl > 95 && ttl <= 100, `TTL ${ttl}`);
      assert.equal(await c.set(`${p}px`, 'v', { expiration: { type: 'PX', value: 60_000 } }), 'OK');
      const pttl = await c.pTTL(`${p}px`);
      assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
      assert.equal(await c.set(`${p}a`, '2', { condition: 'NX' }), null);
      assert.equal(await c.set(`${p}nx`, '2', { condition: 'NX' }), 'OK');
      assert.equal(await c.set(`${p}xx`, '2', { condition: 'XX' }), null);
      assert.equal(await c.exists(`${p}xx`), 0);
      assert.equal(await c.set(`${p}a`, '3', { condition: 'XX' }), 'OK');
      assert.equal(await c.set(`${p}ex`, 'w', { expiration: 'KEEPTTL' }), 'OK');
      assert.ok((await c.ttl(`${p}ex`)) > 90);
      assert.equal(await c.set(`${p}a`, '4', { GET: true }), '3');
      assert.equal(await c.get(`${p}a`), '4');
      assert.equal(await c.set(`${p}a`, '5', { condition: 'XX', GET: true, expiration: { type: 'EX', value: 50 } }), '4');
      assert.ok((await c.ttl(`${p}a`)) > 45);
      assert.match(await errorOf(c.sendCommand(['SET', `${p}a`, 'v', 'PX', '-5'])), /^ERR invalid expire time in 'set' command/);
      assert.match(await errorOf(c.sendCommand(['SET', `${p}a`, 'v', 'KEEPTTL', 'EX', '5'])), /^ERR syntax error/);
    });

    it('DEL and DELETE of many keys, EXISTS', T, async () => {
      await c.mSet([`${p}d1`, '1', `${p}d2`, '2', `${p}d3`, '3']);
      assert.equal(await c.exists([`${p}d1`, `${p}d2`, `${p}d3`, `${p}zz`]), 3);
      assert.equal(await c.del([`${p}d1`, `${p}d2`, `${p}zz`]), 2);
      assert.equal(await c.sendCommand(['DELETE', `${p}d3`, `${p}d1`]), 1);
      assert.equal(await c.exists([`${p}d1`, `${p}d2`, `${p}d3`]), 0);
    });

    it('TTL, PTTL, EXPIRE, PEXPIRE, PERSIST, expiry', T, async () => {
      await c.set(`${p}t`, 'v');
      assert.equal(await c.ttl(`${p}t`), -1);
      assert.equal(await c.ttl(`${p}gone`), -2);
      assert.equal(await c.pTTL(`${p}gone`), -2);
      assert.equal(await c.expire(`${p}t`, 30), 1);
      assert.equal(await c.expire(`${p}gone`, 30), 0);
      assert.ok((await c.ttl(`${p}t`)) > 25);
      assert.equal(await c.pExpire(`${p}t`, 40_000), 1);
      assert.ok((await c.pTTL(`${p}t`)) > 35_000);
      assert.equal(await c.persist(`${p}t`), 1);
      assert.equal(await c.pTTL(`${p}t`), -1);
      assert.equal(await c.persist(`${p}t`), 0);
      assert.equal(await c.pExpire(`${p}t`, 60), 1);
      await sleep(250);
      assert.equal(await c.get(`${p}t`), null);
      assert.equal(await c.pTTL(`${p}t`), -2);
    });

    it('COUNT value, KEYS pattern', T, async () => {
      const v = `nr-count-${resp}-${Date.now()}`;
      await c.mSet([`${p}c1`, v, `${p}c2`, v, `${p}c3`, 'x']);
      assert.equal(await c.sendCommand(['COUNT', v]), 2);
      assert.deepEqual((await c.keys(`${p}c?`)).sort(), [`${p}c1`, `${p}c2`, `${p}c3`]);
      assert.deepEqual((await c.keys(`${p}c[12]`)).sort(), [`${p}c1`, `${p}c2`]);
    });

    it('SCAN with MATCH and COUNT; scanIterator collects every key', T, async () => {
      const want: string[] = [];
      const kv: string[] = [];
      for (let i = 0; i < 250; i++) {
        want.push(`${p}s:${i}`);
        kv.push(`${p}s:${i}`, 'v');
      }
      await c.mSet(kv);
      const got = new Set<string>();
      let cursor = '0';
      let rounds = 0;
      do {
        const r = await c.scan(cursor, { MATCH: `${p}s:*`, COUNT: 13 });
        for (const k of r.keys) got.add(k);
        cursor = r.cursor;
        assert.ok(++rounds < 10_000);
      } while (cursor !== '0');
      assert.deepEqual([...got].sort(), want.sort());
      const iterated = new Set<string>();
      for await (const batch of c.scanIterator({ MATCH: `${p}s:2*`, COUNT: 50 })) for (const k of batch) iterated.add(k);
      assert.deepEqual([...iterated].sort(), want.filter((k) => k.startsWith(`${p}s:2`)).sort());
    });

    it('MGET, MSET, DBSIZE', T, async () => {
      assert.equal(await c.mSet({ [`${p}m1`]: 'a', [`${p}m2`]: 'b' }), 'OK');
      assert.deepEqual(await c.mGet([`${p}m1`, `${p}none`, `${p}m2`]), ['a', null, 'b']);
      const n = await c.dbSize();
      assert.equal(n, (await c.keys('*')).length);
    });

    it('BEGIN/COMMIT/ROLLBACK: nested, isolation, read-your-writes', T, async () => {
      const other = await connect(resp);
      assert.equal(await c.sendCommand(['BEGIN']), 'OK');
      await c.set(`${p}tx1`, 'a');
      assert.equal(await c.get(`${p}tx1`), 'a');
      assert.equal(await other.get(`${p}tx1`), null);
      assert.equal(await c.sendCommand(['BEGIN']), 'OK');
      await c.set(`${p}tx2`, 'b');
      await c.set(`${p}tx1`, 'changed');
      assert.equal(await c.sendCommand(['ROLLBACK']), 'OK');
      assert.equal(await c.get(`${p}tx1`), 'a');
      assert.equal(await c.get(`${p}tx2`), null);
      assert.equal(await c.sendCommand(['BEGIN']), 'OK');
      await c.set(`${p}tx3`, 'c');
      assert.equal(await c.sendCommand(['COMMIT']), 'OK');
      assert.equal(await other.get(`${p}tx3`), null);
      assert.equal(await c.sendCommand(['COMMIT']), 'OK');
      assert.deepEqual(await other.mGet([`${p}tx1`, `${p}tx2`, `${p}tx3`]), ['a', null, 'c']);
    });

    it('MULTI/EXEC/DISCARD, EXECABORT', T, async () => {
      const replies = await c.multi().set(`${p}mu`, '1').get(`${p}mu`).del(`${p}mu`).exec();
      assert.deepEqual(replies, ['OK', '1', 1]);
      const aborted = await errorOf(c.multi().set(`${p}mu2`, '1').addCommand(['NOSUCHCOMMAND', 'x']).exec());
      assert.match(aborted, /EXECABORT|unknown command/);
      assert.equal(await c.get(`${p}mu2`), null, 'nothing of an aborted transaction ran');
      const raw = await connect(resp);
      assert.equal(await raw.sendCommand(['MULTI']), 'OK');
      assert.equal(await raw.sendCommand(['SET', `${p}mu3`, 'x']), 'QUEUED');
      assert.equal(await raw.sendCommand(['DISCARD']), 'OK');
      assert.equal(await raw.get(`${p}mu3`), null);
      assert.equal(await raw.sendCommand(['MULTI']), 'OK');
      assert.equal(await raw.sendCommand(['SET', `${p}mu3`, 'y']), 'QUEUED');
      assert.deepEqual(await raw.sendCommand(['EXEC']), ['OK']);
      assert.equal(await raw.get(`${p}mu3`), 'y');
    });

    it('SUBSCRIBE, PSUBSCRIBE, PUBLISH, UNSUBSCRIBE, PUNSUBSCRIBE', T, async () => {
      const sub = await connect(resp);
      const got: string[] = [];
      await sub.subscribe(`${p}news`, (message, channel) => got.push(`m ${channel} ${message}`));
      await sub.pSubscribe(`${p}n*`, (message, channel) => got.push(`p ${channel} ${message}`));
      assert.equal(await c.publish(`${p}news`, 'one'), 2);
      assert.equal(await c.publish(`${p}nope`, 'two'), 1);
      await waitUntil(() => got.length === 3, 'three messages');
      assert.deepEqual(got.sort(), [`m ${p}news one`, `p ${p}news one`, `p ${p}nope two`].sort());
      await sub.unsubscribe(`${p}news`);
      assert.equal(await c.publish(`${p}news`, 'three'), 1);
      await sub.pUnsubscribe(`${p}n*`);
      assert.equal(await c.publish(`${p}news`, 'four'), 0);
      if (resp === 3) {
        // RESP3: a subscribed connection still runs ordinary commands (replies and pushes interleave).
        await sub.subscribe(`${p}r3`, (m) => got.push(`r3 ${m}`));
        assert.equal(await sub.set(`${p}r3key`, 'v'), 'OK');
        assert.equal(await c.publish(`${p}r3`, 'push'), 1);
        assert.equal(await sub.get(`${p}r3key`), 'v');
        await waitUntil(() => got.includes('r3 push'), 'the push message');
        await sub.unsubscribe();
      }
    });

    it('COMPACT, VOLINFO', T, async () => {
      await c.set(`${p}cp`, 'v');
      assert.equal(await c.sendCommand(['COMPACT']), 'OK');
      assert.equal(await c.get(`${p}cp`), 'v');
      const vols = (await c.sendCommand(['VOLINFO'])) as unknown[][];
      assert.ok(vols.length >= 1);
      for (const v of vols) assert.equal(v.length, 6, 'id, drive, size, group, garbage, live');
    });

    it(`HELLO ${resp}, SELECT 0 and 1`, T, async () => {
      const h = asMap(await c.sendCommand(['HELLO', String(resp)]));
      assert.equal(h.get('server'), 'redis');
      assert.equal(h.get('proto'), resp);
      assert.equal(await c.sendCommand(['SELECT', '0']), 'OK');
      assert.match(await errorOf(c.sendCommand(['SELECT', '1'])), /^ERR DB index is out of range/);
    });

    it('INFO: sections, keyspace count, actors', T, async () => {
      const all = infoSections(await c.info());
      for (const s of ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'keyspace', 'actors']) {
        assert.ok(all.has(s), s);
        const one = infoSections(await c.info(s));
        assert.deepEqual([...one.keys()], [s]);
      }
      const n = await c.dbSize();
      assert.equal(infoSections(await c.info('keyspace')).get('keyspace')!.get('db0')?.split(',')[0], `keys=${n}`);
      const actors = infoSections(await c.info('actors')).get('actors')!;
      assert.ok([...actors.keys()].some((k) => k.startsWith('actor_tcp')), 'the TCP front end is an actor');
    });

    it('CONFIG GET, CLIENT SETNAME/GETNAME/SETINFO/ID, COMMAND COUNT', T, async () => {
      const cfg = await c.configGet('save');
      assert.ok('save' in cfg);
      assert.ok('appendonly' in (await c.configGet('appendonly')));
      assert.equal(await c.clientSetName('nr-conn'), 'OK');
      assert.equal(await c.clientGetName(), 'nr-conn');
      assert.equal(await c.sendCommand(['CLIENT', 'SETINFO', 'LIB-VER', '1.2.3']), 'OK');
      const id = await c.clientId();
      assert.equal(typeof id, 'number');
      assert.ok((await c.commandCount()) >= 40);
    });

    it('binary-safe keys and values; 1 MB and 16 MB values', T, async () => {
      const bin = c.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
      const all = Buffer.alloc(256);
      for (let i = 0; i < 256; i++) all[i] = i;
      const key = Buffer.concat([Buffer.from(p), all]);
      assert.equal(await c.set(key, all), 'OK');
      assert.ok((await bin.get(key))!.equals(all));
      for (const size of [1 << 20, 16 << 20]) {
        const value = Buffer.alloc(size);
        for (let i = 0; i < size; i += 4) value.writeUInt32LE((i * 40503 + size) >>> 0, i);
        assert.equal(await c.set(`${p}big${size}`, value), 'OK');
        const back = await bin.get(`${p}big${size}`);
        assert.ok(back!.equals(value), `${size} bytes identical`);
      }
    });

    it('QUIT and STOP', T, async () => {
      const a = await connect(resp);
      assert.equal(await a.sendCommand(['STOP']), 'OK');
      await waitUntil(() => !a.isReady, 'STOP to close the connection');
      const b = await connect(resp);
      assert.equal(await b.sendCommand(['QUIT']), 'OK');
      await waitUntil(() => !b.isReady, 'QUIT to close the connection');
      assert.equal(await c.ping(), 'PONG');
    });
  });
}

describe('node-redis with --requirepass', () => {
  let secure: MasterProcess;
  before(async () => {
    secure = await startMaster({ args: ['--requirepass', 'pw-nr'] });
  });
  after(async () => {
    await secure.stop();
  });

  it('RESP2: NOAUTH before AUTH, WRONGPASS, OK after', T, async () => {
    const c = await connect(2, { disableClientInfo: true }, secure.port);
    assert.match(await errorOf(c.get('k')), /^NOAUTH Authentication required/);
    assert.match(await errorOf(c.sendCommand(['AUTH', 'nope'])), /^WRONGPASS/);
    assert.equal(await c.sendCommand(['AUTH', 'pw-nr']), 'OK');
    assert.equal(await c.set('k', 'v'), 'OK');
    assert.equal(await c.get('k'), 'v');
  });

  for (const resp of [2, 3] as const) {
    it(`RESP${resp}: the password given at connect works; a wrong one fails to connect`, T, async () => {
      const c = await connect(resp, { password: 'pw-nr' }, secure.port);
      assert.equal(await c.get('k'), 'v');
      const failed = await errorOf(connect(resp, { password: 'wrong' }, secure.port));
      assert.match(failed, /WRONGPASS/);
    });
  }
});
