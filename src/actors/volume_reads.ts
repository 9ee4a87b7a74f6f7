// The read routes of a volume server (docs/volume-server.md), served on the front end's own
// thread straight from the volume file (committed bytes never change; the drive's actor is asked
// only for the volume's path and length):
// - GET .../needles/{N}?length=L: the needle's bytes, or a Range of them;
// - GET .../raw?start=S&end=T: a needle-aligned range (needles and their zero padding), what a
//   peer copies during repair.
// Invariants:
// - nothing past the volume's length is served (a needle being appended is not there yet);
// - a needle's header (lengths, CRC) is checked before its first byte leaves, its CRC before its
//   last; a failure before the status line is a clean error, after it the connection is cut:
//   never a complete answer of bad bytes;
// - constant memory: one 1 MiB pool buffer per read, the next chunk read only once uWS has
//   taken the last one whole (back-pressure through onWritable).
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { FileHandle } from '../runtime/fs.js';
import { StoreError } from '../runtime/errors.js';
import { streamChunks } from '../runtime/buffer_pool.js';
import { needleAddress } from '../storage/types.js';
import { VolumeFile } from '../storage/volume_file.js';
import { NEEDLE_ALIGN, NEEDLE_HEADER_SIZE, NEEDLE_TRAILER_SIZE, VOLUME_SUPERBLOCK_SIZE, alignUp, decodeNeedleHeader, needleLength, type NeedleHeader } from '../storage/volume_format.js';
import { contentRange, parseRange, unsatisfiedRange } from '../protocol/http_range.js';
import { watchAbort, type ResponseState } from '../frontend/http_util.js';
import { BodyWriter } from '../frontend/body_writer.js';
import { answerError, answerJson, codeOf, parseCount, parseVolumeId, requireCount, type VolumeContext } from './volume_context.js';

/** Chunks written in one go before yielding to other connections. */
const CHUNKS_PER_TURN = 16;
const ZEROS = new Uint8Array(NEEDLE_ALIGN);

/** GET /v1/volumes/{id}/needles/{N}?length=L, with an optional Range of the needle. */
export function needleRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const volume = parseVolumeId(req.getParameter(0));
  const offset = parseCount(req.getParameter(1));
  const query = new URLSearchParams(req.getQuery() ?? '');
  const range = req.getHeader('range');
  const state = watchAbort(res);
  const out = new BodyWriter(res, state);
  void (async () => {
    if (volume === null || offset === null) throw new StoreError('BAD_ARGUMENT', 'the volume id and the needle offset must be integers');
    const length = requireCount(query, 'length');
    const path = await committedPath(ctx, volume, offset, length);
    const reader = NeedleReader.open(ctx, path, volume);
    try {
      await serveNeedle(out, reader, offset, length, range);
    } finally {
      reader.close();
    }
  })().catch((err: unknown) => failRead(res, state, out, ctx, err));
}

/** GET /v1/volumes/{id}/raw?start=S&end=T */
export function rawRoute(res: HttpResponse, req: HttpRequest, ctx: VolumeContext): void {
  const volume = parseVolumeId(req.getParameter(0));
  const query = new URLSearchParams(req.getQuery() ?? '');
  const state = watchAbort(res);
  const out = new BodyWriter(res, state);
  void (async () => {
    if (volume === null) throw new StoreError('BAD_ARGUMENT', 'the volume id must be an integer below 2^32');
    const start = requireCount(query, 'start');
    const end = requireCount(query, 'end');
    if (start < VOLUME_SUPERBLOCK_SIZE || start % NEEDLE_ALIGN !== 0 || end % NEEDLE_ALIGN !== 0 || end < start) {
      throw new StoreError('BAD_ARGUMENT', `[${start}, ${end}) is not a needle-aligned range of a volume`);
    }
    const path = await committedPath(ctx, volume, start, end - start);
    const reader = NeedleReader.open(ctx, path, volume);
    try {
      await serveRaw(out, reader, start, end);
    } finally {
      reader.close();
    }
  })().catch((err: unknown) => failRead(res, state, out, ctx, err));
}

/** The volume's file, once [offset, offset + length) is known to be within its length. */
async function committedPath(ctx: VolumeContext, volume: number, offset: number, length: number): Promise<string> {
  const { state } = await ctx.locate(volume);
  if (offset < VOLUME_SUPERBLOCK_SIZE || offset % NEEDLE_ALIGN !== 0 || offset + length > state.length) {
    throw Object.assign(new StoreError('NOT_FOUND', `[${offset}, ${offset + length}) is not within volume ${volume} (length ${state.length})`), { length: state.length });
  }
  return state.path;
}

async function serveNeedle(out: BodyWriter, reader: NeedleReader, offset: number, length: number, rangeHeader: string): Promise<void> {
  const header = reader.header(offset);
  if (needleLength(header.keyLength, header.valueLength, header.metaLength) !== length) {
    throw new StoreError('BAD_ARGUMENT', `the needle at ${offset} is ${needleLength(header.keyLength, header.valueLength, header.metaLength)} bytes, not ${length}`);
  }
  const range = parseRange(rangeHeader === '' ? undefined : rangeHeader, length);
  if (range.kind === 'unsatisfiable') {
    out.whole(416, { 'Content-Range': unsatisfiedRange(length) });
    return;
  }
  if (range.kind === 'single') {
    // A part has no checksum of its own: the header is what can be checked (the reader checks the rest).
    reader.checkKeyCrc(offset, header);
    const { start, end } = range.range;
    out.begin(206, end - start + 1, { 'Content-Range': contentRange(range.range, length) });
    await reader.copyBytes(out, offset + start, end - start + 1);
    return;
  }
  out.begin(200, length, {});
  await reader.sendNeedle(out, offset, header);
}

async function serveRaw(out: BodyWriter, reader: NeedleReader, start: number, end: number): Promise<void> {
  if (start === end) {
    out.whole(200, {});
    return;
  }
  let header = reader.header(start); // a bad start is a clean 400, before the status line
  out.begin(200, end - start, {});
  for (let pos = start; pos < end; ) {
    if (pos !== start) header = reader.header(pos);
    const length = needleLength(header.keyLength, header.valueLength, header.metaLength);
    if (alignUp(pos + length) > end) throw new StoreError('BAD_ARGUMENT', `the needle at ${pos} runs past ${end}`);
    await reader.sendNeedle(out, pos, header);
    const pad = alignUp(length) - length;
    if (pad > 0 && !(await out.write(ZEROS.subarray(0, pad)))) return;
    pos = alignUp(pos + length);
  }
}

/** Before the status line: a clean error; after it: the connection cut. */
function failRead(res: HttpResponse, state: ResponseState, out: BodyWriter, ctx: VolumeContext, err: unknown): void {
  if (state.aborted) return;
  if (out.started) {
    res.close();
    return;
  }
  if (codeOf(err) === 'CHECKSUM_MISMATCH' || codeOf(err) === 'CORRUPT') {
    // Found before a byte left: a clean error, 500 (the stored bytes are bad, not the request).
    answerJson(res, state, 500, { error: (err as Error).message, code: codeOf(err) });
    return;
  }
  const length = (err as { length?: unknown }).length;
  if (typeof length === 'number') {
    answerError(res, state, 'NOT_FOUND', (err as Error).message, { length });
    return;
  }
  void ctx.fail(res, state, err, null);
}

/** One read's open volume file: its headers read raw, its needles streamed checked. */
class NeedleReader {
  private readonly buf = new Uint8Array(streamChunks.take());
  private chunks = 0;

  private constructor(
    private readonly handle: FileHandle,
    private readonly file: VolumeFile,
    private readonly volume: number,
  ) {}

  static open(ctx: VolumeContext, path: string, volume: number): NeedleReader {
    const file = VolumeFile.open(ctx.fs, path, 'read');
    try {
      return new NeedleReader(ctx.fs.open(path, 'read'), file, volume);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** The fixed header at `offset` (its lengths; the CRC needs the key: sendNeedle checks it). */
  header(offset: number): NeedleHeader {
    const head = this.buf.subarray(0, NEEDLE_HEADER_SIZE);
    const header = this.handle.read(head, offset) === NEEDLE_HEADER_SIZE ? decodeNeedleHeader(head) : null;
    if (header === null) throw new StoreError('CHECKSUM_MISMATCH', `no needle header at offset ${offset} of volume ${this.volume}`);
    return header;
  }

  checkKeyCrc(offset: number, header: NeedleHeader): void {
    const head = this.buf.subarray(0, NEEDLE_HEADER_SIZE + header.keyLength);
    const n = this.handle.read(head, offset);
    if (n !== head.length || decodeNeedleHeader(head.subarray(0, NEEDLE_HEADER_SIZE), head.subarray(NEEDLE_HEADER_SIZE)) === null) {
      throw new StoreError('CHECKSUM_MISMATCH', `the needle header at offset ${offset} of volume ${this.volume}: CRC mismatch`);
    }
  }

  /** The whole needle through VolumeFile.streamRaw (header checked first, needle CRC before the last chunk). */
  async sendNeedle(out: BodyWriter, offset: number, header: NeedleHeader): Promise<void> {
    const length = needleLength(header.keyLength, header.valueLength, header.metaLength);
    if (length < NEEDLE_HEADER_SIZE + NEEDLE_TRAILER_SIZE) throw new StoreError('CHECKSUM_MISMATCH', `a needle of ${length} bytes`);
    for (const chunk of this.file.streamRaw(needleAddress(this.volume, offset, length, header.metaLength), this.buf)) {
      if (!(await this.send(out, chunk))) return;
    }
  }

  /** Bytes of the file as they are (a Range of a needle). */
  async copyBytes(out: BodyWriter, position: number, length: number): Promise<void> {
    for (let done = 0; done < length; ) {
      const part = this.buf.subarray(0, Math.min(this.buf.length, length - done));
      if (this.handle.read(part, position + done) !== part.length) throw new StoreError('CORRUPT', `short read of volume ${this.volume} at ${position + done}`);
      if (!(await this.send(out, part))) return;
      done += part.length;
    }
  }

  close(): void {
    this.file.close();
    this.handle.close();
    streamChunks.give(this.buf.buffer as ArrayBuffer);
  }

  private async send(out: BodyWriter, chunk: Uint8Array): Promise<boolean> {
    if (!(await out.write(chunk))) throw new StoreError('ABORTED', 'the client went away');
    if (++this.chunks % CHUNKS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    return true;
  }
}
