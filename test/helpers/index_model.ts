// The hash index's op semantics as a plain Map, written independently of src/storage/hash_index.ts
// (docs/formats.md, the WAL's op table): what test/hash_index and test/volume_usage compare the
// index against, record by record. Snapshot chunks, guards, vacuum's MOVE_IF and RETIRE, the
// retired volumes' refusal and the live bytes per volume.
import { alignUp } from '../../src/storage/volume_format.js';
import { GuardKind, OpCode, RESULT_VOLUME_RETIRED, SetFlag, isLive, opNeedle, type GuardOp, type Op, type WalRecord } from '../../src/storage/types.js';

export interface MEntry {
  volume: number;
  offset: number;
  length: number;
  expiresAt: number;
}

export class IndexModel {
  map = new Map<string, MEntry>();
  retired = new Set<number>();
  applied = 0;
  loading = -1;

  apply(r: WalRecord): number[] {
    if (r.kind === 1) {
      if (r.lsn !== this.loading) {
        if (r.lsn <= (this.loading >= 0 ? this.loading : this.applied)) return [];
        this.map.clear();
        this.loading = r.lsn;
      }
      return this.applyOps(r);
    }
    if (this.loading >= 0) {
      this.applied = this.loading;
      this.loading = -1;
    }
    if (r.lsn <= this.applied) return [];
    this.applied = r.lsn;
    return this.applyOps(r);
  }

  /** The brute-force sum: every present entry's aligned length, by volume. */
  usage(): [number, number][] {
    const sums = new Map<number, number>();
    for (const e of this.map.values()) sums.set(e.volume, (sums.get(e.volume) ?? 0) + alignUp(e.length));
    return [...sums].sort((a, b) => a[0] - b[0]);
  }

  private applyOps(r: WalRecord): number[] {
    // A needle into a retired volume (or one this record retires): nothing of the record applies.
    const retiring = r.ops.flatMap((op) => (op.code === OpCode.Retire ? [op.volume] : []));
    const refused = r.ops.map((op) => {
      const a = opNeedle(op);
      return a !== undefined && (this.retired.has(a.volume) || retiring.includes(a.volume));
    });
    if (refused.includes(true)) return refused.map((x) => (x ? RESULT_VOLUME_RETIRED : 0));
    const guards = r.ops.map((op) => (op.code === OpCode.Guard ? (this.holds(op, r.timeMs) ? 1 : 0) : -1));
    if (guards.includes(0)) return guards.map((g) => Math.max(g, 0));
    return r.ops.map((op, i) => (op.code === OpCode.Guard ? guards[i]! : this.op(op, r.timeMs)));
  }

  private holds(op: GuardOp, now: number): boolean {
    const e = this.map.get(Buffer.from(op.key).toString('latin1'));
    const live = e !== undefined && isLive(e.expiresAt, now);
    if (op.kind === GuardKind.Absent) return !live;
    if (op.kind === GuardKind.Live && !live) return false;
    const same = e !== undefined && e.volume === op.volume && e.offset === op.offset && e.expiresAt === op.expiresAt;
    return same || (op.kind === GuardKind.Same && !live && !isLive(op.expiresAt, now));
  }

  private op(op: Op, now: number): number {
    if (op.code === OpCode.Flush) {
      this.map.clear();
      return 1;
    }
    if (op.code === OpCode.Retire) {
      if ([...this.map.values()].some((e) => e.volume === op.volume)) return 0;
      this.retired.add(op.volume);
      return 1;
    }
    const key = Buffer.from(op.key).toString('latin1');
    const e = this.map.get(key);
    const live = e !== undefined && isLive(e.expiresAt, now);
    const at = (a: { volume: number; offset: number; length: number }, expiresAt: number): MEntry => ({ volume: a.volume, offset: a.offset, length: a.length, expiresAt });
    switch (op.code) {
      case OpCode.Set:
        this.map.set(key, at(op.address, op.expiresAt));
        return 1;
      case OpCode.Del:
        this.map.delete(key);
        return live ? 1 : 0;
      case OpCode.Expire:
        if (!live) return 0;
        this.map.set(key, { ...e, expiresAt: op.expiresAt });
        return 1;
      case OpCode.DelIf:
        if (e === undefined || e.volume !== op.volume || e.offset !== op.offset) return 0;
        this.map.delete(key);
        return 1;
      case OpCode.SetIf: {
        if ((op.flags & SetFlag.Nx) !== 0 && live) return 0;
        if ((op.flags & SetFlag.Xx) !== 0 && !live) return 0;
        if ((op.flags & SetFlag.IfAt) !== 0 && (!live || e!.volume !== op.expectVolume || e!.offset !== op.expectOffset)) return 0;
        const keep = (op.flags & SetFlag.KeepTtl) !== 0 && live;
        this.map.set(key, at(op.address, keep ? e!.expiresAt : op.expiresAt));
        return 1;
      }
      case OpCode.MoveIf:
        if (e === undefined || e.volume !== op.fromVolume || e.offset !== op.fromOffset) return 0;
        this.map.set(key, at(op.address, e.expiresAt));
        return 1;
      case OpCode.Guard:
        return 1;
    }
  }
}
