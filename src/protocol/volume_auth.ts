// How the master (and a peer during repair) proves to a volume server that it holds the shared
// secret, without sending it (docs/volume-server.md, "Authentication"). Pure: the clock is
// passed in; HMAC from node:crypto is computation only.
//
//   X-Brise-Auth: <ms since the epoch>.<hex HMAC-SHA256(secret, "BRISE-VS\n" METHOD "\n" target "\n" ms)>
//
// `target` is the request's path and query exactly as sent (the query is part of what is signed:
// offset, epoch, length cannot be changed in flight). A server refuses a header whose time is
// more than MAX_SKEW_MS from its clock: a captured header replays for a bounded window only, and
// the writes it could replay are appends at an offset, which a volume refuses once past it.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const AUTH_HEADER = 'x-brise-auth';
export const MAX_SKEW_MS = 5 * 60_000;
const SCHEME = 'BRISE-VS';
const HEADER_RE = /^([0-9]{1,16})\.([0-9a-f]{64})$/;

export function signVolumeRequest(secret: string, method: string, target: string, nowMs: number): string {
  return `${nowMs}.${mac(secret, method, target, nowMs).toString('hex')}`;
}

export type AuthVerdict = { ok: true } | { ok: false; message: string };

export function verifyVolumeRequest(secret: string, method: string, target: string, header: string | undefined, nowMs: number): AuthVerdict {
  if (header === undefined || header === '') return { ok: false, message: 'this volume server needs X-Brise-Auth (the shared secret)' };
  const m = HEADER_RE.exec(header);
  if (m === null) return { ok: false, message: 'X-Brise-Auth is not <ms>.<hex HMAC-SHA256>' };
  const at = Number(m[1]);
  if (!Number.isSafeInteger(at) || Math.abs(nowMs - at) > MAX_SKEW_MS) {
    return { ok: false, message: 'X-Brise-Auth is older or newer than 5 minutes: check the clocks' };
  }
  const want = mac(secret, method, target, at);
  const got = Buffer.from(m[2]!, 'hex');
  return got.length === want.length && timingSafeEqual(got, want) ? { ok: true } : { ok: false, message: 'X-Brise-Auth does not match: wrong secret' };
}

function mac(secret: string, method: string, target: string, ms: number): Buffer {
  return createHmac('sha256', secret).update(`${SCHEME}\n${method.toUpperCase()}\n${target}\n${ms}`).digest();
}
