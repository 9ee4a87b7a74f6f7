// One client connection of the RESP front end: bytes in, commands through the executor or
// the front end's own handlers, replies out, in order.
// Owns: the parser and its limits (small until AUTH), the session (its BEGIN levels), the
// MULTI queue, the pub/sub subscriptions of this connection, its output back-pressure.
// Invariants:
// - commands of one connection run one after another, in arrival order, so a pipeline reads
//   its own writes and replies leave in order; many connections run concurrently, which is
//   where the actors' batching pays;
// - replies of a pipeline are gathered and written once the parser has no complete command
//   left (one write per burst, not per command);
// - a protocol error answers one error and closes this connection only;
// - a client whose unsent replies pass the output limit is disconnected (Redis' output
//   buffer limit) instead of growing memory; reading pauses while the socket is backed up.
import type { Socket } from 'node:net';
import { execute, executeChecked, errorReply, plainSetOf } from './executor.js';
import type { Database, Session } from '../db/api.js';
import type { BrokerPort, Delivery } from '../db/ports.js';
import { checkCommand, hasFlag, lookupCommand, type CheckResult, type CommandSpec } from '../protocol/commands.js';
import { OK, array, bulk, error, integer, push, simple, NULL_BULK, type Reply } from '../protocol/reply.js';
import { MultiState } from './multi_state.js';
import { statName } from './command_stats.js';
import { RespCommandParser } from '../protocol/resp_parser.js';
import { ReplyWriter } from '../protocol/resp_writer.js';
import { UNAUTHENTICATED_TCP_LIMITS, type TcpLimits } from '../protocol/tcp_limits.js';
import {
  authCommand,
  clientCommand,
  commandCommand,
  configCommand,
  helloCommand,
  infoCommand,
  selectCommand,
  type ClientMetrics,
  type ClientState,
  type ServerState,
} from './server_commands.js';
import { drained } from './socket_drain.js';
import { signCommand } from './sign_command.js';
import { DEFAULT_LIMITS } from '../db/api.js';
import type { FrontEndStats } from './command_stats.js';
import type { ReplicationHub } from './replication_hub.js';
import { READONLY_TEXT } from '../db/read_only.js';
import { lsnCommand, replicaofCommand, roleCommand, waitCommand, waitLsnCommand } from './replication_commands.js';
import type { ReplicaSource } from './replica_source.js';
export type { FrontEndStats } from './command_stats.js';


export interface ConnectionContext {
  db: Database;
  broker: BrokerPort;
  server: ServerState;
  limits: TcpLimits;
  stats: FrontEndStats;
  clients: Map<number, ClientState>;
  /** Subscriber ids are unique per front end thread. */
  nextSubscriberId(): number;
  /** The replicas streamed from this thread (BRISE.SYNC); absent: none may start here. */
  replication?: ReplicationHub;
}

/** Commands allowed in RESP2 subscribed mode (Redis: only these and RESET). */
const PUBSUB_ALLOWED = new Set(['subscribe', 'unsubscribe', 'psubscribe', 'punsubscribe', 'ssubscribe', 'sunsubscribe', 'ping', 'quit', 'stop', 'exit', 'reset']);
/**
 * Single-key read-modify-write commands a pipeline may run at once: each handler reaches
 * Session.update synchronously, so they queue on their keys in pipeline order, and the key's
 * batches keep that order through retries (src/db/key_updates.ts). They then ride one commit.
 */
const PIPELINED_UPDATES = new Set(['incr', 'decr', 'incrby', 'decrby', 'incrbyfloat', 'append']);
/** Commands allowed before AUTH when a password is set. */
const NOAUTH_ALLOWED = new Set(['auth', 'hello', 'quit', 'stop', 'exit', 'reset']);
/**
 * Commands refused after MULTI, dooming the EXEC (Redis' no-multi): the pub/sub ones, which
 * would change the connection's mode, and BEGIN/COMMIT/ROLLBACK, whose levels EXEC owns.
 */
const NOT_IN_MULTI = new Set(['subscribe', 'unsubscribe', 'psubscribe', 'punsubscribe', 'ssubscribe', 'sunsubscribe', 'begin', 'commit', 'rollback', 'save']);
/** Commands that act on MULTI itself: never queued. */
const MULTI_CONTROL = new Set(['exec', 'discard', 'multi', 'quit', 'exit', 'stop', 'watch', 'reset']);
/** The query buffer grows in chunks of this size (CLIENT LIST qbuf-free is what is left of one). */
const QUERY_BUFFER_CHUNK = 16 * 1024;
/** Commands taken from the buffer in one burst (bounds the replies held at once). */
const MAX_BURST = 1024;
/** Argument bytes taken in one burst. */
const BURST_BYTES = 2 * 1024 * 1024;
/** Reads of one group (one index request): a pipeline of 1 MB GETs must not read all its values at once. */
const MAX_GROUP = 16;
/**
 * Plain SETs of one group (one append per volume group, one WAL record, one commit): a bulk
 * load (`redis-cli --pipe`) pays each commit's fsyncs once per this many SETs, not per 16.
 * Their bytes are bounded by the burst's (BURST_BYTES).
 */
const MAX_SET_GROUP = 1024;
/** Unprocessed input past which the socket stops being read. */
const INPUT_HIGH_WATER = 4 * 1024 * 1024;
/** Unsent output past which a burst waits for the client to read. */
const OUTPUT_HIGH_WATER = 4 * 1024 * 1024;
/** Write replies once this many bytes are gathered, even mid-pipeline. */
const FLUSH_BYTES = 64 * 1024;
/** How long a closing socket may take to drain before it is destroyed. */
const CLOSE_GRACE_MS = 5000;

let nextClientId = 1;

export class RespConnection {
  readonly client: ClientState;
  private readonly parser: RespCommandParser;
  private readonly writer = new ReplyWriter();
  private readonly session: Session;
  private running = false;
  private inputPaused = false;
  /** The client shut down its write side: answer what it sent, then end. */
  private inputEnded = false;
  /** Replies given by runGets so far (to resume after a failure part-way through a group). */
  private writerCount = 0;
  private closing = false;
  /** Set while this connection runs CLIENT, so that a CLIENT KILL of itself waits for its reply. */
  private inClientCommand = false;
  private killAfterReply = false;
  private readonly multi = new MultiState();
  /** Error replies written so far (a command failed when it moved). */
  private errorReplies = 0;
  /** Argument bytes of the burst being run (CLIENT LIST argv-mem). */
  private argvBytes = 0;
  private subscriber = 0;
  /** Set once BRISE.SYNC turned this connection into a replication stream. */
  private replicaSource: ReplicaSource | null = null;
  /** REPLCONF listening-port: the port the replica serves clients on (INFO replication). */
  private listeningPort = 0;
  private readonly channels = new Set<string>();
  private readonly patterns = new Set<string>();
  /** Shard channels (SSUBSCRIBE): a namespace of their own, counted apart as Redis counts them. */
  private readonly shardChannels = new Set<string>();
  /** Resolves when the current burst of commands has been answered (for graceful stop). */
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => undefined;

  constructor(private readonly socket: Socket, private readonly ctx: ConnectionContext) {
    const needAuth = ctx.server.requirepass !== null;
    this.parser = new RespCommandParser(needAuth ? { ...ctx.limits, maxQueryBuffer: UNAUTHENTICATED_TCP_LIMITS.maxQueryBuffer } : ctx.limits);
    if (needAuth) this.parser.setPreAuthLimits(UNAUTHENTICATED_TCP_LIMITS);
    this.session = ctx.db.session();
    const now = Date.now();
    this.client = {
      id: nextClientId++,
      addr: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`,
      laddr: `${socket.localAddress ?? '?'}:${socket.localPort ?? 0}`,
      createdAt: now,
      name: null,
      libName: null,
      libVer: null,
      proto: 2,
      authenticated: !needAuth,
      lastCommand: 'NULL',
      lastActiveAt: now,
      subscriptions: 0,
      inMulti: false,
    };
    this.client.metrics = () => this.metrics();
    // Killed by another client: at once, its pending replies dropped (as Redis frees it); by
    // itself: once the reply to its CLIENT KILL is out.
    this.client.kill = () => {
      if (this.inClientCommand) this.killAfterReply = true;
      else this.socket.destroy();
    };
    ctx.clients.set(this.client.id, this.client);
    ctx.stats.connectionsReceived += 1;
    socket.setNoDelay(true);
    this.applyTimeout();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      if (!this.closing) socket.resume();
    });
    // The client shut down its write side (FIN: `nc -N`, `echo ... | nc -q1`): every command
    // it sent before is still answered, then the connection ends (the server is half-open).
    socket.on('end', () => {
      this.inputEnded = true;
      if (!this.running) this.endAfterInput();
    });
    socket.on('error', () => this.close());
    socket.on('close', () => this.cleanup());
  }

  /** CONFIG SET changed the limits: this connection follows them at once. */
  applySettings(): void {
    if (this.client.authenticated) this.parser.setLimits(this.ctx.limits);
    this.applyTimeout();
  }

  /** Redis' `timeout`: a client silent that long is closed (0: never). */
  private applyTimeout(): void {
    const seconds = this.ctx.limits.idleTimeoutSeconds;
    this.socket.setTimeout(seconds * 1000);
    this.socket.removeAllListeners('timeout');
    if (seconds > 0) this.socket.on('timeout', () => this.close());
  }

  /** CLIENT LIST's view of this connection's buffers. */
  private metrics(): ClientMetrics {
    const qbuf = this.parser.buffered;
    return {
      qbuf,
      qbufFree: Math.max(0, QUERY_BUFFER_CHUNK - (qbuf % QUERY_BUFFER_CHUNK)),
      argvMem: this.argvBytes,
      multi: this.multi.queued,
      multiMem: this.multi.memory,
      obl: this.writer.length,
      omem: this.socket.writableLength,
      oll: this.socket.writableLength > 0 ? 1 : 0,
    };
  }

  /** The client sent its last byte and everything it asked is answered: end the connection. */
  private endAfterInput(): void {
    this.flush();
    this.close();
  }

  /** Graceful stop: no more input; the burst in progress is answered, then the socket ends. */
  async shutdown(): Promise<void> {
    this.socket.pause();
    await this.idle;
    this.close();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.client.lastActiveAt = Date.now();
    this.ctx.stats.netInputBytes += chunk.length;
    this.parser.push(chunk);
    // Input is bounded: while a burst runs and this much more waits behind it, stop reading
    // (the kernel's socket buffer, then TCP flow control, hold the rest); the pump resumes
    // reading when it is done. An incomplete command keeps reading (the parser's own limits
    // bound it), else a value larger than the watermark could never arrive.
    if (this.running && this.parser.buffered > INPUT_HIGH_WATER && !this.inputPaused) {
      this.inputPaused = true;
      this.socket.pause();
    }
    if (!this.running) void this.pump();
  }

  /**
   * Runs every complete command in the buffer, in order; one write per burst. Within a burst
   * (a pipeline), a run of consecutive reads runs concurrently, a run of single-key counters
   * and APPENDs too (each key's updates keep their order), and a run of consecutive plain
   * SETs is written as one batch: a connection then keeps many requests in flight, which is
   * what lets the actors batch. Anything else runs alone, after what came before it, so a
   * pipeline always reads its own writes and its replies leave in order.
   */
  private async pump(): Promise<void> {
    this.running = true;
    this.idle = new Promise((resolve) => (this.markIdle = resolve));
    try {
      while (!this.closing) {
        const burst = this.takeBurst();
        if (burst.commands.length === 0 && burst.error === null) break;
        await this.runBurst(burst.commands);
        if (burst.error !== null) {
          this.ctx.stats.protocolErrors += 1;
          this.reply(error(`ERR ${burst.error}`));
          this.flush();
          this.close();
          break;
        }
        // A burst answered leaves now: a client that pipelines without pause (its input never
        // runs dry) must not wait for the loop to end to get its replies.
        this.flush();
      }
    } catch (err) {
      // A bug in a handler must not take the connection's state down silently.
      this.reply(errorReply(err));
    } finally {
      this.flush();
      this.running = false;
      if (this.inputPaused && !this.closing) {
        this.inputPaused = false;
        this.socket.resume();
      }
      this.markIdle();
      // The loop ran every complete command it had; after the client's FIN no more can come
      // (what is left is a command cut short, which Redis drops too).
      if (this.inputEnded && !this.closing) this.endAfterInput();
    }
  }

  /** The complete commands buffered now (at most MAX_BURST of them, about BURST_BYTES), and a protocol error after them. */
  private takeBurst(): { commands: Buffer[][]; error: string | null } {
    const commands: Buffer[][] = [];
    let bytes = 0;
    while (commands.length < MAX_BURST && bytes < BURST_BYTES) {
      const parsed = this.parser.next();
      if (parsed.kind === 'need-more') break;
      if (parsed.kind === 'error') return { commands, error: parsed.message };
      commands.push(parsed.args);
      for (const a of parsed.args) bytes += a.length;
    }
    return { commands, error: null };
  }

  private async runBurst(commands: Buffer[][]): Promise<void> {
    this.argvBytes = 0;
    for (const argv of commands) for (const a of argv) this.argvBytes += a.length;
    try {
      await this.runCommands(commands);
    } finally {
      this.argvBytes = 0;
    }
  }

  private async runCommands(commands: Buffer[][]): Promise<void> {
    // Each command is checked against the table once, here, and the result passed along.
    const checks = commands.map((argv) => checkCommand(argv));
    let i = 0;
    while (i < commands.length && !this.closing) {
      const kind = this.groupKind(commands[i]!, checks[i]!);
      let j = i + 1;
      // A group is bounded: a pipeline of 1 MB GETs must not read all its values at once.
      const most = kind === 'set' ? MAX_SET_GROUP : MAX_GROUP;
      if (kind !== 'alone') while (j < commands.length && j - i < most && this.groupKind(commands[j]!, checks[j]!) === kind) j++;
      if (j - i === 1) await this.dispatch(commands[i]!, checks[i]!);
      else if (kind === 'read' || kind === 'update') await this.runTogether(commands.slice(i, j), checks.slice(i, j));
      else await this.runSets(commands.slice(i, j));
      i = j;
      if (this.writer.length >= FLUSH_BYTES) this.flush();
      // Output back-pressure: a client not reading stops its own burst here (and one past
      // the output limit was disconnected by flush).
      if (this.socket.writableLength > OUTPUT_HIGH_WATER) await drained(this.socket);
    }
  }


  /** Why a write may not run here now (a replica; too few good replicas), or null. */
  private writeRefusal(): string | null {
    if (this.ctx.server.readOnly?.() === true) return `READONLY ${READONLY_TEXT}`;
    return this.ctx.server.replication?.table.writeRefusal(Date.now()) ?? null;
  }

  /** Which commands may share a group: plain reads, or plain SETs outside any transaction. */
  private groupKind(argv: Buffer[], checked: CheckResult): 'read' | 'set' | 'update' | 'alone' {
    if (this.multi.active || !this.client.authenticated || this.inSubscribedMode()) return 'alone';
    if (!checked.ok) return 'alone';
    const { spec } = checked;
    if (hasFlag(spec, 'front-end')) return 'alone';
    if (hasFlag(spec, 'readonly')) return 'read';
    if (this.writeRefusal() !== null) return 'alone'; // writes are refused one by one
    if (spec.name === 'set' && this.session.depth === 0 && plainSetOf(argv) !== null) return 'set';
    if (PIPELINED_UPDATES.has(spec.name) && this.session.depth === 0) return 'update';
    return 'alone';
  }

  /** A group of reads, or of pipelined updates: started together, answered in order. */
  private async runTogether(group: Buffer[][], checks: CheckResult[]): Promise<void> {
    this.ctx.stats.commandsProcessed += group.length;
    this.client.lastCommand = checkName(group[group.length - 1]!);
    const start = process.hrtime.bigint();
    if (group.every(isPlainGet)) {
      await this.runGets(group);
      const usec = Number(process.hrtime.bigint() - start) / 1000 / group.length;
      for (const argv of group) this.account(argv, 'get', usec, false);
      return;
    }
    const replies = await Promise.all(
      group.map((argv, k) => {
        const c = checks[k]!;
        return c.ok ? executeChecked(this.session, argv, c.spec, this.ctx.db) : Promise.resolve(c.reply);
      }),
    );
    const usec = Number(process.hrtime.bigint() - start) / 1000 / group.length;
    replies.forEach((r, k) => {
      const c = checks[k]!;
      if (c.ok) this.account(group[k]!, c.spec.name, usec, r.kind === 'error');
      this.reply(r);
    });
  }

  /**
   * A pipeline's run of GETs: one index request for all of them, then each value read and
   * answered in turn, waiting for the client to read when its unsent replies pile up.
   */
  private async runGets(group: Buffer[][]): Promise<void> {
    const answered = this.writerCount;
    try {
      await this.session.getEach(group.map((argv) => argv[1]!), async (v) => {
        this.reply(v === null ? NULL_BULK : bulk(v));
        this.writerCount++;
        if (this.writer.length >= FLUSH_BYTES) this.flush();
        if (this.socket.writableLength > OUTPUT_HIGH_WATER) await drained(this.socket);
      });
    } catch {
      // One bad key (too long, damaged needle) answers its own error: the rest one by one.
      const done = this.writerCount - answered;
      const rest = await Promise.all(group.slice(done).map((argv) => execute(this.session, argv, this.ctx.db)));
      for (const r of rest) this.reply(r);
    }
  }

  private async runSets(group: Buffer[][]): Promise<void> {
    this.ctx.stats.commandsProcessed += group.length;
    this.client.lastCommand = 'set';
    const items = group.map((argv) => plainSetOf(argv)!);
    const start = process.hrtime.bigint();
    const results = await this.session.setMany(items);
    const usec = Number(process.hrtime.bigint() - start) / 1000 / group.length;
    results.forEach((err, k) => {
      this.account(group[k]!, 'set', usec, err !== null);
      this.reply(err === null ? OK : errorReply(err));
    });
  }

  private async dispatch(argv: Buffer[], checked: CheckResult = checkCommand(argv)): Promise<void> {
    this.ctx.stats.commandsProcessed += 1;
    if (!checked.ok) {
      if (this.multi.active) this.multi.markFailed();
      const known = checkName(argv);
      if (lookupCommand(known) !== undefined) this.ctx.stats.commands.reject(known);
      // As Redis (execCommandAbort): a rejected EXEC discards the transaction and the watches,
      // and says why in an EXECABORT, in MULTI or not.
      if (known === 'exec' && checked.reply.kind === 'error') {
        this.multi.reset();
        this.client.inMulti = false;
        this.reply(error(`EXECABORT Transaction discarded because of: ${checked.reply.message.replace(/^ERR /, '')}`));
        return;
      }
      this.reply(checked.reply);
      return;
    }
    const { spec } = checked;
    const name = spec.name;
    // A replication stream answers nothing: only REPLCONF ACK comes in on it.
    if (this.replicaSource !== null && name !== 'replconf') return;
    this.client.lastCommand = statName(name, argv);
    if (!this.client.authenticated && !NOAUTH_ALLOWED.has(name)) {
      this.ctx.stats.commands.reject(name);
      this.reply(error('NOAUTH Authentication required.'));
      return;
    }
    // As Redis on a replica: a write is refused before it runs, and inside MULTI it dooms EXEC;
    // so is a write on a master with fewer good replicas than min-replicas-to-write.
    const refusal = hasFlag(spec, 'write') ? this.writeRefusal() : null;
    if (refusal !== null) {
      this.ctx.stats.commands.reject(name);
      if (this.multi.active) this.multi.markFailed();
      this.reply(error(refusal));
      return;
    }
    if (this.multi.active && !MULTI_CONTROL.has(name)) {
      this.queueInMulti(argv, name);
      return;
    }
    if (this.inSubscribedMode() && !PUBSUB_ALLOWED.has(name)) {
      this.ctx.stats.commands.reject(name);
      this.reply(error(`ERR Can't execute '${name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`));
      return;
    }
    const errors = this.errorReplies;
    const start = process.hrtime.bigint();
    try {
      await this.run(spec, argv);
    } catch (err) {
      // One failing command answers its error; the commands pipelined after it still run.
      this.reply(errorReply(err, spec));
    }
    this.account(argv, name, Number(process.hrtime.bigint() - start) / 1000, this.errorReplies > errors);
    if (this.killAfterReply) {
      this.flush();
      this.closeAfterFlush();
    }
  }

  private async run(spec: CommandSpec, argv: Buffer[]): Promise<void> {
    const name = spec.name;
    switch (name) {
      case 'quit':
      case 'exit':
      case 'stop':
        this.reply(OK);
        this.flush();
        this.closeAfterFlush();
        return;
      case 'multi':
        this.client.inMulti = true;
        return this.reply(this.multi.begin());
      case 'exec':
        this.client.inMulti = false;
        return this.reply(await this.multi.exec(this.session, (queued) => this.runQueued(queued)));
      case 'discard':
        this.client.inMulti = false;
        return this.reply(this.multi.discard());
      case 'watch':
        return this.reply(await this.multi.watch(this.session, argv.slice(1)));
      case 'reset':
        return this.onReset();
      case 'subscribe':
      case 'psubscribe':
      case 'ssubscribe':
        return this.onSubscribe(name, argv.slice(1));
      case 'unsubscribe':
      case 'punsubscribe':
      case 'sunsubscribe':
        return this.onUnsubscribe(name, argv.slice(1));
      case 'ping':
        if (this.inSubscribedMode()) return this.reply(array([bulk('pong'), bulk(argv[1] ?? '')]));
        break;
      case 'brise.sync':
        return this.startReplicaStream(argv);
      case 'replconf':
        return this.onReplconf(argv);
      default:
        break;
    }
    this.reply(await this.answer(spec, argv));
  }

  // ---- replication (docs/replica.md) ------------------------------------------------------

  /** BRISE.SYNC: from now on the connection carries frames out and REPLCONF ACKs in. */
  private startReplicaStream(argv: Buffer[]): void {
    const hub = this.ctx.replication;
    if (hub === undefined) return this.reply(error('ERR replication is not served on this port'));
    if (this.multi.active || this.session.depth > 0 || this.inSubscribedMode()) return this.reply(error('ERR BRISE.SYNC is not allowed in a transaction or in subscribed mode'));
    // Replies given before (AUTH, REPLCONF) leave before the stream's first line.
    this.flush();
    try {
      this.replicaSource = hub.start(this.socket, argv.slice(1), this.client.addr, this.listeningPort);
    } catch (err) {
      this.reply(errorReply(err));
      return;
    }
    this.client.lastCommand = 'brise.sync';
    // A replica is silent between ACKs (one a second); Redis never times out its replicas either.
    this.socket.setTimeout(0);
    this.socket.removeAllListeners('timeout');
  }

  private async replicationCommand(name: string, argv: Buffer[]): Promise<Reply> {
    const state = this.ctx.server.replication;
    if (state === undefined) return error(`ERR ${name.toUpperCase()} is not served here`);
    const closed = (): boolean => this.closing || this.socket.destroyed;
    switch (name) {
      case 'role':
        return roleCommand(state);
      case 'wait':
        return waitCommand(argv, state, closed);
      case 'brise.lsn':
        return lsnCommand(state);
      case 'brise.waitlsn':
        return waitLsnCommand(argv, state, closed);
      default:
        return replicaofCommand(argv, state);
    }
  }

  private onReplconf(argv: Buffer[]): void {
    const sub = (argv[1]?.toString('utf8') ?? '').toLowerCase();
    const value = argv[2]?.toString('utf8') ?? '';
    if (sub === 'ack' && this.replicaSource !== null) {
      const lsn = Number(value);
      if (Number.isSafeInteger(lsn) && lsn >= 0) this.ctx.replication?.ack(this.replicaSource, lsn);
      return; // no reply, as Redis answers no REPLCONF ACK
    }
    if (sub === 'listening-port') {
      const port = Number(value);
      if (!Number.isInteger(port) || port < 0 || port > 65535) return this.reply(error('ERR listening-port is not a port'));
      this.listeningPort = port;
    }
    this.reply(OK);
  }

  /**
   * The reply of a command that only answers (the executor's, or the front end's own that
   * change nothing but the connection's settings): run now, or by EXEC from the queue.
   */
  private async answer(spec: CommandSpec, argv: Buffer[]): Promise<Reply> {
    const { server } = this.ctx;
    switch (spec.name) {
      case 'auth':
        return this.applyAuth(authCommand(argv, server));
      case 'hello':
        return this.applyAuth(helloCommand(argv, this.client, server));
      case 'select':
        return selectCommand(argv);
      case 'client':
        this.inClientCommand = true;
        try {
          return clientCommand(argv, this.client, server);
        } finally {
          this.inClientCommand = false;
        }
      case 'config':
        return configCommand(argv, this.client, server);
      case 'sign':
        return signCommand(argv, server.httpToken ?? null, Date.now(), DEFAULT_LIMITS.maxKeyLength);
      case 'command':
        return commandCommand(argv);
      case 'info':
        return infoCommand(argv, server);
      case 'unwatch':
        return this.multi.unwatch();
      case 'role':
      case 'wait':
      case 'replicaof':
      case 'slaveof':
      case 'brise.lsn':
      case 'brise.waitlsn':
        return this.replicationCommand(spec.name, argv);
      default:
        return executeChecked(this.session, argv, spec, this.ctx.db);
    }
  }

  /** A command queued by MULTI, run by EXEC (it passed the table when queued). */
  private async runQueued(argv: Buffer[]): Promise<Reply> {
    const checked = checkCommand(argv);
    if (!checked.ok) return checked.reply;
    this.ctx.stats.commandsProcessed += 1;
    const start = process.hrtime.bigint();
    const reply = await this.answer(checked.spec, argv);
    this.account(argv, checked.spec.name, Number(process.hrtime.bigint() - start) / 1000, reply.kind === 'error');
    // Errors inside EXEC's array count in errorstats, as Redis counts them.
    this.ctx.stats.commands.error(reply);
    return reply;
  }

  // ---- AUTH ----------------------------------------------------------------------------

  private applyAuth(effect: { reply: Reply; authenticated?: boolean }): Reply {
    if (effect.authenticated) {
      this.client.authenticated = true;
      this.parser.setLimits(this.ctx.limits);
      this.parser.setPreAuthLimits(null);
    }
    return effect.reply;
  }

  /** RESET: the connection as new (Redis' resetCommand). */
  private async onReset(): Promise<void> {
    this.multi.reset();
    this.client.inMulti = false;
    while (this.session.depth > 0) this.session.rollback();
    if (this.subscriptionCount() > 0 && this.subscriber !== 0) {
      await this.ctx.broker.unsubscribe(this.subscriber).catch(() => undefined);
    }
    this.channels.clear();
    this.patterns.clear();
    this.shardChannels.clear();
    this.client.subscriptions = 0;
    this.client.name = null;
    this.client.proto = 2;
    if (this.ctx.server.requirepass !== null && this.client.authenticated) {
      this.client.authenticated = false;
      this.parser.setPreAuthLimits(UNAUTHENTICATED_TCP_LIMITS);
    }
    this.reply(simple('RESET'));
  }

  // ---- MULTI / EXEC ----------------------------------------------------------------------

  private queueInMulti(argv: Buffer[], name: string): void {
    if (NOT_IN_MULTI.has(name)) {
      this.ctx.stats.commands.reject(name);
      this.multi.markFailed();
      this.reply(error('ERR Command not allowed inside a transaction'));
      return;
    }
    this.reply(this.multi.add(argv));
  }

  // ---- pub/sub -------------------------------------------------------------------------

  private inSubscribedMode(): boolean {
    return this.client.proto === 2 && this.subscriptionCount() > 0;
  }

  private subscriptionCount(): number {
    return this.channels.size + this.patterns.size + this.shardChannels.size;
  }

  /** The count a (un)subscribe confirmation carries: shard channels apart, as Redis. */
  private countFor(kind: string): number {
    return kind.startsWith('s') && kind !== 'subscribe' ? this.shardChannels.size : this.channels.size + this.patterns.size;
  }

  private setFor(kind: string): Set<string> {
    if (kind === 'subscribe' || kind === 'unsubscribe') return this.channels;
    if (kind === 'psubscribe' || kind === 'punsubscribe') return this.patterns;
    return this.shardChannels;
  }

  private async onSubscribe(kind: 'subscribe' | 'psubscribe' | 'ssubscribe', names: Buffer[]): Promise<void> {
    if (this.subscriber === 0) this.subscriber = this.ctx.nextSubscriberId();
    const set = this.setFor(kind);
    const fresh = names.filter((n) => !set.has(n.toString('latin1')));
    if (fresh.length > 0) {
      const channels = kind === 'subscribe' ? fresh : [];
      const patterns = kind === 'psubscribe' ? fresh : [];
      const shard = kind === 'ssubscribe' ? fresh : [];
      await this.ctx.broker.subscribe(this.subscriber, channels, patterns, (d) => this.deliver(d), shard);
    }
    for (const n of names) {
      set.add(n.toString('latin1'));
      this.client.subscriptions = this.subscriptionCount();
      this.pushReply([bulk(kind), bulk(n), integer(this.countFor(kind))]);
    }
  }

  private async onUnsubscribe(kind: 'unsubscribe' | 'punsubscribe' | 'sunsubscribe', names: Buffer[]): Promise<void> {
    const set = this.setFor(kind);
    const targets = names.length > 0 ? names : [...set].map((n) => Buffer.from(n, 'latin1'));
    if (targets.length === 0) {
      this.pushReply([bulk(kind), NULL_BULK, integer(this.countFor(kind))]);
      return;
    }
    const known = targets.filter((n) => set.has(n.toString('latin1')));
    if (known.length > 0 && this.subscriber !== 0) {
      const only = (k: string): Buffer[] => (kind === k ? known : []);
      await this.ctx.broker.unsubscribe(this.subscriber, only('unsubscribe'), only('punsubscribe'), only('sunsubscribe'));
    }
    for (const n of targets) {
      set.delete(n.toString('latin1'));
      this.client.subscriptions = this.subscriptionCount();
      this.pushReply([bulk(kind), bulk(n), integer(this.countFor(kind))]);
    }
  }

  /** A message from the broker: written at once (it is not the answer to a command). */
  private deliver(d: Delivery): void {
    if (this.closing) return;
    const items = d.pattern !== undefined
      ? [bulk('pmessage'), bulk(d.pattern), bulk(d.channel), bulk(d.payload)]
      : [bulk(d.shard === true ? 'smessage' : 'message'), bulk(d.channel), bulk(d.payload)];
    this.pushReply(items);
    if (!this.running) this.flush();
  }

  /** Pub/sub frames: RESP3 push (>), RESP2 array. */
  private pushReply(items: Reply[]): void {
    this.reply(this.client.proto === 3 ? push(items) : array(items));
  }

  // ---- output ----------------------------------------------------------------------------

  private reply(reply: Reply): void {
    if (reply.kind === 'error') {
      this.errorReplies += 1;
      this.ctx.stats.commands.error(reply);
    }
    this.writer.reply(reply, this.client.proto);
  }

  /** One command that ran: INFO commandstats (`failed`: it answered an error). */
  private account(argv: Buffer[], name: string, usec: number, failed: boolean): void {
    this.ctx.stats.commands.call(statName(name, argv), usec, failed);
  }

  private flush(): void {
    if (this.writer.length === 0 || this.socket.destroyed) return;
    const chunks = this.writer.takeChunks();
    let ok = true;
    for (const chunk of chunks) {
      this.ctx.stats.netOutputBytes += chunk.length;
      ok = this.socket.write(chunk);
    }
    if (this.socket.writableLength > this.ctx.limits.maxOutputBuffer) {
      // Redis' client-output-buffer-limit: a reader this slow is cut off, not buffered for.
      this.socket.destroy();
      return;
    }
    if (!ok) this.socket.pause();
  }

  private closeAfterFlush(): void {
    this.closing = true;
    this.socket.end();
  }

  /**
   * Ends the connection as Redis does: the replies already written go out, then the socket is
   * closed at once; nothing more is read meanwhile (after a protocol error a client that keeps
   * sending must not be read for seconds).
   */
  close(): void {
    if (this.socket.destroyed) return;
    this.closing = true;
    this.socket.pause();
    this.socket.end(() => this.socket.destroy());
    // A peer that never reads its last bytes must not hold the socket open.
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** The socket is gone: drop the transaction levels and the subscriptions. */
  private cleanup(): void {
    this.closing = true;
    this.ctx.clients.delete(this.client.id);
    this.multi.reset();
    while (this.session.depth > 0) this.session.rollback();
    if (this.subscriber !== 0 && this.subscriptionCount() > 0) {
      void this.ctx.broker.unsubscribe(this.subscriber).catch(() => undefined);
    }
  }
}


function isPlainGet(argv: Buffer[]): boolean {
  const name = argv[0]!;
  return argv.length === 2 && name.length === 3 && (name[0]! | 0x20) === 0x67 && (name[1]! | 0x20) === 0x65 && (name[2]! | 0x20) === 0x74;
}

function checkName(argv: Buffer[]): string {
  return argv[0]!.toString('latin1').toLowerCase();
}
