// RESP protocol throughput, in process, no sockets: how many commands per second the command
// parser takes in and how many replies per second the writer puts out, for `SET key value`
// and `GET key`, one per chunk (pipeline depth 1) and 16 per chunk (depth 16, as
// `redis-benchmark -P 16` sends them). Printed as a table; no assertions (DESIGN §6: speed
// is measured by benchmarks, never by tests).
//
// Run: npx tsc -p . && node dist/bench/resp.bench.js [--seconds N]
import { RespCommandParser } from '../src/protocol/resp_parser.js';
import { ReplyWriter, encodeCommand } from '../src/protocol/resp_writer.js';
import { RespReplyParser } from '../src/protocol/resp_reply_parser.js';
import { DEFAULT_PARSER_LIMITS } from '../src/protocol/tcp_limits.js';

const args = process.argv.slice(2);
const secondsArg = args.indexOf('--seconds');
const seconds = secondsArg >= 0 ? Number(args[secondsArg + 1]) : 1;

/** Runs `round` (which handles `per` commands) for about `seconds`; commands per second. */
function measure(per: number, round: () => void): number {
  for (let i = 0; i < 2000; i++) round(); // warm up the JIT
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let rounds = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) round();
    rounds += 100;
  }
  return (rounds * per) / ((performance.now() - start) / 1000);
}

/** Parses a chunk of `depth` commands per round; a fresh chunk copy each time, as a socket gives. */
function parseBench(command: Buffer, depth: number): number {
  const template = Buffer.concat(Array.from({ length: depth }, () => command));
  const parser = new RespCommandParser(DEFAULT_PARSER_LIMITS);
  let sink = 0;
  const ops = measure(depth, () => {
    parser.push(Buffer.from(template));
    for (let r = parser.next(); r.kind === 'command'; r = parser.next()) sink += r.args.length;
  });
  if (sink === 0) throw new Error('nothing parsed');
  return ops;
}

/** Writes `depth` replies per round and takes them as one Buffer, as a front end would per turn. */
function writeBench(depth: number, write: (w: ReplyWriter) => void): number {
  const writer = new ReplyWriter();
  let sink = 0;
  const ops = measure(depth, () => {
    for (let i = 0; i < depth; i++) write(writer);
    sink += writer.take().length;
  });
  if (sink === 0) throw new Error('nothing written');
  return ops;
}

/** The client side: parses `depth` replies per round. */
function replyParseBench(reply: Buffer, depth: number): number {
  const template = Buffer.concat(Array.from({ length: depth }, () => reply));
  const parser = new RespReplyParser();
  let sink = 0;
  const ops = measure(depth, () => {
    parser.push(Buffer.from(template));
    for (let v = parser.next(); v !== null; v = parser.next()) sink++;
  });
  if (sink === 0) throw new Error('nothing parsed');
  return ops;
}

const value = Buffer.from('value');
const set = encodeCommand(['SET', 'key', 'value']);
const get = encodeCommand(['GET', 'key']);
const rows: [string, number][] = [];
for (const depth of [1, 16]) {
  rows.push([`parse  SET key value  -P ${depth}`, parseBench(set, depth)]);
  rows.push([`parse  GET key        -P ${depth}`, parseBench(get, depth)]);
  rows.push([`write  +OK            -P ${depth}`, writeBench(depth, (w) => w.ok())]);
  rows.push([`write  $5 value       -P ${depth}`, writeBench(depth, (w) => w.bulk(value, 2))]);
  rows.push([`client parse +OK      -P ${depth}`, replyParseBench(Buffer.from('+OK\r\n'), depth)]);
  rows.push([`client parse $5 value -P ${depth}`, replyParseBench(Buffer.from('$5\r\nvalue\r\n'), depth)]);
}
const inline = Buffer.from('SET key value\r\n');
rows.push(['parse  inline SET     -P 16', parseBench(inline, 16)]);

console.log(`RESP throughput (${seconds} s per row, Node ${process.version})`);
console.log('what'.padEnd(30) + 'commands/s'.padStart(14));
for (const [name, ops] of rows) console.log(name.padEnd(30) + Math.round(ops).toLocaleString('en-US').padStart(14));
