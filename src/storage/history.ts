// The replication history of a store (docs/replica.md, "History, resume, retention"): which line
// of records this store's WAL belongs to. A replica continues from its master only within the
// same history, or within the one the master was promoted from, up to where that one ended, as
// Redis's replid and replid2. Kept in DATA/history as one small JSON object, replaced
// atomically.
//
// Invariants: an id is 40 lowercase hex digits (160 random bits); `since` is the first LSN of
// the current history; `previous`, when present, is the history this store was promoted from
// and the last LSN it applied from it (since = that LSN + 1).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { StoreError } from '../runtime/errors.js';
import type { Fs } from '../runtime/fs.js';
import { removeStaleTemp, replaceFileAtomically } from './atomic_file.js';

export const HISTORY_FILE = 'history';
/** A history file is a few hundred bytes; anything this big is not one. */
const MAX_HISTORY_BYTES = 4096;
const ID = /^[0-9a-f]{40}$/;

export interface History {
  id: string;
  /** The first LSN of this history. */
  since: number;
  /** The history this store was promoted from, and the last LSN it applied from it. */
  previous?: { id: string; end: number };
}

export function newHistoryId(): string {
  return randomBytes(20).toString('hex');
}

/** The store's history, made (and made durable) when it has none: a new store starts one. */
export function loadOrStartHistory(fs: Fs, dataDir: string, firstLsn = 1): History {
  const found = loadHistory(fs, dataDir);
  if (found !== null) return found;
  const history: History = { id: newHistoryId(), since: firstLsn };
  saveHistory(fs, dataDir, history);
  return history;
}

/** null when the store has no history file yet; CORRUPT (naming the file) when it is not one. */
export function loadHistory(fs: Fs, dataDir: string): History | null {
  const path = join(dataDir, HISTORY_FILE);
  removeStaleTemp(fs, path);
  if (!fs.exists(path)) return null;
  const bytes = fs.readFile(path);
  if (bytes.length > MAX_HISTORY_BYTES) throw new StoreError('CORRUPT', `${path}: ${bytes.length} bytes, not a history`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new StoreError('CORRUPT', `${path}: not valid JSON (${(err as Error).message})`);
  }
  const problem = historyProblem(parsed);
  if (problem !== null) throw new StoreError('CORRUPT', `${path}: ${problem}`);
  return parsed as History;
}

export function saveHistory(fs: Fs, dataDir: string, history: History): void {
  const problem = historyProblem(history);
  if (problem !== null) throw new StoreError('BAD_ARGUMENT', `history not saved: ${problem}`);
  replaceFileAtomically(fs, join(dataDir, HISTORY_FILE), new TextEncoder().encode(`${JSON.stringify(history)}\n`));
}

/**
 * A promotion: a new history begins after `lastLsn`, the old one kept as the previous, so its
 * replicas up to `lastLsn` continue without a full copy. Durable when it returns.
 */
export function promote(fs: Fs, dataDir: string, current: History, lastLsn: number): History {
  if (!Number.isSafeInteger(lastLsn) || lastLsn < current.since - 1) {
    throw new StoreError('BAD_ARGUMENT', `cannot promote at LSN ${lastLsn}: the history began at ${current.since}`);
  }
  const next: History = { id: newHistoryId(), since: lastLsn + 1, previous: { id: current.id, end: lastLsn } };
  saveHistory(fs, dataDir, next);
  return next;
}

/**
 * Whether a replica at (`id`, `applied`) may continue from this store without a full copy:
 * same history (from its start on), or the previous one up to where it ended.
 */
export function canContinue(history: History, id: string, applied: number): boolean {
  if (id === history.id) return applied >= history.since - 1;
  const prev = history.previous;
  return prev !== undefined && id === prev.id && applied <= prev.end;
}

function historyProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const h = v as Record<string, unknown>;
  if (typeof h['id'] !== 'string' || !ID.test(h['id'])) return '"id" must be 40 lowercase hex digits';
  if (!isLsn(h['since']) || (h['since'] as number) < 1) return '"since" must be an LSN of 1 or more';
  const prev = h['previous'];
  if (prev === undefined) return null;
  if (typeof prev !== 'object' || prev === null) return '"previous" must be an object';
  const p = prev as Record<string, unknown>;
  if (typeof p['id'] !== 'string' || !ID.test(p['id'])) return '"previous.id" must be 40 lowercase hex digits';
  if (!isLsn(p['end'])) return '"previous.end" must be an LSN';
  if ((p['end'] as number) + 1 !== h['since']) return '"since" must follow "previous.end"';
  return null;
}

function isLsn(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
