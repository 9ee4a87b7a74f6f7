// What front-end actors (TCP now, HTTP later) and the main thread say to each other: the
// front end asks main for the supervisor's view of the actors (INFO actors); main asks the
// front end, by its control port, for the address it listens on.
export const FRONTEND_PROTOCOL_VERSION = 1;
/** What this actor's start-up handshake checks (runtime/actor.ts). */
export const FRONTEND_PROTOCOL = { name: 'frontend', version: FRONTEND_PROTOCOL_VERSION } as const;

export const FrontEndMsg = {
  Status: 1,
  /** The whole master's Prometheus text (main aggregates every front end's metrics). */
  Metrics: 2,
  /** A setting that is the whole master's changed (CONFIG SET): main tells every thread. */
  Configure: 3,
} as const;

export type FrontEndToMain =
  | { t: typeof FrontEndMsg.Status }
  | { t: typeof FrontEndMsg.Metrics }
  | { t: typeof FrontEndMsg.Configure; notifyKeyspaceEvents: number };

/** What main says to a front end. */
export const MainMsg = {
  Configure: 1,
} as const;

export type MainToFrontEnd = { t: typeof MainMsg.Configure; notifyKeyspaceEvents: number };

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
}
