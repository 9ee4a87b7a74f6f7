// The ports implemented directly over the storage objects, in the calling thread. This is the
// engine of the crash property tests (with a simulated Fs) and of the index bench: the same
// database logic as production, minus the threads. Group commit still happens: every commit
// asked for in the same turn goes into one WAL write and one fdatasync.
import type { Clock } from '../runtime/clock.js';
import type { DriveVolumes } from '../storage/drive_volumes.js';
import type { HashIndex } from '../storage/hash_index.js';
import type { VolumeReader } from '../storage/volume_reader.js';
import type { WalWriter } from '../storage/wal_writer.js';
import { WalCompaction } from '../storage/wal_compaction.js';
import type { Fs } from '../runtime/fs.js';
import { OpCode, type IndexEntry, type NeedleAddress, type Op, type SetOp } from '../storage/types.js';
import type { SyncPolicy, VolumeInfo } from './api.js';
import { BrokerCore } from './broker_core.js';
import type {
  AppendRequest,
  BrokerPort,
  CommitPort,
  CommitResult,
  Delivery,
  IndexPort,
  IndexStats,
  Lookup,
  ReadPort,
  VolumePort,
  WalAdminPort,
} from './ports.js';
import { StoreError } from '../runtime/errors.js';

export class LocalVolumes implements VolumePort {
  constructor(private readonly drives: DriveVolumes[], private readonly dirs: string[], private readonly policy: SyncPolicy) {}

  get driveCount(): number {
    return this.drives.length;
  }

  async append(drive: number, needles: AppendRequest[], sync: boolean): Promise<NeedleAddress[]> {
    const d = this.drive(drive);
    const out = needles.map((n) => d.append(n.key, n.value, n.expiresAt, n.flags ?? 0));
    if (sync && this.policy === 'always') d.sync();
    return out;
  }

  async appendStream(drive: number, key: Uint8Array, size: number, expiresAt: number, source: AsyncIterable<Uint8Array>): Promise<NeedleAddress> {
    const d = this.drive(drive);
    const stream = d.reserve(key, size, expiresAt);
    try {
      for await (const chunk of source) stream.write(chunk);
      const address = stream.finish();
      if (this.policy === 'always') d.sync();
      return address;
    } catch (err) {
      stream.abort();
      throw err;
    }
  }

  async syncDrive(drive: number): Promise<void> {
    if (this.policy === 'always') this.drive(drive).sync();
  }

  async list(): Promise<VolumeInfo[]> {
    return this.drives.flatMap((d, slot) => d.list().map((v) => ({ id: v.id, drive: this.dirs[slot]!, sizeBytes: v.sizeBytes })));
  }

  private drive(n: number): DriveVolumes {
    const d = this.drives[n];
    if (d === undefined) throw new StoreError('BAD_ARGUMENT', `no drive ${n}`);
    return d;
  }
}

/** WAL then index, group-committed per turn. */
export class LocalCommit implements CommitPort {
  private queue: { ops: Op[]; resolve: (r: CommitResult) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  constructor(private readonly wal: WalWriter, private readonly index: HashIndex, private readonly clock: Clock) {}

  commit(ops: Op[]): Promise<CommitResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    const timeMs = this.clock.now();
    // A fenced index cannot apply what the WAL would make durable: refuse before the WAL, so a
    // write answered with an error never takes effect (a reopen recovers the index).
    const fenced = this.index.fenced;
    if (fenced !== undefined) {
      for (const b of batch) b.reject(fenced);
      return;
    }
    let records;
    try {
      records = this.wal.commit(batch.map((b) => ({ ops: b.ops, timeMs })));
    } catch (err) {
      for (const b of batch) b.reject(err);
      return;
    }
    records.forEach((record, i) => {
      try {
        batch[i]!.resolve({ lsn: record.lsn, results: this.index.apply(record) });
      } catch (err) {
        batch[i]!.reject(err);
      }
    });
  }
}

export class LocalIndex implements IndexPort {
  constructor(private readonly index: HashIndex, private readonly clock: Clock) {}

  async lookup(key: Uint8Array): Promise<Lookup> {
    const now = this.clock.now();
    const entry = this.index.get(key, now);
    if (entry !== undefined) return { entry };
    const raw = this.index.getRaw(key);
    return raw === undefined ? {} : { expired: { volume: raw.address.volume, offset: raw.address.offset } };
  }

  async lookupMany(keys: Uint8Array[]): Promise<Lookup[]> {
    return Promise.all(keys.map((k) => this.lookup(k)));
  }

  async scan(cursor: number, count: number, match?: Uint8Array): Promise<{ cursor: number; entries: IndexEntry[] }> {
    return this.index.scan(cursor, count, this.clock.now(), match);
  }

  async dbsize(): Promise<number> {
    return this.index.liveCount;
  }

  async expiredSlice(maxBuckets: number): Promise<{ key: Uint8Array; volume: number; offset: number }[]> {
    return this.index.expiredSlice(this.clock.now(), maxBuckets);
  }

  async checkpoint(): Promise<number> {
    this.index.checkpoint();
    return this.index.durableLsn;
  }

  async rebuild(): Promise<number> {
    if (!this.index.rebuilding) this.index.startRebuild();
    while (!this.index.rebuildStep(4096)) {
      // In-process: run the copy to the end; the actor interleaves it with requests instead.
    }
    this.index.checkpoint();
    return this.index.durableLsn;
  }

  async stats(): Promise<IndexStats> {
    const i = this.index;
    return {
      liveCount: i.liveCount,
      bucketCount: i.bucketCount,
      entryCount: i.entryCount,
      appliedLsn: i.appliedLsn,
      durableLsn: i.durableLsn,
      rebuilding: i.rebuilding,
    };
  }
}

/** A pull source for WalCompaction fed chunk by chunk by the engine. */
export class ChunkFeed implements Iterable<SetOp> {
  private readonly queue: SetOp[] = [];
  private done = false;

  push(entries: IndexEntry[]): void {
    for (const e of entries) this.queue.push({ code: OpCode.Set, key: e.key, address: e.address, expiresAt: e.expiresAt });
  }

  end(): void {
    this.done = true;
  }

  get available(): number {
    return this.queue.length;
  }

  *[Symbol.iterator](): Iterator<SetOp> {
    for (;;) {
      const op = this.queue.shift();
      if (op !== undefined) {
        yield op;
        continue;
      }
      if (this.done) return;
      // The compaction asked for more than was fed: a programming error in the driver.
      throw new StoreError('INTERNAL', 'WAL compaction read past the fed snapshot');
    }
  }
}

/** Drives a WalCompaction from engine calls: begin, chunks, finish. */
export class WalCompactionDriver {
  private compaction: WalCompaction | null = null;
  private feed: ChunkFeed | null = null;

  constructor(private readonly fs: Fs, private readonly walPath: string, private readonly clock: Clock) {}

  begin(snapshotLsn: number): void {
    if (this.compaction !== null) throw new StoreError('BAD_ARGUMENT', 'a WAL compaction is already running');
    this.feed = new ChunkFeed();
    this.compaction = new WalCompaction(this.fs, this.walPath, snapshotLsn, this.feed, this.clock.now());
  }

  chunk(entries: IndexEntry[]): void {
    const { compaction, feed } = this.running();
    feed.push(entries);
    if (feed.available > 0) compaction.step(feed.available);
  }

  finish(wal: WalWriter): void {
    const { compaction, feed } = this.running();
    feed.end();
    while (!compaction.step(4096)) {
      // drain what is left of the snapshot
    }
    compaction.finish(wal);
    this.compaction = null;
    this.feed = null;
  }

  abort(): void {
    this.compaction?.abort();
    this.compaction = null;
    this.feed = null;
  }

  private running(): { compaction: WalCompaction; feed: ChunkFeed } {
    if (this.compaction === null || this.feed === null) throw new StoreError('BAD_ARGUMENT', 'no WAL compaction is running');
    return { compaction: this.compaction, feed: this.feed };
  }
}

export class LocalWalAdmin implements WalAdminPort {
  private readonly driver: WalCompactionDriver;

  constructor(fs: Fs, walPath: string, private readonly wal: WalWriter, clock: Clock) {
    this.driver = new WalCompactionDriver(fs, walPath, clock);
  }

  async compactBegin(snapshotLsn: number): Promise<void> {
    this.driver.begin(snapshotLsn);
  }

  async compactChunk(entries: IndexEntry[]): Promise<void> {
    this.driver.chunk(entries);
  }

  async compactFinish(): Promise<void> {
    this.driver.finish(this.wal);
  }

  async compactAbort(): Promise<void> {
    this.driver.abort();
  }

  async lastLsn(): Promise<number> {
    return this.wal.lastLsn;
  }
}

export class LocalReader implements ReadPort {
  constructor(private readonly reader: VolumeReader) {}

  async readValue(address: NeedleAddress, keyLength: number, start: number, length: number): Promise<Uint8Array> {
    return this.reader.readValue(address, keyLength, start, length);
  }

  async readVerified(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array> {
    return readVerifiedValue(this.reader, address, key);
  }

  async *readChunks(address: NeedleAddress, keyLength: number, start: number, length: number): AsyncIterable<Uint8Array> {
    yield* this.reader.readChunks(address, keyLength, start, length);
  }
}

/** Reads a whole needle, checks both CRCs and that it is the key's own needle. */
export function readVerifiedValue(reader: VolumeReader, address: NeedleAddress, key: Uint8Array): Uint8Array {
  const needle = reader.readNeedle(address);
  if (!sameBytes(needle.key, key)) {
    throw new StoreError('CORRUPT', `needle at volume ${address.volume} offset ${address.offset} holds another key`);
  }
  return needle.value;
}

export class LocalBroker implements BrokerPort {
  private readonly core = new BrokerCore();
  private readonly sinks = new Map<number, (d: Delivery) => void>();

  async publish(channel: Uint8Array, payload: Uint8Array): Promise<number> {
    const deliveries = this.core.publish(channel, payload);
    for (const d of deliveries) {
      const sink = this.sinks.get(d.subscriber);
      if (sink !== undefined) queueMicrotask(() => sink(d));
    }
    return deliveries.length;
  }

  async subscribe(subscriber: number, channels: Uint8Array[], patterns: Uint8Array[], deliver: (d: Delivery) => void): Promise<void> {
    this.core.subscribe(subscriber, channels, patterns);
    this.sinks.set(subscriber, deliver);
  }

  async unsubscribe(subscriber: number, channels?: Uint8Array[], patterns?: Uint8Array[]): Promise<void> {
    if (this.core.unsubscribe(subscriber, channels, patterns) === 0) this.sinks.delete(subscriber);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
