// What front-end actors (TCP now, HTTP later) and the main thread say to each other: the
// front end asks main for the supervisor's view of the actors (INFO actors); main asks the
// front end, by its control port, for the address it listens on.
import type { Progress, ScrubSummary, VacuumReport } from './operations.js';

export const FRONTEND_PROTOCOL_VERSION = 1;
/** What this actor's start-up handshake checks (runtime/actor.ts). */
export const FRONTEND_PROTOCOL = { name: 'frontend', version: FRONTEND_PROTOCOL_VERSION } as const;

export const FrontEndMsg = {
  Status: 1,
  /** The whole master's Prometheus text (main aggregates every front end's metrics). */
  Metrics: 2,
  /** A setting that is the whole master's changed (CONFIG SET): main tells every thread. */
  Configure: 3,
  /** A replica's link to its master, as ROLE and INFO replication show it (null on a master). */
  Replication: 4,
  /** REPLICAOF NO ONE on a replica: main stops following and promotes the store. */
  Promote: 5,
  /** One-way: a replica's stream began (how, and why a full copy) or ended: main logs it. */
  ReplicaEvent: 6,
  /** VACUUM, POST /v1/admin/vacuum: main runs it (one vacuum for the whole master) and answers its reports. */
  Vacuum: 7,
  /** The long operations in progress (INFO, /v1/status). */
  Operations: 8,
  /** SCRUB: main starts (or joins) the scrub; with `wait`, answers its summary when done. */
  Scrub: 9,
  /** The last scrub's summary (/v1/status, /metrics). */
  LastScrub: 10,
  /** COMPACT: main runs it (one for the whole master; its progress shows in the operations). */
  Compact: 11,
} as const;

export type FrontEndToMain =
  | { t: typeof FrontEndMsg.Status }
  | { t: typeof FrontEndMsg.Metrics }
  | { t: typeof FrontEndMsg.Configure; notifyKeyspaceEvents: number }
  | { t: typeof FrontEndMsg.Replication }
  | { t: typeof FrontEndMsg.Promote }
  | { t: typeof FrontEndMsg.ReplicaEvent; replica: string; what: 'continue' | 'fullresync' | 'refused' | 'ended'; detail: string }
  | { t: typeof FrontEndMsg.Vacuum; volume?: number }
  | { t: typeof FrontEndMsg.Operations }
  | { t: typeof FrontEndMsg.Scrub; wait: boolean }
  | { t: typeof FrontEndMsg.LastScrub }
  | { t: typeof FrontEndMsg.Compact };

/** What main says to a front end. */
export const MainMsg = {
  Configure: 1,
  /** The store is a master now (a replica promoted): take writes. */
  Promoted: 2,
  /** A vacuum removed these volumes: close their handles (an open handle keeps the space in use). */
  Forget: 3,
} as const;

export type MainToFrontEnd = { t: typeof MainMsg.Configure; notifyKeyspaceEvents: number } | { t: typeof MainMsg.Promoted } | { t: typeof MainMsg.Forget; volumes: number[] };

/** A replica's view of its link (docs/replica.md, "What users look at"). */
export interface LinkView {
  masterHost: string;
  masterPort: number;
  /** 'up' while the stream flows; 'down' between attempts; 'sync' during a full resync. */
  status: 'up' | 'down' | 'sync';
  /** The last LSN applied (durable) here. */
  appliedLsn: number;
  /** The master's last LSN, from its last heartbeat. */
  masterLsn: number;
  /** ms since anything came from the master (-1: never). */
  lastIoMsAgo: number;
  /** Commit-to-apply lag of the last record applied, in ms. */
  lagMs: number;
  history: string;
  fullResyncs: number;
  lastError: string | null;
}

export interface ActorStatusLine {
  name: string;
  threadId: number;
  restarts: number;
  state: string;
}

export interface FrontEndReplies {
  [FrontEndMsg.Status]: ActorStatusLine[];
  [FrontEndMsg.Metrics]: string;
  [FrontEndMsg.Configure]: null;
  [FrontEndMsg.Replication]: LinkView | null;
  [FrontEndMsg.Promote]: { history: string; lsn: number };
  [FrontEndMsg.ReplicaEvent]: null;
  [FrontEndMsg.Vacuum]: VacuumReport[];
  [FrontEndMsg.Operations]: Progress[];
  [FrontEndMsg.Scrub]: { started: boolean; summary: ScrubSummary | null };
  [FrontEndMsg.LastScrub]: ScrubSummary | null;
  [FrontEndMsg.Compact]: null;
}
