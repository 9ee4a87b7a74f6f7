// SIGN method target seconds: a signed, expiring URL for the HTTP API (src/protocol/url_signing.ts,
// docs/http.md), so that a program holding the TCP password can hand a browser a link that
// needs no token. Answers the path and query to append to the HTTP base URL, e.g.
// `/v1/blobs/photo.png?expires=1767225600&sig=...`. The target is a blob key for GET, HEAD
// and PUT, or a WebSocket route's path and query for WS. It signs with the master's HTTP token,
// which this connection never sees; without a token (or without HTTP) it is an error.
// The command is 'admin' in the table: with requirepass set, only an authenticated client runs it.
import { NOT_AN_INTEGER } from '../protocol/commands.js';
import { bulk, error, type Reply } from '../protocol/reply.js';
import { signTarget } from '../protocol/url_signing.js';

export function signCommand(argv: readonly Buffer[], httpToken: string | null, nowMs: number, maxKeyLength: number): Reply {
  const secondsText = argv[3]!.toString('latin1');
  if (!/^[0-9]{1,15}$/.test(secondsText)) return error(NOT_AN_INTEGER);
  const signed = signTarget(httpToken, argv[1]!.toString('latin1'), argv[2]!, Number(secondsText), Math.floor(nowMs / 1000), maxKeyLength);
  return signed.ok ? bulk(signed.path) : error(`ERR SIGN: ${signed.message}`);
}
