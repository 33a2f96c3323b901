// Credentials of a binding: validated here, sealed with the SecretBox, opened only to build a call.
import { badInput } from '../errors.js';
import type { CredentialKind } from '../generated/prisma/enums.js';
import { checkHeaderValue, isReservedHeader } from '../invoke/header-rules.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { checkHeaderName, checkTokenUrl } from './validate.js';

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
/** The associated data of a binding's OAuth2 access token (row OAuthToken). */
export const accessTokenOwner = (tenantId: string, systemId: string) => `oauth2-token:${tenantId}/${systemId}`;

/** What an OAUTH2_CLIENT_CREDENTIALS credential seals: how to obtain access tokens. */
export interface OAuth2Client {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  scope: string | null;
}

// RFC 6749 appendix A: client ids and secrets are VSCHARs; a scope is NQCHAR tokens split by spaces.
const VSCHARS = /^[\x20-\x7e]+$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/;

function checkOAuth2(input: CredentialInput): OAuth2Client {
  for (const f of ['tokenUrl', 'clientId', 'clientSecret'] as const) {
    if (input[f] == null || input[f] === '') throw badInput(`credential.${f} is required for kind OAUTH2_CLIENT_CREDENTIALS.`);
  }
  const tokenUrl = checkTokenUrl('credential.tokenUrl', input.tokenUrl!);
  if (input.clientId!.length > 1024 || !VSCHARS.test(input.clientId!)) {
    throw badInput('credential.clientId must be 1 to 1024 printable ASCII characters.');
  }
  // The message never repeats the secret.
  if (input.clientSecret!.length > 4096 || !VSCHARS.test(input.clientSecret!)) {
    throw badInput('credential.clientSecret must be 1 to 4096 printable ASCII characters.');
  }
  const scope = input.scope == null || input.scope === '' ? null : input.scope;
  if (scope !== null && (scope.length > 2048 || !SCOPE.test(scope))) {
    throw badInput('credential.scope must be scope tokens of printable ASCII (no quote or backslash) separated by single spaces.');
  }
  return { tokenUrl, clientId: input.clientId!, clientSecret: input.clientSecret!, scope };
}

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
    case 'OAUTH2_CLIENT_CREDENTIALS': {
      unused(['token', 'headerName']);
      const sealed = box.seal(JSON.stringify(checkOAuth2(input)), owner);
      return { ...none, credentialKind: input.kind, credentialCiphertext: sealed.ciphertext, credentialKeyId: sealed.keyId };
    }
  }
}

/** Opens an OAUTH2_CLIENT_CREDENTIALS credential: only the token provider needs it. */
export function openOAuth2Client(box: SecretBox, owner: string, row: Pick<CredentialColumns, 'credentialCiphertext' | 'credentialKeyId'>): OAuth2Client {
  return JSON.parse(box.open({ keyId: row.credentialKeyId ?? '', ciphertext: row.credentialCiphertext ?? '' }, owner)) as OAuth2Client;
}

/**
 * Opens a binding's credential into the one header to send, or null for NONE and for OAuth2
 * (whose header holds an access token that the token provider obtains at call time).
 */
export function credentialHeader(box: SecretBox, owner: string, row: CredentialColumns): CredentialHeader | null {
  if (row.credentialKind === 'NONE' || row.credentialKind === 'OAUTH2_CLIENT_CREDENTIALS' || !row.credentialCiphertext || !row.credentialKeyId) return null;
  const { token } = JSON.parse(box.open({ keyId: row.credentialKeyId, ciphertext: row.credentialCiphertext }, owner)) as { token: string };
  if (row.credentialKind === 'BEARER') return { name: 'authorization', value: `Bearer ${token}`, secret: token };
  return { name: row.credentialHeaderName!.toLowerCase(), value: token, secret: token };
}
