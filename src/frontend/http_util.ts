// Small helpers of the HTTP front end over uWebSockets.js: JSON and error answers, and the
// discipline uWS asks of an HttpResponse (it is valid only until it is answered or aborted;
// anything written outside the request's own synchronous handler must be corked).
import type { HttpRequest, HttpResponse, RecognizedString } from 'uWebSockets.js';
import { INTERNAL_TEXT, reportInternal } from '../runtime/errors.js';

/** Per-request state the handlers keep on the side of an HttpResponse. */
export interface ResponseState {
  aborted: boolean;
  done: boolean;
  /** Set by whatever waits on the socket (a body being streamed): told when the client goes. */
  onAbort?: () => void;
}

/** Call first in every handler that answers later: uWS requires an abort handler. */
export function watchAbort(res: HttpResponse, onAbort: () => void = () => undefined): ResponseState {
  const state: ResponseState = { aborted: false, done: false };
  res.onAborted(() => {
    state.aborted = true;
    onAbort();
    state.onAbort?.();
  });
  return state;
}

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: '200 OK',
  201: '201 Created',
  204: '204 No Content',
  206: '206 Partial Content',
  304: '304 Not Modified',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  408: '408 Request Timeout',
  411: '411 Length Required',
  412: '412 Precondition Failed',
  413: '413 Content Too Large',
  414: '414 URI Too Long',
  416: '416 Range Not Satisfiable',
  500: '500 Internal Server Error',
  501: '501 Not Implemented',
  503: '503 Service Unavailable',
  507: '507 Insufficient Storage',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Status`;
}

/**
 * Answers a JSON body (corked); does nothing when the client is gone or it was answered.
 * `closeConnection`: close after the answer (the rest of what the client sends is not read).
 */
export function sendJson(res: HttpResponse, state: ResponseState | null, status: number, body: unknown, headers: Record<string, string> = {}, closeConnection = false): void {
  if (state !== null && (state.aborted || state.done)) return;
  if (state !== null) state.done = true;
  res.cork(() => {
    res.writeStatus(statusLine(status));
    res.writeHeader('Content-Type', 'application/json');
    for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
    res.end(JSON.stringify(body), closeConnection);
  });
}

/** Errors are JSON `{"error": "...", "code": "..."}` with the right status. */
export function sendError(res: HttpResponse, state: ResponseState | null, status: number, code: string, message: string, headers: Record<string, string> = {}, closeConnection = false): void {
  sendJson(res, state, status, { error: message, code }, headers, closeConnection);
}

// ---- HEAD ---------------------------------------------------------------------------------

/**
 * A HEAD answer never has a body, whatever its status (RFC 9110 §9.3.2): the client reads
 * none, so on a keep-alive connection body bytes would be taken for the start of the next
 * response (httpx: `illegal status line: b'{"error":...}HTTP/1.1 200 OK'`). For a HEAD request
 * this makes whatever a route ends `res` with go out as its status and headers alone, with the
 * Content-Length a GET would have had. Called once per request where requests enter (the
 * guard and the catch-all route), before anything is written, so every route, every error
 * helper and every route added later is covered. It composes with other wrappers of `res`
 * (http_cors.ts) set before or after: each calls the methods it found.
 */
export function headWithoutBody(res: HttpResponse, req: HttpRequest): void {
  if (req.getCaseSensitiveMethod() !== 'HEAD') return;
  const { endWithoutBody } = res;
  // A body given piece by piece (write) is chunked for GET: its length is not known up front.
  let chunked = false;
  /**
   * uWS (this build) leaves a response ended by endWithoutBody(n > 0) pending, as if n body
   * bytes were still to come: the next request on the connection then makes uWS close it
   * (and endWithoutBody(undefined) announces 2^63 bytes). So the length is a header of ours
   * and the end carries no length. Closing after it is left to the client (Connection: close).
   */
  const endHead = (length: number | undefined, closeConnection: boolean | undefined): HttpResponse => {
    if (length !== undefined) res.writeHeader('Content-Length', String(length));
    if (closeConnection === true) res.writeHeader('Connection', 'close');
    return endWithoutBody.call(res);
  };
  res.write = () => {
    chunked = true;
    return true;
  };
  res.endWithoutBody = (reportedContentLength, closeConnection) => endHead(reportedContentLength, closeConnection);
  res.end = (body, closeConnection) => endHead(chunked ? undefined : byteLength(body), closeConnection);
  res.tryEnd = (_chunk, totalSize) => {
    endHead(totalSize, false);
    return [true, true];
  };
}

function byteLength(body: RecognizedString | undefined): number {
  if (body === undefined) return 0;
  // uWS sends a JS string as UTF-8.
  return typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength;
}

// ---- routes, methods and framing ------------------------------------------------------------

/**
 * The routes and the methods each answers, for the catch-all route's 405 and its Allow header
 * (RFC 9110 §15.5.6). HEAD goes wherever GET does. OPTIONS is added when CORS is on.
 * ('/v1/blobs/' is BLOB_PREFIX of http_blobs.ts, which imports this file.)
 */
const ROUTES: readonly { route: string; matches(url: string): boolean; methods: readonly string[] }[] = [
  { route: 'blobs', matches: (url) => url.startsWith('/v1/blobs/'), methods: ['GET', 'HEAD', 'PUT', 'DELETE'] },
  ...['keys', 'scan', 'status'].map((name) => ({ route: name, matches: (url: string) => url === `/v1/${name}`, methods: ['GET', 'HEAD'] })),
  { route: 'metrics', matches: (url) => url === '/metrics', methods: ['GET', 'HEAD'] },
  { route: 'vacuum', matches: (url) => url === '/v1/admin/vacuum', methods: ['POST'] },
];

/** The methods of RFC 9110 §9 and PATCH: a method outside these is not implemented (501). */
const KNOWN_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
/** RFC 9110 §5.6.2 token: what a method is made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The methods a URL answers (the value of Allow), or null for a URL no route serves. */
export function allowedMethods(url: string, withOptions: boolean): string[] | null {
  const found = ROUTES.find((r) => r.matches(url));
  if (found === undefined) return null;
  return withOptions ? [...found.methods, 'OPTIONS'] : [...found.methods];
}

/** What the catch-all route answers, and the labels it is counted under (bounded sets). */
export interface Refusal {
  status: number;
  code: string;
  message: string;
  headers: Record<string, string>;
  route: string;
  method: string;
}

/**
 * The answer to a request no route took: 400 for a method that is not a token, 501 for a
 * method HTTP does not define (methods are case-sensitive: `get` is not GET), 404 for a URL
 * no route serves, 405 with Allow for a route that does not take this method.
 */
export function unrouted(method: string, url: string, withOptions: boolean): Refusal {
  const label = KNOWN_METHODS.has(method) ? method : 'OTHER';
  const shown = JSON.stringify(method.slice(0, 32));
  const path = url.slice(0, 200);
  if (!TOKEN.test(method)) return { status: 400, code: 'BAD_REQUEST', message: `${shown} is not an HTTP method`, headers: {}, route: 'unknown', method: label };
  if (!KNOWN_METHODS.has(method)) {
    return { status: 501, code: 'NOT_IMPLEMENTED', message: `method ${shown} is not implemented (methods are case-sensitive)`, headers: {}, route: 'unknown', method: label };
  }
  const allowed = allowedMethods(url, withOptions);
  if (allowed === null) return { status: 404, code: 'NOT_FOUND', message: `no route ${method} ${path}`, headers: {}, route: 'unknown', method: label };
  const route = ROUTES.find((r) => r.matches(url))!.route;
  return { status: 405, code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed on ${path}`, headers: { Allow: allowed.join(', ') }, route, method: label };
}

/**
 * RFC 9112 §6.3: Content-Length fields that disagree leave the body's end unknown; the server
 * must answer 400 and close. uWS frames the body by the first one and lets the others through
 * (it refuses a list, a non-number, and Content-Length with Transfer-Encoding itself), so what
 * it took for the next request could be the rest of this body. Answers the 400 (JSON, then the
 * connection closes) and true, or false when the framing is sound.
 */
export function refuseBadFraming(res: HttpResponse, req: HttpRequest): boolean {
  let first: string | null = null;
  let conflict = false;
  req.forEach((name, value) => {
    if (name !== 'content-length') return;
    if (first === null) first = value;
    else if (value !== first) conflict = true;
  });
  if (!conflict) return false;
  sendError(res, watchAbort(res), 400, 'BAD_REQUEST', 'Content-Length fields disagree: the body\'s end is unknown', {}, true);
  return true;
}

/** The HTTP status of a store error code. */
export function statusOfCode(code: string): number {
  switch (code) {
    case 'KEY_TOO_LONG':
      return 414;
    case 'KEY_EMPTY':
    case 'BAD_DIGEST':
    case 'BAD_ARGUMENT':
    case 'SIZE_MISMATCH':
      return 400;
    case 'VALUE_TOO_LARGE':
    case 'BATCH_TOO_LARGE':
      return 413;
    case 'NOT_FOUND':
      return 404;
    case 'READONLY':
      return 403;
    case 'NO_SPACE':
      return 507;
    case 'QUEUE_FULL':
    case 'ACTOR_DOWN':
    case 'WAL_FENCED':
    case 'CLOSED':
    case 'UNAVAILABLE':
    case 'DEGRADED':
    case 'NOREPLICAS':
    case 'LAGGING':
    case 'BUSY':
      return 503;
    case 'TIMEOUT':
      return 503;
    default:
      return 500;
  }
}

/** The code of a thrown error (StoreError keeps its own; anything else is INTERNAL). */
function codeOfFailure(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'INTERNAL';
}

/** The status sendFailure answers for an error. */
export function statusOfFailure(err: unknown): number {
  return statusOfCode(codeOfFailure(err));
}

/** A thrown error as an answer (StoreError keeps its code). */
export function sendFailure(res: HttpResponse, state: ResponseState, err: unknown): void {
  const e = err as { message?: unknown };
  const code = codeOfFailure(err);
  // A bug's message is logged, not sent (see reportInternal).
  if (code === 'INTERNAL') reportInternal(err);
  const message = code === 'INTERNAL' ? INTERNAL_TEXT : typeof e.message === 'string' ? e.message : String(err);
  sendError(res, state, statusOfCode(code), code, message);
}
