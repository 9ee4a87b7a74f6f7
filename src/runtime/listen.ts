// Port checks before a server's threads bind: shared by the master and the volume server.
// uWebSockets.js (and node:net with reusePort) bind with SO_REUSEPORT, which would let a second
// process silently share a port and take half its requests; several threads of one process
// must also agree on one concrete port when 0 was asked. Plain node:net, no uWS here.
import { createServer, isIP, isIPv6 } from 'node:net';
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

export const ALL_INTERFACES = '0.0.0.0';
export const LOOPBACK = '127.0.0.1';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * `HOST:PORT`, `[IPv6]:PORT`, `:PORT` (every interface) or `PORT` (loopback). Port 0 lets the
 * system pick a free port (the `listening` log line says which). A string is the problem.
 */
export function parseListenAddress(text: string): HostPort | string {
  const form = 'is not HOST:PORT, [IPv6]:PORT, :PORT or PORT';
  let host: string;
  let portText: string;
  if (/^\d+$/.test(text)) [host, portText] = [LOOPBACK, text];
  else if (text.startsWith('[')) {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(text);
    if (m === null || !isIPv6(m[1]!)) return form;
    [host, portText] = [m[1]!, m[2]!];
  } else {
    const m = /^([^:]*):(\d+)$/.exec(text);
    if (m === null) return form;
    host = m[1] === '' ? ALL_INTERFACES : m[1]!;
    portText = m[2]!;
    if (isIP(host) === 0 && !HOSTNAME.test(host)) return `has an invalid host "${host}"`;
  }
  const port = portText.length <= 5 ? Number(portText) : Infinity;
  if (port > 65535) return `has port ${portText}, outside 0-65535`;
  return { host, port };
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

