// A clean stop (SIGTERM to node cmd/master.js) during a paced VACUUM or SCRUB WAIT (issue 13): the
// run ends at its next step (its paced pause cut short), the client waiting for it gets an error
// reply naming where it stopped (not a closed connection, not a hang), the master exits well
// within the 10 s an actor's stop timeout would take, the log says the vacuum did not finish, and
// after a restart every value is there and a VACUUM of the same volume finishes the work.
// Owns: the masters it starts (stopped by PID in `after`) and their temp dirs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Redis, ReplyError } from 'ioredis';
import { sleep, startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';
import { Model, checkModel, deleteKey, parseVacuum, setSmall, volinfo } from './helpers/vacuum_model.js';
import { volumeFileName as fileOf } from '../src/storage/volume_format.js';

const KB = 1024;
const MB = 1024 * KB;
/** 1 MB/s: a volume of a few MB live takes seconds to copy (or to scrub), so the stop lands inside it. */
const PACED = ['--max-volume-size', '4mb', '--vacuum-rate', '1', '--vacuum-every', '0', '--scrub-rate', '1', '--scrub-every', '0'];
/** The bound on a stop: the fix stops in ~0.1 s, the bug took the 10 s of the supervisor's stop timeout. */
const STOP_BOUND_MS = 3_000;

after(async () => {
  await stopAll();
});

function client(port: number): Redis {
  // No retry and no reconnect: a command cut off by the close must fail, never be sent again.
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0, retryStrategy: () => null, commandTimeout: 60_000 });
  c.on('error', () => undefined);
  return c;
}

/**
 * Waits (bounded) until INFO operations shows `operation` partly done; fails if `done` settles
 * first. On a connection of its own: one connection's replies come in order, after the run's.
 */
async function waitRunning(port: number, operation: string, done: Promise<unknown>): Promise<string> {
  const redis = client(port);
  try {
    return await pollRunning(redis, operation, done);
  } finally {
    redis.disconnect();
  }
}

async function pollRunning(redis: Redis, operation: string, done: Promise<unknown>): Promise<string> {
  let settled = false;
  void done.then(() => (settled = true), () => (settled = true));
  const deadline = Date.now() + 30_000;
  while (!settled && Date.now() < deadline) {
    const line = (await redis.info('operations')).split('\r\n').find((l) => l.startsWith(`${operation}:`));
    if (line !== undefined && !/done_bytes=0,/.test(line)) return line;
    await sleep(20);
  }
  assert.fail(`no ${operation} in progress in INFO operations (ended first: ${settled}: ${String(await done.catch((e: unknown) => e))})`);
}

/** SIGTERM, and how long the exit took; the exit code must be 0. */
async function timedStop(m: MasterProcess): Promise<number> {
  const started = Date.now();
  assert.equal(await m.stop(), 0, 'the master stops cleanly');
  return Date.now() - started;
}

/** What a command cut short by the stop answered: the error (a ReplyError is the server's reply). */
async function outcome(p: Promise<unknown>): Promise<Error> {
  const got = await within(p.then((r) => ({ reply: r }), (e: unknown) => e), 10_000, 'the reply to the command the stop cut short');
  assert.ok(got instanceof Error, `an error, not the reply ${JSON.stringify(got)}`);
  return got;
}

test('SIGTERM during a paced VACUUM: stops within 3 s, VACUUM answers an error, every value is there after a restart', { timeout: 120_000 }, async () => {
  let m = await startMaster({ args: PACED });
  let redis = client(m.port);
  const model = new Model();
  try {
    // About 4 MB in the first volume: small values (copied in batches) and two above 64 KB (streamed).
    for (let i = 0; i < 60; i++) await setSmall(redis, model, `k${i}`, 0, 50 * KB);
    for (let i = 0; i < 2; i++) await setSmall(redis, model, `big${i}`, 0, 300 * KB + i);
    for (let i = 0; i < 60; i += 3) await deleteKey(redis, model, `k${i}`);
    const [first] = await volinfo(redis);
    assert.ok(first !== undefined && first.live >= 2 * MB, `volume ${first?.id} holds ${first?.live} live bytes: seconds of copying at 1 MB/s`);

    const vacuum = redis.call('VACUUM', String(first.id));
    const running = await waitRunning(m.port, 'vacuum', vacuum);
    const tookMs = await timedStop(m);
    const err = await outcome(vacuum);
    assert.ok(err instanceof ReplyError, `VACUUM got an error reply, not ${String(err)} (${JSON.stringify(err)}); INFO showed ${running}`);
    assert.match(err.message, /closed|closing/i, 'the reply says the store is closing');
    assert.match(err.message, new RegExp(`vacuum stopped at volume ${first.id} after copying \\d+ of \\d+ bytes`), 'the reply says where it stopped');
    assert.ok(tookMs < STOP_BOUND_MS, `the stop took ${tookMs} ms (bound ${STOP_BOUND_MS} ms)`);
    assert.match(m.stderr(), /"volume":\d+.*"errors":\["stopped part-way[^"]*"\].*"msg":"vacuum of a volume did not finish"/, 'the log says the vacuum stopped part-way');
    redis.disconnect();

    // Restarted, unpaced: every value is there, and the vacuum of the same volume finishes.
    m = await startMaster({ dataDir: m.dataDir, args: ['--max-volume-size', '4mb', '--vacuum-rate', '0', '--vacuum-every', '0'] });
    redis = client(m.port);
    await checkModel(model, redis, null, 'after the stop cut the vacuum short');
    const [report] = parseVacuum(await redis.call('VACUUM', String(first.id)));
    assert.deepEqual(report?.errors, [], `VACUUM ${first.id} again: ${JSON.stringify(report)}`);
    assert.equal(report?.removed, 1, `VACUUM ${first.id} again removes it`);
    assert.equal(fs.existsSync(path.join(m.dataDir, 'volumes', fileOf(first.id))), false, `volume ${first.id}'s file is gone`);
    await checkModel(model, redis, null, 'after the vacuum finished');
    redis.disconnect();
    assert.equal(await m.stop(), 0);
  } finally {
    redis.disconnect();
  }
});

test('SIGTERM during a paced SCRUB WAIT: stops within 3 s, SCRUB WAIT answers an error', { timeout: 120_000 }, async () => {
  const m = await startMaster({ args: PACED });
  const redis = client(m.port);
  const model = new Model();
  try {
    // Over 3 MB to read at 1 MB/s: the scrub pauses seconds after its first volume.
    for (let i = 0; i < 70; i++) await setSmall(redis, model, `k${i}`, 0, 50 * KB);
    const scrub = redis.call('SCRUB', 'WAIT');
    const running = await waitRunning(m.port, 'scrub', scrub);
    const tookMs = await timedStop(m);
    const err = await outcome(scrub);
    assert.ok(err instanceof ReplyError, `SCRUB WAIT got an error reply, not ${String(err)} (${JSON.stringify(err)}); INFO showed ${running}`);
    assert.match(err.message, /scrub stopped at volume \d+ after reading \d+ of \d+ bytes/, 'the reply says where it stopped');
    assert.ok(tookMs < STOP_BOUND_MS, `the stop took ${tookMs} ms (bound ${STOP_BOUND_MS} ms)`);
  } finally {
    redis.disconnect();
  }
});
