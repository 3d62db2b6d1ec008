import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Clock } from '../../src/clock.ts';

/** One request the endpoint received, its form fields as sent. */
export interface TokenRequest {
  grantType: string | null;
  clientId: string | null;
  clientSecret: string | null;
  refreshToken: string | null;
}

/**
 * An OAuth2 token endpoint on loopback (node:http) for the refresh_token grant (RFC 6749 §6),
 * issuing short-lived access tokens by the test's clock, as Google's and Microsoft's do.
 */
export interface TokenEndpoint {
  url: string;
  requests: TokenRequest[];
  /** TCP connections accepted, requests or not. */
  connections: number;
  /** The Host header of each request, in order. */
  hosts: string[];
  /** Whether `accessToken` was issued to `user`'s grant, has not expired (test clock) and was not invalidated. */
  accepts(user: string, accessToken: string): boolean;
  /** The access tokens issued so far stop working; the refresh token still does. */
  invalidateAccessTokens(): void;
  /** The user withdraws consent: the refresh token answers invalid_grant, issued tokens stop working. */
  revoke(): void;
  /** Each refresh answers a new refresh token and retires the one used (Microsoft's rolling refresh tokens). */
  rotate: boolean;
  /** The current refresh token (changes when rotating). */
  refreshToken: string;
  /** Replaces the handling of the next requests (a huge answer, a slow one). */
  override: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  close(): Promise<void>;
}

/** `listen`: where the endpoint listens (default 127.0.0.1 on a free port). */
export async function startTokenEndpoint(opts: {
  clock: Clock;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  user: string;
  lifetimeS: number;
  listen?: { host?: string; port?: number };
}): Promise<TokenEndpoint> {
  const issued = new Map<string, { user: string; expiresAt: number }>();
  let revoked = false;
  const endpoint: TokenEndpoint = {
    url: '',
    requests: [],
    connections: 0,
    hosts: [],
    rotate: false,
    refreshToken: opts.refreshToken,
    override: undefined,
    accepts(user, accessToken) {
      const t = issued.get(accessToken);
      return t !== undefined && t.user === user && opts.clock.now().getTime() < t.expiresAt;
    },
    invalidateAccessTokens() {
      issued.clear();
    },
    revoke() {
      revoked = true;
      issued.clear();
    },
    close: async () => undefined,
  };
  const answer = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    endpoint.hosts.push(req.headers.host ?? '');
    if (endpoint.override) return endpoint.override(req, res);
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c));
    req.on('end', () => {
      const form = new URLSearchParams(raw);
      const r: TokenRequest = {
        grantType: form.get('grant_type'),
        clientId: form.get('client_id'),
        clientSecret: form.get('client_secret'),
        refreshToken: form.get('refresh_token'),
      };
      endpoint.requests.push(r);
      if (req.method !== 'POST' || r.grantType !== 'refresh_token') return answer(res, 400, { error: 'unsupported_grant_type' });
      if (r.clientId !== opts.clientId || r.clientSecret !== opts.clientSecret) return answer(res, 401, { error: 'invalid_client' });
      if (revoked || r.refreshToken !== endpoint.refreshToken) {
        // Google's wording; the description must never reach the user's screen verbatim.
        return answer(res, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked. <script>x</script>' });
      }
      const accessToken = `ya29.${randomBytes(24).toString('base64url')}`;
      issued.set(accessToken, { user: opts.user, expiresAt: opts.clock.now().getTime() + opts.lifetimeS * 1000 });
      const body: Record<string, unknown> = { access_token: accessToken, expires_in: opts.lifetimeS, token_type: 'Bearer', scope: 'https://mail.google.com/' };
      if (endpoint.rotate) {
        endpoint.refreshToken = `1//rotated-${randomBytes(16).toString('base64url')}`;
        body.refresh_token = endpoint.refreshToken;
      }
      answer(res, 200, body);
    });
  });
  server.on('connection', () => endpoint.connections++);
  const host = opts.listen?.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(opts.listen?.port ?? 0, host, resolve));
  endpoint.url = `http://${host}:${(server.address() as { port: number }).port}/token`;
  endpoint.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return endpoint;
}
