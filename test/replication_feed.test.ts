// The WAL committer's replication feed on its own (src/actors/replication_feed.ts): no thread,
// no actor; a real WAL file written by WalWriter, fake sinks that record what they are sent.
// Followers get every record from their `from`, in order, once; history then live with no seam;
// at most `window` batches unacknowledged; a follower too far behind is dropped with a reason;
// followers of a sink that restarted are forgotten; the invariants hold after every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../src/runtime/clock.js';
import { NodeFs } from '../src/runtime/fs.js';
import { OpCode } from '../src/storage/types.js';
import { WalWriter } from '../src/storage/wal_writer.js';
import { WalMsg, type WalRecordsPush } from '../src/protocol/wal_protocol.js';
import { ReplicationFeed, type FollowerSink } from '../src/actors/replication_feed.js';

class FakeSink implements FollowerSink {
  connected = true;
  readonly sent: WalRecordsPush[] = [];
  private rewire: (() => void)[] = [];
  send(msg: WalRecordsPush): void {
    this.sent.push(msg);
  }
  onRewire(listener: () => void): void {
    this.rewire.push(listener);
  }
  restart(): void {
    for (const l of this.rewire) l();
  }
  lsns(): number[] {
    return this.sent.flatMap((m) => m.records.map((r) => r.lsn));
  }
}

function setup(): { feed: ReplicationFeed; wal: WalWriter; sink: FakeSink; pumps: { n: number }; commit(n: number, keyBytes?: number): ReturnType<WalWriter['commit']>; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'brise-feed-'));
  const fs = new NodeFs();
  const walPath = join(dir, 'wal.log');
  const wal = WalWriter.open(fs, walPath, { sync: 'none' });
  const sink = new FakeSink();
  const pumps = { n: 0 };
  const feed = new ReplicationFeed({ fs, clock: new ManualClock(), walPath, wal, sinkOf: () => sink, schedulePump: () => void pumps.n++ });
  let k = 0;
  const commit = (n: number, keyBytes = 8) =>
    wal.commit(Array.from({ length: n }, () => ({ ops: [{ code: OpCode.Del, key: Buffer.alloc(keyBytes, 97 + (k++ % 26)) }], timeMs: 1 })));
  return { feed, wal, sink, pumps, commit, done: () => { wal.close(); rmSync(dir, { recursive: true, force: true }); } };
}

/** Pumps history until nothing is left to read (acknowledging every batch as it comes). */
function drain(feed: ReplicationFeed, sink: FakeSink, from: string, id: number): void {
  for (let i = 0; i < 1000 && sink.sent.length < 10_000; i++) {
    const before = sink.sent.length;
    feed.pump();
    feed.invariants();
    const last = sink.sent.at(-1);
    if (last !== undefined) feed.ack(from, id, last.seq);
    if (sink.sent.length === before) return;
  }
}

test('history then live, every record once and in order, from the LSN asked', () => {
  const { feed, sink, commit, done } = setup();
  try {
    commit(10);
    const reply = feed.follow('fe', 1, 4, undefined);
    assert.deepEqual(reply, { lastLsn: 10, snapshotLsn: 0, from: 4 });
    drain(feed, sink, 'fe', 1);
    assert.deepEqual(sink.lsns(), [4, 5, 6, 7, 8, 9, 10]);
    feed.pushLive(commit(3));
    feed.invariants();
    assert.deepEqual(sink.lsns(), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    assert.ok(sink.sent.every((m, i) => m.seq === i + 1 && m.t === WalMsg.Records));
  } finally {
    done();
  }
});

test('at most `window` batches unacknowledged; an ack opens the window again', () => {
  const { feed, sink, commit, done } = setup();
  try {
    feed.follow('fe', 1, -1, { window: 2 }); // live only
    for (let i = 0; i < 5; i++) feed.pushLive(commit(1));
    feed.invariants();
    assert.equal(sink.sent.length, 2, 'two batches out, the rest queued');
    feed.ack('fe', 1, 2);
    feed.invariants();
    assert.equal(sink.sent.length, 3, 'what queued meanwhile goes as one batch');
    assert.deepEqual(sink.lsns(), [1, 2, 3, 4, 5]);
  } finally {
    done();
  }
});

test('a live follower that lags past its bytes is dropped, told why, and forgotten', () => {
  const { feed, sink, commit, done } = setup();
  try {
    feed.follow('fe', 1, -1, { window: 1, maxLagBytes: 2048 });
    for (let i = 0; i < 40; i++) feed.pushLive(commit(1, 100));
    feed.invariants();
    const last = sink.sent.at(-1)!;
    assert.equal(last.error?.code, 'QUEUE_FULL');
    assert.match(last.error!.message, /fell more than 2048 bytes behind/);
    assert.equal(feed.size, 0);
    assert.equal(feed.dropped, 1);
  } finally {
    done();
  }
});

test('followers of a sink that restarted are forgotten; an unknown ack is ignored', () => {
  const { feed, sink, commit, done } = setup();
  try {
    commit(2);
    feed.follow('fe', 1, 1, undefined);
    feed.follow('fe', 2, -1, undefined);
    assert.equal(feed.size, 2);
    sink.restart();
    feed.invariants();
    assert.equal(feed.size, 0);
    feed.ack('fe', 1, 99);
    assert.equal(feed.unfollow('fe', 2), false);
    assert.throws(() => feed.follow('fe', 3, 99, undefined), /past the end of the WAL/);
  } finally {
    done();
  }
});
