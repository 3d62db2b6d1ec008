import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { hostResolver } from '../net/egressConnect.ts';
import { AccessTokens, type OAuthGrant } from '../smtp/oauthTokens.ts';
import type { Security } from '../states.ts';
import type { Queryable } from './database.ts';
import { accountOAuthSecret, accountPassword, storeRotatedRefreshToken, type AccountDkimColumns } from './smtpAccounts.ts';

/** An account's OAuth2 grant as stored, secrets sealed; null when it logs in with a password or not at all. */
export interface SealedOAuthGrant {
  clientId: string;
  clientSecretEnc: string;
  refreshTokenEnc: string;
  tokenUrl: string;
  user: string;
}

/**
 * The account a message goes out through: what the engine's worker and the test send both need to
 * open SMTP sessions for it and compose its messages. Secrets stay sealed until `credentials`.
 */
export interface SendingAccount extends AccountDkimColumns {
  id: number;
  userId: number;
  email: string;
  username: string | null;
  /** Encrypted; null = a relay that trusts the sender's address (no AUTH). */
  passwordEnc: string | null;
  hourlyLimit: number;
  dailyLimit: number;
  ratePerSecond: number | null;
  timezone: string;
  /** The account and its server are both switched on. */
  active: boolean;
  server: { id: number; host: string; port: number; security: Security; maxConnections: number };
  /** Sessions it opens at most: its share of its server's connection cap, or its own cap or the cap its server taught (432 4.3.2) if lower. */
  connections: number;
  /** Throttles in a row without a successful send since (see engine/accountHealth.ts). */
  throttleStrikes: number;
  /** Envelope senders are VERP addresses at this domain (src/reports/verp.ts); null = the account's address. */
  bounceDomain: string | null;
  oauth: SealedOAuthGrant | null;
  /** The gentle restart after a throttle (engine/accountHealth.ts): sends a second (null: own pace), until when. */
  recoveryRate: number | null;
  recoveryUntil: Date | null;
}

/**
 * The SMTP sessions an account opens at most, over `smtp_accounts a JOIN smtp_servers s`: its share
 * of its server's connection cap, or its own cap (maxConnections) or the one its server taught
 * (connection_cap, after 432 4.3.2) if lower. least() ignores the caps that are not set.
 */
export const ACCOUNT_CONNECTIONS_SQL = `least(a.max_connections, a.connection_cap,
  greatest(1, s.max_connections / (SELECT count(*) FROM smtp_accounts x WHERE x.server_id = s.id AND x.active)))::int`;

/** The columns of a SendingAccount over `smtp_accounts a JOIN smtp_servers s`. */
export const SENDING_ACCOUNT_COLUMNS = `a.id, a.user_id AS "userId", a.email, a.username, a.password_enc AS "passwordEnc",
  a.hourly_limit AS "hourlyLimit", a.daily_limit AS "dailyLimit", a.rate_per_second AS "ratePerSecond", a.timezone,
  (a.active AND s.active) AS active,
  json_build_object('id', s.id, 'host', s.host, 'port', s.port, 'security', s.security, 'maxConnections', s.max_connections) AS server,
  ${ACCOUNT_CONNECTIONS_SQL} AS connections,
  a.throttle_strikes AS "throttleStrikes",
  CASE WHEN a.oauth_client_id IS NOT NULL THEN json_build_object('clientId', a.oauth_client_id, 'clientSecretEnc', a.oauth_client_secret_enc,
    'refreshTokenEnc', a.oauth_refresh_token_enc, 'tokenUrl', a.oauth_token_url, 'user', coalesce(a.oauth_user, a.email)) END AS oauth,
  a.recovery_rate AS "recoveryRate", a.recovery_until AS "recoveryUntil",
  a.dkim_domain AS "dkimDomain", a.dkim_selector AS "dkimSelector", a.dkim_key_enc AS "dkimKeyEnc",
  a.bounce_domain AS "bounceDomain"`;

/** One of the user's accounts with its server, for sending; undefined when the user has no such account. */
export async function loadSendingAccount(db: Queryable, userId: number, accountId: number): Promise<SendingAccount | undefined> {
  const [row] = await db.query<SendingAccount>(
    `SELECT ${SENDING_ACCOUNT_COLUMNS}
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id AND s.user_id = a.user_id
      WHERE a.id = $1 AND a.user_id = $2`,
    [accountId, userId],
  );
  return row;
}

/**
 * The account's SMTP credentials, the password or the OAuth2 grant decrypted. Throws when a stored
 * secret does not decrypt (a wrong MAILPILOT_SECRET_KEY, a tampered row, or a ciphertext copied from another row).
 */
export function credentials(
  secretKey: Buffer,
  account: Pick<SendingAccount, 'id' | 'username' | 'passwordEnc'> & Partial<Pick<SendingAccount, 'oauth'>>,
): { username: string | null; password: string | null; oauth?: OAuthGrant } {
  const { oauth } = account;
  return {
    username: account.username,
    password: account.passwordEnc === null ? null : accountPassword(secretKey, account.id, account.passwordEnc),
    ...(oauth
      ? {
          oauth: {
            clientId: oauth.clientId,
            clientSecret: accountOAuthSecret(secretKey, account.id, 'client_secret', oauth.clientSecretEnc),
            refreshToken: accountOAuthSecret(secretKey, account.id, 'refresh_token', oauth.refreshTokenEnc),
            tokenUrl: oauth.tokenUrl,
            user: oauth.user,
          },
        }
      : {}),
  };
}

/**
 * OAuth2 access tokens in memory, requested only where SMTP connections may go (the same egress
 * policy and resolver), storing each refresh token its endpoint rotates (engine and test send).
 */
export function accountAccessTokens(ctx: {
  db: Queryable;
  clock: Clock;
  log: Logger;
  secrets: { secretKey: Buffer };
  config: Pick<Config, 'smtpEgress' | 'dnsServers'>;
}): AccessTokens {
  const egress = { policy: ctx.config.smtpEgress, resolve: hostResolver(ctx.config.dnsServers) };
  return new AccessTokens(ctx.clock, egress, (accountId, previous, next) =>
    storeRotatedRefreshToken(ctx.db, ctx.secrets.secretKey, accountId, previous, next).catch(() =>
      ctx.log.warn({ accountId }, 'could not store the refresh token the token endpoint rotated; the previous one stays'),
    ),
  );
}
