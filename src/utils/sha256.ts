// SHA-256 of a short text, hex. One call where Node has crypto.hash (20.12+): a Hash object per
// call showed in the hot path's profiles (an API key per request, a record per invoke).
import { createHash, hash } from 'node:crypto';

export const sha256hex: (text: string) => string =
  typeof hash === 'function' ? (text) => hash('sha256', text, 'hex') : (text) => createHash('sha256').update(text).digest('hex');
