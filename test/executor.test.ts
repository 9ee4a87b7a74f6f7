// Every command through execute() (src/frontend/executor.ts) against a real database: openInThread on
// NodeFs in a fresh temp dir. Checks the replies a RESP client and the REPL will see, the
// Redis error texts of option parsing, and the mapping of StoreErrors to ERR replies.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openInThread, type InThreadDatabase } from '../src/wiring/in_thread.js';
import { systemScheduler } from '../src/runtime/scheduler.js';
import { execute, errorReply } from '../src/frontend/executor.js';
import { NodeFs } from '../src/runtime/fs.js';
import { systemClock } from '../src/runtime/clock.js';
import { OK, array, bulk, error, integer, simple, NULL_BULK, type Reply } from '../src/protocol/reply.js';
import { StoreError } from '../src/runtime/errors.js';

let dir: string;
let db: InThreadDatabase;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brisedb-executor-'));
  db = await openInThread({ fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, dir, limits: { maxKeyLength: 64, maxKeysReply: 50 } });
});

after(async () => {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs a command written as words (or Buffers) on the database itself. */
function run(...words: (string | Buffer)[]): Promise<Reply> {
  return execute(db, words.map((w) => (typeof w === 'string' ? Buffer.from(w) : w)), db);
}

function itemsOf(reply: Reply): readonly Reply[] {
  assert.equal(reply.kind, 'array');
  return (reply as { items: readonly Reply[] }).items;
}

function textOf(reply: Reply): string {
  assert.equal(reply.kind, 'bulk');
  return String((reply as { value: Buffer }).value);
}

function errorText(reply: Reply): string {
  assert.equal(reply.kind, 'error', `expected an error, got ${JSON.stringify(reply)}`);
  return (reply as { message: string }).message;
}

test('SET and GET, binary-safe; GET of a missing key is nil', async () => {
  assert.deepEqual(await run('SET', 'k1', 'v1'), OK);
  assert.deepEqual(await run('GET', 'k1'), bulk('v1'));
  assert.deepEqual(await run('get', 'missing'), NULL_BULK);
  const key = Buffer.from([0, 1, 2, 0xff]);
  const value = Buffer.from([0xfe, 0, 0x0d, 0x0a]);
  assert.deepEqual(await run('SET', key, value), OK);
  assert.deepEqual(await run('GET', key), bulk(value));
});

test('SET EX/PX set a TTL; bad options answer the Redis errors', async () => {
  assert.deepEqual(await run('SET', 'ttl1', 'v', 'EX', '100'), OK);
  const ttl = await run('TTL', 'ttl1');
  assert.equal(ttl.kind, 'integer');
  assert.ok((ttl as { value: number }).value > 98 && (ttl as { value: number }).value <= 100);
  assert.deepEqual(await run('SET', 'ttl2', 'v', 'px', '50000'), OK);
  const pttl = (await run('PTTL', 'ttl2')) as { value: number };
  assert.ok(pttl.value > 40_000 && pttl.value <= 50_000);
  assert.equal(errorText(await run('SET', 'k', 'v', 'EX')), 'ERR syntax error');
  assert.equal(errorText(await run('SET', 'k', 'v', 'EX', '1', 'PX', '1')), 'ERR syntax error');
  assert.equal(errorText(await run('SET', 'k', 'v', 'BOGUS')), 'ERR syntax error');
  assert.equal(errorText(await run('SET', 'k', 'v', 'NX', 'XX')), 'ERR syntax error');
  assert.equal(errorText(await run('SET', 'k', 'v', 'KEEPTTL', 'EX', '5')), 'ERR syntax error');
  assert.equal(errorText(await run('SET', 'k', 'v', 'EX', 'abc')), 'ERR value is not an integer or out of range');
  assert.equal(errorText(await run('SET', 'k', 'v', 'EX', '+5')), 'ERR value is not an integer or out of range');
  assert.equal(errorText(await run('SET', 'k', 'v', 'EX', '0')), "ERR invalid expire time in 'set' command");
  assert.equal(errorText(await run('SET', 'k', 'v', 'PX', '-1')), "ERR invalid expire time in 'set' command");
  assert.equal(errorText(await run('SET', 'k', 'v', 'EX', '9007199254740')), "ERR invalid expire time in 'set' command");
  // None of the refused SETs wrote anything.
  assert.deepEqual(await run('GET', 'k'), NULL_BULK);
});

test('SET NX / XX / GET / KEEPTTL / EXAT / PXAT behave as in Redis', async () => {
  assert.deepEqual(await run('SET', 'c1', 'v1', 'NX'), OK);
  assert.deepEqual(await run('SET', 'c1', 'v2', 'NX'), NULL_BULK, 'NX on an existing key: nil, not set');
  assert.deepEqual(await run('GET', 'c1'), bulk('v1'));
  assert.deepEqual(await run('SET', 'c2', 'v', 'XX'), NULL_BULK, 'XX on a missing key: nil');
  assert.deepEqual(await run('EXISTS', 'c2'), integer(0));
  assert.deepEqual(await run('SET', 'c1', 'v3', 'XX'), OK);
  assert.deepEqual(await run('SET', 'c1', 'v4', 'GET'), bulk('v3'), 'GET answers the old value');
  assert.deepEqual(await run('SET', 'c3', 'v', 'GET'), NULL_BULK, 'GET of a missing key: nil, and it is set');
  assert.deepEqual(await run('GET', 'c3'), bulk('v'));
  assert.deepEqual(await run('SET', 'c1', 'v5', 'NX', 'GET'), bulk('v4'), 'NX GET: the old value, not set');
  assert.deepEqual(await run('GET', 'c1'), bulk('v4'));
  assert.deepEqual(await run('SET', 'c4', 'v', 'EX', '100'), OK);
  assert.deepEqual(await run('SET', 'c4', 'w', 'KEEPTTL'), OK);
  const kept = (await run('TTL', 'c4')) as { value: number };
  assert.ok(kept.value > 98 && kept.value <= 100, `KEEPTTL kept the TTL: ${kept.value}`);
  assert.deepEqual(await run('SET', 'c4', 'x'), OK);
  assert.deepEqual(await run('TTL', 'c4'), integer(-1), 'a plain SET drops the TTL');
  const at = Math.floor(Date.now() / 1000) + 1000;
  assert.deepEqual(await run('SET', 'c5', 'v', 'EXAT', String(at)), OK);
  const exat = (await run('TTL', 'c5')) as { value: number };
  assert.ok(exat.value > 990 && exat.value <= 1000, `EXAT: ${exat.value}`);
  assert.deepEqual(await run('SET', 'c6', 'v', 'PXAT', String(Date.now() - 1000)), OK);
  assert.deepEqual(await run('GET', 'c6'), NULL_BULK, 'PXAT in the past: expired at once');
});

test('SET NX is atomic across sessions: of 20 racing writers exactly one wins', async () => {
  const sessions = Array.from({ length: 20 }, () => db.session());
  const replies = await Promise.all(sessions.map((s, i) => execute(s, ['SET', 'race', `w${i}`, 'NX'].map((a) => Buffer.from(a)))));
  assert.equal(replies.filter((r) => r.kind === 'simple').length, 1);
  assert.equal(replies.filter((r) => r.kind === 'bulk' && r.value === null).length, 19);
});

test('a short TTL expires the key', async () => {
  assert.deepEqual(await run('SET', 'short', 'v', 'PX', '30'), OK);
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(await run('GET', 'short'), NULL_BULK);
  assert.deepEqual(await run('TTL', 'short'), integer(-2));
});

test('TTL/PTTL: -1 without expiry, -2 without key', async () => {
  await run('SET', 'forever', 'v');
  assert.deepEqual(await run('TTL', 'forever'), integer(-1));
  assert.deepEqual(await run('PTTL', 'forever'), integer(-1));
  assert.deepEqual(await run('TTL', 'nokey'), integer(-2));
  assert.deepEqual(await run('PTTL', 'nokey'), integer(-2));
});

test('EXPIRE, PEXPIRE, PERSIST', async () => {
  await run('SET', 'e1', 'v');
  assert.deepEqual(await run('EXPIRE', 'e1', '100'), integer(1));
  assert.ok(((await run('PTTL', 'e1')) as { value: number }).value > 90_000);
  assert.deepEqual(await run('PERSIST', 'e1'), integer(1));
  assert.deepEqual(await run('PERSIST', 'e1'), integer(0));
  assert.deepEqual(await run('TTL', 'e1'), integer(-1));
  assert.deepEqual(await run('PEXPIRE', 'e1', '100000'), integer(1));
  assert.ok(((await run('PTTL', 'e1')) as { value: number }).value > 90_000);
  assert.deepEqual(await run('EXPIRE', 'nokey', '10'), integer(0));
  assert.equal(errorText(await run('EXPIRE', 'e1', '1.5')), 'ERR value is not an integer or out of range');
  assert.equal(errorText(await run('EXPIRE', 'e1', '9007199254740991')), "ERR invalid expire time in 'expire' command");
  // As Redis: a time in the past deletes the key.
  assert.deepEqual(await run('EXPIRE', 'e1', '-1'), integer(1));
  assert.deepEqual(await run('EXISTS', 'e1'), integer(0));
});

test('DEL and DELETE count the keys that existed; EXISTS counts every argument', async () => {
  await run('MSET', 'd1', 'a', 'd2', 'b');
  assert.deepEqual(await run('EXISTS', 'd1', 'd1', 'd2', 'nope'), integer(3));
  assert.deepEqual(await run('DEL', 'd1', 'nope'), integer(1));
  assert.deepEqual(await run('DELETE', 'd2'), integer(1));
  assert.deepEqual(await run('DEL', 'd2'), integer(0));
  assert.deepEqual(await run('EXISTS', 'd1', 'd2'), integer(0));
});

test('MSET and MGET; MSET with a missing value is a wrong-arity error', async () => {
  assert.deepEqual(await run('MSET', 'm1', '1', 'm2', '2'), OK);
  assert.deepEqual(await run('MGET', 'm1', 'nope', 'm2'), array([bulk('1'), NULL_BULK, bulk('2')]));
  assert.equal(errorText(await run('MSET', 'm1', '1', 'm2')), "ERR wrong number of arguments for 'mset' command");
});

test('MSET is all or nothing: a key that is too long leaves no other key written', async () => {
  const reply = await run('MSET', 'ok1', 'x', 'k'.repeat(65), 'y');
  assert.match(errorText(reply), /^ERR key is .*too long|^ERR key is \d+ bytes/);
  assert.deepEqual(await run('GET', 'ok1'), NULL_BULK);
  assert.equal(db.depth, 0);
});

test('COUNT compares values byte for byte', async () => {
  await run('MSET', 'c1', 'same', 'c2', 'same', 'c3', 'Same', 'c4', 'same ');
  assert.deepEqual(await run('COUNT', 'same'), integer(2));
  assert.deepEqual(await run('COUNT', 'no such value'), integer(0));
});

test('KEYS matches a glob and is bounded; SCAN walks with an opaque cursor', async () => {
  const names = Array.from({ length: 40 }, (_, i) => `scan:${i}`);
  await run('MSET', ...names.flatMap((k) => [k, 'v']));
  const keys = itemsOf(await run('KEYS', 'scan:*'));
  assert.deepEqual(keys.map(textOf).sort(), [...names].sort());
  const seen = new Set<string>();
  let cursor = '0';
  let rounds = 0;
  do {
    const reply = itemsOf(await run('SCAN', cursor, 'MATCH', 'scan:*', 'COUNT', '2'));
    assert.equal(reply.length, 2);
    cursor = textOf(reply[0]!);
    for (const k of itemsOf(reply[1]!)) seen.add(textOf(k));
    rounds += 1;
  } while (cursor !== '0' && rounds < 100_000);
  assert.ok(rounds > 1, 'a small COUNT takes several calls');
  assert.deepEqual([...seen].sort(), [...names].sort());
  assert.equal(errorText(await run('SCAN', '0', 'COUNT', '0')), 'ERR syntax error');
  assert.equal(errorText(await run('SCAN', '0', 'COUNT', 'x')), 'ERR value is not an integer or out of range');
  assert.equal(errorText(await run('SCAN', '0', 'MATCH')), 'ERR syntax error');
  assert.equal(errorText(await run('SCAN', '0', 'BOGUS', 'x')), 'ERR syntax error');
  assert.equal(itemsOf(await run('SCAN', '0', 'TYPE', 'hash', 'COUNT', '1000'))[1]!.kind, 'array');
  assert.equal(errorText(await run('SCAN', 'not-a-cursor')), 'ERR invalid cursor');
  // Past the maxKeysReply limit (50 here) KEYS refuses with a clear error instead of growing.
  const many: string[] = [];
  for (let i = 0; i < 60; i++) many.push(`bulk:${i}`, 'v');
  assert.deepEqual(await run('MSET', ...many), OK);
  assert.match(errorText(await run('KEYS', 'bulk:*')), /^ERR .*KEYS matched more than 50 keys/);
});

test('DBSIZE counts live keys', async () => {
  const before = ((await run('DBSIZE')) as { value: number }).value;
  await run('SET', 'dbsize-new', 'v');
  assert.deepEqual(await run('DBSIZE'), integer(before + 1));
});

test('BEGIN/COMMIT/ROLLBACK nest; COMMIT or ROLLBACK without BEGIN is an error', async () => {
  assert.equal(errorText(await run('COMMIT')), 'ERR COMMIT without BEGIN');
  assert.equal(errorText(await run('ROLLBACK')), 'ERR ROLLBACK without BEGIN');
  assert.deepEqual(await run('BEGIN'), OK);
  await run('SET', 'tx1', 'outer');
  assert.deepEqual(await run('BEGIN'), OK);
  assert.equal(db.depth, 2);
  await run('SET', 'tx2', 'inner');
  assert.deepEqual(await run('ROLLBACK'), OK);
  assert.deepEqual(await run('GET', 'tx2'), NULL_BULK);
  assert.deepEqual(await run('GET', 'tx1'), bulk('outer'));
  // Another session does not see uncommitted writes.
  const other = db.session();
  assert.deepEqual(await execute(other, [Buffer.from('GET'), Buffer.from('tx1')]), NULL_BULK);
  assert.deepEqual(await run('COMMIT'), OK);
  assert.equal(db.depth, 0);
  assert.deepEqual(await execute(other, [Buffer.from('GET'), Buffer.from('tx1')]), bulk('outer'));
});

test('PUBLISH answers the number of receivers', async () => {
  assert.deepEqual(await run('PUBLISH', 'nobody-listens', 'hi'), integer(0));
});

test('COMPACT and VOLINFO need the database; without it they answer an error', async () => {
  assert.deepEqual(await run('COMPACT'), OK);
  assert.deepEqual(await run('GET', 'k1'), bulk('v1'));
  const vol = itemsOf(await run('VOLINFO'));
  assert.ok(vol.length >= 1);
  const first = itemsOf(vol[0]!);
  assert.deepEqual(first.map((r) => r.kind), ['integer', 'bulk', 'integer', 'integer', 'integer', 'integer']);
  const noDb = await execute(db.session(), [Buffer.from('COMPACT')]);
  assert.match(errorText(noDb), /^ERR 'compact' needs the database/);
});

test('PING, ECHO, HELP', async () => {
  assert.deepEqual(await run('PING'), simple('PONG'));
  assert.deepEqual(await run('PING', 'hello'), bulk('hello'));
  assert.equal(errorText(await run('PING', 'a', 'b')), "ERR wrong number of arguments for 'ping' command");
  assert.deepEqual(await run('ECHO', Buffer.from([0, 1])), bulk(Buffer.from([0, 1])));
  const help = itemsOf(await run('HELP', 'get'));
  assert.ok(help.some((r) => r.kind === 'simple' && r.value.includes('GET key')));
});

test('unknown commands and wrong arity never reach a handler', async () => {
  assert.equal(errorText(await run('FOO', 'x')), "ERR unknown command 'FOO', with args beginning with: 'x' ");
  assert.equal(errorText(await run('GET')), "ERR wrong number of arguments for 'get' command");
  assert.equal(errorText(await run('SUBSCRIBE', 'ch')).startsWith('ERR '), true);
  assert.deepEqual(await execute(db, [], db), error('ERR empty command'));
});

test('store errors become clear ERR replies: empty key, key too long', async () => {
  assert.match(errorText(await run('SET', '', 'v')), /^ERR key is empty/);
  assert.equal(errorText(await run('GET', 'k'.repeat(65))), 'ERR key is 65 bytes; the limit is 64');
});

test('errorReply maps codes, plain {code, message} objects and bugs, without throwing', () => {
  assert.deepEqual(errorReply(new StoreError('QUEUE_FULL', '1000 in flight')), error('ERR server busy: too many requests in flight, retry later: 1000 in flight'));
  assert.deepEqual(errorReply({ code: 'CLOSED', message: 'the database is closed' }), error('ERR the database is closed'));
  assert.deepEqual(errorReply(new TypeError('x is undefined')), error('ERR internal error (see the server log)'));
  assert.deepEqual(errorReply('weird'), error('ERR internal error (see the server log)'));
  assert.deepEqual(errorReply({ code: 'INTERNAL', message: 'TypeError: y is null' }), error('ERR internal error (see the server log)'));
});

test('a closed database answers errors, not throws', async () => {
  const d2 = fs.mkdtempSync(path.join(os.tmpdir(), 'brisedb-executor-closed-'));
  try {
    const closed = await openInThread({ fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, dir: d2 });
    await closed.close();
    const reply = await execute(closed, [Buffer.from('SET'), Buffer.from('a'), Buffer.from('b')], closed);
    assert.equal(reply.kind, 'error');
  } finally {
    fs.rmSync(d2, { recursive: true, force: true });
  }
});

test('LCS refuses a table past its bound before it reads the values; within it, answers', async () => {
  // 6,000 x 6,000 bytes is 36 M cells, over the 32 M bound.
  assert.deepEqual(await run('SET', 'lcs-a', Buffer.alloc(6000, 'a')), OK);
  assert.deepEqual(await run('SET', 'lcs-b', Buffer.alloc(6000, 'a')), OK);
  assert.match(errorText(await run('LCS', 'lcs-a', 'lcs-b')), /^ERR Insufficient memory, transient memory for LCS exceeds \d+ bytes$/);
  assert.deepEqual(await run('SET', 'lcs-c', 'xaxbx'), OK);
  assert.deepEqual(await run('LCS', 'lcs-a', 'lcs-c', 'LEN'), integer(1));
  assert.equal(textOf(await run('LCS', 'lcs-c', 'lcs-c')), 'xaxbx');
});
