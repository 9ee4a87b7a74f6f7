// Signed, expiring URLs for the HTTP API, in the manner of S3's pre-signed URLs: whoever holds
// the HTTP token (--http-token) can hand a browser a link that works without the token, for one
// method on one resource until a time. Pure (HMAC from node:crypto is computation only; the
// clock is passed in). Shared by the HTTP front end (verify), the SIGN command, the CLI and the
// client library (sign), so the signer and the checker cannot drift apart.
//
// A signed URL is the resource's path and query plus `expires=<unix seconds>&sig=<hex>`:
//   sig = hex(HMAC-SHA256(token, "BRISE-HMAC-SHA256\n" + METHOD + "\n" + expires + "\n" + resource))
// - METHOD is GET, HEAD or PUT for /v1/blobs/{key}, and WS for the WebSocket routes. A GET
//   signature also admits HEAD (it reveals less than the GET); nothing else crosses methods.
// - resource is the canonical form of the request: '/v1/blobs/' + the key percent-encoded as
//   encodeBlobKey does (so raw UTF-8 and %-escapes of the same key sign alike), or the route's
//   path ('/v1/subscribe', '/v1/wal'); then, when the query has parameters other than expires
//   and sig, '?' and those parameters sorted by name then value, each name=value percent-encoded
//   (encodeURIComponent). Every parameter is signed, so `ttl=`, `channels=` or `from=` cannot be
//   added or changed by whoever holds the link. The resource comes last, so its bytes can be
//   anything without making two different requests sign alike.
// - expires is a decimal count of seconds since the Unix epoch; a URL is refused once now is
//   past it, and when it lies more than MAX_SIGNED_SECONDS (+ clock skew) ahead (a link that
//   lives for years is a leaked token in all but name).
// Comparison is in constant time (timingSafeEqual of equal-length digests).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { decodeBlobKey, encodeBlobKey } from './http_keys.js';
import { parseBearer, tokenMatches } from './http_params.js';

export const SIGNING_SCHEME = 'BRISE-HMAC-SHA256';
/** The longest a signed URL may live: 7 days, as S3's pre-signed URLs. */
export const MAX_SIGNED_SECONDS = 7 * 86_400;
/** How far the signer's clock may run ahead of the server's. */
export const CLOCK_SKEW_SECONDS = 300;
export const BLOB_PATH_PREFIX = '/v1/blobs/';
/** The WebSocket routes a signature may open. */
export const WS_PATHS: readonly string[] = ['/v1/subscribe', '/v1/wal', '/v1/status'];
export const SIGNED_METHODS = ['GET', 'HEAD', 'PUT', 'WS'] as const;
export type SignedMethod = (typeof SIGNED_METHODS)[number];

export type SignatureCode = 'BAD_SIGNATURE' | 'SIGNATURE_EXPIRED' | 'BAD_EXPIRY';
export type Verdict = { ok: true } | { ok: false; code: SignatureCode; message: string };

const HEX_SIG = /^[0-9a-fA-F]{64}$/;
const EXPIRES = /^[0-9]{1,12}$/;

/** The canonical resource of a blob key (bytes or a string's UTF-8) and optional parameters. */
export function blobResource(key: Uint8Array | string, params: URLSearchParams = new URLSearchParams()): string {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  return BLOB_PATH_PREFIX + encodeBlobKey(bytes) + canonicalQuery(params);
}

/** The canonical resource of a route path (already canonical, e.g. '/v1/wal') and its parameters. */
export function pathResource(path: string, params: URLSearchParams): string {
  return path + canonicalQuery(params);
}

/** '?a=1&b=2' of every parameter but expires and sig, sorted; '' when there are none. */
export function canonicalQuery(params: URLSearchParams): string {
  const pairs: [string, string][] = [];
  for (const [name, value] of params) if (name !== 'expires' && name !== 'sig') pairs.push([name, value]);
  if (pairs.length === 0) return '';
  pairs.sort((a, b) => compare(a[0], b[0]) || compare(a[1], b[1]));
  return '?' + pairs.map(([n, v]) => `${encodeURIComponent(n)}=${encodeURIComponent(v)}`).join('&');
}

export function stringToSign(method: SignedMethod, resource: string, expires: number): string {
  return `${SIGNING_SCHEME}\n${method}\n${expires}\n${resource}`;
}

/** The lower-case hex HMAC of a request. */
export function signature(token: string, method: SignedMethod, resource: string, expires: number): string {
  return createHmac('sha256', token).update(stringToSign(method, resource, expires), 'utf8').digest('hex');
}

/**
 * The path and query to append to the HTTP base URL: the resource as given (its own query kept,
 * in canonical order) with expires and sig added. `resource` comes from blobResource or
 * pathResource.
 */
export function signResource(token: string, method: SignedMethod, resource: string, expires: number): string {
  if (token === '') throw new Error('signing needs a token');
  if (!Number.isSafeInteger(expires) || expires < 0) throw new Error(`expires ${expires} is not a whole number of seconds`);
  const sig = signature(token, method, resource, expires);
  return `${resource}${resource.includes('?') ? '&' : '?'}expires=${expires}&sig=${sig}`;
}

/** Seconds of validity a signer may ask for: a whole number in 1..MAX_SIGNED_SECONDS, or a message. */
export function checkLifetime(seconds: number): string | null {
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_SIGNED_SECONDS) {
    return `the lifetime of a signed URL is a whole number of seconds from 1 to ${MAX_SIGNED_SECONDS} (7 days)`;
  }
  return null;
}

/** A method name (any case) as a SignedMethod, or null. */
export function parseSignedMethod(text: string): SignedMethod | null {
  const m = text.toUpperCase();
  return (SIGNED_METHODS as readonly string[]).includes(m) ? (m as SignedMethod) : null;
}

/** Whether a query carries an attempt at a signature (either parameter). */
export function hasSignature(params: URLSearchParams): boolean {
  return params.has('sig') || params.has('expires');
}

/**
 * Checks a signature. `method` is the request's (HEAD also accepts a GET signature).
 * The signature is checked before the expiry, so "expired" is said only of a genuine URL.
 */
export function verify(token: string, method: SignedMethod, resource: string, params: URLSearchParams, nowSeconds: number): Verdict {
  const expiresText = params.getAll('expires');
  const sigText = params.getAll('sig');
  if (expiresText.length !== 1 || sigText.length !== 1) {
    return refuse('BAD_SIGNATURE', 'a signed URL has exactly one expires= and one sig=');
  }
  if (!EXPIRES.test(expiresText[0]!)) return refuse('BAD_SIGNATURE', 'expires= is a whole number of Unix seconds');
  if (!HEX_SIG.test(sigText[0]!)) return refuse('BAD_SIGNATURE', 'sig= is 64 hex digits (HMAC-SHA256)');
  const expires = Number(expiresText[0]);
  const given = Buffer.from(sigText[0]!, 'hex');
  const methods: SignedMethod[] = method === 'HEAD' ? ['HEAD', 'GET'] : [method];
  // Both are computed and compared whatever the first gives, so timing says nothing either.
  let match = false;
  for (const m of methods) match = digestEquals(given, Buffer.from(signature(token, m, resource, expires), 'hex')) || match;
  if (!match || token === '') {
    return refuse('BAD_SIGNATURE', 'the signature does not match this method, resource and expiry (signed with another token, or the URL was changed)');
  }
  if (expires < nowSeconds) return refuse('SIGNATURE_EXPIRED', `the signed URL expired at ${new Date(expires * 1000).toISOString()}`);
  if (expires > nowSeconds + MAX_SIGNED_SECONDS + CLOCK_SKEW_SECONDS) {
    return refuse('BAD_EXPIRY', `the signed URL expires more than ${MAX_SIGNED_SECONDS} seconds (7 days) from now`);
  }
  return { ok: true };
}

/**
 * A request's signature, from what the HTTP front end sees: the method, the raw (still
 * percent-encoded) path and the query. null when the query carries no signature at all (the
 * caller then answers 401); a refusal for a route or method that cannot be signed.
 */
export function verifyRequest(
  token: string,
  request: { method: string; path: string; query: string | undefined; websocket: boolean },
  nowSeconds: number,
  maxKeyLength: number,
): Verdict | null {
  const params = new URLSearchParams(request.query ?? '');
  if (!hasSignature(params)) return null;
  const resource = resourceOf(request, params, maxKeyLength);
  if (typeof resource !== 'string') return resource;
  const method = request.websocket ? 'WS' : (request.method.toUpperCase() as SignedMethod);
  return verify(token, method, resource, params, nowSeconds);
}

function resourceOf(request: { method: string; path: string; websocket: boolean }, params: URLSearchParams, maxKeyLength: number): string | Verdict {
  if (request.websocket) {
    if (!WS_PATHS.includes(request.path)) return refuse('BAD_SIGNATURE', `no WebSocket route ${request.path} to sign`);
    return pathResource(request.path, params);
  }
  const method = request.method.toUpperCase();
  if (!request.path.startsWith(BLOB_PATH_PREFIX) || !['GET', 'HEAD', 'PUT'].includes(method)) {
    return refuse('BAD_SIGNATURE', 'signed URLs are for GET, HEAD and PUT of /v1/blobs/{key} and the WebSocket routes; use Authorization: Bearer here');
  }
  const key = decodeBlobKey(request.path.slice(BLOB_PATH_PREFIX.length), maxKeyLength);
  if (!key.ok) return refuse('BAD_SIGNATURE', `cannot check the signature: ${key.message}`);
  return blobResource(key.key, params);
}

/**
 * The signed path and query for a signer (the SIGN command, the CLI, the client library):
 * `method` GET, HEAD or PUT with a blob key, or WS with a WebSocket route's path and query
 * ('/v1/subscribe?channels=news'), valid `seconds` from `nowSeconds`. A string is the problem.
 */
export function signTarget(
  token: string | null,
  methodText: string,
  target: Uint8Array | string,
  seconds: number,
  nowSeconds: number,
  maxKeyLength: number,
): { ok: true; path: string } | { ok: false; message: string } {
  if (token === null || token === '') return { ok: false, message: 'no HTTP token is configured (--http-token): the HTTP API then takes requests unsigned' };
  const method = parseSignedMethod(methodText);
  if (method === null) return { ok: false, message: 'the method is GET, HEAD or PUT (with a blob key) or WS (with a WebSocket path and query)' };
  const lifetime = checkLifetime(seconds);
  if (lifetime !== null) return { ok: false, message: lifetime };
  const resource = method === 'WS' ? wsResource(target) : keyResource(target, maxKeyLength);
  if (!resource.ok) return resource;
  return { ok: true, path: signResource(token, method, resource.resource, nowSeconds + seconds) };
}

function wsResource(target: Uint8Array | string): { ok: true; resource: string } | { ok: false; message: string } {
  const text = typeof target === 'string' ? target : Buffer.from(target).toString('utf8');
  const q = text.indexOf('?');
  const path = q < 0 ? text : text.slice(0, q);
  if (!WS_PATHS.includes(path)) return { ok: false, message: `a WS target is one of ${WS_PATHS.join(', ')} with its query, e.g. /v1/subscribe?channels=news` };
  const params = new URLSearchParams(q < 0 ? '' : text.slice(q + 1));
  if (hasSignature(params)) return { ok: false, message: 'the target already has expires= or sig=' };
  return { ok: true, resource: pathResource(path, params) };
}

function keyResource(target: Uint8Array | string, maxKeyLength: number): { ok: true; resource: string } | { ok: false; message: string } {
  const bytes = typeof target === 'string' ? Buffer.from(target, 'utf8') : target;
  // The key must be one the HTTP API can name: the same rules as a request's path.
  const key = decodeBlobKey(encodeBlobKey(bytes), maxKeyLength);
  if (!key.ok) return { ok: false, message: `not a key the HTTP API can serve: ${key.message}` };
  return { ok: true, resource: blobResource(key.key) };
}

export type Access = { ok: true } | { ok: false; status: 401 | 403; code: string; message: string };

/**
 * Whether a request may be served: no token configured, `Authorization: Bearer <token>`, or a
 * valid signed URL (401 when it carries neither, 403 for a signature that fails).
 */
export function requestAccess(
  token: string | null,
  request: { method: string; path: string; query: string | undefined; authorization: string | undefined; websocket: boolean },
  nowSeconds: number,
  maxKeyLength: number,
): Access {
  if (token === null || tokenMatches(parseBearer(request.authorization), token)) return { ok: true };
  const signed = verifyRequest(token, request, nowSeconds, maxKeyLength);
  if (signed === null) return { ok: false, status: 401, code: 'UNAUTHORIZED', message: 'this server needs Authorization: Bearer <token> or a signed URL (expires=, sig=)' };
  return signed.ok ? signed : { ok: false, status: 403, code: signed.code, message: signed.message };
}

// ---- private helpers ----

function refuse(code: SignatureCode, message: string): Verdict {
  return { ok: false, code, message };
}

function digestEquals(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Code-unit order: the same on every platform and locale (localeCompare is not). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
