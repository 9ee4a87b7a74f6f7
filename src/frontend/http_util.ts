// Small helpers of the HTTP front end over uWebSockets.js: JSON and error answers, and the
// discipline uWS asks of an HttpResponse (it is valid only until it is answered or aborted;
// anything written outside the request's own synchronous handler must be corked).
import type { HttpResponse } from 'uWebSockets.js';
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
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  408: '408 Request Timeout',
  411: '411 Length Required',
  412: '412 Precondition Failed',
  413: '413 Content Too Large',
  414: '414 URI Too Long',
  416: '416 Range Not Satisfiable',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  507: '507 Insufficient Storage',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Status`;
}

/** Answers a JSON body (corked); does nothing when the client is gone or it was answered. */
export function sendJson(res: HttpResponse, state: ResponseState | null, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (state !== null && (state.aborted || state.done)) return;
  if (state !== null) state.done = true;
  res.cork(() => {
    res.writeStatus(statusLine(status));
    res.writeHeader('Content-Type', 'application/json');
    for (const [name, value] of Object.entries(headers)) res.writeHeader(name, value);
    res.end(JSON.stringify(body));
  });
}

/** Errors are JSON `{"error": "...", "code": "..."}` with the right status. */
export function sendError(res: HttpResponse, state: ResponseState | null, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, state, status, { error: message, code }, headers);
}

/** The HTTP status of a store error code. */
export function statusOfCode(code: string): number {
  switch (code) {
    case 'KEY_TOO_LONG':
      return 414;
    case 'KEY_EMPTY':
    case 'BAD_ARGUMENT':
    case 'SIZE_MISMATCH':
      return 400;
    case 'VALUE_TOO_LARGE':
    case 'BATCH_TOO_LARGE':
      return 413;
    case 'NOT_FOUND':
      return 404;
    case 'NO_SPACE':
      return 507;
    case 'QUEUE_FULL':
    case 'ACTOR_DOWN':
    case 'WAL_FENCED':
    case 'CLOSED':
      return 503;
    case 'TIMEOUT':
      return 503;
    default:
      return 500;
  }
}

/** A thrown error as an answer (StoreError keeps its code). */
export function sendFailure(res: HttpResponse, state: ResponseState, err: unknown): void {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
  // A bug's message is logged, not sent (see reportInternal).
  if (code === 'INTERNAL') reportInternal(err);
  const message = code === 'INTERNAL' ? INTERNAL_TEXT : typeof e.message === 'string' ? e.message : String(err);
  sendError(res, state, statusOfCode(code), code, message);
}
