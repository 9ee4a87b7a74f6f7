// Issue 9, defect 8: INFO all / everything / commandstats / errorstats / cpu answer what Redis
// answers for the sections that apply, and CLIENT LIST / CLIENT INFO have the fields tools read,
// with the ID and TYPE filters. Checked with ioredis against a master started here, and the
// section names and field names against a redis-server started here (when installed).
// Invariants: servers stopped by PID in `after`; clients closed in `finally`.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { hasProgram, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { WireClient, startRedisServer, stopRedisServers } from './helpers/redis_wire.js';

const T = { timeout: 30_000 };
let master: MasterProcess;

before(async () => {
  master = await startMaster();
});
after(async () => {
  await Promise.all([stopAll(), stopRedisServers()]);
});

/** INFO text as section → field → value. */
function parseInfo(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of text.split('\r\n')) {
    if (line.startsWith('# ')) out.set(line.slice(2).toLowerCase(), (current = new Map()));
    else if (line.includes(':')) current!.set(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1));
  }
  return out;
}

function connect(): Redis {
  return new Redis({ port: master.port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 0 });
}

/** The fields of a CLIENT LIST line. */
function fieldsOf(line: string): Map<string, string> {
  return new Map(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

describe('INFO sections (defect 8)', () => {
  it('regression: INFO commandstats counts calls, usec, rejected and failed calls per command', T, async () => {
    const r = connect();
    try {
      await r.call('CONFIG', 'RESETSTAT');
      await r.set('cs:a', '1');
      await r.get('cs:a');
      await r.get('cs:a');
      await r.call('INCR', 'cs:a');
      await r.call('SET', 'cs:s', 'text');
      await r.call('INCR', 'cs:s').catch(() => undefined); // failed: not an integer
      await r.call('GET').catch(() => undefined); // rejected: arity
      await r.call('NOSUCH').catch(() => undefined); // unknown: errorstats only
      await r.call('CLIENT', 'ID');
      // Made-up subcommands must not grow the table: they count under the command.
      for (let i = 0; i < 20; i++) await r.call('CONFIG', `zz${i}`).catch(() => undefined);
      const stats = parseInfo((await r.info('commandstats')) as string).get('commandstats')!;
      assert.ok(![...stats.keys()].some((k) => k.startsWith('cmdstat_config|zz')), 'a made-up subcommand got a cmdstat line');
      assert.match(stats.get('cmdstat_config')!, /^calls=20,.*failed_calls=20$/);
      const get = stats.get('cmdstat_get')!;
      assert.match(get, /^calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=1,failed_calls=0$/);
      assert.match(stats.get('cmdstat_incr')!, /^calls=2,.*rejected_calls=0,failed_calls=1$/);
      assert.match(stats.get('cmdstat_client|id')!, /^calls=1,/);
      assert.ok(![...stats.keys()].some((k) => k.includes('nosuch')), 'an unknown command has no cmdstat line');
      const errors = parseInfo((await r.info('errorstats')) as string).get('errorstats')!;
      assert.equal(errors.get('errorstat_ERR'), 'count=23');
      const st = parseInfo((await r.info('stats')) as string).get('stats')!;
      assert.equal(st.get('total_error_replies'), '23');
      assert.ok(Number(st.get('total_net_input_bytes')) > 0 && Number(st.get('total_net_output_bytes')) > 0);
    } finally {
      r.disconnect();
    }
  });

  it('regression: INFO all and everything add commandstats; INFO cpu answers the process CPU', T, async () => {
    const r = connect();
    try {
      const def = parseInfo((await r.info()) as string);
      const all = parseInfo((await r.info('all')) as string);
      const everything = parseInfo((await r.info('everything')) as string);
      assert.ok(!def.has('commandstats'), 'the default sections leave commandstats out, as Redis');
      for (const s of ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'errorstats', 'cluster', 'keyspace']) {
        assert.ok(def.has(s), `default has ${s}`);
        assert.ok(all.has(s), `all has ${s}`);
      }
      assert.ok(all.has('commandstats') && everything.has('commandstats'));
      const cpu = parseInfo((await r.info('cpu')) as string);
      assert.deepEqual([...cpu.keys()], ['cpu']);
      assert.match(cpu.get('cpu')!.get('used_cpu_sys')!, /^\d+\.\d{6}$/);
      assert.ok(Number(cpu.get('cpu')!.get('used_cpu_user')) > 0, 'a running Node process has used CPU');
      const two = parseInfo((await r.call('INFO', 'cpu', 'clients')) as string);
      assert.deepEqual([...two.keys()], ['clients', 'cpu'], 'several sections, in Redis order');
      assert.equal(await r.call('INFO', 'nosuchsection'), '');
    } finally {
      r.disconnect();
    }
  });

  it('the sections of INFO all are those of redis-server, and their shared fields have the same names', { ...T, skip: hasProgram('redis-server') ? false : 'redis-server is not installed' }, async () => {
    const redis = await startRedisServer();
    const rc = await WireClient.connect(redis.port);
    const r = connect();
    try {
      await r.set('k', 'v');
      await rc.send(['SET', 'k', 'v']);
      const theirs = parseInfo(((await rc.send(['INFO', 'all'])).value as Buffer).toString());
      const ours = parseInfo((await r.info('all')) as string);
      const common = [...ours.keys()].filter((s) => s !== 'actors' && s !== 'operations'); // BriseDB's own sections
      for (const s of common) assert.ok(theirs.has(s), `redis-server has a section ${s}`);
      for (const field of ['connected_clients', 'total_commands_processed', 'total_error_replies', 'used_cpu_sys', 'used_cpu_user', 'redis_version', 'uptime_in_seconds', 'role']) {
        const where = [...theirs].find(([, f]) => f.has(field))?.[0];
        assert.ok(where !== undefined && ours.get(where)?.has(field), `${field} is in our ${where}`);
      }
      assert.match(ours.get('keyspace')!.get('db0')!, /^keys=\d+/);
    } finally {
      rc.close();
      r.disconnect();
      await redis.stop();
    }
  });
});

describe('CLIENT LIST and CLIENT INFO (defect 8)', () => {
  it('regression: CLIENT LIST has the fields tools read, cmd=client|list, and MULTI shows in multi/multi-mem', T, async () => {
    const a = connect();
    const b = connect();
    try {
      await b.call('CLIENT', 'SETNAME', 'other');
      const info = fieldsOf((await a.call('CLIENT', 'INFO')) as string);
      for (const f of ['id', 'addr', 'laddr', 'fd', 'name', 'age', 'idle', 'flags', 'db', 'sub', 'psub', 'ssub', 'multi', 'qbuf', 'qbuf-free', 'argv-mem', 'multi-mem', 'obl', 'oll', 'omem', 'tot-mem', 'events', 'cmd', 'user', 'redir', 'resp', 'lib-name', 'lib-ver']) {
        assert.ok(info.has(f), `CLIENT INFO has ${f}`);
      }
      assert.equal(info.get('cmd'), 'client|info');
      assert.equal(info.get('user'), 'default');
      assert.equal(info.get('multi'), '-1');
      assert.equal(info.get('events'), 'r');
      assert.ok(Number(info.get('argv-mem')) > 0, 'the arguments of the running command are counted');
      await b.call('MULTI');
      await b.call('SET', 'cl:x', 'y'.repeat(100));
      const lines = ((await a.call('CLIENT', 'LIST')) as string).trim().split('\n').map(fieldsOf);
      const other = lines.find((l) => l.get('name') === 'other')!;
      assert.equal(other.get('multi'), '1');
      assert.equal(other.get('flags'), 'x');
      assert.ok(Number(other.get('multi-mem')) >= 100);
      assert.equal(other.get('cmd'), 'set');
      const me = lines.find((l) => l.get('id') === info.get('id'))!;
      assert.equal(me.get('cmd'), 'client|list');
      await b.call('DISCARD');
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });

  it('regression: CLIENT LIST ID filters (999999 lists no one), TYPE filters, bad input answers Redis errors', T, async () => {
    const a = connect();
    const sub = connect();
    try {
      const id = (await a.call('CLIENT', 'ID')) as number;
      assert.equal(await a.call('CLIENT', 'LIST', 'ID', '999999'), '');
      const mine = (await a.call('CLIENT', 'LIST', 'ID', String(id), '999999')) as string;
      assert.equal(mine.trim().split('\n').length, 1);
      assert.equal(fieldsOf(mine).get('id'), String(id));
      await sub.subscribe('cl:news');
      const pubsub = ((await a.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string).trim().split('\n').map(fieldsOf);
      assert.equal(pubsub.length, 1);
      assert.equal(pubsub[0]!.get('flags'), 'P');
      assert.equal(pubsub[0]!.get('sub'), '1');
      const normal = ((await a.call('CLIENT', 'LIST', 'TYPE', 'normal')) as string).trim().split('\n').map(fieldsOf);
      assert.ok(normal.every((l) => l.get('sub') === '0'));
      assert.equal(await a.call('CLIENT', 'LIST', 'TYPE', 'master'), '');
      await assert.rejects(a.call('CLIENT', 'LIST', 'ID', 'x'), /^ReplyError: ERR Invalid client ID/);
      await assert.rejects(a.call('CLIENT', 'LIST', 'TYPE', 'foo'), /ERR Unknown client type 'foo'/);
      await assert.rejects(a.call('CLIENT', 'LIST', 'BOGUS'), /ERR syntax error/);
    } finally {
      a.disconnect();
      sub.disconnect();
    }
  });

  it('CLIENT KILL by ID, TYPE and address closes those clients (not itself unless SKIPME no); CLIENT HELP lists it', T, async () => {
    const a = connect();
    const b = connect();
    const sub = connect();
    try {
      await Promise.all([a.ping(), b.ping(), sub.subscribe('kill:news')]);
      const bId = (await b.call('CLIENT', 'ID')) as number;
      const bClosed = new Promise<void>((resolve) => b.once('close', () => resolve()));
      assert.equal(await a.call('CLIENT', 'KILL', 'ID', String(bId)), 1);
      await bClosed;
      const subClosed = new Promise<void>((resolve) => sub.once('close', () => resolve()));
      assert.equal(await a.call('CLIENT', 'KILL', 'TYPE', 'pubsub'), 1);
      await subClosed;
      assert.equal(await a.call('CLIENT', 'KILL', 'ID', '999999'), 0);
      // The old form names an address; the caller itself is skipped by the filter form only.
      const c = new Redis({ port: master.port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
      const cAddr = fieldsOf((await c.call('CLIENT', 'INFO')) as string).get('addr')!;
      const cClosed = new Promise<void>((resolve) => c.once('close', () => resolve()));
      assert.equal(await a.call('CLIENT', 'KILL', cAddr), 'OK');
      await cClosed;
      await assert.rejects(a.call('CLIENT', 'KILL', cAddr), /ERR No such client/);
      const aId = (await a.call('CLIENT', 'ID')) as number;
      assert.equal(await a.call('CLIENT', 'KILL', 'ID', String(aId)), 0);
      const help = (await a.call('CLIENT', 'HELP')) as string[];
      assert.ok(help.some((l) => l.startsWith('KILL <option> <value>')));
      const aClosed = new Promise<void>((resolve) => a.once('close', () => resolve()));
      assert.equal(await a.call('CLIENT', 'KILL', 'ID', String(aId), 'SKIPME', 'no'), 1);
      await aClosed;
    } finally {
      a.disconnect();
      b.disconnect();
      sub.disconnect();
    }
  });
});
