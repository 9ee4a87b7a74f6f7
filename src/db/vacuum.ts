// Vacuum: gives back the space of garbage needles (docs/vacuum.md). One volume at a time:
//   1. seal it (it takes no new needle; uploads reserved in it before finish first);
//   2. for each entry the index has in it: an expired one is deleted (DEL_IF, as the sweep does);
//      a live one is read (checked: a damaged needle is never copied; a replicated group reads
//      it from a good member) and written again through the ordinary write path into its group's
//      current volume, so members and replicas get the copy as any write; then a MOVE_IF record
//      points the key at the copy only if it still points at the old needle (a write since wins;
//      the copy is garbage then);
//   3. when the index says no entry points into it any more, a RETIRE record gives it up (any
//      write still in flight that placed a needle in it before the seal is refused from then on,
//      atomically, and written again by its client);
//   4. after a grace period for reads that looked the key up before the move (they also follow
//      the move by themselves: moved_reader.ts), its file is removed, here and on the members.
// Every step is a record through the WAL or idempotent, so a crash anywhere leaves the state
// before or after it: a copy no record names is garbage, a retired volume still on disk is
// removed by the next vacuum. So a store that closes stops a run at its next step (stop()): its
// pauses end at once and its caller hears why, rather than waiting for the run or for nothing.
import type { Clock } from '../runtime/clock.js';
import { StoreError } from '../runtime/errors.js';
import type { Scheduler } from '../runtime/scheduler.js';
import { OpCode, type Op } from '../storage/types.js';
import { groupOfVolume } from '../storage/volume_format.js';
import type { VolumeEntry } from '../protocol/index_protocol.js';
import { advanceProgress, paceDelay, type Progress, type VacuumReport } from '../protocol/operations.js';
import type { VolumeUsageInfo } from './api.js';
import type { Ports } from './ports.js';
import { volumeUsage } from './volume_usage.js';
import { BATCH_OPS, NeedleCopier } from './needle_copy.js';

export type { Progress, VacuumReport };

export interface VacuumSettings {
  /** A volume is vacuumed when its garbage is at least this fraction of its bytes (0..1). */
  threshold: number;
  /** Bytes copied per second at most (0: no limit), so foreground traffic keeps its latency. */
  rateBytesPerSec: number;
  /** The automatic vacuum leaves volumes with less garbage than this alone. */
  minGarbageBytes: number;
  /** How long a retired volume's file stays for reads that looked its keys up before the move. */
  graceMs: number;
}

export const DEFAULT_VACUUM: VacuumSettings = {
  threshold: 0.3,
  rateBytesPerSec: 64 * 1024 * 1024,
  minGarbageBytes: 1024 * 1024,
  graceMs: 2000,
};

/** Index buckets read per slice of a volume's entries. */
const ENTRY_SLICE_BUCKETS = 256;
/** Passes over one volume before giving up on keys that keep changing (or damaged needles). */
const MAX_PASSES = 3;
/** How long a seal waits for the uploads reserved in the volume before it. */
const SEAL_WAIT_MS = 10 * 60_000;
const SEAL_POLL_MS = 100;
/** Retired volumes asked for per removal (the writer takes at most 256: a DELETE each on every member). */
const REMOVE_CHUNK = 256;
/** How long stop() waits for the step in progress (an actor call) before it gives up on the run. */
const STOP_WAIT_MS = 5_000;

/**
 * The stop of a background run (vacuum, scrub) when its store closes: its pauses end at once,
 * and its next step throws the stop's reason, so whoever waits for the run hears an error rather
 * than waiting for a paced run to finish, or forever for a timer the closing store cancelled.
 */
export class RunStop {
  private reason: Error | null = null;
  private readonly sleepers = new Set<() => void>();

  constructor(private readonly scheduler: Scheduler) {}

  get stopped(): Error | null {
    return this.reason;
  }

  /** Throws the stop's reason once stopped: called between the steps of a run. */
  check(): void {
    if (this.reason !== null) throw this.reason;
  }

  /** A pause that stop() ends at once (with the stop's reason). */
  sleep(ms: number): Promise<void> {
    this.check();
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        timer.cancel();
        this.sleepers.delete(wake);
        if (this.reason === null) resolve();
        else reject(this.reason);
      };
      const timer = this.scheduler.after(ms, wake);
      this.sleepers.add(wake);
    });
  }

  /** Stops for good; resolves when `running` has ended, or after STOP_WAIT_MS (a step that hangs). */
  async stop(reason: Error, running: Promise<unknown> | null): Promise<void> {
    this.reason ??= reason;
    for (const wake of [...this.sleepers]) wake();
    if (running === null) return;
    let timer: { cancel(): void } | undefined;
    const late = new Promise<void>((resolve) => {
      timer = this.scheduler.after(STOP_WAIT_MS, resolve);
    });
    await Promise.race([running.then(() => undefined, () => undefined), late]);
    timer?.cancel();
  }
}

/** A volume a run retired, to be removed at the run's end. */
interface Retired {
  report: VacuumReport;
  sizeBytes: number;
}

export class Vacuum {
  private running: Promise<VacuumReport[]> | null = null;
  private current: Progress | null = null;
  /** Retired volumes a member could not remove (down, unreachable): asked again by every run. */
  private readonly unremoved = new Set<number>();
  /**
   * Whether this process asked once for the removal of every volume the index retired: one a
   * member missed before a restart of the master is no longer on the local drive, so nothing
   * else would name it again.
   */
  private swept = false;
  /**
   * Volumes a run left holding a needle that could not be read (damaged, no good copy), with
   * their live bytes then: the automatic pass leaves them until those change (the key deleted,
   * written again, expired or repaired by a scrub: the mark no longer holds).
   */
  private readonly unreadable = new Map<number, number>();
  /** Set when the store closes: the run in progress ends at its next step. */
  private readonly halt: RunStop;
  /** Copies a volume's live needles and moves their keys, every byte counted and paced. */
  private readonly copier: NeedleCopier;

  constructor(
    private readonly ports: Ports,
    private readonly clock: Clock,
    scheduler: Scheduler,
    private readonly settings: VacuumSettings,
    /** Volumes whose files are gone: every reader closes its handle (frees the space). */
    private readonly onRemoved: (volumes: number[]) => void = () => undefined,
    /** Told what each run did (the master logs it), automatic or asked for. */
    private readonly onRun: (reports: VacuumReport[], auto: boolean) => void = () => undefined,
  ) {
    this.halt = new RunStop(scheduler);
    this.copier = new NeedleCopier(ports, async (bytes) => {
      this.advance(bytes);
      await this.pace();
    });
  }

  /** The vacuum in progress, if any. */
  progress(): Progress | null {
    return this.current === null ? null : { ...this.current };
  }

  /**
   * Vacuums `volume`, or every volume whose garbage is over the threshold (`auto`: sealed ones
   * with at least minGarbageBytes only), and removes what earlier runs retired but left on disk.
   * One run at a time: an automatic pass while one runs joins it; a VACUUM waits for it, then
   * runs for itself (what it asked for may not be what the running one does).
   */
  run(volume?: number, auto = false): Promise<VacuumReport[]> {
    const stopped = this.halt.stopped;
    if (stopped !== null) return Promise.reject(stopped);
    if (this.running !== null) {
      if (auto) return this.running;
      return this.running.then(
        () => this.run(volume, auto),
        () => this.run(volume, auto),
      );
    }
    const running = this.runAll(volume, auto).finally(() => {
      if (this.running === running) this.running = null;
      this.current = null;
    });
    this.running = running;
    return running;
  }

  /**
   * Ends the run in progress at its next step (a paced pause ends now); it answers a CLOSED error
   * that says where it stopped. What it moved stays moved: a stop is a crash point it survives
   * (see the top of the file). Resolves when the run has ended; no run starts after.
   */
  stop(reason: Error): Promise<void> {
    return this.halt.stop(reason, this.running);
  }

  /** The volumes a run would vacuum now. */
  private async candidates(auto: boolean): Promise<VolumeUsageInfo[]> {
    const s = this.settings;
    return (await volumeUsage(this.ports)).filter((v) => {
      if (v.retired) return false;
      const used = v.liveBytes + v.garbageBytes;
      if (used === 0 || v.garbageBytes < s.threshold * used) return false;
      // A volume holding a needle no copy of which reads back is left to VACUUM it or SCRUB: an
      // automatic pass would copy the rest again and again, and never empty it.
      // Until its live bytes change: then a key it held was deleted, written again or moved.
      if (auto && this.unreadable.get(v.id) === v.liveBytes) return false;
      // A sealed volume no entry points into costs no copy: removed whatever its size (docs/vacuum.md,
      // crash points); with small volumes (--max-volume-size 1mb) none would ever reach minGarbageBytes.
      return !auto || (v.sealed && (v.garbageBytes >= s.minGarbageBytes || v.liveBytes === 0));
    });
  }

  private async runAll(volume: number | undefined, auto: boolean): Promise<VacuumReport[]> {
    const reports: VacuumReport[] = [];
    try {
      return await this.runTargets(volume, auto, reports);
    } catch (err) {
      const reason = this.halt.stopped;
      if (reason === null) throw err;
      if (reports.length > 0) this.onRun(reports, auto);
      throw this.stoppedError(reason);
    }
  }

  /** What a run stopped by the store's close answers: where it stopped, and that nothing is lost. */
  private stoppedError(reason: Error): StoreError {
    const code = reason instanceof StoreError ? reason.code : 'CLOSED';
    const p = this.current;
    const where = p === null ? 'before it began' : `at volume ${p.target} after copying ${p.doneBytes} of ${p.totalBytes} bytes`;
    return new StoreError(code, `${reason.message}; the vacuum stopped ${where} (what it moved stays moved; VACUUM again to finish)`);
  }

  private async runTargets(volume: number | undefined, auto: boolean, reports: VacuumReport[]): Promise<VacuumReport[]> {
    const all = await volumeUsage(this.ports);
    await this.removeRetired(all.filter((v) => v.retired).map((v) => v.id));
    let targets: VolumeUsageInfo[];
    if (volume === undefined) targets = await this.candidates(auto);
    else {
      const v = all.find((x) => x.id === volume);
      if (v === undefined) throw new StoreError('NOT_FOUND', `no volume ${volume} in this store (VOLINFO lists them)`);
      targets = v.retired ? [] : [v];
    }
    // One progress for the whole run: the live bytes of every target are what it copies.
    this.current = { operation: 'vacuum', target: targets[0]?.id ?? -1, doneBytes: 0, totalBytes: targets.reduce((n, v) => n + v.liveBytes, 0), startedAt: this.clock.now(), etaMs: -1 };
    const retired: Retired[] = [];
    let through = 0;
    for (const v of targets) {
      this.halt.check();
      const report: VacuumReport = { volume: v.id, group: groupOfVolume(v.id), moved: 0, copiedBytes: 0, changed: 0, expired: 0, freedBytes: 0, removed: false, durationMs: 0, errors: [] };
      reports.push(report);
      await this.vacuumOne(v, report, retired);
      // Keys changed or expired meanwhile were not copied, and a copy's padding is not counted:
      // a volume done is its whole share of the total.
      through += v.liveBytes;
      if (this.current !== null && this.current.doneBytes < through) this.advance(through - this.current.doneBytes);
    }
    await this.removeNow(retired);
    if (!this.swept) {
      // Once per process, after its first run's own work: every volume the index retired (an
      // index that does not answer now is asked by the next run; this run's reports stand).
      const retired = await this.ports.index.volumeUsage().then((u) => u.retired, () => null);
      if (retired !== null) {
        await this.removeRetired(retired);
        this.swept = true;
      }
    }
    if (reports.length > 0) this.onRun(reports, auto);
    return reports;
  }

  /**
   * Retires one volume (copies, moves, RETIRE) into `report`; its removal is the run's, after one
   * grace period for all. A stop (the store closing) is thrown on, the rest is the report's.
   */
  private async vacuumOne(v: VolumeUsageInfo, report: VacuumReport, retired: Retired[]): Promise<void> {
    const started = this.clock.now();
    if (this.current !== null) this.current.target = v.id;
    try {
      await this.seal(v.id);
      const bad = new Map<number, string>();
      for (let pass = 0; pass < MAX_PASSES; pass++) {
        await this.copyPass(v.id, report, bad);
        if (await this.liveBytesOf(v.id) === 0) break;
      }
      if (bad.size > 0) {
        this.unreadable.set(v.id, await this.liveBytesOf(v.id));
        report.errors.push(`volume ${v.id} keeps ${bad.size} value(s) whose bytes fail their checks with no good copy (the automatic vacuum leaves it until those keys are written again or deleted; SCRUB reports them): ${[...bad.values()].slice(0, 5).join('; ')}`);
        return;
      }
      this.unreadable.delete(v.id);
      const [result] = (await this.ports.commit.commit([{ code: OpCode.Retire, volume: v.id }])).results;
      if (result !== 1) {
        report.errors.push(`volume ${v.id} still holds ${await this.liveBytesOf(v.id)} live bytes after ${MAX_PASSES} passes (keys written meanwhile); vacuum it again`);
        return;
      }
      retired.push({ report, sizeBytes: v.sizeBytes });
    } catch (err) {
      const stopped = this.halt.stopped;
      report.errors.push(stopped === null ? ((err as Error).message ?? String(err)) : `stopped part-way: ${stopped.message}`);
      if (stopped !== null) throw err;
    } finally {
      report.durationMs = this.clock.now() - started;
    }
  }

  /**
   * The volumes this run retired: after one grace period (reads that looked their keys up before
   * the moves), their files go, per group, here and on the members; main closes the handles.
   */
  private async removeNow(retired: Retired[]): Promise<void> {
    if (retired.length === 0) return;
    try {
      await this.halt.sleep(this.settings.graceMs);
    } catch (err) {
      for (const { report } of retired) report.errors.push('retired; the store closed before its file was removed (the next vacuum removes it)');
      throw err;
    }
    for (const { report, sizeBytes } of retired) {
      const removal = await this.remove(report.group, [report.volume]);
      report.errors.push(...removal.errors);
      report.removed = removal.removed.includes(report.volume);
      if (report.removed) report.freedBytes = sizeBytes;
    }
  }

  /** Seals the volume, then waits until no upload reserved in it before the seal is still writing. */
  private async seal(volume: number): Promise<void> {
    const deadline = this.clock.now() + SEAL_WAIT_MS;
    for (;;) {
      let uploads = 1;
      try {
        uploads = (await this.ports.volumes.seal(volume)).uploads;
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'BUSY') throw err;
      }
      if (uploads === 0) return;
      if (this.clock.now() >= deadline) throw new StoreError('BUSY', `volume ${volume} still takes uploads after ${SEAL_WAIT_MS / 1000} s; vacuum it later`);
      await this.halt.sleep(SEAL_POLL_MS);
    }
  }

  /**
   * One walk over the index for the volume's entries, copying and moving them a batch at a time.
   * Needles found unreadable (in `bad`, by offset) are not tried again by a later pass.
   */
  private async copyPass(volume: number, report: VacuumReport, bad: Map<number, string>): Promise<void> {
    let cursor = 0;
    do {
      this.halt.check();
      const slice = await this.ports.index.volumeEntries([volume], cursor, ENTRY_SLICE_BUCKETS);
      cursor = slice.cursor;
      const now = this.clock.now();
      const expired = slice.entries.filter((e) => e.expiresAt !== 0 && e.expiresAt <= now);
      const live = slice.entries.filter((e) => (e.expiresAt === 0 || e.expiresAt > now) && !bad.has(e.offset));
      if (expired.length > 0) await this.dropExpired(expired, report);
      if (live.length === 0) continue;
      for (const u of await this.copier.copy(live, report)) bad.set(u.entry.offset, `${Buffer.from(u.entry.key).toString('utf8')}: ${u.error}`);
    } while (cursor !== 0);
  }

  private async dropExpired(entries: VolumeEntry[], report: VacuumReport): Promise<void> {
    for (let i = 0; i < entries.length; i += BATCH_OPS) {
      this.halt.check();
      const ops: Op[] = entries.slice(i, i + BATCH_OPS).map((e) => ({ code: OpCode.DelIf, key: e.key, volume: e.volume, offset: e.offset }));
      const { results } = await this.ports.commit.commit(ops);
      report.expired += results.filter((r) => r === 1).length;
    }
  }

  private advance(bytes: number): void {
    if (this.current !== null) advanceProgress(this.current, bytes, this.clock.now());
  }

  /** Waits until the bytes copied so far are within the rate (the progress counts every byte once); a stop ends the copy here. */
  private async pace(): Promise<void> {
    this.halt.check();
    const wait = this.current === null ? 0 : paceDelay(this.current, this.settings.rateBytesPerSec, this.clock.now());
    if (wait > 1) await this.halt.sleep(Math.min(wait, 1000));
  }

  private async liveBytesOf(volume: number): Promise<number> {
    const usage = await this.ports.index.volumeUsage();
    return usage.live.find(([id]) => id === volume)?.[1] ?? 0;
  }

  /**
   * Retired volumes still on the local drive (a crash), those a member could not remove (it was
   * down), and `volumes`: removed again. A volume already gone is no error, here or on a member.
   */
  private async removeRetired(volumes: number[]): Promise<void> {
    const ids = new Set([...volumes, ...this.unremoved]);
    const byGroup = new Map<number, number[]>();
    for (const id of [...ids].sort((a, b) => a - b)) {
      const list = byGroup.get(groupOfVolume(id)) ?? [];
      list.push(id);
      byGroup.set(groupOfVolume(id), list);
    }
    for (const [group, list] of byGroup) {
      for (let i = 0; i < list.length; i += REMOVE_CHUNK) {
        await this.remove(group, list.slice(i, i + REMOVE_CHUNK));
      }
    }
  }

  /**
   * Removes retired volumes of one group, here and on its members: those removed here are
   * announced (readers close them); when a member refused, all are kept to be asked again.
   */
  private async remove(group: number, ids: number[]): Promise<{ removed: number[]; errors: string[] }> {
    let removal: { removed: number[]; errors: string[] };
    try {
      removal = await this.ports.volumes.remove(group, ids);
    } catch (err) {
      removal = { removed: [], errors: [(err as Error).message ?? String(err)] };
    }
    if (removal.removed.length > 0) this.onRemoved(removal.removed);
    for (const id of ids) {
      if (removal.errors.length === 0) this.unremoved.delete(id);
      else this.unremoved.add(id);
    }
    return removal;
  }
}
