// What the crash-point suites (vacuum_crash, rebuild_crash) share: the crash modes, the operations
// that change nothing on disk, a case's label, and the disk a crash of each mode leaves.
import { SimFs, mulberry32, type CrashMode, type OpInfo } from './sim_fs.js';
import { showOp } from './fault_harness.js';

/** A process crash keeps every operation issued; the others are SimFs power losses. */
export type Mode = CrashMode | 'process';

/** The modes, each with its seeds (`count` of them per randomized mode). */
export function modesWithSeeds(count: number): [Mode, number[]][] {
  const seeds = (base: number): number[] => Array.from({ length: count }, (_, i) => base + i * 7);
  return [
    ['process', [0]],
    ['drop', [0]],
    ['prefix', seeds(101)],
    ['subset-garbage', seeds(202)],
    ['torn', seeds(303)],
    ['random', seeds(404)],
  ];
}

/** Operations that change nothing on disk: a crash before one is a crash before the next one that does. */
export const READS: ReadonlySet<string> = new Set(['read', 'readFile', 'exists', 'readdir', 'size', 'close']);

/**
 * An operation on the volume log (its files, its pointer): rebuild_crash crashes at each of them;
 * the other suites, whose invariants are the WAL's, the index's and the volumes', may leave them
 * out (a crash just before one leaves those as the crash just after the last other op does).
 */
export function isVolumeLogOp(op: OpInfo): boolean {
  return op.path.includes('/log/') || op.path.includes('volume-log.json');
}

export interface CaseInfo {
  scenario: string;
  k: number;
  op: OpInfo | undefined;
  mode: Mode;
  seed: number;
}

export function label(c: CaseInfo): string {
  const at = c.op === undefined ? `after the completed run (op #${c.k})` : `at op #${c.k} (${showOp(c.op)})`;
  return `${c.scenario}: crash ${at}, mode ${c.mode}, seed ${c.seed}`;
}

/** The disk a process crash leaves: everything issued, durable (the machine kept running). */
export function afterProcessCrash(fs: SimFs): SimFs {
  const out = new SimFs();
  const dirs: string[] = ['/'];
  for (const [path, bytes] of fs.snapshot('current')) {
    if (bytes === 'dir') {
      out.mkdir(path);
      dirs.push(path);
      continue;
    }
    const h = out.open(path, 'create');
    if (bytes.length > 0) h.write(bytes, 0);
    h.sync();
    h.close();
  }
  for (const d of dirs) out.syncDir(d);
  return out;
}

/** A copy of the disk at crash point k, crashed in `mode` (the original is left as it is). */
export function crashed(fs: SimFs, k: number, mode: Mode, seed: number): SimFs {
  const copy = fs.clone();
  if (mode === 'process') return afterProcessCrash(copy);
  copy.crash(mode, mulberry32(seed * 1009 + k));
  return copy;
}
