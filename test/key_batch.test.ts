// Updates of one key decided as a batch (src/db/key_batch.ts): however many arrive at once,
// each answers what it would have answered alone, in arrival order; none is lost when another
// writer races the batch (its guard fails and every member runs again); a value too big to
// compose ends its batch. Commands are sent concurrently through execute() to a real database.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openInThread, type InThreadDatabase } from '../src/wiring/in_thread.js';
import { systemScheduler } from '../src/runtime/scheduler.js';
import { execute } from '../src/frontend/executor.js';
import { NodeFs } from '../src/runtime/fs.js';
import { systemClock } from '../src/runtime/clock.js';
import { OK, bulk, error, integer, type Reply } from '../src/protocol/reply.js';

let dir: string;
let db: InThreadDatabase;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brisedb-key-batch-'));
  db = await openInThread({ fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, dir });
});

after(async () => {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(...words: (string | Buffer)[]): Promise<Reply> {
  return execute(db, words.map((w) => (typeof w === 'string' ? Buffer.from(w) : w)), db);
}

/** Every command started in the same tick (so they queue on the key together), then awaited. */
function together(...commands: string[][]): Promise<Reply[]> {
  return Promise.all(commands.map((argv) => run(...argv)));
}

function intOf(reply: Reply): number {
  assert.equal(reply.kind, 'integer', JSON.stringify(reply));
  return Number((reply as { value: number }).value);
}

test('500 INCRs of one key at once: the total is exact and each reply is a different count', async () => {
  const replies = await Promise.all(Array.from({ length: 500 }, () => run('INCR', 'hot')));
  const counts = replies.map(intOf).sort((a, b) => a - b);
  assert.deepEqual(counts, Array.from({ length: 500 }, (_, i) => i + 1));
  assert.deepEqual(await run('GET', 'hot'), bulk('500'));
});

test('a batch answers as if its commands ran one after another, errors included', async () => {
  // Only read-modify-write commands: a plain GET or TTL sent at the same time reads what is
  // committed, and may see the key before these (as a concurrent reader may).
  assert.deepEqual(await run('SET', 'mix', '5'), OK);
  const replies = await together(['INCR', 'mix'], ['APPEND', 'mix', 'x'], ['INCR', 'mix'], ['GETDEL', 'mix'], ['INCRBY', 'mix', '7'], ['EXPIRE', 'mix', '100'], ['INCR', 'mix'], ['EXPIRE', 'mix', '50', 'GT'], ['GETEX', 'mix', 'PERSIST'], ['GETEX', 'mix', 'PX', '100000']);
  assert.deepEqual(replies, [
    integer(6),
    integer(2),
    error('ERR value is not an integer or out of range'),
    bulk('6x'),
    integer(7),
    integer(1),
    integer(8),
    integer(0),
    bulk('8'),
    bulk('8'),
  ]);
  assert.deepEqual(await run('GET', 'mix'), bulk('8'));
  const ttl = intOf(await run('PTTL', 'mix'));
  assert.ok(ttl > 90_000 && ttl <= 100_000, `PTTL ${ttl}`);
});

test('a value too big to compose ends its batch; the commands after it still see it', async () => {
  assert.deepEqual(await run('SET', 'big', 'a'), OK);
  const replies = await together(['APPEND', 'big', 'b'], ['SETRANGE', 'big', '100000', 'z'], ['APPEND', 'big', 'y'], ['INCR', 'big'], ['SETRANGE', 'big', '1', 'c']);
  assert.deepEqual(replies, [integer(2), integer(100001), integer(100002), error('ERR value is not an integer or out of range'), integer(100002)]);
  assert.deepEqual(await run('STRLEN', 'big'), integer(100002));
  assert.deepEqual(await run('GETRANGE', 'big', '0', '2'), bulk(Buffer.from('ac\0')));
  assert.deepEqual(await run('GETRANGE', 'big', '99999', '-1'), bulk(Buffer.from('\0zy')));
});

test('plain writes racing a hot key: batches whose guard failed run again, no increment is lost', async () => {
  // Each SET ... GET takes the count so far and restarts it at 0: the final value plus every
  // count taken must be the number of INCRs.
  const incrs = Array.from({ length: 300 }, () => run('INCR', 'raced'));
  const resets: Promise<Reply>[] = [];
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setImmediate(r));
    resets.push(run('SET', 'raced', '0', 'GET'));
  }
  await Promise.all(incrs);
  const taken = (await Promise.all(resets)).map((r) => (r.kind === 'bulk' && r.value !== null ? Number(r.value.toString()) : 0));
  const final = Number(((await run('GET', 'raced')) as { value: Buffer }).value.toString());
  assert.equal(final + taken.reduce((a, b) => a + b, 0), 300);
});

test('a pipeline of updates on one connection runs at once and keeps its order, also across keys and retries', async () => {
  // Through the TCP front end's path: the same Session, commands started in pipeline order.
  const keys = ['p:a', 'p:b'];
  const script: string[][] = [];
  // APPENDs only to p:b, which nobody resets: each answers the length of its count then.
  for (let i = 0; i < 300; i++) script.push(i % 6 === 3 ? ['APPEND', 'p:b', ''] : ['INCR', keys[i % 2]!]);
  const racing: Promise<Reply>[] = [];
  const replies = Promise.all(script.map((argv) => run(...argv)));
  // A plain writer from elsewhere makes batches fail and run again meanwhile.
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    racing.push(run('SET', 'p:a', '0', 'GET'));
  }
  const got = await replies;
  const taken = (await Promise.all(racing)).map((r) => (r.kind === 'bulk' && r.value !== null ? Number(r.value.toString()) : 0));
  // Per key, the INCR replies rise by one between resets, the APPENDs answer the length then.
  let last: Record<string, number> = { 'p:a': 0, 'p:b': 0 };
  let resets = 0;
  script.forEach((argv, i) => {
    const key = argv[1]!;
    const n = intOf(got[i]!);
    if (argv[0] === 'INCR') {
      if (n !== last[key]! + 1) {
        assert.ok(key === 'p:a' && n < last[key]! + 1, `reply ${i} (${argv.join(' ')}) is ${n} after ${last[key]}`);
        resets += 1;
      }
      last = { ...last, [key]: n };
    } else assert.equal(n, String(last[key]).length, `reply ${i} (${argv.join(' ')})`);
  });
  assert.ok(resets <= taken.length);
  assert.deepEqual(await run('GET', 'p:b'), bulk(String(last['p:b'])));
});
