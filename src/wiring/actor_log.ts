// The main thread's log of its actors, shared by the master and the volume server: a death
// is an error unless the process is stopping (then the exits are the plan); a restart is a
// warning; an actor given up is fatal and ends the process (`done`).
import type { Logger } from 'pino';
import type { Supervisor } from '../runtime/supervisor.js';

export interface ActorLog {
  /** Resolves when an actor keeps dying and is given up. */
  readonly done: Promise<void>;
  /** From now on exits are an ordered stop, logged at debug. */
  stopping(): void;
}

export function logActors(supervisor: Supervisor, log: Logger): ActorLog {
  let givenUp: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (givenUp = resolve));
  let stopping = false;
  supervisor.on('actor-exit', (e: { name: string; code?: number; error?: string }) => {
    if (stopping) log.debug({ actor: e.name, code: e.code }, 'actor stopped');
    else log.error({ actor: e.name, code: e.code, error: e.error }, 'actor died');
  });
  supervisor.on('actor-restart', (e: { name: string; attempt: number }) => log.warn({ actor: e.name, attempt: e.attempt }, 'actor restarted'));
  supervisor.on('actor-given-up', (e: { name: string }) => {
    log.fatal({ actor: e.name }, 'actor keeps dying: given up');
    givenUp();
  });
  return { done, stopping: () => (stopping = true) };
}
