// Tests of the command-line splitter (src/protocol/command_line.ts) against redis-cli's
// sdssplitargs rules, of the command table checks (src/protocol/commands.ts) and of the
// redis-cli reply formatting (src/protocol/reply.ts). Pure functions: no files needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { joinCommandLine, quoteArg, splitCommandLine } from '../src/protocol/command_line.js';
import { COMMANDS, checkCommand, helpLines } from '../src/protocol/commands.js';
import { OK, array, bulk, error, formatForRepl, formatRaw, integer, simple, NULL_BULK, NULL_ARRAY } from '../src/protocol/reply.js';

function split(line: string | Uint8Array): string[] {
  const r = splitCommandLine(line);
  assert.ok(r.ok, `expected ${JSON.stringify(line)} to split`);
  return r.args.map((a) => a.toString('latin1'));
}

function splitError(line: string): string {
  const r = splitCommandLine(line);
  assert.ok(!r.ok, `expected ${JSON.stringify(line)} to fail`);
  return r.error.code;
}

test('spaces, tabs and newlines separate arguments; runs of them are one separator', () => {
  assert.deepEqual(split('SET a 1'), ['SET', 'a', '1']);
  assert.deepEqual(split('  GET \t  key  \r\n'), ['GET', 'key']);
  assert.deepEqual(split(''), []);
  assert.deepEqual(split('   '), []);
});

test('double quotes take \\n \\r \\t \\b \\a \\\\ \\" and \\xHH', () => {
  assert.deepEqual(split('SET k "a b"'), ['SET', 'k', 'a b']);
  assert.deepEqual(split('"\\n\\r\\t\\b\\a\\\\\\""'), ['\n\r\t\b\x07\\"']);
  assert.deepEqual(split('"\\x41\\x7a\\xFF"'), ['Az\xff']);
  // An unknown escape is the character itself, and \x without two hex digits is just x.
  assert.deepEqual(split('"\\q\\x4g"'), ['qx4g']);
  assert.deepEqual(split('""'), ['']);
});

test('single quotes take only \\\' and keep everything else literally', () => {
  assert.deepEqual(split("SET k 'it\\'s'"), ['SET', 'k', "it's"]);
  assert.deepEqual(split("'a\\nb \"c\"'"), ['a\\nb "c"']);
  assert.deepEqual(split("''"), ['']);
});

test('a quote may start in the middle of a word', () => {
  assert.deepEqual(split('ab"c d"'), ['abc d']);
  assert.deepEqual(split("x'y z' w"), ['xy z', 'w']);
});

test('unbalanced quotes and a closing quote glued to the next word are errors, not throws', () => {
  assert.equal(splitError('SET k "abc'), 'UNBALANCED_QUOTES');
  assert.equal(splitError("SET k 'abc"), 'UNBALANCED_QUOTES');
  assert.equal(splitError('SET k "abc"def'), 'UNBALANCED_QUOTES');
  assert.equal(splitError("'abc'def"), 'UNBALANCED_QUOTES');
  assert.equal(splitError('"abc\\"'), 'UNBALANCED_QUOTES');
  assert.equal(splitError('"ends in backslash\\'), 'UNBALANCED_QUOTES');
});

test('binary-safe: \\x00 and high bytes become exact bytes', () => {
  const r = splitCommandLine('SET "\\x00k\\x00" "\\x00\\x01\\xfe\\xff"');
  assert.ok(r.ok);
  assert.deepEqual(r.args[1], Buffer.from([0, 0x6b, 0]));
  assert.deepEqual(r.args[2], Buffer.from([0, 1, 0xfe, 0xff]));
  // A Buffer line with raw high bytes (UTF-8 text) passes through unchanged.
  const utf8 = splitCommandLine(Buffer.from('SET clé välue', 'utf8'));
  assert.ok(utf8.ok);
  assert.equal(utf8.args[2]!.toString('utf8'), 'välue');
});

test('limits: the line length and the argument count', () => {
  const r = splitCommandLine('a'.repeat(100), { maxLineBytes: 99 });
  assert.ok(!r.ok && r.error.code === 'LINE_TOO_LONG');
  assert.ok(splitCommandLine('a'.repeat(99), { maxLineBytes: 99 }).ok);
  const many = splitCommandLine('a b c d', { maxArgs: 3 });
  assert.ok(!many.ok && many.error.code === 'TOO_MANY_ARGS');
  assert.ok(splitCommandLine('a b c', { maxArgs: 3 }).ok);
  // The default line limit is 64 KiB.
  assert.equal(splitError('x'.repeat(64 * 1024 + 1)), 'LINE_TOO_LONG');
});

test('property: joining quoted arguments and splitting gives them back', () => {
  const arg = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));
  const weird = fc.constantFrom(...['', ' ', '"', "'", '\\', '\\x00', 'a b', '\n', 'x"y'].map((s) => Buffer.from(s)));
  fc.assert(
    fc.property(fc.array(fc.oneof(arg, weird), { minLength: 1, maxLength: 12 }), (args) => {
      const r = splitCommandLine(joinCommandLine(args));
      assert.ok(r.ok);
      assert.deepEqual(r.args, args);
    }),
    { numRuns: 500 },
  );
});

test('property: any input splits or fails with a typed error, never throws', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const r = splitCommandLine(bytes);
      assert.ok(r.ok || ['UNBALANCED_QUOTES', 'LINE_TOO_LONG', 'TOO_MANY_ARGS'].includes(r.error.code));
    }),
    { numRuns: 1000 },
  );
});

test('quoteArg leaves plain words bare and quotes the rest', () => {
  assert.equal(quoteArg(Buffer.from('plain')), 'plain');
  assert.equal(quoteArg(Buffer.from('')), '""');
  assert.equal(quoteArg(Buffer.from('a b')), '"a b"');
  assert.equal(quoteArg(Buffer.from([0, 0xff])), '"\\x00\\xff"');
});

// ---- the command table --------------------------------------------------------------------

test('checkCommand: unknown commands are worded as Redis words them', () => {
  const r = checkCommand([Buffer.from('FOO'), Buffer.from('x'), Buffer.from('y')]);
  assert.ok(!r.ok);
  assert.deepEqual(r.reply, error("ERR unknown command 'FOO', with args beginning with: 'x' 'y' "));
  const bare = checkCommand([Buffer.from('nope')]);
  assert.ok(!bare.ok);
  assert.deepEqual(bare.reply, error("ERR unknown command 'nope', with args beginning with: "));
});

test('checkCommand: arity, exact and at-least, any case of the name', () => {
  const wrong = checkCommand([Buffer.from('GET')]);
  assert.ok(!wrong.ok);
  assert.deepEqual(wrong.reply, error("ERR wrong number of arguments for 'get' command"));
  assert.ok(!checkCommand(['get', 'a', 'b'].map((s) => Buffer.from(s))).ok);
  assert.ok(checkCommand(['gEt', 'a'].map((s) => Buffer.from(s))).ok);
  assert.ok(!checkCommand(['SET', 'a'].map((s) => Buffer.from(s))).ok);
  assert.ok(checkCommand(['SET', 'a', 'b', 'EX', '1'].map((s) => Buffer.from(s))).ok);
  assert.ok(checkCommand(['DEL', 'a', 'b', 'c'].map((s) => Buffer.from(s))).ok);
  assert.ok(!checkCommand([]).ok);
});

test('the table is well formed: unique lower-case names, nonzero arity, syntax naming the command', () => {
  const names = new Set<string>();
  for (const c of COMMANDS) {
    assert.equal(c.name, c.name.toLowerCase());
    assert.ok(!names.has(c.name), `duplicate ${c.name}`);
    names.add(c.name);
    assert.notEqual(c.arity, 0);
    assert.ok(c.syntax.toLowerCase().startsWith(c.name), c.syntax);
    assert.ok(c.summary.length > 0);
  }
  for (const required of ['set', 'get', 'del', 'delete', 'exists', 'ttl', 'pttl', 'expire', 'pexpire', 'persist', 'count',
    'keys', 'scan', 'dbsize', 'mget', 'mset', 'begin', 'commit', 'rollback', 'publish', 'compact', 'volinfo', 'ping', 'echo',
    'help', 'quit', 'exit']) {
    assert.ok(names.has(required), `missing ${required}`);
  }
});

test('helpLines lists every command and explains one', () => {
  const all = helpLines().join('\n');
  for (const c of COMMANDS) assert.match(all, new RegExp(`\\b${c.name.toUpperCase()}\\b`));
  assert.match(helpLines('set').join('\n'), /SET key value \[NX \| XX\] \[GET\] \[EX seconds \| PX milliseconds/);
  assert.match(helpLines('nosuch')[0]!, /unknown command/);
});

test('README.md documents every command of the table in its Command reference', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('## Command reference');
  assert.ok(start >= 0, 'README.md has no Command reference section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  for (const c of COMMANDS) assert.ok(section.includes('`' + c.name.toUpperCase()), `${c.name} is not in the README table`);
});

// ---- redis-cli formatting -----------------------------------------------------------------

test('formatForRepl prints as redis-cli does on a terminal', () => {
  assert.equal(formatForRepl(OK), 'OK');
  assert.equal(formatForRepl(NULL_BULK), '(nil)');
  assert.equal(formatForRepl(NULL_ARRAY), '(nil)');
  assert.equal(formatForRepl(integer(-2)), '(integer) -2');
  assert.equal(formatForRepl(bulk('a "b"\n\\')), '"a \\"b\\"\\n\\\\"');
  assert.equal(formatForRepl(bulk(Buffer.from([0, 7, 8, 0x7f, 0xc3, 0xa9]))), '"\\x00\\a\\b\\x7f\\xc3\\xa9"');
  assert.equal(formatForRepl(error('ERR syntax error')), '(error) ERR syntax error');
  assert.equal(formatForRepl(array([])), '(empty array)');
  assert.equal(formatForRepl(array([bulk('a'), NULL_BULK])), '1) "a"\n2) (nil)');
});

test('formatForRepl indents nested arrays by the width of the index', () => {
  const scan = array([bulk('0'), array([bulk('a'), bulk('b')])]);
  assert.equal(formatForRepl(scan), '1) "0"\n2) 1) "a"\n   2) "b"');
  const ten = array(Array.from({ length: 10 }, (_, i) => (i === 9 ? array([integer(1), integer(2)]) : simple(String(i)))));
  const lines = formatForRepl(ten).split('\n');
  assert.equal(lines[0], ' 1) 0');
  assert.equal(lines[9], '10) 1) (integer) 1');
  assert.equal(lines[10], '    2) (integer) 2');
});

test('formatRaw prints as redis-cli does without a terminal', () => {
  assert.equal(formatRaw(OK).toString(), 'OK');
  assert.equal(formatRaw(bulk('v 1')).toString(), 'v 1');
  assert.equal(formatRaw(NULL_BULK).length, 0);
  assert.equal(formatRaw(integer(3)).toString(), '3');
  assert.equal(formatRaw(array([bulk('a'), bulk('b')])).toString(), 'a\nb');
  assert.deepEqual(formatRaw(bulk(Buffer.from([0, 0xff]))), Buffer.from([0, 0xff]));
});

test('status and error lines never carry CR or LF (they would break RESP)', () => {
  assert.deepEqual(error('ERR a\r\nb'), error('ERR a  b'));
  assert.equal((simple('x\ny') as { value: string }).value, 'x y');
});
