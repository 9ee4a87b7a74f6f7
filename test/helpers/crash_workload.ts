// The workload and the oracle of the process-crash harness (test/crash_process.test.ts).
// Owns: the writers (TCP lanes, TCP transactions, an open transaction, HTTP blobs), the
// deterministic blob contents, the models of what was acknowledged, and the checks of what a
// restarted master holds against them.
//
// The model. Every key has exactly one owner (a writer), so its operations form one sequence:
// - ordered keys (TCP lanes, HTTP blobs): one connection, or one request at a time, applies
//   operations in the order sent, and replies come in that order, so the acknowledged ones are
//   a prefix of the sequence. After a restart a key holds the state of its last acknowledged
//   operation or of a later one that was in flight at the kill (the WAL replays a prefix of
//   what was issued): never an older state, never one nobody wrote;
// - transaction keys: a transaction writer has at most one transaction in flight, and a
//   transaction is applied whole or not at all, so the writer's keys TOGETHER hold either the
//   state after its acknowledged transactions, or that state plus the one transaction whose
//   COMMIT/EXEC was sent and not answered. Writes of a BEGIN whose COMMIT was never sent, of a
//   rolled-back level, or of the open transaction never show.
// Every value is unique (it carries the cycle, the writer and a counter; a blob carries an id
// from which its bytes are generated), so a value names the operation that wrote it, and a
// partial value matches nothing. A state also says whether it was written with a TTL.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { streamRequest } from './master_process.js';
export { mulberry32 as rng } from '../../property-tests/sim_fs.js';

/** SET ... EX over TCP. */
export const TCP_TTL_SECONDS = 1000;
/** PUT ...?ttl=1h over HTTP. */
export const HTTP_TTL_SECONDS = 3600;
export const MIN_BLOB = 1024;
export const MAX_BLOB = 4 * 1024 * 1024;
/** Bounds on single requests of the workload and the checks: a hung server fails the test. */
const REQUEST_MS = 20_000;


/** A sub-seed from a seed and a path (cycle, writer...): independent streams per writer. */
export function subSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h;
}

// ---- blob contents: bytes from (id, size), generated in chunks, never held whole --------------

const BLOCK_WORDS = 16 * 1024; // 64 KiB blocks
const CHUNK_BLOCKS = 4; // 256 KiB per yielded chunk
let baseBlock: Uint32Array | undefined;

function base(): Uint32Array {
  if (baseBlock !== undefined) return baseBlock;
  baseBlock = new Uint32Array(BLOCK_WORDS);
  let x = 0x2545f491;
  for (let i = 0; i < BLOCK_WORDS; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    baseBlock[i] = x;
  }
  return baseBlock;
}

/** Block k of blob `id`: the base block XORed with a word of (id, k), so blobs and blocks differ. */
function block(id: number, k: number, into: Uint32Array, at: number): void {
  const b = base();
  const mask = subSeed(id, k, 0x5bd1e995);
  for (let i = 0; i < BLOCK_WORDS; i++) into[at + i] = b[i]! ^ mask;
}

/** The `size` bytes of blob `id`, as 256 KiB chunks (fresh buffers: the sender may keep them). */
export async function* blobChunks(id: number, size: number): AsyncGenerator<Buffer> {
  const chunkBytes = BLOCK_WORDS * 4 * CHUNK_BLOCKS;
  for (let at = 0, k = 0; at < size; at += chunkBytes) {
    const words = new Uint32Array(BLOCK_WORDS * CHUNK_BLOCKS);
    for (let j = 0; j < CHUNK_BLOCKS; j++, k++) block(id, k, words, j * BLOCK_WORDS);
    const buf = Buffer.from(words.buffer);
    yield size - at >= chunkBytes ? buf : buf.subarray(0, size - at);
  }
}

const shaCache = new Map<string, string>();

/** SHA-256 (hex) of blob `id` of `size` bytes; cached until clearBlobShas(). */
export async function blobSha(id: number, size: number): Promise<string> {
  const name = `${id}:${size}`;
  const known = shaCache.get(name);
  if (known !== undefined) return known;
  const hash = createHash('sha256');
  for await (const c of blobChunks(id, size)) hash.update(c);
  const hex = hash.digest('hex');
  shaCache.set(name, hex);
  return hex;
}

/** Forgets the hashes (called once per cycle: only the candidates of one check are needed). */
export function clearBlobShas(): void {
  shaCache.clear();
}

/** The model's name for a blob value, and back. */
export const blobValue = (id: number, size: number): string => `blob:${id}:${size}`;
export function parseBlobValue(v: string): { id: number; size: number } {
  const m = /^blob:(\d+):(\d+)$/.exec(v);
  if (m === null) throw new Error(`not a blob value: ${v}`);
  return { id: Number(m[1]), size: Number(m[2]) };
}

/** Log-uniform in [MIN_BLOB, MAX_BLOB]: mostly small blobs, now and then a multi-MB one. */
export function blobSize(r: () => number): number {
  return Math.min(MAX_BLOB, Math.floor(MIN_BLOB * (MAX_BLOB / MIN_BLOB) ** r()));
}

// ---- the oracle ---------------------------------------------------------------------------------

/** A key's state: its value (null = absent) and whether it was written with a TTL. */
export interface KeyState {
  value: string | null;
  ttl: boolean;
}

export const ABSENT: KeyState = { value: null, ttl: false };

interface History {
  /** What the previous restart recovered (the state at the start of the cycle). */
  base: KeyState;
  /** This cycle's operations on the key, in the order its owner sent them. */
  effects: KeyState[];
  /** Index of the last acknowledged effect; -1 = none this cycle. */
  lastAcked: number;
}

/** Keys whose owner may have several operations in flight, acknowledged in order. */
export class OrderedOracle {
  private readonly keys = new Map<string, History>();

  constructor(names: readonly string[]) {
    for (const k of names) this.keys.set(k, { base: ABSENT, effects: [], lastAcked: -1 });
  }

  names(): string[] {
    return [...this.keys.keys()];
  }

  /** Records an operation before it is sent (from then on it may be in the WAL); answers its ack. */
  issue(effects: ReadonlyArray<readonly [string, KeyState]>): () => void {
    const at = effects.map(([k, s]) => {
      const h = this.history(k);
      h.effects.push(s);
      return [h, h.effects.length - 1] as const;
    });
    return () => {
      for (const [h, i] of at) h.lastAcked = Math.max(h.lastAcked, i);
    };
  }

  /** The states the key may hold after a restart. */
  allowed(key: string): KeyState[] {
    const h = this.history(key);
    const out: KeyState[] = h.lastAcked < 0 ? [h.base] : [];
    for (let i = Math.max(0, h.lastAcked); i < h.effects.length; i++) out.push(h.effects[i]!);
    return out;
  }

  /** Describes the key's history for a failure message. */
  describe(key: string): string {
    const h = this.history(key);
    return `last acknowledged ${h.lastAcked} of ${h.effects.length} this cycle; allowed: ${this.allowed(key).map(show).join(', ')}`;
  }

  /** The recovered state becomes the base of the next cycle. */
  settle(key: string, state: KeyState): void {
    const h = this.history(key);
    h.base = state;
    h.effects = [];
    h.lastAcked = -1;
  }

  private history(key: string): History {
    const h = this.keys.get(key);
    if (h === undefined) throw new Error(`the oracle has no key ${key}`);
    return h;
  }
}

/** Keys of one sequential transaction writer: whole transactions, at most one in flight. */
export class TxOracle {
  private state: Map<string, KeyState>;
  private inflight: Map<string, KeyState> | null = null;

  constructor(readonly names: readonly string[]) {
    this.state = new Map(names.map((k) => [k, ABSENT]));
  }

  /** A COMMIT/EXEC is about to be sent with these effects (in order; a later one wins). */
  committing(effects: ReadonlyArray<readonly [string, KeyState]>): void {
    this.inflight = new Map(effects);
  }

  /** Its reply came back OK. */
  acked(): void {
    if (this.inflight === null) throw new Error('acked() without committing()');
    for (const [k, s] of this.inflight) this.state.set(k, s);
    this.inflight = null;
  }

  /** The states the writer's keys may hold together: before or after the transaction in flight. */
  candidates(): Array<Map<string, KeyState>> {
    const out = [new Map(this.state)];
    if (this.inflight !== null) out.push(new Map([...this.state, ...this.inflight]));
    return out;
  }

  settle(recovered: Map<string, KeyState>): void {
    this.state = new Map(recovered);
    this.inflight = null;
  }
}

export function show(s: KeyState): string {
  return s.value === null ? 'absent' : `${JSON.stringify(s.value.slice(0, 48))}${s.ttl ? ' (ttl)' : ''}`;
}

// ---- what a restarted master holds ----------------------------------------------------------------

/** A key as read back: its value (TCP: the string; HTTP: length and SHA-256) and its TTL. */
export interface Observed {
  value: string | null;
  /** Seconds left; -1 = none. */
  ttl: number;
  /** HTTP only: bytes and SHA-256 of the body. */
  length?: number;
  sha256?: string;
}

/** GET and TTL of every key in one pipeline. */
export async function readTcp(c: Redis, keys: readonly string[]): Promise<Map<string, Observed>> {
  const pipe = c.pipeline();
  for (const k of keys) pipe.get(k).ttl(k);
  const replies = (await pipe.exec()) ?? [];
  const out = new Map<string, Observed>();
  keys.forEach((k, i) => {
    const [e1, value] = replies[2 * i] ?? [new Error('no reply'), null];
    const [e2, ttl] = replies[2 * i + 1] ?? [new Error('no reply'), null];
    if (e1 !== null || e2 !== null) throw new Error(`GET/TTL ${k}: ${String(e1 ?? e2)}`);
    out.set(k, { value: value as string | null, ttl: ttl as number });
  });
  return out;
}

/** GET of each blob over HTTP, hashed as it streams; `parallel` requests at a time. */
export async function readBlobs(port: number, keys: readonly string[], parallel = 3): Promise<Map<string, Observed>> {
  const out = new Map<string, Observed>();
  const queue = [...keys];
  const lane = async (): Promise<void> => {
    for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
      const res = await streamRequest({ method: 'GET', port, path: `/v1/blobs/${k}`, ms: REQUEST_MS });
      if (res.status === 404) out.set(k, { value: null, ttl: -1 });
      else if (res.status === 200) {
        const ttl = Number(res.headers['x-brise-ttl']);
        out.set(k, { value: `http:${res.length}:${res.sha256}`, ttl, length: res.length, sha256: res.sha256 });
      } else throw new Error(`GET /v1/blobs/${k}: status ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return out;
}

/** Whether a TCP key as read matches a modelled state (value and TTL). */
export function matchesTcp(s: KeyState, o: Observed): boolean {
  if (s.value !== o.value) return false;
  if (s.value === null) return true;
  return s.ttl ? o.ttl > 0 && o.ttl <= TCP_TTL_SECONDS : o.ttl === -1;
}

/** Whether a blob as read matches a modelled state: absent, or every byte of it, and its TTL. */
export async function matchesBlob(s: KeyState, o: Observed): Promise<boolean> {
  if (s.value === null || o.value === null) return s.value === o.value;
  const { id, size } = parseBlobValue(s.value);
  if (o.length !== size || o.sha256 !== (await blobSha(id, size))) return false;
  return s.ttl ? o.ttl > 0 && o.ttl <= HTTP_TTL_SECONDS : o.ttl === -1;
}

export function showObserved(o: Observed): string {
  if (o.value === null) return 'absent';
  const body = o.length !== undefined ? `${o.length} bytes sha256 ${o.sha256!.slice(0, 12)}` : JSON.stringify(o.value.slice(0, 48));
  return `${body}, ttl ${o.ttl}`;
}

/**
 * How the writes in flight at the kill came out: keys (or transactions) with an unacknowledged
 * write, and how many of those recovered it. Both outcomes showing up over a run says the
 * kills land inside the write path, not only between writes.
 */
export class InFlight {
  keys = 0;
  keysLanded = 0;
  txs = 0;
  txsLanded = 0;

  summary(): string {
    return `in flight: ${this.keysLanded}/${this.keys} keys and ${this.txsLanded}/${this.txs} transactions landed`;
  }

  add(o: InFlight): void {
    this.keys += o.keys;
    this.keysLanded += o.keysLanded;
    this.txs += o.txs;
    this.txsLanded += o.txsLanded;
  }
}

/**
 * Checks ordered keys; settles each on the state it matched. Answers the failures (empty when
 * all hold). Blob keys are matched with matchesBlob, the others with matchesTcp.
 */
export async function checkOrdered(oracle: OrderedOracle, seen: Map<string, Observed>, blobs: boolean, flight = new InFlight()): Promise<string[]> {
  const failures: string[] = [];
  for (const k of oracle.names()) {
    const o = seen.get(k);
    if (o === undefined) throw new Error(`key ${k} was not read back`);
    const allowed = oracle.allowed(k);
    let at = -1;
    for (let i = 0; i < allowed.length && at < 0; i++) if (blobs ? await matchesBlob(allowed[i]!, o) : matchesTcp(allowed[i]!, o)) at = i;
    if (at < 0) {
      failures.push(`key ${k} holds ${showObserved(o)}; ${oracle.describe(k)}`);
      continue;
    }
    // allowed[0] is the acknowledged state; later ones were in flight.
    if (allowed.length > 1) flight.keys++;
    if (at > 0) flight.keysLanded++;
    oracle.settle(k, allowed[at]!);
  }
  return failures;
}

/** Checks a transaction writer's keys as one state; settles on the candidate it matched. */
export function checkTx(oracle: TxOracle, seen: Map<string, Observed>, who: string, flight = new InFlight()): string[] {
  const candidates = oracle.candidates();
  const holds = (c: Map<string, KeyState>): boolean => [...c].every(([k, s]) => {
    const o = seen.get(k);
    if (o === undefined) throw new Error(`key ${k} was not read back`);
    return matchesTcp(s, o);
  });
  const at = candidates.findIndex(holds);
  if (at >= 0) {
    if (candidates.length > 1) flight.txs++;
    if (at > 0) flight.txsLanded++;
    oracle.settle(candidates[at]!);
    return [];
  }
  // Say which keys differ from each candidate: a mix of both names a partial transaction.
  const diffs = candidates.map((c, i) => {
    const wrong = [...c].filter(([k, s]) => !matchesTcp(s, seen.get(k)!));
    const list = wrong.map(([k, s]) => `${k} holds ${showObserved(seen.get(k)!)}, expected ${show(s)}`);
    return `${i === 0 ? 'before' : 'after'} the transaction in flight: ${list.join('; ')}`;
  });
  return [`${who}: the keys match no whole-transaction state (${candidates.length} candidates). ${diffs.join(' | ')}`];
}

// ---- the load of one cycle ------------------------------------------------------------------------

export const KINDS = [
  'set', 'setex', 'del', 'mset', 'begin-commit', 'begin-rollback', 'nested', 'multi', 'open-tx', 'put', 'put-ttl', 'delete',
] as const;
export type Kind = (typeof KINDS)[number];

/** What one cycle did, and anything a live server answered that it should not have. */
export class Load {
  /** Set just before the SIGKILL: from then on a dropped connection is expected. */
  killing = false;
  readonly acked: Record<Kind, number> = Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
  sent = 0;
  bytesPut = 0;
  readonly anomalies: string[] = [];

  ack(kind: Kind): void {
    this.acked[kind]++;
  }

  /**
   * A write failed. After the kill began, a dropped connection is the expected end of a writer;
   * an error reply, or a failure of a live server, is an anomaly. Answers false (stop writing).
   */
  failed(what: string, e: unknown): false {
    const err = e as Error;
    const reply = err?.name === 'ReplyError' || /^(ERR|EXECABORT|WRONGTYPE)/.test(String(err?.message));
    if (reply || !this.killing) this.anomalies.push(`${what}: ${reply ? 'error reply' : 'failed before the kill'}: ${String(err?.message ?? e)}`);
    return false;
  }

  summary(): string {
    const parts = KINDS.filter((k) => this.acked[k] > 0).map((k) => `${k}=${this.acked[k]}`);
    const total = KINDS.reduce((n, k) => n + this.acked[k], 0);
    return `acked ${total}/${this.sent} (${parts.join(' ')}), ${(this.bytesPut / 1048576).toFixed(1)} MB of blobs`;
  }
}

/** A value of mostly a few bytes, sometimes a few KB, rarely 64 KB, prefixed by its unique tag. */
export function tcpValue(r: () => number, tag: string): string {
  const roll = r();
  const size = roll < 0.8 ? Math.floor(r() * 40) : roll < 0.97 ? 1000 + Math.floor(r() * 4000) : 64 * 1024;
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let pad = '';
  for (let i = 0; i < Math.min(size, 64); i++) pad += alphabet[Math.floor(r() * alphabet.length)];
  return `${tag}|${pad.repeat(Math.ceil(size / Math.max(1, pad.length))).slice(0, size)}`;
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

type TcpOp =
  | { kind: 'set' | 'setex'; key: string; value: string }
  | { kind: 'del'; keys: string[] }
  | { kind: 'mset'; pairs: Array<[string, string]> };

function tcpOp(r: () => number, keys: readonly string[], tag: string): TcpOp {
  const roll = r();
  if (roll < 0.45) return { kind: 'set', key: pick(r, keys), value: tcpValue(r, tag) };
  if (roll < 0.6) return { kind: 'setex', key: pick(r, keys), value: tcpValue(r, tag) };
  if (roll < 0.78) return { kind: 'del', keys: [...new Set([pick(r, keys), pick(r, keys)])] };
  const pairs = new Map<string, string>();
  const n = 2 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) pairs.set(pick(r, keys), tcpValue(r, `${tag}.${i}`));
  return { kind: 'mset', pairs: [...pairs] };
}

function tcpEffects(op: TcpOp): Array<[string, KeyState]> {
  switch (op.kind) {
    case 'set':
    case 'setex':
      return [[op.key, { value: op.value, ttl: op.kind === 'setex' }]];
    case 'del':
      return op.keys.map((k) => [k, ABSENT]);
    case 'mset':
      return op.pairs.map(([k, v]) => [k, { value: v, ttl: false }]);
  }
}

function sendTcp(c: Redis, op: TcpOp): Promise<unknown> {
  switch (op.kind) {
    case 'set':
      return c.set(op.key, op.value);
    case 'setex':
      return c.set(op.key, op.value, 'EX', TCP_TTL_SECONDS);
    case 'del':
      return c.del(...op.keys);
    case 'mset':
      return c.mset(...op.pairs.flat());
  }
}

/** One TCP client: `window` lanes on one connection, each sending its next op when answered. */
export async function tcpLaneWriter(c: Redis, r: () => number, oracle: OrderedOracle, tag: string, load: Load, window: number): Promise<void> {
  const keys = oracle.names();
  let n = 0;
  const lane = async (): Promise<void> => {
    for (;;) {
      const op = tcpOp(r, keys, `${tag}.${n++}`);
      const ack = oracle.issue(tcpEffects(op));
      load.sent++;
      try {
        await sendTcp(c, op);
      } catch (e) {
        return void load.failed(`${tag} ${op.kind}`, e);
      }
      ack();
      load.ack(op.kind);
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
}

type TxWrite = { key: string; state: KeyState };

function txWrites(r: () => number, keys: readonly string[], tag: string, count: number): TxWrite[] {
  return Array.from({ length: count }, (_, i): TxWrite => {
    const roll = r();
    const key = pick(r, keys);
    if (roll < 0.2) return { key, state: ABSENT };
    return { key, state: { value: tcpValue(r, `${tag}.${i}`), ttl: roll < 0.35 } };
  });
}

/** Throws the first error of a pipeline's replies (a dropped connection or an error reply). */
function expectReplies(replies: Array<[Error | null, unknown]> | null, what: string): void {
  if (replies === null) throw new Error(`${what}: no replies (aborted)`);
  for (const [e] of replies) if (e !== null) throw e;
}

async function sendWrites(c: Redis, writes: readonly TxWrite[], what: string): Promise<void> {
  if (writes.length === 0) return;
  const pipe = c.pipeline();
  for (const w of writes) {
    if (w.state.value === null) pipe.del(w.key);
    else if (w.state.ttl) pipe.set(w.key, w.state.value, 'EX', TCP_TTL_SECONDS);
    else pipe.set(w.key, w.state.value);
  }
  expectReplies(await pipe.exec(), what);
}

async function expectOk(p: Promise<unknown>, what: string): Promise<void> {
  const reply = await p;
  if (reply !== 'OK') throw new Error(`${what}: replied ${String(reply)}, expected OK`);
}

const effectsOf = (writes: readonly TxWrite[]): Array<[string, KeyState]> => writes.map((w) => [w.key, w.state]);

/** BEGIN, writes, then COMMIT or ROLLBACK; 'nested' rolls back an inner level between writes. */
async function beginTx(c: Redis, r: () => number, oracle: TxOracle, kind: 'begin-commit' | 'begin-rollback' | 'nested', tag: string): Promise<void> {
  const outer = txWrites(r, oracle.names, `${tag}.a`, 2 + Math.floor(r() * 5));
  await expectOk(c.call('BEGIN'), `${tag} BEGIN`);
  await sendWrites(c, outer, `${tag} writes`);
  let after: TxWrite[] = [];
  if (kind === 'nested') {
    await expectOk(c.call('BEGIN'), `${tag} inner BEGIN`);
    await sendWrites(c, txWrites(r, oracle.names, `${tag}.rolled-back`, 1 + Math.floor(r() * 3)), `${tag} inner writes`);
    await expectOk(c.call('ROLLBACK'), `${tag} inner ROLLBACK`);
    after = txWrites(r, oracle.names, `${tag}.c`, 1 + Math.floor(r() * 2));
    await sendWrites(c, after, `${tag} writes after the inner ROLLBACK`);
  }
  if (kind === 'begin-rollback') return expectOk(c.call('ROLLBACK'), `${tag} ROLLBACK`);
  oracle.committing(effectsOf([...outer, ...after]));
  await expectOk(c.call('COMMIT'), `${tag} COMMIT`);
  oracle.acked();
}

async function multiTx(c: Redis, r: () => number, oracle: TxOracle, tag: string): Promise<void> {
  const writes = txWrites(r, oracle.names, tag, 2 + Math.floor(r() * 5));
  const tx = c.multi();
  for (const w of writes) {
    if (w.state.value === null) tx.del(w.key);
    else if (w.state.ttl) tx.set(w.key, w.state.value, 'EX', TCP_TTL_SECONDS);
    else tx.set(w.key, w.state.value);
  }
  oracle.committing(effectsOf(writes));
  expectReplies(await tx.exec(), `${tag} EXEC`);
  oracle.acked();
}

/** One TCP client running transactions one after another on its own connection and keys. */
export async function txWriter(c: Redis, r: () => number, oracle: TxOracle, tag: string, load: Load): Promise<void> {
  for (let n = 0; ; n++) {
    const roll = r();
    const kind: Kind = roll < 0.4 ? 'begin-commit' : roll < 0.7 ? 'multi' : roll < 0.85 ? 'begin-rollback' : 'nested';
    load.sent++;
    try {
      if (kind === 'multi') await multiTx(c, r, oracle, `${tag}.${n}`);
      else await beginTx(c, r, oracle, kind, `${tag}.${n}`);
    } catch (e) {
      return void load.failed(`${tag} ${kind}`, e);
    }
    load.ack(kind);
  }
}

/**
 * A transaction that is never committed: BEGIN, then batches of writes over its keys until
 * the kill. Its keys keep the state they had before (the oracle is never told of a commit).
 */
export async function openTxWriter(c: Redis, r: () => number, keys: readonly string[], tag: string, load: Load): Promise<void> {
  try {
    await expectOk(c.call('BEGIN'), `${tag} BEGIN`);
    for (let n = 0; ; n++) {
      load.sent++;
      await sendWrites(c, txWrites(r, keys, `${tag}.${n}`, 1 + Math.floor(r() * 4)), `${tag} writes`);
      load.ack('open-tx');
      await new Promise((resolve) => setTimeout(resolve, 5 + r() * 20));
    }
  } catch (e) {
    load.failed(`${tag} open transaction`, e);
  }
}

/**
 * One HTTP client: PUT (some with ?ttl=) and DELETE over its own blob keys, one request at a
 * time (separate connections have no order, so one at a time keeps the key's history ordered).
 * Blob ids are idBase + n: unique across cycles and clients when idBase is.
 */
export async function httpWriter(port: number, r: () => number, oracle: OrderedOracle, idBase: number, load: Load): Promise<void> {
  const keys = oracle.names();
  for (let n = 0; ; n++) {
    const key = pick(r, keys);
    const roll = r();
    const kind: Kind = roll < 0.2 ? 'delete' : roll < 0.4 ? 'put-ttl' : 'put';
    const size = blobSize(r);
    const state: KeyState = kind === 'delete' ? ABSENT : { value: blobValue(idBase + n, size), ttl: kind === 'put-ttl' };
    const ack = oracle.issue([[key, state]]);
    load.sent++;
    try {
      const res = await streamRequest(
        kind === 'delete'
          ? { method: 'DELETE', port, path: `/v1/blobs/${key}`, ms: REQUEST_MS }
          : {
              method: 'PUT', port, path: `/v1/blobs/${key}${kind === 'put-ttl' ? '?ttl=1h' : ''}`, ms: REQUEST_MS,
              headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
              body: blobChunks(idBase + n, size), keep: true,
            },
      );
      const ok = kind === 'delete' ? res.status === 204 || res.status === 404 : res.status === 201;
      if (!ok) {
        load.anomalies.push(`${kind} ${key} (${size} bytes): status ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
        return;
      }
    } catch (e) {
      return void load.failed(`${kind} ${key}`, e);
    }
    ack();
    load.ack(kind);
    if (kind !== 'delete') load.bytesPut += size;
  }
}
