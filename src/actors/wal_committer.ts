// The WAL committer: the only writer of wal.log.
// Owns: the WAL file (WalWriter), the commits waiting for this turn's group, a WAL compaction
// in progress.
// Invariants:
// - records get consecutive LSNs and reach the index in LSN order, over one channel;
// - a commit is answered only after its record is durable (one write + one fdatasync for the
//   whole group) and the index has applied it, so a reply means visible to every later read;
// - after a failed fsync the WAL is fenced and every later commit fails (WalWriter does it).
import { join } from 'node:path';
import { NodeFs } from '../runtime/fs.js';
import { systemClock } from '../runtime/clock.js';
import { runActor, type ActorContext } from '../runtime/actor.js';
import type { Peer } from '../runtime/peer.js';
import { WalWriter } from '../storage/wal_writer.js';
import { StoreError, type IndexEntry, type Op, type WalRecord } from '../storage/types.js';
import { WalMsg, type WalRequest } from '../protocol/wal_protocol.js';
import { IndexMsg } from '../protocol/index_protocol.js';
import { WalCompactionDriver } from '../db/local_ports.js';
import { WAL_FILE } from '../db/local.js';
import type { SyncPolicy } from '../db/api.js';
import { assertNever } from './assert.js';

export interface WalCommitterConfig {
  dir: string;
  sync: SyncPolicy;
}

/** Commits waiting for the next group; past it, QUEUE_FULL (back-pressure to front ends). */
const MAX_QUEUED = 65_536;
const APPLY_TIMEOUT_MS = 60_000;

interface Waiter {
  ops: Op[];
  resolve: (reply: { lsn: number; results: number[] }) => void;
  reject: (err: unknown) => void;
}

interface State {
  wal: WalWriter;
  index: Peer;
  queue: Waiter[];
  compaction: WalCompactionDriver;
  groups: number;
  records: number;
}

let state: State | null = null;

function init(ctx: ActorContext): void {
  const config = ctx.config as WalCommitterConfig;
  const fs = new NodeFs();
  const walPath = join(config.dir, WAL_FILE);
  state = {
    wal: WalWriter.open(fs, walPath, { sync: config.sync }),
    index: ctx.peer('index'),
    queue: [],
    compaction: new WalCompactionDriver(fs, walPath, systemClock),
    groups: 0,
    records: 0,
  };
  ctx.onControl({
    stats: () => {
      const s = live();
      return { lastLsn: s.wal.lastLsn, snapshotLsn: s.wal.snapshotLsn, size: s.wal.size, groups: s.groups, records: s.records, fenced: s.wal.fenced?.message ?? null };
    },
  });
}

function onRequest(_from: string, body: unknown): unknown {
  const msg = body as WalRequest;
  switch (msg.t) {
    case WalMsg.Commit:
      return onCommit(msg.ops);
    case WalMsg.CompactBegin:
      live().compaction.begin(msg.snapshotLsn);
      return null;
    case WalMsg.CompactChunk:
      return onCompactChunk(msg.entries);
    case WalMsg.CompactFinish:
      live().compaction.finish(live().wal);
      return null;
    case WalMsg.CompactAbort:
      live().compaction.abort();
      return null;
    case WalMsg.LastLsn:
      return live().wal.lastLsn;
    default:
      return assertNever(msg);
  }
}

function onCommit(ops: Op[]): Promise<{ lsn: number; results: number[] }> {
  const s = live();
  if (s.queue.length >= MAX_QUEUED) {
    return Promise.reject(new StoreError('QUEUE_FULL', `more than ${MAX_QUEUED} commits waiting for the WAL`));
  }
  return new Promise((resolve, reject) => {
    s.queue.push({ ops, resolve, reject });
    // setImmediate, not a microtask: every commit decoded in this turn joins the group.
    if (s.queue.length === 1) setImmediate(flushGroup);
  });
}

/** Group commit: one write, one fdatasync, then the index applies, then every waiter hears. */
function flushGroup(): void {
  const s = live();
  const group = s.queue;
  s.queue = [];
  const timeMs = systemClock.now();
  let records: WalRecord[];
  try {
    records = s.wal.commit(group.map((w) => ({ ops: w.ops, timeMs })));
  } catch (err) {
    for (const w of group) w.reject(err);
    return;
  }
  s.groups += 1;
  s.records += records.length;
  s.index.call<number[][]>({ t: IndexMsg.Apply, records }, { timeoutMs: APPLY_TIMEOUT_MS }).then(
    (results) => records.forEach((r, i) => group[i]!.resolve({ lsn: r.lsn, results: results[i] ?? [] })),
    (err: unknown) => {
      // The record is durable; only its answer is lost. The index replays it when it returns.
      const why = err instanceof Error ? err.message : String(err);
      const fail = new StoreError('ACTOR_DOWN', `the write is durable in the WAL, but the index did not confirm it: ${why}`);
      for (const w of group) w.reject(fail);
    },
  );
}

function onCompactChunk(entries: IndexEntry[]): null {
  live().compaction.chunk(entries);
  return null;
}

function stop(): void {
  const s = state;
  if (s === null) return;
  if (s.queue.length > 0) flushGroup();
  s.compaction.abort();
  s.wal.close();
  state = null;
}

function live(): State {
  if (state === null) throw new StoreError('CLOSED', 'WAL committer is not running');
  return state;
}

runActor({ init, onRequest, stop });
