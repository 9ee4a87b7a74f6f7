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
} as const;

export type FrontEndToMain = { t: typeof FrontEndMsg.Status } | { t: typeof FrontEndMsg.Metrics };

export interface ActorStatusLine {
  name: string;
  threadId: number;
  restarts: number;
  state: string;
}

export interface FrontEndReplies {
  [FrontEndMsg.Status]: ActorStatusLine[];
  [FrontEndMsg.Metrics]: string;
}
