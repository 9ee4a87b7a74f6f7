// A replica's connection to its master (docs/replica.md, "The stream"): AUTH when it has a
// password, REPLCONF listening-port, BRISE.SYNC from where the replica is; then the master's
// frames in, REPLCONF ACKs out.
// Owns: one socket and its frame decoder.
// Invariants:
// - frames are handed out one at a time; the socket is paused while more than READ_HIGH_WATER
//   bytes wait undecoded, so a replica that applies slowly slows its master's stream (TCP flow
//   control), and memory is bounded by that plus one frame;
// - a link silent for LINK_TIMEOUT_MS (the master beats every second) ends with TIMEOUT;
// - close() is final: the frames iterator ends and nothing more is written.
import { connect, type Socket } from 'node:net';
import { StoreError } from '../runtime/errors.js';
import { encodeCommand } from '../protocol/resp_writer.js';
import { FrameDecoder, LINK_TIMEOUT_MS, SYNC_COMMAND, parseSyncAnswer, type Frame, type SyncAnswer } from '../protocol/replica_protocol.js';

const READ_HIGH_WATER = 16 * 1024 * 1024;
const CONNECT_TIMEOUT_MS = 5_000;
/** A status line longer than this is not one. */
const MAX_LINE = 64 * 1024;

export interface SyncOptions {
  host: string;
  port: number;
  password: string | null;
  /** The port this replica serves clients on (the master's INFO shows it). */
  listeningPort: number;
  /** '' when the replica has no history yet. */
  history: string;
  applied: number;
  volumes: ReadonlyMap<number, number>;
}

export class MasterLink {
  private readonly decoder = new FrameDecoder();
  private waiting: ((v: void) => void) | null = null;
  private failure: Error | null = null;
  private lastIo = Date.now();
  private readonly watchdog: NodeJS.Timeout;

  private constructor(private readonly socket: Socket, rest: Buffer) {
    if (rest.length > 0) this.decoder.push(rest);
    socket.on('data', (chunk: Buffer) => {
      this.lastIo = Date.now();
      this.decoder.push(chunk);
      if (this.decoder.bufferedBytes > READ_HIGH_WATER) socket.pause();
      this.wake();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new StoreError('UNAVAILABLE', 'the master closed the replication stream')));
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastIo > LINK_TIMEOUT_MS) {
        this.fail(new StoreError('TIMEOUT', `nothing from the master for ${LINK_TIMEOUT_MS} ms`));
        socket.destroy();
      }
    }, 1_000);
    this.watchdog.unref();
  }

  /** Connects and hands the master the replica's position; answers how the master goes on. */
  static async open(o: SyncOptions): Promise<{ link: MasterLink; answer: SyncAnswer }> {
    const socket = await connectTo(o.host, o.port);
    try {
      const lines = new LineReader(socket);
      if (o.password !== null) {
        socket.write(encodeCommand(['AUTH', o.password]));
        expectOk(await lines.next(), 'AUTH');
      }
      socket.write(encodeCommand(['REPLCONF', 'listening-port', String(o.listeningPort)]));
      expectOk(await lines.next(), 'REPLCONF');
      const volumes = JSON.stringify(Object.fromEntries(o.volumes));
      socket.write(encodeCommand([SYNC_COMMAND, o.history === '' ? '?' : o.history, String(o.applied), volumes]));
      const line = await lines.next();
      if (line.startsWith('-')) throw new StoreError('UNAVAILABLE', `the master refused to stream: ${line.slice(1)}`);
      const answer = line.startsWith('+') ? parseSyncAnswer(line.slice(1)) : null;
      if (answer === null) throw new StoreError('PROTOCOL', `the master answered ${JSON.stringify(line.slice(0, 200))} to ${SYNC_COMMAND}`);
      return { link: new MasterLink(socket, lines.detach()), answer };
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** The next frame; rejects when the link fails or closes. */
  async next(): Promise<Frame> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const frame = this.poll();
      if (frame !== null) return frame;
      if (this.socket.isPaused()) this.socket.resume();
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** The next frame if one is already here (decoded without waiting), else null. */
  poll(): Frame | null {
    if (this.failure !== null) return null;
    const frame = this.decoder.next();
    if (frame !== null && this.decoder.bufferedBytes <= READ_HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    return frame;
  }

  ack(lsn: number): void {
    if (this.failure === null && !this.socket.destroyed) this.socket.write(encodeCommand(['REPLCONF', 'ACK', String(lsn)]));
  }

  close(): void {
    this.fail(new StoreError('CLOSED', 'the replication link was closed'));
    this.socket.destroy();
  }

  private fail(err: Error): void {
    if (this.failure === null) this.failure = err;
    clearInterval(this.watchdog);
    this.wake();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }
}

function connectTo(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new StoreError('TIMEOUT', `connecting to the master at ${host}:${port} took more than ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new StoreError('UNAVAILABLE', `cannot reach the master at ${host}:${port}: ${err.message}`));
    });
  });
}

/** Status lines of the handshake, and the bytes after the last one (the first frames). */
class LineReader {
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  private error: Error | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.error ??= new StoreError('UNAVAILABLE', 'the master closed the connection during the handshake');
    this.wake();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  async next(): Promise<string> {
    const deadline = Date.now() + LINK_TIMEOUT_MS;
    for (;;) {
      const at = this.buffer.indexOf('\r\n');
      if (at >= 0) {
        const line = this.buffer.subarray(0, at).toString('utf8');
        this.buffer = this.buffer.subarray(at + 2);
        return line;
      }
      if (this.buffer.length > MAX_LINE) throw new StoreError('PROTOCOL', 'the master sent a line too long for a handshake');
      if (this.error !== null) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new StoreError('TIMEOUT', `the master did not answer the handshake within ${LINK_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Stops reading lines: what was read past the last line. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    return this.buffer;
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }
}

function expectOk(line: string, what: string): void {
  if (line !== '+OK') throw new StoreError('UNAVAILABLE', `the master answered ${what} with ${line.slice(0, 200)}`);
}
