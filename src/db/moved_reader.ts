// Reads that follow a vacuum's moves. A read looks a key up, then opens the needle's volume; a
// vacuum may move the key and remove the volume in between (docs/vacuum.md, "Delete"). Such a
// read finds no file (NOT_FOUND): the key is looked up again, and when it now lives elsewhere
// (a byte-for-byte copy, so the same value length and ranges) it is read there, once.
import { StoreError } from '../runtime/errors.js';
import type { NeedleAddress } from '../storage/types.js';
import type { IndexPort, ReadPort } from './ports.js';

export class MovedReader implements ReadPort {
  readonly readNow?: ReadPort['readNow'];

  constructor(
    private readonly inner: ReadPort,
    private readonly index: Pick<IndexPort, 'lookup'>,
  ) {
    // Synchronous reads cannot look up again: a failure there sends the caller to the message path.
    if (inner.readNow !== undefined) this.readNow = inner.readNow.bind(inner);
  }

  async read(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.inner.read(address, key);
    } catch (err) {
      return this.inner.read(await this.movedOr(err, address, key), key);
    }
  }

  async meta(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.inner.meta(address, key);
    } catch (err) {
      return this.inner.meta(await this.movedOr(err, address, key), key);
    }
  }

  async *stream(address: NeedleAddress, key: Uint8Array, start: number, length: number, buf?: Uint8Array): AsyncIterableIterator<Uint8Array> {
    let sent = false;
    try {
      for await (const chunk of this.inner.stream(address, key, start, length, buf)) {
        sent = true;
        yield chunk;
      }
    } catch (err) {
      // Once bytes have left, the stream holds its file open: a failure then is not a move.
      if (sent) throw err;
      yield* this.inner.stream(await this.movedOr(err, address, key), key, start, length, buf);
    }
  }

  /** The key's new address when `err` is a missing volume and the key has moved since; else rethrows. */
  private async movedOr(err: unknown, address: NeedleAddress, key: Uint8Array): Promise<NeedleAddress> {
    if (!(err instanceof StoreError) || err.code !== 'NOT_FOUND') throw err;
    const now = (await this.index.lookup(key)).entry?.address;
    if (now === undefined || (now.volume === address.volume && now.offset === address.offset) || now.length !== address.length) throw err;
    return now;
  }
}
