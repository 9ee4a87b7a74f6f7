// The contract between a piscina worker file and CpuPool (DESIGN §1: CPU-heavy jobs that own
// no state run on a pool, so no actor's mailbox stalls behind them). A job table is a record of
// functions with typed input and output; `jobRunner(table)` is the worker file's default
// export; CpuPool<Table> runs them by name with the types of the table.
// Invariants: a job never throws across the thread: the runner answers {ok, value} or
// {ok: false, error: WireError}, because piscina clones a thrown error without its code.
import { StoreError, toWireError, type WireError } from './errors.js';

export type JobTable = Record<string, (input: never) => unknown>;

/** job name -> {input, output}: the contract of CpuPool.run. */
export type JobsOf<T extends JobTable> = { [K in keyof T]: { input: Parameters<T[K]>[0]; output: Awaited<ReturnType<T[K]>> } };

export interface CpuTask {
  job: string;
  input: unknown;
}

export type CpuResult = { ok: true; value: unknown } | { ok: false; error: WireError };

/** piscina's entry point for a table of jobs. */
export function jobRunner(table: JobTable): (task: CpuTask) => Promise<CpuResult> {
  return async (task) => {
    try {
      if (!Object.hasOwn(table, task.job)) throw new StoreError('BAD_ARGUMENT', `no CPU job named ${task.job}`);
      const fn = table[task.job] as (input: unknown) => unknown;
      return { ok: true, value: await fn(task.input) };
    } catch (err) {
      return { ok: false, error: toWireError(err) };
    }
  };
}
