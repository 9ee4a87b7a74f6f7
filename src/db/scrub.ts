// Scrub: reads every needle of every volume and checks its CRCs (the CPU work on the piscina
// pool), at a bounded average rate, so damage is found before a reader finds it (docs/vacuum.md,
// "Scrub"). A damaged needle that the index points at is
// - repaired when a good copy exists: its value is read from a member of its group whose copy
//   checks (the group reader falls back to one), written again through the write path and the
//   key moved to it (needle_copy.ts); the damaged bytes are garbage, given back by a vacuum;
// - reported when none does (a single copy): in the summary, /v1/status, /metrics and the log.
//   Reads never serve it: every whole-value read checks the needle CRC.
// A damaged needle no entry points at (an aborted upload, a torn unsynced tail) is harmless:
// counted, nothing more.
// A store that closes stops a scrub at its next volume (stop()): its pause ends at once and SCRUB
// WAIT answers why.
import type { Clock } from '../runtime/clock.js';
import { StoreError } from '../runtime/errors.js';
import type { Scheduler } from '../runtime/scheduler.js';
import type { ScrubReport } from '../storage/volume_scrub.js';
import type { VolumeEntry } from '../protocol/index_protocol.js';
import { advanceProgress, paceDelay, type DamagedNeedle, type Progress, type ScrubSummary } from '../protocol/operations.js';
import type { Ports } from './ports.js';
import { NeedleCopier } from './needle_copy.js';
import { RunStop } from './vacuum.js';
import { groupOfVolume } from '../storage/volume_format.js';

export interface ScrubSettings {
  /** Bytes read per second on average (0: no limit). */
  rateBytesPerSec: number;
}

export const DEFAULT_SCRUB: ScrubSettings = { rateBytesPerSec: 32 * 1024 * 1024 };

/** Damaged needles kept in a summary (the counts go on past it). */
const MAX_DAMAGED_LISTED = 1000;
const ENTRY_SLICE_BUCKETS = 1024;

export class Scrub {
  private running: Promise<ScrubSummary> | null = null;
  private current: Progress | null = null;
  private last: ScrubSummary | null = null;
  private readonly copier: NeedleCopier;
  /** Set when the store closes: the scrub in progress ends at its next step. */
  private readonly halt: RunStop;

  constructor(
    private readonly ports: Ports,
    /** Checks one volume file (on the CPU pool in production), and that a needle starts at each `expect` offset. */
    private readonly scrubFile: (path: string, expect: number[]) => Promise<ScrubReport>,
    private readonly pathOf: (volume: number) => string,
    private readonly clock: Clock,
    scheduler: Scheduler,
    private readonly settings: ScrubSettings,
    private readonly onDamage: (damaged: DamagedNeedle[]) => void = () => undefined,
  ) {
    this.halt = new RunStop(scheduler);
    this.copier = new NeedleCopier(ports);
  }

  progress(): Progress | null {
    return this.current === null ? null : { ...this.current };
  }

  lastSummary(): ScrubSummary | null {
    return this.last;
  }

  get inProgress(): boolean {
    return this.running !== null;
  }

  /** Runs a scrub, or joins the one running. */
  run(): Promise<ScrubSummary> {
    const stopped = this.halt.stopped;
    if (stopped !== null) return Promise.reject(stopped);
    if (this.running === null) {
      this.running = this.runOrStop().finally(() => {
        this.running = null;
        this.current = null;
      });
    }
    return this.running;
  }

  /**
   * Ends the scrub in progress at its next step (its paced pause ends now); it answers a CLOSED
   * error that says where it stopped. Resolves when it has ended; no scrub starts after.
   */
  stop(reason: Error): Promise<void> {
    return this.halt.stop(reason, this.running);
  }

  /** The scrub; stopped by the store's close, an error that says where (a repair done stays done). */
  private async runOrStop(): Promise<ScrubSummary> {
    try {
      return await this.runAll();
    } catch (err) {
      const reason = this.halt.stopped;
      if (reason === null) throw err;
      const p = this.current;
      const where = p === null ? 'before it began' : `at volume ${p.target} after reading ${p.doneBytes} of ${p.totalBytes} bytes`;
      throw new StoreError(reason instanceof StoreError ? reason.code : 'CLOSED', `${reason.message}; the scrub stopped ${where}`);
    }
  }

  private async runAll(): Promise<ScrubSummary> {
    const started = this.clock.now();
    const volumes = await this.ports.volumes.list();
    const summary: ScrubSummary = { startedAt: started, durationMs: 0, volumes: 0, needles: 0, bytes: 0, invalid: 0, unreferenced: 0, repaired: 0, damaged: 0, damagedNeedles: [], errors: [] };
    this.current = { operation: 'scrub', target: -1, doneBytes: 0, totalBytes: volumes.reduce((n, v) => n + v.sizeBytes, 0), startedAt: started, etaMs: -1 };
    for (const v of volumes) {
      this.halt.check();
      this.current.target = v.id;
      try {
        // What the index points into this volume: each must start a needle that checks.
        const entries = await this.entriesOf(v.id);
        const report = await this.scrubFile(this.pathOf(v.id), [...entries.keys()].sort((a, b) => a - b));
        summary.volumes += 1;
        summary.needles += report.needles;
        const invalidAt = new Set(report.invalidAt.map((r) => r.offset));
        summary.invalid += report.invalid + report.missing.filter((o) => !invalidAt.has(o)).length;
        if (report.invalid > 0 || report.missing.length > 0) await this.mend(v.id, report, entries, summary);
      } catch (err) {
        // The CPU pool or an actor closing under a stopped scrub: the stop is the answer.
        this.halt.check();
        // A volume removed by a vacuum meanwhile is no error: its live needles are elsewhere now.
        if ((err as { code?: unknown }).code !== 'NOT_FOUND') summary.errors.push(`volume ${v.id}: ${(err as Error).message ?? String(err)}`);
      }
      summary.bytes += v.sizeBytes;
      await this.advance(v.sizeBytes);
    }
    summary.durationMs = this.clock.now() - started;
    this.last = summary;
    if (summary.damagedNeedles.length > 0) this.onDamage(summary.damagedNeedles);
    return summary;
  }

  /** The invalid regions of a volume that the index points at: repaired from a good copy, or reported. */
  private async mend(volume: number, report: ScrubReport, entries: Map<number, VolumeEntry>, summary: ScrubSummary): Promise<void> {
    const group = (await this.ports.volumes.groupInfo()).find((g) => g.id === groupOfVolume(volume));
    const replicated = (group?.members.length ?? 0) > 0;
    // An invalid needle the index names is in both lists: once.
    const offsets = new Set([...report.invalidAt.map((r) => r.offset), ...report.missing]);
    for (const offset of offsets) {
      const entry = entries.get(offset);
      if (entry === undefined) {
        summary.unreferenced += 1;
        continue;
      }
      const error = await this.repair(entry, replicated);
      if (error === null) {
        summary.repaired += 1; // moved, or written over meanwhile: either way no key points at the bad bytes
        continue;
      }
      summary.damaged += 1;
      if (summary.damagedNeedles.length < MAX_DAMAGED_LISTED) summary.damagedNeedles.push({ volume, offset: entry.offset, length: entry.length, key: entry.key, error });
    }
  }

  /**
   * Copies the needle from a good copy; null when done, else why not. In a replicated group twice:
   * a streamed read finds the damage only at its end, after which the group reader takes the
   * needle from a member. A single copy is tried once (each try of a large value leaves a copy
   * that fails at its end as garbage).
   */
  private async repair(entry: VolumeEntry, replicated: boolean): Promise<string | null> {
    let error = '';
    for (let attempt = 0; attempt < (replicated ? 2 : 1); attempt++) {
      try {
        const bad = await this.copier.copy([entry], { moved: 0, changed: 0, copiedBytes: 0 });
        if (bad.length === 0) return null;
        error = bad[0]!.error;
      } catch (err) {
        error = (err as Error).message ?? String(err);
      }
    }
    return error;
  }

  private async entriesOf(volume: number): Promise<Map<number, VolumeEntry>> {
    const byOffset = new Map<number, VolumeEntry>();
    let cursor = 0;
    do {
      const slice = await this.ports.index.volumeEntries([volume], cursor, ENTRY_SLICE_BUCKETS);
      for (const e of slice.entries) byOffset.set(e.offset, e);
      cursor = slice.cursor;
    } while (cursor !== 0);
    return byOffset;
  }

  /** Progress, then a pause that keeps the average read rate under the setting. */
  private async advance(bytes: number): Promise<void> {
    const p = this.current;
    if (p === null) return;
    advanceProgress(p, bytes, this.clock.now());
    const wait = paceDelay(p, this.settings.rateBytesPerSec, this.clock.now());
    if (wait > 1) await this.halt.sleep(wait);
  }
}
