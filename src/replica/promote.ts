// `node cmd/replica.js --promote`: a replica's data dir becomes a master's. Its history is
// replaced by a new one that begins after its last LSN and names the old one as its previous
// (storage/history.ts), so the other replicas of the old master continue from the new one
// without a full copy, and the old master, if it comes back, is not followed by them.
import type { Logger } from 'pino';
import { NodeFs } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';
import { loadHistory, promote } from '../storage/history.js';
import { resyncPending, walLastLsn } from '../storage/store_files.js';

export function promoteDataDir(dataDir: string, log: Logger): void {
  const fs = new NodeFs();
  if (resyncPending(fs, dataDir)) throw new StoreError('CORRUPT', `${dataDir}: a full resync was cut short here; this copy is incomplete and cannot be promoted`);
  const history = loadHistory(fs, dataDir);
  if (history === null) throw new StoreError('NOT_FOUND', `${dataDir}: no replication history: not a replica's data dir`);
  const lastLsn = walLastLsn(fs, dataDir);
  const next = promote(fs, dataDir, history, lastLsn);
  log.warn({ history: next.id, previous: history.id, lsn: lastLsn }, 'data dir promoted: a master on a new history');
}
