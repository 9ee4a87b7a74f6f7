// Side-by-side with stock Redis: a redis-server started by the test (on a free loopback port,
// no persistence, stopped by its PID) and a wire client that sends one command and answers the
// exact bytes of its reply, so BriseDB's replies can be compared with Redis' byte for byte.
// Invariants: every wait is bounded; every server started here is stopped by stopRedisServers().
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { RespReplyParser, type RespValue } from '../../src/protocol/resp_reply_parser.js';
import { freePort, resp, within } from './master_process.js';

export interface RedisServer {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

const servers = new Set<RedisServer>();

/** redis-server on a free loopback port, without persistence; resolves when it answers PING. */
export async function startRedisServer(extra: string[] = []): Promise<RedisServer> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    // Its own directory: SAVE, BGSAVE and FLUSHALL write dump files where the server runs.
    const dir = mkdtempSync(join(tmpdir(), 'redis-oracle-'));
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, ...extra], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      await waitForPing(port, child);
    } catch (err) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      if (attempt < 4) continue;
      throw err;
    }
    const server: RedisServer = {
      port,
      pid: child.pid!,
      stop: () => stopChild(child).finally(() => {
        servers.delete(server);
        rmSync(dir, { recursive: true, force: true });
      }),
    };
    servers.add(server);
    return server;
  }
}

export async function stopRedisServers(): Promise<void> {
  await Promise.all([...servers].map((s) => s.stop()));
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    try {
      const c = await WireClient.connect(port, 500);
      try {
        const r = await c.send(['PING']);
        if (r.text === '+PONG\r\n') return;
      } finally {
        c.close();
      }
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`redis-server on port ${port} did not answer PING`);
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** One reply: its exact bytes, as text (latin1: byte for byte), and its parsed value. */
export interface WireReply {
  raw: Buffer;
  text: string;
  value: RespValue;
}

/** A connection that sends commands and reads their replies one at a time, bytes kept. */
export class WireClient {
  private buffered = Buffer.alloc(0);
  private parser = new RespReplyParser();
  private waiter: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, d]);
      this.parser.push(d);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number, ms = 5000): Promise<WireClient> {
    const socket = net.connect(port, '127.0.0.1');
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      ms,
      `a connection to port ${port}`,
    );
    socket.setNoDelay(true);
    return new WireClient(socket);
  }

  /** Sends one command and answers its whole reply. */
  async send(argv: (string | Buffer)[], ms = 10_000): Promise<WireReply> {
    this.socket.write(resp(...argv));
    return this.read(ms, argv.map(String).join(' '));
  }

  /** The next whole reply (or push), bytes and value. */
  async read(ms = 10_000, what = 'a reply'): Promise<WireReply> {
    const start = Date.now();
    for (;;) {
      const next = this.parser.next();
      if (next !== null) {
        // A whole reply parsed: what the parser still holds is the start of the next one.
        const used = this.buffered.length - this.parser.buffered;
        const raw = this.buffered.subarray(0, used);
        this.buffered = this.buffered.subarray(used);
        return { raw, text: raw.toString('latin1'), value: next.value };
      }
      if (this.closed) throw new Error(`connection closed before the reply to ${what}`);
      const left = ms - (Date.now() - start);
      if (left <= 0) throw new Error(`no reply to ${what} within ${ms} ms`);
      await within(new Promise<void>((r) => (this.waiter = r)), left, `the reply to ${what}`).finally(() => (this.waiter = null));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
