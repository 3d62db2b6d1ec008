import { decryptSecret, encryptSecret } from '../secrets.ts';
import type { Queryable } from './database.ts';
import { isForeignKeyViolation, type Security } from './smtpServers.ts';

export type HealthState = 'healthy' | 'throttled' | 'exhausted' | 'disabled';

/** An account as its owner sees it: never the password, only whether there is one. */
export interface SmtpAccount {
  id: number;
  serverId: number;
  email: string;
  username: string | null;
  hasPassword: boolean;
  hourlyLimit: number;
  dailyLimit: number;
  ratePerSecond: number | null;
  timezone: string;
  active: boolean;
  health: HealthState;
  healthUntil: Date | null;
  healthReason: string | null;
  createdAt: Date;
}

export interface AccountFields {
  serverId: number;
  email: string;
  username: string | null;
  /** Plaintext; null = a relay that trusts the sender's address (no AUTH). */
  password: string | null;
  hourlyLimit: number;
  dailyLimit: number;
  ratePerSecond: number | null;
  timezone: string;
  active: boolean;
}

export interface AccountHealth {
  state: HealthState;
  until?: Date;
  reason?: string;
}

const COLUMNS = `id, server_id AS "serverId", email, username, password_enc IS NOT NULL AS "hasPassword",
  hourly_limit AS "hourlyLimit", daily_limit AS "dailyLimit", rate_per_second AS "ratePerSecond", timezone, active,
  health, health_until AS "healthUntil", health_reason AS "healthReason", created_at AS "createdAt"`;

const ACTIVE_CAMPAIGN_STATUSES = ['running', 'paused', 'paused_limits', 'scheduled'];

// The row id is bound into the ciphertext, so a password copied onto another account does not decrypt.
const passwordContext = (accountId: number) => `smtp_accounts:${accountId}:password`;

export function sealAccountPassword(secretKey: Buffer, accountId: number, password: string): string {
  return encryptSecret(secretKey, password, passwordContext(accountId));
}

/** Decrypts an account's stored password; throws when it was tampered with or belongs to another row. */
export function accountPassword(secretKey: Buffer, accountId: number, passwordEnc: string): string {
  return decryptSecret(secretKey, passwordEnc, passwordContext(accountId));
}

/**
 * What the account can do now. A throttle or exhaustion lasts until its `health_until`; an account
 * its user switched off reads as disabled, keeping the engine's reason when it had disabled it first.
 */
export function accountHealth(acct: Pick<SmtpAccount, 'active' | 'health' | 'healthUntil' | 'healthReason'>, now: Date): AccountHealth {
  const reason = acct.healthReason ?? undefined;
  if (!acct.active) return { state: 'disabled', reason: acct.health === 'disabled' && reason ? reason : 'deactivated by the user' };
  if (acct.health === 'disabled') return { state: 'disabled', reason };
  if ((acct.health === 'throttled' || acct.health === 'exhausted') && acct.healthUntil && acct.healthUntil > now) {
    return { state: acct.health, until: acct.healthUntil, reason };
  }
  return { state: 'healthy' };
}

/**
 * PostgreSQL computes the limit windows in the account's timezone, so it must know the name
 * (its tz database may differ from the one Intl uses).
 */
export async function timezoneKnown(db: Queryable, timezone: string): Promise<boolean> {
  try {
    await db.query(`SELECT timestamptz 'epoch' AT TIME ZONE $1`, [timezone]);
    return true;
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code === '22023') return false;
    throw err;
  }
}

/** Adds an account on one of the user's servers; undefined when the server is not the user's. */
export async function insertAccount(
  db: Queryable,
  secretKey: Buffer,
  userId: number,
  fields: AccountFields,
  now: Date,
): Promise<SmtpAccount | undefined> {
  // The id is taken first because the ciphertext is bound to it.
  const [seq] = await db.query<{ id: number }>(`SELECT nextval('smtp_accounts_id_seq')::int AS id`);
  const id = seq!.id;
  const passwordEnc = fields.password === null ? null : sealAccountPassword(secretKey, id, fields.password);
  try {
    const [row] = await db.query<SmtpAccount>(
      `INSERT INTO smtp_accounts (id, user_id, server_id, email, username, password_enc, hourly_limit, daily_limit,
                                  rate_per_second, timezone, active, created_at)
       SELECT $1, $2, s.id, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM smtp_servers s WHERE s.id = $3 AND s.user_id = $2
       RETURNING ${COLUMNS}`,
      [
        id,
        userId,
        fields.serverId,
        fields.email,
        fields.username,
        passwordEnc,
        fields.hourlyLimit,
        fields.dailyLimit,
        fields.ratePerSecond,
        fields.timezone,
        fields.active,
        now,
      ],
    );
    return row;
  } catch (err) {
    // The server was deleted between the check and the insert.
    if (isForeignKeyViolation(err)) return undefined;
    throw err;
  }
}

export async function listAccounts(db: Queryable, userId: number, after: number, limit: number): Promise<SmtpAccount[]> {
  return db.query<SmtpAccount>(
    `SELECT ${COLUMNS} FROM smtp_accounts WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
    [userId, after, limit],
  );
}

export async function getAccount(db: Queryable, userId: number, id: number): Promise<SmtpAccount | undefined> {
  const [row] = await db.query<SmtpAccount>(`SELECT ${COLUMNS} FROM smtp_accounts WHERE id = $1 AND user_id = $2`, [id, userId]);
  return row;
}

const COLUMN_OF: Record<Exclude<keyof AccountFields, 'password'>, string> = {
  serverId: 'server_id',
  email: 'email',
  username: 'username',
  hourlyLimit: 'hourly_limit',
  dailyLimit: 'daily_limit',
  ratePerSecond: 'rate_per_second',
  timezone: 'timezone',
  active: 'active',
};

/**
 * Changes the given fields (undefined = unchanged, null = cleared). Answers 'not_found' when the user
 * has no such account and 'bad_server' when serverId is not one of the user's servers.
 */
export async function updateAccount(
  db: Queryable,
  secretKey: Buffer,
  userId: number,
  id: number,
  changes: Partial<AccountFields>,
): Promise<SmtpAccount | 'not_found' | 'bad_server'> {
  const sets: string[] = [];
  const params: unknown[] = [id, userId];
  const set = (column: string, value: unknown) => {
    params.push(value);
    sets.push(`${column} = $${params.length}`);
  };
  for (const [key, column] of Object.entries(COLUMN_OF) as [keyof typeof COLUMN_OF, string][]) {
    if (changes[key] !== undefined) set(column, changes[key]);
  }
  if (changes.password !== undefined) {
    set('password_enc', changes.password === null ? null : sealAccountPassword(secretKey, id, changes.password));
  }
  // Re-enabling an account or changing how it connects deserves a fresh attempt, whatever failed before.
  const reconfigured =
    changes.active === true || changes.password !== undefined || changes.username !== undefined || changes.serverId !== undefined;
  if (reconfigured) sets.push(`health = 'healthy', health_until = NULL, health_reason = NULL`);
  if (sets.length === 0) return (await getAccount(db, userId, id)) ?? 'not_found';

  // The new server must be the user's: an unknown or foreign server id updates nothing.
  let serverCheck = '';
  if (changes.serverId !== undefined) {
    params.push(changes.serverId);
    serverCheck = `AND EXISTS (SELECT 1 FROM smtp_servers s WHERE s.id = $${params.length} AND s.user_id = $2)`;
  }
  try {
    const [row] = await db.query<SmtpAccount>(
      `UPDATE smtp_accounts SET ${sets.join(', ')} WHERE id = $1 AND user_id = $2 ${serverCheck} RETURNING ${COLUMNS}`,
      params,
    );
    if (row) return row;
  } catch (err) {
    if (isForeignKeyViolation(err)) return 'bad_server';
    throw err;
  }
  return (await getAccount(db, userId, id)) ? 'bad_server' : 'not_found';
}

/** Removes an account unless its user has a campaign that may still send through it. */
export async function deleteAccount(db: Queryable, userId: number, id: number): Promise<'deleted' | 'not_found' | 'in_use'> {
  const [row] = await db.query<{ inUse: boolean }>(
    `WITH target AS (SELECT id FROM smtp_accounts WHERE id = $1 AND user_id = $2),
          busy AS (SELECT EXISTS (SELECT 1 FROM campaigns WHERE user_id = $2 AND status = ANY($3::text[])) AS busy),
          gone AS (DELETE FROM smtp_accounts a USING target, busy WHERE a.id = target.id AND NOT busy.busy RETURNING a.id)
     SELECT busy.busy AS "inUse" FROM target, busy`,
    [id, userId, ACTIVE_CAMPAIGN_STATUSES],
  );
  if (!row) return 'not_found';
  return row.inUse ? 'in_use' : 'deleted';
}

/** Everything a sender needs to open an SMTP session for an account, password decrypted. */
export interface SendingAccount {
  id: number;
  userId: number;
  email: string;
  username: string | null;
  /** null: no AUTH (a relay that trusts the sender's address). */
  password: string | null;
  hourlyLimit: number;
  dailyLimit: number;
  ratePerSecond: number | null;
  timezone: string;
  active: boolean;
  server: { id: number; host: string; port: number; security: Security; maxConnections: number; active: boolean };
}

/**
 * Loads an account with its server for sending. Throws when the stored password does not decrypt
 * (wrong MAILPILOT_SECRET_KEY or a tampered row): the caller disables the account with that reason.
 */
export async function loadSendingAccount(
  db: Queryable,
  secretKey: Buffer,
  userId: number,
  accountId: number,
): Promise<SendingAccount | undefined> {
  const [row] = await db.query<
    Omit<SendingAccount, 'password' | 'server'> & {
      passwordEnc: string | null;
      serverId: number;
      host: string;
      port: number;
      security: Security;
      maxConnections: number;
      serverActive: boolean;
    }
  >(
    `SELECT a.id, a.user_id AS "userId", a.email, a.username, a.password_enc AS "passwordEnc",
            a.hourly_limit AS "hourlyLimit", a.daily_limit AS "dailyLimit", a.rate_per_second AS "ratePerSecond",
            a.timezone, a.active, s.id AS "serverId", s.host, s.port, s.security,
            s.max_connections AS "maxConnections", s.active AS "serverActive"
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id AND s.user_id = a.user_id
      WHERE a.id = $1 AND a.user_id = $2`,
    [accountId, userId],
  );
  if (!row) return undefined;
  const { passwordEnc, serverId, host, port, security, maxConnections, serverActive, ...account } = row;
  return {
    ...account,
    password: passwordEnc === null ? null : accountPassword(secretKey, row.id, passwordEnc),
    server: { id: serverId, host, port, security, maxConnections, active: serverActive },
  };
}
