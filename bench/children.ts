// The child processes and temp dirs of a benchmark script (servers it starts, their data), so
// that every exit path (success, error, SIGINT) can stop each child by its own PID and remove
// each dir. One set per process: each benchmark script runs alone.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const children = new Set<ChildProcess>();
export const tempDirs = new Set<string>();

/** Remembers the last `max` lines of a stream (a server's log), draining it so it never blocks. */
export function keepTail(stream: NodeJS.ReadableStream | null, tail: string[], onLine?: (line: string) => void, max = 20): void {
  if (stream === null) return;
  createInterface({ input: stream }).on('line', (line) => {
    tail.push(line);
    if (tail.length > max) tail.shift();
    onLine?.(line);
  });
}

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Sends `signal` to the child by its PID, then SIGKILL if it has not exited in `ms`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
}

/**
 * Runs a benchmark's main so that it always ends cleanly: SIGINT/SIGTERM (exit 130), an error
 * (exit 1) or the deadline (exit 1) stop every child and remove every dir through `cleanup`
 * first. The first exit code wins: after SIGINT, the runs it kills fail and must not turn 130
 * into 1.
 */
export function runBench(name: string, deadlineMs: number, cleanup: () => Promise<void>, main: () => Promise<void>, log: (line: string) => void): void {
  let exitCode: number | null = null;
  const exitAfterCleanup = (code: number): void => {
    exitCode ??= code;
    const exit = (): never => process.exit(exitCode ?? code);
    cleanup().then(exit, exit);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${name}: ${signal}, stopping the servers`);
      exitAfterCleanup(130);
    });
  }
  const deadline = setTimeout(() => {
    log(`${name}: not done after ${deadlineMs / 60_000} min, giving up`);
    exitAfterCleanup(1);
  }, deadlineMs);
  deadline.unref();
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      log(`${name}: ${err instanceof Error ? err.message : String(err)}`);
      exitAfterCleanup(1);
    },
  );
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime of these processes (all their threads) in seconds, or null without /proc. */
export function cpuSeconds(pids: number[]): number | null {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // The fields after the command name (which may hold spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    } catch {
      return null;
    }
  }
  return total;
}
