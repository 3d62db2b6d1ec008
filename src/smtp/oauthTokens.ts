import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Clock } from '../clock.ts';
import { allowedAddresses, checkedTarget, EgressRefused, type HostResolver } from '../net/egressConnect.ts';
import type { EgressPolicy } from '../net/egressPolicy.ts';
import type { TokenFailure } from './classify.ts';

/**
 * OAuth2 access tokens for XOAUTH2 (Gmail, Microsoft 365): fetched from the account's token
 * endpoint with its refresh token (the refresh_token grant, RFC 6749 §6), kept in memory only,
 * renewed before they expire and once more when an SMTP server refuses one.
 *
 * The endpoint is a host the user chose: each request goes only where the SMTP egress policy lets
 * connections go (resolved once, every address checked, the checked one connected to), is bounded
 * in time and size, follows no redirect (one counts as a refusal), and nothing it answers is ever
 * echoed except an RFC 6749 §5.2 error code.
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

/**
 * Where token requests may go: the SMTP egress policy (MAILPILOT_SMTP_DENY / ALLOW) and the resolver
 * of SMTP host names (MAILPILOT_DNS_SERVERS), as smtp/transport.ts uses them.
 */
export interface TokenEgress {
  policy: EgressPolicy;
  resolve: HostResolver;
}

/** The host of a token URL as a name or an address (an IPv6 literal without its brackets). */
export function tokenUrlHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * The egress policy's refusal in the token URL's words. Still an EgressRefused, so a session fails
 * as it does for a refused SMTP host (smtp/transport.ts): denied disables the account, unresolved
 * backs it off.
 */
function tokenUrlRefused(host: string, err: EgressRefused): EgressRefused {
  if (err.reason === 'unresolved') return new EgressRefused('unresolved', false, `the host name ${host} of the OAuth2 tokenUrl does not resolve`);
  const what = err.literal ? 'is an address' : 'resolves to an address';
  return new EgressRefused(
    'denied',
    err.literal,
    `the OAuth2 tokenUrl's host ${host} ${what} this installation allows no connections to (its operator's MAILPILOT_SMTP_DENY / MAILPILOT_SMTP_ALLOW): give the account a tokenUrl elsewhere`,
  );
}

/** Rejects with the signal's reason once it aborts. */
const whenAborted = (signal: AbortSignal) =>
  new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));

/**
 * POSTs `form` to `url` over a connection to an address the policy allows (never resolving the
 * name again; Host and TLS SNI stay the name). Resolves with the response's head; throws
 * EgressRefused before connecting when the host is refused or does not resolve.
 */
async function postChecked(url: URL, form: string, egress: TokenEgress, signal: AbortSignal): Promise<http.IncomingMessage> {
  const host = tokenUrlHost(url);
  const addresses = await Promise.race([allowedAddresses(host, egress.policy, egress.resolve), whenAborted(signal)]).catch((err: Error) => {
    throw err instanceof EgressRefused ? tokenUrlRefused(host, err) : err;
  });
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(
      {
        ...checkedTarget(host, addresses),
        port: url.port || undefined,
        path: url.pathname + url.search,
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(form),
          accept: 'application/json',
        },
        // A connection of its own: none kept from an earlier request, when the name resolved elsewhere.
        agent: false,
        signal,
      },
      resolve,
    );
    request.on('error', reject);
    request.end(form);
  });
}

/** The answer's body, at most TOKEN_MAX_BYTES of it. */
async function readBounded(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > TOKEN_MAX_BYTES) {
      res.destroy();
      throw new OAuthTokenError('unavailable', `the token endpoint's answer is larger than ${TOKEN_MAX_BYTES} bytes`);
    }
    chunks.push(chunk);
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

/**
 * One refresh_token grant request, the whole of it (resolving, connecting, the answer) within
 * TOKEN_TIMEOUT_MS. Throws OAuthTokenError, or EgressRefused when the policy refuses the token URL's
 * host or it does not resolve (nothing was sent then).
 */
export async function requestAccessToken(grant: Omit<OAuthGrant, 'user'>, egress: TokenEgress): Promise<IssuedToken> {
  const form = new URLSearchParams({
    grant_type: 'refresh_token',
    refresh_token: grant.refreshToken,
    client_id: grant.clientId,
    client_secret: grant.clientSecret,
  }).toString();
  const signal = AbortSignal.timeout(TOKEN_TIMEOUT_MS);
  const timedOut = () => new OAuthTokenError('unavailable', `the token endpoint did not answer within ${TOKEN_TIMEOUT_MS / 1000} s`);
  let res: http.IncomingMessage;
  try {
    // A redirect is answered as it is (a refusal below), never followed.
    res = await postChecked(new URL(grant.tokenUrl), form, egress, signal);
  } catch (err) {
    if (err instanceof EgressRefused) throw err;
    throw signal.aborted ? timedOut() : new OAuthTokenError('unavailable', 'the token endpoint could not be reached');
  }
  const body = parseJson(await readBounded(res).catch((err) => {
    if (err instanceof OAuthTokenError) throw err;
    throw signal.aborted ? timedOut() : new OAuthTokenError('unavailable', 'the token endpoint broke off its answer');
  }));
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 299) throw refusal(status, body);
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
 * The access tokens of the accounts one process sends for, requested only where `egress` allows.
 * `onRotated` stores a refresh token the endpoint rotated, and reports its own failures (it runs
 * after the request, never during one).
 */
export class AccessTokens {
  private readonly entries = new Map<number, Entry>();

  constructor(
    private readonly clock: Clock,
    private readonly egress: TokenEgress,
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
        const issued = await requestAccessToken(e.grant, this.egress);
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
