// What CONFIG GET and CONFIG SET see and change on a running TCP front end: the parameters
// BriseDB has, by Redis' names, each with Redis' parsing (integers, memory sizes like "2mb",
// keyspace-event classes), bounds and error texts. A change applies at once to every
// connection of this front end (the front end is told through `onChange`). Parameters of Redis
// that BriseDB does not have, or holds fixed (save, appendonly...), may be "set" to the value
// they have, which answers OK; anything else answers Redis' own error for it.
import { NOTIFY_ALL_CLASSES, parseNotifyFlags, formatNotifyFlags } from '../protocol/keyspace_events.js';
import type { TcpLimits } from '../protocol/tcp_limits.js';

/** The settings a front end reads live. */
export interface Settings {
  limits: TcpLimits;
  requirepass: string | null;
  /** Keyspace notification classes, as flags (keyspace_events.ts). */
  notifyKeyspaceEvents: number;
  /** min-replicas-to-write and min-replicas-max-lag: shared by every thread (runtime/replica_table.ts). */
  replicas?: { minReplicasToWrite: number; minReplicasMaxLag: number };
}

interface Param {
  get(s: Settings): string;
  /** Parses and checks; answers the reason it is refused, or a function that applies it. */
  parse(value: string): string | ((s: Settings) => void);
}

const I32_MAX = 2147483647;
const U32_MAX = 4294967295;
const MB = 1024 * 1024;

function intParam(min: number, max: number, read: (s: Settings) => number, write: (s: Settings, v: number) => void): Param {
  return {
    get: (s) => String(read(s)),
    parse(value) {
      if (!/^-?[0-9]+$/.test(value)) return "argument couldn't be parsed into an integer";
      const n = Number(value);
      if (n < min || n > max) return `argument must be between ${min} and ${max} inclusive`;
      return (s) => write(s, n);
    },
  };
}

/** Redis' memtoull: a number with an optional unit b, k, kb, m, mb, g, gb (k = 1000, kb = 1024). */
export function parseMemory(value: string): number | null {
  const m = /^([0-9]+)(b|k|kb|m|mb|g|gb)?$/i.exec(value);
  if (m === null) return null;
  const mul: Record<string, number> = { b: 1, k: 1000, kb: 1024, m: 1000 ** 2, mb: 1024 ** 2, g: 1000 ** 3, gb: 1024 ** 3 };
  const n = Number(m[1]) * mul[(m[2] ?? 'b').toLowerCase()]!;
  return Number.isSafeInteger(n) ? n : null;
}

function memoryParam(min: number, read: (s: Settings) => number, write: (s: Settings, v: number) => void): Param {
  return {
    get: (s) => String(read(s)),
    parse(value) {
      const n = parseMemory(value);
      if (n === null) return 'argument must be a memory value';
      if (n < min) return `argument must be between ${min} and 9223372036854775807 inclusive`;
      return (s) => write(s, n);
    },
  };
}

/** A parameter held fixed: setting it to its value is a no-op; anything else is refused. */
function fixedParam(value: string, why = 'not supported by BriseDB'): Param {
  return {
    get: () => value,
    parse: (v) => (v === value ? () => undefined : `${why} (it is '${value}' here)`),
  };
}

function immutableParam(read: () => string): Param {
  return { get: read, parse: () => "can't set immutable config" };
}

/** Redis' min-replicas-* (and their old min-slaves-* names); absent where no table is wired. */
function minReplicaParams(): [string, Param][] {
  const toWrite = intParam(0, I32_MAX, (s) => s.replicas?.minReplicasToWrite ?? 0, (s, v) => {
    if (s.replicas !== undefined) s.replicas.minReplicasToWrite = v;
  });
  const maxLag = intParam(0, I32_MAX, (s) => s.replicas?.minReplicasMaxLag ?? 10, (s, v) => {
    if (s.replicas !== undefined) s.replicas.minReplicasMaxLag = v;
  });
  return [
    ['min-replicas-to-write', toWrite],
    ['min-replicas-max-lag', maxLag],
    ['min-slaves-to-write', toWrite],
    ['min-slaves-max-lag', maxLag],
  ];
}

export class LiveConfig {
  private readonly params: ReadonlyMap<string, Param>;

  constructor(
    readonly settings: Settings,
    fixed: { bind: string; port: number; dir: string; appendfsync: string },
    private readonly onChange: () => void = () => undefined,
  ) {
    const entries: [string, Param][] = [
      ['bind', immutableParam(() => fixed.bind)],
      ['port', immutableParam(() => String(fixed.port))],
      ['dir', immutableParam(() => fixed.dir)],
      ['databases', immutableParam(() => '1')],
      ['save', fixedParam('')],
      ['appendonly', fixedParam('yes', 'every write goes to the WAL')],
      ['appendfsync', fixedParam(fixed.appendfsync, 'the sync policy is set at start (--sync)')],
      ['maxmemory', fixedParam('0')],
      ['maxmemory-policy', fixedParam('noeviction')],
      ['replica-read-only', fixedParam('yes')],
      ['timeout', intParam(0, I32_MAX, (s) => s.limits.idleTimeoutSeconds, (s, v) => (s.limits.idleTimeoutSeconds = v))],
      ['maxclients', intParam(1, U32_MAX, (s) => s.limits.maxClients, (s, v) => (s.limits.maxClients = v))],
      ['proto-max-bulk-len', memoryParam(MB, (s) => s.limits.maxBulkLength, (s, v) => (s.limits.maxBulkLength = v))],
      ['client-query-buffer-limit', memoryParam(MB, (s) => s.limits.maxQueryBuffer, (s, v) => (s.limits.maxQueryBuffer = v))],
      [
        'requirepass',
        {
          // As before: CONFIG GET never shows the password.
          get: () => '',
          parse: (v) => (s: Settings) => {
            s.requirepass = v === '' ? null : v;
          },
        },
      ],
      ...minReplicaParams(),
      [
        'notify-keyspace-events',
        {
          get: (s) => formatNotifyFlags(s.notifyKeyspaceEvents),
          parse(v) {
            const flags = parseNotifyFlags(v);
            if (flags === null) return `Invalid event class character. Use '${NOTIFY_ALL_CLASSES}'.`;
            return (s) => (s.notifyKeyspaceEvents = flags);
          },
        },
      ],
    ];
    this.params = new Map(entries);
  }

  /** CONFIG GET: every parameter matching one of the globs, once each. */
  get(match: (name: string) => boolean): [string, string][] {
    const out: [string, string][] = [];
    for (const [name, p] of this.params) if (match(name)) out.push([name, p.get(this.settings)]);
    return out;
  }

  /**
   * CONFIG SET name value [name value ...]: all or none. Answers null, or Redis' error text
   * (without the "ERR " prefix).
   */
  set(pairs: [string, string][]): string | null {
    const seen = new Set<string>();
    const apply: ((s: Settings) => void)[] = [];
    for (const [rawName, value] of pairs) {
      const name = rawName.toLowerCase();
      const p = this.params.get(name);
      if (p === undefined) return `Unknown option or number of arguments for CONFIG SET - '${rawName}'`;
      if (seen.has(name)) return `CONFIG SET failed (possibly related to argument '${rawName}') - duplicate parameter`;
      seen.add(name);
      const parsed = p.parse(value);
      if (typeof parsed === 'string') return `CONFIG SET failed (possibly related to argument '${rawName}') - ${parsed}`;
      apply.push(parsed);
    }
    for (const a of apply) a(this.settings);
    this.onChange();
    return null;
  }
}
