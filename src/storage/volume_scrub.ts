// The volume scrub: reads a whole volume and checks every needle's header and value CRC, so
// corruption is found before a reader finds it. Runs on the CPU pool (cpu_jobs.ts) in
// production and in the calling thread in tests.
import { NodeFs, type Fs } from '../runtime/fs.js';
import { VolumeFile } from './volume_file.js';
import { NeedleFlag } from './volume_format.js';

/** Invalid needles one scrub reports at most (the count goes on past it). */
export const MAX_SCRUB_REPORT = 1000;

export interface ScrubReport {
  path: string;
  needles: number;
  tombstones: number;
  valueBytes: number;
  invalid: number;
  /** The first MAX_SCRUB_REPORT invalid regions (offset, claimed length). */
  invalidAt: { offset: number; length: number }[];
  /**
   * Offsets of `expect` where no valid needle starts (the first MAX_SCRUB_REPORT): damage the scan
   * cannot see as an invalid needle (a header whose length field changed makes the scan step
   * over the next needles; a file cut short ends before them).
   */
  missing: number[];
}

export interface ScrubInput {
  path: string;
  /** Offsets where the index says needles start, ascending (absent: none checked). */
  expect?: number[];
}

/**
 * Reads a whole volume and checks every needle's header and value CRC: the scrub that finds
 * corruption before a reader does. An invalid needle that no WAL record names (an aborted
 * upload, bytes a crash left unsynced) is harmless; one the index names is real damage.
 */
export function scrubVolume(input: ScrubInput, fs: Fs = new NodeFs()): ScrubReport {
  const volume = VolumeFile.open(fs, input.path, 'read');
  const report: ScrubReport = { path: input.path, needles: 0, tombstones: 0, valueBytes: 0, invalid: 0, invalidAt: [], missing: [] };
  const expect = input.expect ?? [];
  let next = 0; // the first expected offset not yet passed: the scan goes in offset order
  const passed = (upTo: number, found: number): void => {
    for (; next < expect.length && expect[next]! <= upTo; next++) {
      if (expect[next] !== found && report.missing.length < MAX_SCRUB_REPORT) report.missing.push(expect[next]!);
    }
  };
  try {
    for (const n of volume.scan({ verifyValues: true })) {
      passed(n.address.offset, n.valid ? n.address.offset : -1);
      if (!n.valid) {
        report.invalid += 1;
        if (report.invalidAt.length < MAX_SCRUB_REPORT) report.invalidAt.push({ offset: n.address.offset, length: n.address.length });
        continue;
      }
      report.needles += 1;
      if ((n.flags & NeedleFlag.Tombstone) !== 0) report.tombstones += 1;
      report.valueBytes += n.valueLength;
    }
    passed(Infinity, -1);
    return report;
  } finally {
    volume.close();
  }
}
