// A volume server's HTTP front end: one uWebSockets.js app on its own worker thread; several
// listen on one port (SO_REUSEPORT) and the kernel spreads connections over them. It serves the
// protocol of docs/volume-server.md: writes go to the drives' actors (member_drive.ts), reads
// come straight from the volume files (volume_reads.ts).
// Owns: its app and listening socket, its map of which drive holds which volume (a cache).
// Invariants: with a secret, nothing is served without a valid X-Brise-Auth over the request's
// method and `path?query` exactly as received (401); every request is answered or its
// connection closed; errors are JSON {"error", "code"} with the status of their code.
import uWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { ActorEnv, ActorFactory } from '../runtime/actor.js';
import { StoreError } from '../runtime/errors.js';
import { AUTH_HEADER, verifyVolumeRequest } from '../protocol/volume_auth.js';
import { MemberMsg, memberDriveName, type DriveHealth, type MemberVolumeState } from '../protocol/member_protocol.js';
import { refuseBadFraming, watchAbort } from '../frontend/http_util.js';
import { VolumeContext, answerError, answerJson, codeOf, parseCount, parseVolumeId, requireCount } from './volume_context.js';
import { abandonRoute, appendRoute, copyRoute, openRoute, rawAppendRoute, sealRoute } from './volume_writes.js';
import { needleRoute, rawRoute } from './volume_reads.js';

export interface VolumeHttpConfig {
  host: string;
  port: number;
  /** The drive directories, drive i served by the actor memberDriveName(i). */
  drives: string[];
  /** null: no X-Brise-Auth needed (loopback only: the program refuses otherwise). */
  secret: string | null;
}

interface State {
  app: TemplatedApp;
  socket: us_listen_socket;
  port: number;
}

const VOLUME = '/v1/volumes/:id';

const createVolumeHttp: ActorFactory<VolumeHttpConfig> = async (env) => {
  const config = env.config;
  const peers = config.drives.map((_, i) => env.peer(memberDriveName(i)));
  const ctx = new VolumeContext(env.fs, { drives: config.drives, secret: config.secret }, peers, () => env.clock.now());
  await ctx.learn();
  const app = routes(uWS.App(), ctx, env);
  let socket: us_listen_socket;
  try {
    socket = await listen(app, config);
  } catch (err) {
    app.close(); // a worker must not exit with uWS handles open (Node aborts the process)
    throw err;
  }
  const s: State = { app, socket, port: uWS.us_socket_local_port(socket) };
  // As the master's front end: an uncaught error closes the app, then the thread ends and the
  // supervisor restarts it; the other front ends never notice.
  process.on('uncaughtException', (err) => {
    try {
      uWS.us_listen_socket_close(socket);
      app.close();
    } catch {
      // best effort: the exit below must happen
    }
    process.stderr.write(`volume http front end crashed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
  return {
    handle: () => {
      throw new StoreError('BAD_ARGUMENT', 'a volume server front end takes no messages');
    },
    control: { address: () => ({ host: config.host, port: s.port }) },
    stop: () => {
      uWS.us_listen_socket_close(s.socket);
      s.app.close();
    },
  };
};
export default createVolumeHttp;

function routes(app: TemplatedApp, ctx: VolumeContext, env: ActorEnv<VolumeHttpConfig>): TemplatedApp {
  const guard = (handler: (res: HttpResponse, req: HttpRequest, ctx: VolumeContext) => void) => (res: HttpResponse, req: HttpRequest) => {
    if (refuseBadFraming(res, req)) return;
    const secret = env.config.secret;
    if (secret !== null) {
      const query = req.getQuery();
      const target = query ? `${req.getUrl()}?${query}` : req.getUrl();
      const verdict = verifyVolumeRequest(secret, req.getMethod(), target, req.getHeader(AUTH_HEADER) || undefined, env.clock.now());
      // A body that may follow is not read: close after the answer.
      if (!verdict.ok) return answerError(res, watchAbort(res), 'UNAUTHORIZED', verdict.message, {}, hasBody(req));
    }
    handler(res, req, ctx);
  };
  app.get('/v1/health', guard(healthRoute));
  app.post('/v1/epoch', guard(epochRoute));
  app.get('/v1/volumes', guard(listRoute));
  app.post(VOLUME, guard(createRoute));
  app.get(VOLUME, guard(statRoute));
  app.del(VOLUME, guard(removeRoute));
  app.put(`${VOLUME}/needles`, guard(appendRoute));
  app.get(`${VOLUME}/needles/:offset`, guard(needleRoute));
  app.put(`${VOLUME}/open`, guard(openRoute));
  app.post(`${VOLUME}/open/seal`, guard(sealRoute));
  app.post(`${VOLUME}/open/abort`, guard(abandonRoute));
  app.get(`${VOLUME}/raw`, guard(rawRoute));
  app.put(`${VOLUME}/raw`, guard(rawAppendRoute));
  app.post(`${VOLUME}/truncate`, guard(truncateRoute));
  app.post(`${VOLUME}/copy`, guard(copyRoute));
  app.any('/*', (res, req) => {
    const known = req.getUrl().startsWith('/v1/volumes') || req.getUrl() === '/v1/health';
    const code = known ? 'METHOD_NOT_ALLOWED' : 'NOT_FOUND';
    answerError(res, watchAbort(res), code, `no route ${req.getCaseSensitiveMethod()} ${req.getUrl().slice(0, 200)}`, {}, hasBody(req));
  });
  return app;
}

function hasBody(req: HttpRequest): boolean {
  const length = req.getHeader('content-length');
  return req.getHeader('transfer-encoding') !== '' || (length !== '' && length !== '0');
}

/** Runs a route's work; its answer, or its failure as a JSON error. */
function run(res: HttpResponse, ctx: VolumeContext, volume: number | null, work: () => Promise<[number, unknown]>): void {
  const state = watchAbort(res);
  void work().then(
    ([status, body]) => answerJson(res, state, status, body),
    (err: unknown) => ctx.fail(res, state, err, volume),
  );
}

function stateJson(v: MemberVolumeState): Record<string, number> {
  return { id: v.id, length: v.length, synced_length: v.syncedLength, epoch: v.epoch };
}

function healthRoute(res: HttpResponse, _req: HttpRequest, ctx: VolumeContext): void {
  run(res, ctx, null, async () => {
    const drives = await Promise.all(
      Array.from({ length: ctx.driveCount }, (_, i) => ctx.ask(i, { t: MemberMsg.Health }).catch((err: unknown): DriveHealth | { dir: string; error: string } => ({ dir: ctx.config.drives[i]!, error: (err as Error).message }))),
    );
    const healthy = drives.filter((d): d is DriveHealth => !('error' in d));
    const epoch = Math.max(0, ...healthy.map((d) => d.epoch));
    const shown = drives.map((d) => ('error' in d ? d : { dir: d.dir, volumes: d.volumes, free_bytes: d.freeBytes }));
    return [200, { status: healthy.length === drives.length ? 'ok' : 'degraded', epoch, drives: shown }];
  });
}

function listRoute(res: HttpResponse, _req: HttpRequest, ctx: VolumeContext): void {
  run(res, ctx, null, async () => {
    const lists = await Promise.all(Array.from({ length: ctx.driveCount }, (_, i) => ctx.ask(i, { t: MemberMsg.List })));
    const volumes = lists.flat().sort((a, b) => a.id - b.id).map((v) => ({ id: v.id, length: v.length, synced_length: v.syncedLength, drive: v.drive }));
    return [200, { volumes }];
  });
}

/** POST /v1/volumes/{id}?epoch=E&created=MS: 201, or 409 with the length when it exists. */
function createRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const query = new URLSearchParams(req.getQuery() ?? '');
  const idText = req.getParameter(0);
  run(res, ctx, parseVolumeId(idText), async () => {
    const volume = volumeOfText(idText);
    const epoch = requireCount(query, 'epoch');
    const created = query.get('created') === null ? ctx.now() : parseCount(query.get('created'));
    if (created === null) throw new StoreError('BAD_ARGUMENT', 'created must be the creation time in ms since the epoch');
    const existing = await ctx.locate(volume).catch((err: unknown) => (codeOf(err) === 'NOT_FOUND' ? null : Promise.reject(err)));
    if (existing !== null) throw new StoreError('CONFLICT', `volume ${volume} exists (length ${existing.state.length})`);
    const drive = ctx.driveForNew(volume);
    const state = await ctx.ask(drive, { t: MemberMsg.Create, volume, epoch, createdAt: created });
    ctx.placed(volume, drive);
    return [201, stateJson(state)];
  });
}

function statRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const idText = req.getParameter(0);
  run(res, ctx, null, async () => {
    const volume = volumeOfText(idText);
    return [200, stateJson((await ctx.locate(volume)).state)];
  });
}

/** DELETE /v1/volumes/{id}?epoch=E: 204. */
function removeRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const query = new URLSearchParams(req.getQuery() ?? '');
  const idText = req.getParameter(0);
  run(res, ctx, null, async () => {
    const volume = volumeOfText(idText);
    const epoch = requireCount(query, 'epoch');
    const { drive } = await ctx.locate(volume);
    await ctx.ask(drive, { t: MemberMsg.Remove, volume, epoch });
    ctx.forget(volume);
    return [204, null];
  });
}

/**
 * POST /v1/epoch?epoch=E: a master claims its epoch on every drive (fencing its predecessors
 * before it has written anything): 200 {"epoch"}; 409 STALE_EPOCH when a newer master claimed.
 */
function epochRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const query = new URLSearchParams(req.getQuery() ?? '');
  run(res, ctx, null, async () => {
    const epoch = requireCount(query, 'epoch');
    const seen = await Promise.all(Array.from({ length: ctx.driveCount }, (_, i) => ctx.ask(i, { t: MemberMsg.Admit, epoch })));
    return [200, { epoch: Math.max(...seen) }];
  });
}

/** POST /v1/volumes/{id}/truncate?length=L&epoch=E: 200 {"length"}. */
function truncateRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const query = new URLSearchParams(req.getQuery() ?? '');
  const idText = req.getParameter(0);
  run(res, ctx, parseVolumeId(idText), async () => {
    const volume = volumeOfText(idText);
    const length = requireCount(query, 'length');
    const epoch = requireCount(query, 'epoch');
    const { drive } = await ctx.locate(volume);
    const state = await ctx.ask(drive, { t: MemberMsg.Truncate, volume, length, epoch });
    return [200, { length: state.length }];
  });
}

function volumeOfText(text: string): number {
  const id = parseVolumeId(text);
  if (id === null) throw new StoreError('BAD_ARGUMENT', 'the volume id must be an integer below 2^32');
  return id;
}

function listen(app: TemplatedApp, config: VolumeHttpConfig): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(config.host, config.port, (socket) => {
      if (socket) resolve(socket);
      else reject(new StoreError('BAD_ARGUMENT', `cannot listen on ${config.host}:${config.port} for HTTP: address in use or not allowed`));
    });
  });
}
