// Test helper: a replicated cluster of real processes: N volume servers (each on its own port,
// kept across restarts) and a master with `--volume-servers` and `--replication-factor` over
// them; the waits and checks every cluster test needs: all members healthy (VOLINFO GROUPS),
// the member files equal to the master's local ones, every acknowledged blob read back by
// SHA-256 through the master.
// Owns: the processes it started (through master_process and volume_server_process, signalled
// by PID only) and one RESP connection per master. stop() in a `finally` ends them all.
// Invariants: every wait is bounded and names what it waited for; the master reaches server i
// through a front (a plain TCP forwarder on a port that never changes), so a server restarted on
// a new port with the same data dir keeps the master's --volume-servers true. Why a front: a
// volume server killed with connections open leaves TIME_WAIT sockets on its port, and it refuses
// to start on that port for about 60 s (see the report of issue 11's cluster tests).
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { startMaster, sleep, streamRequest, within, type MasterProcess } from './master_process.js';
import { startVolumeServer, type VolumeServer } from './volume_server_process.js';
import { VOLUME_SUPERBLOCK_SIZE, groupOfVolume, parseVolumeFileName } from '../../src/storage/volume_format.js';

const HEALTHY_MS = 30_000;

export interface ClusterOptions {
  /** Volume servers to start (default 3). */
  servers?: number;
  /** --replication-factor (default 2). */
  rf?: number;
  /** --secret of the servers and --volume-secret of the master (default none). */
  secret?: string;
  /** Extra master flags. */
  masterArgs?: string[];
  /**
   * The URL the master is given for server i (default the front's, `http://127.0.0.1:<front
   * port>`): a test puts a fault proxy in between by pointing it at `front` and answering the
   * proxy's URL here.
   */
  urlOf?: (front: { host: string; port: number }, i: number) => string | Promise<string>;
}

/** [server URL, state, lag bytes, repairs, last error] as VOLINFO GROUPS answers it. */
export interface MemberRow {
  server: string;
  state: string;
  lagBytes: number;
  repairs: number;
  lastError: string | null;
}

export interface GroupRow {
  group: number;
  drive: string;
  writable: boolean;
  members: MemberRow[];
}

export interface Cluster {
  master: MasterProcess;
  /** http://127.0.0.1:<master HTTP port> (changes when the master is restarted). */
  base: string;
  servers: VolumeServer[];
  /** The stable forwarder in front of each server (index as servers). */
  fronts: Front[];
  /** The URL the master was given for each server (index as servers). */
  urls: string[];
  /** VOLINFO GROUPS, parsed. */
  groups(): Promise<GroupRow[]>;
  /** Polls VOLINFO GROUPS until every member of every group is healthy (bounded). */
  waitHealthy(ms?: number): Promise<GroupRow[]>;
  /** SIGKILL server i, wait for its exit. */
  killServer(i: number): Promise<void>;
  /** Start server i again with its data dir (after a kill or stop), behind the same front. */
  restartServer(i: number): Promise<VolumeServer>;
  /** SIGKILL the master, wait for its exit. */
  killMaster(): Promise<void>;
  /** Start the master again with the same data dir and flags (new ports). */
  restartMaster(): Promise<MasterProcess>;
  /** Every member file equals the master's local file of the same volume (see memberFilesEqual). */
  checkMemberFiles(): Promise<FileCheck[]>;
  /** Stops the master and every server (by PID) and closes the RESP connection. */
  stop(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const servers: VolumeServer[] = [];
  const fronts: Front[] = [];
  let master: MasterProcess | undefined;
  let redis: Redis | undefined;
  try {
    for (let i = 0; i < (opts.servers ?? 3); i++) {
      servers.push(await startVolumeServer(serverOptions(opts)));
      fronts.push(await startFront(servers[i]!.port));
    }
    const urls: string[] = [];
    for (const [i, f] of fronts.entries()) urls.push(await (opts.urlOf?.({ host: '127.0.0.1', port: f.port }, i) ?? `http://127.0.0.1:${f.port}`));
    const masterArgs = [
      '--volume-servers', urls.join(','), '--replication-factor', String(opts.rf ?? 2),
      ...(opts.secret === undefined ? [] : ['--volume-secret', opts.secret]), ...(opts.masterArgs ?? []),
    ];
    master = await startMaster({ http: true, args: masterArgs });
    redis = connect(master.port);
    return makeCluster(opts, { servers, fronts, urls }, masterArgs, master, redis);
  } catch (e) {
    redis?.disconnect();
    await master?.kill().catch(() => undefined);
    for (const s of servers) await s.kill().catch(() => undefined);
    for (const f of fronts) await f.close();
    throw e;
  }
}

function serverOptions(opts: ClusterOptions, dataDir?: string): Parameters<typeof startVolumeServer>[0] {
  return { ...(dataDir === undefined ? {} : { dataDir }), ...(opts.secret === undefined ? {} : { secret: opts.secret }) };
}

function connect(port: number): Redis {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 100, connectTimeout: 2000, commandTimeout: 5000 });
  r.on('error', () => undefined);
  return r;
}

interface Nodes {
  servers: VolumeServer[];
  fronts: Front[];
  urls: string[];
}

function makeCluster(opts: ClusterOptions, nodes: Nodes, masterArgs: string[], firstMaster: MasterProcess, firstRedis: Redis): Cluster {
  const { servers, fronts } = nodes;
  let redis = firstRedis;
  const c: Cluster = {
    master: firstMaster,
    base: baseOf(firstMaster),
    ...nodes,
    groups: async () => parseGroups(await redis.call('VOLINFO', 'GROUPS')),
    waitHealthy: (ms = HEALTHY_MS) => waitHealthy(c, ms),
    async killServer(i) {
      await servers[i]!.kill();
    },
    async restartServer(i) {
      servers[i] = await startVolumeServer(serverOptions(opts, servers[i]!.dataDir));
      fronts[i]!.retarget(servers[i]!.port);
      return servers[i]!;
    },
    async killMaster() {
      redis.disconnect();
      await c.master.kill();
    },
    async restartMaster() {
      redis.disconnect();
      c.master = await startMaster({ http: true, dataDir: c.master.dataDir, args: masterArgs });
      c.base = baseOf(c.master);
      redis = connect(c.master.port);
      return c.master;
    },
    checkMemberFiles: async () => checkMemberFiles(c),
    async stop() {
      redis.disconnect();
      await c.master.stop().catch(() => c.master.kill().catch(() => undefined));
      for (const s of servers) await s.stop().catch(() => s.kill().catch(() => undefined));
      for (const f of fronts) await f.close();
    },
  };
  return c;
}

const baseOf = (m: MasterProcess): string => `http://127.0.0.1:${m.httpPort}`;

/** A TCP forwarder on a fixed loopback port to a target port that a restart may change. */
export interface Front {
  readonly port: number;
  retarget(port: number): void;
  /** Closes the listener and every connection (bounded). */
  close(): Promise<void>;
}

export async function startFront(targetPort: number): Promise<Front> {
  let target = targetPort;
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer((client) => {
    const up = net.connect(target, '127.0.0.1');
    track(client);
    track(up);
    // Either side failing or closing ends the pair, as a direct connection would end.
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    for (const s of [client, up]) {
      s.once('error', end);
      s.once('close', end);
    }
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    retarget: (port) => {
      target = port;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await within(new Promise<void>((resolve) => server.close(() => resolve())), 2000, 'a front to close').catch(() => undefined);
    },
  };
}

export function parseGroups(reply: unknown): GroupRow[] {
  if (!Array.isArray(reply)) throw new Error(`VOLINFO GROUPS: not an array: ${JSON.stringify(reply)}`);
  return reply.map((row: unknown) => {
    const [group, drive, writable, members] = row as [number, string | Buffer, number, unknown[]];
    return {
      group: Number(group),
      drive: String(drive),
      writable: Number(writable) === 1,
      members: members.map((m) => {
        const [server, state, lag, repairs, lastError] = m as [string, string, number, number, string | null];
        return { server: String(server), state: String(state), lagBytes: Number(lag), repairs: Number(repairs), lastError: lastError === null ? null : String(lastError) };
      }),
    };
  });
}

const allHealthy = (groups: GroupRow[]): boolean =>
  groups.length > 0 && groups.every((g) => g.members.every((m) => m.state === 'healthy'));

async function waitHealthy(c: Cluster, ms: number): Promise<GroupRow[]> {
  const deadline = Date.now() + ms;
  let last: GroupRow[] | string = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      last = await c.groups();
      if (allHealthy(last)) return last;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`members not all healthy within ${ms} ms: ${JSON.stringify(last)}`);
}

// ---- member files -------------------------------------------------------------------------

export interface FileCheck {
  volume: number;
  server: string;
  masterBytes: number;
  memberBytes: number;
}

/**
 * For each of the master's local volume files, each member server of its group holds a file
 * equal to it byte for byte, except that the member may go on past the master's end by at most
 * 7 zero bytes (the last needle's padding, which the master may not have written). Call after
 * waitHealthy, with no write in flight. Answers what it compared (never empty).
 */
async function checkMemberFiles(c: Cluster): Promise<FileCheck[]> {
  const groups = await c.groups();
  const dir = path.join(c.master.dataDir, 'volumes');
  const checks: FileCheck[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const id = parseVolumeFileName(name);
    if (id === null) continue;
    const group = groups.find((g) => g.group === groupOfVolume(id));
    if (group === undefined) throw new Error(`volume ${id}: no group ${groupOfVolume(id)} in VOLINFO GROUPS`);
    for (const member of group.members) {
      const i = c.urls.indexOf(member.server);
      if (i < 0) throw new Error(`group ${group.group}: member ${member.server} is none of ${c.urls.join(', ')}`);
      // A volume with nothing but its superblock is created on a member by its first write.
      const memberFile = c.servers[i]!.volumePath(id);
      if (fs.statSync(path.join(dir, name)).size <= VOLUME_SUPERBLOCK_SIZE && !fs.existsSync(memberFile)) continue;
      checks.push(await compareFiles(id, path.join(dir, name), memberFile, member.server));
    }
  }
  if (checks.length === 0) throw new Error(`no member file compared (master volumes: ${fs.readdirSync(dir).join(', ')})`);
  return checks;
}

async function compareFiles(volume: number, masterFile: string, memberFile: string, server: string): Promise<FileCheck> {
  if (!fs.existsSync(memberFile)) throw new Error(`volume ${volume}: ${server} has no ${memberFile}`);
  const masterBytes = fs.statSync(masterFile).size;
  const memberBytes = fs.statSync(memberFile).size;
  const what = `volume ${volume} on ${server}: master ${masterBytes} B, member ${memberBytes} B`;
  if (memberBytes < masterBytes || memberBytes - masterBytes > 7) throw new Error(`${what}: lengths differ`);
  const [a, b] = await Promise.all([sha256OfFile(masterFile, 0, masterBytes), sha256OfFile(memberFile, 0, masterBytes)]);
  if (a !== b) throw new Error(`${what}: the first ${masterBytes} bytes differ`);
  const tail = Buffer.alloc(memberBytes - masterBytes);
  if (tail.length > 0) {
    const fd = fs.openSync(memberFile, 'r');
    try {
      fs.readSync(fd, tail, 0, tail.length, masterBytes);
    } finally {
      fs.closeSync(fd);
    }
    if (tail.some((x) => x !== 0)) throw new Error(`${what}: the member's tail is not zeros`);
  }
  return { volume, server, masterBytes, memberBytes };
}

function sha256OfFile(file: string, start: number, length: number): Promise<string> {
  const hash = createHash('sha256');
  if (length === 0) return Promise.resolve(hash.digest('hex'));
  const stream = fs.createReadStream(file, { start, end: start + length - 1 });
  return within(
    new Promise<string>((resolve, reject) => {
      stream.on('data', (d) => hash.update(d));
      stream.once('error', reject);
      stream.once('end', () => resolve(hash.digest('hex')));
    }),
    60_000,
    `reading ${file}`,
  );
}

// ---- acknowledged blobs -------------------------------------------------------------------

/** What a test knows was acknowledged (201): key → SHA-256 in hex and size. */
export type Acked = Map<string, { sha256: string; size: number }>;

/** GETs every acknowledged blob through the master; throws naming the first that differs. */
export async function readAllAcked(c: Cluster, acked: Acked, ms = 60_000): Promise<void> {
  for (const [key, want] of acked) {
    const got = await streamRequest({ method: 'GET', port: c.master.httpPort, path: `/v1/blobs/${key}`, ms });
    if (got.status !== 200) throw new Error(`GET ${key}: ${got.status}`);
    if (got.length !== want.size || got.sha256 !== want.sha256) {
      throw new Error(`GET ${key}: ${got.length} B sha256 ${got.sha256}, expected ${want.size} B ${want.sha256}`);
    }
  }
}

/** GET /v1/status, parsed (bounded). */
export async function statusOf(c: Cluster): Promise<Record<string, unknown>> {
  const res = await fetch(`${c.base}/v1/status`, { signal: AbortSignal.timeout(10_000) });
  if (res.status !== 200) throw new Error(`GET /v1/status: ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}
