// Planted bugs for proving that the crash tests have teeth (../shared/TESTING.md, canaries).
// Production never turns one on; property-tests/canaries.test.ts turns each on in turn and
// asserts that the model-based crash test then fails. Each flag is read at exactly the one
// place that it breaks, named beside it.
export interface Canaries {
  /** WAL group commit and volume sync skip fdatasync (wal_writer, drive_volumes). */
  skipFsync: boolean;
  /** Readers accept records, needles and index entries whose CRC does not match. */
  skipChecksum: boolean;
  /** ROLLBACK keeps the rolled-back level's writes (db/transaction). */
  applyRollback: boolean;
  /** Atomic file replacement and file creation skip the directory fsync (atomic_file). */
  skipDirSync: boolean;
  /**
   * The WAL committer answers a group before its fdatasync and syncs 10 ms later
   * (actors/wal_committer): the bug of the actor path, as a lazy-sync "optimisation" makes it.
   */
  answerBeforeSync: boolean;
}

export const canaries: Canaries = {
  skipFsync: false,
  skipChecksum: false,
  applyRollback: false,
  skipDirSync: false,
  answerBeforeSync: false,
};

export function resetCanaries(): void {
  canaries.skipFsync = false;
  canaries.skipChecksum = false;
  canaries.applyRollback = false;
  canaries.skipDirSync = false;
  canaries.answerBeforeSync = false;
}
