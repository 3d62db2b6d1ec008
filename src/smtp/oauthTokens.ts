import { createHash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { TokenFailure } from './classify.ts';

/**
 * OAuth2 access tokens for XOAUTH2 (Gmail, Microsoft 365): fetched from the account's token
 * endpoint with its refresh token (the refresh_token grant, RFC 6749 §6), kept in memory only,
 * renewed before they expire and once more when an SMTP server refuses one.
 *
 * The endpoint is a host the user chose: each request is bounded in time and size, follows no
 * redirect (one counts as a refusal), and nothing it answers is ever echoed except an RFC 6749 §5.2
 * error code.
 */

/** An account's OAuth2 client and grant, secrets decrypted (API.md "Account auth and health"). */
export interface OAuthGrant {
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  tokenUrl: string;
  /** The SASL user (XOAUTH2 `user=`): the mailbox, by default the account's address. */
  user: string;
}

/** What an account's SMTP sessions ask for: a token to log in with. */
export interface TokenSource {
  user: string;
  /** A token valid for a while yet: the one in memory, or a new one. */
  current(): Promise<string>;
  /** The server refused `refused`: a new token (or one another session already got since). */
  renew(refused: string): Promise<string>;
}

/** No access token could be had; `failure` says whether waiting can help (smtp/classify.ts decides). */
export class OAuthTokenError extends Error {
  constructor(
    readonly failure: TokenFailure,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_TIMEOUT_MS = 10_000;
/** Real answers are well under 10 KB (Microsoft's, with an id_token, ~5 KB). */
const TOKEN_MAX_BYTES = 64 * 1024;
const ACCESS_TOKEN_MAX_CHARS = 16 * 1024;
/** A token is renewed this long before it expires (at most half its lifetime), so no session opens with one about to lapse. */
const RENEW_BEFORE_MS = 5 * 60_000;
/** `expires_in` is only RECOMMENDED (RFC 6749 §5.1); Google and Microsoft send it, and issue tokens for an hour. */
const DEFAULT_LIFETIME_S = 3600;
/** The error codes of RFC 6749 §5.2: the only part of an answer ever repeated in a message. */
const OAUTH_ERRORS = new Set(['invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope']);

export interface IssuedToken {
  accessToken: string;
  expiresInS: number;
  /** The server rotated the refresh token: the old one must be discarded (RFC 6749 §6). */
  refreshToken?: string;
}

async function readBounded(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > TOKEN_MAX_BYTES) {
      await reader.cancel();
      throw new OAuthTokenError('unavailable', `the token endpoint's answer is larger than ${TOKEN_MAX_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** An error answer (RFC 6749 §5.2) as a TokenFailure: only invalid_grant means the consent itself is gone. */
function refusal(status: number, body: Record<string, unknown> | undefined): OAuthTokenError {
  const code = typeof body?.error === 'string' && OAUTH_ERRORS.has(body.error) ? body.error : undefined;
  if (code === 'invalid_grant') {
    return new OAuthTokenError('invalid_grant', 'the token endpoint answered invalid_grant: the refresh token was revoked or has expired');
  }
  // Rate limits and server trouble pass; any other refusal needs the user.
  if (status === 429 || status >= 500) return new OAuthTokenError('unavailable', `the token endpoint answered HTTP ${status}`);
  return new OAuthTokenError('refused', `the token endpoint refused the request (HTTP ${status}${code ? `, ${code}` : ''})`);
}

/** One refresh_token grant request. Throws OAuthTokenError. */
export async function requestAccessToken(grant: Omit<OAuthGrant, 'user'>): Promise<IssuedToken> {
  let res: Response;
  try {
    res = await fetch(grant.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: grant.refreshToken,
        client_id: grant.clientId,
        client_secret: grant.clientSecret,
      }),
      // A redirect is answered as it is (a refusal below), never followed.
      redirect: 'manual',
      signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
    });
  } catch (err) {
    const timedOut = (err as Error).name === 'TimeoutError';
    throw new OAuthTokenError('unavailable', timedOut ? `the token endpoint did not answer within ${TOKEN_TIMEOUT_MS / 1000} s` : 'the token endpoint could not be reached');
  }
  const body = parseJson(await readBounded(res).catch((err) => {
    if (err instanceof OAuthTokenError) throw err;
    throw new OAuthTokenError('unavailable', 'the token endpoint broke off its answer');
  }));
  if (!res.ok) throw refusal(res.status, body);
  const accessToken = body?.access_token;
  if (typeof accessToken !== 'string' || accessToken.length === 0 || accessToken.length > ACCESS_TOKEN_MAX_CHARS || /[\x00-\x1f\x7f]/.test(accessToken)) {
    throw new OAuthTokenError('refused', 'the token URL did not answer with an access token');
  }
  const expiresIn = Number(body?.expires_in);
  const refreshToken = typeof body?.refresh_token === 'string' && body.refresh_token.length > 0 ? body.refresh_token : undefined;
  return { accessToken, expiresInS: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : DEFAULT_LIFETIME_S, refreshToken };
}

interface Entry {
  /** Which grant the entry belongs to: a changed client, secret, URL, user or refresh token starts afresh. */
  fingerprint: string;
  grant: OAuthGrant;
  token?: string;
  expiresAt: number;
  renewAt: number;
  fetching?: Promise<string>;
}

const fingerprintOf = (g: OAuthGrant) =>
  createHash('sha256').update(JSON.stringify([g.clientId, g.clientSecret, g.refreshToken, g.tokenUrl, g.user])).digest('base64');

/**
 * The access tokens of the accounts one process sends for. `onRotated` stores a refresh token
 * the endpoint rotated, and reports its own failures (it runs after the request, never during one).
 */
export class AccessTokens {
  private readonly entries = new Map<number, Entry>();

  constructor(
    private readonly clock: Clock,
    private readonly onRotated: (accountId: number, previous: string, next: string) => Promise<void>,
  ) {}

  /** The token source of one account with its grant as stored now. */
  source(accountId: number, grant: OAuthGrant): TokenSource {
    const fingerprint = fingerprintOf(grant);
    let entry = this.entries.get(accountId);
    if (!entry || entry.fingerprint !== fingerprint) {
      entry = { fingerprint, grant, expiresAt: 0, renewAt: 0 };
      this.entries.set(accountId, entry);
    }
    const e = entry;
    const now = () => this.clock.now().getTime();
    return {
      user: grant.user,
      current: () => (e.token && now() < e.renewAt ? Promise.resolve(e.token) : this.fetch(accountId, e)),
      renew: (refused) => (e.token && e.token !== refused && now() < e.expiresAt ? Promise.resolve(e.token) : this.fetch(accountId, e)),
    };
  }

  /** One request at a time per account: sessions opening together share it. */
  private fetch(accountId: number, e: Entry): Promise<string> {
    e.fetching ??= (async () => {
      try {
        e.token = undefined;
        const issued = await requestAccessToken(e.grant);
        const now = this.clock.now().getTime();
        const lifetimeMs = issued.expiresInS * 1000;
        e.token = issued.accessToken;
        e.expiresAt = now + lifetimeMs;
        e.renewAt = e.expiresAt - Math.min(RENEW_BEFORE_MS, lifetimeMs / 2);
        const previous = e.grant.refreshToken;
        if (issued.refreshToken && issued.refreshToken !== previous) {
          e.grant = { ...e.grant, refreshToken: issued.refreshToken };
          e.fingerprint = fingerprintOf(e.grant);
          await this.onRotated(accountId, previous, issued.refreshToken).catch(() => undefined);
        }
        return issued.accessToken;
      } finally {
        e.fetching = undefined;
      }
    })();
    return e.fetching;
  }
}
