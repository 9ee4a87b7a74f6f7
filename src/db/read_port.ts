// Reading committed needles for the engine: the ReadPort over the volume files of the local
// drives (a committed needle never changes, so any thread may read it).
import { sameBytes } from '../runtime/bytes.js';
import { StoreError } from '../runtime/errors.js';
import type { VolumeReader } from '../storage/volume_reader.js';
import type { NeedleAddress } from '../storage/types.js';
import type { ReadPort } from './ports.js';

export class DriveReader implements ReadPort {
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
