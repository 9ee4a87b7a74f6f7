// A progress bar (cli-progress) for the long commands typed at the REPL's prompt (VACUUM, SCRUB
// WAIT): the database's operations in progress, polled while the command runs, drawn on the
// terminal's error stream so the reply itself prints as ever.
import type { Writable } from 'node:stream';
import cliProgress from 'cli-progress';
import type { Database } from '../db/api.js';

const POLL_MS = 200;
const MB = 1024 * 1024;

/** Runs `work`, drawing the first operation in progress meanwhile; the bar is gone when it ends. */
export async function withProgress<T>(db: Pick<Database, 'operations'>, out: Writable, work: Promise<T>): Promise<T> {
  const bar = new cliProgress.SingleBar(
    { stream: out, format: '{operation} {target} [{bar}] {percentage}% | {doneAmount}/{totalAmount} {unit} | ETA {left}', hideCursor: true, clearOnComplete: true, etaBuffer: 50 },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return;
    polling = true;
    void db
      .operations()
      .then((ops) => {
        const p = ops[0];
        if (p === undefined) return;
        const scale = (n: number): string => (p.unit === 'keys' ? String(n) : (n / MB).toFixed(1));
        const payload = { operation: p.operation, target: p.target < 0 ? '' : `volume ${p.target}`, doneAmount: scale(p.doneBytes), totalAmount: scale(p.totalBytes), unit: p.unit ?? 'MB', left: p.etaMs < 0 ? '?' : `${Math.ceil(p.etaMs / 1000)}s` };
        if (!started) bar.start(Math.max(1, p.totalBytes), p.doneBytes, payload);
        else {
          bar.setTotal(Math.max(1, p.totalBytes));
          bar.update(p.doneBytes, payload);
        }
        started = true;
      })
      .catch(() => undefined) // the bar is a convenience: the command's own answer says what happened
      .finally(() => {
        polling = false;
      });
  }, POLL_MS);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    if (started) bar.stop();
  }
}
