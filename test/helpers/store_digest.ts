// Test helper: a digest of everything a server holds, read over its TCP port: every key (SCAN),
// the SHA-256 of its value (GET), and its expiry (PEXPIRETIME: absolute, so a master and its
// replicas answer the same number for the same key). Two servers are equal when their digests
// are; a difference is described by its first keys, so a failure says what differs.
// Owns: one ioredis connection per digest, closed before it answers.
// Invariants: bounded (MAX_KEYS keys, every command under ioredis's command timeout); keys are
// read as bytes, never decoded; a key that vanishes between SCAN and GET (expired) counts as
// absent, not as an empty value.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { sleep } from './master_process.js';

const MAX_KEYS = 200_000;
const SCAN_COUNT = 1000;

export interface Digest {
  /** key (hex) -> "sha256-of-value expiry" */
  readonly entries: Map<string, string>;
  /** One hash of every entry, in key order. */
  readonly hash: string;
  readonly keys: number;
}

export async function storeDigest(port: number, password?: string): Promise<Digest> {
  const redis = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, maxRetriesPerRequest: 0, commandTimeout: 30_000, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => undefined);
  await redis.connect();
  try {
    const keys = await scanAll(redis);
    const entries = new Map<string, string>();
    for (const key of keys) {
      const [value, expiry] = await Promise.all([redis.getBuffer(key), redis.call('PEXPIRETIME', key) as Promise<number>]);
      if (value === null) continue;
      entries.set(key.toString('hex'), `${createHash('sha256').update(value).digest('hex')} ${expiry}`);
    }
    return summarize(entries);
  } finally {
    redis.disconnect();
  }
}

async function scanAll(redis: Redis): Promise<Buffer[]> {
  const seen = new Map<string, Buffer>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scanBuffer(cursor, 'COUNT', SCAN_COUNT);
    cursor = next.toString();
    for (const k of batch) seen.set(k.toString('hex'), k);
    if (seen.size > MAX_KEYS) throw new Error(`more than ${MAX_KEYS} keys: not a test store`);
  } while (cursor !== '0');
  return [...seen.values()];
}

function summarize(entries: Map<string, string>): Digest {
  const hash = createHash('sha256');
  for (const k of [...entries.keys()].sort()) hash.update(`${k}=${entries.get(k)!}\n`);
  return { entries, hash: hash.digest('hex'), keys: entries.size };
}

/** The first `limit` differences between two digests, in words (empty when equal). */
export function describeDifference(a: Digest, b: Digest, limit = 5): string[] {
  const out: string[] = [];
  const name = (hex: string): string => JSON.stringify(Buffer.from(hex, 'hex').toString('latin1').slice(0, 60));
  for (const [k, v] of a.entries) {
    if (out.length >= limit) break;
    const w = b.entries.get(k);
    if (w === undefined) out.push(`${name(k)} only on the first (${v})`);
    else if (w !== v) out.push(`${name(k)}: ${v} vs ${w}`);
  }
  for (const k of b.entries.keys()) {
    if (out.length >= limit) break;
    if (!a.entries.has(k)) out.push(`${name(k)} only on the second`);
  }
  if (out.length === 0 && a.hash !== b.hash) out.push('hashes differ');
  return out;
}

/**
 * Polls until every server in `others` has the digest of `reference` (all with `password`, if any) (a replica catching up
 * with its master), bounded by `ms`; answers the reference's digest, or throws naming the
 * differences of the last poll.
 */
export async function waitEqual(reference: number, others: readonly number[], ms = 15_000, what = 'the replicas to equal the master', password?: string): Promise<Digest> {
  const deadline = Date.now() + ms;
  for (;;) {
    const want = await storeDigest(reference, password);
    const diffs: string[] = [];
    for (const port of others) {
      const got = await storeDigest(port, password).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      if (got instanceof Error) diffs.push(`port ${port}: ${got.message}`);
      else if (got.hash !== want.hash) diffs.push(`port ${port} (${got.keys} keys vs ${want.keys}): ${describeDifference(want, got).join('; ')}`);
    }
    if (diffs.length === 0) return want;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}: ${diffs.join(' | ')}`);
    await sleep(200);
  }
}
