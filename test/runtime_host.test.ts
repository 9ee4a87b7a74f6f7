// The in-thread host (src/runtime/host.ts) and its pieces: loopback ports behave as
// MessagePorts do (transfer detaches, messages wait for a listener, a close is seen at both
// ends); a Scoped scheduler runs nothing once closed; and the Supervisor, unchanged, runs the
// toy actors in this thread on virtual time: requests, a kill (ACTOR_DOWN at once), the
// restart after its backoff only when time moves, and the protocol check of the handshake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../src/runtime/clock.js';
import { StoreError } from '../src/runtime/errors.js';
import { NodeFs } from '../src/runtime/fs.js';
import { InThreadHost } from '../src/runtime/host.js';
import { loopbackChannel } from '../src/runtime/port.js';
import { ManualScheduler, ScopedScheduler, systemScheduler } from '../src/runtime/scheduler.js';
import { Supervisor } from '../src/runtime/supervisor.js';

const ECHO = new URL('./fixtures/echo_actor.js', import.meta.url);
const CRASH = new URL('./fixtures/crash_actor.js', import.meta.url);

function virtual(): { clock: ManualClock; scheduler: ManualScheduler; host: InThreadHost } {
  const clock = new ManualClock();
  const scheduler = new ManualScheduler(clock);
  return { clock, scheduler, host: new InThreadHost({ fs: new NodeFs(), clock, scheduler }) };
}

test('loopback ports: a transferred buffer is detached at the sender; early messages wait for a listener; a close reaches both ends', async () => {
  const { scheduler } = virtual();
  const { port1, port2 } = loopbackChannel(scheduler);
  const buf = new Uint8Array([1, 2, 3]).buffer;
  port1.postMessage({ buf }, [buf]);
  assert.equal(buf.byteLength, 0, 'detached, as postMessage transfers');
  await scheduler.settle();
  const got: unknown[] = [];
  port2.on('message', (m) => got.push(m));
  await scheduler.settle();
  assert.equal(got.length, 1, 'held until a listener came');
  assert.deepEqual([...new Uint8Array((got[0] as { buf: ArrayBuffer }).buf)], [1, 2, 3]);
  const closed: string[] = [];
  port1.once('close', () => closed.push('1'));
  port2.once('close', () => closed.push('2'));
  port2.close();
  port1.postMessage('after close');
  await scheduler.settle();
  assert.deepEqual(closed.sort(), ['1', '2']);
  assert.equal(got.length, 1, 'nothing crosses a closed channel');
});

test('a closed scoped scheduler runs nothing more; a throwing callback is reported, not thrown', async () => {
  const errors: unknown[] = [];
  const scope = new ScopedScheduler(systemScheduler, (err) => errors.push(err));
  let ran = 0;
  scope.defer(() => ran++);
  scope.defer(() => {
    throw new Error('boom');
  });
  const timer = scope.every(1, () => ran++);
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(ran >= 2, `ran ${ran}`);
  assert.equal(errors.length, 1);
  scope.close();
  const at = ran;
  scope.defer(() => ran++);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(ran, at, 'nothing after close');
  timer.cancel();
});

test('the supervisor runs actors in this thread: requests, a kill fails in-flight requests at once, the restart waits for virtual time', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-host-'));
  const { scheduler, host } = virtual();
  const sup = new Supervisor(
    [
      { name: 'crash', module: CRASH, config: { stateFile: join(dir, 'state.json') }, talksTo: ['main'] },
      { name: 'echo', module: ECHO, config: { logFile: join(dir, 'log') }, talksTo: ['crash', 'main'], dependsOn: ['crash'] },
    ],
    { host },
  );
  try {
    await sup.start();
    assert.deepEqual(await sup.peer('echo').call({ t: 'echo', v: 7 }), { from: 'main', v: 7 });
    assert.equal(await sup.peer('echo').call({ t: 'forward', to: 'crash', body: { t: 'incr' } }), 1);
    const hanging = sup.peer('crash').call({ t: 'hang' }).then(
      () => null,
      (e: unknown) => e,
    );
    await sup.kill('crash');
    const err = await hanging;
    assert.ok(err instanceof StoreError && err.code === 'ACTOR_DOWN', String(err));
    assert.equal(sup.status().find((s) => s.name === 'crash')!.state, 'restarting');
    await scheduler.settle();
    assert.equal(sup.status().find((s) => s.name === 'crash')!.state, 'restarting', 'no restart before its backoff has passed');
    await scheduler.advance(100);
    assert.equal(sup.status().find((s) => s.name === 'crash')!.state, 'running');
    const state = (await sup.peer('crash').call({ t: 'get' })) as { inits: number; counter: number };
    assert.deepEqual(state, { inits: 2, counter: 1 }, 'recovered from its file');
    assert.deepEqual(host.crashes.map((c) => c.name), ['crash']);
  } finally {
    await sup.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the handshake refuses an actor that does not speak the protocol the wiring expects', async () => {
  const { host } = virtual();
  const sup = new Supervisor([{ name: 'e', module: ECHO, config: {}, protocol: { name: 'echo', version: 3 } }], { host });
  await assert.rejects(sup.start(), (e: unknown) => e instanceof StoreError && e.code === 'BAD_ARGUMENT' && /expects protocol echo v3, the actor speaks none/.test(e.message));
});
