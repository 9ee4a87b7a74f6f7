// Scrub: a byte flipped in a needle is found. On a single copy it is reported (the summary, with
// its key) and a GET of the key errors, never serving the bad bytes; in a replicated group (a
// master with volume servers) it is rewritten from a good member: SCRUB WAIT answers repaired 1,
// the key reads back byte for byte, and a second scrub finds nothing referenced left to mend.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { open } from '../src/wiring/open.js';
import { StoreError } from '../src/runtime/errors.js';
import { startCluster } from './helpers/cluster.js';
import { stopAllVolumeServers } from './helpers/volume_server_process.js';

// The cluster's volume servers' data dirs are removed here (Cluster.stop() stops them only).
after(stopAllVolumeServers);

const MARK = 0x41;

/** Flips one byte in the middle of the first run of MARK bytes of a volume file; false when none. */
function flipInValue(path: string, runLength: number): boolean {
  const fd = openSync(path, 'r+');
  try {
    const buf = Buffer.alloc(8 * 1024 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const at = buf.subarray(0, n).indexOf(Buffer.alloc(64, MARK));
    if (at < 0) return false;
    writeSync(fd, Buffer.from([MARK ^ 0xff]), 0, 1, at + Math.floor(runLength / 2));
    return true;
  } finally {
    closeSync(fd);
  }
}

function flatMap(reply: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) m.set(String(reply[i]), reply[i + 1]);
  return m;
}

test('a single copy: the scrub reports the damaged needle with its key; GET errors; the rest is served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-scrub-'));
  try {
    let db = await open(dir, { autoVacuumEveryMs: 0, autoScrubEveryMs: 0 });
    await db.set('victim', Buffer.alloc(10_000, MARK));
    for (let i = 0; i < 20; i++) await db.set(`other:${i}`, `value ${i}`);
    const clean = await db.scrub();
    assert.equal(clean.summary?.invalid, 0);
    assert.equal(clean.summary?.needles, 21);
    await db.close();
    assert.ok(flipInValue(join(dir, 'volumes', 'vol-000000.data'), 10_000));

    db = await open(dir, { autoVacuumEveryMs: 0, autoScrubEveryMs: 0 });
    const { started, summary } = await db.scrub();
    assert.equal(started, true);
    assert.equal(summary?.invalid, 1);
    assert.equal(summary?.damaged, 1, 'no good copy: reported');
    assert.equal(summary?.repaired, 0);
    assert.equal(Buffer.from(summary!.damagedNeedles[0]!.key).toString(), 'victim');
    assert.deepEqual((await db.lastScrub())?.damaged, 1, 'the last summary is kept');
    await assert.rejects(db.get('victim'), (err: unknown) => err instanceof StoreError && /CHECKSUM|CORRUPT/.test(err.code));
    assert.equal((await db.get('other:7'))?.toString(), 'value 7');
    // Written again, the key is whole: the next scrub reports the old bytes as unreferenced only.
    await db.set('victim', 'fresh');
    const after = await db.scrub();
    assert.equal(after.summary?.damaged, 0);
    assert.equal(after.summary?.unreferenced, 1);
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a replicated group: a byte flipped in the master\'s copy is repaired from a member by SCRUB WAIT', { timeout: 120_000 }, async () => {
  const c = await startCluster({ servers: 2, rf: 2, masterArgs: ['--scrub-every', '0', '--vacuum-every', '0'] });
  const redis = new Redis({ port: c.master.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await c.waitHealthy();
    await redis.connect();
    const victim = Buffer.alloc(200_000, MARK);
    await redis.set('victim', victim);
    for (let i = 0; i < 10; i++) await redis.set(`other:${i}`, `value ${i}`);
    // The master's local member of the group: the volume file that holds the victim.
    const volumes = join(c.master.dataDir, 'volumes');
    const flipped = readdirSync(volumes).some((f) => flipInValue(join(volumes, f), victim.length));
    assert.ok(flipped, 'the victim was found on the master\'s drive');
    assert.equal(await redis.call('SCRUB'), 'Background scrub started');
    const reply = flatMap((await redis.call('SCRUB', 'WAIT')) as unknown[]);
    assert.equal(reply.get('repaired'), 1, `repaired from a member: ${JSON.stringify([...reply])}`);
    assert.equal(reply.get('damaged'), 0);
    const back = await redis.getBuffer('victim');
    assert.ok(back !== null && back.equals(victim), 'the key reads back byte for byte');
    const status = (await (await fetch(`${c.base}/v1/status`)).json()) as { scrub: { repaired: number; damaged: number } };
    assert.equal(status.scrub.repaired, 1);
    const metrics = await (await fetch(`${c.base}/metrics`)).text();
    assert.match(metrics, /^brisedb_needles_damaged 0$/m);
    // Nothing referenced is damaged any more; the old bytes are garbage.
    const again = flatMap((await redis.call('SCRUB', 'WAIT')) as unknown[]);
    assert.equal(again.get('repaired'), 0);
    assert.equal(again.get('damaged'), 0);
  } finally {
    redis.disconnect();
    await c.stop();
  }
});

test('damage the scan cannot see as a bad needle: a file cut short; the keys it held are reported, the rest served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brise-scrub-cut-'));
  try {
    let db = await open(dir, { autoVacuumEveryMs: 0, autoScrubEveryMs: 0 });
    for (let i = 0; i < 10; i++) await db.set(`k${i}`, Buffer.alloc(5000, 0x30 + i));
    await db.close();
    // Cut the volume in the middle of the 8th value: k7, k8, k9 are gone from the file.
    const path = join(dir, 'volumes', 'vol-000000.data');
    const size = statSync(path).size;
    truncateSync(path, size - Math.floor(2.5 * 5048));
    db = await open(dir, { autoVacuumEveryMs: 0, autoScrubEveryMs: 0 });
    const { summary } = await db.scrub();
    const damaged = summary!.damagedNeedles.map((d) => Buffer.from(d.key).toString()).sort();
    assert.deepEqual(damaged, ['k7', 'k8', 'k9'], 'every key pointing past the end is reported');
    assert.equal(summary!.damaged, 3);
    await assert.rejects(db.get('k8'));
    assert.ok((await db.get('k3'))!.equals(Buffer.alloc(5000, 0x33)));
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
