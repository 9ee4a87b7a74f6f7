// A dead volume server is noticed by its link's health checks, not only by the next write that
// would fail on it (issue 11): its members turn stale on their own within seconds, every write
// goes to a healthy group from the start, and the server is repaired when it comes back.
// Real processes: a master with rf 2 over two volume servers. Also: a slow upload in a group holds
// none of the small writes placed after it (uploads of 1 MiB and more go to stream volumes).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { startCluster } from './helpers/cluster.js';
import { sleep, stopAll } from './helpers/master_process.js';
import { stopAllVolumeServers } from './helpers/volume_server_process.js';

after(async () => {
  await stopAll();
  await stopAllVolumeServers();
});

test('a killed server turns its members stale without a write; writes go elsewhere; it is repaired on return', { timeout: 90_000 }, async () => {
  const c = await startCluster({ servers: 2, rf: 2 });
  try {
    await c.waitHealthy();
    await c.killServer(0);
    const dead = c.urls[0]!;
    let state = 'healthy';
    for (let i = 0; i < 150 && state === 'healthy'; i++) {
      const rows = await c.groups();
      state = rows.flatMap((g) => g.members).find((m) => m.server === dead)?.state ?? 'missing';
      if (state === 'healthy') await sleep(100);
    }
    assert.notEqual(state, 'healthy', `${dead} is still healthy 15 s after its kill, with no write`);
    // Every write lands in the other group: none of them meets the dead server.
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${c.base}/v1/blobs/h-${i}`, { method: 'PUT', body: randomBytes(50_000) });
      assert.equal(res.status, 201, await res.text());
    }
    const status = await (await fetch(`${c.base}/v1/status`)).json() as { status: string };
    assert.equal(status.status, 'degraded');
    await c.restartServer(0);
    await c.waitHealthy();
    await c.checkMemberFiles();
  } finally {
    await c.stop();
  }
});

test('a stalled upload holds none of the small writes after it: they answer while it waits', { timeout: 90_000 }, async () => {
  const c = await startCluster({ servers: 1, rf: 2 });
  try {
    await c.waitHealthy();
    const size = 8 * 1024 * 1024;
    const url = new URL(`${c.base}/v1/blobs/slow`);
    // One group (one server): everything goes through the same group writer and link.
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', headers: { 'content-length': String(size) } });
    const answered = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    const body = randomBytes(size);
    req.write(body.subarray(0, 2 * 1024 * 1024));
    await sleep(300); // the upload is under way and stalls here
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${c.base}/v1/blobs/small-${i}`, { method: 'PUT', body: randomBytes(1000), signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 201, `small write ${i} behind the stalled upload: ${await res.text()}`);
    }
    req.end(body.subarray(2 * 1024 * 1024));
    assert.equal(await answered, 201);
    const got = Buffer.from(await (await fetch(`${c.base}/v1/blobs/slow`)).arrayBuffer());
    assert.ok(got.equals(body), 'the upload reads back whole');
    await c.waitHealthy();
    await c.checkMemberFiles();
  } finally {
    await c.stop();
  }
});
