// The front-end actors dying under load (issue 5, item 4), and an actor that keeps dying.
// The store's own actors (volume writer, WAL, index, broker) are killed in store_actors.test.ts;
// this file kills the TCP front end (tcp-0) and an HTTP front end (http-0 of two), with real
// clients writing, and drives an actor past its restart budget (5 in 10 s).
// Owns: the masters it starts (in this process through runMaster, or a child process by PID
// for the HTTP kill, see below), their temp dirs, and every client it opens.
// What must hold:
// - in-flight requests on the dead thread end (connection closed, a client error) within
//   KILL_BOUND_MS, never hang;
// - the supervisor restarts the thread (event); it listens on the same port again; clients
//   that reconnect are served; every acknowledged write reads back with its bytes;
// - past the budget the actor stays down, and the master says so: INFO actors, GET /v1/status
//   ("degraded" and the actor's state), /metrics (brisedb_actor_up 0); the rest keeps serving.
// The TCP tests run the master in this process (runMaster, its supervisor exposed on
// RunningMaster). The HTTP kill runs it in a child process (helpers/killable_master.ts): if
// killing the thread takes the process down, it must not take the test runner with it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { parseMasterArgs } from '../src/master/config.js';
import { createLogger } from '../src/master/log.js';
import { runMaster, type RunningMaster } from '../src/master/master.js';
import type { Supervisor } from '../src/runtime/supervisor.js';
import { DEFAULT_RESTART } from '../src/runtime/topology.js';
import { freePort, sleep, within } from './helpers/master_process.js';
import type { ChildToParent, ParentToChild } from './helpers/killable_master.js';

/** In-flight requests on a killed thread must end within this. */
const KILL_BOUND_MS = 5_000;
/** A restart (backoff + spawn + init) must be done within this. */
const RESTART_BOUND_MS = 10_000;
const T = { timeout: 45_000 };

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

// ---- an in-process master ------------------------------------------------------------------

interface InProcess {
  master: RunningMaster;
  supervisor: Supervisor;
  tcpPort: number;
  httpPort: number;
}

/** A master in this process on a fixed TCP port (a restarted tcp-0 binds it again), 2 HTTP threads. */
async function startInProcess(): Promise<InProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'brise-frontend-'));
  const port = await freePort();
  const argv = ['--addr', `127.0.0.1:${port}`, '--http', '127.0.0.1:0', '--http-threads', '2', '--data', join(dir, 'data')];
  const parsed = parseMasterArgs(argv, {});
  assert.ok('config' in parsed, `flags: ${JSON.stringify(parsed)}`);
  const master = await runMaster(parsed.config, createLogger('silent'));
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopped ??= within(master.stop(), 20_000, 'the in-process master to stop').finally(() => rmSync(dir, { recursive: true, force: true })));
  cleanups.push(stop);
  assert.ok(master.supervisor, 'RunningMaster exposes its supervisor');
  assert.equal(master.tcpPort, port);
  return { master, supervisor: master.supervisor, tcpPort: port, httpPort: master.httpPort ?? 0 };
}

/** The next supervisor event about `name` among `kinds` (bounded). */
function nextEvent(sup: Supervisor, name: string, kinds: string[], ms = RESTART_BOUND_MS): Promise<string> {
  const listeners: Array<[string, (e: { name: string }) => void]> = [];
  const seen = new Promise<string>((resolve) => {
    for (const kind of kinds) {
      const l = (e: { name: string }): void => {
        if (e.name === name) resolve(kind);
      };
      listeners.push([kind, l]);
      sup.on(kind, l);
    }
  });
  return within(seen, ms, `${kinds.join(' or ')} of ${name}`).finally(() => {
    for (const [kind, l] of listeners) sup.off(kind, l);
  });
}

function stateOf(sup: Supervisor, name: string) {
  const s = sup.status().find((a) => a.name === name);
  assert.ok(s, `no actor ${name}`);
  return s;
}

// ---- load over TCP -------------------------------------------------------------------------

interface Pending {
  promise: Promise<unknown>;
}

/**
 * `clients` ioredis connections, each with `window` loops writing distinct keys until stopped.
 * ioredis is set to fail a command at the first connection loss (maxRetriesPerRequest 0) and
 * reconnect every 50 ms, so a command caught by the kill ends in an error, not a silent resend.
 */
function tcpLoad(port: number, prefix: string, clients = 6, window = 4) {
  const redis = Array.from({ length: clients }, () => new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => 50, lazyConnect: false }));
  for (const r of redis) r.on('error', () => undefined); // reconnect errors are expected here
  const acked = new Map<string, string>();
  const ackedBy = new Map<Redis, number>();
  const errors: string[] = [];
  const pending = new Set<Pending>();
  let next = 0;
  let stopped = false;
  const loop = async (r: Redis): Promise<void> => {
    while (!stopped) {
      const i = next++;
      const key = `${prefix}:${i}`;
      const value = `v${i}-${'t'.repeat(i % 200)}`;
      const p: Pending = { promise: r.set(key, value) };
      pending.add(p);
      try {
        await p.promise;
        acked.set(key, value);
        ackedBy.set(r, (ackedBy.get(r) ?? 0) + 1);
      } catch (e) {
        errors.push((e as Error).message);
        await sleep(5);
      } finally {
        pending.delete(p);
      }
    }
  };
  const done = Promise.all(redis.flatMap((r) => Array.from({ length: window }, () => loop(r)))).then(() => undefined);
  return {
    redis,
    acked,
    ackedBy,
    errors,
    done,
    /** The commands in flight now. */
    inFlight: (): Array<Promise<unknown>> => [...pending].map((p) => p.promise),
    stop: () => (stopped = true),
    close: () => redis.forEach((r) => r.disconnect()),
  };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

async function assertAllThere(port: number, acked: Map<string, string>): Promise<void> {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  try {
    const keys = [...acked.keys()];
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const values = await within(r.mget(...chunk), 10_000, 'MGET of acknowledged keys');
      chunk.forEach((k, j) => assert.equal(values[j], acked.get(k), `acknowledged ${k} must read back`));
    }
  } finally {
    r.disconnect();
  }
}

/** Connection refused on the port (nothing listens). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

test('killing tcp-0 under ioredis load: in-flight commands fail within the bound, it restarts on the same port, clients reconnect, nothing acknowledged is lost', T, async (t) => {
  const { supervisor: sup, tcpPort } = await startInProcess();
  const load = tcpLoad(tcpPort, 'tcp-kill');
  try {
    await until(() => load.acked.size >= 300, 10_000, 'writes to flow');
    const before = stateOf(sup, 'tcp-0');
    // Not events.once: it rejects on the 'error' (EPIPE, ECONNRESET) that may come first.
    const closes = load.redis.map((r) => within(new Promise((resolve) => r.once('close', resolve)), KILL_BOUND_MS, 'a client to see its connection close'));
    const restarted = nextEvent(sup, 'tcp-0', ['actor-restart']);
    // Awaited below; a failure before then must not surface as an unhandled rejection.
    for (const p of [...closes, restarted]) p.catch(() => undefined);
    const errorsBefore = load.errors.length;
    const inFlight = load.inFlight();
    assert.ok(inFlight.length > 0, 'commands are in flight at the kill');
    const killedAt = Date.now();
    await sup.kill('tcp-0');
    // What was sent while the thread was dying, or to the dead thread, is in flight now.
    inFlight.push(...load.inFlight());

    // Every connection of the dead thread is closed, and every command in flight settles, in the bound.
    await Promise.all(closes);
    await within(Promise.allSettled(inFlight), KILL_BOUND_MS, 'the commands in flight at the kill');
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed < KILL_BOUND_MS, `in-flight commands settled in ${elapsed} ms`);
    const failed = load.errors.slice(errorsBefore);
    assert.ok(failed.length > 0, 'the kill caught commands in flight');
    for (const f of failed) assert.match(f, /max retries|Connection is closed|ECONNRESET|EPIPE/i);

    await restarted;
    t.diagnostic(`in flight at the kill settled in ${elapsed} ms (${failed.length} failed); restarted ${Date.now() - killedAt} ms after the kill`);
    const afterRestart = stateOf(sup, 'tcp-0');
    assert.equal(afterRestart.state, 'running');
    assert.equal(afterRestart.restarts, 1);
    assert.notEqual(afterRestart.threadId, before.threadId, 'a new thread');
    // The new thread listens on the same port (its own answer, and a fresh client's).
    const address = await sup.control<{ address(): { port: number } }>('tcp-0').address();
    assert.equal(address.port, tcpPort);

    // Clients reconnect by themselves and are served again: each acknowledges new writes.
    const ackedAtRestart = new Map(load.ackedBy);
    await until(() => load.redis.every((r) => (load.ackedBy.get(r) ?? 0) >= (ackedAtRestart.get(r) ?? 0) + 20), RESTART_BOUND_MS, 'every client to be served after the restart');
    load.stop();
    await within(load.done, KILL_BOUND_MS, 'the write loops to end');

    const fresh = new Redis({ port: tcpPort, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    try {
      const info = await within(fresh.info('actors'), 5000, 'INFO actors');
      assert.match(info, new RegExp(`actor_tcp-0:thread=${afterRestart.threadId},state=running,restarts=1`));
      assert.match(await fresh.info('server'), new RegExp(`tcp_port:${tcpPort}`));
    } finally {
      fresh.disconnect();
    }
    await assertAllThere(tcpPort, load.acked);
    t.diagnostic(`${load.acked.size} acknowledged writes read back`);
  } finally {
    load.stop();
    load.close();
  }
});

/** Kills `name` each time it is back, until the supervisor gives up; answers the kills it took. */
async function killUntilGivenUp(sup: Supervisor, name: string): Promise<number> {
  const most = DEFAULT_RESTART.maxRestarts + 3;
  for (let kills = 1; kills <= most; kills++) {
    const next = nextEvent(sup, name, ['actor-restart', 'actor-given-up']);
    await sup.kill(name);
    if ((await next) === 'actor-given-up') return kills;
  }
  throw new Error(`${name} was still restarted after ${most} kills`);
}

async function httpJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function httpText(port: number, path: string, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
}

/** GET /v1/status says degraded and names `name` given-up; /metrics has brisedb_actor_up 0 for it. */
async function assertReportedGivenUp(httpPort: number, name: string): Promise<void> {
  const { status, body } = await httpJson(httpPort, '/v1/status');
  assert.equal(status, 200);
  assert.equal(body.status, 'degraded');
  const actors = body.actors as Array<{ name: string; state: string; restarts: number }>;
  const dead = actors.find((a) => a.name === name);
  assert.deepEqual({ state: dead?.state, restarts: dead?.restarts }, { state: 'given-up', restarts: DEFAULT_RESTART.maxRestarts });
  for (const a of actors) if (a.name !== name) assert.equal(a.state, 'running', `${a.name} still runs`);
  const metrics = await httpText(httpPort, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, new RegExp(`^brisedb_actor_up\\{actor="${name}"\\} 0$`, 'm'));
  assert.match(metrics.text, new RegExp(`^brisedb_actor_restarts_total\\{actor="${name}"\\} ${DEFAULT_RESTART.maxRestarts}$`, 'm'));
  assert.match(metrics.text, /^brisedb_actor_up\{actor="index"\} 1$/m);
}

async function assertHttpServes(httpPort: number, key: string): Promise<void> {
  const put = await httpText(httpPort, `/v1/blobs/${key}`, { method: 'PUT', body: `body of ${key}` });
  assert.equal(put.status, 201, put.text);
  const get = await httpText(httpPort, `/v1/blobs/${key}`);
  assert.deepEqual(get, { status: 200, text: `body of ${key}` });
}

test(`the broker killed past its budget (${DEFAULT_RESTART.maxRestarts} restarts in ${DEFAULT_RESTART.withinMs} ms): given up, reported by INFO, /v1/status and /metrics; the rest keeps serving`, T, async () => {
  const { master, supervisor: sup, tcpPort, httpPort } = await startInProcess();
  const kills = await killUntilGivenUp(sup, 'broker');
  assert.equal(kills, DEFAULT_RESTART.maxRestarts + 1, 'given up at the first death past the budget');
  assert.equal(stateOf(sup, 'broker').state, 'given-up');
  // It stays down: no restart comes later.
  await sleep(300);
  assert.equal(stateOf(sup, 'broker').state, 'given-up');
  await within(master.done, 1000, 'RunningMaster.done (the store died for good)');

  const r = new Redis({ port: tcpPort, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  try {
    const info = await within(r.info('actors'), 5000, 'INFO actors');
    assert.match(info, new RegExp(`actor_broker:thread=-?\\d+,state=given-up,restarts=${DEFAULT_RESTART.maxRestarts}`));
    assert.match(info, /actor_index:thread=\d+,state=running,restarts=0/);
    await assertReportedGivenUp(httpPort, 'broker');
    // The rest keeps serving: writes and reads over TCP and HTTP; PUBLISH fails fast and clearly.
    assert.equal(await within(r.set('after-broker', 'still here'), 5000, 'SET'), 'OK');
    assert.equal(await within(r.get('after-broker'), 5000, 'GET'), 'still here');
    await assert.rejects(within(r.publish('ch', 'x'), KILL_BOUND_MS, 'PUBLISH to a dead broker'), /broker|down/i);
    await assertHttpServes(httpPort, 'after-broker-http');
  } finally {
    r.disconnect();
  }
});

test('tcp-0 killed past its budget: given up, its port closed, reported by /v1/status and /metrics; HTTP keeps serving', T, async () => {
  const { supervisor: sup, tcpPort, httpPort } = await startInProcess();
  const kills = await killUntilGivenUp(sup, 'tcp-0');
  assert.equal(kills, DEFAULT_RESTART.maxRestarts + 1);
  assert.equal(stateOf(sup, 'tcp-0').state, 'given-up');
  assert.equal(await refused(tcpPort), true, 'nothing listens on the TCP port any more');
  await assertReportedGivenUp(httpPort, 'tcp-0');
  await assertHttpServes(httpPort, 'after-tcp');
});

// ---- the HTTP front end, in a child process ------------------------------------------------

const KILLABLE_JS = fileURLToPath(new URL('./helpers/killable_master.js', import.meta.url));

/** Omit over each member of a union (the builtin Omit merges them). */
type Request = ParentToChild extends infer M ? (M extends ParentToChild ? Omit<M, 'id'> : never) : never;

interface Killable {
  child: ChildProcess;
  tcpPort: number;
  httpPort: number;
  events: Array<Extract<ChildToParent, { t: 'event' }>>;
  ask(msg: Request): Promise<unknown>;
  /** Resolves with the exit code or signal when the child exits. */
  exit: Promise<string>;
  stderr(): string;
}

async function startKillable(args: string[]): Promise<Killable> {
  const dir = mkdtempSync(join(tmpdir(), 'brise-frontend-http-'));
  const child = spawn(process.execPath, [KILLABLE_JS, '--data', join(dir, 'data'), ...args], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const exit = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(String(signal ?? code))));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL'); // by its own PID
      await within(exit, 10_000, `killable master pid ${child.pid} to exit`);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const events: Killable['events'] = [];
  const replies = new Map<number, (m: Extract<ChildToParent, { t: 'reply' }>) => void>();
  let nextId = 1;
  const listening = new Promise<Extract<ChildToParent, { t: 'listening' }>>((resolve) => {
    child.on('message', (m: ChildToParent) => {
      if (m.t === 'listening') resolve(m);
      else if (m.t === 'event') events.push(m);
      else replies.get(m.id)?.(m);
    });
  });
  const up = await within(Promise.race([listening, exit.then((e) => Promise.reject(new Error(`exited ${e}: ${err}`)))]), 15_000, 'the killable master to listen');
  const ask = (msg: Request): Promise<unknown> => {
    const id = nextId++;
    const answer = new Promise<unknown>((resolve, reject) => {
      replies.set(id, (m) => (m.ok ? resolve(m.value) : reject(new Error(m.error))));
      child.send({ ...msg, id });
    });
    // A child that dies never answers: fail at its exit rather than at the bound.
    const died = exit.then((e) => Promise.reject(new Error(`the killable master exited (${e}) before answering ${msg.t}`)));
    return within(Promise.race([answer, died]), 10_000, `the child to answer ${msg.t}`).finally(() => replies.delete(id));
  };
  return { child, tcpPort: up.tcpPort, httpPort: up.httpPort ?? 0, events, ask, exit, stderr: () => err };
}

/** PUT/GET loops over fetch (keep-alive connections spread over both HTTP threads). */
function httpLoad(port: number, prefix: string, loops = 8) {
  const acked = new Map<string, string>();
  const errors: string[] = [];
  const pending = new Set<Promise<unknown>>();
  let next = 0;
  let stopped = false;
  const base = `http://127.0.0.1:${port}/v1/blobs`;
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    void p.finally(() => pending.delete(p)).catch(() => undefined);
    return p;
  };
  const loop = async (): Promise<void> => {
    while (!stopped) {
      const i = next++;
      const key = `${prefix}-${i}`;
      const value = `blob ${i} ${'h'.repeat(i % 500)}`;
      try {
        const put = await track(fetch(`${base}/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(20_000) }));
        await put.arrayBuffer();
        if (put.status !== 201) throw new Error(`PUT ${key}: ${put.status}`);
        acked.set(key, value);
        const get = await track(fetch(`${base}/${key}`, { signal: AbortSignal.timeout(20_000) }));
        const text = await get.text();
        if (get.status !== 200 || text !== value) throw new Error(`GET ${key}: ${get.status} ${text.slice(0, 40)}`);
      } catch (e) {
        const err = e as Error & { cause?: { code?: string; message?: string } };
        errors.push(`${err.message} ${err.cause?.code ?? err.cause?.message ?? ''}`);
        await sleep(5);
      }
    }
  };
  const done = Promise.all(Array.from({ length: loops }, loop)).then(() => undefined);
  return { acked, errors, done, inFlight: () => [...pending], stop: () => (stopped = true) };
}

/** A GET over a fresh connection (no keep-alive): the kernel hands each to one of the threads. */
function freshGet(port: number, path: string): Promise<number> {
  return within(
    new Promise<number>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
    }),
    5000,
    `GET ${path} over a fresh connection`,
  );
}

test(
  'regression: killing http-0 (of 2 HTTP threads) under fetch PUT/GET load: in-flight requests fail within the bound, it restarts and listens again, nothing acknowledged is lost (it once aborted the whole process)',
  T,
  async () => {
    const m = await startKillable(['--addr', '127.0.0.1:0', '--http', '127.0.0.1:0', '--http-threads', '2']);
    const load = httpLoad(m.httpPort, 'http-kill');
    try {
      await until(() => load.acked.size >= 100, 10_000, 'HTTP writes to flow');
      const before = ((await m.ask({ t: 'status' })) as Array<{ name: string; threadId: number }>).find((a) => a.name === 'http-0');
      const inFlight = load.inFlight();
      const killedAt = Date.now();
      const outcome = await within(
        Promise.race([m.ask({ t: 'kill', name: 'http-0' }).then(() => 'killed'), m.exit.then((e) => `exited ${e}`)]),
        KILL_BOUND_MS,
        'the kill of http-0',
      );
      assert.equal(outcome, 'killed', `the master process died with its HTTP thread: ${m.stderr().slice(0, 600)}`);
      const settled = await within(Promise.allSettled(inFlight), KILL_BOUND_MS, 'the HTTP requests in flight at the kill');
      assert.ok(Date.now() - killedAt < KILL_BOUND_MS);
      assert.ok(settled.length > 0, 'requests were in flight at the kill');

      await until(() => m.events.some((e) => e.kind === 'actor-restart' && e.name === 'http-0') || m.child.exitCode !== null || m.child.signalCode !== null, RESTART_BOUND_MS, 'http-0 to restart');
      assert.equal(m.child.signalCode ?? m.child.exitCode, null, `the master process is still running: ${m.stderr().slice(0, 600)}`);
      const status = (await m.ask({ t: 'status' })) as Array<{ name: string; threadId: number; state: string; restarts: number }>;
      const now = status.find((a) => a.name === 'http-0');
      assert.equal(now?.state, 'running');
      assert.equal(now?.restarts, 1);
      assert.notEqual(now?.threadId, before?.threadId);
      assert.equal(((await m.ask({ t: 'address', name: 'http-0' })) as { port: number }).port, m.httpPort, 'the new thread listens on the same port');

      // Service resumes: the loops acknowledge new writes; fresh connections (spread over
      // both threads) are all served.
      const ackedAtRestart = load.acked.size;
      await until(() => load.acked.size >= ackedAtRestart + 100, RESTART_BOUND_MS, 'HTTP writes after the restart');
      for (let i = 0; i < 20; i++) assert.equal(await freshGet(m.httpPort, '/v1/status'), 200);
      load.stop();
      await within(load.done, 25_000, 'the HTTP loops to end');
      for (const [key, value] of load.acked) assert.deepEqual(await httpText(m.httpPort, `/v1/blobs/${key}`), { status: 200, text: value }, key);
      await m.ask({ t: 'stop' });
      assert.equal(await within(m.exit, 15_000, 'the killable master to stop'), '0');
    } finally {
      load.stop();
      await within(load.done, 25_000, 'the HTTP loops to end').catch(() => undefined);
    }
  },
);
