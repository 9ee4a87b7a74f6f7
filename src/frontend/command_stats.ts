// Per-command and per-error counters of a front end, as Redis keeps them for INFO commandstats
// (calls, usec, rejected_calls: refused before running, failed_calls: ran and answered an error)
// and INFO errorstats (error replies by their first word). CONFIG RESETSTAT clears them.
// Bounded: command names come from the table (plus their subcommands, capped), error prefixes
// are capped; past a cap the rest is counted under one "other" name.
import type { Reply } from '../protocol/reply.js';

interface CommandCounters {
  calls: number;
  usec: number;
  rejected: number;
  failed: number;
}

/** Distinct names kept (commands with subcommands, error prefixes); past it: "other". */
const MAX_NAMES = 1024;
const OTHER = 'other';

export class CommandStats {
  private readonly commands = new Map<string, CommandCounters>();
  private readonly errors = new Map<string, number>();
  private errorReplies = 0;

  /** A command that ran: its time, and whether it answered an error. */
  call(name: string, usec: number, failed: boolean): void {
    const c = this.counters(name);
    c.calls += 1;
    c.usec += Math.max(0, Math.round(usec));
    if (failed) c.failed += 1;
  }

  /** A command refused before it ran (arity, NOAUTH, not allowed in MULTI...). */
  reject(name: string): void {
    this.counters(name).rejected += 1;
  }

  /** Every error reply, counted by its first word (ERR, WRONGTYPE, EXECABORT, NOAUTH...). */
  error(reply: Reply): void {
    if (reply.kind !== 'error') return;
    this.errorReplies += 1;
    const space = reply.message.indexOf(' ');
    let prefix = space < 0 ? reply.message : reply.message.slice(0, space);
    if (!this.errors.has(prefix) && this.errors.size >= MAX_NAMES) prefix = OTHER;
    this.errors.set(prefix, (this.errors.get(prefix) ?? 0) + 1);
  }

  get totalErrorReplies(): number {
    return this.errorReplies;
  }

  reset(): void {
    this.commands.clear();
    this.errors.clear();
    this.errorReplies = 0;
  }

  /** INFO commandstats lines, in Redis' format. */
  commandLines(): string[] {
    return [...this.commands].map(([name, c]) => {
      const perCall = c.calls === 0 ? 0 : c.usec / c.calls;
      return `cmdstat_${name}:calls=${c.calls},usec=${c.usec},usec_per_call=${perCall.toFixed(2)},rejected_calls=${c.rejected},failed_calls=${c.failed}`;
    });
  }

  /** INFO errorstats lines. */
  errorLines(): string[] {
    return [...this.errors].map(([prefix, count]) => `errorstat_${prefix}:count=${count}`);
  }

  private counters(name: string): CommandCounters {
    let c = this.commands.get(name);
    if (c === undefined) {
      if (this.commands.size >= MAX_NAMES) return this.counters(OTHER);
      this.commands.set(name, (c = { calls: 0, usec: 0, rejected: 0, failed: 0 }));
    }
    return c;
  }
}

/**
 * Commands whose statistics (and CLIENT LIST cmd=) are kept per subcommand: `client|list`. Only
 * subcommands that exist get a line of their own: any client could otherwise grow the table
 * without bound with made-up names (Redis records nothing for those; here they count under the
 * command).
 */
const CONTAINERS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['client', new Set(['setname', 'getname', 'setinfo', 'id', 'info', 'list', 'kill', 'no-evict', 'no-touch', 'help'])],
  ['config', new Set(['get', 'set', 'resetstat', 'rewrite', 'help'])],
  ['command', new Set(['count', 'info', 'list', 'docs', 'help'])],
  ['object', new Set(['encoding', 'freq', 'idletime', 'refcount', 'help'])],
  ['pubsub', new Set(['channels', 'numsub', 'numpat', 'shardchannels', 'shardnumsub', 'help'])],
  ['function', new Set(['flush', 'list', 'help'])],
]);

/** The name a command is counted under: `get`, or `client|list` for a container command. */
export function statName(name: string, argv: readonly Buffer[]): string {
  const subs = CONTAINERS.get(name);
  if (subs === undefined || argv.length < 2 || argv[1]!.length > 32) return name;
  const sub = argv[1]!.toString('latin1').toLowerCase();
  return subs.has(sub) ? `${name}|${sub}` : name;
}

/** Counters shared by every connection of a front end (INFO stats). */
export interface FrontEndStats {
  connectionsReceived: number;
  commandsProcessed: number;
  rejectedConnections: number;
  protocolErrors: number;
  netInputBytes: number;
  netOutputBytes: number;
  /** INFO commandstats and errorstats. */
  commands: CommandStats;
}
