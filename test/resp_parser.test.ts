// The server-side RESP parser (src/protocol/resp_parser.ts): multibulk and inline commands,
// every Redis protocol error with Redis' wording, limits, no allocation by a declared length,
// zero-copy arguments, and chunking invariance (a fast-check property).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RespCommandParser, PROTOCOL_ERRORS, string2ll, type ParseResult } from '../src/protocol/resp_parser.js';
import { encodeCommand } from '../src/protocol/resp_writer.js';
import { joinCommandLine } from '../src/protocol/command_line.js';
import { DEFAULT_PARSER_LIMITS, UNAUTHENTICATED_TCP_LIMITS, type RespParserLimits } from '../src/protocol/tcp_limits.js';

type Outcome = { commands: string[][]; inline: boolean[]; end: string };

/** Feeds the chunks (calling next() after each push until need-more) and collects everything. */
function run(chunks: readonly Buffer[], limits: Partial<RespParserLimits> = {}): Outcome {
  const p = new RespCommandParser({ ...DEFAULT_PARSER_LIMITS, ...limits });
  const out: Outcome = { commands: [], inline: [], end: 'need-more' };
  for (const chunk of chunks) {
    p.push(chunk);
    for (;;) {
      const r = p.next();
      if (r.kind === 'need-more') break;
      if (r.kind === 'error') {
        out.end = r.message;
        return out;
      }
      out.commands.push(r.args.map((a) => a.toString('latin1')));
      out.inline.push(r.inline);
    }
  }
  return out;
}

function one(text: string | Buffer, limits: Partial<RespParserLimits> = {}): Outcome {
  return run([typeof text === 'string' ? Buffer.from(text, 'latin1') : text], limits);
}

function errorOf(text: string | Buffer, limits: Partial<RespParserLimits> = {}): string {
  return one(text, limits).end;
}

test('a multibulk command in one chunk; arguments are zero-copy views of the chunk', () => {
  const chunk = Buffer.from('*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n');
  const p = new RespCommandParser(DEFAULT_PARSER_LIMITS);
  p.push(chunk);
  const r = p.next();
  assert.equal(r.kind, 'command');
  if (r.kind !== 'command') return;
  assert.deepEqual(r.args.map(String), ['SET', 'key', 'value']);
  assert.equal(r.inline, false);
  assert.equal(r.args[2]!.buffer, chunk.buffer, 'value is a view of the chunk, not a copy');
  assert.deepEqual(p.next(), { kind: 'need-more' });
  assert.equal(p.buffered, 0);
});

test('pipelined commands come out one at a time, in order', () => {
  const stream = Buffer.concat([encodeCommand(['GET', 'a']), encodeCommand(['GET', 'b']), encodeCommand(['PING'])]);
  assert.deepEqual(one(stream).commands, [['GET', 'a'], ['GET', 'b'], ['PING']]);
});

test('binary arguments survive: CR, LF, NUL inside bulks', () => {
  const value = Buffer.from([0, 13, 10, 0x2a, 0x24, 255]);
  const p = new RespCommandParser(DEFAULT_PARSER_LIMITS);
  p.push(encodeCommand(['SET', 'k', value]));
  const r = p.next();
  assert.ok(r.kind === 'command' && r.args[2]!.equals(value));
});

test('empty requests are skipped as Redis does: *0, *-1, *-5, empty and blank inline lines', () => {
  const out = one('*0\r\n*-1\r\n*-5\r\n\r\n\n   \r\n\t\n*1\r\n$4\r\nPING\r\n');
  assert.deepEqual(out.commands, [['PING']]);
  assert.equal(out.end, 'need-more');
});

test('inline commands: CRLF or LF, quotes as redis-cli splits them', () => {
  const out = one('SET hello world\r\nGET hello\nSET "a b" \'c d\' "\\x41\\n"\r\n');
  assert.deepEqual(out.commands, [['SET', 'hello', 'world'], ['GET', 'hello'], ['SET', 'a b', 'c d', 'A\n']]);
  assert.deepEqual(out.inline, [true, true, true]);
});

test('inline: unbalanced quotes are a protocol error', () => {
  assert.equal(errorOf('SET "abc\r\n'), PROTOCOL_ERRORS.unbalancedQuotes);
  assert.equal(errorOf("SET 'abc\n"), 'Protocol error: unbalanced quotes in request');
  assert.equal(errorOf('SET "a"b\n'), 'Protocol error: unbalanced quotes in request');
});

test('inline: a line over maxInlineLength is too big, terminated or not', () => {
  const long = 'SET k ' + 'x'.repeat(70 * 1024);
  assert.equal(errorOf(long), 'Protocol error: too big inline request');
  assert.equal(errorOf(long + '\r\n'), 'Protocol error: too big inline request');
  // Exactly at the limit is fine, and a trailing CR waiting for its LF is not counted.
  const limits = { maxInlineLength: 10 };
  assert.deepEqual(one('PING 12345\r\n', limits).commands, [['PING', '12345']]);
  assert.equal(one('PING 12345\r', limits).end, 'need-more');
  assert.equal(errorOf('PING 123456', limits), 'Protocol error: too big inline request');
});

test('Redis error: invalid multibulk length', () => {
  for (const bad of ['*abc\r\n', '*2147483648\r\n', '*99999999999999999999\r\n', '*01\r\n', '*+1\r\n', '* 1\r\n', '*\r\n', '*1x\r\n', '*-0\r\n']) {
    assert.equal(errorOf(bad), 'Protocol error: invalid multibulk length', bad);
  }
  assert.equal(errorOf('*11\r\n', { maxMultibulkCount: 10 }), 'Protocol error: invalid multibulk length');
  assert.deepEqual(one('*10\r\n', { maxMultibulkCount: 10 }).end, 'need-more');
});

test('Redis error: invalid bulk length', () => {
  for (const bad of ['$-1', '$-5', '$99999999999', '$536870913', '$01', '$+1', '$', '$1 ', '$abc', '$-0', '$99999999999999999999']) {
    assert.equal(errorOf(`*1\r\n${bad}\r\n`), 'Protocol error: invalid bulk length', bad);
  }
  assert.equal(errorOf('*1\r\n$11\r\n', { maxBulkLength: 10 }), 'Protocol error: invalid bulk length');
  assert.equal(one('*1\r\n$10\r\n', { maxBulkLength: 10 }).end, 'need-more');
  assert.deepEqual(one('*1\r\n$0\r\n\r\n').commands, [['']]);
});

test("Redis error: expected '$', got 'x' (CR shown as a space)", () => {
  assert.equal(errorOf('*1\r\nx3\r\n'), "Protocol error: expected '$', got 'x'");
  assert.equal(errorOf('*2\r\n$1\r\na\r\n:1\r\n'), "Protocol error: expected '$', got ':'");
  assert.equal(errorOf('*1\r\n\r\n'), "Protocol error: expected '$', got ' '");
  // Like Redis, the check waits for the line's CR: an unfinished line is not yet an error.
  assert.equal(one('*1\r\nx3').end, 'need-more');
});

test('Redis error: too big mbulk count string / too big bulk count string', () => {
  const digits = '1'.repeat(70 * 1024);
  assert.equal(errorOf('*' + digits), 'Protocol error: too big mbulk count string');
  assert.equal(errorOf('*' + digits + '\r\n'), 'Protocol error: too big mbulk count string');
  assert.equal(errorOf('*1\r\n$' + digits), 'Protocol error: too big bulk count string');
  assert.equal(errorOf('*1\r\n$' + digits + '\r\n'), 'Protocol error: too big bulk count string');
});

test('after an error the parser is dead: the same error again, input dropped', () => {
  const p = new RespCommandParser(DEFAULT_PARSER_LIMITS);
  p.push(Buffer.from('*x\r\n*1\r\n$4\r\nPING\r\n'));
  const first = p.next();
  assert.equal(first.kind, 'error');
  p.push(encodeCommand(['PING']));
  assert.deepEqual(p.next(), first);
  assert.equal(p.buffered, 0);
});

test('lenient like Redis: the byte after a CR and the two bytes after a bulk are not checked', () => {
  assert.deepEqual(one('*1\r?$1\r?aXY').commands, [['a']]);
});

test('query buffer limit: a push past maxQueryBuffer makes next() an error', () => {
  const p = new RespCommandParser({ ...DEFAULT_PARSER_LIMITS, maxQueryBuffer: 100 });
  p.push(Buffer.alloc(60, 0x41));
  assert.deepEqual(p.next(), { kind: 'need-more' });
  p.push(Buffer.alloc(60, 0x41));
  assert.deepEqual(p.next(), { kind: 'error', message: PROTOCOL_ERRORS.queryBufferLimit });
});

test('query buffer counts the command being collected, a big bulk included', () => {
  const p = new RespCommandParser({ ...DEFAULT_PARSER_LIMITS, maxQueryBuffer: 100 * 1024 });
  p.push(Buffer.from('*2\r\n$3\r\nSET\r\n$200000\r\n'));
  assert.equal(p.next().kind, 'need-more');
  for (let i = 0; i < 3; i++) {
    p.push(Buffer.alloc(40 * 1024, 1));
    if (p.next().kind === 'error') return;
  }
  assert.fail('200 KB collected under a 100 KB query buffer limit');
});

test('unauthenticated limits, then setLimits after AUTH', () => {
  const preAuth = (): RespCommandParser => {
    const parser = new RespCommandParser(DEFAULT_PARSER_LIMITS);
    parser.setPreAuthLimits(UNAUTHENTICATED_TCP_LIMITS);
    return parser;
  };
  const p = preAuth();
  p.push(encodeCommand(['AUTH', 'pw']));
  assert.equal(p.next().kind, 'command');
  p.setPreAuthLimits(null);
  p.push(encodeCommand(['MSET', ...Array.from({ length: 20 }, (_, i) => `k${i}`)]));
  const r = p.next();
  assert.ok(r.kind === 'command' && r.args.length === 21);
  // Redis' own texts for the limits of an unauthenticated client (regression: they answered
  // 'invalid multibulk length' / 'invalid bulk length').
  const q = preAuth();
  q.push(encodeCommand(['MSET', ...Array.from({ length: 20 }, (_, i) => `k${i}`)]));
  assert.equal((q.next() as { message?: string }).message, 'Protocol error: unauthenticated multibulk length');
  const big = preAuth();
  big.push(encodeCommand(['SET', 'k', Buffer.alloc(20000)]));
  assert.equal((big.next() as { message?: string }).message, 'Protocol error: unauthenticated bulk length');
  // The ordinary limits come first, as in Redis.
  const huge = preAuth();
  huge.push(Buffer.from('*3000000000\r\n'));
  assert.equal((huge.next() as { message?: string }).message, 'Protocol error: invalid multibulk length');
});

test('a huge declared bulk allocates nothing up front', () => {
  const p = new RespCommandParser(DEFAULT_PARSER_LIMITS);
  const before = process.memoryUsage().arrayBuffers;
  p.push(Buffer.from('*2\r\n$3\r\nSET\r\n$536870912\r\n'));
  p.push(Buffer.alloc(1000, 0x61));
  assert.equal(p.next().kind, 'need-more');
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 16 * 1024 * 1024, `arrayBuffers grew by ${grown}`);
  assert.ok(p.buffered <= 1000 + 40, `buffered ${p.buffered}`);
});

test('a big bulk arriving in small pieces is assembled right (staging path, 1-byte and odd chunks)', () => {
  const value = Buffer.alloc(100_000);
  for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 255;
  const stream = Buffer.concat([encodeCommand(['SET', 'k', value]), encodeCommand(['GET', 'k'])]);
  for (const size of [1, 7, 4096, 20_000, 65_536]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
    const p = new RespCommandParser(DEFAULT_PARSER_LIMITS);
    const got: Buffer[][] = [];
    let pushed = 0;
    for (const c of chunks) {
      p.push(c);
      pushed += c.length;
      assert.ok(p.buffered <= pushed);
      for (let r = p.next(); r.kind === 'command'; r = p.next()) got.push(r.args);
    }
    assert.equal(got.length, 2, `chunk size ${size}`);
    assert.ok(got[0]![2]!.equals(value), `chunk size ${size}`);
    assert.deepEqual(got[1]!.map(String), ['GET', 'k']);
  }
});

test('several chunks pushed before next() parse the same', () => {
  const stream = Buffer.concat([encodeCommand(['SET', 'a', 'x'.repeat(50_000)]), Buffer.from('PING\r\n'), encodeCommand(['GET', 'a'])]);
  const p = new RespCommandParser(DEFAULT_PARSER_LIMITS);
  for (let i = 0; i < stream.length; i += 999) p.push(stream.subarray(i, i + 999));
  assert.equal(p.buffered, stream.length);
  const names: string[] = [];
  for (let r = p.next(); r.kind === 'command'; r = p.next()) names.push(String(r.args[0]));
  assert.deepEqual(names, ['SET', 'PING', 'GET']);
  assert.equal(p.buffered, 0);
});

test('arguments stay intact after later input is parsed (bytes never rewritten)', () => {
  const p = new RespCommandParser(DEFAULT_PARSER_LIMITS);
  const stream = Buffer.concat(Array.from({ length: 200 }, (_, i) => encodeCommand(['SET', `key${i}`, `value${i}`])));
  const kept: ParseResult[] = [];
  for (let i = 0; i < stream.length; i += 5) {
    p.push(Buffer.from(stream.subarray(i, i + 5)));
    for (let r = p.next(); r.kind === 'command'; r = p.next()) kept.push(r);
  }
  assert.equal(kept.length, 200);
  kept.forEach((r, i) => assert.ok(r.kind === 'command' && String(r.args[2]) === `value${i}`));
});

test('string2ll matches Redis', () => {
  const v = (s: string): number | null => string2ll(Buffer.from(s), 0, s.length);
  assert.equal(v('0'), 0);
  assert.equal(v('123'), 123);
  assert.equal(v('-5'), -5);
  assert.equal(v('9223372036854775807'), 9223372036854775807);
  assert.equal(v('-9223372036854775808'), -9223372036854775808);
  for (const bad of ['', '-', '+1', '01', '-0', ' 1', '1 ', '9223372036854775808', '-9223372036854775809', '12a']) {
    assert.equal(v(bad), null, bad);
  }
});

// ---- chunking invariance ----

const argArb = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.constantFrom(...['\r\n', '*1\r\n', '$3', '"', "'", ' '].map((s) => Buffer.from(s))) },
  { weight: 1, arbitrary: fc.integer({ min: 30_000, max: 70_000 }).map((n) => new Uint8Array(n).fill(0x62)) },
);
const requestArb = fc.oneof(
  { weight: 6, arbitrary: fc.array(argArb, { minLength: 1, maxLength: 5 }).map((args) => encodeCommand(args.map((a) => Buffer.from(a)))) },
  // An inline command; a line that starts with '*' is a multibulk header to Redis (and to us),
  // whatever follows, so a first argument starting with '*' makes no inline command (seed 838893125).
  {
    weight: 2,
    arbitrary: fc.array(fc.uint8Array({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 })
      .map((args) => Buffer.from(joinCommandLine(args) + '\r\n', 'latin1'))
      .filter((line) => line[0] !== 0x2a),
  },
  { weight: 1, arbitrary: fc.constantFrom(...['*0\r\n', '*-1\r\n', '\r\n', '\n', '  \n'].map((s) => Buffer.from(s))) },
);

function splitAt(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    chunks.push(stream.subarray(last, p));
    last = p;
  }
  chunks.push(stream.subarray(last));
  return chunks;
}

test('property: any split of a stream of commands gives the same commands', () => {
  fc.assert(
    fc.property(fc.array(requestArb, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }), fc.option(fc.uint8Array({ maxLength: 10 })), (requests, cuts, tail) => {
      // An optional junk tail: the final error (or need-more) must not depend on the split either.
      const stream = Buffer.concat([...requests, Buffer.from(tail ?? [])]);
      const whole = one(stream);
      const split = run(splitAt(stream, cuts));
      assert.deepEqual(split, whole);
      if (tail === null) {
        const expected = requests.filter((r) => !/^(\*0|\*-1|\s*)\r?\n?$/.test(r.toString('latin1'))).length;
        assert.equal(whole.commands.length, expected);
        assert.equal(whole.end, 'need-more');
      }
    }),
    { numRuns: 300 },
  );
});

test('property: split invariance holds under small limits too (the limit errors)', () => {
  const limits = { maxInlineLength: 16, maxBulkLength: 40_000, maxMultibulkCount: 3 };
  fc.assert(
    fc.property(fc.array(requestArb, { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 30 }), (requests, cuts) => {
      const stream = Buffer.concat(requests);
      assert.deepEqual(run(splitAt(stream, cuts), limits), one(stream, limits));
    }),
    { numRuns: 300 },
  );
});
