// The replication commands a Redis user knows, and BriseDB's read-your-writes pair
// (docs/replica.md): ROLE, WAIT, REPLICAOF / SLAVEOF, INFO replication's lines, BRISE.LSN and
// BRISE.WAITLSN. They answer from the replica table (every thread's replicas: runtime/
// replica_table.ts) on a master, and from main's view of the link on a replica.
// Invariants: a wait (WAIT, BRISE.WAITLSN) is bounded by its timeout, polls at most every
// POLL_MS, and ends early when the connection closes.
import type { ReplicaRow, ReplicaTable } from '../runtime/replica_table.js';
import type { LinkView } from '../protocol/frontend_protocol.js';
import { array, bulk, error, integer, simple, OK, type Reply } from '../protocol/reply.js';

const POLL_MS = 2;
/** WAIT 0 blocks "forever" in Redis; here a day, so that nothing waits unbounded. */
const FOREVER_MS = 24 * 3600 * 1000;

/** What the commands read of the server they run on. */
export interface ReplicationState {
  readonly table: ReplicaTable;
  /** The replica's link as main sees it; null on a master. */
  link(): Promise<LinkView | null>;
  /** The last LSN of this store's WAL. */
  lastLsn(): Promise<number>;
  /** The LSN every write of this thread answered so far is at or below (BRISE.LSN, WAIT). */
  writeLsn(): number;
  /** The LSN the index has applied (visible to reads here). */
  appliedLsn(): Promise<number>;
  /** REPLICAOF NO ONE on a replica. */
  promote(): Promise<{ history: string; lsn: number }>;
  now(): number;
}

export async function roleCommand(state: ReplicationState): Promise<Reply> {
  const link = await state.link();
  if (link === null) {
    const replicas = state.table.list().map((r) => array([bulk(r.ip), bulk(String(r.port)), bulk(String(r.ackedLsn))]));
    return array([bulk('master'), integer(await state.lastLsn()), array(replicas)]);
  }
  return array([bulk('slave'), bulk(link.masterHost), integer(link.masterPort), bulk(linkState(link)), integer(link.appliedLsn)]);
}

/** Redis' replica states: connect, connecting, sync, connected. */
function linkState(link: LinkView): string {
  if (link.status === 'up') return 'connected';
  return link.status === 'sync' ? 'sync' : 'connecting';
}

/** WAIT numreplicas timeout: how many replicas acknowledged this thread's writes so far. */
export async function waitCommand(argv: Buffer[], state: ReplicationState, closed: () => boolean): Promise<Reply> {
  const wanted = parseCount(argv[1]!);
  const timeout = parseCount(argv[2]!);
  if (wanted === null) return error('ERR value is out of range, must be positive');
  if (timeout === null) return error('ERR timeout is out of range');
  if ((await state.link()) !== null) return error('ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.');
  const target = state.writeLsn();
  const deadline = state.now() + (timeout === 0 ? FOREVER_MS : timeout);
  for (;;) {
    const acked = state.table.countAcked(target);
    if (acked >= wanted || state.now() >= deadline || closed() || wanted === 0) return integer(acked);
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - state.now())));
  }
}

/** REPLICAOF NO ONE promotes a replica; REPLICAOF host port is for the replica program. */
export async function replicaofCommand(argv: Buffer[], state: ReplicationState): Promise<Reply> {
  const host = argv[1]!.toString('utf8');
  const port = argv[2]!.toString('utf8');
  const link = await state.link();
  if (host.toLowerCase() === 'no' && port.toLowerCase() === 'one') {
    if (link === null) return OK; // already a master, as Redis answers
    await state.promote();
    return OK;
  }
  if (!/^[0-9]+$/.test(port) || Number(port) > 65535) return error('ERR Invalid master port');
  if (link !== null && link.masterHost === host && link.masterPort === Number(port)) return simple('OK Already connected to specified master');
  return error(`ERR a running ${link === null ? 'master' : 'replica'} does not change its master: start it with node cmd/replica.js --master ${host}:${port} --data DIR (a master's data dir rejoins without a full copy when its history allows it)`);
}

/** BRISE.LSN: the LSN a replica must reach to show this connection's writes (its thread's, at least). */
export async function lsnCommand(state: ReplicationState): Promise<Reply> {
  const link = await state.link();
  return integer(link === null ? state.writeLsn() : link.appliedLsn);
}

/** BRISE.WAITLSN lsn timeout-ms: waits until this store's reads show `lsn`; answers its applied LSN. */
export async function waitLsnCommand(argv: Buffer[], state: ReplicationState, closed: () => boolean): Promise<Reply> {
  const lsn = parseCount(argv[1]!);
  const timeout = parseCount(argv[2]!);
  if (lsn === null) return error('ERR the LSN is not a non-negative integer');
  if (timeout === null) return error('ERR timeout is out of range');
  const reached = await waitUntilApplied(() => state.appliedLsn(), lsn, timeout, () => state.now(), closed);
  if (reached.ok) return integer(reached.applied);
  return error(`LAGGING this server has applied LSN ${reached.applied}; waited ${timeout} ms for ${lsn}`);
}

/** Polls `applied` until it reaches `lsn` (ok) or `timeoutMs` passes or `closed` says so. */
export async function waitUntilApplied(applied: () => Promise<number>, lsn: number, timeoutMs: number, now: () => number, closed: () => boolean = () => false): Promise<{ ok: boolean; applied: number }> {
  const deadline = now() + timeoutMs;
  for (;;) {
    const at = await applied();
    if (at >= lsn) return { ok: true, applied: at };
    if (now() >= deadline || closed()) return { ok: false, applied: at };
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - now())));
  }
}

/** INFO replication, as Redis writes it (with BriseDB's LSNs as offsets). */
export async function replicationInfo(state: ReplicationState, history: { id: string; previous?: { id: string; end: number } } | null): Promise<string[]> {
  const link = await state.link();
  const lastLsn = await state.lastLsn();
  const ids = [`master_replid:${history?.id ?? '0'.repeat(40)}`, `master_replid2:${history?.previous?.id ?? '0'.repeat(40)}`];
  const tail = [...ids, `master_repl_offset:${lastLsn}`, `second_repl_offset:${history?.previous === undefined ? -1 : history.previous.end + 1}`];
  if (link === null) {
    const rows = state.table.list();
    const now = state.now();
    return ['role:master', `connected_slaves:${rows.length}`, ...rows.map((r, i) => slaveLine(i, r, lastLsn, now)), ...tail];
  }
  const lagRecords = Math.max(0, link.masterLsn - link.appliedLsn);
  return [
    'role:slave',
    `master_host:${link.masterHost}`,
    `master_port:${link.masterPort}`,
    `master_link_status:${link.status === 'up' ? 'up' : 'down'}`,
    `master_last_io_seconds_ago:${link.lastIoMsAgo < 0 ? -1 : Math.floor(link.lastIoMsAgo / 1000)}`,
    `master_sync_in_progress:${link.status === 'sync' ? 1 : 0}`,
    `slave_read_repl_offset:${link.appliedLsn}`,
    `slave_repl_offset:${link.appliedLsn}`,
    'slave_priority:100',
    'slave_read_only:1',
    'replica_announced:1',
    'connected_slaves:0',
    `brise_master_lsn:${link.masterLsn}`,
    `brise_lag_records:${lagRecords}`,
    `brise_lag_ms:${link.lagMs}`,
    `brise_full_resyncs:${link.fullResyncs}`,
    ...(link.lastError === null ? [] : [`brise_link_error:${link.lastError.replace(/[\r\n]/g, ' ')}`]),
    ...tail,
  ];
}

function slaveLine(i: number, r: ReplicaRow, lastLsn: number, now: number): string {
  const lagSeconds = r.ackedAt === 0 ? -1 : Math.floor((now - r.ackedAt) / 1000);
  return `slave${i}:ip=${r.ip},port=${r.port},state=${r.state === 'online' ? 'online' : 'wait_bgsave'},offset=${r.ackedLsn},lag=${lagSeconds},lag_records=${Math.max(0, lastLsn - r.ackedLsn)}`;
}

function parseCount(arg: Buffer): number | null {
  const text = arg.toString('latin1');
  if (!/^[0-9]+$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
