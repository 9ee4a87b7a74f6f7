// The master's resolved configuration: what `cmd/master.js` flags and a `--config` JSON file
// become after validation (src/master/config.ts), and what runMaster (src/master/master.ts)
// takes. Defaults are the seed's: TCP 127.0.0.1:6380, HTTP 127.0.0.1:6381, data brisedb-data.

export interface ListenAddress {
  host: string;
  port: number;
}

export interface TcpLimits {
  /** Longest bulk string accepted (Redis proto-max-bulk-len). */
  maxBulkLength: number;
  /** Most arguments in one command. */
  maxMultibulkCount: number;
  /** Longest inline command line. */
  maxInlineLength: number;
  /** Bytes buffered from one client before a command completes (client-query-buffer-limit). */
  maxQueryBuffer: number;
  /** Connected clients at once; past it new connections get an error and are closed. */
  maxClients: number;
  /** Seconds of silence before a client is closed; 0 = never (Redis `timeout`). */
  idleTimeoutSeconds: number;
  /** Reply bytes queued for one client before it is disconnected (client-output-buffer-limit). */
  maxOutputBuffer: number;
}

export const DEFAULT_TCP_LIMITS: TcpLimits = {
  maxBulkLength: 512 * 1024 * 1024,
  maxMultibulkCount: 1024 * 1024,
  maxInlineLength: 64 * 1024,
  maxQueryBuffer: 1024 * 1024 * 1024,
  maxClients: 10_000,
  idleTimeoutSeconds: 0,
  maxOutputBuffer: 256 * 1024 * 1024,
};

/** What an unauthenticated client may send before AUTH (as Redis limits them). */
export const UNAUTHENTICATED_TCP_LIMITS: Pick<TcpLimits, 'maxBulkLength' | 'maxMultibulkCount' | 'maxQueryBuffer'> = {
  maxBulkLength: 16 * 1024,
  maxMultibulkCount: 10,
  maxQueryBuffer: 64 * 1024,
};

export interface MasterConfig {
  addr: ListenAddress;
  /** null: HTTP disabled (`--http ""`). */
  httpAddr: ListenAddress | null;
  dataDir: string;
  drives: string[];
  volumeServers: string[];
  replicationFactor: number;
  maxVolumeSize: number;
  /** null: no password (AUTH not required). */
  requirepass: string | null;
  /** TCP front-end threads: 1 on Node < 22.12 (no reusePort), else up to the cores. */
  tcpThreads: number;
  /** HTTP front-end threads (uWebSockets.js shares the port itself): default the cores. */
  httpThreads: number;
  /** null: HTTP needs no token; else `Authorization: Bearer <token>` on every request. */
  httpToken: string | null;
  /** Largest blob a PUT may send (413 before the body is read). */
  maxBodySize: number;
  sync: 'always' | 'none';
  tcpLimits: TcpLimits;
}
