// One client connection of the seed's line protocol (`--text-addr`, docs/text-protocol.md):
// a command per line in, `+`/`-` lines out, so the seed's Go and Python clients and
// `echo "SET hello world" | nc` work unchanged. The commands are the shared ones: each line is
// checked against the command table and run by the executor, as on the RESP port; only the
// layout of the reply differs (src/protocol/text_reply.ts).
// Owns: the line reader and its limit (small until AUTH), the session (its BEGIN levels), this
// connection's subscriptions, a REPLICATE stream, its output back-pressure.
// Invariants:
// - lines run one after another, in arrival order; their replies leave in that order, and a
//   reply's lines are queued together, so a pub/sub message never lands inside a counted list;
// - a bad line (too long, unknown command, bad arguments) answers one `-ERR` line and the
//   connection goes on (the seed answered errors and kept reading);
// - after the client's FIN every line it sent before, the last one even without its LF, is
//   answered before the close; STOP/QUIT answers +OK and closes;
// - input is bounded (reading pauses while this much waits behind a running command), so is
//   output (a client whose unread replies pass the output limit is cut off, as on RESP);
// - after REPLICATE the connection only streams: what the client sends is dropped.
import type { Socket } from 'node:net';
import { executeChecked, errorReply } from './executor.js';
import type { Database, Session } from '../db/api.js';
import type { BrokerPort, Delivery } from '../db/ports.js';
import type { WalFeed } from '../db/wal_feed.js';
import { checkCommand, hasFlag, lookupCommand, wrongArity, type CommandSpec } from '../protocol/commands.js';
import { splitCommandLine } from '../protocol/command_line.js';
import { LineReader } from '../protocol/text_lines.js';
import { errorLine, formatTextReply, plusLine, shapeOf } from '../protocol/text_reply.js';
import { UNAUTHENTICATED_TCP_LIMITS, type TcpLimits } from '../protocol/tcp_limits.js';
import type { Reply } from '../protocol/reply.js';
import { statName } from './command_stats.js';
import type { FrontEndStats } from './resp_connection.js';
import { authCommand, selectCommand, type ServerState } from './server_commands.js';
import { TextReplication } from './text_replication.js';
import { drained } from './socket_drain.js';

export interface TextContext {
  db: Database;
  broker: BrokerPort;
  server: ServerState;
  limits: TcpLimits;
  stats: FrontEndStats;
  /** The front end's WAL feed, made on first use (REPLICATE). */
  walFeed(): WalFeed;
  nextSubscriberId(): number;
}

/** Before AUTH (when a password is set) a line is at most this long, as RESP bounds a pre-AUTH argument. */
const PRE_AUTH_LINE = UNAUTHENTICATED_TCP_LIMITS.maxBulkLength;
/** Commands allowed before AUTH when a password is set. */
const NOAUTH_ALLOWED = new Set(['auth', 'quit', 'stop', 'exit']);
/** Front-end commands this protocol answers; the others (MULTI, HELLO, CLIENT...) need RESP. */
const TEXT_FRONT_END = new Set(['subscribe', 'unsubscribe', 'psubscribe', 'punsubscribe', 'auth', 'select', 'quit', 'stop', 'exit']);
/** The seed's other name for ROLLBACK. */
const ALIASES: Readonly<Record<string, string>> = { end: 'ROLLBACK' };
/** Unprocessed input past which the socket stops being read while a command runs. */
const INPUT_HIGH_WATER = 4 * 1024 * 1024;
/** Unsent output past which the next line waits for the client to read. */
const OUTPUT_HIGH_WATER = 4 * 1024 * 1024;
/** Hand the gathered replies to the socket once this many bytes wait. */
const FLUSH_BYTES = 64 * 1024;
/** How long a closing socket may take to drain before it is destroyed. */
const CLOSE_GRACE_MS = 5000;
/** Bytes of a channel name a line can carry: no word separator, no line break. */
const NAME_SEPARATORS = [0x20, 0x09, 0x0a, 0x0d];

export class TextConnection {
  private readonly reader: LineReader;
  private readonly session: Session;
  private authenticated: boolean;
  private out: Buffer[] = [];
  private outBytes = 0;
  private running = false;
  private inputPaused = false;
  private inputEnded = false;
  private closing = false;
  private subscriber = 0;
  private readonly channels = new Set<string>();
  private readonly patterns = new Set<string>();
  private replication: TextReplication | null = null;
  /** Resolves once the snapshot and +READY are queued. */
  private replicationStarted: Promise<void> | null = null;
  private closeCalled = false;
  private flushScheduled = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => undefined;

  constructor(private readonly socket: Socket, private readonly ctx: TextContext) {
    this.authenticated = ctx.server.requirepass === null;
    this.reader = new LineReader(this.lineLimit());
    this.session = ctx.db.session();
    ctx.stats.connectionsReceived += 1;
    socket.setNoDelay(true);
    this.applyTimeout();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      if (!this.closing && !this.inputPaused) socket.resume();
    });
    // The client shut down its write side (`echo ... | nc -q1`): answer what it sent, then end.
    socket.on('end', () => {
      this.inputEnded = true;
      // A replica that hangs up is done (the seed's server stopped at its EOF): once +READY is
      // out, so that `echo REPLICATE | nc -q1` still gets the snapshot.
      if (this.replicationStarted !== null) void this.replicationStarted.then(() => this.close());
      else if (!this.running) void this.pump();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.cleanup());
  }

  /** CONFIG SET changed the limits: this connection follows them at once. */
  applySettings(): void {
    this.reader.setMaxLine(this.lineLimit());
    this.applyTimeout();
  }

  /** Graceful stop: no more input; the line in progress is answered, then the socket ends. */
  async shutdown(): Promise<void> {
    this.socket.pause();
    this.replication?.stop();
    await this.idle;
    this.close();
  }

  private lineLimit(): number {
    const max = this.ctx.limits.maxInlineLength;
    return this.authenticated ? max : Math.min(max, PRE_AUTH_LINE);
  }

  /** Redis' `timeout`, with its exemption: a subscriber or a replica may be silent forever. */
  private applyTimeout(): void {
    const seconds = this.ctx.limits.idleTimeoutSeconds;
    this.socket.setTimeout(seconds * 1000);
    this.socket.removeAllListeners('timeout');
    if (seconds > 0) {
      this.socket.on('timeout', () => {
        if (this.channels.size + this.patterns.size === 0 && this.replication === null) this.close();
      });
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closing || this.replication !== null) return;
    this.ctx.stats.netInputBytes += chunk.length;
    this.reader.push(chunk);
    if (this.running && this.reader.buffered > INPUT_HIGH_WATER && !this.inputPaused) {
      this.inputPaused = true;
      this.socket.pause();
    }
    if (!this.running) void this.pump();
  }

  /** Runs every complete line buffered, in order; after the FIN, the last one too, then closes. */
  private async pump(): Promise<void> {
    this.running = true;
    this.idle = new Promise((resolve) => (this.markIdle = resolve));
    try {
      while (!this.closing && this.replication === null) {
        let event = this.reader.next();
        if (event.kind === 'need-more') {
          const last = this.inputEnded ? this.reader.rest() : null;
          if (last === null) break;
          event = last;
        }
        if (event.kind === 'too-long') {
          this.ctx.stats.protocolErrors += 1;
          this.queue(errorLine(`ERR line too long: more than ${this.lineLimit()} bytes (--max-inline-len); send large values on the RESP port (--addr)`));
        } else if (event.kind === 'line') {
          await this.runLineSafely(event.line);
        }
        if (this.outBytes >= FLUSH_BYTES) this.flush();
        if (this.socket.writableLength > OUTPUT_HIGH_WATER) await drained(this.socket);
      }
    } finally {
      this.flush();
      this.running = false;
      if (this.inputPaused && !this.closing) {
        this.inputPaused = false;
        this.socket.resume();
      }
      this.markIdle();
      if (this.inputEnded && !this.closing && this.replication === null) this.close();
    }
  }

  /** A failure outside the executor (the broker down while subscribing) answers its line, and the next lines run. */
  private async runLineSafely(line: Buffer): Promise<void> {
    try {
      await this.runLine(line);
    } catch (err) {
      this.reply(errorReply(err));
    }
  }

  /** One line: split as redis-cli splits (quotes, escapes), then one command. */
  private async runLine(line: Buffer): Promise<void> {
    const argv = splitLine(line);
    if (argv.length === 0) return;
    const alias = ALIASES[argv[0]!.toString('latin1').toLowerCase()];
    if (alias !== undefined) argv[0] = Buffer.from(alias);
    this.ctx.stats.commandsProcessed += 1;
    if (argv[0]!.toString('latin1').toLowerCase() === 'replicate') return this.onReplicate(argv);
    const checked = checkCommand(argv);
    if (!checked.ok) {
      const name = argv[0]!.toString('latin1').toLowerCase();
      if (lookupCommand(name) !== undefined) this.ctx.stats.commands.reject(name);
      return this.reply(checked.reply);
    }
    const { spec } = checked;
    if (!this.authenticated && !NOAUTH_ALLOWED.has(spec.name)) {
      this.ctx.stats.commands.reject(spec.name);
      return this.reply({ kind: 'error', message: 'NOAUTH Authentication required.' });
    }
    const start = process.hrtime.bigint();
    const reply = await this.run(spec, argv);
    const usec = Number(process.hrtime.bigint() - start) / 1000;
    this.ctx.stats.commands.call(statName(spec.name, argv), usec, reply?.kind === 'error');
    if (reply !== null) this.reply(reply, spec.name);
  }

  /** The command's reply, or null when it answered by itself (pub/sub, STOP). */
  private async run(spec: CommandSpec, argv: Buffer[]): Promise<Reply | null> {
    switch (spec.name) {
      case 'quit':
      case 'exit':
      case 'stop':
        this.queue(Buffer.from('+OK\n'));
        this.flush();
        this.closing = true;
        this.socket.end();
        return null;
      case 'auth':
        return this.onAuth(argv);
      case 'select':
        return selectCommand(argv);
      case 'subscribe':
      case 'psubscribe':
        return this.onSubscribe(spec.name, argv.slice(1));
      case 'unsubscribe':
      case 'punsubscribe':
        return this.onUnsubscribe(spec.name, argv.slice(1));
      default:
        if (hasFlag(spec, 'front-end') && !TEXT_FRONT_END.has(spec.name)) {
          return { kind: 'error', message: `ERR '${spec.name}' is not available on the line protocol: use the RESP port (--addr)` };
        }
        return executeChecked(this.session, argv, spec, this.ctx.db);
    }
  }

  private onAuth(argv: Buffer[]): Reply {
    const effect = authCommand(argv, this.ctx.server);
    if (effect.authenticated) {
      this.authenticated = true;
      this.reader.setMaxLine(this.lineLimit());
    }
    return effect.reply;
  }

  // ---- pub/sub -------------------------------------------------------------------------

  private async onSubscribe(kind: 'subscribe' | 'psubscribe', names: Buffer[]): Promise<Reply | null> {
    // All or none: a name a line cannot carry refuses the whole command before any subscription.
    if (names.some((n) => NAME_SEPARATORS.some((b) => n.includes(b)))) {
      return { kind: 'error', message: 'ERR a channel or pattern on the line protocol cannot hold a space, tab, CR or LF: use the RESP port (--addr)' };
    }
    if (this.subscriber === 0) this.subscriber = this.ctx.nextSubscriberId();
    const set = kind === 'subscribe' ? this.channels : this.patterns;
    const fresh = names.filter((n) => !set.has(n.toString('latin1')));
    if (fresh.length > 0) {
      await this.ctx.broker.subscribe(this.subscriber, kind === 'subscribe' ? fresh : [], kind === 'psubscribe' ? fresh : [], (d) => this.deliver(d));
    }
    for (const n of names) {
      set.add(n.toString('latin1'));
      this.queue(plusLine(kind.toUpperCase(), n, String(this.subscriptions()))!);
    }
    return null;
  }

  private async onUnsubscribe(kind: 'unsubscribe' | 'punsubscribe', names: Buffer[]): Promise<Reply | null> {
    const set = kind === 'unsubscribe' ? this.channels : this.patterns;
    const targets = names.length > 0 ? names : [...set].map((n) => Buffer.from(n, 'latin1'));
    // The seed answered nothing here; one line keeps a request/response client in step (Redis: a null channel).
    if (targets.length === 0) {
      this.queue(plusLine(kind.toUpperCase(), 'nil', String(this.subscriptions()))!);
      return null;
    }
    const known = targets.filter((n) => set.has(n.toString('latin1')));
    if (known.length > 0 && this.subscriber !== 0) {
      await this.ctx.broker.unsubscribe(this.subscriber, kind === 'unsubscribe' ? known : [], kind === 'punsubscribe' ? known : []);
    }
    for (const n of targets) {
      set.delete(n.toString('latin1'));
      // A name that was never subscribed may hold anything: `nil` stands for one a line cannot carry.
      this.queue(plusLine(kind.toUpperCase(), n, String(this.subscriptions())) ?? plusLine(kind.toUpperCase(), 'nil', String(this.subscriptions()))!);
    }
    return null;
  }

  private subscriptions(): number {
    return this.channels.size + this.patterns.size;
  }

  /** A message from the broker, written at once: `+MESSAGE channel payload`. */
  private deliver(d: Delivery): void {
    if (this.closing) return;
    const channel = Buffer.from(d.channel);
    const line = d.pattern !== undefined
      ? plusLine('PMESSAGE', Buffer.from(d.pattern), channel, Buffer.from(d.payload))
      : plusLine('MESSAGE', channel, Buffer.from(d.payload));
    this.queue(line ?? errorLine(`ERR a message on channel '${printable(channel)}' was dropped: it holds a CR or LF byte, which a line cannot carry (subscribe on the RESP port)`));
    if (!this.running) this.flush();
  }

  // ---- REPLICATE -----------------------------------------------------------------------

  private onReplicate(argv: Buffer[]): void {
    if (argv.length !== 1) return this.reply(wrongArity('replicate'));
    if (!this.authenticated) return this.reply({ kind: 'error', message: 'NOAUTH Authentication required.' });
    this.flush();
    const gone = (): boolean => this.closing || this.socket.destroyed;
    const replication = new TextReplication(this.ctx.db.session(), this.ctx.walFeed(), {
      write: (bytes) => this.stream(bytes),
      fail: (message) => {
        if (this.closing) return;
        this.queue(errorLine(message));
        this.close();
      },
      get closed() {
        return gone();
      },
    });
    // From here on what the client sends is dropped (onData), and the idle timeout spares it.
    this.replication = replication;
    this.replicationStarted = replication.start().then(() => this.flush());
  }

  /** A REPLICATE line: written now; resolves when the socket is under its watermark. */
  private stream(bytes: Buffer): Promise<void> {
    if (this.closing || this.socket.destroyed) return Promise.resolve();
    this.queue(bytes);
    if (this.outBytes >= FLUSH_BYTES) this.flush();
    if (this.socket.writableLength > OUTPUT_HIGH_WATER) {
      this.flush();
      return drained(this.socket);
    }
    // Lines gathered in this turn leave together, in one write, at its end.
    if (this.outBytes > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
    return Promise.resolve();
  }

  // ---- output --------------------------------------------------------------------------

  private reply(reply: Reply, command?: string): void {
    if (reply.kind === 'error') this.ctx.stats.commands.error(reply);
    this.queue(formatTextReply(reply, command === undefined ? 'generic' : shapeOf(command)));
  }

  private queue(bytes: Buffer): void {
    this.out.push(bytes);
    this.outBytes += bytes.length;
  }

  private flush(): void {
    if (this.outBytes === 0 || this.socket.destroyed) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.ctx.stats.netOutputBytes += data.length;
    const ok = this.socket.write(data);
    if (this.socket.writableLength > this.ctx.limits.maxOutputBuffer) {
      // The client-output-buffer-limit of the RESP port: a reader this slow is cut off.
      this.socket.destroy();
      return;
    }
    if (!ok && this.replication === null) this.socket.pause();
  }


  /** Ends the connection: what is queued goes out, then the socket closes; nothing more is read. */
  close(): void {
    this.flush();
    if (this.socket.destroyed || this.closeCalled) return;
    this.closeCalled = true;
    this.closing = true;
    this.replication?.stop();
    this.socket.pause();
    this.socket.end(() => this.socket.destroy());
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** The socket is gone: drop the transaction levels, the subscriptions, the WAL follow. */
  private cleanup(): void {
    this.closing = true;
    this.replication?.stop();
    while (this.session.depth > 0) this.session.rollback();
    if (this.subscriber !== 0 && this.subscriptions() > 0) {
      void this.ctx.broker.unsubscribe(this.subscriber).catch(() => undefined);
    }
  }
}

/**
 * The arguments of a line, as redis-cli splits it (`PUBLISH news "breaking news"`). A line
 * whose quotes do not balance (`SET name O'Brien`, which the seed's clients send as is) is
 * split on whitespace alone, as the seed split every line.
 */
export function splitLine(line: Buffer): Buffer[] {
  const split = splitCommandLine(line, { maxLineBytes: line.length, maxArgs: line.length + 1 });
  if (split.ok) return split.args;
  const args: Buffer[] = [];
  let start = -1;
  for (let i = 0; i <= line.length; i++) {
    const space = i === line.length || line[i] === 0x20 || line[i] === 0x09 || line[i] === 0x0d || line[i] === 0x0b || line[i] === 0x0c;
    if (space && start >= 0) {
      args.push(line.subarray(start, i));
      start = -1;
    } else if (!space && start < 0) start = i;
  }
  return args;
}

function printable(b: Buffer): string {
  return b.subarray(0, 64).toString('utf8').replace(/[\r\n]/g, ' ');
}
