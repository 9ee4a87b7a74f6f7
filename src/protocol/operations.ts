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
  doneBytes: number;
  totalBytes: number;
  startedAt: number;
  /** ms left at the rate so far (-1: not known yet). */
  etaMs: number;
}
