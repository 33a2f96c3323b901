// AES-256-GCM for stored credentials. Each sealed value names the key that sealed it (key id), so
// keys can be rotated, and is bound to its owner (associated data = the binding's identity): a
// ciphertext copied to another row does not open there.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { HubError } from '../errors.js';

const VERSION = 'v1';

export interface Sealed {
  keyId: string;
  ciphertext: string;
}

export class SecretBox {
  readonly keyId: string;
  private readonly keys: Map<string, Buffer>;

  /** @param key the current 32-byte key; @param previous older keys still accepted for opening */
  constructor(key: Buffer, previous: Buffer[] = []) {
    if (key.length !== 32) throw new Error('encryption key must be 32 bytes');
    this.keyId = keyIdOf(key);
    this.keys = new Map([key, ...previous].map((k) => [keyIdOf(k), k]));
  }

  seal(plaintext: string, owner: string): Sealed {
    const key = this.keys.get(this.keyId)!;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(owner));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return { keyId: this.keyId, ciphertext: [VERSION, iv.toString('base64'), tag.toString('base64'), body.toString('base64')].join(':') };
  }

  open(sealed: Sealed, owner: string): string {
    const key = this.keys.get(sealed.keyId);
    const [version, iv, tag, body] = sealed.ciphertext.split(':');
    // One masked error for every failure: which part was wrong is nobody's business but the log's.
    const fail = () => new HubError('INTERNAL_SERVER_ERROR', 'A stored credential could not be decrypted.', { reason: 'credential_decrypt' });
    if (!key || version !== VERSION || !iv || !tag || body === undefined) throw fail();
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
      decipher.setAAD(Buffer.from(owner));
      decipher.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      throw fail();
    }
  }
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}
