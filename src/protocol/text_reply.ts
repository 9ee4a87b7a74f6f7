// The output side of the seed's line protocol (docs/text-protocol.md): a Reply of the shared
// executor written as the seed's lines. No I/O; the connection writes what this answers.
//
// Every line is `+text\n` or `-error\n` (LF only, as the seed's server wrote them):
//   simple, bulk, integer, double  -> `+<text>`        null (bulk, array, nil) -> `+nil`
//   error                          -> `-<message>`     (`-ERR ...`, `-WRONGTYPE ...`)
//   array, set, push, map (flat)   -> `+<n>`, then one line per item; an item that is itself
//                                     an array is its words on one line, space-separated
// and the seed's own shapes for some commands: DELETE answers `+OK`; SCAN `+<cursor> <n>` then
// the keys; VOLINFO `+<n>` then `+<id> <drive> <size_bytes>` per volume file.
//
// Invariant: a reply leaves whole or not at all. A CR or LF inside a value would end its line
// early and shift every later reply of the connection, so such a reply is replaced, before any
// of its lines is written, by one error line naming the RESP port.
import { isUtf8 } from 'node:buffer';
import { formatDouble, type Reply } from './reply.js';

/** How a command's reply is laid out on the line protocol, where the seed differs from the generic rule. */
export type TextShape = 'generic' | 'ok' | 'scan' | 'volinfo';

const SHAPES: Readonly<Record<string, TextShape>> = {
  // The seed's DELETE answered +OK; DEL keeps the count Redis answers.
  delete: 'ok',
  scan: 'scan',
  volinfo: 'volinfo',
};

export function shapeOf(command: string): TextShape {
  return SHAPES[command] ?? 'generic';
}

export const LINE_END = 0x0a;
const PLUS = Buffer.from('+');
const MINUS = Buffer.from('-');
const NL = Buffer.from('\n');
const SPACE = Buffer.from(' ');

export const UNREPRESENTABLE =
  'ERR the reply holds a CR or LF byte, which a line cannot carry: read it on the RESP port (--addr)';

/** The reply's bytes: whole lines, each ending in LF. */
export function formatTextReply(reply: Reply, shape: TextShape = 'generic'): Buffer {
  if (reply.kind === 'error') return errorLine(reply.message);
  const lines = shapedLines(reply, shape);
  if (lines.some(hasLineBreak)) return errorLine(UNREPRESENTABLE);
  return joinLines(lines.map((l) => ({ sign: PLUS, text: l })));
}

/** One `-message` line (a Reply's error message never holds CR or LF: reply.ts strips them). */
export function errorLine(message: string): Buffer {
  return Buffer.concat([MINUS, Buffer.from(message.replace(/[\r\n]/g, ' '), 'utf8'), NL]);
}

/** One `+text` line; null when the text holds a CR or LF. */
export function plusLine(...words: (Buffer | string)[]): Buffer | null {
  const parts = words.map((w) => (typeof w === 'string' ? Buffer.from(w, 'utf8') : w));
  if (parts.some(hasLineBreak)) return null;
  const out: Buffer[] = [PLUS];
  parts.forEach((p, i) => {
    if (i > 0) out.push(SPACE);
    out.push(p);
  });
  out.push(NL);
  return Buffer.concat(out);
}

function shapedLines(reply: Reply, shape: TextShape): Buffer[] {
  switch (shape) {
    case 'ok':
      return [Buffer.from('OK')];
    case 'scan':
      return scanLines(reply) ?? genericLines(reply);
    case 'volinfo':
      return volinfoLines(reply) ?? genericLines(reply);
    case 'generic':
      return genericLines(reply);
  }
}

/** Top level: a scalar is one line; an aggregate is its count, then one line per item. */
function genericLines(reply: Reply): Buffer[] {
  const items = itemsOf(reply);
  if (items === null) return [word(reply)];
  return [Buffer.from(String(items.length)), ...items.map(word)];
}

/** SCAN's [cursor, [keys]] as the seed wrote it: `+<cursor> <n>`, then the keys. */
function scanLines(reply: Reply): Buffer[] | null {
  const top = itemsOf(reply);
  const keys = top?.[1] === undefined ? null : itemsOf(top[1]);
  if (top === null || top.length !== 2 || keys === null) return null;
  return [Buffer.from(`${word(top[0]!).toString('latin1')} ${keys.length}`), ...keys.map(word)];
}

/** VOLINFO's [[id, drive, size, group], ...] as the seed listed it: `+<id> <drive> <size_bytes>`. */
function volinfoLines(reply: Reply): Buffer[] | null {
  const volumes = itemsOf(reply);
  if (volumes === null) return null;
  const lines: Buffer[] = [Buffer.from(String(volumes.length))];
  for (const v of volumes) {
    const fields = itemsOf(v);
    if (fields === null || fields.length < 3) return null;
    lines.push(Buffer.concat([word(fields[0]!), SPACE, word(fields[1]!), SPACE, word(fields[2]!)]));
  }
  return lines;
}

/** The items of an aggregate (a map as its flat pairs, as RESP2 sends it); null for a scalar or a null array. */
function itemsOf(reply: Reply): readonly Reply[] | null {
  switch (reply.kind) {
    case 'array':
      return reply.items;
    case 'set':
    case 'push':
      return reply.items;
    case 'map':
      return reply.pairs.flatMap(([k, v]) => [k, v]);
    default:
      return null;
  }
}

/** A reply as the text of one line: scalars as themselves, nested aggregates as space-separated words. */
function word(reply: Reply): Buffer {
  switch (reply.kind) {
    case 'simple':
      return Buffer.from(reply.value, 'utf8');
    case 'error':
      return Buffer.from(reply.message, 'utf8');
    case 'integer':
      return Buffer.from(String(reply.value));
    case 'bulk':
      return reply.value ?? Buffer.from('nil');
    case 'double':
      return Buffer.from(formatDouble(reply.value));
    case 'boolean':
      return Buffer.from(reply.value ? '1' : '0');
    case 'nil':
      return Buffer.from('nil');
    case 'verbatim':
      return reply.value;
    case 'array':
    case 'set':
    case 'push':
    case 'map': {
      const items = itemsOf(reply);
      if (items === null) return Buffer.from('nil');
      const parts: Buffer[] = [];
      items.forEach((item, i) => {
        if (i > 0) parts.push(SPACE);
        parts.push(word(item));
      });
      return Buffer.concat(parts);
    }
  }
}

function hasLineBreak(b: Buffer): boolean {
  return b.includes(LINE_END) || b.includes(0x0d);
}

function joinLines(lines: { sign: Buffer; text: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const l of lines) parts.push(l.sign, l.text, NL);
  return Buffer.concat(parts);
}

// ---- REPLICATE ------------------------------------------------------------------------------

/**
 * One entry of the REPLICATE stream, in the seed's WAL-entry JSON (`walEntry` of its Go code):
 * what a key holds now, or that everything was removed.
 */
export type ReplicationEntry =
  | { type: 'SET'; key: Uint8Array; value: Uint8Array; expiresAtMs: number }
  | { type: 'DELETE'; key: Uint8Array }
  | { type: 'FLUSH' };

/**
 * `+{"Type":"SET","Key":"k","Value":"v","ExpiresAt":1700000000}\n`: ExpiresAt is Unix seconds,
 * rounded up (a replica never drops a key before the master does), absent when the key has no
 * expiry (the seed's `omitempty`). A key or value that is not UTF-8 makes both base64, with
 * `"Encoding":"base64"` beside them. JSON escapes CR and LF, so every entry is one line.
 */
export function replicationLine(e: ReplicationEntry): Buffer {
  if (e.type === 'FLUSH') return Buffer.from('+{"Type":"FLUSH"}\n');
  const value = e.type === 'SET' ? e.value : new Uint8Array(0);
  const base64 = !isUtf8(e.key) || !isUtf8(value);
  const text = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString(base64 ? 'base64' : 'utf8');
  const entry: Record<string, string | number> = { Type: e.type, Key: text(e.key) };
  if (e.type === 'SET') {
    entry.Value = text(e.value);
    if (e.expiresAtMs > 0) entry.ExpiresAt = Math.ceil(e.expiresAtMs / 1000);
  }
  if (base64) entry.Encoding = 'base64';
  return Buffer.from(`+${JSON.stringify(entry)}\n`, 'utf8');
}

/** The line that ends the snapshot: live entries follow. */
export const READY_LINE = Buffer.from('+READY\n');
