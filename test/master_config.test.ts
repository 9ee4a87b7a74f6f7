// Tests of the master's flags and config file (src/master/config.ts): defaults, every flag,
// every file field, flag-over-file precedence, and the exact one-line error of each bad input.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import {
  isLoopbackHost,
  parseListenAddress,
  parseMasterArgs,
  parseSize,
  supportsReusePort,
  type ParsedMasterArgs,
  type Platform,
} from '../src/master/config.js';
import { createLogger, redactedConfig } from '../src/master/log.js';
import { type MasterConfig } from '../src/master/master_config.js';
import { DEFAULT_TCP_LIMITS } from '../src/protocol/tcp_limits.js';

const NODE20: Platform = { nodeVersion: '20.20.2', os: 'linux', cores: 8 };
const NODE22: Platform = { nodeVersion: '22.12.0', os: 'linux', cores: 8 };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'brisedb-master-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let files = 0;
/** Writes a config file (an object is JSON-encoded, a string written as is); answers its path. */
function configFile(content: unknown): string {
  const file = path.join(tmp, `c${files++}.json`);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

function parse(argv: string[], env: NodeJS.ProcessEnv = {}, platform = NODE20): ParsedMasterArgs {
  return parseMasterArgs(argv, env, platform);
}

function config(argv: string[], env: NodeJS.ProcessEnv = {}, platform = NODE20): MasterConfig {
  const r = parse(argv, env, platform);
  if (!('config' in r)) assert.fail(`expected a config, got ${JSON.stringify(r)}`);
  return r.config;
}

function error(argv: string[], env: NodeJS.ProcessEnv = {}, platform = NODE20): string {
  const r = parse(argv, env, platform);
  if (!('error' in r)) assert.fail(`expected an error, got ${JSON.stringify(r)}`);
  assert.ok(!r.error.includes('\n'), `one line: ${r.error}`);
  return r.error;
}

describe('master config: defaults', () => {
  it('are loopback, brisedb-data, 2 GiB volumes, sync always, the TCP limits of master_config.ts', () => {
    assert.deepEqual(config([]), {
      addr: { host: '127.0.0.1', port: 6380 },
      httpAddr: { host: '127.0.0.1', port: 6381 },
      dataDir: 'brisedb-data',
      drives: [],
      volumeServers: [],
      replicationFactor: 1,
      volumeSecret: null,
      maxVolumeSize: 2147483648,
      requirepass: null,
      tcpThreads: 1,
      httpThreads: 8,
      httpToken: null,
      maxBodySize: 4 * 1024 ** 3,
      sync: 'always',
      tcpLimits: DEFAULT_TCP_LIMITS,
    });
  });

  it('tcpThreads is 1 on Node < 22.12 and the cores on 22.12+ (Linux), 1 where reusePort is missing', () => {
    assert.equal(config([], {}, NODE20).tcpThreads, 1);
    assert.equal(config([], {}, { ...NODE20, nodeVersion: '22.11.0' }).tcpThreads, 1);
    assert.equal(config([], {}, NODE22).tcpThreads, 8);
    assert.equal(config([], {}, { ...NODE22, nodeVersion: '24.1.0', cores: 3 }).tcpThreads, 3);
    assert.equal(config([], {}, { ...NODE22, os: 'win32' }).tcpThreads, 1);
    assert.equal(supportsReusePort({ ...NODE22, nodeVersion: '23.0.0' }), false);
    assert.equal(supportsReusePort({ ...NODE22, nodeVersion: '23.1.0' }), true);
    assert.equal(supportsReusePort({ ...NODE22, nodeVersion: '22.11.9' }), false);
  });

  it('log level: info, else $BRISEDB_LOG_LEVEL, else --log-level', () => {
    const level = (argv: string[], env: NodeJS.ProcessEnv = {}): string => {
      const r = parse(argv, env);
      assert.ok('config' in r);
      return r.logLevel;
    };
    assert.equal(level([]), 'info');
    assert.equal(level([], { BRISEDB_LOG_LEVEL: 'debug' }), 'debug');
    assert.equal(level(['--log-level', 'WARN'], { BRISEDB_LOG_LEVEL: 'debug' }), 'warn');
  });

  it('--help and -h answer the usage, which names every flag', () => {
    for (const argv of [['--help'], ['-h'], ['--addr', 'nonsense', '--help']]) {
      const r = parse(argv);
      assert.ok('help' in r);
      for (const flag of ['--config', '--addr', '--http', '--data', '--drives', '--volume-servers', '--replication-factor', '--max-volume-size', '--requirepass', '--sync', '--tcp-threads', '--maxclients', '--timeout', '--proto-max-bulk-len', '--client-query-buffer-limit', '--log-level']) {
        assert.ok(r.help.includes(flag), flag);
      }
    }
  });
});

describe('master config: every flag', () => {
  it('sets its field, in both --flag value and --flag=value forms', () => {
    const c = config([
      '--addr', '0.0.0.0:7000',
      '--http=[::1]:7001',
      '--data', 'd1',
      '--drives', 'd2,d3',
      '--volume-servers', 'http://a:8081,http://b:8082/',
      '--replication-factor', '3',
      '--max-volume-size=512mb',
      '--requirepass', 's3cret',
      '--tcp-threads', '1',
      '--sync', 'none',
      '--maxclients', '50',
      '--timeout', '300',
      '--proto-max-bulk-len', '1mb',
      '--client-query-buffer-limit', '2k',
      '--http-threads', '3',
      '--http-token', 't0ken',
      '--max-body-size=64mb',
    ]);
    assert.deepEqual(c, {
      addr: { host: '0.0.0.0', port: 7000 },
      httpAddr: { host: '::1', port: 7001 },
      dataDir: 'd1',
      drives: ['d2', 'd3'],
      volumeServers: ['http://a:8081', 'http://b:8082'],
      replicationFactor: 3,
      volumeSecret: null,
      maxVolumeSize: 512 * 1024 * 1024,
      requirepass: 's3cret',
      tcpThreads: 1,
      httpThreads: 3,
      httpToken: 't0ken',
      maxBodySize: 64 * 1024 * 1024,
      sync: 'none',
      tcpLimits: { ...DEFAULT_TCP_LIMITS, maxClients: 50, idleTimeoutSeconds: 300, maxBulkLength: 1024 * 1024, maxQueryBuffer: 2000 },
    });
  });

  it('--http "" disables HTTP; --drives "" is no drives; --requirepass "" is no password', () => {
    const c = config(['--http', '', '--drives', '', '--requirepass', '']);
    assert.equal(c.httpAddr, null);
    assert.deepEqual(c.drives, []);
    assert.equal(c.requirepass, null);
  });

  it('--tcp-threads above 1 is accepted where reusePort exists', () => {
    assert.equal(config(['--tcp-threads', '4'], {}, NODE22).tcpThreads, 4);
  });

  it('the last of a repeated flag wins', () => {
    assert.equal(config(['--data', 'a', '--data', 'b']).dataDir, 'b');
  });

  it('$BRISEDB_REQUIREPASS sets the password; --requirepass overrides it', () => {
    assert.equal(config([], { BRISEDB_REQUIREPASS: 'fromenv' }).requirepass, 'fromenv');
    assert.equal(config(['--requirepass', 'flag'], { BRISEDB_REQUIREPASS: 'fromenv' }).requirepass, 'flag');
  });
});

describe('master config: addresses and sizes', () => {
  it('listen addresses: HOST:PORT, [v6]:PORT, :PORT is every interface, PORT alone is loopback, 0 picks a port', () => {
    const table: Array<[string, { host: string; port: number } | string]> = [
      ['127.0.0.1:6380', { host: '127.0.0.1', port: 6380 }],
      [':6380', { host: '0.0.0.0', port: 6380 }],
      ['6390', { host: '127.0.0.1', port: 6390 }],
      ['localhost:0', { host: 'localhost', port: 0 }],
      ['db-1.example.com:65535', { host: 'db-1.example.com', port: 65535 }],
      ['[::]:6380', { host: '::', port: 6380 }],
      ['[::1]:1', { host: '::1', port: 1 }],
      ['127.0.0.1:65536', 'has port 65536, outside 0-65535'],
      ['127.0.0.1:999999999999', 'has port 999999999999, outside 0-65535'],
      ['127.0.0.1', 'is not HOST:PORT, [IPv6]:PORT, :PORT or PORT'],
      ['::1:6380', 'is not HOST:PORT, [IPv6]:PORT, :PORT or PORT'],
      ['[nothost]:6380', 'is not HOST:PORT, [IPv6]:PORT, :PORT or PORT'],
      ['bad_host:6380', 'has an invalid host "bad_host"'],
      ['127.0.0.1:-1', 'is not HOST:PORT, [IPv6]:PORT, :PORT or PORT'],
      ['', 'is not HOST:PORT, [IPv6]:PORT, :PORT or PORT'],
    ];
    for (const [text, want] of table) assert.deepEqual(parseListenAddress(text), want, text);
  });

  it('sizes as Redis reads them: k/m/g are 1000s, kb/mb/gb 1024s, case-insensitive', () => {
    const table: Array<[string, number | null]> = [
      ['2147483648', 2147483648],
      ['1k', 1000],
      ['1kb', 1024],
      ['512mb', 512 * 1024 ** 2],
      ['1GB', 1024 ** 3],
      ['3g', 3e9],
      ['10b', 10],
      ['1tb', null],
      ['999999999999999gb', Infinity],
      ['1.5gb', null],
      ['-1', null],
      [' 1', null],
      ['abc', null],
      ['', null],
    ];
    for (const [text, want] of table) assert.equal(parseSize(text), want, text);
  });

  it('loopback hosts are 127.0.0.0/8, ::1 and localhost; everything else is exposed', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'db.example.com', '192.168.1.1']) assert.equal(isLoopbackHost(h), false, h);
  });
});

describe('master config: the config file', () => {
  it('sets every field', () => {
    const file = configFile({
      addr: ':7100',
      http_addr: '127.0.0.1:7101',
      data_dir: 'file-data',
      drives: ['fd1', 'fd2'],
      volume_servers: ['http://10.0.0.2:8081'],
      replication_factor: 2,
      max_volume_size: '1gb',
      requirepass: 'pw',
      tcp_threads: 1,
      sync: 'none',
      maxclients: 7,
      timeout: 9,
      proto_max_bulk_len: 4096,
      client_query_buffer_limit: '8kb',
      http_threads: 2,
      http_token: 'filetoken',
      max_body_size: '1mb',
    });
    const r = parse(['--config', file]);
    assert.ok('config' in r);
    assert.equal(r.configFile, file);
    assert.deepEqual(r.config, {
      addr: { host: '0.0.0.0', port: 7100 },
      httpAddr: { host: '127.0.0.1', port: 7101 },
      dataDir: 'file-data',
      drives: ['fd1', 'fd2'],
      volumeServers: ['http://10.0.0.2:8081'],
      replicationFactor: 2,
      volumeSecret: null,
      maxVolumeSize: 1024 ** 3,
      requirepass: 'pw',
      tcpThreads: 1,
      httpThreads: 2,
      httpToken: 'filetoken',
      maxBodySize: 1024 * 1024,
      sync: 'none',
      tcpLimits: { ...DEFAULT_TCP_LIMITS, maxClients: 7, idleTimeoutSeconds: 9, maxBulkLength: 4096, maxQueryBuffer: 8192 },
    });
  });

  it("reads the seed's example as written (max_volume_size a number, http_addr null disables)", () => {
    const seed = configFile({ addr: ':6380', http_addr: ':6381', data_dir: '/var/brisedb', volume_servers: ['http://node2:8081', 'http://node3:8082'], replication_factor: 2, max_volume_size: 2147483648 });
    const c = config(['--config', seed]);
    assert.deepEqual([c.addr, c.replicationFactor, c.maxVolumeSize, c.volumeServers.length], [{ host: '0.0.0.0', port: 6380 }, 2, 2147483648, 2]);
    assert.equal(config(['--config', configFile({ http_addr: null })]).httpAddr, null);
    assert.deepEqual(config(['--config', configFile({})]), config([]));
  });

  it('a flag overrides the file, whatever the order; fields not given keep the file or the default', () => {
    const file = configFile({ addr: '127.0.0.1:7200', data_dir: 'from-file', sync: 'none', requirepass: 'filepw' });
    const before = config(['--data', 'from-flag', '--config', file]);
    const afterwards = config(['--config', file, '--data', 'from-flag']);
    for (const c of [before, afterwards]) {
      assert.equal(c.dataDir, 'from-flag');
      assert.deepEqual(c.addr, { host: '127.0.0.1', port: 7200 });
      assert.equal(c.sync, 'none');
      assert.equal(c.maxVolumeSize, 2147483648);
    }
    assert.equal(config(['--config', file], { BRISEDB_REQUIREPASS: 'envpw' }).requirepass, 'envpw');
    assert.equal(config(['--config', file, '--requirepass', 'flagpw'], { BRISEDB_REQUIREPASS: 'envpw' }).requirepass, 'flagpw');
  });

  it('a bad field of the file is an error even when a flag overrides it', () => {
    const file = configFile({ replication_factor: 'two' });
    const want = `config ${file}: replication_factor: "two" is not a positive integer`;
    assert.equal(error(['--config', file]), want);
    assert.equal(error(['--config', file, '--replication-factor', '1']), want);
  });
});

describe('master config: every bad input is one line naming the flag or field and the value', () => {
  it('flags', () => {
    const table: Array<[string[], string]> = [
      [['--adr', 'x'], 'unknown flag "--adr" (did you mean "--addr"?)'],
      [['--frobnicate', 'x'], 'unknown flag "--frobnicate"'],
      [['data'], 'unexpected argument "data" (flags start with --; see --help)'],
      [['-d', 'x'], 'unexpected argument "-d" (flags start with --; see --help)'],
      [['--data'], '--data: needs a value'],
      [['--http', '--data', 'd'], '--http: needs a value (--http "" disables HTTP)'],
      [['--addr', '127.0.0.1:99999'], '--addr: "127.0.0.1:99999" has port 99999, outside 0-65535'],
      [['--addr', 'nope'], '--addr: "nope" is not HOST:PORT, [IPv6]:PORT, :PORT or PORT'],
      [['--http', 'a b:1'], '--http: "a b:1" has an invalid host "a b"'],
      [['--data', ''], '--data: "" is empty'],
      [['--drives', 'a,,b'], '--drives: "a,,b" has directory "" that is empty'],
      [['--drives', 'a,a'], '--drives: "a,a" lists "a" twice'],
      [['--drives', 'x,./x'], '--drives: "./x" is listed twice'],
      [['--data', 'd', '--drives', './d'], '--drives: "./d" is the data dir (--data); the data dir is always the first drive'],
      [['--volume-servers', 'ftp://a'], '--volume-servers: "ftp://a" has URL "ftp://a" that is not http://'],
      [['--volume-servers', 'https://a'], '--volume-servers: "https://a" has URL "https://a" that is https://; volume servers speak http:// (their requests are signed with --volume-secret; put TLS in a tunnel or VPN between hosts)'],
      [['--volume-servers', 'not a url'], '--volume-servers: "not a url" has URL "not a url" that is not a URL'],
      [['--volume-servers', 'http://a/?x=1'], '--volume-servers: "http://a/?x=1" has URL "http://a/?x=1" that has a query or fragment; give the base URL'],
      [['--replication-factor', '0'], '--replication-factor: "0" is not a positive integer'],
      [['--replication-factor', 'two'], '--replication-factor: "two" is not a positive integer'],
      [['--replication-factor', '2'], '--replication-factor: 2 copies need 1 volume server(s); 0 configured (--volume-servers)'],
      [['--replication-factor', '3', '--volume-servers', 'http://a'], '--replication-factor: 3 copies need 2 volume server(s); 1 configured (--volume-servers)'],
      [['--max-volume-size', 'abc'], '--max-volume-size: "abc" is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)'],
      [['--max-volume-size', '-5'], '--max-volume-size: "-5" is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)'],
      [['--max-volume-size', '0'], '--max-volume-size: "0" is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)'],
      [['--max-volume-size', '100'], '--max-volume-size: "100" is below the minimum of 256 bytes'],
      [['--max-volume-size', '99999gb'], '--max-volume-size: "99999gb" is above the maximum of 70368744177664 bytes'],
      [['--max-volume-size', '999999999999999gb'], '--max-volume-size: "999999999999999gb" is above the maximum of 70368744177664 bytes'],
      [['--requirepass', 'a\nb'], '--requirepass: the value contains a control character (a trailing newline?)'],
      [['--requirepass', 'x'.repeat(5000)], '--requirepass: the value is longer than 4096 bytes'],
      [['--tcp-threads', '0'], '--tcp-threads: "0" is not a positive integer'],
      [['--tcp-threads', '4'], '--tcp-threads: 4 threads need reusePort (Node 22.12 or later on linux/freebsd/sunos/aix); this is Node 20.20.2 on linux'],
      [['--tcp-threads', '1000'], '--tcp-threads: "1000" is out of range 1-256'],
      [['--sync', 'sometimes'], '--sync: "sometimes" is not one of always, none'],
      [['--maxclients', '0'], '--maxclients: "0" is not a positive integer'],
      [['--maxclients', '1e3'], '--maxclients: "1e3" is not a positive integer'],
      [['--timeout', '-1'], '--timeout: "-1" is not a non-negative integer'],
      [['--timeout', '99999999'], '--timeout: "99999999" is out of range 0-2147483'],
      [['--proto-max-bulk-len', 'huge'], '--proto-max-bulk-len: "huge" is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)'],
      [['--client-query-buffer-limit', '0'], '--client-query-buffer-limit: "0" is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)'],
      [['--log-level', 'loud'], '--log-level: "loud" is not one of fatal, error, warn, info, debug, trace, silent'],
      [['--addr', '127.0.0.1:7000', '--http', '127.0.0.1:7000'], '--http: 127.0.0.1:7000 is also the TCP address (--addr)'],
      [['--config', ''], '--config: needs a file name'],
    ];
    for (const [argv, want] of table) assert.equal(error(argv), want, argv.join(' ').slice(0, 80));
  });

  it('the environment', () => {
    assert.equal(error([], { BRISEDB_LOG_LEVEL: 'chatty' }), 'BRISEDB_LOG_LEVEL: "chatty" is not one of fatal, error, warn, info, debug, trace, silent');
    assert.equal(error([], { BRISEDB_REQUIREPASS: 'pw\n' }), 'BRISEDB_REQUIREPASS: the value contains a control character (a trailing newline?)');
  });

  it('the config file', () => {
    const missing = path.join(tmp, 'missing.json');
    const table: Array<[unknown, string]> = [
      [{ adr: ':6380' }, 'unknown field "adr" (did you mean "addr"?)'],
      [{ log_level: 'info' }, 'unknown field "log_level"'],
      ['{"addr": ":6380",}', 'invalid JSON: '],
      ['', 'invalid JSON: '],
      ['[1,2]', 'expected a JSON object {...}, found an array'],
      ['"text"', 'expected a JSON object {...}, found "text"'],
      ['null', 'expected a JSON object {...}, found null'],
      [{ addr: 6380 }, 'addr: 6380 is not a string "HOST:PORT"'],
      [{ addr: '127.0.0.1:70000' }, 'addr: "127.0.0.1:70000" has port 70000, outside 0-65535'],
      [{ http_addr: false }, 'http_addr: false is not a string "HOST:PORT"'],
      [{ data_dir: 7 }, 'data_dir: 7 is not a string (a directory)'],
      [{ drives: 'a,b' }, 'drives: "a,b" is not an array of directories'],
      [{ drives: Array.from({ length: 65 }, (_, i) => `d${i}`) }, 'drives: ["d0","d1",'],
      [{ drives: ['a', 3] }, 'drives: ["a",3] has directory 3 that is not a string'],
      [{ volume_servers: ['http://a', 'http://a'] }, 'volume_servers: ["http://a","http://a"] lists "http://a" twice'],
      [{ replication_factor: '2' }, 'replication_factor: "2" is not a positive integer'],
      [{ replication_factor: 1.5 }, 'replication_factor: 1.5 is not a positive integer'],
      [{ replication_factor: 2 }, 'replication_factor: 2 copies need 1 volume server(s); 0 configured (--volume-servers)'],
      [{ max_volume_size: -1 }, 'max_volume_size: -1 is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)'],
      [{ max_volume_size: 'abc' }, 'max_volume_size: "abc" is not a positive integer (a size: bytes, or with a unit: 512mb, 1gb)'],
      [{ requirepass: 1234 }, 'requirepass: the value is not a string'],
      [{ tcp_threads: '1' }, 'tcp_threads: "1" is not a positive integer'],
      [{ sync: true }, 'sync: true is not one of always, none'],
      [{ maxclients: 0 }, 'maxclients: 0 is not a positive integer'],
      [{ timeout: -3 }, 'timeout: -3 is not a non-negative integer'],
    ];
    for (const [content, want] of table) {
      const file = configFile(content);
      const line = error(['--config', file]);
      assert.ok(line.startsWith(`config ${file}: ${want}`), `${line}\n  wanted: config ${file}: ${want}`);
    }
    assert.equal(error(['--config', missing]), `config ${missing}: cannot read it: no such file`);
    assert.equal(error(['--config', tmp]), `config ${tmp}: cannot read it: it is a directory`);
    const big = configFile(' '.repeat(1024 * 1024 + 1));
    assert.equal(error(['--config', big]), `config ${big}: is 1048577 bytes; the limit is 1048576`);
    const both = configFile({ replication_factor: 2 });
    assert.equal(error(['--config', both, '--volume-servers', '']), `config ${both}: replication_factor: 2 copies need 1 volume server(s); 0 configured (--volume-servers)`);
  });

  it('a value that would break the line is cut short', () => {
    const line = error(['--addr', 'x'.repeat(500)]);
    assert.ok(line.length < 160, line);
  });
});

describe('master log', () => {
  it('never writes the password, and writes JSON lines at the level asked', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
        done();
      },
    });
    const log = createLogger('info', sink);
    const c = config(['--requirepass', 'hunter2-secret']);
    log.info({ config: redactedConfig(c) }, 'starting');
    log.info({ requirepass: 'hunter2-secret', nested: { requirepass: 'hunter2-secret' } }, 'careless');
    log.debug('hidden at info');
    assert.equal(lines.length, 2);
    for (const l of lines) {
      assert.ok(!l.includes('hunter2'), l);
      JSON.parse(l);
    }
    assert.equal(JSON.parse(lines[0]!).config.requirepass, '(set)');
    assert.equal(JSON.parse(lines[0]!).msg, 'starting');
    log.info({ config: redactedConfig(config([])) }, 'no password');
    assert.equal(JSON.parse(lines[2]!).config.requirepass, null, 'no password logs as null, not as set');
  });
});

describe('master config: the protocol limits are all configurable', () => {
  it('--max-multibulk-len, --max-inline-len, --client-output-buffer-limit and their file fields', () => {
    const c = config(['--max-multibulk-len', '100', '--max-inline-len', '8kb', '--client-output-buffer-limit', '1mb']);
    assert.equal(c.tcpLimits.maxMultibulkCount, 100);
    assert.equal(c.tcpLimits.maxInlineLength, 8 * 1024);
    assert.equal(c.tcpLimits.maxOutputBuffer, 1024 * 1024);
    const file = configFile({ max_multibulk_len: 7, max_inline_len: 4096, client_output_buffer_limit: 65536 });
    const f = config(['--config', file]);
    assert.deepEqual([f.tcpLimits.maxMultibulkCount, f.tcpLimits.maxInlineLength, f.tcpLimits.maxOutputBuffer], [7, 4096, 65536]);
    assert.match(error(['--max-multibulk-len', '0']), /--max-multibulk-len/);
    assert.match(error(['--max-inline-len', 'lots']), /--max-inline-len/);
  });

  it('--auto-compact-percentage, --auto-compact-min-size, --needle-cache-size and their file fields; defaults leave the config as it was', () => {
    const d = config([]);
    assert.equal(d.autoCompact, undefined);
    assert.equal(d.needleCacheBytes, undefined);
    const c = config(['--auto-compact-percentage', '0', '--auto-compact-min-size', '1gb', '--needle-cache-size', '0']);
    assert.deepEqual(c.autoCompact, { percentage: 0, minBytes: 1024 ** 3 });
    assert.equal(c.needleCacheBytes, 0);
    const f = config(['--config', configFile({ auto_compact_percentage: 50, needle_cache_size: '256mb' })]);
    assert.deepEqual(f.autoCompact, { percentage: 50, minBytes: 64 * 1024 * 1024 });
    assert.equal(f.needleCacheBytes, 256 * 1024 * 1024);
    assert.match(error(['--needle-cache-size', '3gb']), /--needle-cache-size/, 'above the 2 GiB a cache takes');
    assert.match(error(['--auto-compact-percentage', '-1']), /--auto-compact-percentage/);
  });
});

describe('master config: HTTP settings', () => {
  it('--http-token comes from $BRISEDB_HTTP_TOKEN too (the flag wins), and is never in the logged config', () => {
    assert.equal(config([], { BRISEDB_HTTP_TOKEN: 'from-env' }).httpToken, 'from-env');
    assert.equal(config(['--http-token', 'from-flag'], { BRISEDB_HTTP_TOKEN: 'from-env' }).httpToken, 'from-flag');
    assert.equal((redactedConfig(config(['--http-token', 'secret-token'])) as unknown as Record<string, unknown>).httpToken, '(set)');
    assert.match(error(['--http-threads', '0']), /--http-threads/);
    assert.match(error(['--max-body-size', 'huge']), /--max-body-size/);
  });
});
