// The volume server as a black box (docs/volume-server.md): real `node cmd/volume-server.js`
// processes on ports the OS picks, spoken to with fetch and node:http as a master would. Covers
// create/stat/list/health, appends of one and many needles at the tail only (409 naming the
// length), damaged needles refused and cut back, fencing by epoch, X-Brise-Auth, reads checked
// as they stream (a damaged needle is cut, never a clean 200), ranges, raw ranges, truncate,
// copy from a peer, delete, raw-region appends, and a kill -9 mid-append.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { crc32 } from '../src/storage/checksum.js';
import { alignUp } from '../src/storage/volume_format.js';
import { sleep, within } from './helpers/master_process.js';
import { authHeaders, callVolumeServer, needleBytes, regionOf, startVolumeServer, stopAllVolumeServers, volumeLength, type VolumeAnswer, type VolumeServer } from './helpers/volume_server_process.js';

const T = { timeout: 60_000 };
const CREATED = 1_700_000_000_000;
let a: VolumeServer;

before(async () => {
  a = await startVolumeServer();
});
after(stopAllVolumeServers);

type Answer = VolumeAnswer;
const call = callVolumeServer;

async function create(s: VolumeServer, id: number, epoch = 1): Promise<Answer> {
  const r = await call(s.base, 'POST', `/v1/volumes/${id}?epoch=${epoch}&created=${CREATED}`);
  assert.ok(r.status === 201 || r.status === 409, JSON.stringify(r.body));
  return r;
}

async function append(s: VolumeServer, id: number, offset: number, bytes: Buffer, epoch = 1): Promise<Answer> {
  return call(s.base, 'PUT', `/v1/volumes/${id}/needles?offset=${offset}&epoch=${epoch}&sync=1`, bytes);
}

const lengthOf = (s: VolumeServer, id: number): Promise<number> => volumeLength(s.base, id);

/** Appends `count` needles one request each; answers the needles and their offsets. */
async function fill(s: VolumeServer, id: number, count: number, size = 3000): Promise<{ bytes: Buffer; offset: number }[]> {
  const out: { bytes: Buffer; offset: number }[] = [];
  let offset = await lengthOf(s, id);
  for (let i = 0; i < count; i++) {
    const bytes = needleBytes(`key-${id}-${i}`, randomBytes(size + i * 7));
    const r = await append(s, id, offset, bytes);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    out.push({ bytes, offset });
    offset = r.body['length'] as number;
  }
  return out;
}

test('create, stat, list, health; a second create is 409 with the length', T, async () => {
  const created = await create(a, 100);
  assert.equal(created.status, 201);
  assert.deepEqual(created.body, { id: 100, length: 64, synced_length: 64, epoch: 1 });
  const again = await create(a, 100);
  assert.equal(again.status, 409);
  assert.equal(again.body['code'], 'CONFLICT');
  assert.equal(again.body['length'], 64);
  const list = await call(a.base, 'GET', '/v1/volumes');
  assert.ok((list.body['volumes'] as { id: number }[]).some((v) => v.id === 100));
  const health = await call(a.base, 'GET', '/v1/health');
  assert.equal(health.body['status'], 'ok');
  assert.ok((health.body['drives'] as { free_bytes: number }[])[0]!.free_bytes > 0);
  assert.equal((await call(a.base, 'GET', '/v1/volumes/999')).status, 404);
  // Every member writes the same superblock: its creation time is the master's.
  assert.equal(fs.readFileSync(a.volumePath(100)).readBigUInt64LE(16), BigInt(CREATED));
});

test('appends: one needle, many in one body, only at the tail (409 names the length); read back byte-identical and a range', T, async () => {
  await create(a, 101);
  const one = needleBytes('first', randomBytes(1000));
  const r1 = await append(a, 101, 64, one);
  assert.equal(r1.status, 201, JSON.stringify(r1.body));
  assert.deepEqual(r1.body, { offset: 64, length: alignUp(64 + one.length), crc32: crc32(one) >>> 0 });
  const at = r1.body['length'] as number;
  const many = [needleBytes('a', randomBytes(10)), needleBytes('bb', randomBytes(70_000)), needleBytes('ccc', randomBytes(2_500_000))];
  const region = regionOf(many);
  const r2 = await append(a, 101, at, region);
  assert.equal(r2.status, 201, JSON.stringify(r2.body));
  assert.equal(r2.body['length'], at + region.length);
  const wrong = await append(a, 101, at, one);
  assert.equal(wrong.status, 409);
  assert.deepEqual([wrong.body['code'], wrong.body['length']], ['CONFLICT', at + region.length]);
  // Read back each needle whole, byte for byte.
  let offset = at;
  for (const n of many) {
    const res = await fetch(`${a.base}/v1/volumes/101/needles/${offset}?length=${n.length}`);
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(n));
    offset += alignUp(n.length);
  }
  const big = many[2]!;
  const part = await fetch(`${a.base}/v1/volumes/101/needles/${at + alignUp(many[0]!.length) + alignUp(many[1]!.length)}?length=${big.length}`, { headers: { range: 'bytes=100-199999' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 100-199999/${big.length}`);
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(big.subarray(100, 200_000)));
  // Past the volume's length: nothing is served.
  const past = await call(a.base, 'GET', `/v1/volumes/101/needles/${offset}?length=100`);
  assert.deepEqual([past.status, past.body['code']], [404, 'NOT_FOUND']);
});

test('a damaged needle is refused and cut back; a bad second needle cuts back the whole body', T, async () => {
  await create(a, 102);
  const good = needleBytes('good', randomBytes(5000));
  const bad = Buffer.from(good);
  bad[2000] = bad[2000]! ^ 0xff;
  const r = await append(a, 102, 64, bad);
  assert.deepEqual([r.status, r.body['code']], [400, 'CHECKSUM_MISMATCH']);
  assert.equal(await lengthOf(a, 102), 64);
  const r2 = await append(a, 102, 64, regionOf([good, bad]));
  assert.deepEqual([r2.status, r2.body['code']], [400, 'CHECKSUM_MISMATCH']);
  assert.equal(await lengthOf(a, 102), 64, 'all or nothing');
  assert.equal(fs.statSync(a.volumePath(102)).size, 64, 'the bytes are gone from the file');
  const short = await append(a, 102, 64, good.subarray(0, 3000));
  assert.deepEqual([short.status, short.body['code']], [400, 'SIZE_MISMATCH']);
  assert.equal((await append(a, 102, 64, good)).status, 201, 'the volume takes writes again');
});

test('fencing: after a higher epoch, an older one is refused (409 STALE_EPOCH), across a restart', T, async () => {
  // A server of its own: the epoch is the whole drive's.
  const s = await startVolumeServer();
  await create(s, 103, 5);
  const n = needleBytes('x', randomBytes(100));
  assert.equal((await append(s, 103, 64, n, 7)).status, 201);
  const stale = await append(s, 103, alignUp(64 + n.length), n, 6);
  assert.deepEqual([stale.status, stale.body['code']], [409, 'STALE_EPOCH']);
  assert.equal((await call(s.base, 'GET', '/v1/volumes/103')).body['epoch'], 7);
  await s.stop();
  const again = await startVolumeServer({ dataDir: s.dataDir });
  const cut = await call(again.base, 'POST', '/v1/volumes/103/truncate?length=64&epoch=6');
  assert.deepEqual([cut.status, cut.body['code']], [409, 'STALE_EPOCH']);
  assert.equal(await lengthOf(again, 103), alignUp(64 + n.length));
  await again.stop();
});

test('X-Brise-Auth: 401 without it, with a wrong secret or a changed query; served with the right one', T, async () => {
  const s = await startVolumeServer({ secret: 's3cret' });
  const target = `/v1/volumes/7?epoch=1&created=${CREATED}`;
  const none = await call(s.base, 'POST', target);
  assert.deepEqual([none.status, none.body['code']], [401, 'UNAUTHORIZED']);
  const wrong = await call(s.base, 'POST', target, undefined, authHeaders('other', 'POST', target));
  assert.equal(wrong.status, 401);
  const changed = await call(s.base, 'POST', target, undefined, authHeaders('s3cret', 'POST', `/v1/volumes/7?epoch=2&created=${CREATED}`));
  assert.equal(changed.status, 401);
  const ok = await call(s.base, 'POST', target, undefined, authHeaders('s3cret', 'POST', target));
  assert.equal(ok.status, 201);
  const put = `/v1/volumes/7/needles?offset=64&epoch=1`;
  const body = needleBytes('k', randomBytes(300_000));
  assert.equal((await call(s.base, 'PUT', put, body)).status, 401, 'an unsigned body is refused');
  assert.equal((await call(s.base, 'PUT', put, body, authHeaders('s3cret', 'PUT', put))).status, 201);
  await s.stop();
});

test('a read of a damaged needle is cut, never a complete 200; the raw range stops there too', T, async () => {
  await create(a, 104);
  const [small, big] = await fill(a, 104, 2, 3_000_000);
  // A byte flipped in the first needle's value, and one late in the second (past its first MiB).
  flipByte(a.volumePath(104), small!.offset + 2_000_000);
  flipByte(a.volumePath(104), big!.offset + 2_500_000);
  const got = await readCut(`${a.base}/v1/volumes/104/needles/${big!.offset}?length=${big!.bytes.length}`);
  assert.ok(got.cut, `expected a cut connection; got ${got.bytes} bytes with status ${got.status}`);
  assert.equal(got.status, 200);
  assert.ok(got.bytes < big!.bytes.length);
  const raw = await readCut(`${a.base}/v1/volumes/104/raw?start=${big!.offset}&end=${await lengthOf(a, 104)}`);
  assert.ok(raw.cut && raw.bytes < big!.bytes.length, JSON.stringify(raw));
  // Damage found before the status line (a needle that fits in one read): a clean 500.
  const [little] = await fill(a, 104, 1, 400_000);
  flipByte(a.volumePath(104), little!.offset + 300_000);
  const clean = await call(a.base, 'GET', `/v1/volumes/104/needles/${little!.offset}?length=${little!.bytes.length}`);
  assert.deepEqual([clean.status, clean.body['code']], [500, 'CHECKSUM_MISMATCH']);
});

function flipByte(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, at);
    fs.writeSync(fd, Buffer.from([byte[0]! ^ 0x55]), 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** A GET read to its end with node:http: whether the connection was cut short. */
function readCut(url: string): Promise<{ status: number; bytes: number; cut: boolean }> {
  return within(
    new Promise((resolve, reject) => {
      http.get(url, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, cut: false }));
        res.on('aborted', () => resolve({ status: res.statusCode ?? 0, bytes, cut: true }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes, cut: true }));
      }).on('error', reject);
    }),
    20_000,
    `a read of ${url}`,
  );
}

test('raw range: the bytes of [start, end) with padding; truncate to a needle boundary; delete', T, async () => {
  await create(a, 105);
  const ns = await fill(a, 105, 4);
  const end = await lengthOf(a, 105);
  const res = await fetch(`${a.base}/v1/volumes/105/raw?start=64&end=${end}`);
  assert.equal(res.status, 200);
  const got = Buffer.from(await res.arrayBuffer());
  assert.ok(got.equals(regionOf(ns.map((n) => n.bytes))));
  const misaligned = await call(a.base, 'GET', `/v1/volumes/105/raw?start=${ns[1]!.offset + 8}&end=${end}`);
  assert.deepEqual([misaligned.status, misaligned.body['code']], [500, 'CHECKSUM_MISMATCH'], 'no needle starts there');
  const cut = await call(a.base, 'POST', `/v1/volumes/105/truncate?length=${ns[2]!.offset}&epoch=1`);
  assert.deepEqual([cut.status, cut.body['length']], [200, ns[2]!.offset]);
  assert.equal(await lengthOf(a, 105), ns[2]!.offset);
  assert.equal((await append(a, 105, ns[2]!.offset, ns[2]!.bytes)).status, 201, 'appends resume at the cut');
  const del = await fetch(`${a.base}/v1/volumes/105?epoch=1`, { method: 'DELETE' });
  assert.equal(del.status, 204);
  assert.equal((await call(a.base, 'GET', '/v1/volumes/105')).status, 404);
  assert.equal(fs.existsSync(a.volumePath(105)), false);
});

test('copy from a peer: the range fetched, checked and appended; both files byte-identical', T, async () => {
  const b = await startVolumeServer();
  await create(a, 106);
  await create(b, 106);
  await fill(a, 106, 3, 200_000);
  await fill(b, 106, 1, 200_000).catch(() => undefined); // b diverges: its own needle
  await call(b.base, 'POST', '/v1/volumes/106/truncate?length=64&epoch=1');
  const end = await lengthOf(a, 106);
  const copied = await call(b.base, 'POST', `/v1/volumes/106/copy?from=${encodeURIComponent(a.base)}&start=64&end=${end}&epoch=1`);
  assert.deepEqual([copied.status, copied.body['length']], [200, end], JSON.stringify(copied.body));
  assert.ok(fs.readFileSync(a.volumePath(106)).equals(fs.readFileSync(b.volumePath(106))));
  const again = await call(b.base, 'POST', `/v1/volumes/106/copy?from=${encodeURIComponent(a.base)}&start=64&end=${end}&epoch=1`);
  assert.deepEqual([again.status, again.body['length']], [409, end]);
  const gone = await call(b.base, 'POST', `/v1/volumes/106/copy?from=http://127.0.0.1:1&start=${end}&end=${end + 8}&epoch=1`);
  assert.equal(gone.status, 502);
  assert.equal(await lengthOf(b, 106), end, 'a failed copy leaves the volume as it was');
  await b.stop();
});

test('a raw region (the master\'s bytes as they are) is taken whole and its CRC-32 answered', T, async () => {
  await create(a, 107);
  const region = regionOf([needleBytes('r1', randomBytes(999)), needleBytes('r2', randomBytes(12_345))]);
  const r = await call(a.base, 'PUT', `/v1/volumes/107/raw?offset=64&epoch=1&sync=1`, region);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual(r.body, { offset: 64, length: 64 + region.length, crc32: crc32(region) >>> 0 });
  const odd = await call(a.base, 'PUT', `/v1/volumes/107/raw?offset=${64 + region.length}&epoch=1`, Buffer.alloc(13));
  assert.equal(odd.status, 400);
  assert.equal(await lengthOf(a, 107), 64 + region.length);
});

test('kill -9 mid-append, restart: the torn needle is gone, the length back at the last whole one', T, async () => {
  const s = await startVolumeServer();
  await create(s, 108);
  await fill(s, 108, 2);
  const before = await lengthOf(s, 108);
  const big = needleBytes('torn', randomBytes(8 * 1024 * 1024));
  const req = http.request(`${s.base}/v1/volumes/108/needles?offset=${before}&epoch=1&sync=1`, { method: 'PUT', headers: { 'content-length': String(big.length) } });
  req.on('error', () => undefined);
  req.write(big.subarray(0, 4 * 1024 * 1024));
  // Wait until part of it is in the file, then kill the server mid-body.
  const deadline = Date.now() + 15_000;
  while (fs.statSync(s.volumePath(108)).size < before + 1024 * 1024 && Date.now() < deadline) await sleep(20);
  assert.ok(fs.statSync(s.volumePath(108)).size > before, 'part of the needle reached the file');
  await s.kill();
  req.destroy();
  const again = await startVolumeServer({ dataDir: s.dataDir });
  assert.equal(await lengthOf(again, 108), before);
  assert.equal(fs.statSync(again.volumePath(108)).size, before, 'the torn tail is cut from the file');
  assert.equal((await append(again, 108, before, needleBytes('after', randomBytes(50)))).status, 201);
  await again.stop();
});
