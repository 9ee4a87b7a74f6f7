// topology.ts: start order, edges, and the checks that run before any thread starts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { neighbours, startOrder, type ActorSpec } from '../src/runtime/topology.js';
import { StoreError } from '../src/runtime/errors.js';

const module = new URL('file:///nowhere.js');
const spec = (name: string, dependsOn: string[] = [], talksTo: string[] = []): ActorSpec => ({
  name,
  module,
  config: null,
  dependsOn,
  talksTo,
});

test('startOrder puts each actor after what it depends on, ties in declaration order', () => {
  const specs = [spec('front', ['index', 'wal']), spec('index', ['wal']), spec('pubsub'), spec('wal', ['volume']), spec('volume')];
  const order = startOrder(specs);
  assert.deepEqual(order, ['volume', 'wal', 'index', 'front', 'pubsub']);
});

test('a dependency cycle is an error that names it', () => {
  const specs = [spec('a', ['b']), spec('b', ['c']), spec('c', ['a'])];
  assert.throws(() => startOrder(specs), (e: unknown) => e instanceof StoreError && e.code === 'BAD_ARGUMENT' && /a -> b -> c -> a/.test(e.message));
});

test('unknown names, duplicates and the reserved name main are refused', () => {
  assert.throws(() => startOrder([spec('a', ['ghost'])]), /unknown actor ghost/);
  assert.throws(() => startOrder([spec('a', [], ['ghost'])]), /talks to unknown actor ghost/);
  assert.throws(() => startOrder([spec('a'), spec('a')]), /two actors are named a/);
  assert.throws(() => startOrder([spec('main')]), /main thread/);
});

test('edges are symmetric and main is not an actor edge', () => {
  const n = neighbours([spec('a', [], ['b', 'main']), spec('b'), spec('c', [], ['a'])]);
  assert.deepEqual(n.get('a'), ['b', 'c']);
  assert.deepEqual(n.get('b'), ['a']);
  assert.deepEqual(n.get('c'), ['a']);
});
