// The ReadPort of replicated volume groups: the local member first (DriveReader), then each
// remote member of the needle's group through its link actor, on any failure of the one before
// (a missing file, a damaged needle, a server down, a cut answer). Every byte handed out is
// checked as the local path checks it: the header (lengths, CRC, the key's own needle) before the
// first byte, the needle CRC before the last byte of a whole value; so a member's damage or a
// byte flipped on the wire never reaches a client, it sends the read to the next member.
// A read that must go remote is hedged: when the member asked first has not answered within its
// usual time (the p99 of its last reads), the next member is asked too, and the first checked
// answer wins (Dean and Barroso's "tail at scale"): a slow or stalled server costs a little
// more than its usual latency, not a timeout.
// Owns: the set of local needles found bad (read from a remote member first from then on; the
// scrub and the repair of issue 13 mend them), bounded; the latencies of each member's reads.
import { Channel } from '../runtime/channel.js';
import { sameBytes } from '../runtime/bytes.js';
import { StoreError } from '../runtime/errors.js';
import type { Peer } from '../runtime/peer.js';
import { crc32 } from '../storage/checksum.js';
import type { NeedleAddress } from '../storage/types.js';
import { NEEDLE_HEADER_SIZE, NEEDLE_TRAILER_SIZE, decodeNeedleHeader, decodeTrailer, groupOfVolume } from '../storage/volume_format.js';
import { LinkMsg, type LinkReplies, type LinkRequest } from '../protocol/link_protocol.js';
import type { ReadPort } from './ports.js';
import { serverLinks } from '../protocol/store_actors.js';

/** Bytes asked of a remote member per request when a value streams. */
const PIECE = 1024 * 1024;
/** Local needles remembered as bad (oldest forgotten first). */
const MAX_BAD = 10_000;
/** A remote read is bounded by the link's no-progress timeout; this only catches a dead link. */
const READ_TIMEOUT_MS = 120_000;

type Link = Channel<LinkRequest, LinkReplies>;

export interface FailoverCounts {
  /** Reads served by a remote member because the one before failed. */
  failovers: number;
  /** Failures seen, local or remote. */
  failures: number;
  /** Reads for which a second member was asked because the first was slow. */
  hedges: number;
}

/** Latencies kept per member for its p99. */
const LATENCY_SAMPLES = 256;
/** Until a member has this many samples, its hedge waits HEDGE_DEFAULT_MS. */
const MIN_SAMPLES = 16;
const HEDGE_DEFAULT_MS = 50;
/** Never hedge sooner: below this, a second request only adds load. */
const HEDGE_FLOOR_MS = 2;

/** The last latencies of one member's reads, and their p99. */
class Latencies {
  private readonly ms: number[] = [];
  private next = 0;

  add(ms: number): void {
    if (this.ms.length < LATENCY_SAMPLES) this.ms.push(ms);
    else this.ms[this.next++ % LATENCY_SAMPLES] = ms;
  }

  /** How long to wait for this member before asking the next. */
  hedgeAfter(): number {
    if (this.ms.length < MIN_SAMPLES) return HEDGE_DEFAULT_MS;
    const sorted = [...this.ms].sort((a, b) => a - b);
    return Math.max(HEDGE_FLOOR_MS, sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!);
  }
}

export class GroupReader implements ReadPort {
  private readonly links = new Map<number, Link[]>();
  private readonly bad = new Set<string>();
  private readonly latency = new Map<Link, Latencies>();
  readonly counts: FailoverCounts = { failovers: 0, failures: 0, hedges: 0 };

  /** `remotes`: each group's remote members, as the peers of their link actors, in order. */
  constructor(
    private readonly local: ReadPort,
    remotes: ReadonlyMap<number, readonly Peer[]>,
  ) {
    for (const [group, peers] of remotes) this.links.set(group, peers.map((p) => new Channel(p)));
  }

  async read(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array> {
    return (await this.whole(address, key, () => this.local.read(address, key))).value;
  }

  async meta(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array> {
    const metaLength = address.meta ?? 0;
    if (metaLength === 0) return new Uint8Array(0);
    const remotes = this.remotesOf(address);
    if (!this.isBad(address) || remotes.length === 0) {
      try {
        return await this.local.meta(address, key);
      } catch (err) {
        if (remotes.length === 0) throw err;
        this.markBad(address);
      }
    }
    // The head (checked) and the metadata section only: never the value for a HEAD.
    const end = address.length - NEEDLE_TRAILER_SIZE;
    const { value } = await this.hedged(remotes, async (link) => {
      checkedHead(await this.fetch(link, address, 0, NEEDLE_HEADER_SIZE + key.length), address, key);
      return this.fetch(link, address, end - metaLength, end);
    });
    this.counts.failovers += 1;
    return value;
  }

  readNow(address: NeedleAddress, key: Uint8Array, scratch?: Uint8Array): { value: Uint8Array; meta: Uint8Array } | null {
    if (this.isBad(address) || this.local.readNow === undefined) return null;
    try {
      return this.local.readNow(address, key, scratch);
    } catch {
      this.markBad(address);
      return null; // the asynchronous read goes to a remote member
    }
  }

  async *stream(address: NeedleAddress, key: Uint8Array, start: number, length: number, buf?: Uint8Array): AsyncIterableIterator<Uint8Array> {
    const remotes = this.remotesOf(address);
    if (remotes.length === 0) {
      yield* this.local.stream(address, key, start, length, buf);
      return;
    }
    let sent = 0;
    if (!this.isBad(address)) {
      try {
        for await (const chunk of this.local.stream(address, key, start, length, buf)) {
          sent += chunk.length;
          yield chunk;
        }
        return;
      } catch (err) {
        this.markBad(address);
        // Bytes already left: the answer cannot be mended, it is cut (the client retries, and
        // this needle is read from a remote member from now on).
        if (sent > 0) throw err;
      }
    }
    yield* this.remoteStream(remotes, address, key, start, length);
  }

  /** The whole needle, checked: local first, then each remote member. */
  private async whole(address: NeedleAddress, key: Uint8Array, local: () => Promise<{ value: Uint8Array; meta: Uint8Array } | Uint8Array>): Promise<{ value: Uint8Array; meta: Uint8Array }> {
    let last: unknown = null;
    if (!this.isBad(address)) {
      try {
        const got = await local();
        return got instanceof Uint8Array ? { value: got, meta: new Uint8Array(0) } : got;
      } catch (err) {
        if (this.remotesOf(address).length === 0) throw err;
        this.markBad(address);
        last = err;
      }
    }
    const remotes = this.remotesOf(address);
    if (remotes.length === 0) throw last ?? new StoreError('NOT_FOUND', `volume ${address.volume}: no member to read from`);
    const { value } = await this.hedged(remotes, async (link) => checkedNeedle(await this.fetch(link, address, 0, address.length), address, key));
    this.counts.failovers += 1;
    return value;
  }

  /**
   * `read` on the members in order, the next one started when the one before fails or has not
   * answered within its hedge time; the first success wins (the others' answers are dropped).
   */
  private hedged<T>(links: readonly Link[], read: (link: Link) => Promise<T>): Promise<{ value: T; link: Link }> {
    return new Promise((resolve, reject) => {
      let next = 0;
      let running = 0;
      let done = false;
      let last: unknown = null;
      let timer: ReturnType<typeof setTimeout> | null = null;
      const start = (): void => {
        if (done || next >= links.length) return;
        const link = links[next++]!;
        running += 1;
        const began = Date.now();
        if (timer !== null) clearTimeout(timer);
        if (next < links.length) {
          timer = setTimeout(() => {
            if (done) return;
            this.counts.hedges += 1;
            start();
          }, this.latencyOf(link).hedgeAfter());
          timer.unref();
        }
        read(link).then(
          (value) => {
            running -= 1;
            this.latencyOf(link).add(Date.now() - began);
            if (done) return;
            done = true;
            if (timer !== null) clearTimeout(timer);
            resolve({ value, link });
          },
          (err: unknown) => {
            running -= 1;
            this.counts.failures += 1;
            last = err;
            if (done) return;
            if (next < links.length) start();
            else if (running === 0) {
              done = true;
              reject(last);
            }
          },
        );
      };
      start();
    });
  }

  private latencyOf(link: Link): Latencies {
    let l = this.latency.get(link);
    if (l === undefined) this.latency.set(link, (l = new Latencies()));
    return l;
  }

  /**
   * Value bytes [start, start + length) from the first remote member that serves them: the head
   * fetched and checked first; a whole value is fetched in pieces whose CRC is checked before the
   * piece holding its last bytes is handed out (pieces are cut from the end, so that piece also
   * holds the trailer). A part of a value has its head checked only (as the local path).
   */
  private async *remoteStream(remotes: readonly Link[], address: NeedleAddress, key: Uint8Array, start: number, length: number): AsyncIterableIterator<Uint8Array> {
    let last: unknown = null;
    // The head is asked of the members hedged; the value then comes from the one that answered
    // first (and from the others in order if it fails before a byte has left).
    let order = remotes;
    let firstHead: { link: Link; head: Uint8Array } | null = null;
    const headOf = async (link: Link): Promise<Uint8Array> => {
      const head = await this.fetch(link, address, 0, NEEDLE_HEADER_SIZE + key.length);
      checkedHead(head, address, key);
      return head;
    };
    try {
      const first = await this.hedged(remotes, headOf);
      firstHead = { link: first.link, head: first.value };
      order = [first.link, ...remotes.filter((l) => l !== first.link)];
    } catch (err) {
      last = err;
      order = [];
    }
    for (const link of order) {
      let sent = 0;
      try {
        // The member that answered the hedge has given its head already.
        const head = firstHead?.link === link ? firstHead.head : await headOf(link);
        const header = checkedHead(head, address, key);
        const valueStart = NEEDLE_HEADER_SIZE + key.length;
        const whole = start === 0 && length === header.valueLength;
        this.counts.failovers += 1;
        if (!whole) {
          for (let at = start; at < start + length; ) {
            const to = Math.min(start + length, at + PIECE);
            const piece = await this.fetch(link, address, valueStart + at, valueStart + to);
            at = to;
            sent += piece.length;
            yield piece;
          }
          return;
        }
        let crc = crc32(head);
        const valueEnd = valueStart + header.valueLength;
        for (const [from, to] of piecesFromEnd(valueStart, address.length)) {
          const piece = await this.fetch(link, address, from, to);
          const body = piece.subarray(0, Math.max(0, Math.min(piece.length, address.length - NEEDLE_TRAILER_SIZE - from)));
          crc = crc32(body, crc);
          if (to === address.length && decodeTrailer(piece.subarray(piece.length - NEEDLE_TRAILER_SIZE)) !== crc) {
            throw new StoreError('CHECKSUM_MISMATCH', `volume ${address.volume} offset ${address.offset}: needle CRC mismatch on a remote member`);
          }
          const value = piece.subarray(0, Math.max(0, Math.min(piece.length, valueEnd - from)));
          if (value.length > 0) {
            sent += value.length;
            yield value;
          }
        }
        return;
      } catch (err) {
        this.counts.failures += 1;
        if (sent > 0) throw err; // bytes left already: cut
        last = err;
      }
    }
    throw last ?? new StoreError('NOT_FOUND', `volume ${address.volume}: no member to read from`);
  }

  private async fetch(link: Link, address: NeedleAddress, from: number, to: number): Promise<Uint8Array> {
    const reply = await link.request({ t: LinkMsg.ReadNeedle, volume: address.volume, offset: address.offset, length: address.length, from, to }, { timeoutMs: READ_TIMEOUT_MS });
    const bytes = new Uint8Array(reply.blobs[0] ?? new ArrayBuffer(0));
    if (bytes.length !== to - from) throw new StoreError('CHECKSUM_MISMATCH', `volume ${address.volume} offset ${address.offset}: ${bytes.length} of ${to - from} bytes from a remote member`);
    return bytes;
  }

  private remotesOf(address: NeedleAddress): readonly Link[] {
    return this.links.get(groupOfVolume(address.volume)) ?? [];
  }

  private isBad(address: NeedleAddress): boolean {
    return this.bad.has(`${address.volume}:${address.offset}`);
  }

  private markBad(address: NeedleAddress): void {
    this.counts.failures += 1;
    if (this.bad.size >= MAX_BAD) this.bad.delete(this.bad.values().next().value!);
    this.bad.add(`${address.volume}:${address.offset}`);
  }
}

/** [from, to) pieces of the needle after its head, cut from its end so the last holds the trailer. */
function piecesFromEnd(from: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  for (let to = end; to > from; to -= PIECE) out.unshift([Math.max(from, to - PIECE), to]);
  return out;
}

function checkedHead(head: Uint8Array, address: NeedleAddress, key: Uint8Array): { valueLength: number; metaLength: number } {
  const header = decodeNeedleHeader(head.subarray(0, NEEDLE_HEADER_SIZE), head.subarray(NEEDLE_HEADER_SIZE));
  if (header === null) throw new StoreError('CHECKSUM_MISMATCH', `volume ${address.volume} offset ${address.offset}: bad needle header on a remote member`);
  if (!sameBytes(head.subarray(NEEDLE_HEADER_SIZE), key)) throw new StoreError('CORRUPT', `volume ${address.volume} offset ${address.offset} holds another key`);
  if (NEEDLE_HEADER_SIZE + header.keyLength + header.valueLength + header.metaLength + NEEDLE_TRAILER_SIZE !== address.length) {
    throw new StoreError('CORRUPT', `volume ${address.volume} offset ${address.offset}: header does not match the address`);
  }
  return header;
}

/** A whole needle's value and metadata, once its header, key and CRC hold. */
function checkedNeedle(bytes: Uint8Array, address: NeedleAddress, key: Uint8Array): { value: Uint8Array; meta: Uint8Array } {
  const header = checkedHead(bytes.subarray(0, NEEDLE_HEADER_SIZE + key.length), address, key);
  const body = bytes.subarray(0, bytes.length - NEEDLE_TRAILER_SIZE);
  if (crc32(body) !== decodeTrailer(bytes.subarray(bytes.length - NEEDLE_TRAILER_SIZE))) {
    throw new StoreError('CHECKSUM_MISMATCH', `volume ${address.volume} offset ${address.offset}: needle CRC mismatch on a remote member`);
  }
  const valueStart = NEEDLE_HEADER_SIZE + key.length;
  return { value: bytes.slice(valueStart, valueStart + header.valueLength), meta: bytes.slice(valueStart + header.valueLength, valueStart + header.valueLength + header.metaLength) };
}

/**
 * The read port of a store's groups: the local reader alone when no group has remote members,
 * else a GroupReader over the link actors (`peer` by name) of each group's servers.
 */
export function groupReader(peer: (name: string) => Peer, groups: readonly { id: number; servers?: readonly string[] }[], local: ReadPort): ReadPort {
  if (groups.every((g) => (g.servers ?? []).length === 0)) return local;
  const links = serverLinks(groups);
  return new GroupReader(local, new Map(groups.map((g) => [g.id, (g.servers ?? []).map((url) => peer(links.get(url)!))])));
}
