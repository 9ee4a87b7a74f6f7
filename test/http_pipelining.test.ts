// Pipelining (issue 10, defect 2): requests written back to back on one connection before the
// answers come. What the server guarantees, over a raw socket (docs/http.md, "Keep-alive, HEAD
// and pipelining"):
// - requests answered without waiting on the store (errors of the guard and of the request
//   itself, unknown routes, 405/501, every HEAD of them) are answered in order, complete, on
//   the one connection, 2 or 10 in one write;
// - requests on one keep-alive connection, each sent once the previous answer arrived, are all
//   answered in order (a PUT then a GET of its key sees the PUT);
// - GETs and HEADs of blobs up to 1 MiB are answered before their handler returns (a
//   synchronous index lookup over shared memory, the value read on the front end's thread), so
//   pipelined they are all answered in order;
// - a request pipelined behind one that waits on the store: uWebSockets.js does not support
//   that ("async pipelining", uNetworking/uWebSockets.js#277, wontfix) and closes the
//   connection when it parses the second request; its native code does this before any route
//   could hold the request back. The client gets complete answers in order or none, never a
//   partial, misplaced or mixed one, and the master keeps serving; each request retried on a
//   fresh connection (RFC 9112 §9.3.2) is answered. If a future uWS answers them all, the
//   "closed" assertions below fail on purpose: the docs then change with them.
// Owns: the master it starts (stopped by PID in `after`) and every socket it opens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rawConnect, startMaster, stopAll, type MasterProcess } from './helpers/master_process.js';
import { request, splitResponses, type WireResponse } from './helpers/http_wire.js';

const BOUNDED = { timeout: 60_000 };

let m: MasterProcess;
let base = '';

before(async () => {
  m = await startMaster({ http: true });
  base = `http://127.0.0.1:${m.httpPort}`;
  for (const [key, value] of [['a', 'value of a'], ['b', 'the value of b']]) {
    const put = await fetch(`${base}/v1/blobs/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(10_000) });
    assert.equal(put.status, 201);
  }
});

after(async () => {
  await stopAll();
});

interface Req {
  method: string;
  path: string;
  body?: string;
  status: number;
  /** Part of the body that proves the answer is this request's (JSON message or value). */
  says?: string;
}

/** Writes all requests in ONE write; answers the responses received and whether the server closed. */
async function pipeline(reqs: Req[], settleMs: number): Promise<{ responses: WireResponse[]; rest: Buffer; closed: boolean }> {
  const conn = await rawConnect(m.httpPort);
  try {
    conn.send(Buffer.concat(reqs.map((r) => request(r.method, r.path, [], r.body))));
    const methods = reqs.map((r) => r.method);
    const all = (t: string): boolean => splitResponses(Buffer.from(t, 'latin1'), methods).responses.length === reqs.length;
    await conn.until(all, settleMs, `${reqs.length} answers`).catch(() => undefined);
    const { responses, rest } = splitResponses(conn.received(), methods);
    return { responses, rest, closed: conn.isClosed() };
  } finally {
    conn.destroy();
  }
}

function assertAnswers(reqs: Req[], responses: WireResponse[]): void {
  responses.forEach((r, i) => {
    const q = reqs[i]!;
    assert.equal(r.status, q.status, `answer ${i + 1} is to ${q.method} ${q.path}`);
    if (q.method === 'HEAD') assert.equal(r.body.length, 0, `answer ${i + 1}: a HEAD answer has no body`);
    if (q.says !== undefined) assert.ok(r.body.toString().includes(q.says), `answer ${i + 1} (${q.method} ${q.path}) says ${JSON.stringify(q.says)}: ${r.body.toString()}`);
  });
}

/** Answered at once, without a round trip to the store's actors. */
const IMMEDIATE: Req[] = [
  { method: 'GET', path: '/v2/one', status: 404, says: 'GET /v2/one' },
  { method: 'HEAD', path: '/v2/two', status: 404 },
  { method: 'GET', path: '/v1/blobs/%zz', status: 400, says: 'percent' },
  { method: 'HEAD', path: '/v1/blobs/%zz', status: 400 },
  { method: 'PUT', path: '/v1/status', body: 'x', status: 405, says: 'PUT is not allowed on /v1/status' },
  { method: 'FOO', path: '/v1/blobs/a', status: 501, says: 'FOO' },
  { method: 'DELETE', path: '/metrics', status: 405, says: 'DELETE is not allowed on /metrics' },
  { method: 'GET', path: '/v2/eight', status: 404, says: 'GET /v2/eight' },
  { method: 'POST', path: '/v1/blobs/a', body: 'xyz', status: 405, says: 'POST is not allowed on /v1/blobs/a' },
  { method: 'GET', path: '/v2/ten', status: 404, says: 'GET /v2/ten' },
];

test('2, then 10 pipelined requests answered without the store: every answer, in order, complete, on the one connection', BOUNDED, async () => {
  for (const reqs of [IMMEDIATE.slice(0, 2), IMMEDIATE]) {
    const { responses, rest, closed } = await pipeline(reqs, 5000);
    assert.equal(responses.length, reqs.length, `all ${reqs.length} answered`);
    assertAnswers(reqs, responses);
    assert.equal(rest.length, 0, 'nothing after the last answer');
    assert.equal(closed, false, 'the connection stays open');
  }
});

test('one keep-alive connection, each request sent once the previous answer came: GETs, a HEAD, /v1/status, a miss, a PUT then a GET of its key', BOUNDED, async () => {
  const reqs: Req[] = [
    { method: 'GET', path: '/v1/blobs/a', status: 200, says: 'value of a' },
    { method: 'GET', path: '/v1/blobs/b', status: 200, says: 'the value of b' },
    { method: 'HEAD', path: '/v1/blobs/a', status: 200 },
    { method: 'GET', path: '/v1/status', status: 200, says: '"status"' },
    { method: 'GET', path: '/v1/blobs/missing', status: 404, says: 'missing' },
    { method: 'PUT', path: '/v1/blobs/seq', body: 'written then read', status: 201 },
    { method: 'GET', path: '/v1/blobs/seq', status: 200, says: 'written then read' },
  ];
  const conn = await rawConnect(m.httpPort);
  try {
    const methods: string[] = [];
    for (const r of reqs) {
      conn.send(request(r.method, r.path, [], r.body));
      methods.push(r.method);
      await conn.until((t) => splitResponses(Buffer.from(t, 'latin1'), methods).responses.length === methods.length, 10_000, `the answer to ${r.method} ${r.path}`);
    }
    const { responses, rest } = splitResponses(conn.received(), methods);
    assertAnswers(reqs, responses);
    assert.equal(rest.length, 0);
    assert.equal(conn.isClosed(), false);
  } finally {
    conn.destroy();
  }
});

/**
 * GETs and HEADs of blobs up to 1 MiB are answered before their handler returns (the index is
 * asked through a shared-memory slot, the value read on the front end's thread): pipelined, they
 * are all answered, in order, and the connection stays open.
 */
const BLOB_READS: Req[][] = [
  [
    { method: 'GET', path: '/v1/blobs/a', status: 200, says: 'value of a' },
    { method: 'GET', path: '/v1/blobs/b', status: 200, says: 'the value of b' },
  ],
  [
    { method: 'GET', path: '/v1/blobs/a', status: 200, says: 'value of a' },
    { method: 'HEAD', path: '/v1/blobs/b', status: 200 },
    { method: 'GET', path: '/v1/blobs/missing', status: 404, says: 'missing' },
    { method: 'HEAD', path: '/v1/blobs/missing', status: 404 },
    { method: 'GET', path: '/v1/blobs/b', status: 200, says: 'the value of b' },
    { method: 'GET', path: '/v2/sixth', status: 404, says: 'GET /v2/sixth' },
    { method: 'HEAD', path: '/v1/blobs/a', status: 200 },
    { method: 'GET', path: '/v1/blobs/b', status: 200, says: 'the value of b' },
    { method: 'GET', path: '/v1/blobs/a', status: 200, says: 'value of a' },
    { method: 'GET', path: '/v1/blobs/missing-too', status: 404, says: 'missing-too' },
  ],
];

/** Attempts per pipeline: the fast path may yield to the message path when the index is busy. */
const ATTEMPTS = 5;

test('2, then 10 pipelined GETs and HEADs of blobs (and misses): every answer, in order, on the one connection', BOUNDED, async () => {
  for (const reqs of BLOB_READS) {
    let whole = 0;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const { responses, rest, closed } = await pipeline(reqs, 5000);
      // Always: whole answers, in order (a prefix of them when the message path had to be taken).
      assertAnswers(reqs, responses);
      assert.equal(rest.length, 0, 'no partial answer');
      if (responses.length === reqs.length && !closed) whole++;
    }
    // The index answers at once unless it is busy: a loaded test machine may cost an attempt,
    // never most of them.
    assert.ok(whole >= 3, `${whole} of ${ATTEMPTS} pipelines of ${reqs.length} wholly answered`);
  }
});

/** Pipelines in one write whose first request waits on the store's actors: uWS closes the connection. */
const BEHIND_THE_STORE: Req[][] = [
  [
    { method: 'GET', path: '/v1/status', status: 200, says: '"status"' },
    { method: 'GET', path: '/v1/blobs/a', status: 200, says: 'value of a' },
  ],
  [
    { method: 'GET', path: '/v1/keys', status: 200, says: '"keys"' },
    { method: 'HEAD', path: '/v1/blobs/b', status: 200 },
    { method: 'GET', path: '/v1/status', status: 200, says: '"status"' },
  ],
  // A value over 1 MiB streams: its answer comes later, and a request behind it closes too.
  [
    { method: 'GET', path: '/v1/blobs/big', status: 200 },
    { method: 'GET', path: '/v1/blobs/a', status: 200, says: 'value of a' },
  ],
  // An answer made at once is lost too: uWS holds the socket's output (corked) while it parses.
  [
    { method: 'GET', path: '/v2/first', status: 404, says: 'GET /v2/first' },
    { method: 'GET', path: '/v1/status', status: 200, says: '"status"' },
    { method: 'GET', path: '/v2/third', status: 404, says: 'GET /v2/third' },
  ],
];

test('pipelined behind a request that waits on the store: uWS closes the connection (unless the answer came in time); never a partial or misplaced answer; each retried alone is answered', BOUNDED, async () => {
  const big = await fetch(`${base}/v1/blobs/big`, { method: 'PUT', body: Buffer.alloc(2 * 1024 * 1024, 1), signal: AbortSignal.timeout(10_000) });
  assert.equal(big.status, 201);
  for (const reqs of BEHIND_THE_STORE) {
    const { responses, rest, closed } = await pipeline(reqs, 3000);
    // Whatever arrived is a prefix of the answers, each whole and in order.
    assertAnswers(reqs, responses);
    assert.equal(rest.length, 0, `no partial answer: ${JSON.stringify(rest.toString('latin1').slice(0, 200))}`);
    // uWS closes a connection whose next request came before the answer (docs/http.md); an
    // answer that no longer waits on another thread (a lookup in the shared heads) may come in
    // time, and then every request is answered on the open connection.
    if (!closed) assert.equal(responses.length, reqs.length, 'an open connection answered every request');
    // RFC 9112 §9.3.2: the client retries what was not answered, on a new connection.
    for (const q of reqs.slice(responses.length)) {
      const { responses: one, closed: gone } = await pipeline([q], 5000);
      assertAnswers([q], one);
      assert.equal(one.length, 1, `${q.method} ${q.path} answered on its own`);
      assert.equal(gone, false);
    }
  }
  assert.equal(m.exited(), false);
});

test('a PUT with a GET of its key pipelined behind it: the PUT is all or nothing, and a GET afterwards sees it or nothing', BOUNDED, async () => {
  const value = 'put while a GET was already on the wire';
  const reqs: Req[] = [
    { method: 'PUT', path: '/v1/blobs/piped', body: value, status: 201 },
    { method: 'GET', path: '/v1/blobs/piped', status: 200, says: value },
  ];
  const { responses, rest, closed } = await pipeline(reqs, 3000);
  assertAnswers(reqs, responses);
  assert.equal(rest.length, 0);
  assert.equal(closed, true, 'closed by uWS (the PUT waits on the store)');
  // The PUT may have committed before the close or not at all; never a part of it.
  const after = await fetch(`${base}/v1/blobs/piped`, { signal: AbortSignal.timeout(5000) });
  const body = await after.text();
  assert.ok(after.status === 404 || (after.status === 200 && body === value), `${after.status} ${body}`);
  // Retried on a fresh connection, one by one, the pair behaves as written.
  const put = await fetch(`${base}/v1/blobs/piped`, { method: 'PUT', body: value, signal: AbortSignal.timeout(5000) });
  assert.equal(put.status, 201);
  assert.equal(await (await fetch(`${base}/v1/blobs/piped`, { signal: AbortSignal.timeout(5000) })).text(), value);
});
