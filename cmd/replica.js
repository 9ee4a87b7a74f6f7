#!/usr/bin/env node
// Launcher of a BriseDB read-only replica (src/replica/main.ts, compiled to dist/). Plain JS so that it
// runs without a build step of its own; it only checks that dist/ exists and hands over.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/replica/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('BriseDB is not built: run npm install (it builds dist/)\n');
  process.exit(1);
}
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
// Exit once stdout and stderr have taken everything: worker threads or timers left behind
// must not keep a stopped replica alive, and the last line must still reach a pipe.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
