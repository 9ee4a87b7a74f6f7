// The RESP writer (src/protocol/resp_writer.ts): exact bytes of every Reply kind in RESP2 and
// RESP3 (with the RESP2 downgrades), the ReplyWriter slab (bytes handed out never change, big
// values as uncopied chunks), encodeCommand, and a round trip of every kind through the reply
// parser; plus reply.ts' redis-cli formatting of the RESP3 kinds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  OK, NIL, NULL_ARRAY, NULL_BULK, array, boolean, bulk, double, error, formatForRepl, formatRaw, integer, map, nil, push,
  set, simple, verbatim, type Reply,
} from '../src/protocol/reply.js';
import { BIG_BULK, ReplyWriter, encodeCommand, writeReply, type Proto } from '../src/protocol/resp_writer.js';
import { RespError, RespPush, RespReplyParser, type RespValue } from '../src/protocol/resp_reply_parser.js';

const w = (r: Reply, proto: Proto): string => writeReply(r, proto).toString('latin1');

test('RESP2 kinds: the same bytes in RESP2 and RESP3 (except nulls)', () => {
  for (const proto of [2, 3] as const) {
    assert.equal(w(OK, proto), '+OK\r\n');
    assert.equal(w(simple('a\r\nb'), proto), '+a  b\r\n');
    assert.equal(w(error('ERR bad\nthing'), proto), '-ERR bad thing\r\n');
    assert.equal(w(integer(0), proto), ':0\r\n');
    assert.equal(w(integer(-42), proto), ':-42\r\n');
    assert.equal(w(integer(Number.MAX_SAFE_INTEGER), proto), ':9007199254740991\r\n');
    assert.equal(w(bulk('hé'), proto), '$3\r\nh\xc3\xa9\r\n');
    assert.equal(w(bulk(''), proto), '$0\r\n\r\n');
    assert.equal(w(array([bulk('a'), integer(1)]), proto), '*2\r\n$1\r\na\r\n:1\r\n');
    assert.equal(w(array([]), proto), '*0\r\n');
  }
  assert.equal(w(NULL_BULK, 2), '$-1\r\n');
  assert.equal(w(NULL_ARRAY, 2), '*-1\r\n');
  assert.equal(w(NULL_BULK, 3), '_\r\n');
  assert.equal(w(NULL_ARRAY, 3), '_\r\n');
});

test('RESP3 kinds in RESP3, and their RESP2 downgrades', () => {
  const m = map([[bulk('k'), integer(1)], [simple('s'), nil()]]);
  assert.equal(w(m, 3), '%2\r\n$1\r\nk\r\n:1\r\n+s\r\n_\r\n');
  assert.equal(w(m, 2), '*4\r\n$1\r\nk\r\n:1\r\n+s\r\n$-1\r\n');
  assert.equal(w(set([bulk('a')]), 3), '~1\r\n$1\r\na\r\n');
  assert.equal(w(set([bulk('a')]), 2), '*1\r\n$1\r\na\r\n');
  assert.equal(w(push([bulk('message'), bulk('ch'), bulk('hi')]), 3), '>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n');
  assert.equal(w(push([bulk('x')]), 2), '*1\r\n$1\r\nx\r\n');
  assert.equal(w(double(1.5), 3), ',1.5\r\n');
  assert.equal(w(double(1.5), 2), '$3\r\n1.5\r\n');
  assert.equal(w(double(Infinity), 3), ',inf\r\n');
  assert.equal(w(double(-Infinity), 2), '$4\r\n-inf\r\n');
  assert.equal(w(double(NaN), 3), ',nan\r\n');
  assert.equal(w(double(3), 3), ',3\r\n');
  assert.equal(w(boolean(true), 3), '#t\r\n');
  assert.equal(w(boolean(false), 3), '#f\r\n');
  assert.equal(w(boolean(true), 2), ':1\r\n');
  assert.equal(w(boolean(false), 2), ':0\r\n');
  assert.equal(w(NIL, 3), '_\r\n');
  assert.equal(w(NIL, 2), '$-1\r\n');
  assert.equal(w(verbatim('hello'), 3), '=9\r\ntxt:hello\r\n');
  assert.equal(w(verbatim('# x', 'mkd'), 3), '=7\r\nmkd:# x\r\n');
  assert.equal(w(verbatim('hello'), 2), '$5\r\nhello\r\n');
  assert.throws(() => verbatim('x', 'toolong'), RangeError);
});

test('ReplyWriter: appends, take() returns the bytes so far and resets', () => {
  const wr = new ReplyWriter();
  wr.ok();
  wr.integer(12);
  wr.bulk(Buffer.from('v'), 2);
  wr.bulk(null, 2);
  wr.bulk(null, 3);
  wr.arrayHeader(2);
  wr.simple('PONG');
  wr.error('ERR x');
  wr.mapHeader(1, 3);
  wr.mapHeader(1, 2);
  wr.pushHeader(3, 3);
  const len = wr.length;
  assert.equal(len, 5 + 5 + 7 + 5 + 3 + 4 + 7 + 8 + 4 + 4 + 4);
  assert.equal(wr.take().length, len);
  assert.equal(wr.length, 0);
  wr.ok();
  assert.equal(wr.take().toString(), '+OK\r\n');
  const all = new ReplyWriter();
  all.ok();
  all.integer(12);
  all.bulk(Buffer.from('v'), 2);
  all.bulk(null, 2);
  all.bulk(null, 3);
  all.arrayHeader(2);
  all.mapHeader(1, 3);
  all.mapHeader(1, 2);
  all.pushHeader(3, 3);
  all.pushHeader(3, 2);
  assert.equal(all.take().toString(), '+OK\r\n:12\r\n$1\r\nv\r\n$-1\r\n_\r\n*2\r\n%1\r\n*2\r\n>3\r\n*3\r\n');
  assert.equal(all.take().length, 0);
});

test('ReplyWriter: bytes handed out never change as more replies are written', () => {
  const wr = new ReplyWriter(64);
  const taken: [Buffer, string][] = [];
  for (let i = 0; i < 500; i++) {
    wr.bulk(Buffer.from(`value-${i}`), 2);
    if (i % 3 === 0) {
      const b = wr.take();
      taken.push([b, b.toString('latin1')]);
    }
  }
  for (const [b, text] of taken) assert.equal(b.toString('latin1'), text);
});

test('ReplyWriter: a big bulk is a chunk of its own, not copied; take() joins', () => {
  const big = Buffer.alloc(BIG_BULK, 0x61);
  const wr = new ReplyWriter();
  wr.ok();
  wr.bulk(big, 3);
  wr.ok();
  assert.equal(wr.length, 5 + 1 + 5 + 2 + BIG_BULK + 2 + 5);
  const chunks = wr.takeChunks();
  assert.ok(chunks.includes(big), 'the value itself is one of the chunks');
  assert.equal(Buffer.concat(chunks).toString('latin1'), `+OK\r\n$${BIG_BULK}\r\n${'a'.repeat(BIG_BULK)}\r\n+OK\r\n`);
  assert.equal(wr.length, 0);
  wr.bulk(big, 2);
  const joined = wr.take();
  assert.equal(joined.length, 1 + 5 + 2 + BIG_BULK + 2);
});

test('ReplyWriter: replies bigger than the slab and long UTF-8 lines', () => {
  const wr = new ReplyWriter(64);
  const value = Buffer.alloc(5000, 0x7a);
  wr.bulk(value, 2);
  wr.simple('é'.repeat(100));
  const out = wr.take().toString('utf8');
  assert.equal(out, `$5000\r\n${'z'.repeat(5000)}\r\n+${'é'.repeat(100)}\r\n`);
  assert.throws(() => wr.integer(1.5), RangeError);
});

test('encodeCommand: a multibulk of strings and bytes', () => {
  assert.equal(encodeCommand(['SET', 'k', Buffer.from([0, 13, 10])]).toString('latin1'), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\x00\r\n\r\n');
  assert.equal(encodeCommand([]).toString(), '*0\r\n');
  assert.equal(encodeCommand(['é']).toString('latin1'), '*1\r\n$2\r\n\xc3\xa9\r\n');
});

// ---- round trip through the reply parser ----

/** What the reply parser gives back for a reply written in `proto`. */
function expected(r: Reply, proto: Proto): RespValue {
  switch (r.kind) {
    case 'simple': return r.value;
    case 'error': return new RespError(r.message);
    case 'integer': return r.value;
    case 'bulk': return r.value;
    case 'array': return r.items === null ? null : r.items.map((i) => expected(i, proto));
    case 'set': return r.items.map((i) => expected(i, proto));
    case 'push': return proto === 3 ? new RespPush(r.items.map((i) => expected(i, proto))) : r.items.map((i) => expected(i, proto));
    case 'map':
      return proto === 3
        ? new Map(r.pairs.map(([k, v]) => [expected(k, proto), expected(v, proto)]))
        : r.pairs.flatMap(([k, v]) => [expected(k, proto), expected(v, proto)]);
    case 'double': return proto === 3 ? r.value : Buffer.from(String(r.value === Infinity ? 'inf' : r.value === -Infinity ? '-inf' : Number.isNaN(r.value) ? 'nan' : Object.is(r.value, -0) ? '-0' : r.value));
    case 'boolean': return proto === 3 ? r.value : r.value ? 1 : 0;
    case 'nil': return null;
    case 'verbatim': return r.value;
  }
}

function parseOne(bytes: Buffer): RespValue {
  const p = new RespReplyParser();
  p.push(bytes);
  const v = p.next();
  assert.ok(v !== null, 'a complete reply');
  assert.equal(p.next(), null, 'nothing after it');
  return v.value;
}

/** Map keys compare by identity: compare maps as lists of entries. */
function comparable(v: RespValue): unknown {
  if (v instanceof Map) return { map: [...v.entries()].map(([k, x]) => [comparable(k), comparable(x)]) };
  if (v instanceof RespPush) return { push: v.items.map(comparable) };
  if (v instanceof RespError) return { error: v.message, code: v.code };
  if (Array.isArray(v)) return v.map(comparable);
  if (Buffer.isBuffer(v)) return { bytes: v.toString('hex') };
  return v;
}

const replyArb: fc.Arbitrary<Reply> = fc.letrec<{ reply: Reply }>((tie) => ({
  reply: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ maxLength: 10 }).map(simple),
    fc.string({ maxLength: 10 }).map((s) => error('ERR ' + s)),
    fc.maxSafeInteger().map(integer),
    fc.option(fc.uint8Array({ maxLength: 20 })).map((b) => bulk(b === null ? null : Buffer.from(b))),
    fc.option(fc.array(tie('reply'), { maxLength: 4 })).map(array),
    fc.array(fc.tuple(tie('reply'), tie('reply')), { maxLength: 3 }).map(map),
    fc.array(tie('reply'), { maxLength: 4 }).map(set),
    fc.array(tie('reply'), { maxLength: 4 }).map(push),
    fc.oneof(fc.double(), fc.constantFrom(Infinity, -Infinity, NaN, 0, -0)).map(double),
    fc.boolean().map(boolean),
    fc.constant(nil()),
    fc.uint8Array({ maxLength: 20 }).map((b) => verbatim(Buffer.from(b))),
  ),
})).reply;

test('round trip: every Reply kind, RESP2 and RESP3, through the reply parser', () => {
  const samples: Reply[] = [
    OK, simple('x'), error('WRONGTYPE Operation against a key'), integer(-7), bulk('v'), NULL_BULK, NULL_ARRAY, array([bulk('a'), array([])]),
    map([[bulk('k'), array([integer(1)])]]), map([]), set([bulk('m')]), push([bulk('message'), bulk('c'), bulk('p')]),
    double(2.25), double(-Infinity), boolean(true), boolean(false), NIL, verbatim('text'),
  ];
  for (const proto of [2, 3] as const) {
    for (const r of samples) assert.deepEqual(comparable(parseOne(writeReply(r, proto))), comparable(expected(r, proto)), `${r.kind} RESP${proto}`);
  }
  const err = parseOne(writeReply(error('WRONGTYPE Operation'), 3));
  assert.ok(err instanceof RespError && err.code === 'WRONGTYPE');
});

test('property: random nested replies round trip in RESP2 and RESP3', () => {
  fc.assert(
    fc.property(replyArb, fc.constantFrom(2 as const, 3 as const), (r, proto) => {
      const bytes = writeReply(r, proto);
      assert.deepEqual(comparable(parseOne(bytes)), comparable(expected(r, proto)));
      // The streaming writer gives the same bytes as the one-shot one.
      const wr = new ReplyWriter(64);
      wr.reply(r, proto);
      assert.ok(wr.take().equals(bytes));
    }),
    { numRuns: 500 },
  );
});

// ---- redis-cli formatting of the RESP3 kinds ----

test('formatForRepl: RESP3 kinds as redis-cli -3 shows them', () => {
  assert.equal(formatForRepl(map([[bulk('server'), bulk('brisedb')], [bulk('proto'), integer(3)], [bulk('modules'), array([])]])),
    '1# "server" => "brisedb"\n2# "proto" => (integer) 3\n3# "modules" => (empty array)');
  assert.equal(formatForRepl(map([])), '(empty hash)');
  assert.equal(formatForRepl(set([bulk('a'), bulk('b')])), '1~ "a"\n2~ "b"');
  assert.equal(formatForRepl(set([])), '(empty set)');
  assert.equal(formatForRepl(push([bulk('message'), bulk('ch')])), '1) "message"\n2) "ch"');
  assert.equal(formatForRepl(push([])), '(empty push)');
  assert.equal(formatForRepl(double(1.5)), '(double) 1.5');
  assert.equal(formatForRepl(double(-Infinity)), '(double) -inf');
  assert.equal(formatForRepl(boolean(true)), '(true)');
  assert.equal(formatForRepl(boolean(false)), '(false)');
  assert.equal(formatForRepl(nil()), '(nil)');
  assert.equal(formatForRepl(verbatim('# Server\r\nx:1')), '# Server\r\nx:1');
  assert.equal(formatForRepl(map([[bulk('k'), array([integer(1), integer(2)])]])), '1# "k" => 1) (integer) 1\n   2) (integer) 2');
});

test('formatRaw: RESP3 kinds as redis-cli prints them to a pipe', () => {
  assert.equal(formatRaw(map([[bulk('a'), integer(1)], [bulk('b'), bulk('x')]])).toString(), 'a 1\nb x');
  assert.equal(formatRaw(set([bulk('a'), bulk('b')])).toString(), 'a\nb');
  assert.equal(formatRaw(push([bulk('a')])).toString(), 'a');
  assert.equal(formatRaw(double(0.5)).toString(), '0.5');
  assert.equal(formatRaw(boolean(true)).toString(), '(true)');
  assert.equal(formatRaw(nil()).length, 0);
  assert.equal(formatRaw(verbatim('hi')).toString(), 'hi');
});
