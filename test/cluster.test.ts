// Black-box tests of replicated volume groups (issue 11) with real processes: a master
// (`node cmd/master.js --volume-servers ... --replication-factor 2`) and three volume servers
// (`node cmd/volume-server.js`) started here on free loopback ports (test/helpers/cluster.ts),
// real clients (curl, node:http, fetch, the TypeScript client), and kill -9 of a server mid-PUT
// and mid-GET and of the master mid-PUT, then restart and repair.
// Owns: the clusters it starts (stopped by PID in `finally`, and by stopAll in `after`), their
// temp dirs and files. Every wait is bounded; every test has its own timeout.
// Invariants checked: every acknowledged (201) blob reads back byte for byte (SHA-256); after
// all members are healthy, every member's volume file equals the master's local one; a client
// sees correct bytes, a cut body or a 5xx, never wrong bytes; a PUT cut by a crash is absent or
// whole.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Client } from '../src/client/client.js';
import {
  hasProgram, patternChunks, patternSlice, sha256Of, sleep, stopAll, streamRequest, tempDir, within,
} from './helpers/master_process.js';
import { stopAllVolumeServers } from './helpers/volume_server_process.js';
import { readAllAcked, startCluster, statusOf, type Acked, type Cluster } from './helpers/cluster.js';
import { groupOfVolume, parseVolumeFileName } from '../src/storage/volume_format.js';

const KB = 1024;
const MB = 1024 * 1024;

after(async () => {
  await stopAll();
  await stopAllVolumeServers();
});

// ---- helpers --------------------------------------------------------------------------------

const run = (cmd: string, args: string[], ms: number): Promise<{ code: number | null; stdout: Buffer; sha256: string }> =>
  within(
    new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
      const hash = createHash('sha256');
      const kept: Buffer[] = [];
      let keptBytes = 0;
      child.stdout.on('data', (d: Buffer) => {
        hash.update(d);
        // Keep only a small head: curl's -w line after a PUT; a 64 MB GET is hashed, not kept.
        if (keptBytes < 64 * KB) kept.push(d);
        keptBytes += d.length;
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout: Buffer.concat(kept), sha256: hash.digest('hex') }));
    }),
    ms,
    `${cmd} ${args.join(' ')}`,
  );

/** Writes `size` bytes of pattern `seed` to a file (streamed: a 64 MB file is never held). */
async function patternFile(dir: string, seed: number, size: number): Promise<string> {
  const file = path.join(dir, `p-${seed}-${size}.bin`);
  const fd = fs.openSync(file, 'w');
  try {
    for await (const c of patternChunks(seed, size)) fs.writeSync(fd, c);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

async function putStreamed(c: Cluster, key: string, seed: number, size: number, acked: Acked): Promise<void> {
  const r = await streamRequest({
    method: 'PUT', port: c.master.httpPort, path: `/v1/blobs/${key}`, headers: { 'content-length': String(size) },
    body: patternChunks(seed, size), keep: true, ms: 60_000,
  });
  assert.equal(r.status, 201, `PUT ${key}: ${r.body.toString()}`);
  acked.set(key, { sha256: await sha256Of(patternChunks(seed, size)), size });
}

/** Every group healthy in /v1/status, and /metrics saying so per member. */
async function checkStatusHealthy(c: Cluster, servers: number): Promise<void> {
  const status = await statusOf(c);
  assert.equal(status.status, 'ok', JSON.stringify(status.groups));
  const groups = status.groups as Array<{ id: number; writable: boolean; members: Array<{ server: string; state: string; lag_bytes: number }> }>;
  assert.equal(groups.length, servers, 'max(1 drive, 3 servers) groups');
  const seen = new Set<string>();
  for (const g of groups) {
    assert.equal(g.writable, true);
    assert.equal(g.members.length, 1, 'rf 2: the local drive and one server');
    for (const m of g.members) {
      assert.equal(m.state, 'healthy');
      assert.equal(m.lag_bytes, 0);
      seen.add(m.server);
    }
  }
  assert.deepEqual([...seen].sort(), [...c.urls].sort(), 'each server is a member of one group');
  const metrics = await (await fetch(`${c.base}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const healthy = metrics.split('\n').filter((l) => l.startsWith('brisedb_group_member_healthy{'));
  assert.equal(healthy.length, servers, metrics.slice(0, 2000));
  for (const l of healthy) assert.match(l, / 1$/);
}

/** Waits until all members are healthy, then compares their files and reads every acked blob. */
async function checkConverged(c: Cluster, acked: Acked, servers: number): Promise<void> {
  await c.waitHealthy();
  const files = await c.checkMemberFiles();
  const covered = new Set(files.map((f) => f.server));
  assert.equal(covered.size, servers, `member files compared on every server: ${JSON.stringify(files)}`);
  await readAllAcked(c, acked);
}

/** The volume file of the master and the offset where `signature` is (a needle's value bytes). */
function findInMasterVolumes(c: Cluster, signature: Buffer): { id: number; file: string; offset: number } {
  const dir = path.join(c.master.dataDir, 'volumes');
  for (const name of fs.readdirSync(dir)) {
    const id = parseVolumeFileName(name);
    if (id === null) continue;
    const file = path.join(dir, name);
    const at = fs.readFileSync(file).indexOf(signature);
    if (at >= 0) return { id, file, offset: at };
  }
  throw new Error('signature not found in any master volume');
}

function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** The index (into c.servers) of the member server of volume `id`'s group. */
async function serverOfVolume(c: Cluster, id: number): Promise<number> {
  const group = (await c.groups()).find((g) => g.group === groupOfVolume(id));
  assert.ok(group !== undefined && group.members.length === 1, `group of volume ${id}`);
  const i = c.urls.indexOf(group.members[0]!.server);
  assert.ok(i >= 0);
  return i;
}

/** The sizes of the master's local volume files now. */
function masterSizes(c: Cluster): Map<number, number> {
  const dir = path.join(c.master.dataDir, 'volumes');
  const out = new Map<number, number>();
  for (const name of fs.readdirSync(dir)) {
    const id = parseVolumeFileName(name);
    if (id !== null) out.set(id, fs.statSync(path.join(dir, name)).size);
  }
  return out;
}

/** The volume that grew since `before` (the one a PUT in flight writes), or null. */
function grownVolume(c: Cluster, before: Map<number, number>): number | null {
  for (const [id, size] of masterSizes(c)) if (size > (before.get(id) ?? 0)) return id;
  return null;
}

/**
 * A streamed body that stops after `pauseAt` bytes until `gate` opens: `paused` resolves when
 * it has stopped, so a test can kill a process while the PUT is in flight.
 */
function gatedBody(seed: number, size: number, pauseAt: number): { body: AsyncIterable<Buffer>; paused: Promise<void>; open(): void } {
  let open!: () => void;
  let reachedPause!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const paused = new Promise<void>((r) => (reachedPause = r));
  async function* body(): AsyncGenerator<Buffer> {
    let sent = 0;
    for await (const chunk of patternChunks(seed, size)) {
      if (sent >= pauseAt && sent - chunk.length < pauseAt) {
        reachedPause();
        await gate;
      }
      yield chunk;
      sent += chunk.length;
    }
  }
  return { body: body(), paused, open };
}

interface PutOutcome {
  status: number | 'error';
  detail: string;
}

function startPut(c: Cluster, key: string, size: number, body: AsyncIterable<Buffer>): Promise<PutOutcome> {
  return streamRequest({
    method: 'PUT', port: c.master.httpPort, path: `/v1/blobs/${key}`, headers: { 'content-length': String(size) }, body, keep: true, ms: 60_000,
  }).then(
    (r): PutOutcome => ({ status: r.status, detail: r.body.toString().slice(0, 300) }),
    (e: Error): PutOutcome => ({ status: 'error', detail: e.message }),
  );
}

// ---- 1. sizes and clients ------------------------------------------------------------------

test('rf 2 over three volume servers: 1 KB to 64 MB by curl, node:http, fetch and the client; every byte back; members equal the master', { timeout: 120_000, skip: !hasProgram('curl') && 'curl is not installed' }, async () => {
  const c = await startCluster({ servers: 3, rf: 2 });
  const client = await Client.dial(`127.0.0.1:${c.master.port}`, { connectTimeoutMs: 5000, commandTimeoutMs: 30_000 });
  try {
    await c.waitHealthy();
    await checkStatusHealthy(c, 3);
    const acked: Acked = new Map();
    const dir = tempDir('brisedb-cluster-');
    const sizes = [KB, 100 * KB, MB, 8 * MB, 64 * MB];
    for (const [n, size] of sizes.entries()) {
      // curl streams the file (-T), as the README tells users to.
      const file = await patternFile(dir, 100 + n, size);
      const up = await run('curl', ['-sS', '-m', '60', '-o', '/dev/null', '-w', '%{http_code}', '-T', file, `${c.base}/v1/blobs/curl/${size}`], 90_000);
      assert.equal(up.stdout.toString(), '201', `curl PUT ${size}`);
      acked.set(`curl/${size}`, { sha256: await sha256Of(patternChunks(100 + n, size)), size });
      fs.rmSync(file);
      await putStreamed(c, `http/${size}`, 200 + n, size, acked);
      if (size <= 8 * MB) {
        // The client library (RESP SET) and fetch, for the sizes a caller holds in memory.
        const value = patternSlice(300 + n, 0, size);
        await client.set(`client/${size}`, value);
        acked.set(`client/${size}`, { sha256: createHash('sha256').update(value).digest('hex'), size });
        const f = await fetch(`${c.base}/v1/blobs/fetch/${size}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(30_000) });
        assert.equal(f.status, 201);
        acked.set(`fetch/${size}`, { sha256: createHash('sha256').update(value).digest('hex'), size });
      }
    }
    // Read back by curl too (the 64 MB one hashed as it streams), then everything by node:http.
    for (const key of [`curl/${64 * MB}`, `http/${KB}`]) {
      const down = await run('curl', ['-sS', '-f', '-m', '60', `${c.base}/v1/blobs/${key}`], 90_000);
      assert.equal(down.code, 0);
      assert.equal(down.sha256, acked.get(key)!.sha256, `curl GET ${key}`);
    }
    const small = await client.get(`fetch/${MB}`);
    assert.equal(createHash('sha256').update(small ?? Buffer.alloc(0)).digest('hex'), acked.get(`fetch/${MB}`)!.sha256, 'client GET');
    await checkConverged(c, acked, 3);
    await checkStatusHealthy(c, 3);
  } finally {
    await client.close().catch(() => undefined);
    await c.stop();
  }
});

// ---- 2. kill -9 of a volume server mid-PUT and mid-GET -------------------------------------

test('kill -9 of a volume server mid-PUT: the upload is adopted by a healthy group (201), every 201 readable; restart, repair, members equal', { timeout: 90_000 }, async (t) => {
  const c = await startCluster({ servers: 3, rf: 2 });
  try {
    await c.waitHealthy();
    const acked: Acked = new Map();
    for (let i = 0; i < 6; i++) await putStreamed(c, `before/${i}`, 400 + i, 256 * KB + i, acked);

    const before = masterSizes(c);
    const size = 24 * MB;
    const gated = gatedBody(500, size, 8 * MB);
    const put = startPut(c, 'mid-put', size, gated.body);
    await within(gated.paused, 20_000, 'the PUT to send 8 MB');
    // The PUT's group is the one whose local volume grows; kill that group's server.
    let grown: number | null = null;
    for (let i = 0; i < 50 && grown === null; i++) {
      grown = grownVolume(c, before);
      if (grown === null) await sleep(50);
    }
    const victim = grown === null ? 0 : await serverOfVolume(c, grown);
    await c.killServer(victim);
    gated.open();
    const outcome = await put;
    t.diagnostic(`PUT in flight across the kill of server ${victim} (volume ${String(grown)}): ${JSON.stringify(outcome)}`);
    // Its group lost a member at the end of the upload: another group adopts the needle (copied
    // from the master's drive to a healthy group), so the upload is kept, not refused.
    assert.equal(outcome.status, 201, `PUT in flight: ${JSON.stringify(outcome)}`);
    acked.set('mid-put', { sha256: await sha256Of(patternChunks(500, size)), size });

    // With one server down, the other groups take writes, and what was acknowledged reads back.
    await putStreamed(c, 'while-down/1', 600, 2 * MB, acked);
    await readAllAcked(c, acked);

    await c.restartServer(victim);
    await checkConverged(c, acked, 3);
  } finally {
    await c.stop();
  }
});

test('kill -9 of the serving volume server mid-GET of a blob whose local copy is damaged: correct bytes or a cut, never wrong bytes', { timeout: 90_000 }, async (t) => {
  const c = await startCluster({ servers: 3, rf: 2 });
  try {
    await c.waitHealthy();
    const acked: Acked = new Map();
    for (let i = 0; i < 3; i++) await putStreamed(c, `other/${i}`, 700 + i, 64 * KB, acked);
    // Large remote pieces: a 4080-byte key makes the needle's head 4112 bytes, and the value size
    // leaves a first piece of 64 KiB (pieces are cut from the needle's end, 1 MiB each); the
    // test below covers short keys and small pieces.
    const key = `damaged-${'k'.repeat(4072)}`;
    const size = 15 * MB + 64 * KB;
    await putStreamed(c, key, 800, size, acked);
    const want = acked.get(key)!;

    // Flip one byte of the value in the master's local file: the read must go to the member.
    const at = 5 * MB + 17;
    const found = findInMasterVolumes(c, patternSlice(800, at, 64));
    flipByte(found.file, found.offset);
    const outcomes: string[] = [];
    let remoteServed = false;
    for (let i = 0; i < 5 && !remoteServed; i++) {
      const r = await getOutcome(c, key, size, want.sha256, 0);
      outcomes.push(r);
      remoteServed = r === 'correct';
    }
    assert.ok(remoteServed, `a GET served by the member, after the local copy failed: ${outcomes.join(', ')}`);

    // A slow reader: the GET is in its body when the member serving it dies.
    const victim = await serverOfVolume(c, found.id);
    const slow = getOutcome(c, key, size, want.sha256, 1 * MB, () => c.killServer(victim));
    const outcome = await slow;
    assert.ok(['correct', 'cut', '5xx'].includes(outcome), `GET across the kill: ${outcome}`);
    // With the local copy damaged and the only member down, no wrong byte either.
    const down = await getOutcome(c, key, size, want.sha256, 0);
    assert.ok(['correct', 'cut', '5xx'].includes(down), `GET with the member down: ${down}`);
    t.diagnostic(`before the kill: ${outcomes.join(', ')}; across the kill: ${outcome}; member down: ${down}`);

    // Undo the damage (repair copies local to member; it does not heal the local drive), restart.
    flipByte(found.file, found.offset);
    await c.restartServer(victim);
    await checkConverged(c, acked, 3);
  } finally {
    await c.stop();
  }
});

// Product bug (reported): src/actors/volume_link.ts onRead answers `bytes.slice().buffer`, and
// Buffer#slice does not copy, so a remote read under 4 KiB (a Buffer from Node's 8 KiB pool)
// sends the whole pool: GroupReader gets 8192 bytes for a 36-byte needle head and fails
// (CHECKSUM_MISMATCH). Every HTTP GET of a blob with a short key whose local copy is damaged is
// cut (or a 500), though the member holds it whole.
test('a blob with a short key whose local copy is damaged is served by its member over HTTP', { timeout: 60_000 }, async () => {
  const c = await startCluster({ servers: 3, rf: 2 });
  try {
    await c.waitHealthy();
    const acked: Acked = new Map();
    await putStreamed(c, 'short', 810, 512 * KB, acked);
    const found = findInMasterVolumes(c, patternSlice(810, 100 * KB, 64));
    flipByte(found.file, found.offset);
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i++) outcomes.push(await getOutcome(c, 'short', 512 * KB, acked.get('short')!.sha256, 0));
    assert.ok(outcomes.includes('correct'), `GETs after the local damage: ${outcomes.join(', ')}`);
    assert.ok(outcomes.every((o) => !o.startsWith('WRONG')), outcomes.join(', '));
  } finally {
    await c.stop();
  }
});

/**
 * GETs a blob over node:http and classifies what the client saw: 'correct' (200, every byte
 * right), 'cut' (the body ended short or the connection broke), '5xx', or 'WRONG ...' (a whole
 * body with wrong bytes, or any other status). With `pauseAfter` > 0, reading stops after that
 * many bytes, `whilePaused` runs, then reading resumes.
 */
function getOutcome(
  c: Cluster, key: string, size: number, sha256: string, pauseAfter: number, whilePaused?: () => Promise<void>,
): Promise<string> {
  const work = new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: c.master.httpPort, path: `/v1/blobs/${key}`, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 500) {
        res.resume();
        return resolve('5xx');
      }
      if (status !== 200) {
        res.resume();
        return resolve(`WRONG status ${status}`);
      }
      const hash = createHash('sha256');
      let got = 0;
      let paused = false;
      res.on('data', (d: Buffer) => {
        hash.update(d);
        got += d.length;
        if (pauseAfter > 0 && !paused && got >= pauseAfter && whilePaused !== undefined) {
          paused = true;
          res.pause();
          void whilePaused().finally(() => res.resume());
        }
      });
      res.once('error', () => resolve('cut'));
      res.once('aborted', () => resolve('cut'));
      res.once('close', () => {
        if (!res.complete || got !== size) return resolve('cut');
        resolve(hash.digest('hex') === sha256 ? 'correct' : `WRONG bytes (${got} B)`);
      });
    });
    req.once('error', () => resolve('cut'));
  });
  return within(work, 60_000, `GET ${key}`);
}

// ---- 3. kill -9 of the master mid-PUT ------------------------------------------------------

test('kill -9 of the master mid-PUT; restart with the same data dir: members repaired equal, acked blobs readable, the cut PUT absent or whole', { timeout: 90_000 }, async (t) => {
  const c = await startCluster({ servers: 3, rf: 2 });
  try {
    await c.waitHealthy();
    const acked: Acked = new Map();
    for (let i = 0; i < 6; i++) await putStreamed(c, `before/${i}`, 900 + i, 300 * KB + i, acked);
    const size = 24 * MB;
    const gated = gatedBody(950, size, 8 * MB);
    const put = startPut(c, 'cut-by-crash', size, gated.body);
    await within(gated.paused, 20_000, 'the PUT to send 8 MB');
    await sleep(200);
    await c.killMaster();
    gated.open();
    const outcome = await put;
    assert.notEqual(outcome.status, 201, `no answer can come from a killed master: ${JSON.stringify(outcome)}`);

    await c.restartMaster();
    await checkConverged(c, acked, 3);
    const r = await streamRequest({ method: 'GET', port: c.master.httpPort, path: '/v1/blobs/cut-by-crash', ms: 60_000 });
    t.diagnostic(`the PUT cut by the crash: ${JSON.stringify(outcome)}; after the restart GET answers ${r.status}`);
    if (r.status !== 404) {
      assert.equal(r.status, 200);
      assert.equal(r.sha256, await sha256Of(patternChunks(950, size)), 'a PUT cut by the crash is whole if present');
    }
  } finally {
    await c.stop();
  }
});
