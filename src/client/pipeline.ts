// A pipeline: commands queued on the caller's side and sent together by exec(), in one write,
// their replies matched in order. Each queued method returns the typed promise of its own
// result at once (so a pipeline built in a loop stays typed); exec() resolves when every
// reply is in, with them all settled in order.
//
// Invariants: nothing is sent before exec(); exec() runs once; a queued promise that the
// caller never awaits does not become an unhandled rejection (exec's result reports it);
// a pipeline longer than the in-flight limit is refused whole, never half sent.
import type { RespValue } from '../protocol/resp_reply_parser.js';
import type { Bytes } from './connection.js';
import * as v from './values.js';

/** Sends a batch of commands in one write; one reply promise per command, in order. */
export type SendMany = (list: readonly (readonly Bytes[])[]) => Promise<RespValue>[];

interface Entry {
  readonly args: readonly Bytes[];
  readonly resolve: (value: RespValue) => void;
  readonly reject: (err: unknown) => void;
}

export class Pipeline {
  private readonly entries: Entry[] = [];
  private readonly results: Promise<unknown>[] = [];
  private sent = false;

  constructor(private readonly sendMany: SendMany) {}

  get length(): number {
    return this.entries.length;
  }

  set(key: Bytes, value: Bytes): Promise<void> {
    return this.add(['SET', key, value], v.expectOk);
  }

  setEX(key: Bytes, value: Bytes, seconds: number): Promise<void> {
    return this.add(['SET', key, value, 'EX', String(seconds)], v.expectOk);
  }

  get(key: Bytes): Promise<Buffer | null> {
    return this.add(['GET', key], v.asBufferOrNull);
  }

  delete(...keys: Bytes[]): Promise<number> {
    return this.add(['DEL', ...keys], v.asInteger);
  }

  exists(...keys: Bytes[]): Promise<number> {
    return this.add(['EXISTS', ...keys], v.asInteger);
  }

  ttl(key: Bytes): Promise<number> {
    return this.add(['TTL', key], v.asInteger);
  }

  expire(key: Bytes, seconds: number): Promise<boolean> {
    return this.add(['EXPIRE', key, String(seconds)], v.asBoolean);
  }

  publish(channel: Bytes, message: Bytes): Promise<number> {
    return this.add(['PUBLISH', channel, message], v.asInteger);
  }

  ping(): Promise<string> {
    return this.add(['PING'], v.asString);
  }

  /** Any command; resolves with the raw reply. */
  command(args: readonly Bytes[]): Promise<RespValue> {
    return this.add(args, (reply) => reply);
  }

  /** Sends every queued command in one write; resolves when all replies are in. */
  async exec(): Promise<PromiseSettledResult<unknown>[]> {
    if (this.sent) throw new Error('pipeline already executed');
    this.sent = true;
    const replies = this.sendMany(this.entries.map((e) => e.args));
    replies.forEach((reply, i) => reply.then(this.entries[i]!.resolve, this.entries[i]!.reject));
    return Promise.allSettled(this.results);
  }

  private add<T>(args: readonly Bytes[], convert: (reply: RespValue) => T): Promise<T> {
    if (this.sent) return Promise.reject(new Error('pipeline already executed'));
    const result = new Promise<RespValue>((resolve, reject) => {
      this.entries.push({ args, resolve, reject });
    }).then(convert);
    result.catch(() => undefined); // reported by exec(); not an unhandled rejection
    this.results.push(result);
    return result;
  }
}
