// The master's flags and `--config` JSON file, validated into a MasterConfig (master_config.ts).
//
// Precedence, highest first: a flag; then, for the password only, $BRISEDB_REQUIREPASS (so it
// need not appear in `ps`); then the config file; then the defaults. Every field is declared
// once in FIELDS (flag name, file field, converter), and every value goes through the same
// converter whether it came from a flag (a string) or from the file (JSON).
//
// Invariants:
//   - Bad input is ONE line naming where it came from and the value:
//     `config cluster.json: unknown field "adr"`, `--max-volume-size: "abc" is not a positive
//     integer ...`. The password is never echoed in an error.
//   - Loopback by default: TCP 127.0.0.1:6380, HTTP 127.0.0.1:6381. A bare `:PORT` (the seed's
//     form, as in Go and Redis) means all IPv4 interfaces (0.0.0.0); a bare `PORT` keeps
//     loopback. main.ts warns when a non-loopback address has no password.
//   - Two volume writers never share a directory: the drives are distinct from each other and
//     from the data dir.
//   - Everything is bounded: file size, list lengths, password length, numeric ranges.
import { readFileSync } from 'node:fs';
import { ALL_INTERFACES, formatAddress, parseListenAddress } from '../runtime/listen.js';
import * as os from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { MIN_VOLUME_SIZE } from '../storage/drive_volumes.js';
import { MAX_VALUE_LENGTH } from '../storage/volume_format.js';
import { DEFAULT_LOG_LEVEL, LOG_LEVELS, LOG_LEVEL_ENV, parseLogLevel, type LogLevel } from './log.js';
import { DEFAULT_TCP_LIMITS } from '../protocol/tcp_limits.js';
import { DEFAULT_AUTO_COMPACT } from '../db/auto_compact.js';
import { MAX_NEEDLE_CACHE_BYTES, NEEDLE_CACHE_BYTES } from '../actors/front_end.js';
import type { ListenAddress, MasterConfig } from './master_config.js';
import { MAX_CORS_ORIGINS, normalizeOrigin } from '../frontend/http_cors.js';

export const DEFAULT_ADDR = '127.0.0.1:6380';
export const DEFAULT_HTTP_ADDR = '127.0.0.1:6381';
export const DEFAULT_DATA_DIR = 'brisedb-data';
export const DEFAULT_MAX_VOLUME_SIZE = 2 ** 31;
/** What a bare `:PORT` binds: every IPv4 interface, as `:6380` does in the seed. */
export const REQUIREPASS_ENV = 'BRISEDB_REQUIREPASS';
/** The HTTP token from the environment keeps it out of `ps`, like the password. */
export const HTTP_TOKEN_ENV = 'BRISEDB_HTTP_TOKEN';

export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;
/** Each drive is a volume-writer thread; each volume server a set of connections. */
export const MAX_DRIVES = 64;
export const MAX_VOLUME_SERVERS = 64;
export const MAX_TCP_THREADS = 256;
export const MAX_CLIENTS = 1_000_000;
/** Node timers hold at most 2^31-1 ms; an idle timeout past it would fire at once. */
export const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
export const MAX_PASSWORD_BYTES = 4096;
export const MAX_PATH_LENGTH = 4096;
/** node:net has `reusePort` (one listener per thread on one port) from 22.12 (and 23.1) on. */
export const REUSE_PORT_NODE = [22, 12] as const;
/** Where libuv's reusePort balances connections across listeners (Node docs). */
const REUSE_PORT_PLATFORMS: readonly string[] = ['linux', 'freebsd', 'sunos', 'aix'];

export type ParsedMasterArgs =
  | { config: MasterConfig; logLevel: LogLevel; configFile: string | null }
  | { help: string }
  | { error: string };

/** What the defaults and the tcp_threads check depend on; injectable for tests. */
export interface Platform {
  nodeVersion: string;
  os: string;
  cores: number;
}

export function currentPlatform(): Platform {
  return { nodeVersion: process.versions.node, os: process.platform, cores: os.availableParallelism() };
}

export const USAGE = `Usage: node cmd/master.js [flags]

The BriseDB master: the Redis-protocol TCP server and the HTTP blob API on one data dir.
Flags override the fields of the --config file; sizes take bytes or a unit (512mb, 1gb).

  --config FILE                 a JSON file of the fields below (snake_case)
  --addr HOST:PORT              TCP listen address (default ${DEFAULT_ADDR}); ':PORT' is every
                                interface (0.0.0.0), 'PORT' alone is loopback      [addr]
  --http HOST:PORT              HTTP blob API (default ${DEFAULT_HTTP_ADDR}); "" disables it [http_addr]
  --text-addr HOST:PORT         the seed's line protocol (+OK, +nil...) for its Go and Python
                                clients and nc; off by default                     [text_addr]
  --data DIR                    data directory (default ${DEFAULT_DATA_DIR})                  [data_dir]
  --drives DIR,DIR              extra directories for volume files                  [drives]
  --log-drive DIR               where the volume log (the copy cmd/rebuild.js rebuilds from)
                                lives (the last of --drives, else the data dir)     [log_drive]
  --http-threads N              HTTP front-end threads (the cores)                  [http_threads]
  --http-token TOKEN            HTTP needs Authorization: Bearer TOKEN; also $BRISEDB_HTTP_TOKEN [http_token]
  --http-cors-origins ORIGIN,ORIGIN  origins whose pages may call the HTTP API (CORS), or *;
                                off by default                                      [http_cors_origins]
  --max-body-size SIZE          largest blob a PUT may send (4gb)                   [max_body_size]
  --volume-servers URL,URL      remote volume servers (http://host:port)            [volume_servers]
  --replication-factor N        copies of each blob, at most 1 + volume servers (1) [replication_factor]
  --volume-secret SECRET        shared with the volume servers (their --secret)     [volume_secret]
  --max-volume-size SIZE        bytes per volume file before a new one (2gb)        [max_volume_size]
  --requirepass PASSWORD        clients must AUTH; also $${REQUIREPASS_ENV}           [requirepass]
  --sync always|none            fsync before acknowledging a write (always)         [sync]
  --tcp-threads N               TCP front-end threads (cores on Node >= 22.12, else 1) [tcp_threads]
  --maxclients N                clients at once (${DEFAULT_TCP_LIMITS.maxClients})                          [maxclients]
  --timeout SECONDS             close a client idle this long; 0 = never (0)       [timeout]
  --proto-max-bulk-len SIZE     longest bulk string (512mb)                         [proto_max_bulk_len]
  --client-query-buffer-limit SIZE  bytes buffered per client (1gb)                 [client_query_buffer_limit]
  --max-multibulk-len N         arguments in one command (1048576)                  [max_multibulk_len]
  --max-inline-len SIZE         longest inline command line (64kb)                  [max_inline_len]
  --client-output-buffer-limit SIZE  reply bytes queued per client before it is cut off (256mb) [client_output_buffer_limit]
  --min-replicas-to-write N     refuse writes (-NOREPLICAS) with fewer good replicas (0 = off) [min_replicas_to_write]
  --min-replicas-max-lag SECONDS  a replica is good while it acked this recently (10) [min_replicas_max_lag]
  --vacuum-threshold PERCENT    vacuum a volume once this much of it is garbage (30) [vacuum_threshold]
  --vacuum-rate MB              MB/s a vacuum copies at most; 0 = no limit (64)     [vacuum_rate]
  --vacuum-every SECONDS        look for sealed volumes to vacuum this often; 0 = only VACUUM (60) [vacuum_every]
  --scrub-rate MB               MB/s a scrub reads on average; 0 = no limit (32)    [scrub_rate]
  --scrub-every SECONDS         scrub every volume this often; 0 = only SCRUB (86400) [scrub_every]
  --auto-compact-percentage PERCENT  COMPACT once wal.log grew this much since the last one; 0 = only COMPACT (100) [auto_compact_percentage]
  --auto-compact-min-size SIZE  ... and is at least this big (64mb)              [auto_compact_min_size]
  --needle-cache-size SIZE      small values kept in memory per front-end thread; 0 = none (32mb) [needle_cache_size]
  --log-level LEVEL             ${LOG_LEVELS.join('|')} (default ${DEFAULT_LOG_LEVEL}; also $${LOG_LEVEL_ENV})
  --help                        show this text

Logs are JSON lines on stderr. SIGINT or SIGTERM stops it cleanly (exit 0).
Exit codes: 0 stopped cleanly, 1 could not start or failed, 2 bad flags or config.`;

/** The settings, named as in the config file; converted into a MasterConfig at the end. */
interface Settings {
  addr: ListenAddress;
  http_addr: ListenAddress | null;
  text_addr: ListenAddress | null;
  http_threads: number;
  http_token: string | null;
  http_cors_origins: string[];
  max_body_size: number;
  data_dir: string;
  drives: string[];
  log_drive: string | null;
  volume_servers: string[];
  replication_factor: number;
  volume_secret: string | null;
  max_volume_size: number;
  requirepass: string | null;
  tcp_threads: number;
  sync: 'always' | 'none';
  maxclients: number;
  timeout: number;
  proto_max_bulk_len: number;
  client_query_buffer_limit: number;
  max_multibulk_len: number;
  max_inline_len: number;
  client_output_buffer_limit: number;
  min_replicas_to_write: number;
  min_replicas_max_lag: number;
  vacuum_threshold: number;
  vacuum_rate: number;
  vacuum_every: number;
  scrub_rate: number;
  scrub_every: number;
  auto_compact_percentage: number;
  auto_compact_min_size: number;
  needle_cache_size: number;
}
type Key = keyof Settings;

/** A converter: a flag's string or a file's JSON value → the setting, or what is wrong with it. */
type Outcome<T> = { ok: T } | { bad: string };
type Convert<T> = (value: unknown, fromFlag: boolean) => Outcome<T>;

interface Field<T> {
  flag: string;
  convert: Convert<T>;
  /** Never echo the value in an error. */
  secret?: boolean;
}

// ---- converters -------------------------------------------------------------------------

const bad = (problem: string): { bad: string } => ({ bad: problem });

function intIn(min: number, max: number): Convert<number> {
  const what = min === 0 ? 'is not a non-negative integer' : 'is not a positive integer';
  return (v, fromFlag) => {
    let n: number;
    if (fromFlag && typeof v === 'string' && /^\d{1,15}$/.test(v)) n = Number(v);
    else if (!fromFlag && typeof v === 'number' && Number.isSafeInteger(v)) n = v;
    else return bad(what);
    if (n < min && min <= 1) return bad(what);
    if (n < min || n > max) return bad(`is out of range ${min}-${max}`);
    return { ok: n };
  };
}

/** Redis' memtoll units: k/m/g are powers of 1000, kb/mb/gb powers of 1024. */
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };

/** Parses `2147483648`, `512mb`, `1GB`; null when it is not a size, Infinity when too large to count. */
export function parseSize(text: string): number | null {
  const m = /^(\d{1,15})([a-zA-Z]{0,2})$/.exec(text);
  if (m === null) return null;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const n = Number(m[1]) * unit;
  return Number.isSafeInteger(n) ? n : Infinity; // past 2^53: above any maximum
}

function sizeIn(min: number, max: number): Convert<number> {
  const what = 'is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)';
  return (v) => {
    let n: number | null = null;
    if (typeof v === 'string') n = parseSize(v);
    else if (typeof v === 'number' && Number.isSafeInteger(v)) n = v;
    if (n === null || n <= 0) return bad(what);
    if (n < min) return bad(`is below the minimum of ${min} bytes`);
    if (n > max) return bad(`is above the maximum of ${max} bytes`);
    return { ok: n };
  };
}

/** A size as sizeIn(1, max), or 0 (what turns the thing off). */
function sizeOrZero(max: number): Convert<number> {
  const size = sizeIn(1, max);
  return (v, fromFlag) => (v === 0 || v === '0' ? { ok: 0 } : size(v, fromFlag));
}

function oneOf<T extends string>(...choices: T[]): Convert<T> {
  return (v) => ((choices as unknown[]).includes(v) ? { ok: v as T } : bad(`is not one of ${choices.join(', ')}`));
}

const listenAddr: Convert<ListenAddress> = (v) => {
  if (typeof v !== 'string') return bad('is not a string "HOST:PORT"');
  const a = parseListenAddress(v);
  return typeof a === 'string' ? bad(a) : { ok: a };
};

const httpAddr: Convert<ListenAddress | null> = (v, fromFlag) => (v === '' || (v === null && !fromFlag) ? { ok: null } : listenAddr(v, fromFlag));

function pathProblem(v: unknown): string | null {
  if (typeof v !== 'string') return 'is not a string (a directory)';
  if (v === '') return 'is empty';
  if (v.includes('\0')) return 'contains a NUL byte';
  if (v.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`;
  return null;
}

const path: Convert<string> = (v) => {
  const p = pathProblem(v);
  return p === null ? { ok: v as string } : bad(p);
};

/** A flag's `a,b` or a file's `["a","b"]`; `""` from a flag is the empty list. */
function listOf(what: string, whats: string, max: number, item: (s: string) => Outcome<string>): Convert<string[]> {
  return (v, fromFlag) => {
    let items: unknown[];
    if (fromFlag && typeof v === 'string') items = v === '' ? [] : v.split(',');
    else if (!fromFlag && Array.isArray(v)) items = v;
    else return bad(`is not ${fromFlag ? `a comma-separated list of ${whats}` : `an array of ${whats}`}`);
    if (items.length > max) return bad(`has ${items.length} ${whats}; at most ${max}`);
    const out: string[] = [];
    for (const it of items) {
      const p = typeof it === 'string' ? item(it) : bad(`is not a string`);
      if ('bad' in p) return bad(`has ${what} ${show(it)} that ${p.bad}`);
      if (out.includes(p.ok)) return bad(`lists ${show(it)} twice`);
      out.push(p.ok);
    }
    return { ok: out };
  };
}

function volumeServerUrl(s: string): Outcome<string> {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return bad('is not a URL');
  }
  // Volume servers speak plain HTTP (uWS without TLS); requests are signed with the shared secret.
  if (url.protocol === 'https:') return bad('is https://; volume servers speak http:// (their requests are signed with --volume-secret; put TLS in a tunnel or VPN between hosts)');
  if (url.protocol !== 'http:') return bad('is not http://');
  if (url.search !== '' || url.hash !== '') return bad('has a query or fragment; give the base URL');
  return { ok: s.replace(/\/+$/, '') };
}

const password: Convert<string | null> = (v) => {
  if (typeof v !== 'string') return bad('is not a string');
  if (v === '') return { ok: null }; // as Redis: an empty requirepass means none
  if (Buffer.byteLength(v) > MAX_PASSWORD_BYTES) return bad(`is longer than ${MAX_PASSWORD_BYTES} bytes`);
  // A newline is almost always a file read with its line end; AUTH could never send it inline.
  if (/[\x00-\x1f\x7f]/.test(v)) return bad('contains a control character (a trailing newline?)');
  return { ok: v };
};

// ---- the fields -------------------------------------------------------------------------

const FIELDS: { [K in Key]: Field<Settings[K]> } = {
  addr: { flag: '--addr', convert: listenAddr },
  http_addr: { flag: '--http', convert: httpAddr },
  text_addr: { flag: '--text-addr', convert: httpAddr },
  http_threads: { flag: '--http-threads', convert: intIn(1, MAX_TCP_THREADS) },
  http_token: { flag: '--http-token', convert: password, secret: true },
  http_cors_origins: { flag: '--http-cors-origins', convert: listOf('origin', 'origins', MAX_CORS_ORIGINS, normalizeOrigin) },
  max_body_size: { flag: '--max-body-size', convert: sizeIn(0, MAX_VALUE_LENGTH) },
  data_dir: { flag: '--data', convert: path },
  drives: { flag: '--drives', convert: listOf('directory', 'directories', MAX_DRIVES, (s) => path(s, true)) },
  log_drive: { flag: '--log-drive', convert: path },
  volume_servers: { flag: '--volume-servers', convert: listOf('URL', 'URLs', MAX_VOLUME_SERVERS, volumeServerUrl) },
  replication_factor: { flag: '--replication-factor', convert: intIn(1, 1 + MAX_VOLUME_SERVERS) },
  volume_secret: { flag: '--volume-secret', convert: password, secret: true },
  max_volume_size: { flag: '--max-volume-size', convert: sizeIn(MIN_VOLUME_SIZE, MAX_VALUE_LENGTH) },
  requirepass: { flag: '--requirepass', convert: password, secret: true },
  tcp_threads: { flag: '--tcp-threads', convert: intIn(1, MAX_TCP_THREADS) },
  sync: { flag: '--sync', convert: oneOf('always', 'none') },
  maxclients: { flag: '--maxclients', convert: intIn(1, MAX_CLIENTS) },
  timeout: { flag: '--timeout', convert: intIn(0, MAX_TIMEOUT_SECONDS) },
  proto_max_bulk_len: { flag: '--proto-max-bulk-len', convert: sizeIn(1, MAX_VALUE_LENGTH) },
  client_query_buffer_limit: { flag: '--client-query-buffer-limit', convert: sizeIn(1, MAX_VALUE_LENGTH) },
  max_multibulk_len: { flag: '--max-multibulk-len', convert: intIn(1, 2 ** 31 - 1) },
  max_inline_len: { flag: '--max-inline-len', convert: sizeIn(16, 1024 * 1024 * 1024) },
  client_output_buffer_limit: { flag: '--client-output-buffer-limit', convert: sizeIn(1024, MAX_VALUE_LENGTH) },
  min_replicas_to_write: { flag: '--min-replicas-to-write', convert: intIn(0, 64) },
  min_replicas_max_lag: { flag: '--min-replicas-max-lag', convert: intIn(1, 3600) },
  vacuum_threshold: { flag: '--vacuum-threshold', convert: intIn(1, 100) },
  vacuum_rate: { flag: '--vacuum-rate', convert: intIn(0, 1_000_000) },
  vacuum_every: { flag: '--vacuum-every', convert: intIn(0, 7 * 24 * 3600) },
  scrub_rate: { flag: '--scrub-rate', convert: intIn(0, 1_000_000) },
  scrub_every: { flag: '--scrub-every', convert: intIn(0, 365 * 24 * 3600) },
  auto_compact_percentage: { flag: '--auto-compact-percentage', convert: intIn(0, 100_000) },
  auto_compact_min_size: { flag: '--auto-compact-min-size', convert: sizeOrZero(2 ** 50) },
  needle_cache_size: { flag: '--needle-cache-size', convert: sizeOrZero(MAX_NEEDLE_CACHE_BYTES) },
};
const KEYS = Object.keys(FIELDS) as Key[];
const BY_FLAG = new Map<string, Key>(KEYS.map((k) => [FIELDS[k].flag, k]));
const OTHER_FLAGS = ['--config', '--log-level', '--help'];

/** reusePort came to node:net in 22.12 and 23.1 (not 23.0). */
export function supportsReusePort(p: Platform): boolean {
  const [major = 0, minor = 0] = p.nodeVersion.split('.').map(Number);
  const node = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
  return node && REUSE_PORT_PLATFORMS.includes(p.os);
}

function defaults(p: Platform): Settings {
  return {
    addr: parseListenAddress(DEFAULT_ADDR) as ListenAddress,
    http_addr: parseListenAddress(DEFAULT_HTTP_ADDR) as ListenAddress,
    text_addr: null,
    http_threads: Math.max(1, Math.min(p.cores, MAX_TCP_THREADS)),
    http_token: null,
    http_cors_origins: [],
    max_body_size: 4 * 1024 * 1024 * 1024,
    data_dir: DEFAULT_DATA_DIR,
    drives: [],
    log_drive: null,
    volume_servers: [],
    replication_factor: 1,
    volume_secret: null,
    max_volume_size: DEFAULT_MAX_VOLUME_SIZE,
    requirepass: null,
    tcp_threads: supportsReusePort(p) ? Math.max(1, Math.min(p.cores, MAX_TCP_THREADS)) : 1,
    sync: 'always',
    maxclients: DEFAULT_TCP_LIMITS.maxClients,
    timeout: DEFAULT_TCP_LIMITS.idleTimeoutSeconds,
    proto_max_bulk_len: DEFAULT_TCP_LIMITS.maxBulkLength,
    client_query_buffer_limit: DEFAULT_TCP_LIMITS.maxQueryBuffer,
    max_multibulk_len: DEFAULT_TCP_LIMITS.maxMultibulkCount,
    max_inline_len: DEFAULT_TCP_LIMITS.maxInlineLength,
    client_output_buffer_limit: DEFAULT_TCP_LIMITS.maxOutputBuffer,
    min_replicas_to_write: 0,
    min_replicas_max_lag: 10,
    vacuum_threshold: 30,
    vacuum_rate: 64,
    vacuum_every: 60,
    scrub_rate: 32,
    scrub_every: 86400,
    auto_compact_percentage: DEFAULT_AUTO_COMPACT.percentage,
    auto_compact_min_size: DEFAULT_AUTO_COMPACT.minBytes,
    needle_cache_size: NEEDLE_CACHE_BYTES,
  };
}

// ---- parsing ------------------------------------------------------------------------------

/** A value before conversion and where it came from (for the error line). */
interface Raw {
  value: unknown;
  fromFlag: boolean;
  label: string;
}

class BadInput extends Error {}
const fail = (line: string): never => {
  throw new BadInput(line);
};

/** The whole command line → a validated config, the usage text, or one error line. */
export function parseMasterArgs(argv: string[], env: NodeJS.ProcessEnv = process.env, platform: Platform = currentPlatform()): ParsedMasterArgs {
  if (argv.includes('--help') || argv.includes('-h')) return { help: USAGE };
  try {
    const flags = scanFlags(argv);
    const configFile = flags.get('--config') ?? null;
    const raws = new Map<Key, Raw>();
    // Every field of the file is checked, even one a flag overrides: a broken file must not
    // go unnoticed until the day the flag is dropped.
    const checked = defaults(platform);
    for (const [k, value] of configFile === null ? [] : readConfigFile(configFile)) {
      raws.set(k, { value, fromFlag: false, label: `config ${configFile}: ${k}` });
      assign(checked, k, raws.get(k)!);
    }
    const envPass = env[REQUIREPASS_ENV];
    if (envPass !== undefined) raws.set('requirepass', { value: envPass, fromFlag: true, label: REQUIREPASS_ENV });
    const envToken = env[HTTP_TOKEN_ENV];
    if (envToken !== undefined) raws.set('http_token', { value: envToken, fromFlag: true, label: HTTP_TOKEN_ENV });
    for (const [flag, value] of flags) {
      const k = BY_FLAG.get(flag);
      if (k !== undefined) raws.set(k, { value, fromFlag: true, label: flag });
    }
    const settings = defaults(platform);
    for (const k of KEYS) {
      const raw = raws.get(k);
      if (raw !== undefined) assign(settings, k, raw);
    }
    crossCheck(settings, (k) => raws.get(k)?.label ?? FIELDS[k].flag, platform);
    return { config: toConfig(settings), logLevel: logLevelOf(flags.get('--log-level'), env), configFile };
  } catch (err) {
    if (err instanceof BadInput) return { error: err.message };
    throw err;
  }
}

/** `--flag value` and `--flag=value`; the last of a repeated flag wins. */
function scanFlags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) fail(`unexpected argument ${show(arg)} (flags start with --; see --help)`);
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    if (!BY_FLAG.has(flag) && !OTHER_FLAGS.includes(flag)) fail(`unknown flag ${show(flag)}${suggest(flag, [...BY_FLAG.keys(), ...OTHER_FLAGS])}`);
    let value = eq < 0 ? undefined : arg.slice(eq + 1);
    if (value === undefined) {
      const next = argv[i + 1];
      // `--http --data d` is a forgotten value, not an HTTP address of "--data".
      if (next === undefined || (next.startsWith('--') && next.length > 2)) fail(`${flag}: needs a value${flag === '--http' ? ' (--http "" disables HTTP)' : ''}`);
      value = next;
      i++;
    }
    out.set(flag, value!);
  }
  return out;
}

function assign<K extends Key>(settings: Settings, k: K, raw: Raw): void {
  const field = FIELDS[k] as Field<Settings[K]>;
  const r = field.convert(raw.value, raw.fromFlag);
  if ('bad' in r) fail(`${raw.label}: ${field.secret ? 'the value' : show(raw.value)} ${r.bad}`);
  else settings[k] = r.ok;
}

/** The file's fields, unconverted; errors name the file. */
function readConfigFile(file: string): Array<[Key, unknown]> {
  const where = `config ${file}`;
  if (file === '') fail('--config: needs a file name');
  let text = '';
  try {
    const bytes = readFileSync(file);
    if (bytes.length > MAX_CONFIG_FILE_BYTES) fail(`${where}: is ${bytes.length} bytes; the limit is ${MAX_CONFIG_FILE_BYTES}`);
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof BadInput) throw err;
    fail(`${where}: cannot read it: ${readProblem(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    fail(`${where}: invalid JSON: ${oneLine(err instanceof Error ? err.message : String(err))}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail(`${where}: expected a JSON object {...}, found ${Array.isArray(doc) ? 'an array' : show(doc)}`);
  const out: Array<[Key, unknown]> = [];
  for (const [name, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!(name in FIELDS)) fail(`${where}: unknown field ${show(name)}${suggest(name, KEYS)}`);
    out.push([name as Key, value]);
  }
  return out;
}

function readProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return oneLine(err instanceof Error ? err.message : String(err));
}

/**
 * Settings that parse but do not make sense together: volume servers with one copy of each blob
 * would hold nothing (every needle is on the local drive), which is never what was meant.
 */
export function notYetSupported(config: MasterConfig, configFile: string | null = null): string | null {
  const file = configFile === null ? '' : ` in config ${configFile}`;
  if (config.volumeServers.length > 0 && config.replicationFactor < 2) {
    return `--volume-servers (volume_servers${file}): volume servers hold copies of blobs; with --replication-factor 1 (replication_factor) they would hold nothing. Set replication_factor to 2 or more`;
  }
  return null;
}

/** Rules across fields: each names the field (flag or file) that would fix it. */
function crossCheck(s: Settings, labelOf: (k: Key) => string, p: Platform): void {
  const servers = s.volume_servers.length;
  if (s.replication_factor > 1 + servers) {
    fail(`${labelOf('replication_factor')}: ${s.replication_factor} copies need ${s.replication_factor - 1} volume server(s); ${servers} configured (${labelOf('volume_servers')})`);
  }
  const dataDir = resolvePath(s.data_dir);
  const seen = new Set<string>();
  for (const d of s.drives) {
    const abs = resolvePath(d);
    if (abs === dataDir) fail(`${labelOf('drives')}: ${show(d)} is the data dir (${labelOf('data_dir')}); the data dir is always the first drive`);
    if (seen.has(abs)) fail(`${labelOf('drives')}: ${show(d)} is listed twice`);
    seen.add(abs);
  }
  const http = s.http_addr;
  if (http !== null && http.port !== 0 && http.port === s.addr.port && http.host === s.addr.host) {
    fail(`${labelOf('http_addr')}: ${http.host}:${http.port} is also the TCP address (${labelOf('addr')})`);
  }
  const text = s.text_addr;
  if (text !== null && collides(text, s.addr)) {
    fail(`${labelOf('text_addr')}: ${formatAddress(text)} is also the TCP address (${labelOf('addr')})`);
  }
  if (text !== null && http !== null && collides(text, http)) {
    fail(`${labelOf('text_addr')}: ${formatAddress(text)} is also the HTTP address (${labelOf('http_addr')})`);
  }
  if (s.tcp_threads > 1 && !supportsReusePort(p)) {
    fail(`${labelOf('tcp_threads')}: ${s.tcp_threads} threads need reusePort (Node ${REUSE_PORT_NODE.join('.')} or later on ${REUSE_PORT_PLATFORMS.join('/')}); this is Node ${p.nodeVersion} on ${p.os}`);
  }
}

/**
 * Two listeners on one port fail at start, or (with reusePort) silently share connections: same
 * port and the same host, or either of them on every interface. Port 0 picks a free one each.
 */
function collides(a: ListenAddress, b: ListenAddress): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  const wildcard = (h: string): boolean => h === ALL_INTERFACES || h === '::';
  return a.host === b.host || wildcard(a.host) || wildcard(b.host);
}

function toConfig(s: Settings): MasterConfig {
  return {
    addr: s.addr,
    httpAddr: s.http_addr,
    // Only when on: a config without the line protocol reads as it did before the flag existed.
    ...(s.text_addr === null ? {} : { textAddr: s.text_addr }),
    httpThreads: s.http_threads,
    httpToken: s.http_token,
    // Only when on, as text_addr: a config without CORS reads as it did before the flag existed.
    ...(s.http_cors_origins.length === 0 ? {} : { httpCorsOrigins: s.http_cors_origins }),
    maxBodySize: s.max_body_size,
    dataDir: s.data_dir,
    drives: s.drives,
    // Only when set, as text_addr: a config without it reads as it did before the flag existed.
    ...(s.log_drive === null ? {} : { logDrive: s.log_drive }),
    volumeServers: s.volume_servers,
    replicationFactor: s.replication_factor,
    volumeSecret: s.volume_secret,
    maxVolumeSize: s.max_volume_size,
    requirepass: s.requirepass,
    tcpThreads: s.tcp_threads,
    sync: s.sync,
    ...(s.min_replicas_to_write === 0 && s.min_replicas_max_lag === 10 ? {} : { minReplicas: { toWrite: s.min_replicas_to_write, maxLagSeconds: s.min_replicas_max_lag } }),
    // Only when changed, as minReplicas: a config without them reads as it did before.
    ...(s.vacuum_threshold === 30 && s.vacuum_rate === 64 && s.vacuum_every === 60 ? {} : { vacuum: { thresholdPercent: s.vacuum_threshold, rateMBps: s.vacuum_rate, everySeconds: s.vacuum_every } }),
    ...(s.scrub_rate === 32 && s.scrub_every === 86400 ? {} : { scrub: { rateMBps: s.scrub_rate, everySeconds: s.scrub_every } }),
    ...(s.auto_compact_percentage === DEFAULT_AUTO_COMPACT.percentage && s.auto_compact_min_size === DEFAULT_AUTO_COMPACT.minBytes
      ? {}
      : { autoCompact: { percentage: s.auto_compact_percentage, minBytes: s.auto_compact_min_size } }),
    ...(s.needle_cache_size === NEEDLE_CACHE_BYTES ? {} : { needleCacheBytes: s.needle_cache_size }),
    tcpLimits: {
      ...DEFAULT_TCP_LIMITS,
      maxClients: s.maxclients,
      idleTimeoutSeconds: s.timeout,
      maxBulkLength: s.proto_max_bulk_len,
      maxQueryBuffer: s.client_query_buffer_limit,
      maxMultibulkCount: s.max_multibulk_len,
      maxInlineLength: s.max_inline_len,
      maxOutputBuffer: s.client_output_buffer_limit,
    },
  };
}

function logLevelOf(flag: string | undefined, env: NodeJS.ProcessEnv): LogLevel {
  const [label, text] = flag !== undefined ? ['--log-level', flag] : [LOG_LEVEL_ENV, env[LOG_LEVEL_ENV]];
  if (text === undefined || (text === '' && label === LOG_LEVEL_ENV)) return DEFAULT_LOG_LEVEL;
  return parseLogLevel(text) ?? fail(`${label}: ${show(text)} is not one of ${LOG_LEVELS.join(', ')}`);
}

// ---- helpers ------------------------------------------------------------------------------

/** True for addresses only this machine can reach. Hostnames other than localhost count as not. */
export { ALL_INTERFACES, LOOPBACK, formatAddress, isLoopbackHost, parseListenAddress } from '../runtime/listen.js';

/** A value as it appears in an error: JSON, cut short so that the line stays one line. */
function show(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** ` (did you mean "--addr"?)` when a known name is within two edits. */
function suggest(name: string, known: readonly string[]): string {
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best === null ? '' : ` (did you mean ${show(best)}?)`;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64 || b.length > 64) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
