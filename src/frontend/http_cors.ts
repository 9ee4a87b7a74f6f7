// CORS for the HTTP API (the Fetch standard's CORS protocol), on when --http-cors-origins lists
// origins (or '*'): a preflight OPTIONS is answered without a token (browsers send preflights
// without credentials), and every response of a request from an allowed origin carries
// Access-Control-Allow-Origin and Access-Control-Expose-Headers.
//
// Centrally, not per route: withCors() wraps the uWS HttpResponse of one request so that its
// first status line (or, without one, its first header or body byte) is followed by the CORS
// headers, and the end of its headers by Access-Control-Expose-Headers naming every header the
// route wrote. The routes need not know about CORS, and a route added later is covered.
//
// Invariants: an origin not on the list gets no CORS header at all (the browser then refuses
// to show the response to the page); the allowed origin is echoed, never '*', with
// `Vary: Origin`, so a cache never gives one origin's answer to another; the request headers a
// preflight may allow are a fixed, bounded set.
import type { HttpRequest, HttpResponse, RecognizedString } from 'uWebSockets.js';
import { statusLine, watchAbort } from './http_util.js';

/** Origins a master may list. */
export const MAX_CORS_ORIGINS = 64;
/** How long a browser may cache a preflight (Chromium caps it at 2 hours). */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;
/** Bounds on a preflight's Access-Control-Request-Headers. */
const MAX_REQUEST_HEADERS = 64;
const MAX_REQUEST_HEADERS_CHARS = 4096;
/** Header names of one response remembered for Access-Control-Expose-Headers. */
const MAX_EXPOSED = 64;

/** Request headers a page may send (beyond the CORS-safelisted ones); plus any X-Brise-*. */
const ALLOWED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'authorization', 'content-type', 'range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since',
  'if-range', 'content-md5', 'digest', 'repr-digest', 'want-digest', 'want-repr-digest', 'content-disposition',
  'content-encoding', 'content-language', 'cache-control', 'expires',
]);
const ALLOWED_REQUEST_PREFIX = 'x-brise-';

/** Exposed on every response; the headers the route actually wrote are added to these. */
const EXPOSED_HEADERS: readonly string[] = [
  'ETag', 'Content-Range', 'Content-Length', 'Accept-Ranges', 'Last-Modified', 'Content-Disposition', 'Content-Encoding',
  'Content-Language', 'Cache-Control', 'Expires', 'Digest', 'Repr-Digest', 'Allow', 'Retry-After', 'WWW-Authenticate',
  'X-Brise-Size', 'X-Brise-TTL', 'X-Brise-Checksum-CRC32C',
];
/** Response headers a page reads without being told (the Fetch standard's safelist) or that uWS adds. */
const NOT_EXPOSED: ReadonlySet<string> = new Set(['content-type', 'content-length', 'date', 'uwebsockets', 'vary', 'connection']);

export interface CorsPolicy {
  /** Normalised origins (`scheme://host[:port]`, lower case); '*' allows every origin. */
  readonly origins: ReadonlySet<string>;
}

/** The policy of a master, or null when CORS is off (no origins configured). */
export function corsPolicy(origins: readonly string[] | undefined): CorsPolicy | null {
  return origins === undefined || origins.length === 0 ? null : { origins: new Set(origins) };
}

/**
 * One configured origin as browsers send it in `Origin`: `*`, or `http(s)://host[:port]` with
 * no path, query, fragment or user; the default port dropped, the host lower case. A string
 * that is not one is the problem, for the config error.
 */
export function normalizeOrigin(text: string): { ok: string } | { bad: string } {
  if (text === '*') return { ok: '*' };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { bad: 'is not an origin (scheme://host[:port], or *)' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { bad: 'is not an http:// or https:// origin' };
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || !/^[a-z]+:\/\/[^/]+\/?$/i.test(text)) {
    return { bad: 'has more than scheme://host[:port] (an origin has no path, query or user)' };
  }
  return { ok: url.origin };
}

/** Whether a request's Origin header is allowed (undefined: not a cross-origin browser request). */
export function originAllowed(policy: CorsPolicy, origin: string | undefined): boolean {
  if (origin === undefined || origin === '') return false;
  return policy.origins.has('*') || policy.origins.has(origin.toLowerCase());
}

/**
 * For a request from an allowed origin, makes every response written on `res` carry the CORS
 * headers; for any other request only `Vary: Origin` (the answer depends on the Origin all the
 * same). Call before anything is written; the wrappers read the methods as they are then, so
 * another wrapper of the same response (set before or after) still runs.
 */
export function withCors(res: HttpResponse, req: HttpRequest, policy: CorsPolicy): void {
  const origin = req.getHeader('origin');
  const allowed = originAllowed(policy, origin);
  const written: string[] = [];
  let opened = false;
  let closed = false;
  const open = (): void => {
    if (opened) return;
    opened = true;
    if (allowed) writeHeader.call(res, 'Access-Control-Allow-Origin', origin);
    writeHeader.call(res, 'Vary', 'Origin');
  };
  const close = (): void => {
    open();
    if (closed) return;
    closed = true;
    if (allowed) writeHeader.call(res, 'Access-Control-Expose-Headers', exposed(written));
  };
  const { writeStatus, writeHeader, end, endWithoutBody, tryEnd, write } = res;
  res.writeStatus = (...args) => {
    writeStatus.apply(res, args);
    open();
    return res;
  };
  res.writeHeader = (...args) => {
    open();
    if (written.length < MAX_EXPOSED) written.push(headerName(args[0]));
    writeHeader.apply(res, args);
    return res;
  };
  // The arguments go on exactly as given: uWS tells an absent argument from an undefined one
  // (endWithoutBody(undefined) writes a Content-Length of its own).
  res.end = (...args) => {
    close();
    return end.apply(res, args);
  };
  res.endWithoutBody = (...args) => {
    close();
    return endWithoutBody.apply(res, args);
  };
  res.tryEnd = (...args) => {
    close();
    return tryEnd.apply(res, args);
  };
  res.write = (...args) => {
    close();
    return write.apply(res, args);
  };
}

function headerName(name: RecognizedString): string {
  if (typeof name === 'string') return name;
  const view = name instanceof ArrayBuffer ? new Uint8Array(name) : new Uint8Array(name.buffer, name.byteOffset, name.byteLength);
  return Buffer.from(view).toString('latin1');
}

/** The value of Access-Control-Expose-Headers: the fixed list and what the route wrote. */
function exposed(written: readonly string[]): string {
  const out = [...EXPOSED_HEADERS];
  const have = new Set(out.map((h) => h.toLowerCase()));
  for (const name of written) {
    const lower = name.toLowerCase();
    if (have.has(lower) || NOT_EXPOSED.has(lower) || lower.startsWith('access-control-') || !/^[A-Za-z0-9-]{1,64}$/.test(name)) continue;
    have.add(lower);
    out.push(name);
  }
  return out.join(', ');
}

/**
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method): 204 with the
 * Access-Control-Allow-* headers for an allowed origin, 403 JSON and no CORS header for another.
 * An OPTIONS that is not a preflight gets 204 with Allow. Answers the status, for metrics.
 */
export function answerPreflight(res: HttpResponse, req: HttpRequest, policy: CorsPolicy, methods: readonly string[]): number {
  const origin = req.getHeader('origin');
  const askedMethod = req.getHeader('access-control-request-method');
  const askedHeaders = req.getHeader('access-control-request-headers');
  const allow = [...methods, 'OPTIONS'].join(', ');
  if (origin === '' || askedMethod === '') {
    res.cork(() => res.writeStatus(statusLine(204)).writeHeader('Allow', allow).writeHeader('Vary', 'Origin').endWithoutBody());
    return 204;
  }
  if (!originAllowed(policy, origin)) {
    res.cork(() => {
      res.writeStatus(FORBIDDEN).writeHeader('Content-Type', 'application/json').writeHeader('Vary', 'Origin');
      res.end(JSON.stringify({ error: `origin ${origin.slice(0, 200)} is not in --http-cors-origins`, code: 'ORIGIN_NOT_ALLOWED' }));
    });
    return 403;
  }
  const headers = allowedRequestHeaders(askedHeaders);
  res.cork(() => {
    res.writeStatus(statusLine(204));
    res.writeHeader('Access-Control-Allow-Origin', origin);
    res.writeHeader('Vary', 'Origin');
    res.writeHeader('Access-Control-Allow-Methods', allow);
    if (headers !== '') res.writeHeader('Access-Control-Allow-Headers', headers);
    res.writeHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
    res.writeHeader('Allow', allow);
    res.endWithoutBody();
  });
  return 204;
}

/**
 * The asked-for request headers that are allowed, lower case, as a list; the others are left
 * out, so the browser's error names the header it may not send.
 */
export function allowedRequestHeaders(asked: string): string {
  if (asked === '' || asked.length > MAX_REQUEST_HEADERS_CHARS) return '';
  const out: string[] = [];
  for (const raw of asked.split(',').slice(0, MAX_REQUEST_HEADERS)) {
    const name = raw.trim().toLowerCase();
    if (!/^[a-z0-9-]{1,64}$/.test(name) || out.includes(name)) continue;
    if (ALLOWED_REQUEST_HEADERS.has(name) || name.startsWith(ALLOWED_REQUEST_PREFIX)) out.push(name);
  }
  return out.join(', ');
}

/** Why a WebSocket upgrade is refused: its status line, code and message. */
export interface UpgradeRefusal {
  status: string;
  code: string;
  message: string;
}

/**
 * A WebSocket upgrade's admission: with CORS on, a browser's socket (it always sends Origin)
 * from an origin not on the list is refused 403 (WebSockets have no preflight: this check is
 * all that stops a foreign page from using the visitor's network position); a client without
 * Origin (not a browser) is let through. Then the token or signed URL, as for every route.
 */
export function admitWebSocket(req: HttpRequest, policy: CorsPolicy | null, access: { ok: true } | { ok: false; status: number; code: string; message: string }): UpgradeRefusal | null {
  const origin = req.getHeader('origin');
  if (policy !== null && origin !== '' && !originAllowed(policy, origin)) {
    return { status: FORBIDDEN, code: 'ORIGIN_NOT_ALLOWED', message: `origin ${origin.slice(0, 200)} is not in --http-cors-origins` };
  }
  return access.ok ? null : { status: refusalLine(access.status), code: access.code, message: access.message };
}

/** http_util's STATUS_TEXT has no 403 (yet): its line is spelled here. */
const FORBIDDEN = '403 Forbidden';

function refusalLine(status: number): string {
  return status === 403 ? FORBIDDEN : statusLine(status);
}

/** Answers a refused request: JSON `{error, code}`, WWW-Authenticate with a 401. */
export function sendRefusal(res: HttpResponse, status: number, code: string, message: string): void {
  const state = watchAbort(res);
  if (state.aborted) return;
  state.done = true;
  res.cork(() => {
    res.writeStatus(refusalLine(status)).writeHeader('Content-Type', 'application/json');
    if (status === 401) res.writeHeader('WWW-Authenticate', 'Bearer');
    res.end(JSON.stringify({ error: message, code }));
  });
}
