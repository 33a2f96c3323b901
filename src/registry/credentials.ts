// Credentials of a binding: validated here, sealed with the SecretBox, opened only to build a call.
import { badInput } from '../errors.js';
import type { CredentialKind } from '../generated/prisma/enums.js';
import { checkHeaderValue, isReservedHeader } from '../invoke/header-rules.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { checkHeaderName } from './validate.js';

export interface CredentialInput {
  kind: CredentialKind;
  token?: string | null;
  headerName?: string | null;
  tokenUrl?: string | null;
  clientId?: string | null;
  clientSecret?: string | null;
  scope?: string | null;
}

/** The credential columns of a Binding row. */
export interface CredentialColumns {
  credentialKind: CredentialKind;
  credentialHeaderName: string | null;
  credentialCiphertext: string | null;
  credentialKeyId: string | null;
  credentialUpdatedAt: Date | null;
  credentialExpiresAt: Date | null;
}

/** What the hub injects into a call: one header. */
export interface CredentialHeader {
  name: string;
  value: string;
  /** the secret inside value: scrubbed from anything a called system echoes back */
  secret: string;
}

export const bindingOwner = (tenantId: string, systemId: string) => `binding:${tenantId}/${systemId}`;

export function sealCredential(box: SecretBox, owner: string, input: CredentialInput | null | undefined, now = new Date()): CredentialColumns {
  const none: CredentialColumns = {
    credentialKind: 'NONE',
    credentialHeaderName: null,
    credentialCiphertext: null,
    credentialKeyId: null,
    credentialUpdatedAt: now,
    credentialExpiresAt: null,
  };
  if (!input) return none;
  const unused = (fields: (keyof CredentialInput)[]) => {
    const given = fields.filter((f) => input[f] != null);
    if (given.length) throw badInput(`credential.${given[0]} does not apply to kind ${input.kind}.`);
  };
  switch (input.kind) {
    case 'NONE':
      unused(['token', 'headerName', 'tokenUrl', 'clientId', 'clientSecret', 'scope']);
      return none;
    case 'BEARER':
    case 'HEADER': {
      unused(['tokenUrl', 'clientId', 'clientSecret', 'scope']);
      if (input.token == null) throw badInput(`credential.token is required for kind ${input.kind}.`);
      const token = checkHeaderValue('credential.token', input.token);
      let headerName: string | null = null;
      if (input.kind === 'HEADER') {
        if (input.headerName == null) throw badInput('credential.headerName is required for kind HEADER.');
        headerName = checkHeaderName('credential.headerName', input.headerName);
        // Authorization is a legitimate custom scheme (e.g. "Basic ..."); framing headers are not.
        if (headerName.toLowerCase() !== 'authorization' && isReservedHeader(headerName)) {
          throw badInput(`credential.headerName "${headerName}" is a header the hub controls.`);
        }
      } else unused(['headerName']);
      const sealed = box.seal(JSON.stringify({ token }), owner);
      return { ...none, credentialKind: input.kind, credentialHeaderName: headerName, credentialCiphertext: sealed.ciphertext, credentialKeyId: sealed.keyId };
    }
    case 'OAUTH2_CLIENT_CREDENTIALS':
      throw badInput('OAUTH2_CLIENT_CREDENTIALS is not supported yet; use BEARER or HEADER for now.');
  }
}

/** Opens a binding's credential into the one header to send, or null for NONE. */
export function credentialHeader(box: SecretBox, owner: string, row: CredentialColumns): CredentialHeader | null {
  if (row.credentialKind === 'NONE' || !row.credentialCiphertext || !row.credentialKeyId) return null;
  const { token } = JSON.parse(box.open({ keyId: row.credentialKeyId, ciphertext: row.credentialCiphertext }, owner)) as { token: string };
  if (row.credentialKind === 'BEARER') return { name: 'authorization', value: `Bearer ${token}`, secret: token };
  return { name: row.credentialHeaderName!.toLowerCase(), value: token, secret: token };
}
