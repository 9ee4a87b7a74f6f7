// Test helper: HTTP/1.1 responses read byte by byte off a raw connection, for the tests that
// check framing (keep-alive after HEAD, pipelining, uWS's own errors). A response's end is
// found as a client finds it (RFC 9112 §6.3): no body for a HEAD, 1xx, 204 or 304, else
// Content-Length; the server sends no chunked answers, so one is an error here, not a guess.
// Owns nothing; pure functions over the bytes received.

export interface WireResponse {
  status: number;
  /** Header names lower case; a repeated header keeps every value, joined by ', '. */
  headers: Map<string, string>;
  /** Every header field line as sent, in order (to see duplicates). */
  lines: string[];
  body: Buffer;
  /** The whole response as latin1 text, status line to the last body byte. */
  raw: string;
}

export interface Split {
  responses: WireResponse[];
  /** Bytes after the last complete response (a response still arriving, or junk). */
  rest: Buffer;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Cuts `bytes` into complete responses, in order; `methods[i]` is the method of the request the
 * i-th response answers (a HEAD answer has no body whatever its Content-Length says). Stops at
 * the first incomplete response; throws on bytes that do not start a status line, which is
 * what a body sent where none belongs looks like to the next response.
 */
export function splitResponses(bytes: Buffer, methods: readonly string[]): Split {
  const responses: WireResponse[] = [];
  let at = 0;
  while (at < bytes.length && responses.length < methods.length) {
    const end = bytes.indexOf(HEAD_END, at);
    if (end < 0) break;
    const head = bytes.subarray(at, end).toString('latin1');
    const [statusLine = '', ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
    if (m === null) throw new Error(`response ${responses.length + 1} does not start with a status line: ${JSON.stringify(head.slice(0, 120))}`);
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)!}, ${value}` : value);
    }
    if (headers.has('transfer-encoding')) throw new Error(`response ${responses.length + 1} is chunked; this helper reads Content-Length only`);
    const noBody = methods[responses.length] === 'HEAD' || status < 200 || status === 204 || status === 304;
    const length = noBody ? 0 : Number(headers.get('content-length') ?? '0');
    const bodyStart = end + HEAD_END.length;
    if (bytes.length < bodyStart + length) break;
    const body = bytes.subarray(bodyStart, bodyStart + length);
    responses.push({ status, headers, lines, body, raw: bytes.subarray(at, bodyStart + length).toString('latin1') });
    at = bodyStart + length;
  }
  return { responses, rest: bytes.subarray(at) };
}

/** A request as bytes: method, path, header lines, and an optional body (Content-Length added). */
export function request(method: string, path: string, headers: readonly string[] = [], body?: string | Buffer): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...headers];
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return body === undefined ? head : Buffer.concat([head, Buffer.from(body)]);
}
