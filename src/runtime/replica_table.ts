// The master's replicas as every front-end thread sees them (docs/replica.md, "What users look
// at"): a replica streams from ONE TCP thread (its connection's), but WAIT, min-replicas-to-write,
// INFO replication, ROLE, /v1/status and /metrics are answered by any thread, HTTP ones too.
// So each TCP thread writes its replicas into its own rows of one SharedArrayBuffer, made by
// main and passed to every front end, and any thread reads all rows. No messages per ACK.
//
// Layout: HEADER words first: min-replicas-to-write and min-replicas-max-lag (seconds), which
// CONFIG SET on any TCP thread changes for every thread at once; then BigInt64 rows of FIELDS
// words; thread t owns rows [t * ROWS_PER_THREAD, (t + 1) *
// ROWS_PER_THREAD). Fields: state (0 free, 1 sync, 2 online), acknowledged LSN, when it was
// acknowledged (ms), the replica's listening port, its IPv4 address (0 when not IPv4).
// Invariants: a row has one writer (its thread); every word is read and written with Atomics,
// so a reader sees each field whole (a row may mix two updates: a reader never needs more than
// "this replica acknowledged at least this LSN at about this time").
export const ROWS_PER_THREAD = 64;
const HEADER = 8;
const MIN_TO_WRITE = 0;
const MAX_LAG = 1;
const FIELDS = 5;
const STATE = 0;
const ACKED = 1;
const ACKED_AT = 2;
const PORT = 3;
const IPV4 = 4;

export type ReplicaRowState = 'sync' | 'online';

export interface ReplicaRow {
  state: ReplicaRowState;
  ackedLsn: number;
  ackedAt: number;
  port: number;
  ip: string;
}

export function createReplicaTable(threads: number): SharedArrayBuffer {
  const memory = new SharedArrayBuffer((HEADER + Math.max(1, threads) * ROWS_PER_THREAD * FIELDS) * 8);
  // Redis' default min-replicas-max-lag is 10 s (min-replicas-to-write 0: the check is off).
  new BigInt64Array(memory)[MAX_LAG] = 10n;
  return memory;
}

export class ReplicaTable {
  private readonly words: BigInt64Array;
  private readonly rows: number;

  constructor(memory: SharedArrayBuffer) {
    this.words = new BigInt64Array(memory);
    this.rows = Math.floor((this.words.length - HEADER) / FIELDS);
  }

  /** min-replicas-to-write (0: writes never wait for replicas). */
  get minReplicasToWrite(): number {
    return Number(Atomics.load(this.words, MIN_TO_WRITE));
  }

  set minReplicasToWrite(n: number) {
    Atomics.store(this.words, MIN_TO_WRITE, BigInt(n));
  }

  /** min-replicas-max-lag, seconds: a replica is good while its last ACK is this recent. */
  get minReplicasMaxLag(): number {
    return Number(Atomics.load(this.words, MAX_LAG));
  }

  set minReplicasMaxLag(n: number) {
    Atomics.store(this.words, MAX_LAG, BigInt(n));
  }

  /**
   * Redis' min-replicas check: null when a write may go on, else the refusal. A replica's
   * ACK comes at least once a second, so max-lag 10 s means "heard from in the last 10 s".
   */
  writeRefusal(nowMs: number): string | null {
    const min = this.minReplicasToWrite;
    if (min <= 0) return null;
    return this.countGood(nowMs, this.minReplicasMaxLag * 1000) >= min ? null : 'NOREPLICAS Not enough good replicas to write.';
  }

  /** A free row of thread `thread`, marked in use (sync); null when all 64 are taken. */
  claim(thread: number, ip: string, port: number): number | null {
    for (let r = thread * ROWS_PER_THREAD; r < Math.min(this.rows, (thread + 1) * ROWS_PER_THREAD); r++) {
      if (this.get(r, STATE) !== 0) continue;
      this.set(r, ACKED, 0);
      this.set(r, ACKED_AT, 0);
      this.set(r, PORT, port);
      this.set(r, IPV4, ipv4ToNumber(ip));
      this.set(r, STATE, 1);
      return r;
    }
    return null;
  }

  update(row: number, fields: { ackedLsn?: number; ackedAt?: number; online?: boolean }): void {
    if (fields.ackedLsn !== undefined) this.set(row, ACKED, fields.ackedLsn);
    if (fields.ackedAt !== undefined) this.set(row, ACKED_AT, fields.ackedAt);
    if (fields.online === true) this.set(row, STATE, 2);
  }

  release(row: number): void {
    this.set(row, STATE, 0);
  }

  /** Every replica of every thread, in row order. */
  list(): ReplicaRow[] {
    const out: ReplicaRow[] = [];
    for (let r = 0; r < this.rows; r++) {
      const state = this.get(r, STATE);
      if (state === 0) continue;
      out.push({
        state: state === 2 ? 'online' : 'sync',
        ackedLsn: this.get(r, ACKED),
        ackedAt: this.get(r, ACKED_AT),
        port: this.get(r, PORT),
        ip: numberToIpv4(this.get(r, IPV4)),
      });
    }
    return out;
  }

  /** Replicas that acknowledged `lsn` or later. */
  countAcked(lsn: number): number {
    return this.list().filter((r) => r.ackedLsn >= lsn).length;
  }

  /** Replicas whose last acknowledgement is at most `maxLagMs` old (Redis' "good" replicas). */
  countGood(nowMs: number, maxLagMs: number): number {
    return this.list().filter((r) => r.state === 'online' && nowMs - r.ackedAt <= maxLagMs).length;
  }

  private get(row: number, field: number): number {
    return Number(Atomics.load(this.words, HEADER + row * FIELDS + field));
  }

  private set(row: number, field: number, value: number): void {
    Atomics.store(this.words, HEADER + row * FIELDS + field, BigInt(Math.trunc(value)));
  }
}

function ipv4ToNumber(ip: string): number {
  const m = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (m === null) return 0;
  return ((Number(m[1]) * 256 + Number(m[2])) * 256 + Number(m[3])) * 256 + Number(m[4]);
}

function numberToIpv4(n: number): string {
  if (n === 0) return '?';
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}
