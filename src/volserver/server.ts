// runVolumeServer: the volume server's composition. One writer actor per drive
// (actors/member_drive.ts) and one uWS front end per HTTP thread (actors/volume_http.ts), all
// under one supervisor in the main thread, which serves no request itself: it holds the data
// dir's LOCK, starts the actors, reports deaths and restarts, and stops everything in order.
import * as os from 'node:os';
import type { Logger } from 'pino';
import { NodeFs } from '../runtime/fs.js';
import { assertPortFree, freePort } from '../runtime/listen.js';
import { Supervisor } from '../runtime/supervisor.js';
import type { ActorSpec } from '../runtime/topology.js';
import { acquireLock } from '../storage/lock_file.js';
import { MEMBER_PROTOCOL, memberDriveName } from '../protocol/member_protocol.js';
import type { MemberDriveConfig } from '../actors/member_drive.js';
import type { VolumeHttpConfig } from '../actors/volume_http.js';
import { assertUwsLoads } from '../frontend/uws_load.js';
import { isProcessAlive } from '../wiring/open.js';
import { logActors } from '../wiring/actor_log.js';
import type { VolumeServerConfig } from './config.js';

export interface RunningVolumeServer {
  readonly host: string;
  readonly port: number;
  /** Stops the front ends, then the drives (each syncs and closes its volumes); releases LOCK. */
  stop(): Promise<void>;
  /** Resolves if an actor keeps dying (given up). */
  readonly done: Promise<void>;
}

export function httpActorName(i: number): string {
  return `http-${i}`;
}

export async function runVolumeServer(config: VolumeServerConfig, log: Logger): Promise<RunningVolumeServer> {
  const fs = new NodeFs();
  for (const dir of config.drives) fs.mkdir(dir);
  const lock = acquireLock(fs, config.drives[0]!, { pid: process.pid, host: os.hostname(), nowMs: Date.now() }, isProcessAlive);
  try {
    await assertUwsLoads('a volume server');
    const { host } = config.addr;
    // Several threads share one port: a port 0 must become one concrete port for all of them;
    // uWS binds with SO_REUSEPORT, so an exclusive bind first makes "in use" an error here.
    const port = config.addr.port === 0 ? (config.httpThreads > 1 ? await freePort(host) : 0) : config.addr.port;
    if (port !== 0) await assertPortFree(host, port);
    const supervisor = new Supervisor(specs(config, host, port));
    await supervisor.start();
    return running(supervisor, host, lock, log);
  } catch (err) {
    lock.release();
    throw err;
  }
}

function specs(config: VolumeServerConfig, host: string, port: number): ActorSpec[] {
  const drives = config.drives.map((dir, i): ActorSpec => {
    const cfg: MemberDriveConfig = { dir, sync: config.sync };
    return { name: memberDriveName(i), module: new URL('../actors/member_drive.js', import.meta.url), protocol: MEMBER_PROTOCOL, config: cfg };
  });
  const names = drives.map((d) => d.name);
  const https = Array.from({ length: config.httpThreads }, (_, i): ActorSpec => {
    const cfg: VolumeHttpConfig = { host, port, drives: config.drives, secret: config.secret };
    return { name: httpActorName(i), module: new URL('../actors/volume_http.js', import.meta.url), config: cfg, dependsOn: names, talksTo: names };
  });
  return [...drives, ...https];
}

async function running(supervisor: Supervisor, host: string, lock: { release(): void }, log: Logger): Promise<RunningVolumeServer> {
  const actors = logActors(supervisor, log);
  const address = await supervisor.control<{ address(): { host: string; port: number } }>(httpActorName(0)).address();
  return {
    host,
    port: address.port,
    done: actors.done,
    stop: async () => {
      actors.stopping();
      try {
        await supervisor.stop();
      } finally {
        lock.release();
      }
    },
  };
}
