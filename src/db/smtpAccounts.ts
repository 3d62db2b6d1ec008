import { decryptSecret, encryptSecret } from '../secrets.ts';
import { dkimKey, type DkimKey } from '../smtp/dkim.ts';
import type { Queryable } from './database.ts';
import type { HealthState } from '../states.ts';
import type { LimitWindowKind } from '../sendingPolicy/limitWindows.ts';
import type { Warmup } from '../sendingPolicy/policy.ts';
import type { PresetName } from '../sendingPolicy/presets.ts';
import type { SendingWindow } from '../sendingPolicy/sendingWindow.ts';
import { isForeignKeyViolation } from './smtpServers.ts';

/** An account's OAuth2 grant as its owner sees it: never the client secret or the refresh token. */
export interface OAuthView {
  type: 'oauth2';
  clientId: string;
  tokenUrl: string;
  /** The XOAUTH2 user: the one given, else the account's address. */
  user: string;
}

/** An account's sending policy settings (API.md "Sending policy"). */
export interface PolicySettings {
  limitWindow: LimitWindowKind;
  preset: PresetName | null;
  sendingWindow: SendingWindow | null;
  warmup: Warmup | null;
  minGapSeconds: number | null;
  maxGapSeconds: number | null;
  /** SMTP sessions at most (within its server's share); null = its share. */
  maxConnections: number | null;
}

/** An account as its owner sees it: never the password, only whether there is one. */
export interface SmtpAccount extends PolicySettings {
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
  /** DKIM signing, never the private key. */
  dkim: { domain: string; selector: string } | null;
  /** Envelope senders are VERP addresses at this domain (src/reports/verp.ts). */
  bounceDomain: string | null;
  /** XOAUTH2 instead of a password, or null. */
  auth: OAuthView | null;
  /** What the server taught the engine (db/accountHealth.ts LearnedLimits). */
  connectionCap: number | null;
  recoveryRate: number | null;
  recoveryUntil: Date | null;
  createdAt: Date;
}

/** OAuth2 (XOAUTH2) credentials as given, secrets in plaintext (stored sealed). */
export interface OAuthSettings {
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  tokenUrl: string;
  /** The XOAUTH2 user; null = the account's address. */
  user: string | null;
}

/** DKIM signing for an account's messages: the key as PEM (plaintext; stored encrypted). */
export interface DkimSettings {
  domain: string;
  selector: string;
  privateKey: string;
}

export interface AccountFields extends PolicySettings {
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
  dkim: DkimSettings | null;
  bounceDomain: string | null;
  /** OAuth2 instead of a password; null = none. An account never has both. */
  auth: OAuthSettings | null;
}

const COLUMNS = `id, server_id AS "serverId", email, username, password_enc IS NOT NULL AS "hasPassword",
  hourly_limit AS "hourlyLimit", daily_limit AS "dailyLimit", rate_per_second AS "ratePerSecond", timezone, active,
  health, health_until AS "healthUntil", health_reason AS "healthReason",
  CASE WHEN dkim_domain IS NOT NULL THEN json_build_object('domain', dkim_domain, 'selector', dkim_selector) END AS dkim,
  CASE WHEN oauth_client_id IS NOT NULL
       THEN json_build_object('type', 'oauth2', 'clientId', oauth_client_id, 'tokenUrl', oauth_token_url, 'user', coalesce(oauth_user, email)) END AS auth,
  connection_cap AS "connectionCap", recovery_rate AS "recoveryRate", recovery_until AS "recoveryUntil",
  limit_window AS "limitWindow", preset, sending_window AS "sendingWindow", warmup, min_gap_seconds AS "minGapSeconds",
  max_gap_seconds AS "maxGapSeconds", max_connections AS "maxConnections",
  bounce_domain AS "bounceDomain", created_at AS "createdAt"`;


// The row id is bound into the ciphertext, so a password copied onto another account does not decrypt.
const passwordContext = (accountId: number) => `smtp_accounts:${accountId}:password`;

export function sealAccountPassword(secretKey: Buffer, accountId: number, password: string): string {
  return encryptSecret(secretKey, password, passwordContext(accountId));
}

// Bound to the row like the password.
const dkimContext = (accountId: number) => `smtp_accounts:${accountId}:dkim`;

export function sealDkimKey(secretKey: Buffer, accountId: number, pem: string): string {
  return encryptSecret(secretKey, pem, dkimContext(accountId));
}

/** Decrypts an account's stored DKIM private key (PEM); throws when it was tampered with or belongs to another row. */
export function accountDkimPem(secretKey: Buffer, accountId: number, sealed: string): string {
  return decryptSecret(secretKey, sealed, dkimContext(accountId));
}

// Bound to the row and to the field like the password.
const oauthContext = (accountId: number, field: 'client_secret' | 'refresh_token') => `smtp_accounts:${accountId}:oauth_${field}`;

export function sealOAuthSecret(secretKey: Buffer, accountId: number, field: 'client_secret' | 'refresh_token', value: string): string {
  return encryptSecret(secretKey, value, oauthContext(accountId, field));
}

/** Decrypts a stored OAuth2 secret; throws when it was tampered with or belongs to another row. */
export function accountOAuthSecret(secretKey: Buffer, accountId: number, field: 'client_secret' | 'refresh_token', sealed: string): string {
  return decryptSecret(secretKey, sealed, oauthContext(accountId, field));
}

/** The columns of an OAuth2 grant (`null` clears it), secrets sealed to the row. */
function oauthColumns(secretKey: Buffer, accountId: number, auth: OAuthSettings | null): Record<string, string | null> {
  return {
    oauth_client_id: auth?.clientId ?? null,
    oauth_client_secret_enc: auth ? sealOAuthSecret(secretKey, accountId, 'client_secret', auth.clientSecret) : null,
    oauth_refresh_token_enc: auth ? sealOAuthSecret(secretKey, accountId, 'refresh_token', auth.refreshToken) : null,
    oauth_token_url: auth?.tokenUrl ?? null,
    oauth_user: auth?.user ?? null,
  };
}

/**
 * Stores the refresh token the token endpoint rotated (RFC 6749 §6) in place of `previous`, unless
 * the account's grant changed meanwhile (its user gave another one, or switched to a password).
 */
export async function storeRotatedRefreshToken(db: Queryable, secretKey: Buffer, accountId: number, previous: string, next: string): Promise<void> {
  const [row] = await db.query<{ enc: string | null }>('SELECT oauth_refresh_token_enc AS enc FROM smtp_accounts WHERE id = $1', [accountId]);
  if (!row?.enc || accountOAuthSecret(secretKey, accountId, 'refresh_token', row.enc) !== previous) return;
  await db.query('UPDATE smtp_accounts SET oauth_refresh_token_enc = $3 WHERE id = $1 AND oauth_refresh_token_enc = $2', [
    accountId,
    row.enc,
    sealOAuthSecret(secretKey, accountId, 'refresh_token', next),
  ]);
}

/** An account's DKIM columns as stored, the key still encrypted. */
export interface AccountDkimColumns {
  dkimDomain: string | null;
  dkimSelector: string | null;
  dkimKeyEnc: string | null;
}

/** The account's signing key, decrypted and parsed; undefined when it signs nothing. */
export function accountDkimKey(secretKey: Buffer, accountId: number, c: AccountDkimColumns): DkimKey | undefined {
  if (c.dkimDomain === null || c.dkimSelector === null || c.dkimKeyEnc === null) return undefined;
  return dkimKey(c.dkimDomain, c.dkimSelector, accountDkimPem(secretKey, accountId, c.dkimKeyEnc));
}

/** Decrypts an account's stored password; throws when it was tampered with or belongs to another row. */
export function accountPassword(secretKey: Buffer, accountId: number, passwordEnc: string): string {
  return decryptSecret(secretKey, passwordEnc, passwordContext(accountId));
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
  const { dkim } = fields;
  const values: Record<string, unknown> = {
    id,
    user_id: userId,
    password_enc: fields.password === null ? null : sealAccountPassword(secretKey, id, fields.password),
    created_at: now,
    dkim_domain: dkim?.domain ?? null,
    dkim_selector: dkim?.selector ?? null,
    dkim_key_enc: dkim ? sealDkimKey(secretKey, id, dkim.privateKey) : null,
    ...oauthColumns(secretKey, id, fields.auth),
  };
  for (const [key, column] of Object.entries(COLUMN_OF) as [keyof typeof COLUMN_OF, string][]) values[column] = columnValue(key, fields[key]);
  const columns = Object.keys(values);
  try {
    // The server must be the user's: a foreign or unknown server id inserts nothing.
    const [row] = await db.query<SmtpAccount>(
      `INSERT INTO smtp_accounts (${columns.join(', ')})
       SELECT ${columns.map((_, i) => `$${i + 1}`).join(', ')} FROM smtp_servers s WHERE s.id = $${columns.indexOf('server_id') + 1} AND s.user_id = $${columns.indexOf('user_id') + 1}
       RETURNING ${COLUMNS}`,
      Object.values(values),
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

// Fixed column names only: no input reaches the SQL text.
const COLUMN_OF: Record<Exclude<keyof AccountFields, 'password' | 'dkim' | 'auth'>, string> = {
  serverId: 'server_id',
  email: 'email',
  username: 'username',
  hourlyLimit: 'hourly_limit',
  dailyLimit: 'daily_limit',
  ratePerSecond: 'rate_per_second',
  timezone: 'timezone',
  active: 'active',
  bounceDomain: 'bounce_domain',
  limitWindow: 'limit_window',
  preset: 'preset',
  sendingWindow: 'sending_window',
  warmup: 'warmup',
  minGapSeconds: 'min_gap_seconds',
  maxGapSeconds: 'max_gap_seconds',
  maxConnections: 'max_connections',
};

// jsonb settings travel as JSON text.
const columnValue = (key: keyof typeof COLUMN_OF, value: unknown) =>
  (key === 'sendingWindow' || key === 'warmup') && value !== null && value !== undefined ? JSON.stringify(value) : value;

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
    if (changes[key] !== undefined) set(column, columnValue(key, changes[key]));
  }
  if (changes.password !== undefined) {
    set('password_enc', changes.password === null ? null : sealAccountPassword(secretKey, id, changes.password));
  }
  // A password and an OAuth2 grant exclude each other: giving one drops the other.
  if (changes.auth !== undefined || (changes.password ?? null) !== null) {
    for (const [column, value] of Object.entries(oauthColumns(secretKey, id, changes.auth ?? null))) set(column, value);
  }
  if (changes.auth && changes.password === undefined) set('password_enc', null);
  if (changes.dkim !== undefined) {
    const { dkim } = changes;
    set('dkim_domain', dkim?.domain ?? null);
    set('dkim_selector', dkim?.selector ?? null);
    set('dkim_key_enc', dkim ? sealDkimKey(secretKey, id, dkim.privateKey) : null);
  }
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

/**
 * Clears the stored password of every account on one of the user's servers. Answers the accounts
 * that had one and those that had none.
 */
export async function clearServerPasswords(db: Queryable, userId: number, serverId: number): Promise<{ cleared: number[]; others: number[] }> {
  // The self-join reads each row as it was before the update.
  const rows = await db.query<{ id: number; had: boolean }>(
    `UPDATE smtp_accounts a SET password_enc = NULL FROM smtp_accounts was
      WHERE was.id = a.id AND a.server_id = $1 AND a.user_id = $2
      RETURNING a.id, was.password_enc IS NOT NULL AS had`,
    [serverId, userId],
  );
  return { cleared: rows.filter((r) => r.had).map((r) => r.id), others: rows.filter((r) => !r.had).map((r) => r.id) };
}

/**
 * Removes an account no worker holds (no lease, no message of it in flight): 'sending' when one
 * still does, so its messages are never left behind under an account that is gone.
 */
export async function deleteAccount(db: Queryable, userId: number, id: number): Promise<'deleted' | 'not_found' | 'sending'> {
  const [row] = await db.query<{ busy: boolean }>(
    `WITH target AS (
       SELECT a.id, (a.lease_owner IS NOT NULL OR EXISTS (SELECT 1 FROM messages m WHERE m.account_id = a.id AND m.status = 'sending')) AS busy
         FROM smtp_accounts a WHERE a.id = $1 AND a.user_id = $2),
          gone AS (DELETE FROM smtp_accounts a USING target WHERE a.id = target.id AND NOT target.busy AND a.lease_owner IS NULL RETURNING a.id)
     SELECT NOT EXISTS (SELECT 1 FROM gone) AS busy FROM target`,
    [id, userId],
  );
  if (!row) return 'not_found';
  return row.busy ? 'sending' : 'deleted';
}

/** The user's accounts on one of its servers, in id order. */
export async function accountIdsOnServer(db: Queryable, userId: number, serverId: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>('SELECT id FROM smtp_accounts WHERE user_id = $1 AND server_id = $2 ORDER BY id', [userId, serverId]);
  return rows.map((r) => r.id);
}
