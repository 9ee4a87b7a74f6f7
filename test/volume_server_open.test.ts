// The volume server's open-ended needle (docs/volume-server.md, PUT .../open, POST
// .../open/seal, POST .../open/abort) as a black box: a real `node cmd/volume-server.js`, spoken
// to with node:http (chunked bodies, as the master's link sends them) and fetch. Covers a
// chunked value sealed into a needle equal to the one a master writes, the tail held while it is
// open (409), a seal whose trailer or header is wrong refused and cut back, an abort that leaves
// the master's bytes (value kept, tail past the whole region), a body cut mid-way cut back, and
// a needle read back checked after its seal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { crc32 } from '../src/storage/checksum.js';
import { alignUp, encodeNeedleHeader, encodeTrailer, needleLength } from '../src/storage/volume_format.js';
import { sleep, within } from './helpers/master_process.js';
import { callVolumeServer, needleBytes, startVolumeServer, stopAllVolumeServers, volumeLength, type VolumeAnswer, type VolumeServer } from './helpers/volume_server_process.js';

const T = { timeout: 60_000 };
const CREATED = 1_700_000_000_000;
let a: VolumeServer;

before(async () => {
  a = await startVolumeServer();
});
after(stopAllVolumeServers);

type Answer = VolumeAnswer;
const call = (method: string, target: string, body?: Buffer): Promise<Answer> => callVolumeServer(a.base, method, target, body);

async function create(id: number): Promise<void> {
  const r = await call('POST', `/v1/volumes/${id}?epoch=1&created=${CREATED}`);
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

const lengthOf = (id: number): Promise<number> => volumeLength(a.base, id);

/** PUT .../open with a chunked body (no Content-Length), in parts of `part` bytes. */
function putOpen(id: number, offset: number, key: string, value: Buffer, part = 256 * 1024, meta = 0): Promise<Answer> {
  const target = `/v1/volumes/${id}/open?offset=${offset}&epoch=1&key_length=${Buffer.byteLength(key)}&meta_length=${meta}`;
  return within(
    new Promise<Answer>((resolve, reject) => {
      const req = http.request(a.base + target, { method: 'PUT' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
      });
      req.on('error', reject);
      for (let at = 0; at < value.length; at += part) req.write(value.subarray(at, at + part));
      req.end();
    }),
    30_000,
    'PUT open',
  );
}

/** The seal's body a master sends: header + key, then metadata + trailer. */
function sealBytes(key: string, value: Buffer, meta = Buffer.alloc(0)): Buffer {
  const head = Buffer.from(encodeNeedleHeader(Buffer.from(key), value.length, 0, 0, meta.length));
  const trailer = encodeTrailer(crc32(meta, crc32(value, crc32(head))));
  return Buffer.concat([head, meta, trailer]);
}

function fileBytes(id: number): Buffer {
  return fs.readFileSync(a.volumePath(id));
}

test('a chunked value sealed is the needle a master writes, and reads back checked', T, async () => {
  await create(300);
  const value = randomBytes(3 * 1024 * 1024 + 5);
  const meta = Buffer.from('{"type":"application/octet-stream"}');
  const opened = await putOpen(300, 64, 'blob-a', value, 200_000, meta.length);
  assert.equal(opened.status, 202, JSON.stringify(opened.body));
  assert.deepEqual(opened.body, { written: value.length, crc32: crc32(value) >>> 0 });
  assert.equal(await lengthOf(300), 64, 'the tail moves only at the seal');
  const sealed = await call('POST', '/v1/volumes/300/open/seal?offset=64&epoch=1&sync=1', sealBytes('blob-a', value, meta));
  assert.equal(sealed.status, 201, JSON.stringify(sealed.body));
  const length = needleLength(6, value.length, meta.length);
  assert.deepEqual(sealed.body, { length: alignUp(64 + length) });
  const head = sealBytes('blob-a', value, meta).subarray(0, 32 + 6);
  const whole = Buffer.concat([head, value, sealBytes('blob-a', value, meta).subarray(38)]);
  assert.ok(fileBytes(300).subarray(64, 64 + length).equals(whole), 'the file holds the whole needle');
  const read = await fetch(`${a.base}/v1/volumes/300/needles/64?length=${length}`, { signal: AbortSignal.timeout(20_000) });
  assert.equal(read.status, 200);
  assert.ok(Buffer.from(await read.arrayBuffer()).equals(whole));
  // The next needle goes at the new tail.
  const next = await call('PUT', `/v1/volumes/300/needles?offset=${alignUp(64 + length)}&epoch=1`, needleBytes('after', randomBytes(100)));
  assert.equal(next.status, 201, JSON.stringify(next.body));
});

test('an open needle holds the tail: appends, a second open and truncate are 409 until it is sealed', T, async () => {
  await create(301);
  const value = randomBytes(1000);
  assert.equal((await putOpen(301, 64, 'k', value)).status, 202);
  const append = await call('PUT', '/v1/volumes/301/needles?offset=64&epoch=1', needleBytes('x', randomBytes(10)));
  assert.equal(append.status, 409);
  assert.equal(append.body['code'], 'CONFLICT');
  assert.equal(append.body['length'], 64);
  assert.equal((await putOpen(301, 64, 'k2', value)).status, 409);
  assert.equal((await call('POST', '/v1/volumes/301/truncate?length=64&epoch=1')).status, 409);
  // A seal at another offset finds nothing to seal.
  assert.equal((await call('POST', '/v1/volumes/301/open/seal?offset=72&epoch=1', sealBytes('k', value))).status, 409);
  const sealed = await call('POST', '/v1/volumes/301/open/seal?offset=64&epoch=1&sync=1', sealBytes('k', value));
  assert.equal(sealed.status, 201, JSON.stringify(sealed.body));
  assert.equal(await lengthOf(301), alignUp(64 + needleLength(1, 1000)));
});

test('a seal with a wrong trailer or a header of another length is 400 CHECKSUM_MISMATCH, cut back', T, async () => {
  await create(302);
  const value = randomBytes(5000);
  assert.equal((await putOpen(302, 64, 'key', value)).status, 202);
  const bad = sealBytes('key', value);
  bad[bad.length - 1] = bad[bad.length - 1]! ^ 0x01;
  const refused = await call('POST', '/v1/volumes/302/open/seal?offset=64&epoch=1', bad);
  assert.equal(refused.status, 400);
  assert.equal(refused.body['code'], 'CHECKSUM_MISMATCH');
  assert.equal(await lengthOf(302), 64);
  assert.equal(fs.statSync(a.volumePath(302)).size, 64, 'the value bytes are cut back');
  // Again, with a header declaring one byte less than came.
  assert.equal((await putOpen(302, 64, 'key', value)).status, 202);
  const short = sealBytes('key', value.subarray(1));
  const refused2 = await call('POST', '/v1/volumes/302/open/seal?offset=64&epoch=1', short);
  assert.equal(refused2.status, 400);
  assert.equal(await lengthOf(302), 64);
  // The volume takes the next needle at 64.
  assert.equal((await call('PUT', '/v1/volumes/302/needles?offset=64&epoch=1', needleBytes('ok', randomBytes(10)))).status, 201);
});

test('abort keeps the value bytes and moves the tail where the master moved its own', T, async () => {
  await create(303);
  const value = randomBytes(70_001);
  assert.equal((await putOpen(303, 64, 'gone', value)).status, 202);
  const tail = alignUp(64 + needleLength(4, value.length));
  const wrong = await call('POST', `/v1/volumes/303/open/abort?offset=64&epoch=1&tail=${tail + 8}`);
  assert.equal(wrong.status, 409, 'a tail the bytes do not make');
  assert.equal(await lengthOf(303), 64, 'refused: cut back');
  assert.equal((await putOpen(303, 64, 'gone', value)).status, 202);
  const aborted = await call('POST', `/v1/volumes/303/open/abort?offset=64&epoch=1&tail=${tail}`);
  assert.equal(aborted.status, 200, JSON.stringify(aborted.body));
  assert.deepEqual(aborted.body, { length: tail });
  assert.equal(await lengthOf(303), tail);
  const file = fileBytes(303);
  assert.equal(file.length, 64 + 32 + 4 + value.length, 'the file ends where the master\'s does (after the value)');
  assert.ok(file.subarray(64, 64 + 36).equals(Buffer.alloc(36)), 'no header: the region holds no needle magic');
  assert.ok(file.subarray(100).equals(value));
  assert.equal((await call('PUT', `/v1/volumes/303/needles?offset=${tail}&epoch=1`, needleBytes('next', randomBytes(10)))).status, 201);
});

test('a body cut mid-way cuts the volume back; a stale epoch is refused', T, async () => {
  await create(304);
  const req = http.request(`${a.base}/v1/volumes/304/open?offset=64&epoch=1&key_length=3&meta_length=0`, { method: 'PUT' });
  req.on('error', () => undefined);
  req.write(randomBytes(2 * 1024 * 1024));
  const deadline = Date.now() + 15_000;
  while (fs.statSync(a.volumePath(304)).size < 1024 * 1024 && Date.now() < deadline) await sleep(20);
  assert.ok(fs.statSync(a.volumePath(304)).size > 64, 'part of the value reached the file');
  req.destroy();
  while ((await lengthOf(304)) !== 64 || fs.statSync(a.volumePath(304)).size !== 64) {
    assert.ok(Date.now() < deadline, 'the cut body is cut back');
    await sleep(50);
  }
  // Free again: a new open needle at 64 is taken.
  assert.equal((await putOpen(304, 64, 'abc', randomBytes(10))).status, 202);
  await call('POST', '/v1/epoch?epoch=5');
  const stale = await call('POST', '/v1/volumes/304/open/seal?offset=64&epoch=1', sealBytes('abc', randomBytes(10)));
  assert.equal(stale.status, 409);
  assert.equal(stale.body['code'], 'STALE_EPOCH');
  const missing = await call('PUT', '/v1/volumes/304/open?offset=64&epoch=5');
  assert.equal(missing.status, 400, 'key_length and meta_length are required');
});
