// Test helper: a small client of the seed's line protocol, written from docs/text-protocol.md
// alone (not from the server's code), the way the seed's Go and Python clients are: send one
// line, read `+`/`-` lines; a counted list is `+<n>` then n lines.
// Invariants: every read is bounded and a timeout names what it waited for; a line is returned
// without its LF; bytes are decoded as UTF-8.
import * as net from 'node:net';

export class TextClient {
  private buffer = Buffer.alloc(0);
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      for (let i = this.buffer.indexOf(0x0a); i >= 0; i = this.buffer.indexOf(0x0a)) {
        this.lines.push(this.buffer.subarray(0, i).toString('utf8'));
        this.buffer = this.buffer.subarray(i + 1);
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  static async connect(port: number, ms = 5000): Promise<TextClient> {
    const socket = net.connect(port, '127.0.0.1');
    await bounded(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      ms,
      `a connection to port ${port}`,
    );
    return new TextClient(socket);
  }

  send(line: string | Buffer): void {
    this.socket.write(Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'utf8') : line, Buffer.from('\n')]));
  }

  /** The next line, with its `+` or `-`. */
  async line(ms = 5000, what = 'a line'): Promise<string> {
    await bounded(this.until(() => this.lines.length > 0 || this.ended), ms, `${what} (have ${JSON.stringify(this.buffer.toString('utf8').slice(0, 200))})`);
    const line = this.lines.shift();
    if (line === undefined) throw new Error(`connection closed before ${what}`);
    return line;
  }

  /** Sends a command and answers its one-line reply, sign included (`+OK`, `+nil`, `-ERR ...`). */
  async call(line: string, ms = 5000): Promise<string> {
    this.send(line);
    return this.line(ms, `the reply to ${JSON.stringify(line.slice(0, 60))}`);
  }

  /** A counted list (KEYS, MGET, VOLINFO...): the items, without their `+`. */
  async list(line: string, ms = 5000): Promise<string[]> {
    const head = await this.call(line, ms);
    const m = /^\+(\d+)$/.exec(head);
    if (m === null) throw new Error(`expected +<n> for ${line}, got ${JSON.stringify(head)}`);
    const items: string[] = [];
    for (let i = 0; i < Number(m[1]); i++) items.push(plus(await this.line(ms, `item ${i + 1} of ${line}`)));
    return items;
  }

  /** SCAN cursor COUNT n: `+<next> <n>` then the keys. */
  async scan(cursor: string, count: number): Promise<{ next: string; keys: string[] }> {
    const head = plus(await this.call(`SCAN ${cursor} COUNT ${count}`));
    const [next, n] = head.split(' ');
    const keys: string[] = [];
    for (let i = 0; i < Number(n); i++) keys.push(plus(await this.line()));
    return { next: next!, keys };
  }

  /** SUBSCRIBE a b: one `+SUBSCRIBE <channel> <count>` line per channel. */
  async subscribe(...channels: string[]): Promise<string[]> {
    this.send(`SUBSCRIBE ${channels.join(' ')}`);
    const out: string[] = [];
    for (let i = 0; i < channels.length; i++) out.push(await this.line(5000, 'a SUBSCRIBE confirmation'));
    return out;
  }

  /** The next pub/sub message: `+MESSAGE <channel> <payload>`. */
  async message(ms = 5000): Promise<{ channel: string; payload: string }> {
    const line = await this.line(ms, 'a message');
    const m = /^\+MESSAGE (\S+) (.*)$/s.exec(line);
    if (m === null) throw new Error(`expected +MESSAGE, got ${JSON.stringify(line)}`);
    return { channel: m[1]!, payload: m[2]! };
  }

  /** Lines received and not yet read (to check that nothing more came). */
  pending(): string[] {
    return [...this.lines];
  }

  async closed(ms = 5000): Promise<void> {
    await bounded(this.until(() => this.ended), ms, 'the server to close the connection');
  }

  isClosed(): boolean {
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }

  private until(ready: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (!ready()) return;
        this.waiter = null;
        resolve();
      };
      this.waiter = check;
      check();
    });
  }

  private wake(): void {
    this.waiter?.();
  }
}

/** The text of a `+` line; throws on an error line. */
export function plus(line: string): string {
  if (!line.startsWith('+')) throw new Error(`expected a + line, got ${JSON.stringify(line)}`);
  return line.slice(1);
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
