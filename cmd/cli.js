#!/usr/bin/env node
// Launcher of the BriseDB REPL (src/cli/repl.ts, compiled to dist/). Plain JS so that it runs
// without a build step of its own; it only checks that dist/ exists and hands over.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/repl.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('BriseDB is not built: run npm install (it builds dist/)\n');
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
// Exit once stdout has taken everything: a worker or timer left behind must not keep a
// finished CLI alive, and a piped reader must still get the last reply.
process.stdout.write('', () => process.exit(code));
