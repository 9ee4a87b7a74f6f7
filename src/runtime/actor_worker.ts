// The worker-thread entry of every actor: the Supervisor's thread host starts this file, and
// the init message names the actor's module, whose default export is its factory. The actor
// gets node's file system, clock and timers here; the in-thread host gives the same factory
// simulated ones instead (host.ts).
// Invariant: no supervisor message is lost while the module loads: those that arrive before
// the runtime exists are queued and handed over in order.
import { isMainThread, parentPort } from 'node:worker_threads';
import { loadFactory, startActor, type ActorFactory, type ActorLink, type ActorRuntime } from './actor.js';
import { systemClock } from './clock.js';
import { StoreError, toWireError } from './errors.js';
import { NodeFs } from './fs.js';
import { systemScheduler } from './scheduler.js';
import type { InitMessage, SupervisorMessage } from './topology.js';

if (isMainThread || parentPort === null) {
  throw new StoreError('BAD_ARGUMENT', 'actor_worker.js runs in a worker started by the Supervisor');
}
const parent = parentPort;
const early: SupervisorMessage[] = [];
let runtime: ActorRuntime | null = null;
let booting = false;

const link: ActorLink = {
  post: (msg) => parent.postMessage(msg),
  exit: (code) => process.exit(code),
  // Thrown outside any handler, so the thread dies of it as of a real bug.
  crash: (err) =>
    setImmediate(() => {
      throw err;
    }),
  warn: (message) => process.emitWarning(message),
};

parent.on('message', (msg: SupervisorMessage) => {
  if (runtime !== null) runtime.onSupervisor(msg);
  else if (msg.t === 'init' && !booting) void boot(msg);
  else early.push(msg);
});

async function boot(init: InitMessage): Promise<void> {
  booting = true;
  let factory: ActorFactory;
  try {
    factory = await loadFactory(init.module);
  } catch (err) {
    link.post({ t: 'init-failed', error: toWireError(err) });
    process.exit(1);
  }
  runtime = startActor(factory, init, link, { fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler });
  for (const msg of early.splice(0)) runtime.onSupervisor(msg);
}
