import type { Security } from '../states.ts';
import type { Queryable } from './database.ts';
import { accountPassword, type AccountDkimColumns } from './smtpAccounts.ts';

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
  /** Sessions it opens at most: its share of its server's connection cap, or its own cap if lower. */
  connections: number;
  /** Throttles in a row without a successful send since (see engine/accountHealth.ts). */
  throttleStrikes: number;
}

/**
 * The SMTP sessions an account opens at most, over `smtp_accounts a JOIN smtp_servers s`: its share
 * of its server's connection cap, or its own cap if lower.
 */
export const ACCOUNT_CONNECTIONS_SQL = `least(coalesce(a.max_connections, 2147483647),
  greatest(1, s.max_connections / (SELECT count(*) FROM smtp_accounts x WHERE x.server_id = s.id AND x.active)))::int`;

/** The columns of a SendingAccount over `smtp_accounts a JOIN smtp_servers s`. */
export const SENDING_ACCOUNT_COLUMNS = `a.id, a.user_id AS "userId", a.email, a.username, a.password_enc AS "passwordEnc",
  a.hourly_limit AS "hourlyLimit", a.daily_limit AS "dailyLimit", a.rate_per_second AS "ratePerSecond", a.timezone,
  (a.active AND s.active) AS active,
  json_build_object('id', s.id, 'host', s.host, 'port', s.port, 'security', s.security, 'maxConnections', s.max_connections) AS server,
  ${ACCOUNT_CONNECTIONS_SQL} AS connections,
  a.throttle_strikes AS "throttleStrikes",
  a.dkim_domain AS "dkimDomain", a.dkim_selector AS "dkimSelector", a.dkim_key_enc AS "dkimKeyEnc"`;

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
 * The account's SMTP credentials, the password decrypted. Throws when the stored password does not
 * decrypt (a wrong MAILPILOT_SECRET_KEY, a tampered row, or a ciphertext copied from another row).
 */
export function credentials(secretKey: Buffer, account: Pick<SendingAccount, 'id' | 'username' | 'passwordEnc'>): {
  username: string | null;
  password: string | null;
} {
  return {
    username: account.username,
    password: account.passwordEnc === null ? null : accountPassword(secretKey, account.id, account.passwordEnc),
  };
}
