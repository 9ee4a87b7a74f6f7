// `node cmd/cli.js sign METHOD TARGET SECONDS`: a signed, expiring URL of the HTTP API, made
// offline from the HTTP token (src/protocol/url_signing.ts; docs/http.md), for whoever holds the
// token but not a TCP connection (a deploy script, a shell). The token comes from --http-token
// or $BRISEDB_HTTP_TOKEN (the environment keeps it out of `ps`); --base prefixes the base URL.
// Exit codes: 0 printed, 2 bad arguments.
import type { Writable } from 'node:stream';
import { DEFAULT_LIMITS } from '../db/api.js';
import { HTTP_TOKEN_ENV } from '../master/config.js';
import { signTarget } from '../protocol/url_signing.js';

export const SIGN_USAGE = `Usage: node cmd/cli.js sign METHOD TARGET SECONDS [--http-token TOKEN] [--base URL]

Prints a signed URL of the HTTP API, valid for SECONDS (1 to 604800, 7 days).
  METHOD TARGET   GET, HEAD or PUT and a blob key; or WS and a WebSocket path and query
                  (/v1/subscribe?channels=news, /v1/wal?from=1)
  --http-token    the master's --http-token (default: $${HTTP_TOKEN_ENV})
  --base URL      the HTTP base URL to print in front (e.g. http://127.0.0.1:6381)`;

export function signMain(args: readonly string[], out: Writable, errors: Writable, env: NodeJS.ProcessEnv = process.env, nowMs = Date.now()): number {
  const positional: string[] = [];
  let token = env[HTTP_TOKEN_ENV] ?? null;
  let base = '';
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') {
      out.write(SIGN_USAGE + '\n');
      return 0;
    }
    if (arg === '--http-token' || arg === '--base') {
      const value = args[++i];
      if (value === undefined) return usage(errors, `${arg} needs a value`);
      if (arg === '--base') base = value.replace(/\/+$/, '');
      else token = value;
    } else if (arg.startsWith('--')) return usage(errors, `unknown flag '${arg}'`);
    else positional.push(arg);
  }
  if (positional.length !== 3) return usage(errors, 'sign takes METHOD TARGET SECONDS');
  const [method, target, secondsText] = positional as [string, string, string];
  if (!/^[0-9]{1,15}$/.test(secondsText)) return usage(errors, `SECONDS '${secondsText}' is not a whole number`);
  const signed = signTarget(token, method, target, Number(secondsText), Math.floor(nowMs / 1000), DEFAULT_LIMITS.maxKeyLength);
  if (!signed.ok) return usage(errors, signed.message);
  out.write(`${base}${signed.path}\n`);
  return 0;
}

function usage(errors: Writable, problem: string): number {
  errors.write(`brisedb sign: ${problem}\n${SIGN_USAGE}\n`);
  return 2;
}
