// What the long operations (vacuum; scrub and rebuild to come) report, across threads: the
// front ends show it (VACUUM, INFO, /v1/status) and main runs them.

/** What a vacuum did to one volume. */
export interface VacuumReport {
  volume: number;
  group: number;
  /** Keys pointed at their copies. */
  moved: number;
  /** Bytes of needles copied. */
  copiedBytes: number;
  /** Keys written or deleted meanwhile: their copies are garbage. */
  changed: number;
  /** Expired keys deleted instead of copied. */
  expired: number;
  /** The volume's bytes given back (0 when it could not be retired). */
  freedBytes: number;
  /** Whether the file is gone (locally). */
  removed: boolean;
  durationMs: number;
  /** Why it could not finish, or what a member refused. */
  errors: string[];
}

/** A long operation as it goes (vacuum here; the same shape for the others): /v1/status, INFO. */
export interface Progress {
  operation: string;
  /** What it works on now (a volume id). */
  target: number;
  /** Done and total, in bytes (or in keys when `unit` says so: COMPACT). */
  doneBytes: number;
  totalBytes: number;
  unit?: 'keys';
  startedAt: number;
  /** ms left at the rate so far (-1: not known yet). */
  etaMs: number;
}

/** A needle the index points at whose bytes fail their checks, with no good copy found. */
export interface DamagedNeedle {
  volume: number;
  offset: number;
  length: number;
  key: Uint8Array;
  /** Why the repair failed (the read's error). */
  error: string;
}

/** What a scrub found (docs/vacuum.md, "Scrub"). */
export interface ScrubSummary {
  startedAt: number;
  durationMs: number;
  volumes: number;
  needles: number;
  /** Bytes of volume files read. */
  bytes: number;
  /** Needles whose checks failed, referenced or not. */
  invalid: number;
  /** Invalid needles no key points at: harmless (aborted uploads, torn tails). */
  unreferenced: number;
  /** Invalid needles a key pointed at, rewritten from a good copy (the key moved to it). */
  repaired: number;
  /** Invalid needles a key points at with no good copy: reads of those keys fail, never serve them. */
  damaged: number;
  /** The first of them. */
  damagedNeedles: DamagedNeedle[];
  errors: string[];
}

/** Counts `amount` more done, and the ETA at the rate so far (-1 until something is done). */
export function advanceProgress(p: Progress, amount: number, nowMs: number): void {
  p.doneBytes += amount;
  const left = Math.max(0, p.totalBytes - p.doneBytes);
  p.etaMs = p.doneBytes === 0 ? -1 : Math.round(((nowMs - p.startedAt) * left) / p.doneBytes);
}

/** How long to wait now so that what is done stays within `perSecond` on average (0: no limit). */
export function paceDelay(p: Progress, perSecond: number, nowMs: number): number {
  if (perSecond <= 0) return 0;
  return Math.max(0, p.startedAt + (p.doneBytes / perSecond) * 1000 - nowMs);
}

/** Percent done, to a tenth, at most 100 (a total of 0 is 0 %). */
export function percentDone(p: Progress): number {
  return p.totalBytes > 0 ? Math.min(100, Math.round((1000 * p.doneBytes) / p.totalBytes) / 10) : 0;
}
