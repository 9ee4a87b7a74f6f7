// signUrl: a signed, expiring URL of the HTTP API made offline from the HTTP token, by the same
// code the master checks them with (src/protocol/url_signing.ts; docs/http.md). For a program
// that holds the token; one that holds only a TCP connection asks the master (Client.sign).
import { signTarget, type SignedMethod } from '../protocol/url_signing.js';

/**
 * The longest key any server takes (a needle's key length is a u16): the client does not know
 * the server's own limit (4096 by default), which the server checks when the URL is used.
 */
const MAX_KEY_BYTES = 65535;

export interface SignUrlOptions {
  /** The HTTP base URL to put in front (e.g. 'http://127.0.0.1:6381'); default: the path alone. */
  base?: string;
  /** The current time in ms (default Date.now()). */
  nowMs?: number;
}

/**
 * `method` GET, HEAD or PUT with a blob key (string or bytes), or WS with a WebSocket path and
 * query; valid for `seconds` (1 to 7 days). Throws a RangeError naming what is wrong.
 */
export function signUrl(token: string, method: SignedMethod, target: string | Uint8Array, seconds: number, options: SignUrlOptions = {}): string {
  const now = Math.floor((options.nowMs ?? Date.now()) / 1000);
  const signed = signTarget(token, method, target, seconds, now, MAX_KEY_BYTES);
  if (!signed.ok) throw new RangeError(signed.message);
  return (options.base ?? '').replace(/\/+$/, '') + signed.path;
}
