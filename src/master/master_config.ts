// The master's resolved configuration: what `cmd/master.js` flags and a `--config` JSON file
// become after validation (src/master/config.ts), and what runMaster (src/master/master.ts)
// takes. Defaults are the seed's: TCP 127.0.0.1:6380, HTTP 127.0.0.1:6381, data brisedb-data.
import type { TcpLimits } from '../protocol/tcp_limits.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface MasterConfig {
  addr: ListenAddress;
  /** null: HTTP disabled (`--http ""`). */
  httpAddr: ListenAddress | null;
  /** The seed's line protocol (`--text-addr`, docs/text-protocol.md); absent or null (the default): off. */
  textAddr?: ListenAddress | null;
  dataDir: string;
  drives: string[];
  /** Where the volume log lives (docs/formats.md §Log volumes); absent: the default drive. */
  logDrive?: string;
  volumeServers: string[];
  replicationFactor: number;
  /** Shared with the volume servers; null: none (loopback servers only). */
  volumeSecret?: string | null;
  maxVolumeSize: number;
  /** null: no password (AUTH not required). */
  requirepass: string | null;
  /** TCP front-end threads: 1 on Node < 22.12 (no reusePort), else up to the cores. */
  tcpThreads: number;
  /** HTTP front-end threads (uWebSockets.js shares the port itself): default the cores. */
  httpThreads: number;
  /** null: HTTP needs no token; else `Authorization: Bearer <token>` on every request. */
  httpToken: string | null;
  /** Origins whose pages may call the HTTP API (CORS; '*' = any); absent or empty: CORS off. */
  httpCorsOrigins?: string[];
  /** Largest blob a PUT may send (413 before the body is read). */
  maxBodySize: number;
  sync: 'always' | 'none';
  tcpLimits: TcpLimits;
  /** Redis' min-replicas-to-write / min-replicas-max-lag at start (CONFIG SET changes them); absent: 0 and 10. */
  minReplicas?: { toWrite: number; maxLagSeconds: number };
  /** The vacuum's settings (docs/vacuum.md); absent: 30 %, 64 MB/s, every 60 s. */
  vacuum?: { thresholdPercent: number; rateMBps: number; everySeconds: number };
  /** The scrub's settings; absent: 32 MB/s, every 24 h. */
  scrub?: { rateMBps: number; everySeconds: number };
  /** When wal.log is compacted by itself (Redis' auto-aof-rewrite-*); absent: DEFAULT_AUTO_COMPACT. */
  autoCompact?: { percentage: number; minBytes: number };
  /** Bytes of each front-end thread's cache of small values; absent: 32 MiB. */
  needleCacheBytes?: number;
}
