// A dead volume server is noticed by its link's health checks, not only by the next write that
// would fail on it (issue 11): its members turn stale on their own within seconds, every write
// goes to a healthy group from the start, and the server is repaired when it comes back.
// Real processes: a master with rf 2 over two volume servers.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
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
