// API keys: `thub_` + 43 base62 characters (256 bits). Only the SHA-256 of a key is stored; the key
// is shown once, when it is issued. Lookups go by hash, so no stored secret is ever compared.
import { randomBytes, randomUUID } from 'node:crypto';
import { sha256hex } from '../utils/sha256.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const KEY_PREFIX = 'thub_';
const KEY_LENGTH = 43;

export interface NewApiKey {
  id: string;
  key: string;
  prefix: string;
  hash: string;
}

export function hashApiKey(key: string): string {
  return sha256hex(key);
}

function base62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

export function newApiKey(): NewApiKey {
  return fromKey(KEY_PREFIX + base62(KEY_LENGTH));
}

/** For keys chosen outside the hub (HUB_ADMIN_KEY). */
export function fromKey(key: string, id: string = randomUUID()): NewApiKey {
  return { id, key, prefix: key.slice(0, KEY_PREFIX.length + 8), hash: hashApiKey(key) };
}
