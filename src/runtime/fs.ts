// The file-system seam. All storage code reaches files only through `Fs`, so tests can swap
// in a simulated file system that keeps unsynced writes apart and drops them on a "crash"
// (see property-tests/sim_fs.ts). The calls are synchronous on purpose: every caller is an
// actor that owns its own worker thread, so blocking it is fine, and a sync pread costs a
// microsecond where an async one pays a libuv thread-pool hop (~10 µs) per call.
import * as fs from 'node:fs';

/** How a file is opened. `create` creates when missing and never truncates. */
export type OpenMode = 'read' | 'write' | 'create' | 'exclusive';

export interface FileHandle {
  readonly path: string;
  /** Reads up to buf.length bytes at position; returns the count read (short at EOF). */
  read(buf: Uint8Array, position: number): number;
  /** Writes all of buf at position (the file grows as needed). */
  write(buf: Uint8Array, position: number): void;
  /** fdatasync: everything written so far is durable when this returns. Throws on failure. */
  sync(): void;
  truncate(size: number): void;
  size(): number;
  close(): void;
  /**
   * Closes without waiting, where the file system can (node: libuv's pool): the last close of an
   * unlinked file frees its blocks, which takes ext4 about 0.3 s per GB on the closing thread.
   * Absent: close() is used.
   */
  closeInBackground?(): void;
}

export interface Fs {
  open(path: string, mode: OpenMode): FileHandle;
  exists(path: string): boolean;
  /** Names (not paths) in a directory, sorted; [] when it does not exist. */
  readdir(path: string): string[];
  /** Creates the directory and its parents; does nothing when it exists. */
  mkdir(path: string): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  /** fsync of a directory: makes creations, renames and unlinks in it durable. */
  syncDir(path: string): void;
  /** Whole-file read, for small files (registry, lock file). */
  readFile(path: string): Uint8Array;
}

/** An operating error from the file system with the errno code kept (EIO, ENOSPC...). */
export function fsErrorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

const FLAGS: Record<OpenMode, string> = { read: 'r', write: 'r+', create: 'a+', exclusive: 'wx+' };

class NodeFileHandle implements FileHandle {
  constructor(readonly path: string, private readonly fd: number) {}

  read(buf: Uint8Array, position: number): number {
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  write(buf: Uint8Array, position: number): void {
    let done = 0;
    while (done < buf.length) {
      done += fs.writeSync(this.fd, buf, done, buf.length - done, position + done);
    }
  }

  sync(): void {
    fs.fdatasyncSync(this.fd);
  }

  truncate(size: number): void {
    fs.ftruncateSync(this.fd, size);
  }

  size(): number {
    return fs.fstatSync(this.fd).size;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  closeInBackground(): void {
    fs.close(this.fd, () => undefined); // an error closing a read handle leaves nothing to do
  }
}

/** The production file system: node:fs, synchronous. */
export class NodeFs implements Fs {
  open(path: string, mode: OpenMode): FileHandle {
    // 'a+' would force every write to the end on Linux; open 'create' as r+ after making sure
    // the file exists, so positioned writes land where they are asked to.
    if (mode === 'create') {
      fs.closeSync(fs.openSync(path, 'a'));
      return new NodeFileHandle(path, fs.openSync(path, 'r+'));
    }
    return new NodeFileHandle(path, fs.openSync(path, FLAGS[mode]));
  }

  exists(path: string): boolean {
    return fs.existsSync(path);
  }

  readdir(path: string): string[] {
    try {
      return fs.readdirSync(path).sort();
    } catch (err) {
      if (fsErrorCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  mkdir(path: string): void {
    fs.mkdirSync(path, { recursive: true });
  }

  rename(from: string, to: string): void {
    fs.renameSync(from, to);
  }

  unlink(path: string): void {
    fs.unlinkSync(path);
  }

  syncDir(path: string): void {
    const fd = fs.openSync(path, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  readFile(path: string): Uint8Array {
    return fs.readFileSync(path);
  }
}

/** Reads exactly `length` bytes at `position`, or throws a clear error naming the file. */
export function readExact(file: FileHandle, position: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  const n = file.read(buf, position);
  if (n !== length) {
    throw new Error(`short read of ${file.path} at ${position}: wanted ${length}, got ${n}`);
  }
  return buf;
}
