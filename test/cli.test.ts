// Black-box tests of the REPL: `node cmd/cli.js` spawned with piped stdin (the redis-cli
// no-TTY style), persistence across a restart, the data-dir lock between two CLIs, the
// launcher without a build; and the interactive path (prompt, transaction prompt, redis-cli
// formatting, history file) driven through streams, since a test has no terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { openInThread } from '../src/wiring/in_thread.js';
import { systemScheduler } from '../src/runtime/scheduler.js';
import { NodeFs } from '../src/runtime/fs.js';
import { systemClock } from '../src/runtime/clock.js';
import { HISTORY_LINES, loadHistory, parseArgs, runAndClose, saveHistory } from '../src/cli/repl.js';

// dist/test/cli.test.js → the repository root.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'cmd', 'cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], input: string, cli = CLI): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'brisedb-cli-'));
}

test('piped: SET then GET prints OK then the bare value', async () => {
  const dir = tempDir();
  try {
    const r = await runCli(['--data', path.join(dir, 'd')], 'SET a 1\nGET a\n');
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'OK\n1\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('piped: every kind of reply in the redis-cli raw style, and the data survives a restart', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'data');
  try {
    const script = [
      'SET greeting "hello world"',
      'GET greeting',
      'GET missing',
      'EXISTS greeting missing',
      'TTL greeting',
      'SET "bin\\x00key" "\\x01\\x02"',
      'BEGIN',
      'SET txkey committed',
      'COMMIT',
      'BEGIN',
      'SET rolled back',
      'ROLLBACK',
      'MGET greeting missing txkey',
      'KEYS tx*',
      'FOO bar',
      'GET',
      'SET a "unbalanced',
      'PING',
      '',
      'DBSIZE',
    ].join('\n');
    const r = await runCli(['--data', data], script + '\n');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n'), [
      'OK',
      'hello world',
      '', // nil prints as an empty line
      '1',
      '-1',
      'OK',
      'OK',
      'OK',
      'OK',
      'OK',
      'OK',
      'OK',
      'hello world',
      '',
      'committed',
      'txkey',
      "ERR unknown command 'FOO', with args beginning with: 'bar' ",
      "ERR wrong number of arguments for 'get' command",
      'ERR Invalid argument(s): unbalanced quotes',
      'PONG',
      '3',
      '',
    ]);
    // A second run on the same dir reads back what the first wrote, and nothing rolled back.
    const again = await runCli(['--data', data], 'GET greeting\nGET txkey\nEXISTS back\nGET "bin\\x00key"\n');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'hello world\ncommitted\n0\n\x01\x02\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('piped: QUIT stops reading; an open transaction at exit is discarded and said so', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'data');
  try {
    const r = await runCli(['--data', data], 'BEGIN\nSET pending 1\nQUIT\nSET after 1\n');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'OK\nOK\n');
    assert.match(r.stderr, /1 open transaction level\(s\) discarded/);
    const again = await runCli(['--data', data], 'EXISTS pending after\n');
    assert.equal(again.stdout, '0\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a second CLI on a data dir held by a running one fails with one clear line and exit 1', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'data');
  const first = spawn(process.execPath, [CLI, '--data', data], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    // Wait until the first one has the database open: it answers PING.
    await new Promise<void>((resolve, reject) => {
      let out = '';
      first.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('PONG')) resolve();
      });
      first.on('exit', (code) => reject(new Error(`first CLI exited early with ${code}`)));
      first.stdin.write('PING\n');
    });
    const second = await runCli(['--data', data], 'GET a\n');
    assert.equal(second.code, 1);
    assert.equal(second.stdout, '');
    const lines = second.stderr.trim().split('\n');
    assert.equal(lines.length, 1, second.stderr);
    assert.match(lines[0]!, /^brisedb: cannot open the database in .*: .*(lock|held)/i);
  } finally {
    const exited = new Promise<number | null>((resolve) => first.on('close', resolve));
    first.stdin.end();
    assert.equal(await exited, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--help, bad flags, and the launcher without a build', async () => {
  const help = await runCli(['--help'], '');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: node cmd\/cli\.js \[--data DIR\]/);
  const bad = await runCli(['--nope'], '');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown argument '--nope'/);
  assert.deepEqual(parseArgs(['--data=x']), { dataDir: 'x', help: false });
  assert.equal(typeof parseArgs(['--data']), 'string');
  // The launcher copied where no dist/ sits beside it says how to build.
  const dir = tempDir();
  try {
    fs.mkdirSync(path.join(dir, 'cmd'));
    fs.copyFileSync(CLI, path.join(dir, 'cmd', 'cli.js'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const r = await runCli([], '', path.join(dir, 'cmd', 'cli.js'));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'BriseDB is not built: run npm install (it builds dist/)\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('interactive: prompts (with the transaction depth), redis-cli formatting, HELP, history', async () => {
  const dir = tempDir();
  const historyPath = path.join(dir, 'history');
  try {
    const db = await openInThread({ fs: new NodeFs(), clock: systemClock, scheduler: systemScheduler, dir: path.join(dir, 'data') });
    const input = new PassThrough();
    const output = new PassThrough();
    const errors = new PassThrough();
    let out = '';
    output.on('data', (d: Buffer) => (out += d.toString()));
    const done = runAndClose(db, { input, output, errors, interactive: true, historyPath });
    for (const line of ['SET x 1', 'BEGIN', 'GET x', 'MGET x nope', 'COMMIT', 'HELP get', 'SUBSCRIBE ch', 'QUIT']) {
      input.write(line + '\r');
    }
    assert.equal(await done, 0);
    // Without the terminal's cursor movements, the screen reads as a redis-cli session.
    out = out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    assert.match(out, /brisedb> OK\n/);
    assert.match(out, /brisedb\(TX:1\)> "1"\n/);
    assert.match(out, /brisedb\(TX:1\)> 1\) "1"\n2\) \(nil\)\n/);
    assert.match(out, /brisedb\(TX:1\)> OK\nbrisedb> /);
    assert.match(out, /GET key/);
    assert.match(out, /\(error\) ERR SUBSCRIBE is not available in the embedded REPL/);
    // History is saved oldest first, one command per line.
    const saved = fs.readFileSync(historyPath, 'utf8').trim().split('\n');
    assert.deepEqual(saved.slice(0, 3), ['SET x 1', 'BEGIN', 'GET x']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('history is bounded to the last HISTORY_LINES lines', () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'h');
    const newestFirst = Array.from({ length: HISTORY_LINES + 50 }, (_, i) => `CMD ${HISTORY_LINES + 49 - i}`);
    saveHistory(file, newestFirst, new PassThrough());
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, HISTORY_LINES);
    assert.equal(lines[0], 'CMD 50');
    assert.equal(lines[lines.length - 1], `CMD ${HISTORY_LINES + 49}`);
    const loaded = loadHistory(file);
    assert.equal(loaded.length, HISTORY_LINES);
    assert.equal(loaded[0], `CMD ${HISTORY_LINES + 49}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
