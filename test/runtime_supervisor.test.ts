// supervisor.ts + actor.ts with real worker threads running the toy actors in test/fixtures:
// start and stop order, actor-to-actor and actor-to-main requests, comlink control calls,
// a worker killed mid-request (ACTOR_DOWN within a bound, restart, state recovered from
// disk), the restart budget, a failed start, and a clean stop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Supervisor, type ActorExitEvent } from '../src/runtime/supervisor.js';
import type { ActorSpec } from '../src/runtime/topology.js';
import { StoreError } from '../src/runtime/errors.js';

const ECHO = new URL('./fixtures/echo_actor.js', import.meta.url);
const CRASH = new URL('./fixtures/crash_actor.js', import.meta.url);

interface EchoControl {
  stats(): { name: string; handled: number; threadId: number };
  fail(): void;
}
interface CrashState {
  inits: number;
  counter: number;
}

function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'brise-runtime-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function isCode(code: string, pattern?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof StoreError && e.code === code && (!pattern || pattern.test(e.message));
}

/** Settles to the error (or null) so a rejection is never unhandled while we wait. */
function settle(p: Promise<unknown>): Promise<{ err: unknown; at: number }> {
  return p.then(
    () => ({ err: null, at: Date.now() }),
    (err: unknown) => ({ err, at: Date.now() }),
  );
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

test('starts in dependency order, stops in reverse, and every thread exits', async () => {
  const { dir, cleanup } = tempDir();
  const logFile = join(dir, 'log');
  const specs: ActorSpec[] = [
    { name: 'front', module: ECHO, config: { logFile }, dependsOn: ['index'], talksTo: ['main'] },
    { name: 'wal', module: ECHO, config: { logFile } },
    { name: 'index', module: ECHO, config: { logFile }, dependsOn: ['wal'] },
  ];
  const sup = new Supervisor(specs);
  const exits: ActorExitEvent[] = [];
  sup.on('actor-exit', (e: ActorExitEvent) => exits.push(e));
  await sup.start();
  assert.deepEqual(lines(logFile), ['wal', 'index', 'front']);
  const status = sup.status();
  assert.ok(status.every((s) => s.state === 'running'));
  assert.equal(new Set(status.map((s) => s.threadId)).size, 3, 'one thread each');
  assert.equal(await sup.peer('front').call({ t: 'echo', v: 'hi' }).then((r) => (r as { v: string }).v), 'hi');
  await sup.stop();
  assert.deepEqual(lines(logFile).slice(3), ['stop:front', 'stop:index', 'stop:wal']);
  assert.deepEqual(exits.map((e) => [e.name, e.code]), [['front', 0], ['index', 0], ['wal', 0]]);
  assert.ok(sup.status().every((s) => s.state === 'stopped'));
  await assert.rejects(sup.peer('front').call({ t: 'echo', v: 1 }), isCode('CLOSED'));
  assert.throws(() => sup.peer('wal'), /does not talk to main/);
  // A worker's own internal ports close a moment after its 'exit' event: poll briefly.
  let left = process.getActiveResourcesInfo();
  for (let i = 0; i < 100 && left.includes('MessagePort'); i++) {
    await new Promise((r) => setTimeout(r, 10));
    left = process.getActiveResourcesInfo();
  }
  assert.ok(!left.includes('MessagePort'), `no port of ours is left open: ${left.join(', ')}`);
  cleanup();
});

test('actor-to-actor and actor-to-main requests, blobs through a worker, comlink control', async () => {
  const sup = new Supervisor([
    { name: 'a', module: ECHO, config: {}, talksTo: ['b', 'main'] },
    { name: 'b', module: ECHO, config: {}, talksTo: ['main'] },
  ]);
  await sup.start();
  try {
    const viaA = await sup.peer('a').call({ t: 'forward', to: 'b', body: { t: 'echo', v: [1, 2] } });
    assert.deepEqual(viaA, { from: 'a', v: [1, 2] }, 'b saw the request come from a');
    // The edge is symmetric: b reaches a although only a listed it.
    assert.deepEqual(await sup.peer('b').call({ t: 'forward', to: 'a', body: { t: 'echo', v: 3 } }), { from: 'b', v: 3 });

    sup.peer('a').onRequest((body) => ({ mainSaw: body }));
    assert.deepEqual(await sup.peer('a').call({ t: 'ask-main', body: { t: 'q' } }), { mainSaw: { t: 'q' } });

    const blob = new Uint8Array([4, 5, 6]).buffer;
    const big = new Uint8Array(64 * 1024).fill(7).buffer;
    const r = await sup.peer('a').request<{ n: number }>({ t: 'blobs' }, { blobs: [blob, big] });
    assert.equal(blob.byteLength, 3, 'a small blob travels copied in the packed buffer');
    assert.equal(big.byteLength, 0, 'a big blob is transferred to the worker');
    assert.deepEqual([...new Uint8Array(r.blobs[0])], [4, 5, 6]);
    assert.equal(new Uint8Array(r.blobs[1]).length, 64 * 1024);

    await assert.rejects(sup.peer('a').call({ t: 'fail', code: 'NOT_FOUND', message: 'gone' }), isCode('NOT_FOUND', /gone/));

    const stats = await sup.control<EchoControl>('a').stats();
    assert.equal(stats.name, 'a');
    assert.equal(stats.threadId, sup.status().find((s) => s.name === 'a')?.threadId);
    assert.ok(stats.handled >= 5);
    await assert.rejects(sup.control<EchoControl>('b').fail(), isCode('NOT_FOUND', /no such thing/));
  } finally {
    await sup.stop();
  }
});

for (const how of ['exit', 'throw'] as const) {
  test(`a worker killed mid-request (${how}): pending requests fail fast, it restarts and recovers`, async () => {
    const { dir, cleanup } = tempDir();
    const sup = new Supervisor(
      [
        { name: 'crash', module: CRASH, config: { stateFile: join(dir, 'state.json') }, talksTo: ['main'] },
        { name: 'echo', module: ECHO, config: {}, talksTo: ['crash', 'main'], dependsOn: ['crash'] },
      ],
      { backoffMs: () => 300 },
    );
    await sup.start();
    try {
      assert.equal(await sup.peer('crash').call({ t: 'incr' }), 1);
      const threadBefore = sup.status()[0].threadId;
      // One request from main and one from another actor, both pending inside the victim.
      const fromMain = settle(sup.peer('crash').call({ t: 'hang' }));
      const fromActor = settle(sup.peer('echo').call({ t: 'forward', to: 'crash', body: { t: 'hang' } }));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(sup.peer('crash').inFlight, 1);

      const exited = once(sup, 'actor-exit');
      const restarted = once(sup, 'actor-restart');
      const t0 = Date.now();
      // One-way: whether an answer would beat the death notice is a race between two ports.
      sup.peer('crash').send({ t: 'crash', how });
      const [a, b] = await Promise.all([fromMain, fromActor]);
      assert.ok(isCode('ACTOR_DOWN', /crash is down/)(a.err), String(a.err));
      assert.ok(isCode('ACTOR_DOWN', /crash is down/)(b.err), String(b.err));
      assert.ok(a.at - t0 < 2000 && b.at - t0 < 2000, `failed within 2 s (${a.at - t0}, ${b.at - t0} ms)`);
      const [exit] = (await exited) as [ActorExitEvent];
      assert.equal(exit.name, 'crash');
      assert.equal(exit.code, 1);

      // During the backoff: refused at once, from main and from the neighbour.
      await assert.rejects(sup.peer('crash').call({ t: 'get' }), isCode('ACTOR_DOWN', /restarting/));
      await assert.rejects(sup.peer('echo').call({ t: 'forward', to: 'crash', body: { t: 'get' } }), isCode('ACTOR_DOWN'));
      assert.equal(sup.status()[0].state, 'restarting');

      const [ev] = (await restarted) as [{ name: string; attempt: number }];
      assert.deepEqual(ev, { name: 'crash', attempt: 1 });
      const st = sup.status()[0];
      assert.equal(st.state, 'running');
      assert.equal(st.restarts, 1);
      assert.notEqual(st.threadId, threadBefore);
      // init ran again and recovered the counter from its file; the neighbour was re-wired.
      assert.deepEqual(await sup.peer('crash').call<CrashState>({ t: 'get' }), { inits: 2, counter: 1 });
      assert.deepEqual(await sup.peer('echo').call({ t: 'forward', to: 'crash', body: { t: 'incr' } }), 2);
      const stats = await sup.control<{ stats(): CrashState & { threadId: number } }>('crash').stats();
      assert.equal(stats.threadId, st.threadId);
    } finally {
      await sup.stop();
      cleanup();
    }
  });
}

test('past the restart budget the actor is given up and requests fail fast', async () => {
  const { dir, cleanup } = tempDir();
  const sup = new Supervisor(
    [
      {
        name: 'crash',
        module: CRASH,
        // Every init after the first throws: each restart fails.
        config: { stateFile: join(dir, 'state.json'), failInitAfter: 1 },
        talksTo: ['main'],
        restart: { maxRestarts: 2, withinMs: 10_000 },
      },
    ],
    { backoffMs: () => 10 },
  );
  const exits: ActorExitEvent[] = [];
  sup.on('actor-exit', (e: ActorExitEvent) => exits.push(e));
  await sup.start();
  try {
    const givenUp = once(sup, 'actor-given-up');
    sup.peer('crash').send({ t: 'crash', how: 'throw' });
    const [ev] = (await givenUp) as [{ name: string; error: string }];
    assert.equal(ev.name, 'crash');
    assert.match(ev.error, /refusing to start/);
    assert.equal(exits.length, 3, 'the crash and two failed restarts');
    assert.match(exits[0].error ?? '', /planned crash/);
    assert.deepEqual(sup.status()[0], { ...sup.status()[0], state: 'given-up', restarts: 2 });
    const t0 = Date.now();
    await assert.rejects(sup.peer('crash').call({ t: 'get' }), isCode('ACTOR_DOWN', /crash is down \(given up/));
    await assert.rejects(sup.control<{ stats(): unknown }>('crash').stats(), isCode('ACTOR_DOWN', /given up/));
    assert.ok(Date.now() - t0 < 100);
  } finally {
    await sup.stop();
    cleanup();
  }
});

test('a failed start names the actor and its error, and stops what had started', async () => {
  const { dir, cleanup } = tempDir();
  const sup = new Supervisor([
    { name: 'ok', module: ECHO, config: {} },
    { name: 'broken', module: CRASH, config: { stateFile: join(dir, 's.json'), failInitAfter: 0 }, dependsOn: ['ok'] },
  ]);
  // The start fails with the code the actor's factory failed with (here CORRUPT), naming it.
  await assert.rejects(sup.start(), (e: unknown) => isCode('CORRUPT', /broken failed to start: init failed: CORRUPT: refusing to start/)(e));
  assert.ok(sup.status().every((s) => s.state === 'stopped'));
  cleanup();
});

test('an actor that never becomes ready fails start with a timeout naming it', async () => {
  const sup = new Supervisor([{ name: 'lost', module: new URL('./fixtures/does_not_exist.js', import.meta.url), config: {} }], {
    readyTimeoutMs: 2000,
  });
  await assert.rejects(sup.start(), /lost failed to start: .*(Cannot find module|ERR_MODULE_NOT_FOUND)/);
});

test('while an actor recovers in init, requests to it fail fast; a too-slow init fails start', async () => {
  const { dir, cleanup } = tempDir();
  const slow = new Supervisor([
    { name: 'slow', module: CRASH, config: { stateFile: join(dir, 'a.json'), initDelayMs: 300 }, talksTo: ['main'] },
  ]);
  const started = slow.start();
  await new Promise((r) => setTimeout(r, 100));
  await assert.rejects(slow.peer('slow').call({ t: 'get' }), isCode('ACTOR_DOWN', /slow is down \(starting\)/));
  await started;
  assert.deepEqual(await slow.peer('slow').call({ t: 'get' }), { inits: 1, counter: 0 });
  await slow.stop();

  const stuck = new Supervisor(
    [{ name: 'stuck', module: CRASH, config: { stateFile: join(dir, 'b.json'), initDelayMs: 10_000 } }],
    { readyTimeoutMs: 200 },
  );
  const t0 = Date.now();
  await assert.rejects(stuck.start(), /stuck failed to start: not ready within 200 ms/);
  assert.ok(Date.now() - t0 < 5000);
  cleanup();
});

test('stop lets in-flight requests finish, then refuses new ones', async () => {
  const sup = new Supervisor([{ name: 'e', module: ECHO, config: {}, talksTo: ['main'] }]);
  await sup.start();
  const inFlight = settle(sup.peer('e').call({ t: 'sleep', ms: 200 }));
  // Stop only once the actor is handling it: the request and the shutdown travel on different
  // channels, so a shutdown sent first could overtake it.
  const control = sup.control<EchoControl>('e');
  for (let i = 0; i < 500 && (await control.stats()).handled === 0; i++) await new Promise((r) => setTimeout(r, 2));
  const stopped = sup.stop();
  await new Promise((r) => setTimeout(r, 30));
  const late = settle(sup.peer('e').call({ t: 'echo', v: 1 }));
  await stopped;
  const done = await inFlight;
  assert.equal(done.err, null, 'the request in flight at stop got its answer');
  const refused = await late;
  assert.ok(isCode('ACTOR_DOWN', /stopping/)(refused.err) || isCode('CLOSED')(refused.err), String(refused.err));
  assert.equal(sup.status()[0].state, 'stopped');
});
