// Limits of the TCP front end, byte for byte over raw sockets, against masters started as
// child processes with small limits: protocol errors close only the offending connection,
// --proto-max-bulk-len, the small limits of an unauthenticated client (--requirepass),
// --maxclients, --timeout. Error texts are Redis' own.
// Invariants: every master is stopped by its own PID (stopAll in `after`); every read and
// close is awaited with a bound; every socket is destroyed.
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { rawConnect, resp, sleep, startMaster, stopAll, type MasterProcess, type RawConnection } from './helpers/master_process.js';

const T = { timeout: 20_000 };
const sockets: RawConnection[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  await stopAll();
});

async function open(m: MasterProcess): Promise<RawConnection> {
  const s = await rawConnect(m.port);
  sockets.push(s);
  return s;
}

/** Sends and waits for `n` complete CRLF-terminated lines (simple replies). */
async function lines(s: RawConnection, data: string | Buffer, n = 1): Promise<string> {
  const start = s.received().length;
  s.send(data);
  const text = await s.until((t) => t.slice(start).split('\r\n').length > n, 5000, `${n} reply line(s) to ${JSON.stringify(String(data).slice(0, 60))}`);
  return text.slice(start);
}

const BULK_LIMIT = 64 * 1024;

describe(`protocol errors and --proto-max-bulk-len ${BULK_LIMIT}`, () => {
  let m: MasterProcess;
  before(async () => {
    m = await startMaster({ args: ['--proto-max-bulk-len', String(BULK_LIMIT)] });
  });

  it('`*abc` answers -ERR Protocol error and closes that connection; another keeps working', T, async () => {
    const bystander = await open(m);
    assert.equal(await lines(bystander, resp('SET', 'by', 'stander')), '+OK\r\n');
    const bad = await open(m);
    bad.send('*abc\r\n');
    await bad.closed();
    assert.equal(bad.received().toString('latin1'), '-ERR Protocol error: invalid multibulk length\r\n');
    assert.equal(await lines(bystander, resp('GET', 'by'), 2), '$7\r\nstander\r\n');
    const fresh = await open(m);
    assert.equal(await lines(fresh, 'PING\r\n'), '+PONG\r\n');
  });

  it('regression: after a protocol error the connection is closed at once, not read for seconds', T, async () => {
    // A client that ignores the server's FIN (half-open) and keeps sending after its error:
    // the server must close, not take megabytes for 5 s.
    const s = net.connect({ port: m.port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    let received = '';
    s.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const junk = Buffer.alloc(64 * 1024, 0x61);
    const started = Date.now();
    let gone = false;
    const ended = new Promise<void>((resolve) => {
      s.on('error', () => resolve());
      s.on('close', () => resolve());
    }).then(() => void (gone = true));
    s.write('*abc\r\n');
    try {
      while (!gone && Date.now() - started < 4000) {
        s.write(junk);
        await sleep(10);
      }
      await Promise.race([ended, sleep(1000)]);
    } finally {
      s.destroy();
    }
    const ms = Date.now() - started;
    assert.ok(gone && ms < 1500, `the server kept the connection for ${ms} ms, taking ${s.bytesWritten} bytes`);
    assert.ok(received.startsWith('-ERR Protocol error: invalid multibulk length\r\n'), JSON.stringify(received.slice(0, 80)));
  });

  it('other malformed input: the Redis error, then a close', T, async () => {
    const cases: Array<[string, string]> = [
      ['*1\r\n$abc\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
      ['*1\r\n+PING\r\n', "-ERR Protocol error: expected '$', got '+'\r\n"],
      ['*2\r\n$3\r\nGET\r\n$-5\r\n', '-ERR Protocol error: invalid bulk length\r\n'],
      ['SET "a b\r\n', '-ERR Protocol error: unbalanced quotes in request\r\n'],
      ['x'.repeat(70 * 1024), '-ERR Protocol error: too big inline request\r\n'],
    ];
    for (const [input, reply] of cases) {
      const s = await open(m);
      s.send(input);
      await s.closed();
      assert.equal(s.received().toString('latin1'), reply, `reply to ${JSON.stringify(input.slice(0, 30))}`);
    }
  });

  it('inline commands and pipelining work', T, async () => {
    const s = await open(m);
    assert.equal(await lines(s, 'SET hello world\r\nGET hello\r\nPING\r\n', 4), '+OK\r\n$5\r\nworld\r\n+PONG\r\n');
  });

  it('a bulk over the limit is refused and the connection closed; one at the limit is stored', T, async () => {
    const s = await open(m);
    s.send(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${BULK_LIMIT + 1}\r\n`);
    await s.closed();
    assert.equal(s.received().toString('latin1'), '-ERR Protocol error: invalid bulk length\r\n');
    const ok = await open(m);
    const value = Buffer.alloc(BULK_LIMIT, 0x61);
    assert.equal(await lines(ok, resp('SET', 'k', value)), '+OK\r\n');
    assert.equal(await lines(ok, resp('STRLEN-IS-NOT-A-COMMAND')), "-ERR unknown command 'STRLEN-IS-NOT-A-COMMAND', with args beginning with: \r\n");
    ok.send(resp('GET', 'k'));
    const text = await ok.until((t) => t.endsWith(`${'a'.repeat(10)}\r\n`), 5000, 'GET of the value at the limit');
    assert.ok(text.includes(`$${BULK_LIMIT}\r\n${'a'.repeat(BULK_LIMIT)}\r\n`));
  });
});

describe('an unauthenticated client (--requirepass) gets small limits', () => {
  let m: MasterProcess;
  before(async () => {
    m = await startMaster({ args: ['--requirepass', 'limits-pw'] });
  });

  it('regression: a big multibulk count before AUTH answers Redis\' "unauthenticated multibulk length" and closes', T, async () => {
    const s = await open(m);
    s.send('*100\r\n');
    await s.closed();
    assert.equal(s.received().toString('latin1'), '-ERR Protocol error: unauthenticated multibulk length\r\n');
  });

  it('regression: a big bulk before AUTH answers "unauthenticated bulk length" and closes, before the body is sent', T, async () => {
    const s = await open(m);
    s.send('*2\r\n$4\r\nAUTH\r\n$1000000\r\n');
    await s.closed();
    assert.equal(s.received().toString('latin1'), '-ERR Protocol error: unauthenticated bulk length\r\n');
  });

  it('before AUTH: NOAUTH for commands, WRONGPASS; after AUTH the full limits apply', T, async () => {
    const s = await open(m);
    assert.equal(await lines(s, resp('GET', 'x')), '-NOAUTH Authentication required.\r\n');
    assert.equal(await lines(s, resp('AUTH', 'nope')), '-WRONGPASS invalid username-password pair or user is disabled.\r\n');
    assert.equal(await lines(s, resp('AUTH', 'limits-pw')), '+OK\r\n');
    const pairs: string[] = [];
    for (let i = 0; i < 50; i++) pairs.push(`k${i}`, `v${i}`);
    assert.equal(await lines(s, resp('MSET', ...pairs)), '+OK\r\n', 'a 101-element multibulk after AUTH');
    assert.equal(await lines(s, resp('SET', 'big', Buffer.alloc(100_000, 0x62))), '+OK\r\n', 'a 100 KB bulk after AUTH');
    assert.equal(await lines(s, resp('EXISTS', 'big', 'k49')), ':2\r\n');
  });
});

describe('--maxclients 3', () => {
  let m: MasterProcess;
  before(async () => {
    m = await startMaster({ args: ['--maxclients', '3'] });
  });

  it('the 4th connection gets -ERR max number of clients reached and is closed; after one leaves, a new one is served', T, async () => {
    const three = [await open(m), await open(m), await open(m)];
    for (const s of three) assert.equal(await lines(s, 'PING\r\n'), '+PONG\r\n');
    const fourth = await open(m);
    await fourth.closed();
    assert.equal(fourth.received().toString('latin1'), '-ERR max number of clients reached\r\n');
    for (const s of three) assert.equal(await lines(s, 'PING\r\n'), '+PONG\r\n', 'the others are untouched');
    three[0]!.destroy();
    // The server sees the close asynchronously: retry for a bounded time.
    const deadline = Date.now() + 5000;
    for (;;) {
      const next = await open(m);
      next.send('PING\r\n');
      const text = await next.until((t) => t.includes('\r\n'), 5000, 'a reply');
      if (text === '+PONG\r\n') break;
      assert.equal(text, '-ERR max number of clients reached\r\n');
      assert.ok(Date.now() < deadline, 'a slot frees up after a client leaves');
      await sleep(50);
    }
  });
});

describe('--timeout 1', () => {
  let m: MasterProcess;
  before(async () => {
    m = await startMaster({ args: ['--timeout', '1'] });
  });

  it('closes an idle client; an active one stays', T, async () => {
    const idle = await open(m);
    const active = await open(m);
    assert.equal(await lines(idle, 'PING\r\n'), '+PONG\r\n');
    const started = Date.now();
    const pinging = (async () => {
      while (!idle.isClosed() && Date.now() - started < 6000) {
        assert.equal(await lines(active, 'PING\r\n'), '+PONG\r\n');
        await sleep(250);
      }
    })();
    await idle.closed(6000);
    const after = Date.now() - started;
    assert.ok(after >= 900, `closed after ${after} ms, not before the timeout`);
    await pinging;
    assert.equal(active.isClosed(), false, 'a client that keeps talking is not closed');
    assert.equal(await lines(active, 'PING\r\n'), '+PONG\r\n');
  });
});
