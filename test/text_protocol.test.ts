// The seed's line protocol on `--text-addr` (issue 9, "The seed's own clients"): a real master
// with the flag, spoken to by a small client written from docs/text-protocol.md
// (helpers/text_client.ts), the way the seed's Go and Python clients speak it: every command
// of the seed's README, nested transactions, pub/sub between text clients and from a RESP
// client, REPLICATE (snapshot, +READY, live entries), STOP, half-close, bad input, limits,
// AUTH, and that the port is closed without the flag. Unit tests of the pure parts (line
// reader, reply layout, replication entries) come first.
// Invariants: masters are stopped by PID in `after` (stopAll); every wait is bounded.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { freePort, hasProgram, rawConnect, resp, sleep, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { TextClient, plus } from './helpers/text_client.js';
import { LineReader, type LineEvent } from '../src/protocol/text_lines.js';
import { formatTextReply, replicationLine, UNREPRESENTABLE } from '../src/protocol/text_reply.js';
import { array, bulk, error, integer, simple, NULL_BULK, NULL_ARRAY } from '../src/protocol/reply.js';
import { splitLine } from '../src/frontend/text_connection.js';
import { touched } from '../src/frontend/text_replication.js';
import { parseMasterArgs } from '../src/master/config.js';
import { OpCode, type WalRecord } from '../src/storage/types.js';

const T = { timeout: 20_000 };
const NODE20 = { nodeVersion: '20.15.0', os: 'linux', cores: 2 };

// ---- pure parts -------------------------------------------------------------------------------

function events(r: LineReader): LineEvent[] {
  const out: LineEvent[] = [];
  for (let e = r.next(); e.kind !== 'need-more'; e = r.next()) out.push(e);
  return out;
}

const text = (e: LineEvent): string => (e.kind === 'line' ? e.line.toString('latin1') : e.kind === 'too-long' ? `<too-long ${e.bytes}>` : '<need-more>');

describe('text protocol: the line reader', () => {
  it('splits on LF, drops a CR before it, skips blank lines, whatever the chunking', () => {
    const input = 'SET a 1\r\n\n  \nGET a\nPING\r\n';
    for (let cut = 0; cut <= input.length; cut++) {
      const r = new LineReader(64);
      r.push(Buffer.from(input.slice(0, cut)));
      const first = events(r);
      r.push(Buffer.from(input.slice(cut)));
      assert.deepEqual([...first, ...events(r)].map(text), ['SET a 1', 'GET a', 'PING'], `cut at ${cut}`);
    }
  });

  it('drops a line past the limit as it arrives, reports it once at its LF, then reads on', () => {
    const r = new LineReader(16);
    r.push(Buffer.from('x'.repeat(40)));
    assert.deepEqual(events(r), []);
    assert.ok(r.buffered <= 17, `the long line is not kept (${r.buffered} bytes buffered)`);
    r.push(Buffer.from('y'.repeat(40) + '\nGET a\n'));
    assert.deepEqual(events(r).map(text), ['<too-long 80>', 'GET a']);
    const exact = new LineReader(5);
    exact.push(Buffer.from('12345\r\n123456\n'));
    assert.deepEqual(events(exact).map(text), ['12345', '<too-long 6>']);
  });

  it('answers the last line without its LF after the FIN (the seed read it too)', () => {
    const r = new LineReader(64);
    r.push(Buffer.from('SET a 1\nGET a'));
    assert.deepEqual(events(r).map(text), ['SET a 1']);
    assert.equal(text(r.rest()!), 'GET a');
    assert.equal(r.rest(), null);
  });

  it('splits arguments as redis-cli (quotes, escapes); unbalanced quotes fall back to whitespace', () => {
    const words = (s: string): string[] => splitLine(Buffer.from(s)).map((b) => b.toString('latin1'));
    assert.deepEqual(words('PUBLISH news "breaking news"'), ['PUBLISH', 'news', 'breaking news']);
    assert.deepEqual(words('SET k "a\\x00b"'), ['SET', 'k', 'a\x00b']);
    assert.deepEqual(words("SET name O'Brien"), ['SET', 'name', "O'Brien"]);
    assert.deepEqual(words('  GET   a  '), ['GET', 'a']);
  });
});

describe('text protocol: replies as lines', () => {
  const lines = (r: Parameters<typeof formatTextReply>[0], shape?: Parameters<typeof formatTextReply>[1]): string => formatTextReply(r, shape).toString('latin1');

  it('scalars are one + line, nil is +nil, errors are - lines', () => {
    assert.equal(lines(simple('OK')), '+OK\n');
    assert.equal(lines(bulk('world')), '+world\n');
    assert.equal(lines(bulk('')), '+\n');
    assert.equal(lines(NULL_BULK), '+nil\n');
    assert.equal(lines(NULL_ARRAY), '+nil\n');
    assert.equal(lines(integer(-2)), '+-2\n');
    assert.equal(lines(error('ERR syntax error')), '-ERR syntax error\n');
  });

  it('lists are +<n> then one line per item; nested items are space-separated words', () => {
    assert.equal(lines(array([bulk('k1'), NULL_BULK, integer(3)])), '+3\n+k1\n+nil\n+3\n');
    assert.equal(lines(array([])), '+0\n');
    assert.equal(lines(array([array([bulk('a'), integer(1)])])), '+1\n+a 1\n');
  });

  it("the seed's shapes: DELETE +OK, SCAN +<cursor> <n> then keys, VOLINFO +<id> <drive> <size>", () => {
    assert.equal(lines(integer(1), 'ok'), '+OK\n');
    assert.equal(lines(error('ERR key is too long'), 'ok'), '-ERR key is too long\n');
    assert.equal(lines(array([bulk('17'), array([bulk('a'), bulk('b')])]), 'scan'), '+17 2\n+a\n+b\n');
    assert.equal(lines(array([array([integer(0), bulk('/d'), integer(152), integer(0)])]), 'volinfo'), '+1\n+0 /d 152\n');
  });

  it('a reply holding CR or LF becomes one error line, never a broken frame', () => {
    assert.equal(lines(bulk('a\r\nb')), `-${UNREPRESENTABLE}\n`);
    assert.equal(lines(array([bulk('ok'), bulk('x\ny')])), `-${UNREPRESENTABLE}\n`);
  });

  it('REPLICATE entries are the seed JSON: Type, Key, Value, ExpiresAt in seconds rounded up; base64 when not UTF-8', () => {
    const parse = (b: Buffer): unknown => {
      const s = b.toString('utf8');
      assert.ok(s.startsWith('+') && s.endsWith('\n') && s.indexOf('\n') === s.length - 1, JSON.stringify(s));
      return JSON.parse(s.slice(1));
    };
    const k = Buffer.from('k');
    assert.deepEqual(parse(replicationLine({ type: 'SET', key: k, value: Buffer.from('a\r\nb'), expiresAtMs: 0 })), { Type: 'SET', Key: 'k', Value: 'a\r\nb' });
    assert.deepEqual(parse(replicationLine({ type: 'SET', key: k, value: Buffer.from('v'), expiresAtMs: 1_700_000_000_001 })), { Type: 'SET', Key: 'k', Value: 'v', ExpiresAt: 1_700_000_001 });
    assert.deepEqual(parse(replicationLine({ type: 'DELETE', key: k })), { Type: 'DELETE', Key: 'k' });
    assert.deepEqual(parse(replicationLine({ type: 'SET', key: Buffer.from([0xff]), value: Buffer.from('v'), expiresAtMs: 0 })), { Type: 'SET', Key: '/w==', Value: 'dg==', Encoding: 'base64' });
    assert.deepEqual(parse(replicationLine({ type: 'FLUSH' })), { Type: 'FLUSH' });
  });

  it('live records become each touched key once, at its last place; FLUSH in between; GUARDs skipped', () => {
    const key = (s: string): Buffer => Buffer.from(s);
    const records: WalRecord[] = [
      { lsn: 1, timeMs: 0, kind: 0, ops: [{ code: OpCode.Guard, key: key('g'), kind: 0, volume: 0, offset: 0, expiresAt: 0 }, { code: OpCode.Del, key: key('a') }] },
      { lsn: 2, timeMs: 0, kind: 0, ops: [{ code: OpCode.Expire, key: key('b'), expiresAt: 5 }, { code: OpCode.Flush }, { code: OpCode.Del, key: key('a') }] },
    ];
    assert.deepEqual(touched(records).map((t) => (t === 'flush' ? 'FLUSH' : t.toString())), ['b', 'FLUSH', 'a']);
  });
});

describe('text protocol: --text-addr in the config', () => {
  const parse = (argv: string[]): ReturnType<typeof parseMasterArgs> => parseMasterArgs(argv, {}, NODE20);

  it('is off by default, and set by the flag or the file', () => {
    const off = parse([]);
    assert.ok('config' in off);
    assert.equal(off.config.textAddr ?? null, null);
    const on = parse(['--text-addr', '127.0.0.1:7390']);
    assert.ok('config' in on);
    assert.deepEqual(on.config.textAddr, { host: '127.0.0.1', port: 7390 });
    const seedForm = parse(['--text-addr', ':7390']);
    assert.ok('config' in seedForm);
    assert.deepEqual(seedForm.config.textAddr, { host: '0.0.0.0', port: 7390 });
    const disabled = parse(['--text-addr', '']);
    assert.ok('config' in disabled);
    assert.equal(disabled.config.textAddr ?? null, null);
  });

  it('refuses a bad address and one that collides with the TCP or HTTP address, in one line', () => {
    const errorOf = (argv: string[]): string => {
      const r = parse(argv);
      assert.ok('error' in r, `expected an error for ${argv.join(' ')}`);
      assert.ok(!r.error.includes('\n'));
      return r.error;
    };
    assert.match(errorOf(['--text-addr', 'nope']), /^--text-addr: "nope" is not HOST:PORT/);
    assert.match(errorOf(['--text-addr', '127.0.0.1:70000']), /outside 0-65535/);
    assert.match(errorOf(['--addr', '127.0.0.1:7000', '--text-addr', '127.0.0.1:7000']), /^--text-addr: 127\.0\.0\.1:7000 is also the TCP address \(--addr\)$/);
    assert.match(errorOf(['--addr', ':7000', '--text-addr', '127.0.0.1:7000']), /is also the TCP address/);
    assert.match(errorOf(['--http', '127.0.0.1:7001', '--text-addr', '127.0.0.1:7001']), /^--text-addr: 127\.0\.0\.1:7001 is also the HTTP address \(--http\)$/);
    const ok = parse(['--addr', '127.0.0.1:7000', '--text-addr', '127.0.0.2:7000']);
    assert.ok('config' in ok, 'another host on the same port is fine');
  });
});

// ---- a real master ----------------------------------------------------------------------------

/** `SET key` of a REPLICATE entry line. */
function entryLine(line: string): string {
  const e = JSON.parse(plus(line)) as { Type: string; Key: string };
  return `${e.Type} ${e.Key}`;
}

/** The TCP ports a process listens on (Linux /proc: its socket inodes in LISTEN state); null elsewhere. */
function listeningPorts(pid: number): number[] | null {
  if (!fs.existsSync(`/proc/${pid}/fd`)) return null;
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const row of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      // f[1] local address:port (hex), f[3] state (0A = LISTEN), f[9] inode
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) ports.add(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

let m: MasterProcess;
let textPort: number;
const clients: TextClient[] = [];

async function client(port = textPort): Promise<TextClient> {
  const c = await TextClient.connect(port);
  clients.push(c);
  return c;
}

/** Sends `data`, shuts the write side at once, answers every byte until the close. */
async function halfClose(data: string, port = textPort): Promise<string> {
  const s = await rawConnect(port);
  try {
    s.socket.end(data);
    await s.closed(10_000);
    return s.received().toString('latin1');
  } finally {
    s.destroy();
  }
}

before(async () => {
  textPort = await freePort();
  m = await startMaster({ args: ['--text-addr', `127.0.0.1:${textPort}`] });
});

after(async () => {
  for (const c of clients) c.close();
  await stopAll();
});

describe("text protocol: the seed's commands", () => {
  it('the listening line reports the port, and the master listens on it', T, () => {
    assert.match(m.stderr(), new RegExp(`"text":"127\\.0\\.0\\.1:${textPort}","textPort":${textPort}`));
    const ports = listeningPorts(m.pid);
    if (ports !== null) assert.deepEqual(ports, [m.port, textPort].sort((a, b) => a - b));
  });

  it('SET, SET EX, GET, GET of a missing key, DELETE', T, async () => {
    const c = await client();
    assert.equal(await c.call('SET hello world'), '+OK');
    assert.equal(await c.call('GET hello'), '+world');
    assert.equal(await c.call('SET tok xyz EX 60'), '+OK');
    assert.equal(await c.call('GET tok'), '+xyz');
    assert.equal(await c.call('GET ghost'), '+nil');
    assert.equal(await c.call('DELETE hello'), '+OK');
    assert.equal(await c.call('GET hello'), '+nil');
    assert.equal(await c.call('DELETE hello'), '+OK', 'the seed answered +OK whether or not the key existed');
    assert.equal(await c.call('SET spaced "hello world"'), '+OK');
    assert.equal(await c.call('GET spaced'), '+hello world');
    assert.equal(await c.call('SET empty ""'), '+OK');
    assert.equal(await c.call('GET empty'), '+');
  });

  it('TTL: +<seconds>, +-1 without expiry, +-2 without the key; PERSIST +1 then +0', T, async () => {
    const c = await client();
    assert.equal(await c.call('SET t:ex v EX 60'), '+OK');
    assert.equal(await c.call('TTL t:ex'), '+60');
    assert.equal(await c.call('SET t:plain v'), '+OK');
    assert.equal(await c.call('TTL t:plain'), '+-1');
    assert.equal(await c.call('TTL t:none'), '+-2');
    assert.equal(await c.call('PERSIST t:ex'), '+1');
    assert.equal(await c.call('PERSIST t:ex'), '+0');
    assert.equal(await c.call('TTL t:ex'), '+-1');
  });

  it('COUNT value answers +<n>', T, async () => {
    const c = await client();
    for (const k of ['cnt:a', 'cnt:b', 'cnt:c']) assert.equal(await c.call(`SET ${k} counted-value-7`), '+OK');
    assert.equal(await c.call('COUNT counted-value-7'), '+3');
    assert.equal(await c.call('COUNT nothing-has-this'), '+0');
  });

  it('KEYS pattern: +<n>, then one +key line each', T, async () => {
    const c = await client();
    for (const k of ['kp:1', 'kp:2', 'kp:3']) assert.equal(await c.call(`SET ${k} v`), '+OK');
    assert.deepEqual((await c.list('KEYS kp:*')).sort(), ['kp:1', 'kp:2', 'kp:3']);
    assert.deepEqual(await c.list('KEYS nomatch:*'), []);
  });

  it('SCAN cursor COUNT n: +<next> <n> then the keys; from 0 back to 0 it sees every key once', T, async () => {
    const c = await client();
    const want: string[] = [];
    for (let i = 0; i < 40; i++) {
      want.push(`sc:${i}`);
      assert.equal(await c.call(`SET sc:${i} v`), '+OK');
    }
    const seen: string[] = [];
    let cursor = '0';
    let calls = 0;
    do {
      const page = await c.scan(cursor, 5);
      seen.push(...page.keys);
      cursor = page.next;
      calls++;
      assert.ok(calls < 10_000, 'the scan ends');
    } while (cursor !== '0');
    const mine = seen.filter((k) => k.startsWith('sc:'));
    assert.deepEqual([...new Set(mine)].sort(), want.sort());
  });

  it('BEGIN / COMMIT / ROLLBACK nest: +OK each; an inner ROLLBACK discards only its level', T, async () => {
    const c = await client();
    const other = await client();
    assert.equal(await c.call('BEGIN'), '+OK');
    assert.equal(await c.call('SET tx:x 1'), '+OK');
    assert.equal(await c.call('BEGIN'), '+OK');
    assert.equal(await c.call('SET tx:y 2'), '+OK');
    assert.equal(await c.call('GET tx:y'), '+2', 'a session reads its own writes');
    assert.equal(await c.call('ROLLBACK'), '+OK');
    assert.equal(await c.call('GET tx:y'), '+nil');
    assert.equal(await other.call('GET tx:x'), '+nil', 'not visible to others before COMMIT');
    assert.equal(await c.call('COMMIT'), '+OK');
    assert.equal(await other.call('GET tx:x'), '+1');
    assert.equal(await c.call('END'), '-ERR ROLLBACK without BEGIN', "END is the seed's ROLLBACK");
    assert.equal(await c.call('COMMIT'), '-ERR COMMIT without BEGIN');
    assert.equal(await c.call('BEGIN'), '+OK');
    assert.equal(await c.call('SET tx:gone 1'), '+OK');
    c.close();
    await sleep(200);
    assert.equal(await other.call('GET tx:gone'), '+nil', 'a connection that closes mid-transaction applies nothing');
  });

  it('COMPACT answers +OK and the data survives; VOLINFO lists +<id> <drive> <size_bytes>', T, async () => {
    const c = await client();
    assert.equal(await c.call('SET vol:k before-compact'), '+OK');
    assert.equal(await c.call('COMPACT', 15_000), '+OK');
    assert.equal(await c.call('GET vol:k'), '+before-compact');
    const volumes = await c.list('VOLINFO');
    assert.ok(volumes.length >= 1);
    for (const v of volumes) assert.match(v, /^\d+ \S+ \d+$/, v);
    assert.ok(volumes.some((v) => v.split(' ')[1] === m.dataDir && Number(v.split(' ')[2]) > 0), JSON.stringify(volumes));
  });

  it('other commands of the shared table: MGET lists, INCR counts, errors are -ERR lines', T, async () => {
    const c = await client();
    assert.equal(await c.call('SET mg:a 1'), '+OK');
    assert.deepEqual(await c.list('MGET mg:a mg:none'), ['1', 'nil']);
    assert.equal(await c.call('INCR mg:a'), '+2');
    assert.equal(await c.call('DEL mg:a mg:none'), '+1', 'DEL keeps the count; only DELETE has the seed shape');
    assert.equal(await c.call('SET mg:b'), "-ERR wrong number of arguments for 'set' command");
    assert.equal(await c.call('MULTI'), "-ERR 'multi' is not available on the line protocol: use the RESP port (--addr)");
    assert.equal(await c.call('PING'), '+PONG');
  });

  it('a value holding CR or LF: GET answers an error naming the RESP port, the connection goes on', T, async () => {
    const r = await rawConnect(m.port);
    try {
      r.send(resp('SET', 'crlf:k', 'line1\r\nline2'));
      await r.until((t) => t === '+OK\r\n');
    } finally {
      r.destroy();
    }
    const c = await client();
    assert.equal(await c.call('GET crlf:k'), `-${UNREPRESENTABLE}`);
    assert.equal(await c.call('SET crlf:ok fine'), '+OK');
    assert.equal(await c.call('GET crlf:ok'), '+fine');
    assert.deepEqual(c.pending(), []);
  });

  it('a pipeline of 1,000 lines is answered in order', T, async () => {
    const c = await client();
    const lines: string[] = [];
    for (let i = 0; i < 500; i++) lines.push(`SET pl:${i} v${i}`);
    for (let i = 0; i < 500; i++) lines.push(`GET pl:${i}`);
    c.socket.write(lines.join('\n') + '\n');
    for (let i = 0; i < 500; i++) assert.equal(await c.line(), '+OK');
    for (let i = 0; i < 500; i++) assert.equal(await c.line(), `+v${i}`);
  });

  it('STOP answers +OK and closes the connection; lines after it are not run', T, async () => {
    const c = await client();
    c.socket.write('SET stop:a 1\nSTOP\nSET stop:b 1\n');
    assert.equal(await c.line(), '+OK');
    assert.equal(await c.line(), '+OK');
    await c.closed();
    assert.deepEqual(c.pending(), []);
    const d = await client();
    assert.equal(await d.call('GET stop:b'), '+nil');
  });
});

describe('text protocol: bad input gets -ERR and the connection keeps working', () => {
  it('an unknown command, a wrong arity, a line past the limit', T, async () => {
    const c = await client();
    assert.equal(await c.call('FROB x'), "-ERR unknown command 'FROB', with args beginning with: 'x' ");
    assert.equal(await c.call('GET'), "-ERR wrong number of arguments for 'get' command");
    c.send(`SET long:k ${'x'.repeat(70_000)}`);
    assert.match(await c.line(), /^-ERR line too long: more than 65536 bytes/);
    assert.equal(await c.call('GET long:k'), '+nil', 'the long line was not run');
    assert.equal(await c.call('SET after:long ok'), '+OK');
    assert.equal(await c.call('GET after:long'), '+ok');
  });

  it("unbalanced quotes are split on whitespace, as the seed split every line (O'Brien)", T, async () => {
    const c = await client();
    assert.equal(await c.call("SET name O'Brien"), '+OK');
    assert.equal(await c.call('GET name'), "+O'Brien");
  });
});

describe('text protocol: half-close', () => {
  it('echo "SET hello world" | nc: +OK, then the close', T, async () => {
    assert.equal(await halfClose('SET hc:hello world\n'), '+OK\n');
    assert.equal(await halfClose('GET hc:hello\n'), '+world\n');
  });

  it('every reply to what was sent before the FIN, the last line even without its LF', T, async () => {
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) lines.push(`SET hc:p${i} ${i}`);
    lines.push('KEYS hc:p1');
    const got = await halfClose(lines.join('\n') + '\nGET hc:p299');
    assert.equal(got, '+OK\n'.repeat(300) + '+1\n+hc:p1\n+299\n');
  });

  it('with nc -q1, when installed', { ...T, skip: hasProgram('nc') ? false : 'nc is not installed' }, () => {
    const r = spawnSync('sh', ['-c', `echo "SET nc:hello world" | nc -q1 127.0.0.1 ${textPort}; echo "GET nc:hello" | nc -q1 127.0.0.1 ${textPort}`], { timeout: 10_000, encoding: 'utf8' });
    assert.equal(r.stdout, '+OK\n+world\n', r.stderr);
  });
});

describe('text protocol: pub/sub', () => {
  it('SUBSCRIBE answers one line per channel; PUBLISH +<receivers>; subscribers get +MESSAGE channel payload', T, async () => {
    const sub = await client();
    const pub = await client();
    assert.deepEqual(await sub.subscribe('news', 'sports'), ['+SUBSCRIBE news 1', '+SUBSCRIBE sports 2']);
    assert.equal(await pub.call('PUBLISH news "breaking"'), '+1');
    assert.deepEqual(await sub.message(), { channel: 'news', payload: 'breaking' });
    assert.equal(await pub.call('PUBLISH sports "a b c"'), '+1');
    assert.deepEqual(await sub.message(), { channel: 'sports', payload: 'a b c' });
    // A subscribed connection still runs commands, as the seed's did.
    assert.equal(await sub.call('SET sub:k v'), '+OK');
    assert.equal(await sub.call('UNSUBSCRIBE news'), '+UNSUBSCRIBE news 1');
    assert.equal(await pub.call('PUBLISH news "nobody"'), '+0');
    assert.equal(await sub.call('UNSUBSCRIBE'), '+UNSUBSCRIBE sports 0');
    assert.equal(await sub.call('UNSUBSCRIBE'), '+UNSUBSCRIBE nil 0', 'one line even with nothing to drop');
    assert.equal(await pub.call('PUBLISH sports x'), '+0');
    assert.deepEqual(sub.pending(), []);
  });

  it('a RESP client publishes to a text subscriber, and a text client to a RESP subscriber', T, async () => {
    const sub = await client();
    assert.deepEqual(await sub.subscribe('mixed'), ['+SUBSCRIBE mixed 1']);
    const r = await rawConnect(m.port);
    try {
      r.send(resp('PUBLISH', 'mixed', 'from resp'));
      await r.until((t) => t === ':1\r\n', 5000, 'PUBLISH to count the text subscriber');
      assert.deepEqual(await sub.message(), { channel: 'mixed', payload: 'from resp' });
      const rs = await rawConnect(m.port);
      try {
        rs.send(resp('SUBSCRIBE', 'to-resp'));
        await rs.until((t) => t.endsWith(':1\r\n'), 5000, 'the RESP subscription');
        assert.equal(await sub.call('PUBLISH to-resp "hi there"'), '+1');
        await rs.until((t) => t.includes('$8\r\nhi there\r\n'), 5000, 'the message on RESP');
      } finally {
        rs.destroy();
      }
    } finally {
      r.destroy();
    }
  });

  it('PSUBSCRIBE gets +PMESSAGE pattern channel payload; a payload with CR/LF becomes an error line', T, async () => {
    const sub = await client();
    assert.equal(await sub.call('PSUBSCRIBE ps.*'), '+PSUBSCRIBE ps.* 1');
    const pub = await client();
    assert.equal(await pub.call('PUBLISH ps.one hello'), '+1');
    assert.equal(await sub.line(), '+PMESSAGE ps.* ps.one hello');
    assert.equal(await pub.call('PUBLISH ps.two "x\\ny"'), '+1');
    assert.match(await sub.line(), /^-ERR a message on channel 'ps\.two' was dropped: it holds a CR or LF byte/);
    assert.equal(await sub.call('SUBSCRIBE "a b"'), '-ERR a channel or pattern on the line protocol cannot hold a space, tab, CR or LF: use the RESP port (--addr)');
    assert.equal(await sub.call('PING'), '+PONG');
  });
});

describe('text protocol: REPLICATE', () => {
  type Entry = { Type: string; Key: string; Value?: string; ExpiresAt?: number };
  const entry = (line: string): Entry => JSON.parse(plus(line)) as Entry;

  it('+{json} snapshot lines, then +READY, then live entries as +{json} lines', T, async () => {
    const w = await client();
    assert.equal(await w.call('SET rep:a 1'), '+OK');
    assert.equal(await w.call('SET rep:b "hello world" EX 100'), '+OK');
    const r = await rawConnect(m.port);
    r.send(resp('SET', 'rep:crlf', 'x\r\ny'));
    await r.until((t) => t === '+OK\r\n');
    r.destroy();
    const startedAt = Date.now();

    const replica = await client();
    replica.send('REPLICATE');
    const snapshot = new Map<string, Entry>();
    for (let line = await replica.line(); line !== '+READY'; line = await replica.line()) {
      const e = entry(line);
      assert.equal(e.Type, 'SET', line);
      snapshot.set(e.Key, e);
    }
    assert.deepEqual(snapshot.get('rep:a'), { Type: 'SET', Key: 'rep:a', Value: '1' });
    assert.equal(snapshot.get('rep:crlf')?.Value, 'x\r\ny', 'JSON carries CR and LF inside one line');
    const b = snapshot.get('rep:b')!;
    assert.equal(b.Value, 'hello world');
    assert.ok(b.ExpiresAt! >= Math.floor(startedAt / 1000) + 98 && b.ExpiresAt! <= Math.ceil(Date.now() / 1000) + 101, `ExpiresAt ${b.ExpiresAt}`);
    assert.ok(!snapshot.has('hello'), 'a deleted key is not in the snapshot');

    const next = async (key: string): Promise<Entry> => {
      for (;;) {
        const e = entry(await replica.line(5000, `a live entry for ${key}`));
        if (e.Key === key) return e;
      }
    };
    assert.equal(await w.call('SET rep:live v1'), '+OK');
    assert.deepEqual(await next('rep:live'), { Type: 'SET', Key: 'rep:live', Value: 'v1' });
    assert.equal(await w.call('DELETE rep:live'), '+OK');
    assert.deepEqual(await next('rep:live'), { Type: 'DELETE', Key: 'rep:live' });
    assert.equal(await w.call('BEGIN'), '+OK');
    assert.equal(await w.call('SET rep:t1 x'), '+OK');
    assert.equal(await w.call('SET rep:t2 y'), '+OK');
    assert.equal(await w.call('COMMIT'), '+OK');
    assert.deepEqual(await next('rep:t1'), { Type: 'SET', Key: 'rep:t1', Value: 'x' });
    assert.deepEqual(await next('rep:t2'), { Type: 'SET', Key: 'rep:t2', Value: 'y' });
    // What a replica sends is ignored: the connection only streams.
    replica.send('GET rep:a');
    assert.equal(await w.call('SET rep:after ok'), '+OK');
    assert.deepEqual(await next('rep:after'), { Type: 'SET', Key: 'rep:after', Value: 'ok' });
  });

  it('a replica that shuts its write side after +READY is closed (the seed stopped at its EOF)', T, async () => {
    const r = await rawConnect(textPort);
    try {
      r.send('REPLICATE\n');
      await r.until((t) => t.endsWith('+READY\n'), 5000, '+READY');
      assert.equal(r.isClosed(), false);
      r.socket.end();
      await r.closed(5000);
    } finally {
      r.destroy();
    }
  });

  it('echo REPLICATE | nc: the snapshot and +READY, then the close', T, async () => {
    const got = await halfClose('REPLICATE\n');
    const lines = got.split('\n');
    assert.equal(lines.pop(), '', 'ends with a whole line');
    assert.equal(lines.pop(), '+READY');
    assert.ok(lines.length > 0 && lines.every((l) => entry(l).Type === 'SET'));
  });
});

describe('text protocol: AUTH, limits, and off without the flag', () => {
  it('with requirepass: -NOAUTH until AUTH; a connection past maxclients gets -ERR and the close', T, async () => {
    const port = await freePort();
    const a = await startMaster({ args: ['--text-addr', `127.0.0.1:${port}`, '--requirepass', 'pw', '--maxclients', '3', '--tcp-threads', '1'] });
    const c = await client(port);
    assert.equal(await c.call('GET x'), '-NOAUTH Authentication required.');
    assert.equal(await c.call('REPLICATE'), '-NOAUTH Authentication required.');
    assert.equal(await c.call('AUTH wrong'), '-WRONGPASS invalid username-password pair or user is disabled.');
    assert.equal(await c.call('AUTH pw'), '+OK');
    assert.equal(await c.call('SET x 1'), '+OK');
    assert.equal(await c.call('GET x'), '+1');
    const more = [await client(port), await client(port)];
    for (const k of more) assert.equal(await k.call('PING'), '-NOAUTH Authentication required.');
    const extra = await client(port);
    assert.equal(await extra.line(), '-ERR max number of clients reached');
    await extra.closed();
    // A clean stop with a replica and a subscriber connected: exit 0, both closed.
    for (const k of more) k.close();
    await sleep(100);
    const replica = await client(port);
    assert.equal(await replica.call('AUTH pw'), '+OK');
    replica.send('REPLICATE');
    assert.equal(entryLine(await replica.line()), 'SET x');
    assert.equal(await replica.line(), '+READY');
    assert.equal(await c.call('SUBSCRIBE ch'), '+SUBSCRIBE ch 1');
    assert.equal(await a.stop(), 0);
    await replica.closed();
    await c.closed();
  });

  it('the port is not open without --text-addr, and the RESP port still speaks RESP', T, async () => {
    const b = await startMaster();
    assert.match(b.stderr(), /"text":null,"textPort":null/);
    const r = await rawConnect(b.port);
    try {
      r.send('SET k v\r\nGET k\r\n');
      await r.until((t) => t === '+OK\r\n$1\r\nv\r\n');
    } finally {
      r.destroy();
    }
    // Its only listening socket is the RESP port (HTTP is off in these tests).
    const ports = listeningPorts(b.pid);
    if (ports !== null) assert.deepEqual(ports, [b.port]);
    // A port given to --text-addr elsewhere is refused here: nothing serves it.
    const port = await freePort();
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED');
    await b.stop();
  });
});
