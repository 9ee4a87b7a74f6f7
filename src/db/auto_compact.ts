// The automatic COMPACT, as Redis' auto-aof-rewrite-percentage and auto-aof-rewrite-min-size:
// wal.log holds every write since the last COMPACT, small values included (the redo needles
// their records carry, docs/formats.md), so it is rewritten (a snapshot of the live keys, then
// the records after it) once it has grown `percentage` % over its size after the last
// compaction and is at least `minBytes`. Without it the log would keep every value ever
// written, and a start would read all of it.
// Owns: the base size (what the WAL measured after the last compaction, or at start).

export interface AutoCompact {
  /** Growth over the base that makes a COMPACT due, in percent; 0: never (only COMPACT). */
  percentage: number;
  /** No COMPACT below this size of wal.log. */
  minBytes: number;
  /** How often the size is looked at (ms). */
  everyMs: number;
}

export const DEFAULT_AUTO_COMPACT: AutoCompact = { percentage: 100, minBytes: 64 * 1024 * 1024, everyMs: 10_000 };

/** Whether a WAL of `size` bytes is due, `base` bytes after the last compaction. */
export function compactDue(size: number, base: number, settings: AutoCompact): boolean {
  return settings.percentage > 0 && size >= settings.minBytes && size >= base * (1 + settings.percentage / 100);
}

export class AutoCompactor {
  /** -1 until the first look. */
  private base = -1;

  constructor(
    private readonly settings: AutoCompact,
    private readonly walSize: () => Promise<number>,
    private readonly compact: () => Promise<void>,
  ) {}

  /** One look: compacts when due; answers whether it did. */
  async check(): Promise<boolean> {
    const size = await this.walSize();
    // The first look, or a WAL that shrank (a COMPACT asked for): the base is what it is now.
    if (this.base < 0 || size < this.base) this.base = size;
    if (!compactDue(size, this.base, this.settings)) return false;
    await this.compact();
    this.base = await this.walSize();
    return true;
  }
}
