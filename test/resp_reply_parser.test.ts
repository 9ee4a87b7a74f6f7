// The client-side RESP parser (src/protocol/resp_reply_parser.ts): every RESP2 and RESP3 type,
// attributes skipped, protocol errors thrown (and final), limits (depth, lengths, buffered
// bytes), no allocation by a declared length, and chunking invariance (fast-check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RespError, RespProtocolError, RespPush, RespReplyParser, type RespReplyParserLimits, type RespValue } from '../src/protocol/resp_reply_parser.js';
import { array, bulk, integer, map, push, simple, type Reply } from '../src/protocol/reply.js';
import { writeReply } from '../src/protocol/resp_writer.js';

function all(text: string | Buffer, limits: Partial<RespReplyParserLimits> = {}): RespValue[] {
  const p = new RespReplyParser(limits);
  p.push(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  const out: RespValue[] = [];
  for (let v = p.next(); v !== null; v = p.next()) out.push(v.value);
  return out;
}

function single(text: string): RespValue {
  const values = all(text);
  assert.equal(values.length, 1, `one value from ${JSON.stringify(text)}`);
  return values[0]!;
}

test('RESP2 types', () => {
  assert.equal(single('+OK\r\n'), 'OK');
  assert.equal(single(':-12\r\n'), -12);
  assert.equal(single(':9223372036854775807\r\n'), 9223372036854775807n);
  assert.deepEqual(single('$3\r\nabc\r\n'), Buffer.from('abc'));
  assert.deepEqual(single('$0\r\n\r\n'), Buffer.alloc(0));
  assert.equal(single('$-1\r\n'), null);
  assert.equal(single('*-1\r\n'), null);
  assert.deepEqual(single('*0\r\n'), []);
  assert.deepEqual(single('*2\r\n$1\r\na\r\n*1\r\n:1\r\n'), [Buffer.from('a'), [1]]);
  const err = single('-WRONGTYPE Operation against a key\r\n');
  assert.ok(err instanceof RespError && err instanceof Error);
  assert.equal(err.code, 'WRONGTYPE');
  assert.equal(err.message, 'WRONGTYPE Operation against a key');
  const bare = single('-NOAUTH\r\n');
  assert.ok(bare instanceof RespError && bare.code === 'NOAUTH');
});

test('RESP3 types', () => {
  assert.equal(single('_\r\n'), null);
  assert.equal(single(',1.5\r\n'), 1.5);
  assert.equal(single(',inf\r\n'), Infinity);
  assert.equal(single(',-inf\r\n'), -Infinity);
  assert.ok(Number.isNaN(single(',nan\r\n')));
  assert.equal(single(',1e-7\r\n'), 1e-7);
  assert.equal(single('#t\r\n'), true);
  assert.equal(single('#f\r\n'), false);
  assert.equal(single('(3492890328409238509324850943850943825024385\r\n'), 3492890328409238509324850943850943825024385n);
  assert.deepEqual(single('=15\r\ntxt:Some string\r\n'), Buffer.from('Some string'));
  const blob = single('!21\r\nSYNTAX invalid syntax\r\n');
  assert.ok(blob instanceof RespError && blob.code === 'SYNTAX');
  const m = single('%2\r\n+first\r\n:1\r\n+second\r\n*1\r\n:2\r\n');
  assert.ok(m instanceof Map);
  assert.deepEqual([...m.entries()], [['first', 1], ['second', [2]]]);
  assert.deepEqual(single('~2\r\n+a\r\n+b\r\n'), ['a', 'b']);
  const p = single('>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n');
  assert.ok(p instanceof RespPush);
  assert.deepEqual(p.items.map(String), ['message', 'ch', 'hi']);
  assert.ok(single('%0\r\n') instanceof Map);
});

test('attributes are read and dropped, at the top level and inside aggregates', () => {
  assert.deepEqual(all('|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*2\r\n:2039123\r\n:9543892\r\n'), [[2039123, 9543892]]);
  assert.deepEqual(all('*2\r\n|1\r\n+ttl\r\n:3600\r\n:1\r\n:2\r\n'), [[1, 2]]);
  assert.deepEqual(all('|0\r\n:5\r\n'), [5]);
});

test('incomplete input is need-more (null), completed by later chunks', () => {
  const p = new RespReplyParser();
  p.push(Buffer.from('*2\r\n$5\r\nhel'));
  assert.equal(p.next(), null);
  p.push(Buffer.from('lo\r\n:4'));
  assert.equal(p.next(), null);
  p.push(Buffer.from('2\r\n+OK\r'));
  assert.deepEqual(p.next(), { value: [Buffer.from('hello'), 42] });
  assert.equal(p.next(), null);
  p.push(Buffer.from('\n'));
  assert.deepEqual(p.next(), { value: 'OK' });
});

test('protocol errors throw RespProtocolError, and the parser stays dead', () => {
  const bad = [
    '?\r\n', ':12a\r\n', ':\r\n', '$-2\r\n', '$abc\r\n', '*-2\r\n', '%-1\r\n', '#x\r\n', '_x\r\n', ',abc\r\n', '(12x\r\n',
    '+OK\rX', '$3\r\nabcXY', '=2\r\nab\r\n', '=5\r\ntxtXa\r\n',
  ];
  for (const text of bad) {
    const p = new RespReplyParser();
    p.push(Buffer.from(text, 'latin1'));
    assert.throws(() => p.next(), RespProtocolError, JSON.stringify(text));
    assert.throws(() => p.next(), RespProtocolError, 'still dead');
  }
});

test('limits: line length, bulk length, aggregate count, depth, buffered bytes', () => {
  assert.throws(() => all('+' + 'x'.repeat(100), { maxLineLength: 50 }), RespProtocolError);
  assert.throws(() => all('+' + 'x'.repeat(100) + '\r\n', { maxLineLength: 50 }), RespProtocolError);
  assert.deepEqual(all('+' + 'x'.repeat(50) + '\r\n', { maxLineLength: 50 }), ['x'.repeat(50)]);
  assert.throws(() => all('$11\r\n', { maxBulkLength: 10 }), RespProtocolError);
  assert.throws(() => all('*11\r\n', { maxAggregateCount: 10 }), RespProtocolError);
  assert.throws(() => all('*1\r\n'.repeat(5) + ':1\r\n', { maxDepth: 4 }), RespProtocolError);
  assert.deepEqual(all('*1\r\n'.repeat(4) + ':1\r\n', { maxDepth: 4 }), [[[[[1]]]]]);
  assert.throws(() => all(Buffer.alloc(200, 0x2a), { maxBuffered: 100 }), RespProtocolError);
});

test('a hostile nesting 100,000 deep is a protocol error, not a stack overflow', () => {
  assert.throws(() => all('*1\r\n'.repeat(100_000) + ':1\r\n'), RespProtocolError);
});

test('a huge declared bulk or array allocates nothing up front', () => {
  const before = process.memoryUsage().arrayBuffers;
  const p = new RespReplyParser();
  p.push(Buffer.from('$536870912\r\n'));
  p.push(Buffer.alloc(1000));
  assert.equal(p.next(), null);
  const q = new RespReplyParser();
  q.push(Buffer.from('*2000000000\r\n:1\r\n'));
  assert.equal(q.next(), null);
  assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024);
  assert.ok(p.buffered <= 1000);
});

test('a big bulk in many chunks is assembled, its CRLF checked', () => {
  const value = Buffer.alloc(200_000);
  for (let i = 0; i < value.length; i++) value[i] = (i * 7) & 255;
  const bytes = Buffer.concat([writeReply(bulk(value), 2), Buffer.from('+OK\r\n')]);
  for (const size of [1, 1000, 33_000, 70_000]) {
    const p = new RespReplyParser();
    const got: RespValue[] = [];
    for (let i = 0; i < bytes.length; i += size) {
      p.push(bytes.subarray(i, i + size));
      for (let v = p.next(); v !== null; v = p.next()) got.push(v.value);
    }
    assert.equal(got.length, 2);
    assert.ok(Buffer.isBuffer(got[0]) && got[0].equals(value), `chunk size ${size}`);
  }
  const broken = Buffer.from(`$40000\r\n${'a'.repeat(40000)}XY`);
  const p = new RespReplyParser();
  for (let i = 0; i < broken.length; i += 1000) p.push(broken.subarray(i, i + 1000));
  assert.throws(() => p.next(), RespProtocolError);
});

// ---- chunking invariance ----

const replyArb: fc.Arbitrary<Reply> = fc.letrec<{ reply: Reply }>((tie) => ({
  reply: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ maxLength: 8 }).map(simple),
    fc.integer().map(integer),
    fc.option(fc.uint8Array({ maxLength: 12 })).map((b) => bulk(b === null ? null : Buffer.from(b))),
    fc.integer({ min: 30_000, max: 40_000 }).map((n) => bulk(Buffer.alloc(n, 0x61))),
    fc.option(fc.array(tie('reply'), { maxLength: 4 })).map(array),
    fc.array(fc.tuple(tie('reply'), tie('reply')), { maxLength: 3 }).map(map),
    fc.array(tie('reply'), { maxLength: 3 }).map(push),
  ),
})).reply;

type Outcome = { values: string[]; end: string };

function describe(v: RespValue): string {
  if (Buffer.isBuffer(v)) return `b:${v.length}:${v.subarray(0, 16).toString('hex')}`;
  if (v instanceof Map) return `{${[...v.entries()].map(([k, x]) => describe(k) + '=' + describe(x)).join(',')}}`;
  if (v instanceof RespPush) return `>[${v.items.map(describe).join(',')}]`;
  if (v instanceof RespError) return `err:${v.message}`;
  if (Array.isArray(v)) return `[${v.map(describe).join(',')}]`;
  return `${typeof v}:${String(v)}`;
}

function run(chunks: Buffer[]): Outcome {
  const p = new RespReplyParser();
  const out: Outcome = { values: [], end: 'need-more' };
  try {
    for (const c of chunks) {
      p.push(c);
      for (let v = p.next(); v !== null; v = p.next()) out.values.push(describe(v.value));
    }
  } catch (err) {
    assert.ok(err instanceof RespProtocolError, `only protocol errors: ${String(err)}`);
    out.end = err.message;
  }
  return out;
}

test('property: any split of a reply stream gives the same values', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(replyArb, fc.constantFrom(2 as const, 3 as const)), { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 20 }), fc.option(fc.uint8Array({ maxLength: 8 })), (replies, cuts, junk) => {
      const stream = Buffer.concat([...replies.map(([r, proto]) => writeReply(r, proto)), Buffer.from(junk ?? [])]);
      const whole = run([stream]);
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let last = 0;
      for (const p of points) {
        chunks.push(stream.subarray(last, p));
        last = p;
      }
      chunks.push(stream.subarray(last));
      assert.deepEqual(run(chunks), whole);
      if (junk === null) {
        assert.equal(whole.values.length, replies.length);
        assert.equal(whole.end, 'need-more');
      }
    }),
    { numRuns: 300 },
  );
});

test('pub/sub shapes: a RESP2 message array and a RESP3 push frame', () => {
  const items = [bulk('message'), bulk('news'), bulk('hello')];
  assert.deepEqual(single(writeReply(push(items), 2).toString('latin1')), [Buffer.from('message'), Buffer.from('news'), Buffer.from('hello')]);
  const frame = single(writeReply(push(items), 3).toString('latin1'));
  assert.ok(frame instanceof RespPush && frame.items.length === 3);
});
