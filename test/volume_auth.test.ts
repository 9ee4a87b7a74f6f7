// Unit tests of src/protocol/volume_auth.ts: the header a volume server checks on every request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SKEW_MS, signVolumeRequest, verifyVolumeRequest } from '../src/protocol/volume_auth.js';

const SECRET = 'shared secret';
const NOW = 1_800_000_000_000;
const TARGET = '/v1/volumes/1048576/needles?offset=64&epoch=3&sync=1';

test('a signed request verifies; the same header for another method, target or secret does not', () => {
  const h = signVolumeRequest(SECRET, 'PUT', TARGET, NOW);
  assert.deepEqual(verifyVolumeRequest(SECRET, 'PUT', TARGET, h, NOW + 1000), { ok: true });
  assert.deepEqual(verifyVolumeRequest(SECRET, 'put', TARGET, h, NOW), { ok: true }, 'methods compare upper-cased');
  for (const [method, target, secret] of [
    ['GET', TARGET, SECRET],
    ['PUT', TARGET.replace('offset=64', 'offset=72'), SECRET],
    ['PUT', TARGET.replace('epoch=3', 'epoch=4'), SECRET],
    ['PUT', TARGET, 'another secret'],
  ] as const) {
    const v = verifyVolumeRequest(secret, method, target, h, NOW);
    assert.equal(v.ok, false, `${method} ${target} ${secret}`);
  }
});

test('missing, malformed, tampered and out-of-window headers are refused with a message', () => {
  const h = signVolumeRequest(SECRET, 'GET', '/v1/health', NOW);
  const bad = [undefined, '', 'abc', `${NOW}.xyz`, `${NOW}.${'0'.repeat(64)}`, h.replace(/.$/, (c) => (c === '0' ? '1' : '0')), `${NOW + 1}${h.slice(String(NOW).length)}`];
  for (const header of bad) {
    const v = verifyVolumeRequest(SECRET, 'GET', '/v1/health', header, NOW);
    assert.equal(v.ok, false, String(header));
    if (!v.ok) assert.ok(v.message.length > 0);
  }
  assert.equal(verifyVolumeRequest(SECRET, 'GET', '/v1/health', h, NOW + MAX_SKEW_MS + 1).ok, false, 'too old');
  assert.equal(verifyVolumeRequest(SECRET, 'GET', '/v1/health', h, NOW - MAX_SKEW_MS - 1).ok, false, 'from the future');
  assert.equal(verifyVolumeRequest(SECRET, 'GET', '/v1/health', h, NOW + MAX_SKEW_MS).ok, true, 'at the edge of the window');
});
