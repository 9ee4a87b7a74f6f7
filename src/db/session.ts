// One client's view of the database: the commands of the embedded API, each reading through
// the session's open transaction levels first (read-your-writes) and the committed store
// second. Outside a transaction a write is the engine's put/delete (one WAL record); inside one,
// writes are pending on this session (their needles placed but not yet synced) until the
// outermost COMMIT hands them all to the engine's write(): synced, then ONE record.
import type { Readable } from 'node:stream';
import { GuardKind, OpCode, guardsFailed, isLive, type GuardOp, type IndexEntry, type NeedleAddress, type Op } from '../storage/types.js';
import { valueLengthOf } from '../storage/types.js';
import { globMatch } from '../storage/glob.js';
import type {
  BlobInfo,
  BlobStreamOptions,
  Bytes,
  ReadRange,
  ScanOptions,
  ScanResult,
  Session,
  SetCondOptions,
  SetCondResult,
  SetOptions,
  Subscription,
  Watched,
} from './api.js';
import { checkKey, checkValueSize, fromMapKey, mapKey, toBuffer } from './bytes.js';
import type { Condition, Engine, NeedleToPlace, Placed } from './engine.js';
import { QueueSubscription } from './subscription.js';
import { TransactionStack, withExpiry, type Committed, type PendingWrite } from './transaction.js';
import type { Current, Decide, KeyState } from './key_updates.js';
import type { KeyEvent } from '../protocol/keyspace_events.js';
import { StoreError } from '../runtime/errors.js';
import { metaFromHeaders } from '../protocol/blob_meta.js';
import { NO_EXPECTED_DIGESTS, UploadDigest } from '../protocol/upload_digest.js';
import type { MetaSource } from './ports.js';

/** Values up to this size stay in memory inside a transaction, for reads without a disk hit. */
const TXN_INLINE_VALUE = 64 * 1024;
const SCAN_PAGE = 1000;
/** SET ... GET retries when another writer changes the key between its look and its write. */
const SET_GET_ATTEMPTS = 16;

/** What a key resolves to for this session: a needle and its expiry. */
interface Visible {
  address: NeedleAddress;
  expiresAt: number;
  value?: Buffer;
}

let nextSubscriberId = 1;

export class EngineSession implements Session {
  protected readonly txn: TransactionStack;

  constructor(protected readonly engine: Engine) {
    this.txn = new TransactionStack(engine.limits.maxTransactionOps, engine.limits.maxTransactionBytes);
  }

  get depth(): number {
    return this.txn.depth;
  }

  // ---- strings ---------------------------------------------------------------------------

  async set(key: Bytes, value: Bytes, options: SetOptions = {}): Promise<void> {
    const k = checkKey(key, this.engine.limits);
    const v = toBuffer(value);
    checkValueSize(v.length, this.engine.limits);
    const expiresAt = this.expiryOf(options);
    if (this.txn.depth > 0) {
      this.stage(k, await this.engine.placeValue(k, v, expiresAt, false), expiresAt, v.length, v);
      this.emit(setEvents(k, expiresAt));
      return;
    }
    await this.engine.set(k, v, expiresAt);
    this.emit(setEvents(k, expiresAt));
  }

  /** Keyspace notifications of writes: published now, or at the COMMIT of the transaction. */
  private emit(events: KeyEvent[]): void {
    if (this.txn.depth > 0) this.txn.noteEvents(events);
    else this.engine.notify(events);
  }

  async setMany(items: { key: Bytes; value: Bytes; options?: SetOptions }[]): Promise<(Error | null)[]> {
    const results: (Error | null)[] = new Array<Error | null>(items.length).fill(null);
    if (this.txn.depth > 0) {
      for (let i = 0; i < items.length; i++) {
        await this.set(items[i]!.key, items[i]!.value, items[i]!.options).catch((err: Error) => (results[i] = err));
      }
      return results;
    }
    // Validate each alone; the valid ones go as one record.
    const valid: { i: number; needle: NeedleToPlace }[] = [];
    for (let i = 0; i < items.length; i++) {
      try {
        const key = checkKey(items[i]!.key, this.engine.limits);
        const value = toBuffer(items[i]!.value);
        checkValueSize(value.length, this.engine.limits);
        valid.push({ i, needle: { key, value, expiresAt: this.expiryOf(items[i]!.options ?? {}) } });
      } catch (err) {
        results[i] = err as Error;
      }
    }
    if (valid.length === 0) return results;
    try {
      await this.engine.putMany(valid.map((v) => v.needle));
    } catch (err) {
      for (const v of valid) results[v.i] = err as Error;
      return results;
    }
    this.emit(valid.flatMap((v) => setEvents(v.needle.key, v.needle.expiresAt)));
    return results;
  }

  async setWith(key: Bytes, value: Bytes, options: SetCondOptions): Promise<SetCondResult> {
    const k = checkKey(key, this.engine.limits);
    const v = toBuffer(value);
    checkValueSize(v.length, this.engine.limits);
    if (options.nx && options.xx) throw new StoreError('BAD_ARGUMENT', 'NX and XX exclude each other');
    if (options.keepTtl && (options.ttlMs !== undefined || options.expiresAt !== undefined)) {
      throw new StoreError('BAD_ARGUMENT', 'KEEPTTL excludes a new expiry');
    }
    const expiresAt = this.expiryOf(options);
    if (this.txn.depth > 0) return this.setWithInTxn(k, v, expiresAt, options);
    for (let attempt = 0; attempt < SET_GET_ATTEMPTS; attempt++) {
      // Look first: a condition that already fails costs no needle.
      const current = await this.engine.lookupLive(k);
      const previous = options.get && current ? toBuffer(await this.engine.read(current)) : null;
      if ((options.nx && current) || (options.xx && !current)) return { applied: false, previous };
      // With GET, the value answered must be the one replaced: set only if the key is still
      // where it was seen (or still absent), else look again.
      const condition: Condition = options.get
        ? current
          ? { kind: 'at', volume: current.address.volume, offset: current.address.offset }
          : { kind: 'absent' }
        : options.nx
          ? { kind: 'absent' }
          : options.xx
            ? { kind: 'present' }
            : { kind: 'none' };
      const { applied } = await this.engine.put(k, v, { expiresAt, condition, keepTtl: options.keepTtl ?? false });
      if (applied) {
        this.emit(setEvents(k, expiresAt));
        return { applied: true, previous };
      }
      if (!options.get) return { applied: false, previous: null };
    }
    throw new StoreError('TIMEOUT', `SET ... GET of a key written concurrently: gave up after ${SET_GET_ATTEMPTS} attempts`);
  }

  /** Inside a transaction the conditions are judged against what this session sees. */
  private async setWithInTxn(k: Buffer, v: Buffer, expiresAt: number, options: SetCondOptions): Promise<SetCondResult> {
    const visible = await this.visible(k);
    const previous = options.get && visible ? (visible.value ?? toBuffer(await this.engine.ports.reader.read(visible.address, k))) : null;
    if ((options.nx && visible) || (options.xx && !visible)) return { applied: false, previous };
    const keep = options.keepTtl && visible ? visible.expiresAt : expiresAt;
    this.stage(k, await this.engine.placeValue(k, v, keep, false), keep, v.length, v);
    this.emit(setEvents(k, expiresAt));
    return { applied: true, previous };
  }

  /** A write pending in the open transaction: its needle placed, unsynced. */
  private stage(k: Buffer, placed: Placed, expiresAt: number, size: number, value?: Buffer): void {
    const inline = value !== undefined && value.length <= TXN_INLINE_VALUE ? Buffer.from(value) : undefined;
    this.txn.put(mapKey(k), { kind: 'set', placed, expiresAt, size, value: inline });
  }

  /**
   * Read-modify-write (see key_updates.ts): outside a transaction an atomic guarded record;
   * inside one, decided on what this session sees and staged like any write (the COMMIT
   * guards what was read).
   */
  async update<R>(keys: Bytes[], decide: Decide<R>): Promise<R> {
    const ks = keys.map((k) => checkKey(k, this.engine.limits));
    if (this.txn.depth === 0) return this.engine.update(ks, decide);
    const currents: Current[] = [];
    for (const k of ks) currents.push(this.currentOf(k, await this.visible(k)));
    const { changes, result, events } = await decide(currents, this.engine.clock.now());
    for (const change of changes) {
      const mk = mapKey(change.key);
      if (!ks.some((k) => k.equals(change.key))) throw new StoreError('INTERNAL', 'an update changes a key it did not read');
      if (change.kind === 'del') this.txn.put(mk, { kind: 'del' });
      else if (change.kind === 'expire') this.txn.put(mk, withExpiry(this.txn.find(mk), change.expiresAt));
      else {
        const size = change.value instanceof Uint8Array ? change.value.length : change.value.size;
        checkValueSize(size, this.engine.limits);
        const placed = await this.engine.placeValue(change.key, change.value, change.expiresAt, false);
        this.stage(change.key, placed, change.expiresAt, size, change.value instanceof Uint8Array ? Buffer.from(change.value) : undefined);
      }
    }
    if (events !== undefined) this.txn.noteEvents(events);
    return result;
  }

  /** FLUSHALL: every key gone, in one op (inside a transaction, at its COMMIT). */
  async flushAll(): Promise<void> {
    if (this.txn.depth > 0) this.txn.flush();
    else await this.engine.flush();
  }

  private currentOf(key: Buffer, visible: Visible | null): Current {
    const reader = this.engine.ports.reader;
    const state: KeyState | null = visible === null
      ? null
      : { address: visible.address, expiresAt: visible.expiresAt, size: valueLengthOf(visible.address, key.length), ...(visible.value ? { value: visible.value } : {}) };
    return {
      key,
      state,
      async value() {
        if (visible === null) return null;
        return visible.value ?? toBuffer(await reader.read(visible.address, key));
      },
      stream(start, length) {
        if (visible === null) throw new StoreError('INTERNAL', 'stream of a key that is not live');
        return reader.stream(visible.address, key, start, length);
      },
    };
  }

  async get(key: Bytes): Promise<Buffer | null> {
    const k = checkKey(key, this.engine.limits);
    const visible = await this.visible(k);
    if (visible === null) return null;
    if (visible.value !== undefined) return visible.value;
    return toBuffer(await this.engine.ports.reader.read(visible.address, k));
  }

  async getEach(keys: Bytes[], each: (value: Buffer | null) => Promise<void> | void): Promise<void> {
    const ks = keys.map((k) => checkKey(k, this.engine.limits));
    if (this.txn.depth > 0) {
      for (const k of ks) await each(await this.get(k));
      return;
    }
    const entries = await this.engine.lookupLiveMany(ks);
    for (const e of entries) await each(e === undefined ? null : toBuffer(await this.engine.read(e)));
  }

  async delete(...keys: Bytes[]): Promise<number> {
    const ks = keys.map((k) => checkKey(k, this.engine.limits));
    if (ks.length === 0) return 0;
    if (this.txn.depth > 0) {
      let existed = 0;
      for (const k of ks) {
        if ((await this.visible(k)) !== null) {
          existed += 1;
          this.emit([{ event: 'del', key: k }]);
        }
        this.txn.put(mapKey(k), { kind: 'del' });
      }
      return existed;
    }
    return this.engine.delete(ks);
  }

  async exists(key: Bytes): Promise<boolean> {
    return (await this.visible(checkKey(key, this.engine.limits))) !== null;
  }

  async pttl(key: Bytes): Promise<number> {
    const visible = await this.visible(checkKey(key, this.engine.limits));
    if (visible === null) return -2;
    if (visible.expiresAt === 0) return -1;
    return Math.max(0, visible.expiresAt - this.engine.clock.now());
  }

  async ttl(key: Bytes): Promise<number> {
    const ms = await this.pttl(key);
    return ms < 0 ? ms : Math.floor((ms + 500) / 1000);
  }

  async persist(key: Bytes): Promise<boolean> {
    const k = checkKey(key, this.engine.limits);
    const visible = await this.visible(k);
    if (visible === null || visible.expiresAt === 0) return false;
    const changed = await this.changeExpiry(k, 0);
    if (changed) this.emit([{ event: 'persist', key: k }]);
    return changed;
  }

  async expire(key: Bytes, ttlMs: number): Promise<boolean> {
    const k = checkKey(key, this.engine.limits);
    if (!Number.isSafeInteger(ttlMs)) throw new StoreError('BAD_ARGUMENT', `invalid expire time ${ttlMs}`);
    // As Redis: a TTL that is already past deletes the key.
    if (ttlMs <= 0) return (await this.delete(k)) > 0;
    const changed = await this.changeExpiry(k, this.engine.clock.now() + ttlMs);
    if (changed) this.emit([{ event: 'expire', key: k }]);
    return changed;
  }

  private async changeExpiry(k: Buffer, expiresAt: number): Promise<boolean> {
    if (this.txn.depth > 0) {
      if ((await this.visible(k)) === null) return false;
      this.txn.put(mapKey(k), withExpiry(this.txn.find(mapKey(k)), expiresAt));
      return true;
    }
    return this.engine.setExpiry(k, expiresAt);
  }

  async count(value: Bytes): Promise<number> {
    const target = toBuffer(value);
    let n = 0;
    for await (const [key, visible] of this.visibleEntries()) {
      if (visible.value !== undefined) {
        if (visible.value.equals(target)) n += 1;
        continue;
      }
      if (valueLengthOf(visible.address, key.length) !== target.length) continue;
      if (toBuffer(await this.engine.ports.reader.read(visible.address, key)).equals(target)) n += 1;
    }
    return n;
  }

  async keys(pattern: Bytes): Promise<Buffer[]> {
    const p = toBuffer(pattern);
    const out: Buffer[] = [];
    for await (const [key] of this.visibleEntries(p)) {
      if (out.length >= this.engine.limits.maxKeysReply) {
        throw new StoreError('BATCH_TOO_LARGE', `KEYS matched more than ${this.engine.limits.maxKeysReply} keys; use SCAN`);
      }
      out.push(key);
    }
    return out;
  }

  /** SCAN sees the committed store (a cursor cannot follow a private transaction). */
  async scan(cursor: string, options: ScanOptions = {}): Promise<ScanResult> {
    const c = Number(cursor);
    if (!Number.isSafeInteger(c) || c < 0) throw new StoreError('BAD_ARGUMENT', 'invalid cursor');
    const count = options.count ?? 10;
    if (!Number.isSafeInteger(count) || count < 1) throw new StoreError('BAD_ARGUMENT', 'COUNT must be positive');
    const match = options.match === undefined ? undefined : toBuffer(options.match);
    const page = await this.engine.ports.index.scan(c, Math.min(count, 100_000), match);
    return { cursor: String(page.cursor), keys: page.entries.map((e) => Buffer.from(e.key)) };
  }

  /** The live keys; inside a transaction, as it sees them (its own writes and FLUSHALL count). */
  async dbsize(): Promise<number> {
    if (this.txn.depth === 0) return this.engine.ports.index.dbsize();
    const flushed = this.txn.flushed;
    const keys = [...this.txn.pendingKeys()];
    let n = flushed ? 0 : await this.engine.ports.index.dbsize();
    const entries = flushed || keys.length === 0 ? [] : await this.engine.lookupLiveMany(keys.map(fromMapKey));
    const now = this.engine.clock.now();
    keys.forEach((mk, i) => {
      const committed = flushed ? undefined : entries[i];
      const live = pendingLive(this.txn.find(mk)!, now, committed);
      n += (live ? 1 : 0) - (committed !== undefined ? 1 : 0);
    });
    return n;
  }

  // ---- transactions ----------------------------------------------------------------------

  begin(): void {
    this.txn.begin();
  }

  async commit(): Promise<void> {
    const outcome = await this.commitWatching([]);
    if (outcome === 'conflict') {
      throw new StoreError('CONFLICT', 'a key this transaction read was changed by another client meanwhile; nothing was applied, run it again');
    }
  }

  /**
   * COMMIT, guarded also by `watched` (WATCH: each key's state when it was watched). 'watched':
   * a watched key changed; 'conflict': a key the transaction read changed; in both cases
   * nothing was applied. An inner level always merges ('ok').
   */
  async commitWatching(watchList: readonly Watched[]): Promise<'ok' | 'watched' | 'conflict'> {
    const watched = new Map(watchList.map((w) => [mapKey(toBuffer(w.key)), w.state] as const));
    const committed = this.txn.commit();
    if (committed === undefined) return 'ok';
    const watch = guardsOf(watched, GuardKind.Live);
    if (committed.writes.size === 0 && !committed.flushed) {
      // Nothing to write: the reads were consistent when made; only WATCH needs a look.
      return watch.length === 0 || (await this.stillAsWatched(watched)) ? 'ok' : 'watched';
    }
    const ops: Op[] = [...watch, ...guardsOf(committed.reads, GuardKind.Same, watched)];
    const placed = this.opsOf(committed, ops);
    const { results } = await this.engine.write(placed, ops);
    if (!guardsFailed(ops, results)) {
      this.engine.notify(committed.events);
      return 'ok';
    }
    return results.slice(0, watch.length).every((r) => r === 1) ? 'conflict' : 'watched';
  }

  /** The state of a key now, for WATCH (recorded, not part of any transaction). */
  async watchState(key: Bytes): Promise<KeyState | null> {
    const k = checkKey(key, this.engine.limits);
    const entry = await this.engine.lookupLive(k);
    return entry === undefined ? null : stateOf(k, entry);
  }

  /** True when every watched key is still as it was watched. */
  private async stillAsWatched(watched: ReadonlyMap<string, KeyState | null>): Promise<boolean> {
    for (const [mk, state] of watched) {
      const now = await this.watchState(fromMapKey(mk));
      if (!sameState(now, state)) return false;
    }
    return true;
  }

  rollback(): void {
    this.txn.rollback();
  }

  /** The ops of the outermost COMMIT appended to `ops`; answers the needles they name. */
  private opsOf(committed: Committed, ops: Op[]): Placed[] {
    const placed: Placed[] = [];
    if (committed.flushed) ops.push({ code: OpCode.Flush });
    for (const [mk, write] of committed.writes) {
      const key = fromMapKey(mk);
      if (write.kind === 'set') {
        placed.push(write.placed);
        ops.push({ code: OpCode.Set, key, address: write.placed.address, expiresAt: write.expiresAt });
      } else if (write.kind === 'del') {
        ops.push({ code: OpCode.Del, key });
      } else {
        ops.push({ code: OpCode.Expire, key, expiresAt: write.expiresAt });
      }
    }
    return placed;
  }

  // ---- blobs -----------------------------------------------------------------------------

  async setStream(key: Bytes, source: AsyncIterable<Uint8Array> | Readable, options: BlobStreamOptions): Promise<void> {
    const k = checkKey(key, this.engine.limits);
    if (options.size !== undefined) checkValueSize(options.size, this.engine.limits);
    const expiresAt = this.expiryOf(options);
    const metered = blobSource(source, this.engine.limits.maxValueSize, options.contentType);
    const value = options.size === undefined ? { size: null, source: metered.source } : { size: options.size, source: metered.source };
    if (this.txn.depth > 0) {
      const placed = await this.engine.placeValue(k, value, expiresAt, false, metered.meta);
      this.stage(k, placed, expiresAt, valueLengthOf(placed.address, k.length));
      this.emit(setEvents(k, expiresAt));
      return;
    }
    await this.engine.put(k, value, { expiresAt, meta: metered.meta });
    this.emit(setEvents(k, expiresAt));
  }

  async stat(key: Bytes): Promise<BlobInfo | null> {
    const k = checkKey(key, this.engine.limits);
    const visible = await this.visible(k);
    if (visible === null) return null;
    return { size: valueLengthOf(visible.address, k.length), expiresAt: visible.expiresAt };
  }

  async getStream(key: Bytes, range: ReadRange = {}): Promise<{ info: BlobInfo; body: AsyncIterable<Buffer> } | null> {
    const k = checkKey(key, this.engine.limits);
    const visible = await this.visible(k);
    if (visible === null) return null;
    const size = valueLengthOf(visible.address, k.length);
    const start = range.offset ?? 0;
    if (!Number.isSafeInteger(start) || start < 0 || start > size) {
      throw new StoreError('BAD_ARGUMENT', `offset ${start} is outside the value (${size} bytes)`);
    }
    const length = Math.min(range.length ?? size - start, size - start);
    const chunks = this.engine.ports.reader.stream(visible.address, k, start, length);
    return { info: { size, expiresAt: visible.expiresAt }, body: asBuffers(chunks) };
  }

  // ---- pub/sub ---------------------------------------------------------------------------

  publish(channel: Bytes, payload: Bytes, shard = false): Promise<number> {
    return this.engine.ports.broker.publish(toBuffer(channel), toBuffer(payload), shard);
  }

  async pubsubChannels(pattern?: Bytes, shard = false): Promise<Buffer[]> {
    const what = shard ? 'shardchannels' : 'channels';
    const names = (await this.engine.ports.broker.introspect({ what, ...(pattern === undefined ? {} : { pattern: toBuffer(pattern) }) })) as Uint8Array[];
    return names.map((n) => Buffer.from(n));
  }

  async pubsubNumsub(channels: Bytes[], shard = false): Promise<number[]> {
    if (channels.length === 0) return [];
    return (await this.engine.ports.broker.introspect({ what: shard ? 'shardnumsub' : 'numsub', channels: channels.map(toBuffer) })) as number[];
  }

  async pubsubNumpat(): Promise<number> {
    return (await this.engine.ports.broker.introspect({ what: 'numpat' })) as number;
  }

  async subscribe(channels: Bytes[], patterns: Bytes[] = []): Promise<Subscription> {
    const id = nextSubscriberId++;
    const broker = this.engine.ports.broker;
    const sub = new QueueSubscription(() => broker.unsubscribe(id));
    await broker.subscribe(id, channels.map(toBuffer), patterns.map(toBuffer), (d) =>
      sub.push({
        channel: Buffer.from(d.channel),
        payload: Buffer.from(d.payload),
        ...(d.pattern ? { pattern: Buffer.from(d.pattern) } : {}),
      }),
    );
    return sub;
  }

  // ---- helpers ---------------------------------------------------------------------------

  private expiryOf(options: SetOptions): number {
    if (options.ttlMs !== undefined && options.expiresAt !== undefined) {
      throw new StoreError('BAD_ARGUMENT', 'give ttlMs or expiresAt, not both');
    }
    if (options.ttlMs !== undefined) {
      if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs <= 0) {
        throw new StoreError('BAD_ARGUMENT', `invalid expire time ${options.ttlMs}`);
      }
      return this.engine.clock.now() + options.ttlMs;
    }
    if (options.expiresAt !== undefined) {
      if (!Number.isSafeInteger(options.expiresAt) || options.expiresAt < 0) {
        throw new StoreError('BAD_ARGUMENT', `invalid expiry ${options.expiresAt}`);
      }
      return options.expiresAt;
    }
    return 0;
  }

  /** A key as this session sees it: its pending write first, the committed store second. */
  private async visible(k: Buffer): Promise<Visible | null> {
    const now = this.engine.clock.now();
    const pending = this.txn.depth > 0 ? this.txn.find(mapKey(k)) : undefined;
    if (pending !== undefined) return resolvePending(pending, now, () => this.committed(k));
    const entry = await this.committed(k);
    return entry === undefined ? null : { address: entry.address, expiresAt: entry.expiresAt };
  }

  /** A key's live entry in the committed store; inside a transaction the read is recorded. */
  private async committed(k: Buffer): Promise<IndexEntry | undefined> {
    const entry = await this.engine.lookupLive(k);
    if (this.txn.depth > 0) this.txn.noteRead(mapKey(k), entry === undefined ? null : stateOf(k, entry));
    return entry;
  }

  /**
   * Every key this session sees, with its needle: the committed store page by page, with the
   * transaction's pending writes laid over it. `match` filters keys by a glob.
   */
  private async *visibleEntries(match?: Buffer): AsyncGenerator<[Buffer, Visible]> {
    const now = this.engine.clock.now();
    const overlay = this.txn.depth > 0 ? this.flattenPending() : new Map<string, PendingWrite>();
    // After a FLUSHALL in the transaction, the committed store is hidden: only the overlay.
    let cursor = this.txn.flushed ? -1 : 0;
    while (cursor >= 0) {
      const page = await this.engine.ports.index.scan(cursor, SCAN_PAGE, match);
      for (const entry of page.entries) {
        const key = Buffer.from(entry.key);
        const mk = mapKey(key);
        const pending = overlay.get(mk);
        if (pending === undefined) {
          if (isLive(entry.expiresAt, now)) yield [key, { address: entry.address, expiresAt: entry.expiresAt }];
          continue;
        }
        overlay.delete(mk);
        const visible = await resolvePending(pending, now, async () => entry);
        if (visible !== null) yield [key, visible];
      }
      cursor = page.cursor === 0 ? -1 : page.cursor;
    }
    // Keys set inside the transaction that the store does not have yet.
    for (const [mk, pending] of overlay) {
      const key = fromMapKey(mk);
      if (match !== undefined && !globMatch(match, key)) continue;
      const visible = await resolvePending(pending, now, () => this.engine.lookupLive(key));
      if (visible !== null) yield [key, visible];
    }
  }

  /** The newest pending write of every key across the open levels. */
  private flattenPending(): Map<string, PendingWrite> {
    const out = new Map<string, PendingWrite>();
    for (const mk of this.txn.pendingKeys()) {
      const write = this.txn.find(mk);
      if (write !== undefined) out.set(mk, write);
    }
    return out;
  }
}

/** Whether a pending write leaves its key live (`committed`: the key's live entry, if any). */
function pendingLive(pending: PendingWrite, now: number, committed: IndexEntry | undefined): boolean {
  if (pending.kind === 'del') return false;
  if (pending.kind === 'set') return isLive(pending.expiresAt, now);
  return committed !== undefined && isLive(pending.expiresAt, now);
}

async function resolvePending(
  pending: PendingWrite,
  now: number,
  committed: () => Promise<IndexEntry | undefined>,
): Promise<Visible | null> {
  if (pending.kind === 'del') return null;
  if (pending.kind === 'set') {
    if (!isLive(pending.expiresAt, now)) return null;
    return { address: pending.placed.address, expiresAt: pending.expiresAt, ...(pending.value ? { value: pending.value } : {}) };
  }
  const entry = await committed();
  if (entry === undefined || !isLive(pending.expiresAt, now)) return null;
  return { address: entry.address, expiresAt: pending.expiresAt };
}

async function* asBuffers(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

function stateOf(key: Uint8Array, entry: { address: NeedleAddress; expiresAt: number }): KeyState {
  return { address: entry.address, expiresAt: entry.expiresAt, size: valueLengthOf(entry.address, key.length) };
}

function sameState(a: KeyState | null, b: KeyState | null): boolean {
  if (a === null || b === null) return a === b;
  return a.address.volume === b.address.volume && a.address.offset === b.address.offset && a.expiresAt === b.expiresAt;
}

/**
 * A GUARD per key, holding when the key is still in the state given (`kind` Live for WATCH,
 * where an expiry is a change; Same for what a transaction read); keys in `skip` left out.
 */
function guardsOf(states: ReadonlyMap<string, KeyState | null>, kind: GuardKind, skip?: ReadonlyMap<string, unknown>): GuardOp[] {
  const out: GuardOp[] = [];
  for (const [mk, s] of states) {
    if (skip?.has(mk)) continue;
    const key = fromMapKey(mk);
    out.push(s === null
      ? { code: OpCode.Guard, key, kind: GuardKind.Absent, volume: 0, offset: 0, expiresAt: 0 }
      : { code: OpCode.Guard, key, kind, volume: s.address.volume, offset: s.address.offset, expiresAt: s.expiresAt });
  }
  return out;
}

/** A SET notifies `set`, and `expire` when it gave the key an expiry (as Redis' SET EX does). */
function setEvents(key: Uint8Array, expiresAt: number): KeyEvent[] {
  return expiresAt === 0 ? [{ event: 'set', key }] : [{ event: 'set', key }, { event: 'expire', key }];
}

/**
 * A stream value as the engine takes it: bounded by the value size limit (a stream without a
 * declared size is checked as it goes), and, with a content type, with a metadata section that
 * holds it and the value's SHA-256, sealed as an HTTP PUT's is (upload_digest.ts).
 */
function blobSource(source: AsyncIterable<Uint8Array>, maxValueSize: number, contentType: string | undefined): { source: AsyncIterable<Uint8Array>; meta?: MetaSource } {
  let digest: UploadDigest | null = null;
  let meta: MetaSource | undefined;
  if (contentType !== undefined) {
    const parsed = metaFromHeaders([['content-type', contentType]]);
    if (!parsed.ok) throw new StoreError('BAD_ARGUMENT', parsed.message);
    digest = new UploadDigest(NO_EXPECTED_DIGESTS);
    meta = digest.metaSource(parsed.value);
  }
  async function* metered(): AsyncGenerator<Uint8Array> {
    let total = 0;
    for await (const chunk of source) {
      total += chunk.length;
      if (total > maxValueSize) throw new StoreError('VALUE_TOO_LARGE', `value past ${maxValueSize} bytes`);
      digest?.update(chunk);
      yield chunk;
    }
  }
  return meta === undefined ? { source: metered() } : { source: metered(), meta };
}
