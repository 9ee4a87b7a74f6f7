// The digests an upload may name for its bytes, checked before it commits (RFC 9530
// Repr-Digest / Content-Digest, RFC 3230 Digest, RFC 1864 Content-MD5, and S3's CRC-32C header as
// X-Brise-Checksum-CRC32C). Pure parsing; the hashing happens as the body streams (http_put.ts).
// A header that names an algorithm we do not know is ignored (RFC 9530 §3: a recipient may
// ignore it); one that names a known algorithm with a malformed value is an error.

export interface ExpectedDigests {
  sha256: Buffer | null;
  md5: Buffer | null;
  crc32c: number | null;
}

export type DigestParse = { ok: true; value: ExpectedDigests } | { ok: false; message: string };

const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

function base64Of(text: string, bytes: number): Buffer | null {
  if (!B64_RE.test(text)) return null;
  const b = Buffer.from(text, 'base64');
  return b.length === bytes ? b : null;
}

/** Members of a Digest / Repr-Digest header: `alg=value` pairs, comma separated. */
function members(header: string): [string, string][] {
  const out: [string, string][] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    out.push([part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim()]);
  }
  return out;
}

export function parseExpectedDigests(get: (name: string) => string): DigestParse {
  const want: ExpectedDigests = { sha256: null, md5: null, crc32c: null };
  const md5Header = get('content-md5');
  if (md5Header !== '') {
    want.md5 = base64Of(md5Header.trim(), 16);
    if (want.md5 === null) return { ok: false, message: 'Content-MD5 must be the base64 of 16 bytes' };
  }
  // Repr-Digest and Content-Digest (structured fields: sha-256=:base64:); Digest (sha-256=base64).
  for (const [header, structured] of [['repr-digest', true], ['content-digest', true], ['digest', false]] as const) {
    const text = get(header);
    if (text === '') continue;
    for (const [alg, raw] of members(text)) {
      if (alg !== 'sha-256' && alg !== 'md5') continue;
      const value = structured ? /^:(.*):$/.exec(raw)?.[1] ?? '' : raw;
      const bytes = base64Of(value, alg === 'sha-256' ? 32 : 16);
      if (bytes === null) return { ok: false, message: `${header}: ${alg} must be ${structured ? ':base64:' : 'base64'} of the digest` };
      if (alg === 'sha-256') want.sha256 = bytes;
      else want.md5 = bytes;
    }
  }
  const crc = get('x-brise-checksum-crc32c');
  if (crc !== '') {
    const bytes = base64Of(crc.trim(), 4);
    if (bytes === null) return { ok: false, message: 'X-Brise-Checksum-CRC32C must be the base64 of the 4 big-endian bytes of the CRC-32C' };
    want.crc32c = bytes.readUInt32BE(0);
  }
  return { ok: true, value: want };
}
