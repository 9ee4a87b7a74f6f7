// A 1 MB GET is read into one buffer per HTTP thread, reused by the next GET (http_blobs.ts,
// answerNow). That is only safe while uWS copies what end() cannot send at once. Held here on a
// real master: a client that asks for blob A many times on one connection and reads nothing
// leaves most of those answers waiting in uWS; blob B is then read on other connections (into
// the same buffer); every answer A's client finally reads must still be A's bytes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { startMaster, stopAll, sleep, within } from './helpers/master_process.js';

after(stopAll);

const MB = 1024 * 1024;
const PIPELINED = 8;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Reads `count` HTTP/1.1 responses with Content-Length bodies; answers their bodies. */
function readResponses(socket: Socket, count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const bodies: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffered.subarray(0, end).toString('latin1');
        const length = Number(/content-length: *(\d+)/i.exec(head)?.[1]);
        if (!head.startsWith('HTTP/1.1 200') || !Number.isSafeInteger(length)) {
          reject(new Error(`unexpected answer: ${head.slice(0, 200)}`));
          return;
        }
        if (buffered.length < end + 4 + length) return;
        bodies.push(Buffer.from(buffered.subarray(end + 4, end + 4 + length)));
        buffered = buffered.subarray(end + 4 + length);
        if (bodies.length === count) {
          socket.off('data', onData);
          resolve(bodies);
          return;
        }
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`connection closed after ${bodies.length} of ${count} answers`)));
  });
}

test('answers waiting in uWS keep their bytes while the next GETs reuse the read buffer', { timeout: 60_000 }, async () => {
  const m = await startMaster({ http: true, args: ['--vacuum-every', '0', '--scrub-every', '0'] });
  let socket: Socket | null = null;
  try {
    const a = randomBytes(MB);
    const b = randomBytes(MB);
    for (const [key, value] of [['a', a], ['b', b]] as const) {
      const put = await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/${key}`, { method: 'PUT', body: value });
      assert.equal(put.status, 201);
    }
    const s = connect(m.httpPort, '127.0.0.1');
    socket = s;
    await within(new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject)), 5_000, 'connect');
    s.pause(); // read nothing yet: the kernel's buffers fill, and uWS keeps the rest
    s.write('GET /v1/blobs/a HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(PIPELINED));
    await sleep(300);
    for (let i = 0; i < 3; i++) {
      const got = Buffer.from(await (await fetch(`http://127.0.0.1:${m.httpPort}/v1/blobs/b`)).arrayBuffer());
      assert.equal(sha(got), sha(b), 'B read whole meanwhile');
    }
    const answers = readResponses(s, PIPELINED);
    s.resume();
    const bodies = await within(answers, 30_000, 'the pipelined answers');
    bodies.forEach((body, i) => assert.equal(sha(body), sha(a), `answer ${i + 1} of ${PIPELINED} is A's bytes`));
  } finally {
    socket?.destroy();
    await m.stop();
  }
});
