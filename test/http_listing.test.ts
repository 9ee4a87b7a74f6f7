// Black-box tests of the blob listing (issue 10, item 7): GET and HEAD
// /v1/blobs/?prefix=&delimiter=&cursor=&limit= against a real master started here, with fetch,
// curl and a raw socket (a HEAD answer must leave a keep-alive connection clean).
// Owns: the master it starts (stopped by PID in `after`) and its temp dir.
// Invariants checked: prefix + delimiter browse like folders (keys directly under the prefix,
// deeper ones rolled up into `prefix + part + delimiter`), keys of a page in byte order, with
// the size, ETag and Last-Modified that GET answers; following the cursor yields each key
// exactly once; keys with spaces, UTF-8, '%', '+' and glob characters list as stored; bad
// query values answer 400 JSON. Every loop is bounded in count and every wait in time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as net from 'node:net';
import { promisify } from 'node:util';
import { startMaster, stopAll, within, type MasterProcess } from './helpers/master_process.js';

const BOUNDED = { timeout: 60_000 };
const run = promisify(execFile);
const MAX_PAGES = 1000;

let m: MasterProcess;
let base = '';

before(async () => {
  m = await startMaster({ http: true });
  base = `http://127.0.0.1:${m.httpPort}`;
  for (const k of KEYS) await putKey(k, `value of ${k}`);
});

after(async () => {
  await stopAll();
});

const KEYS = [
  'top1', 'top2',
  'dir/a', 'dir/b', 'dir/a+b', 'dir/with space', 'dir/été', 'dir/100%', 'dir/日本/x',
  'dir/sub/c', 'dir/sub/d/e', 'dir/sub2/x',
  'glob/[x]*?', 'glob/[x]y', 'glob/xx',
];

interface Listed {
  key: string;
  size: number;
  etag: string;
  last_modified: string | null;
  content_type: string;
}

interface Listing {
  prefix: string;
  delimiter: string;
  keys: Listed[];
  common_prefixes: string[];
  next_cursor: string | null;
  truncated: boolean;
}

function keyPath(key: string): string {
  return encodeURIComponent(key).replace(/%2F/g, '/');
}

async function putKey(key: string, value: string): Promise<void> {
  const res = await fetch(`${base}/v1/blobs/${keyPath(key)}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 201, key);
}

function query(params: Record<string, string>): string {
  return new URLSearchParams(params).toString();
}

async function list(params: Record<string, string>): Promise<Listing> {
  const res = await fetch(`${base}/v1/blobs/?${query(params)}`, { signal: AbortSignal.timeout(20_000) });
  assert.equal(res.status, 200, JSON.stringify(params));
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const body = (await res.json()) as Listing;
  assertSorted(body.keys.map((k) => k.key));
  return body;
}

function assertSorted(keys: string[]): void {
  for (let i = 1; i < keys.length; i++) {
    assert.ok(Buffer.compare(Buffer.from(keys[i - 1]!), Buffer.from(keys[i]!)) < 0, `${keys[i - 1]} before ${keys[i]}`);
  }
}

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

test('prefix + delimiter browse like folders: the keys directly under, deeper ones as common prefixes', BOUNDED, async () => {
  const root = await list({ delimiter: '/' });
  assert.deepEqual(root.keys.map((k) => k.key), ['top1', 'top2']);
  assert.deepEqual(root.common_prefixes, ['dir/', 'glob/']);
  assert.equal(root.truncated, false);
  assert.equal(root.next_cursor, null);
  assert.equal(root.prefix, '');
  assert.equal(root.delimiter, '/');

  const dir = await list({ prefix: 'dir/', delimiter: '/' });
  assert.deepEqual(dir.keys.map((k) => k.key), ['dir/100%', 'dir/a', 'dir/a+b', 'dir/b', 'dir/with space', 'dir/été'].sort(byBytes));
  assert.deepEqual(dir.common_prefixes, ['dir/sub/', 'dir/sub2/', 'dir/日本/']);
  assert.equal(dir.prefix, 'dir/');

  const sub = await list({ prefix: 'dir/sub/', delimiter: '/' });
  assert.deepEqual(sub.keys.map((k) => k.key), ['dir/sub/c']);
  assert.deepEqual(sub.common_prefixes, ['dir/sub/d/']);

  // No delimiter: everything under the prefix, however deep.
  const flat = await list({ prefix: 'dir/' });
  assert.deepEqual(flat.keys.map((k) => k.key), KEYS.filter((k) => k.startsWith('dir/')).sort(byBytes));
  assert.deepEqual(flat.common_prefixes, []);

  // A prefix that is not at a delimiter, and one that matches nothing.
  assert.deepEqual((await list({ prefix: 'dir/s', delimiter: '/' })).common_prefixes, ['dir/sub/', 'dir/sub2/']);
  const none = await list({ prefix: 'nothing/' });
  assert.deepEqual([none.keys, none.common_prefixes, none.truncated], [[], [], false]);

  // Everything, no delimiter: every key once.
  assert.deepEqual((await list({})).keys.map((k) => k.key), [...KEYS].sort(byBytes));
});

test('keys with glob characters, percent signs, + and UTF-8 are prefixes like any other', BOUNDED, async () => {
  // The prefix is escaped for the index's MATCH: `[x]*` is literal, not a class and a star.
  assert.deepEqual((await list({ prefix: 'glob/[x]*' })).keys.map((k) => k.key), ['glob/[x]*?']);
  assert.deepEqual((await list({ prefix: 'glob/[x]' })).keys.map((k) => k.key), ['glob/[x]*?', 'glob/[x]y']);
  assert.deepEqual((await list({ prefix: 'dir/100%' })).keys.map((k) => k.key), ['dir/100%']);
  assert.deepEqual((await list({ prefix: 'dir/a+' })).keys.map((k) => k.key), ['dir/a+b']);
  assert.deepEqual((await list({ prefix: 'dir/with ' })).keys.map((k) => k.key), ['dir/with space']);
  assert.deepEqual((await list({ prefix: 'dir/ét' })).keys.map((k) => k.key), ['dir/été']);
  assert.deepEqual((await list({ prefix: 'dir/日本/', delimiter: '/' })).keys.map((k) => k.key), ['dir/日本/x']);
  // A raw '+' in a query is a space (form decoding), as in any query string.
  const raw = await fetch(`${base}/v1/blobs/?prefix=dir/a+b`, { signal: AbortSignal.timeout(10_000) });
  assert.deepEqual(((await raw.json()) as Listing).keys, []);
});

test('each entry says what GET says: size, ETag, Last-Modified, Content-Type', BOUNDED, async () => {
  const page = await list({ prefix: 'dir/' });
  assert.ok(page.keys.length > 5);
  for (const entry of page.keys) {
    const res = await fetch(`${base}/v1/blobs/${keyPath(entry.key)}`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200, entry.key);
    const body = await res.text();
    assert.equal(body, `value of ${entry.key}`);
    assert.equal(entry.size, Buffer.byteLength(body), entry.key);
    assert.equal(entry.etag, res.headers.get('etag'), entry.key);
    assert.equal(entry.last_modified, res.headers.get('last-modified'), entry.key);
    assert.equal(entry.content_type, res.headers.get('content-type'), 'the Content-Type the PUT stored (fetch sends text/plain for a string)');
    assert.ok(!Number.isNaN(Date.parse(entry.last_modified ?? '')), entry.last_modified ?? 'null');
  }
});

test('following the cursor with limit=3 over 50 keys yields each key exactly once, pages in key order', BOUNDED, async () => {
  const keys = Array.from({ length: 50 }, (_, i) => `pages/${String(i).padStart(2, '0')}${i % 5 === 0 ? '/deep' : ''}`);
  for (const k of keys) await putKey(k, k);
  const seen: string[] = [];
  const prefixesSeen = new Set<string>();
  let cursor = '';
  let pages = 0;
  do {
    const page = await list({ prefix: 'pages/', limit: '3', ...(cursor === '' ? {} : { cursor }) });
    assert.ok(page.keys.length >= 1 && page.keys.length <= 3, `a page of ${page.keys.length}`);
    assert.equal(page.truncated, page.next_cursor !== null);
    seen.push(...page.keys.map((k) => k.key));
    cursor = page.next_cursor ?? '';
    pages++;
    assert.ok(pages < MAX_PAGES, 'the listing ends');
  } while (cursor !== '');
  assert.equal(seen.length, 50, 'no key twice');
  assert.deepEqual([...seen].sort(), [...keys].sort());
  assert.ok(pages >= 17, `${pages} pages of at most 3`);

  // With a delimiter: keys plus common prefixes per page are at most the limit; the union of
  // the pages is the folder (a common prefix may come on several pages).
  cursor = '';
  const direct: string[] = [];
  for (pages = 0; pages === 0 || cursor !== ''; pages++) {
    const page = await list({ prefix: 'pages/', delimiter: '/', limit: '3', ...(cursor === '' ? {} : { cursor }) });
    assert.ok(page.keys.length + page.common_prefixes.length <= 3);
    direct.push(...page.keys.map((k) => k.key));
    for (const p of page.common_prefixes) prefixesSeen.add(p);
    cursor = page.next_cursor ?? '';
    assert.ok(pages < MAX_PAGES, 'the listing ends');
  }
  assert.deepEqual(direct.sort(), keys.filter((k) => !k.endsWith('/deep')).sort());
  assert.deepEqual([...prefixesSeen].sort(), keys.filter((k) => k.endsWith('/deep')).map((k) => k.slice(0, -'deep'.length)).sort());

  // The default limit (1000) takes the whole folder in one page.
  const whole = await list({ prefix: 'pages/' });
  assert.equal(whole.keys.length, 50);
  assert.equal(whole.truncated, false);
});

test('bad query values answer 400 JSON (HEAD: the status alone)', BOUNDED, async () => {
  const cases: [string, string][] = [
    ['limit=0', 'BAD_REQUEST'],
    ['limit=abc', 'BAD_REQUEST'],
    ['limit=-1', 'BAD_REQUEST'],
    ['limit=1.5', 'BAD_REQUEST'],
    ['delimiter=abcde', 'BAD_REQUEST'],
    ['cursor=abc', 'BAD_CURSOR'],
    ['cursor=-1', 'BAD_CURSOR'],
    ['cursor=99999999999', 'BAD_CURSOR'],
    ['cursor=4294967296', 'BAD_CURSOR'],
  ];
  for (const [q, code] of cases) {
    const res = await fetch(`${base}/v1/blobs/?${q}`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 400, q);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as { error: string; code: string };
    assert.equal(body.code, code, q);
    assert.ok(body.error.length > 0);
    const head = await fetch(`${base}/v1/blobs/?${q}`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    assert.equal(head.status, 400, `HEAD ${q}`);
  }
  // A limit past the maximum is taken as the maximum, as a count is elsewhere.
  assert.equal((await fetch(`${base}/v1/blobs/?limit=50000`, { signal: AbortSignal.timeout(10_000) })).status, 200);
});

test('HEAD answers the status and the Content-Length of GET with no body: the connection stays usable', BOUNDED, async () => {
  const path = `/v1/blobs/?${query({ prefix: 'dir/', delimiter: '/' })}`;
  const get = await fetch(base + path, { signal: AbortSignal.timeout(10_000) });
  const getLength = Buffer.byteLength(await get.text());
  const sock = net.connect(m.httpPort, '127.0.0.1');
  try {
    await within(new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject)), 5000, 'connect');
    let received = '';
    sock.on('data', (d: Buffer) => (received += d.toString('latin1')));
    sock.write(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => received.includes('\r\n\r\n'), 'the HEAD answer');
    await new Promise((r) => setTimeout(r, 200)); // room for body bytes that must not come
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(received, new RegExp(`\r\ncontent-length: ${getLength}\r\n`, 'i'));
    assert.ok(received.endsWith('\r\n\r\n'), `bytes after the HEAD headers: ${JSON.stringify(received.slice(received.indexOf('\r\n\r\n') + 4))}`);
    received = '';
    sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const complete = (): boolean => {
      const end = received.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: ([0-9]+)\r\n/i.exec(received);
      return end >= 0 && length !== null && received.length - end - 4 >= Number(length[1]);
    };
    await waitFor(complete, 'the GET answer on the same connection');
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n/);
    const body = JSON.parse(Buffer.from(received.slice(received.indexOf('\r\n\r\n') + 4), 'latin1').toString('utf8')) as Listing;
    assert.deepEqual(body.common_prefixes, ['dir/sub/', 'dir/sub2/', 'dir/日本/']);
  } finally {
    sock.destroy();
  }
});

async function waitFor(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('with curl: browse a folder, follow the cursor, HEAD with -I', BOUNDED, async () => {
  const curl = async (...args: string[]): Promise<string> =>
    (await run('curl', ['-sS', '--max-time', '20', ...args], { timeout: 30_000 })).stdout;
  const dir = JSON.parse(await curl(`${base}/v1/blobs/?prefix=dir%2F&delimiter=%2F`)) as Listing;
  assert.deepEqual(dir.common_prefixes, ['dir/sub/', 'dir/sub2/', 'dir/日本/']);
  assert.ok(dir.keys.some((k) => k.key === 'dir/with space'));
  const seen: string[] = [];
  let cursor = '';
  for (let pages = 0; pages === 0 || cursor !== ''; pages++) {
    assert.ok(pages < MAX_PAGES, 'the listing ends');
    const page = JSON.parse(await curl('-G', `${base}/v1/blobs/`, '--data-urlencode', 'prefix=glob/', '--data-urlencode', 'limit=1', '--data-urlencode', `cursor=${cursor}`)) as Listing;
    seen.push(...page.keys.map((k) => k.key));
    cursor = page.next_cursor ?? '';
  }
  assert.deepEqual(seen.sort(), ['glob/[x]*?', 'glob/[x]y', 'glob/xx']);
  const head = await curl('-I', `${base}/v1/blobs/?prefix=dir%2F`);
  assert.match(head, /^HTTP\/1\.1 200 OK/);
  assert.match(head, /content-type: application\/json/i);
});
