#!/usr/bin/env node
// Rebuilds a data dir's wal.log and index from the volume log on its drives; see src/cli/rebuild.ts.
import { existsSync } from 'node:fs';
const entry = new URL('../dist/src/cli/rebuild.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('BriseDB is not built: run npm install (it builds dist/)\n');
  process.exit(1);
}
await import(entry.href);
