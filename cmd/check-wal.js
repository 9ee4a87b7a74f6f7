#!/usr/bin/env node
// Checks (and with --fix repairs) a data dir's wal.log; see src/cli/check_wal.ts.
import { existsSync } from 'node:fs';
const entry = new URL('../dist/src/cli/check_wal.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('BriseDB is not built: run npm install (it builds dist/)\n');
  process.exit(1);
}
await import(entry.href);
