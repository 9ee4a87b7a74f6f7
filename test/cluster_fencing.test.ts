// Fencing (issue 11, docs/volume-server.md "Fencing"): every write a master sends a volume server
// carries its epoch, raised at each start above any epoch its servers have seen; a server
// refuses writes from an older epoch. So when a second master takes over the servers (here: a
// copy of the first one's data dir, as a promoted replica would be), the first can no longer
// write there: its writes fail clearly instead of landing over its successor's. Real processes,
// a shared secret.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { startMaster, stopAll, tempDir, within, sleep, type MasterProcess } from './helpers/master_process.js';
import { startVolumeServer, stopAllVolumeServers } from './helpers/volume_server_process.js';

const SECRET = 'fencing-test-secret';

after(async () => {
  await stopAll();
  await stopAllVolumeServers();
});

type GroupRow = [number, string, number, [string, string, number, number, string | null][]];

async function groups(m: MasterProcess): Promise<GroupRow[]> {
  const r = new Redis({ port: m.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    return (await r.call('VOLINFO', 'GROUPS')) as GroupRow[];
  } finally {
    r.disconnect();
  }
}

/** Until every member of every group is healthy (bounded). */
async function healthy(m: MasterProcess, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const rows = await groups(m);
    if (rows.every((g) => g[3].every((mem) => mem[1] === 'healthy'))) return;
    if (Date.now() > deadline) throw new Error(`members not healthy: ${JSON.stringify(rows)}`);
    await sleep(100);
  }
}

function put(m: MasterProcess, key: string, body: Buffer): Promise<Response> {
  return fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/${key}`, { method: 'PUT', body, signal: AbortSignal.timeout(20_000) });
}

test('a master whose servers were taken over by a later master cannot write there', { timeout: 90_000 }, async () => {
  const vs = await startVolumeServer({ secret: SECRET });
  const args = ['--volume-servers', vs.base, '--replication-factor', '2', '--volume-secret', SECRET];
  const dirA = path.join(tempDir('brise-fence-'), 'a');
  let a = await startMaster({ http: true, dataDir: dirA, args });
  await within(healthy(a), 20_000, 'master A healthy');
  const first = randomBytes(100_000);
  assert.equal((await put(a, 'first', first)).status, 201);
  await a.stop();
  // The successor's data: a copy of A's dir (a promoted replica would hold the same).
  const dirB = path.join(tempDir('brise-fence-'), 'b');
  fs.cpSync(dirA, dirB, { recursive: true });
  fs.rmSync(path.join(dirB, 'LOCK'), { force: true });
  // The registry names drives by absolute path (a moved data dir is a new drive): say where it is now.
  const registry = path.join(dirB, 'vol-registry.json');
  fs.writeFileSync(registry, fs.readFileSync(registry, 'utf8').split(JSON.stringify(dirA).slice(1, -1)).join(JSON.stringify(dirB).slice(1, -1)));
  a = await startMaster({ http: true, dataDir: dirA, args });
  await within(healthy(a), 20_000, 'master A healthy again');
  const epochA = Number(fs.readFileSync(path.join(dirA, 'epoch'), 'utf8'));

  const b = await startMaster({ http: true, dataDir: dirB, args });
  await within(healthy(b), 20_000, 'master B healthy');
  const epochB = Number(fs.readFileSync(path.join(dirB, 'epoch'), 'utf8'));
  assert.ok(epochB > epochA, `B's epoch ${epochB} is above A's ${epochA} (learned from the server)`);

  // B writes and reads; A's writes are refused by the server and fail clearly.
  const second = randomBytes(50_000);
  assert.equal((await put(b, 'second', second)).status, 201);
  const refused = await put(a, 'late', randomBytes(10_000));
  assert.equal(refused.status, 503, await refused.text());
  const rows = await groups(a);
  assert.ok(rows.some((g) => g[3].some((mem) => mem[1] !== 'healthy' && /epoch/i.test(mem[4] ?? ''))), JSON.stringify(rows));
  // What B acknowledged is on the server as B wrote it, and reads back through B.
  const got = Buffer.from(await (await fetch(`http://127.0.0.1:${b.httpPort}/v1/blobs/second`)).arrayBuffer());
  assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(second).digest('hex'));
  const old = Buffer.from(await (await fetch(`http://127.0.0.1:${b.httpPort}/v1/blobs/first`)).arrayBuffer());
  assert.ok(old.equals(first));
  // The shared secret never reaches a log line (the config is logged at start).
  for (const m of [a, b]) assert.ok(!m.stderr().includes(SECRET), 'the volume secret is in the master log');
});
