// Test helper for the vacuum tests with real processes (test/vacuum_*.test.ts): what a test wrote
// and expects back (a model of key → SHA-256 and size, and how to rebuild any byte range of the
// value), the writes that fill it (SET over ioredis, PUT over HTTP), the checks that read every
// value back (TCP GET, HTTP GET and a Range) and that deleted keys stay gone, and the parsers of
// VACUUM's and VOLINFO's answers.
// Owns: nothing running; every request is bounded (ioredis's command timeout, streamRequest's).
// Invariants: a model entry is set only after its write was acknowledged, and removed only after
// its delete was; a check failure names the key and what differed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';
import { patternChunks, patternSlice, sha256Of, sleep, streamRequest } from './master_process.js';
import { parseVolumeFileName } from '../../src/storage/volume_format.js';

export interface Expected {
  size: number;
  sha256: string;
  /** The bytes of a small value (SET), or the pattern seed of a blob (PUT). */
  bytes?: Buffer;
  seed?: number;
}

/** What a test holds as acknowledged: live keys, and keys whose delete was acknowledged. */
export class Model {
  readonly live = new Map<string, Expected>();
  readonly gone = new Set<string>();

  set(key: string, e: Expected): void {
    this.live.set(key, e);
    this.gone.delete(key);
  }

  delete(key: string): void {
    this.live.delete(key);
    this.gone.add(key);
  }

  /** Sum of the live values' sizes. */
  liveValueBytes(): number {
    let n = 0;
    for (const e of this.live.values()) n += e.size;
    return n;
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A deterministic value of `size` bytes for (key, round): never the same for two rounds. */
export function smallValue(key: string, round: number, size: number): Buffer {
  const seed = createHash('sha256').update(`${key}/${round}`).digest();
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += seed.length) seed.copy(out, i);
  return out;
}

export async function setSmall(redis: Redis, model: Model, key: string, round: number, size: number): Promise<void> {
  const value = smallValue(key, round, size);
  assert.equal(await redis.set(key, value), 'OK');
  model.set(key, { size, sha256: sha(value), bytes: value });
}

export async function putBlob(httpPort: number, model: Model, key: string, size: number, seed: number): Promise<void> {
  const res = await streamRequest({
    method: 'PUT', port: httpPort, path: `/v1/blobs/${key}`, headers: { 'content-length': String(size) },
    body: patternChunks(seed, size), keep: true, ms: 120_000,
  });
  assert.ok(res.status === 201 || res.status === 200, `PUT ${key}: ${res.status} ${res.body.toString()}`);
  model.set(key, { size, sha256: await sha256Of(patternChunks(seed, size)), seed });
}

export async function deleteKey(redis: Redis, model: Model, key: string): Promise<void> {
  assert.equal(await redis.del(key), 1, `DEL ${key}`);
  model.delete(key);
}

function sliceOf(e: Expected, start: number, length: number): Buffer {
  if (e.bytes !== undefined) return e.bytes.subarray(start, start + length);
  return patternSlice(e.seed!, start, length);
}

/**
 * Every live value read back over TCP (GET, values up to `tcpMax` bytes) and, when an HTTP port is
 * given, over HTTP (GET by SHA-256 and one Range from the middle); every deleted key is absent on both.
 */
export async function checkModel(model: Model, redis: Redis, httpPort: number | null, what: string, tcpMax = 16 * 1024 * 1024): Promise<void> {
  for (const [key, e] of model.live) {
    if (e.size <= tcpMax) {
      const got = await redis.getBuffer(key);
      assert.ok(got !== null, `${what}: ${key} is missing over TCP`);
      assert.equal(got.length, e.size, `${what}: ${key} length over TCP`);
      assert.equal(sha(got), e.sha256, `${what}: ${key} bytes over TCP`);
    }
    if (httpPort === null) continue;
    const got = await streamRequest({ method: 'GET', port: httpPort, path: `/v1/blobs/${key}`, ms: 60_000 });
    assert.equal(got.status, 200, `${what}: GET ${key} over HTTP`);
    assert.equal(got.length, e.size, `${what}: ${key} length over HTTP`);
    assert.equal(got.sha256, e.sha256, `${what}: ${key} bytes over HTTP`);
    if (e.size < 16) continue;
    const start = Math.floor(e.size / 3);
    const length = Math.min(64 * 1024, e.size - start - 1);
    const range = await streamRequest({ method: 'GET', port: httpPort, path: `/v1/blobs/${key}`, headers: { range: `bytes=${start}-${start + length - 1}` }, keep: true, ms: 30_000 });
    assert.equal(range.status, 206, `${what}: Range of ${key}`);
    assert.ok(range.body.equals(sliceOf(e, start, length)), `${what}: Range ${start}+${length} of ${key} differs`);
  }
  for (const key of model.gone) {
    assert.equal(await redis.getBuffer(key), null, `${what}: deleted ${key} is back over TCP`);
    if (httpPort === null) continue;
    const got = await streamRequest({ method: 'GET', port: httpPort, path: `/v1/blobs/${key}`, ms: 10_000 });
    assert.equal(got.status, 404, `${what}: deleted ${key} over HTTP`);
  }
}

// ---- answers ---------------------------------------------------------------------------------

export const VACUUM_FIELDS = ['volume', 'moved', 'copied_bytes', 'changed', 'expired', 'freed_bytes', 'removed', 'duration_ms', 'errors'] as const;

export interface VacuumRow {
  volume: number;
  moved: number;
  copied_bytes: number;
  changed: number;
  expired: number;
  freed_bytes: number;
  removed: number;
  duration_ms: number;
  errors: string[];
}

/** VACUUM's answer as ioredis gives it: one flat field/value array per volume, fields in the documented order. */
export function parseVacuum(reply: unknown): VacuumRow[] {
  assert.ok(Array.isArray(reply), `VACUUM answers an array: ${JSON.stringify(reply)}`);
  return reply.map((row: unknown) => {
    assert.ok(Array.isArray(row) && row.length === 2 * VACUUM_FIELDS.length, `a VACUUM row is ${2 * VACUUM_FIELDS.length} items: ${JSON.stringify(row)}`);
    const out: Record<string, unknown> = {};
    VACUUM_FIELDS.forEach((field, i) => {
      assert.equal(String(row[2 * i]), field, `field ${i} of a VACUUM row`);
      const value: unknown = row[2 * i + 1];
      if (field === 'errors') {
        assert.ok(Array.isArray(value), 'errors is an array');
        out[field] = value.map(String);
      } else {
        assert.equal(typeof value, 'number', `${field} is an integer`);
        out[field] = value;
      }
    });
    return out as unknown as VacuumRow;
  });
}

export interface VolumeRow {
  id: number;
  drive: string;
  size: number;
  group: number;
  garbage: number;
  live: number;
}

export async function volinfo(redis: Redis): Promise<VolumeRow[]> {
  const reply = (await redis.call('VOLINFO')) as unknown[];
  return reply.map((row) => {
    const [id, drive, size, group, garbage, live] = row as [number, string, number, number, number, number];
    // size = superblock + live + garbage, but for the padding of the last needle (not written until the next one).
    const rest = size - 64 - live - garbage;
    assert.ok(rest <= 0 && rest > -8, `VOLINFO volume ${id}: size ${size}, garbage ${garbage}, live ${live}`);
    return { id, drive: String(drive), size, group, garbage, live };
  });
}

export function totals(rows: VolumeRow[]): { size: number; garbage: number; live: number } {
  return rows.reduce((t, r) => ({ size: t.size + r.size, garbage: t.garbage + r.garbage, live: t.live + r.live }), { size: 0, garbage: 0, live: 0 });
}

/** The volume files under `dir` (DRIVE/volumes, or a volume server's dir): id → bytes. */
export function volumeFiles(dir: string): Map<number, number> {
  const out = new Map<number, number>();
  if (!fs.existsSync(dir)) return out;
  for (const name of fs.readdirSync(dir)) {
    const id = parseVolumeFileName(name);
    if (id !== null) out.set(id, fs.statSync(path.join(dir, name)).size);
  }
  return out;
}

export function sumBytes(files: Map<number, number>): number {
  let n = 0;
  for (const v of files.values()) n += v;
  return n;
}

export function sha256OfFile(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Waits (bounded) until no file descriptor of process `pid` is open on a file named `name` (a removed volume). */
export async function waitNoHandle(pid: number, name: string): Promise<void> {
  const held = (): string[] => {
    const out: string[] = [];
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.includes(name)) out.push(target);
      } catch {
        // closed meanwhile
      }
    }
    return out;
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const open = held();
    if (open.length === 0) return;
    if (Date.now() > deadline) assert.fail(`pid ${pid} still holds ${open.join(', ')}`);
    await sleep(100);
  }
}
