// A piscina pool for CPU-heavy batch jobs that are not state owners (DESIGN §1): checksums of
// a whole volume, glob-matching a large key scan, the copy pass of a vacuum. An actor hands a
// job here and keeps answering its mailbox.
// Invariants: typed by the job table of the worker file it runs (cpu_job.ts); a job's error
// arrives as a StoreError with its code; the queue is bounded (QUEUE_FULL past it); destroy()
// leaves no thread behind.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { CpuResult, CpuTask, JobTable, JobsOf } from './cpu_job.js';
import { fromWireError, StoreError } from './errors.js';

export interface CpuPoolOptions {
  /** Default: the number of cores minus one, at least 1 (the actors need the rest). */
  maxThreads?: number;
  /** Jobs waiting for a thread; past it run() rejects with QUEUE_FULL. Default 10_000. */
  maxQueue?: number;
}

export class CpuPool<Table extends JobTable> {
  private readonly pool: Piscina<CpuTask, CpuResult>;
  private destroyed = false;

  /** `jobs`: the URL of a worker file whose default export is jobRunner(table). */
  constructor(jobs: URL, options: CpuPoolOptions = {}) {
    const maxThreads = options.maxThreads ?? Math.max(1, availableParallelism() - 1);
    this.pool = new Piscina<CpuTask, CpuResult>({
      filename: fileURLToPath(jobs),
      minThreads: 0,
      maxThreads,
      maxQueue: options.maxQueue ?? 10_000,
      idleTimeout: 5_000,
    });
  }

  async run<K extends keyof Table & string>(job: K, input: JobsOf<Table>[K]['input']): Promise<JobsOf<Table>[K]['output']> {
    if (this.destroyed) throw new StoreError('CLOSED', 'the CPU pool is destroyed');
    let result: CpuResult;
    try {
      result = await this.pool.run({ job, input });
    } catch (err) {
      throw poolError(job, err);
    }
    if (!result.ok) throw fromWireError(result.error);
    return result.value as JobsOf<Table>[K]['output'];
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.pool.destroy();
  }
}

/** piscina's own failures (queue full, a worker that died) as StoreErrors. */
function poolError(job: string, err: unknown): StoreError {
  const message = err instanceof Error ? err.message : String(err);
  if (/queue is at limit/i.test(message)) return new StoreError('QUEUE_FULL', `CPU job ${job}: ${message}`);
  if (/terminated|destroyed|closed/i.test(message)) return new StoreError('CLOSED', `CPU job ${job}: ${message}`);
  return new StoreError('INTERNAL', `CPU job ${job} failed: ${message}`);
}
