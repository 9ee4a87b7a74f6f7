// Regression (issue 9, defect 1): replies lost on a half-closed connection. A client that sends
// its commands and then shuts down its write side (FIN: `echo "SET hello world" | nc -N`, the
// seed's own first example) must get every reply to what it sent before the connection ends,
// as Redis does. Raw sockets, byte for byte, for every command family: inline and multibulk
// writes and reads, MULTI/EXEC, a pipeline of 1,000 commands, a BEGIN/COMMIT transaction.
// Invariants: the master is stopped by its PID (stopAll in `after`); every wait is bounded.
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { rawConnect, resp, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';

const T = { timeout: 20_000 };
let m: MasterProcess;
before(async () => {
  m = await startMaster();
});
after(async () => {
  await stopAll();
});

/** Sends `data`, shuts down the write side at once, and answers every byte until the close. */
async function halfClose(data: string | Buffer): Promise<string> {
  const s = await rawConnect(m.port);
  try {
    s.socket.end(data);
    await s.closed(10_000);
    return s.received().toString('latin1');
  } finally {
    s.destroy();
  }
}

describe('a client that half-closes after its commands gets every reply, then the close', () => {
  it('inline SET, then inline GET (the seed example: echo "SET hello world" | nc -N)', T, async () => {
    assert.equal(await halfClose('SET hello world\r\n'), '+OK\r\n');
    assert.equal(await halfClose('GET hello\n'), '$5\r\nworld\r\n');
  });

  it('multibulk writes and reads: SET, GET, DEL, EXISTS, an empty value', T, async () => {
    const got = await halfClose(Buffer.concat([resp('SET', 'hc:a', '1'), resp('SET', 'hc:e', ''), resp('GET', 'hc:a'), resp('GET', 'hc:e'), resp('DEL', 'hc:a'), resp('EXISTS', 'hc:a')]));
    assert.equal(got, '+OK\r\n+OK\r\n$1\r\n1\r\n$0\r\n\r\n:1\r\n:0\r\n');
  });

  it('MULTI / EXEC', T, async () => {
    const got = await halfClose(Buffer.concat([resp('MULTI'), resp('SET', 'hc:m', 'v'), resp('GET', 'hc:m'), resp('EXEC')]));
    assert.equal(got, '+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\nv\r\n');
  });

  it('BEGIN / COMMIT', T, async () => {
    const got = await halfClose(Buffer.concat([resp('BEGIN'), resp('SET', 'hc:t', 'x'), resp('COMMIT'), resp('GET', 'hc:t')]));
    assert.equal(got, '+OK\r\n+OK\r\n+OK\r\n$1\r\nx\r\n');
  });

  it('read-modify-write and keyspace commands: INCR, APPEND, GETDEL, RENAME, EXPIRE, LCS, FLUSHALL', T, async () => {
    const got = await halfClose(Buffer.concat([
      resp('INCR', 'hc:n'), resp('INCRBYFLOAT', 'hc:n', '0.5'), resp('APPEND', 'hc:s', 'ab'), resp('RENAME', 'hc:s', 'hc:r'),
      resp('EXPIRE', 'hc:r', '100', 'NX'), resp('LCS', 'hc:r', 'hc:n'), resp('GETDEL', 'hc:r'), resp('FLUSHALL'), resp('DBSIZE'),
    ]));
    assert.equal(got, ':1\r\n$3\r\n1.5\r\n:2\r\n+OK\r\n:1\r\n$0\r\n\r\n$2\r\nab\r\n+OK\r\n:0\r\n');
  });

  it('WATCH / MULTI / EXEC, and a pub/sub round (SUBSCRIBE, then the close)', T, async () => {
    const got = await halfClose(Buffer.concat([resp('WATCH', 'hc:w'), resp('MULTI'), resp('INCR', 'hc:w'), resp('EXEC'), resp('SUBSCRIBE', 'hc:ch')]));
    assert.equal(got, '+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nhc:ch\r\n:1\r\n');
  });

  it('a pipeline of 1,000 commands (500 SETs, then 500 GETs)', T, async () => {
    const cmds: Buffer[] = [];
    for (let i = 0; i < 500; i++) cmds.push(resp('SET', `hc:p${i}`, `v${i}`));
    for (let i = 0; i < 500; i++) cmds.push(resp('GET', `hc:p${i}`));
    const got = await halfClose(Buffer.concat(cmds));
    let want = '+OK\r\n'.repeat(500);
    for (let i = 0; i < 500; i++) want += `$${`v${i}`.length}\r\nv${i}\r\n`;
    assert.equal(got, want);
  });

  it('a command cut short by the FIN is dropped, the ones before it answered', T, async () => {
    assert.equal(await halfClose(Buffer.concat([resp('SET', 'hc:c', '1'), Buffer.from('*2\r\n$3\r\nGET')])), '+OK\r\n');
  });
});
