// The REPL behind `node cmd/cli.js`: opens the database in this process (embedded, no server)
// and runs commands typed or piped in, through the same executor as the TCP front end.
//
//   - stdin a terminal: a node:readline prompt `brisedb> ` (`brisedb(TX:n)> ` inside n levels
//     of transaction), replies printed as redis-cli prints them, HELP from the command table,
//     history kept in ~/.brisedb_history (or $BRISEDB_HISTORY; /dev/null turns it off),
//     bounded to HISTORY_LINES.
//   - stdin not a terminal: each line is one command; replies printed in redis-cli's raw style
//     (the bare value, the bare integer, an empty line for nil); ends at end of input.
//
// Invariants: commands run strictly one after another, in input order; the database is
// closed on every way out (end of input, QUIT/EXIT, Ctrl-C, Ctrl-D), so its lock is released
// and nothing acknowledged is left unsynced; an open transaction at exit is discarded, and
// the REPL says so. Exit code: 0, or 1 when the database cannot be opened or closed, 2 on bad
// flags.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Database } from '../db/api.js';
import { execute } from '../frontend/executor.js';
import { open } from '../wiring/open.js';
import { splitCommandLine } from '../protocol/command_line.js';
import { helpLines, lookupCommand } from '../protocol/commands.js';
import { formatForRepl, formatRaw, type Reply } from '../protocol/reply.js';
import { signMain } from './sign.js';
import { withProgress } from './progress_bar.js';

export const HISTORY_LINES = 1000;
export const DEFAULT_DATA_DIR = 'brisedb-data';

const USAGE = `Usage: node cmd/cli.js [--data DIR] [--help]

An interactive shell on a BriseDB data directory, opened in this process.

  --data DIR   the data directory (default: ${DEFAULT_DATA_DIR}); created when missing
  --help       show this text

With a terminal: a prompt with history (~/.brisedb_history, or $BRISEDB_HISTORY).
Without one: runs each line of stdin as a command, prints each reply, exits at end of input.
Type HELP for the commands.

  node cmd/cli.js sign METHOD TARGET SECONDS   prints a signed URL of the HTTP API (sign --help)`;

export interface CliArgs {
  dataDir: string;
  help: boolean;
}

/** Parses the flags; a string is the error to print. */
export function parseArgs(args: readonly string[]): CliArgs | string {
  const out: CliArgs = { dataDir: DEFAULT_DATA_DIR, help: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') out.help = true;
    else if (arg === '--data') {
      const dir = args[++i];
      if (dir === undefined || dir === '') return '--data needs a directory';
      out.dataDir = dir;
    } else if (arg.startsWith('--data=') && arg.length > '--data='.length) out.dataDir = arg.slice('--data='.length);
    else return `unknown argument '${arg}'`;
  }
  return out;
}

export interface CliIo {
  input: Readable;
  output: Writable;
  errors: Writable;
  /** Interactive (prompt, history, redis-cli TTY formatting) or piped. */
  interactive: boolean;
  /** Where history lives; null = no history. */
  historyPath: string | null;
}

/** The whole program: flags, open, run, close. Answers the exit code. */
export async function main(args: readonly string[], io: CliIo = processIo()): Promise<number> {
  // A subcommand that opens no database: signed URLs of the HTTP API (src/cli/sign.ts).
  if (args[0] === 'sign') return signMain(args.slice(1), io.output, io.errors);
  const parsed = parseArgs(args);
  if (typeof parsed === 'string') {
    io.errors.write(`brisedb: ${parsed}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.help) {
    io.output.write(USAGE + '\n');
    return 0;
  }
  let db: Database;
  try {
    db = await open(parsed.dataDir);
  } catch (err) {
    io.errors.write(`brisedb: cannot open the database in ${parsed.dataDir}: ${messageOf(err)}\n`);
    return 1;
  }
  return runAndClose(db, io);
}

/** Runs the session on an open database, then closes it whatever happened. */
export async function runAndClose(db: Database, io: CliIo): Promise<number> {
  let code = 0;
  try {
    if (io.interactive) await runInteractive(db, io);
    else await runPiped(db, io);
  } catch (err) {
    io.errors.write(`brisedb: ${messageOf(err)}\n`);
    code = 1;
  }
  if (db.depth > 0) {
    io.errors.write(`brisedb: ${db.depth} open transaction level(s) discarded (no COMMIT)\n`);
    while (db.depth > 0) db.rollback();
  }
  try {
    await db.close();
  } catch (err) {
    io.errors.write(`brisedb: closing the database failed: ${messageOf(err)}\n`);
    code = 1;
  }
  return code;
}

function processIo(): CliIo {
  const interactive = process.stdin.isTTY === true;
  return {
    input: process.stdin,
    output: process.stdout,
    errors: process.stderr,
    interactive,
    historyPath: interactive ? historyPathFromEnv(process.env) : null,
  };
}

/** $BRISEDB_HISTORY, else ~/.brisedb_history; /dev/null means none (as redis-cli does). */
export function historyPathFromEnv(env: NodeJS.ProcessEnv): string | null {
  const override = env['BRISEDB_HISTORY'];
  if (override !== undefined && override !== '') return override === '/dev/null' ? null : override;
  return path.join(os.homedir(), '.brisedb_history');
}

// ---- one line -----------------------------------------------------------------------------

/** What the loop does after a line: go on, or stop (QUIT/EXIT). */
type Step = 'continue' | 'quit';

/** Runs one typed line; `show` prints a reply or a text block. */
async function runLine(db: Database, line: string, show: (reply: Reply | string[]) => Promise<void>, bar?: Writable): Promise<Step> {
  const split = splitCommandLine(line);
  if (!split.ok) {
    await show({ kind: 'error', message: `ERR ${split.error.message}` });
    return 'continue';
  }
  const argv = split.args;
  if (argv.length === 0) return 'continue';
  const name = lookupCommand(argv[0]!)?.name;
  if (name === 'quit' || name === 'exit') return 'quit';
  if (name === 'subscribe') {
    await show({ kind: 'error', message: 'ERR SUBSCRIBE is not available in the embedded REPL: no other process can publish to it; use the TCP server' });
    return 'continue';
  }
  if (name === 'help' && argv.length <= 2) {
    await show(helpLines(argv.length === 2 ? argv[1]!.toString('utf8') : undefined));
    return 'continue';
  }
  const running = execute(db, argv, db);
  // At a terminal, the long ones draw their progress while they run.
  const long = name === 'vacuum' || name === 'compact' || (name === 'scrub' && argv.length === 2);
  await show(await (bar !== undefined && long ? withProgress(db, bar, running) : running));
  return 'continue';
}

// ---- piped --------------------------------------------------------------------------------

async function runPiped(db: Database, io: CliIo): Promise<void> {
  const rl = readline.createInterface({ input: io.input, terminal: false, crlfDelay: Infinity });
  const show = async (reply: Reply | string[]): Promise<void> => {
    const bytes = Array.isArray(reply) ? Buffer.from(reply.join('\n')) : formatRaw(reply);
    await write(io.output, Buffer.concat([bytes, NEWLINE]));
  };
  try {
    for await (const line of rl) {
      if ((await runLine(db, line, show)) === 'quit') break;
    }
  } finally {
    rl.close();
  }
}

const NEWLINE = Buffer.from('\n');

/** Writes and waits for the stream to take it, so a large reply cannot pile up in memory. */
function write(out: Writable, bytes: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(bytes, (err) => (err ? reject(err) : resolve()));
  });
}

// ---- interactive --------------------------------------------------------------------------

export function promptFor(depth: number): string {
  return depth > 0 ? `brisedb(TX:${depth})> ` : 'brisedb> ';
}

async function runInteractive(db: Database, io: CliIo): Promise<void> {
  const history = io.historyPath === null ? [] : loadHistory(io.historyPath);
  const rl = readline.createInterface({
    input: io.input,
    output: io.output,
    terminal: true,
    history,
    historySize: HISTORY_LINES,
    removeHistoryDuplicates: false,
    prompt: promptFor(db.depth),
  });
  if (io.historyPath !== null) {
    const file = io.historyPath;
    rl.on('history', (lines: string[]) => saveHistory(file, lines, io.errors));
  }
  // Ctrl-C leaves as redis-cli does; the database is still closed by runAndClose.
  rl.on('SIGINT', () => rl.close());
  const show = async (reply: Reply | string[]): Promise<void> => {
    await write(io.output, (Array.isArray(reply) ? reply.join('\n') : formatForRepl(reply)) + '\n');
  };
  let quit = false;
  try {
    rl.prompt();
    for await (const line of rl) {
      if ((await runLine(db, line, show, io.errors)) === 'quit') {
        quit = true;
        break;
      }
      rl.setPrompt(promptFor(db.depth));
      rl.prompt();
    }
  } finally {
    rl.close();
  }
  // Ctrl-D or Ctrl-C leave the cursor after the prompt; end that line.
  if (!quit) await write(io.output, '\n');
}

/** Loads the last HISTORY_LINES lines, newest first as readline wants them. */
export function loadHistory(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return []; // no history yet
  }
  return text.split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_LINES).reverse();
}

let historyWarned = false;

/** Rewrites the file with readline's list (newest first), oldest line first, bounded. */
export function saveHistory(file: string, newestFirst: readonly string[], errors: Writable): void {
  const lines = newestFirst.slice(0, HISTORY_LINES).reverse();
  try {
    fs.writeFileSync(file, lines.join('\n') + (lines.length > 0 ? '\n' : ''), { mode: 0o600 });
  } catch (err) {
    // History is a convenience: say once that it is not kept, and go on.
    if (!historyWarned) errors.write(`brisedb: history not saved to ${file}: ${messageOf(err)}\n`);
    historyWarned = true;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
