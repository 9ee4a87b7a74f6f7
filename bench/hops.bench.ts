// `node dist/bench/hops.bench.js`: what one thread hop costs on this machine, beside what a
// whole client round trip over loopback TCP costs (the anchor: the floor of any Redis reply).
// A durable SET crosses six hops (front end -> volume writer -> front end -> WAL -> index -> WAL
// -> front end, docs/architecture.md), so this is the floor the actor design puts under a SET
// with one client: six times the idle hop, before any work is done.
//
// - ring, idle: a message goes round main -> 4 workers -> main over MessageChannels, with 1 ms
//   of quiet before each lap, so every receiver is asleep in epoll when its message comes (as
//   each actor is, between the SETs of one client): per hop, the wake-up is the cost.
// - ring, busy: the same laps back to back (each thread just went idle): the message cost alone.
// - TCP round trip: a 16-byte ping-pong between this process and a child process over loopback,
//   1 ms of quiet before each (as redis-benchmark -c 1 against a server): the anchor.
// Flags: --laps N (default 3000).
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';

const WORKERS = 4;
const lapsAt = process.argv.indexOf('--laps');
const laps = lapsAt < 0 ? 3000 : Number(process.argv[lapsAt + 1]);
if (!Number.isSafeInteger(laps) || laps < 1) {
  console.error('--laps takes a positive whole number');
  process.exit(2);
}

const quiet = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Median of the samples, in µs. */
function median(us: number[]): number {
  const s = [...us].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function ring(idle: boolean): Promise<number> {
  const code = `const { parentPort } = require('node:worker_threads');
parentPort.once('message', ({ inp, out }) => { inp.on('message', (m) => out.postMessage(m)); parentPort.postMessage('ready'); });`;
  const workers = Array.from({ length: WORKERS }, () => new Worker(code, { eval: true }));
  const chans = Array.from({ length: WORKERS + 1 }, () => new MessageChannel());
  try {
    for (const [i, w] of workers.entries()) {
      w.postMessage({ inp: chans[i]!.port2, out: chans[i + 1]!.port1 }, [chans[i]!.port2, chans[i + 1]!.port1]);
      await new Promise((r) => w.once('message', r));
    }
    const first: MessagePort = chans[0]!.port1;
    const last: MessagePort = chans[WORKERS]!.port2;
    const samples: number[] = [];
    for (let i = 0; i < laps; i++) {
      if (idle) await quiet(1);
      const t0 = performance.now();
      await new Promise((r) => {
        last.once('message', r);
        first.postMessage(i);
      });
      samples.push(((performance.now() - t0) * 1000) / (WORKERS + 1));
    }
    return median(samples);
  } finally {
    for (const c of chans) c.port1.close();
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** Median loopback TCP round trip (µs) to an echo server in a child process. */
async function tcpRoundTrip(): Promise<number> {
  const echo = `const s = require('node:net').createServer((c) => { c.setNoDelay(true); c.on('data', (d) => c.write(d)); });
s.listen(0, '127.0.0.1', () => process.send(s.address().port));`;
  const child = spawn(process.execPath, ['-e', echo], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  let socket: Socket | null = null;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (p) => resolve(Number(p)));
      child.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
    });
    const s = connect(port, '127.0.0.1');
    socket = s;
    s.setNoDelay(true);
    await new Promise((r) => s.once('connect', r));
    const ping = Buffer.alloc(16, 1);
    const samples: number[] = [];
    for (let i = 0; i < laps; i++) {
      await quiet(1);
      const t0 = performance.now();
      await new Promise((r) => {
        s.once('data', r);
        s.write(ping);
      });
      samples.push((performance.now() - t0) * 1000);
    }
    return median(samples);
  } finally {
    socket?.destroy();
    child.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const idle = await ring(true);
  const busy = await ring(false);
  const tcp = await tcpRoundTrip();
  const f = (us: number): string => `${us.toFixed(1)} µs`;
  console.log(`laps: ${laps}; median per hop over a ring of main + ${WORKERS} workers; node ${process.version}`);
  console.log('');
  console.log('| measure | this machine | anchor: loopback TCP round trip | ratio |');
  console.log('| --- | --- | --- | --- |');
  console.log(`| thread hop, receiver asleep | ${f(idle)} | ${f(tcp)} | ${(idle / tcp).toFixed(2)}× |`);
  console.log(`| thread hop, receiver just busy | ${f(busy)} | ${f(tcp)} | ${(busy / tcp).toFixed(2)}× |`);
  console.log(`| a durable SET's six hops, receivers asleep | ${f(6 * idle)} | ${f(tcp)} | ${((6 * idle) / tcp).toFixed(2)}× |`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
