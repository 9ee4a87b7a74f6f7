// `node cmd/check-wal.js --data DIR [--fix]`: what redis-check-aof is to Redis. Reports how far
// wal.log reads, where and why it stops, and whether valid records of later group commits
// follow (damage in the middle: the master refuses to start). With --fix, it keeps a copy of
// the log, cuts it at the damage (dropping the records after it: the operator's explicit
// choice), and moves the index aside so that it is rebuilt from the cut log on the next start
// (an index that applied records past the cut would otherwise skip the new ones).
import { copyFileSync, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { NodeFs } from '../runtime/fs.js';
import { findValidRecordAfter, scanWal } from '../storage/wal_reader.js';

export async function main(argv: string[]): Promise<number> {
  const dataAt = argv.indexOf('--data');
  const dir = dataAt >= 0 ? argv[dataAt + 1] : 'brisedb-data';
  if (dir === undefined || argv.includes('--help')) {
    process.stdout.write('usage: node cmd/check-wal.js --data DIR [--fix]\n');
    return dir === undefined ? 2 : 0;
  }
  const fix = argv.includes('--fix');
  const fs = new NodeFs();
  const path = join(dir, 'wal.log');
  if (!existsSync(path)) {
    process.stderr.write(`check-wal: no ${path}\n`);
    return 1;
  }
  const scan = scanWal(fs, path);
  const last = scan.records.at(-1)?.lsn ?? scan.snapshotLsn;
  process.stdout.write(`${path}: ${scan.records.length} records read, last LSN ${last}, ${scan.validEnd} of ${scan.fileSize} bytes valid\n`);
  if (scan.validEnd === scan.fileSize) {
    process.stdout.write('OK: the log reads to its end\n');
    return 0;
  }
  const after = findValidRecordAfter(fs, path, scan.validEnd, last + 1);
  if (after === null) {
    process.stdout.write(`a torn tail at offset ${scan.validEnd} (${scan.stopReason ?? 'bad record'}): the master cuts it by itself on start\n`);
    return 0;
  }
  process.stdout.write(
    `DAMAGED in the middle: the record at offset ${scan.validEnd} (after LSN ${last}) is unreadable (${scan.stopReason ?? 'bad record'}); ` +
      `valid records of later group commits follow (LSN ${after.lsn} at offset ${after.offset})\n`,
  );
  if (!fix) {
    process.stdout.write(`node cmd/rebuild.js --data ${dir} rebuilds the log from the volume log with every record; or run again with --fix to cut the log there (the records after it are lost; a copy of the log is kept)\n`);
    return 1;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  copyFileSync(path, `${path}.corrupt-${stamp}`);
  const file = fs.open(path, 'write');
  try {
    file.truncate(scan.validEnd);
    file.sync();
  } finally {
    file.close();
  }
  for (const name of ['index.hash', 'index.hash.heads']) {
    const p = join(dir, name);
    if (existsSync(p)) renameSync(p, `${p}.before-fix-${stamp}`);
  }
  fs.syncDir(dir);
  process.stdout.write(`fixed: cut at offset ${scan.validEnd}; copy kept as ${path}.corrupt-${stamp}; the index is rebuilt on the next start\n`);
  return 0;
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
