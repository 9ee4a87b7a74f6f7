// The ReadPort of the local drives: committed needles read straight from the volume files (a
// committed needle never changes, so any thread may read it), checked as ports.ts promises.
import { sameBytes } from '../runtime/bytes.js';
import { StoreError } from '../runtime/errors.js';
import type { VolumeReader } from '../storage/volume_reader.js';
import type { NeedleAddress } from '../storage/types.js';
import type { ReadPort } from './ports.js';

const NO_META = new Uint8Array(0);

export class DriveReader implements ReadPort {
  constructor(private readonly reader: VolumeReader) {}

  async read(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array> {
    return readVerifiedValue(this.reader, address, key);
  }

  async *stream(address: NeedleAddress, key: Uint8Array, start: number, length: number, buf?: Uint8Array): AsyncIterableIterator<Uint8Array> {
    yield* this.reader.streamValue(address, key, start, length, buf);
  }

  readNow(address: NeedleAddress, key: Uint8Array, scratch?: Uint8Array): { value: Uint8Array; meta: Uint8Array } | null {
    const needle = this.reader.readNeedle(address, scratch);
    if (!sameBytes(needle.key, key)) return null;
    return { value: needle.value, meta: needle.meta };
  }

  async meta(address: NeedleAddress, key: Uint8Array): Promise<Uint8Array> {
    if ((address.meta ?? 0) === 0) return NO_META;
    return this.reader.readMeta(address, key);
  }
}

/** Reads a whole needle, checks both CRCs and that it is the key's own needle. */
function readVerifiedValue(reader: VolumeReader, address: NeedleAddress, key: Uint8Array): Uint8Array {
  const needle = reader.readNeedle(address);
  if (!sameBytes(needle.key, key)) {
    throw new StoreError('CORRUPT', `needle at volume ${address.volume} offset ${address.offset} holds another key`);
  }
  return needle.value;
}
