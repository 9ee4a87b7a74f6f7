// Port checks before a server's threads bind: shared by the master and the volume server.
// uWebSockets.js (and node:net with reusePort) bind with SO_REUSEPORT, which would let a second
// process silently share a port and take half its requests; several threads of one process
// must also agree on one concrete port when 0 was asked. Plain node:net, no uWS here.
import { createServer, isIPv6 } from 'node:net';
import { StoreError } from './errors.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `host:port`, with an IPv6 host in brackets, as a URL would write it. */
export function formatAddress(a: HostPort): string {
  return isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** A port free now on host (for sharing one port among threads when 0 was asked). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Binds host:port exclusively once and lets go; throws the one-line error when it is taken.
 * `what` names the listener in that line when a process has several (`for HTTP`).
 */
export function assertPortFree(host: string, port: number, what?: string): Promise<void> {
  const where = what === undefined ? `${host}:${port}` : `${host}:${port} for ${what}`;
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new StoreError('BAD_ARGUMENT', `cannot listen on ${where}: ${why}`));
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}
