// Chunked (open-ended) uploads to a replicated cluster (issue 11): a master with rf 2 over two
// real volume servers (test/helpers/cluster.ts). A PUT without Content-Length over 3 MiB goes to
// a stream volume as an open needle, and its value is teed to the group's members as it comes
// (docs/volume-server.md, PUT .../open, then seal or abort), not copied after it ends.
// Owns: the cluster it starts (stopped by PID in `finally`, and by stopAll in `after`).
// Invariants checked: every 201 reads back byte for byte (SHA-256); the members' files grow
// while the body is still coming; an upload the client cuts leaves the member files equal to the
// master's with no repair needed; after all members are healthy every member file equals the
// master's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { hasProgram, patternChunks, sha256Of, sleep, stopAll, streamRequest, within } from './helpers/master_process.js';
import { stopAllVolumeServers } from './helpers/volume_server_process.js';
import { readAllAcked, startCluster, type Acked, type Cluster } from './helpers/cluster.js';

const MB = 1024 * 1024;

after(async () => {
  await stopAll();
  await stopAllVolumeServers();
});

/** curl reading the body from a pipe (-T -), chunked: it cannot know the length. */
function curlChunked(url: string, seed: number, size: number): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const child = spawn('curl', ['-sS', '-m', '90', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Transfer-Encoding: chunked', '-T', '-', url], { stdio: ['pipe', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
      child.once('error', reject);
      child.once('close', () => resolve(out.trim()));
      child.stdin.on('error', () => undefined); // curl gone early: its status says why
      void (async () => {
        for await (const chunk of patternChunks(seed, size)) {
          if (!child.stdin.write(chunk)) await once(child.stdin, 'drain');
        }
        child.stdin.end();
      })();
    }),
    120_000,
    `curl -T - ${url}`,
  );
}

/** Bytes of every volume file of the servers (what the members hold). */
function memberBytes(c: Cluster): number {
  let total = 0;
  for (const s of c.servers) {
    const dir = path.join(s.dataDir, 'volumes');
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir)) total += fs.statSync(path.join(dir, name)).size;
  }
  return total;
}

/**
 * Small sized PUTs, so every group's current volume holds a needle: a volume of only its
 * superblock is created on a member at its first region, and checkMemberFiles wants each file.
 */
async function fillGroups(c: Cluster, acked: Acked): Promise<void> {
  for (let i = 0; i < 8; i++) {
    const body = Buffer.from(`small blob ${i}`.repeat(50));
    const res = await fetch(`${c.base}/v1/blobs/small/${i}`, { method: 'PUT', body, signal: AbortSignal.timeout(20_000) });
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    acked.set(`small/${i}`, { sha256: await sha256Of((async function* () { yield body; })()), size: body.length });
  }
}

async function repairsOf(c: Cluster): Promise<number> {
  return (await c.groups()).flatMap((g) => g.members).reduce((n, m) => n + m.repairs, 0);
}

test('chunked PUTs of 5 MB (curl from a pipe) and 40 MB (node:http) are teed: 201, every byte back, members equal', { timeout: 240_000 }, async () => {
  const c = await startCluster({ servers: 2, rf: 2 });
  try {
    await c.waitHealthy();
    const acked: Acked = new Map();
    await fillGroups(c, acked);
    if (hasProgram('curl')) {
      const status = await curlChunked(`${c.base}/v1/blobs/chunked/curl-5mb`, 51, 5 * MB);
      assert.equal(status, '201', 'curl chunked PUT of 5 MB');
      acked.set('chunked/curl-5mb', { sha256: await sha256Of(patternChunks(51, 5 * MB)), size: 5 * MB });
    }
    const big = 40 * MB + 12345;
    const put = await streamRequest({ method: 'PUT', port: c.master.httpPort, path: '/v1/blobs/chunked/node-40mb', body: patternChunks(52, big), ms: 180_000 });
    assert.equal(put.status, 201, 'node:http chunked PUT of 40 MB');
    acked.set('chunked/node-40mb', { sha256: await sha256Of(patternChunks(52, big)), size: big });
    await readAllAcked(c, acked);
    await c.waitHealthy();
    const checks = await c.checkMemberFiles();
    assert.ok(checks.some((f) => f.masterBytes > 40 * MB), `a member holds the 40 MB needle's volume: ${JSON.stringify(checks)}`);
    assert.equal(await repairsOf(c), 0, 'the members took every byte as it came: no repair copied any');
  } finally {
    await c.stop();
  }
});

test('a chunked PUT reaches the members while its body is still coming (a tee, not a copy after)', { timeout: 180_000 }, async () => {
  const c = await startCluster({ servers: 2, rf: 2 });
  try {
    await c.waitHealthy();
    await fillGroups(c, new Map());
    const before = memberBytes(c);
    const req = http.request({ host: '127.0.0.1', port: c.master.httpPort, path: '/v1/blobs/chunked/slow', method: 'PUT', agent: false });
    const answered = new Promise<number>((resolve, reject) => {
      req.once('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.once('error', reject);
    });
    let sent = 0;
    for await (const chunk of patternChunks(53, 12 * MB)) {
      if (!req.write(chunk)) await once(req, 'drain');
      sent += chunk.length;
      if (sent >= 8 * MB) break;
    }
    // The body is open (8 of 12 MB sent): the members must hold most of it already.
    const deadline = Date.now() + 20_000;
    while (memberBytes(c) - before < 6 * MB && Date.now() < deadline) await sleep(50);
    const grown = memberBytes(c) - before;
    assert.ok(grown >= 6 * MB, `the members hold ${grown} new bytes while the body is open`);
    // The rest of the body, from where it stopped.
    const rest = Buffer.concat(await collect(patternChunks(53, 12 * MB))).subarray(sent);
    req.end(rest);
    assert.equal(await within(answered, 60_000, 'the slow PUT'), 201);
    await readAllAcked(c, new Map([['chunked/slow', { sha256: await sha256Of(patternChunks(53, 12 * MB)), size: 12 * MB }]]));
    await c.waitHealthy();
    await c.checkMemberFiles();
  } finally {
    await c.stop();
  }
});

test('a chunked PUT the client cuts mid-body: members equal the master\'s with no repair; the next PUTs land', { timeout: 180_000 }, async () => {
  const c = await startCluster({ servers: 2, rf: 2 });
  try {
    await c.waitHealthy();
    await fillGroups(c, new Map());
    const req = http.request({ host: '127.0.0.1', port: c.master.httpPort, path: '/v1/blobs/chunked/cut', method: 'PUT', agent: false });
    req.on('error', () => undefined);
    let sent = 0;
    for await (const chunk of patternChunks(54, 6 * MB)) {
      if (!req.write(chunk)) await once(req, 'drain');
      sent += chunk.length;
    }
    // Let the master take (and tee) what was sent, then cut the connection mid-body.
    const before = memberBytes(c);
    const deadline = Date.now() + 20_000;
    while (memberBytes(c) - before < 4 * MB && memberBytes(c) < sent && Date.now() < deadline) await sleep(50);
    req.destroy();
    await sleep(1000);
    const missing = await fetch(`${c.base}/v1/blobs/chunked/cut`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(missing.status, 404, 'the cut upload is not stored');
    await missing.arrayBuffer();
    // The members took the abort as the master did: equal files, healthy, nothing repaired.
    await c.waitHealthy();
    await c.checkMemberFiles();
    assert.equal(await repairsOf(c), 0, 'no repair was needed after the cut');
    // The stream volume takes the next open needle at the tail the abort left.
    const acked: Acked = new Map();
    for (const [i, size] of [5 * MB, 4 * MB].entries()) {
      const put = await streamRequest({ method: 'PUT', port: c.master.httpPort, path: `/v1/blobs/chunked/after-${i}`, body: patternChunks(60 + i, size), ms: 90_000 });
      assert.equal(put.status, 201);
      acked.set(`chunked/after-${i}`, { sha256: await sha256Of(patternChunks(60 + i, size)), size });
    }
    await readAllAcked(c, acked);
    await c.waitHealthy();
    await c.checkMemberFiles();
    assert.equal(await repairsOf(c), 0);
  } finally {
    await c.stop();
  }
});

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}
