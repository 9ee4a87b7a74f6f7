// `node cmd/rebuild.js --data DIR [--drives DIR,DIR] [--log-drive DIR] [--force]`: rebuilds a
// data dir's wal.log and index.hash from the volume log on its drives (docs/formats.md §Log
// volumes), when both are lost or damaged. Takes the data dir's LOCK, so it never runs beside a
// master; keeps the old files as *.before-rebuild-STAMP; the master then starts as usual.
import { hostname } from 'node:os';
import cliProgress from 'cli-progress';
import { resolve } from 'node:path';
import { NodeFs } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';
import { acquireLock } from '../storage/lock_file.js';
import { loadRegistry } from '../storage/registry.js';
import { rebuildStore, type RebuildResult } from '../storage/store_rebuild.js';
import { isProcessAlive } from '../wiring/open.js';

const USAGE = `usage: node cmd/rebuild.js --data DIR [--drives DIR,DIR] [--log-drive DIR] [--force]

Rebuilds wal.log and index.hash from the volume log (log/log-NNNNNN.data on the log drive),
when both are lost or damaged. The drives of vol-registry.json are searched as well.
  --force   replace a wal.log that reads whole and is not behind the volume log
Exit codes: 0 rebuilt (or nothing to do), 1 failed, 2 bad flags.
`;

interface Args {
  dir: string;
  drives: string[];
  force: boolean;
}

function parseArgs(argv: string[]): Args | string {
  const args: Args = { dir: 'brisedb-data', drives: [], force: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--force') args.force = true;
    else if ((flag === '--data' || flag === '--drives' || flag === '--log-drive') && value !== undefined && value !== '') {
      i += 1;
      if (flag === '--data') args.dir = value;
      else args.drives.push(...value.split(',').filter((d) => d !== ''));
    } else return `rebuild: bad or incomplete flag ${flag ?? ''}`;
  }
  return args;
}

/** The drives vol-registry.json names (it may be lost or damaged too: then none). */
function registryDrives(fs: NodeFs, dir: string): string[] {
  try {
    const registry = loadRegistry(fs, dir);
    if (registry === null) return [];
    return Object.values(registry.groups).flatMap((g) => g.members.flatMap((m) => ('drive' in m ? [m.drive] : [])));
  } catch {
    return [];
  }
}

function report(r: RebuildResult): string {
  const lines: string[] = [];
  const log = r.log;
  lines.push(`volume log: ${log.files.length} file(s) of the generation at snapshot LSN ${log.baseLsn ?? '-'}; ${log.snapshotChunks} snapshot chunk(s), ${log.records} record(s), last LSN ${log.lastLsn}`);
  if (log.damagedRegions > 0) lines.push(`  ${log.damagedRegions} damaged region(s) stepped over`);
  if (log.dropped !== null) lines.push(`  WARNING: LSN ${log.lastLsn + 1} is missing; ${log.dropped.count} record(s) after it (LSN ${log.dropped.firstLsn}..${log.dropped.lastLsn}) cannot be applied and were dropped`);
  if (log.unreadable.length > 0) lines.push(`  unreadable log files: ${log.unreadable.join(', ')}`);
  if (r.oldWal !== null) lines.push(`old wal.log: last LSN ${r.oldWal.lastLsn}, ${r.oldWal.whole ? 'reads whole' : `damaged${r.oldWal.error ? ` (${r.oldWal.error})` : ''}`}`);
  if (!r.replaced) {
    lines.push('nothing rebuilt: wal.log reads whole and is not behind the volume log (the master rebuilds a lost index from it by itself); --force rebuilds anyway');
    return lines.join('\n');
  }
  for (const kept of r.keptAs) lines.push(`kept ${kept}`);
  lines.push(`rebuilt wal.log (${log.walBytes} bytes) and the index: ${r.keys} live key(s)`);
  if (r.keysWithoutVolume > 0) lines.push(`  WARNING: ${r.keysWithoutVolume} key(s) point into volume(s) on none of the drives: ${r.missingVolumes.join(', ')} (pass their drives with --drives)`);
  return lines.join('\n');
}

/**
 * A bar on stderr when it is a terminal: reading the volume log (MB), then the index (records).
 * The rebuild is synchronous, so the bar is redrawn from its own calls, at most every 100 ms.
 */
function progressBar(): { update: (phase: 'log' | 'index', done: number, total: number) => void; stop: () => void } | null {
  if (process.stderr.isTTY !== true) return null;
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: 'rebuild: {phase} [{bar}] {percentage}% | {value}/{total} {unit}', hideCursor: true, clearOnComplete: true, fps: 10 },
    cliProgress.Presets.shades_classic,
  );
  let phase = '';
  let last = 0;
  return {
    update: (next, done, total) => {
      const scale = next === 'log' ? 1024 * 1024 : 1;
      const payload = { phase: next === 'log' ? 'reading the volume log' : 'rebuilding the index', unit: next === 'log' ? 'MB' : 'records' };
      if (next !== phase) {
        if (phase !== '') bar.stop();
        bar.start(Math.max(1, Math.ceil(total / scale)), 0, payload);
        phase = next;
      }
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      bar.update(Math.floor(done / scale), payload);
      bar.render();
    },
    stop: () => {
      if (phase !== '') bar.stop();
    },
  };
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    process.stderr.write(`${args}\n${USAGE}`);
    return 2;
  }
  const fs = new NodeFs();
  const dir = resolve(args.dir);
  if (!fs.exists(dir)) {
    process.stderr.write(`rebuild: no data dir ${dir}\n`);
    return 1;
  }
  const drives = [...new Set([...args.drives.map((d) => resolve(d)), ...registryDrives(fs, dir)])];
  let lock;
  try {
    lock = acquireLock(fs, dir, { pid: process.pid, host: hostname(), nowMs: Date.now() }, isProcessAlive);
  } catch (err) {
    process.stderr.write(`rebuild: ${err instanceof Error ? err.message : String(err)} (stop the master first)\n`);
    return 1;
  }
  try {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const bar = progressBar();
    let result: RebuildResult;
    try {
      result = rebuildStore(fs, dir, { drives, force: args.force, stamp, nowMs: Date.now(), ...(bar ? { progress: bar.update } : {}) });
    } finally {
      bar?.stop();
    }
    process.stdout.write(`${report(result)}\n`);
    return 0;
  } catch (err) {
    const why = err instanceof StoreError ? `${err.code}: ${err.message}` : String(err);
    process.stderr.write(`rebuild: ${why}\n`);
    return 1;
  } finally {
    lock.release();
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
