// The layers of src/ import downward only: a module may import from its own layer and the
// layers below it, never from above. The order, low to high (docs/architecture.md):
//   runtime < storage < protocol < client, db, remote < frontend < actors < wiring < master, cli < index
// The test reads every import of every compiled module and names each one that points upward,
// so a violation is a failing test, not a review comment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

const RANK: Record<string, number> = {
  runtime: 0,
  storage: 1,
  protocol: 2,
  client: 3,
  db: 3,
  remote: 3,
  frontend: 4,
  actors: 5,
  wiring: 6,
  master: 7,
  volserver: 7,
  replica: 7,
  cli: 7,
  '.': 8,
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** The layer of a file under src/: its first directory ('.' for src/index.ts). */
function layerOf(file: string): string {
  const rel = relative(SRC, file);
  return rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : '.';
}

/** Relative imports of a module, static and dynamic, with `import type` too. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.[^']+)'/g)) out.push(m[1]!);
  return out;
}

test('every layer of src/ is known', () => {
  for (const file of sources(SRC)) assert.ok(layerOf(file) in RANK, `${relative(SRC, file)}: unknown layer ${layerOf(file)}`);
});

test('no import runs from a lower layer to a higher one', () => {
  const upward: string[] = [];
  let checked = 0;
  for (const file of sources(SRC)) {
    const from = layerOf(file);
    for (const spec of importsOf(file)) {
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      const to = layerOf(target);
      checked += 1;
      if (RANK[to]! > RANK[from]!) upward.push(`${relative(SRC, file)} (${from}) imports ${relative(SRC, target)} (${to})`);
    }
  }
  assert.ok(checked > 300, `only ${checked} imports were read: the scan is broken`);
  assert.deepEqual(upward, [], `imports that run upward:\n${upward.join('\n')}`);
});

test('client and db, on the same rank, do not import each other', () => {
  const across: string[] = [];
  for (const file of sources(SRC)) {
    const from = layerOf(file);
    if (from !== 'client' && from !== 'db') continue;
    for (const spec of importsOf(file)) {
      const to = layerOf(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      if ((to === 'client' || to === 'db') && to !== from) across.push(`${relative(SRC, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(across, []);
});
