// The WebSocket status stream: GET /v1/status upgraded (a plain GET still answers the JSON
// document; uWS gives an upgrade route priority and passes a request without
// Sec-WebSocket-Key on). It pushes what a dashboard shows of a master: its long operations
// (vacuum, scrub, COMPACT) as they go, live keys, volume bytes and the last scrub (issue 13,
// item 5; docs/websocket.md).
// Owns: this front-end thread's status subscribers and the one poll timer they share.
// Invariants:
//  - the timer runs only while a subscriber is open: the last close stops it, and a poll that
//    ends after that schedules nothing;
//  - one poll at a time, every POLL_MS, shared by every subscriber of the thread: one
//    Operations call to main per second whatever the number of sockets;
//  - at most MAX_STATUS_SUBSCRIBERS sockets per thread: past it the upgrade is answered 503
//    (and a socket opened past it anyway is closed with 1013, "try again later");
//  - nothing queues per socket: a socket with more than SKIP_BUFFERED_BYTES buffered skips the
//    frame (marked stale), and once drained gets a full status frame in place of what it missed;
//  - a socket is never touched after its close handler ran (uWS throws): `closed` is checked
//    before every use, after every await.
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_socket_context_t } from 'uWebSockets.js';
import type { Ports } from '../db/ports.js';
import { volumeUsage } from '../db/volume_usage.js';
import type { Progress, ScrubSummary } from '../protocol/operations.js';
import { INTERNAL_TEXT, reportInternal } from '../runtime/errors.js';
import { progressJson } from './http_api.js';

/** Where the stream reads from: the same sources as GET /v1/status (an ApiContext fits). */
export interface StatusSource {
  engine: { ports: Pick<Ports, 'index' | 'volumes'> };
  /** The long operations in progress (asked of main). */
  operations?(): Promise<Progress[]>;
  lastScrub?(): Promise<ScrubSummary | null>;
}

/** What ws_routes lends this route (passed in, so the two files do not import each other). */
export interface StatusRoute {
  /** The limits of every WebSocket route (payload, idle timeout, uWS's backpressure backstop). */
  limits: WebSocketBehavior<StatusSocket>;
  /** The token (or signed URL) and Origin checks, then res.upgrade with data()'s user data. */
  upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t, data: () => StatusSocket): void;
  refuse(res: HttpResponse, status: string, code: string, message: string): void;
}

/** Status sockets one front-end thread serves at most. */
export const MAX_STATUS_SUBSCRIBERS = 64;
/** How often operations are polled while anyone listens. */
export const POLL_MS = 1000;
/** With nothing running, a status frame every this many polls (10 s): the only idle traffic. */
export const IDLE_POLLS = 10;
/** A socket with more than this buffered skips the frame (status frames are a few hundred bytes). */
export const SKIP_BUFFERED_BYTES = 64 * 1024;
/** Close code for a socket opened past the limit (RFC 6455 registry: "Try Again Later"). */
const TRY_AGAIN_LATER = 1013;

export interface StatusSocket {
  kind: 'status';
  closed: boolean;
  /** Its first frame is out: until then the polls pass it by, so that frame comes first. */
  ready: boolean;
  /** Skipped a frame: gets a full status frame next instead. */
  stale: boolean;
  /** Polls since its last frame: with nothing running it gets one at IDLE_POLLS. */
  quiet: number;
  /** Set in open (uWS creates the socket after the upgrade handler). */
  ws: WebSocket<StatusSocket> | null;
}

/** The part of a status frame that is not the operations. */
interface Summary {
  keys: number;
  volumes: { count: number; retired: number; size_bytes: number; live_bytes: number; garbage_bytes: number };
  scrub: Record<string, unknown> | null;
}

type Frame = Record<string, unknown>;

export function registerStatusStream(app: TemplatedApp, source: StatusSource, route: StatusRoute): void {
  const hub = new StatusHub(source);
  app.ws<StatusSocket>('/v1/status', {
    ...route.limits,
    upgrade: (res, req, context) => {
      // Before the token check: a full thread says so to anyone (it tells nothing of the data).
      if (hub.full()) {
        route.refuse(res, '503 Service Unavailable', 'BUSY', `this thread serves at most ${MAX_STATUS_SUBSCRIBERS} status streams; try again later`);
        return;
      }
      route.upgrade(res, req, context, (): StatusSocket => ({ kind: 'status', closed: false, ready: false, stale: false, quiet: 0, ws: null }));
    },
    open: (ws) => hub.open(ws, ws.getUserData()),
    message: (ws) => hub.send(ws.getUserData(), { error: 'the status stream takes no frames', code: 'BAD_FRAME' }),
    close: (ws) => hub.close(ws.getUserData()),
  });
}

class StatusHub {
  private readonly sockets = new Set<StatusSocket>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  /** The operations the last poll saw, by identity (a new run of the same operation is another). */
  private running = new Map<string, Progress>();

  constructor(private readonly source: StatusSource) {}

  full(): boolean {
    return this.sockets.size >= MAX_STATUS_SUBSCRIBERS;
  }

  open(ws: WebSocket<StatusSocket>, d: StatusSocket): void {
    // The upgrade checked the limit; this is the backstop should two upgrades race an open.
    if (this.full()) {
      d.closed = true;
      ws.end(TRY_AGAIN_LATER, 'too many status streams on this thread');
      return;
    }
    d.ws = ws;
    this.sockets.add(d);
    this.schedule();
    void this.sendFirst(d);
  }

  close(d: StatusSocket): void {
    d.closed = true;
    d.ws = null;
    this.sockets.delete(d);
    if (this.sockets.size === 0 && this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /**
   * Sends a JSON text frame unless the socket is backed up (then it is marked stale and the
   * frame dropped: nothing queues here). Corked: it runs outside uWS callbacks.
   */
  send(d: StatusSocket, frame: Frame): void {
    const ws = d.ws;
    if (d.closed || ws === null) return;
    if (ws.getBufferedAmount() > SKIP_BUFFERED_BYTES) {
      d.stale = true;
      return;
    }
    const text = JSON.stringify(frame);
    let status = 0;
    ws.cork(() => {
      status = ws.send(text, false);
    });
    d.quiet = 0;
    // 2: uWS dropped it (its own backpressure limit, which then closes the socket).
    if (status === 2) d.stale = true;
  }

  private async sendFirst(d: StatusSocket): Promise<void> {
    try {
      const ops = (await this.source.operations?.().catch(() => [])) ?? [];
      const summary = await this.summary();
      this.send(d, statusFrame('status', ops, summary));
    } catch (err) {
      reportInternal(err);
      this.send(d, { error: INTERNAL_TEXT, code: 'INTERNAL' });
      // The status it did not get comes with the next poll.
      d.stale = true;
    }
    d.ready = true;
  }

  /** Arms the next poll unless one is armed or running, or no one listens. */
  private schedule(): void {
    if (this.timer !== null || this.polling || this.sockets.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, POLL_MS);
    // Nothing to keep a stopping thread alive for.
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      await this.pollOnce();
    } catch (err) {
      // A failed poll (main busy, an index error) skips one tick; the stream goes on.
      reportInternal(err);
    } finally {
      this.polling = false;
      if (this.sockets.size === 0) this.forget();
      else this.schedule();
    }
  }

  private async pollOnce(): Promise<void> {
    const ops = (await this.source.operations?.()) ?? [];
    if (this.sockets.size === 0) return;
    const seen = new Map(ops.map((p) => [identity(p), p]));
    const ended = [...this.running].filter(([id]) => !seen.has(id)).map(([, p]) => p);
    this.running = seen;
    const ready = [...this.sockets].filter((d) => d.ready);
    for (const d of ready) d.quiet++;
    // Who gets a full status frame: a stale socket that has drained; with nothing running or
    // ending, a socket that heard nothing for IDLE_POLLS polls.
    const drained = (d: StatusSocket): boolean => d.ws !== null && d.ws.getBufferedAmount() <= SKIP_BUFFERED_BYTES;
    const due = (d: StatusSocket): boolean => (d.stale ? drained(d) : ended.length === 0 && ops.length === 0 && d.quiet >= IDLE_POLLS);
    const needSummary = ended.length > 0 || ready.some(due);
    const summary = needSummary ? await this.summary() : null;
    const frame: Frame | null =
      ended.length > 0 ? { ...statusFrame('end', ops, summary!), ended: ended.map(progressJson) }
      : ops.length > 0 ? { type: 'progress', operations: ops.map(progressJson) }
      : null;
    // Null when no summary was asked for (a socket that drained during the await waits a poll).
    const full = frame?.type === 'end' ? frame : summary === null ? null : statusFrame('status', ops, summary);
    for (const d of ready) {
      if (d.closed) continue;
      if (d.stale) {
        if (full === null || !drained(d)) continue;
        d.stale = false;
        // What it missed, in one frame: an 'end' it skipped shows as the operation gone.
        this.send(d, full);
      } else if (frame !== null) {
        this.send(d, frame);
      } else if (full !== null && due(d)) {
        this.send(d, full);
      }
    }
  }

  /** Back to rest: the next first subscriber starts from what is running then. */
  private forget(): void {
    this.running.clear();
  }

  private async summary(): Promise<Summary> {
    const ports = this.source.engine.ports;
    const [volumes, index, scrub] = await Promise.all([volumeUsage(ports), ports.index.stats(), this.source.lastScrub?.().catch(() => null) ?? Promise.resolve(null)]);
    const sum = (f: (v: (typeof volumes)[number]) => number): number => volumes.reduce((n, v) => n + f(v), 0);
    return {
      keys: index.liveCount,
      volumes: {
        count: volumes.length,
        retired: volumes.filter((v) => v.retired).length,
        size_bytes: sum((v) => v.sizeBytes),
        live_bytes: sum((v) => v.liveBytes),
        garbage_bytes: sum((v) => v.garbageBytes),
      },
      scrub: scrub === null ? null : scrubSummaryJson(scrub),
    };
  }
}

function statusFrame(type: 'status' | 'end', ops: Progress[], s: Summary): Frame {
  return { type, operations: ops.map(progressJson), keys: s.keys, volumes: s.volumes, scrub: s.scrub };
}

function identity(p: Progress): string {
  return `${p.operation}@${p.startedAt}`;
}

/** The last scrub in brief (GET /v1/status lists its damaged needles; a frame stays small). */
function scrubSummaryJson(s: ScrubSummary): Record<string, unknown> {
  return {
    started_at: new Date(s.startedAt).toISOString(),
    duration_ms: s.durationMs,
    volumes: s.volumes,
    needles: s.needles,
    bytes: s.bytes,
    invalid: s.invalid,
    unreferenced: s.unreferenced,
    repaired: s.repaired,
    damaged: s.damaged,
    errors: s.errors.length,
  };
}
