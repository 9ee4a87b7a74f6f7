// Hedged reads (issue 11, src/db/group_reader.ts): when a read must go to the remote members of
// a group (its local copy is damaged) and the member asked first is slow, a second member is
// asked once the first has taken longer than its usual time, and the first checked answer wins.
// Real processes: a master with rf 3 over two volume servers (one group: the local drive and
// both servers); the first server sits behind a fault proxy that delays everything it carries.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { startCluster, type Cluster } from './helpers/cluster.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault_proxy.js';
import { stopAll } from './helpers/master_process.js';
import { stopAllVolumeServers } from './helpers/volume_server_process.js';

after(async () => {
  await stopAll();
  await stopAllVolumeServers();
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The value of metric `name` (summed over its series) in a /metrics text. */
function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Flips a byte of `value` where it sits in the master's local volume file. */
function damageLocal(c: Cluster, value: Buffer): void {
  const dir = `${c.master.dataDir}/volumes`;
  const probe = value.subarray(1000, 1064);
  for (const name of fs.readdirSync(dir)) {
    const file = `${dir}/${name}`;
    const bytes = fs.readFileSync(file);
    const at = bytes.indexOf(probe);
    if (at < 0) continue;
    const fd = fs.openSync(file, 'r+');
    try {
      fs.writeSync(fd, Buffer.from([bytes[at]! ^ 0xff]), 0, 1, at);
    } finally {
      fs.closeSync(fd);
    }
    return;
  }
  throw new Error('value not found in the master\'s volume files');
}

test('a read that goes remote asks the second member when the first is slow, and gets correct bytes', { timeout: 120_000 }, async () => {
  let proxy: FaultProxy | undefined;
  const c = await startCluster({
    servers: 2,
    rf: 3,
    urlOf: async (front, i) => {
      if (i !== 0) return `http://${front.host}:${front.port}`;
      proxy = await startFaultProxy({ target: front });
      return `http://${proxy.address}`;
    },
  });
  try {
    await c.waitHealthy();
    const values = [randomBytes(200_000), randomBytes(3_000_000)];
    for (const [i, v] of values.entries()) {
      const res = await fetch(`${c.base}/v1/blobs/hedge-${i}`, { method: 'PUT', body: v });
      assert.equal(res.status, 201, await res.text());
    }
    for (const v of values) damageLocal(c, v);
    // The first server now answers everything 3 s late (a stalled disk, a congested link).
    proxy!.set({ kind: 'delay', ms: 3_000 });
    const before = metric(await (await fetch(`${c.base}/metrics`)).text(), 'brisedb_reads_hedged_total');
    for (const [i, v] of values.entries()) {
      // The first GET of a damaged needle may be cut (its local copy fails after bytes left);
      // the needle is then read remotely.
      for (let attempt = 0; ; attempt++) {
        const res = await fetch(`${c.base}/v1/blobs/hedge-${i}`).catch(() => null);
        const body = res === null ? null : await res.arrayBuffer().then((b) => Buffer.from(b)).catch(() => null);
        if (res !== null && res.status === 200 && body !== null && body.length === v.length) {
          assert.equal(sha(body), sha(v), 'the bytes of the member that answered first are the right ones');
          break;
        }
        assert.ok(attempt < 3, `GET hedge-${i}: ${res?.status} after ${attempt + 1} attempts`);
      }
    }
    const hedged = metric(await (await fetch(`${c.base}/metrics`)).text(), 'brisedb_reads_hedged_total') - before;
    assert.ok(hedged >= 1, `reads hedged: ${hedged}`);
    const failedOver = metric(await (await fetch(`${c.base}/metrics`)).text(), 'brisedb_reads_failed_over_total');
    assert.ok(failedOver >= 2, `reads served by another member: ${failedOver}`);
  } finally {
    proxy?.set({ kind: 'none' });
    await c.stop();
    await proxy?.close();
  }
});
