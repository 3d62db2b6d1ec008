import { decryptSecret, encryptSecret } from '../secrets.ts';
import type { MailboxState, Security } from '../states.ts';
import type { Queryable } from './database.ts';

/**
 * Each account's own mailbox, read over IMAP for the bounces, complaints and replies that land
 * there (src/reports/mailboxReader.ts): its settings (the password sealed like the SMTP password,
 * bound to the account), how reading it goes, how far it has been read, and which process reads it.
 */

/** Settings as the user gives them; the password in plaintext. */
export interface MailboxSettings {
  host: string;
  port: number;
  security: Security;
  /** null: the account's SMTP username, else its address. */
  username: string | null;
  /** null: the account's SMTP password. */
  password: string | null;
  mailbox: string;
}

/** A mailbox as its owner sees it: never the password. */
export interface MailboxView {
  host: string;
  port: number;
  security: Security;
  username: string | null;
  mailbox: string;
  hasPassword: boolean;
  status: { state: MailboxState; checkedAt: Date | null; reason?: string };
}

const passwordContext = (accountId: number) => `account_mailboxes:${accountId}:password`;

export function sealMailboxPassword(secretKey: Buffer, accountId: number, password: string): string {
  return encryptSecret(secretKey, password, passwordContext(accountId));
}

export function mailboxPassword(secretKey: Buffer, accountId: number, sealed: string): string {
  return decryptSecret(secretKey, sealed, passwordContext(accountId));
}

/**
 * Sets (or with null removes) an account's mailbox. Any change starts over: not yet checked, read
 * again from the account's creation (what was applied before is not applied twice), and the
 * process reading it lets go, so the new settings are used at once.
 */
export async function saveMailbox(
  db: Queryable,
  secretKey: Buffer,
  userId: number,
  accountId: number,
  settings: MailboxSettings | null,
  now: Date,
): Promise<void> {
  if (settings === null) {
    await db.query('DELETE FROM account_mailboxes WHERE account_id = $1 AND user_id = $2', [accountId, userId]);
    return;
  }
  const sealed = settings.password === null ? null : sealMailboxPassword(secretKey, accountId, settings.password);
  await db.query(
    `INSERT INTO account_mailboxes (account_id, user_id, host, port, security, username, password_enc, mailbox, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (account_id) DO UPDATE SET host = excluded.host, port = excluded.port, security = excluded.security,
       username = excluded.username, password_enc = excluded.password_enc, mailbox = excluded.mailbox, updated_at = excluded.updated_at,
       state = 'unchecked', state_reason = NULL, checked_at = NULL, uid_validity = NULL, last_uid = NULL,
       lease_owner = NULL, lease_expires_at = NULL, version = account_mailboxes.version + 1`,
    [accountId, userId, settings.host, settings.port, settings.security, settings.username, sealed, settings.mailbox, now],
  );
}

/** The mailboxes of these accounts (of one user), by account id. */
export async function mailboxViews(db: Queryable, userId: number, accountIds: number[]): Promise<Map<number, MailboxView>> {
  if (accountIds.length === 0) return new Map();
  const rows = await db.query<{ accountId: number; host: string; port: number; security: Security; username: string | null; mailbox: string;
    hasPassword: boolean; state: MailboxState; stateReason: string | null; checkedAt: Date | null }>(
    `SELECT account_id AS "accountId", host, port, security, username, mailbox, password_enc IS NOT NULL AS "hasPassword",
            state, state_reason AS "stateReason", checked_at AS "checkedAt"
       FROM account_mailboxes WHERE user_id = $1 AND account_id = ANY($2::int[])`,
    [userId, accountIds],
  );
  return new Map(
    rows.map(({ accountId, stateReason, state, checkedAt, ...view }) => [
      accountId,
      { ...view, status: { state, checkedAt, ...(stateReason ? { reason: stateReason } : {}) } },
    ]),
  );
}

/** A mailbox to read, with what connecting to it needs (secrets still sealed). */
export interface MailboxToRead {
  accountId: number;
  userId: number;
  host: string;
  port: number;
  security: Security;
  /** Own username, else the account's SMTP username, else its address. */
  username: string;
  /** Own sealed password (mailbox context), else the account's sealed SMTP password (account context). */
  passwordEnc: string | null;
  passwordIsSmtp: boolean;
  mailbox: string;
  /** Mail older than a day before this is never about the account's sends. */
  accountCreatedAt: Date;
  uidValidity: string | null;
  lastUid: number | null;
  /** Grows whenever the settings change: a reader on older settings is replaced. */
  version: number;
}

/**
 * Takes (or keeps) the lease on up to `limit` mailboxes of switched-on accounts that no live
 * process reads, and renews the ones this process holds. Returns every mailbox it now holds.
 */
export async function leaseMailboxes(db: Queryable, owner: string, now: Date, expiresAt: Date, limit: number): Promise<MailboxToRead[]> {
  return db.query<MailboxToRead>(
    `WITH free AS (
       SELECT m.account_id FROM account_mailboxes m JOIN smtp_accounts a ON a.id = m.account_id
        WHERE a.active AND (m.lease_owner = $1 OR m.lease_owner IS NULL OR m.lease_expires_at < $2)
        ORDER BY m.lease_owner = $1 DESC, m.account_id LIMIT $4
        FOR UPDATE OF m SKIP LOCKED
     ), taken AS (
       UPDATE account_mailboxes m SET lease_owner = $1, lease_expires_at = $3 FROM free WHERE m.account_id = free.account_id
       RETURNING m.*
     )
     SELECT t.account_id AS "accountId", t.user_id AS "userId", t.host, t.port, t.security,
            coalesce(t.username, a.username, a.email) AS username,
            coalesce(t.password_enc, a.password_enc) AS "passwordEnc", t.password_enc IS NULL AS "passwordIsSmtp",
            t.mailbox, a.created_at AS "accountCreatedAt", t.uid_validity::text AS "uidValidity", t.last_uid AS "lastUid",
            t.version
       FROM taken t JOIN smtp_accounts a ON a.id = t.account_id
      ORDER BY t.account_id`,
    [owner, now, expiresAt, limit],
  );
}

/** Lets go of every mailbox this process holds (shutdown). */
export async function releaseMailboxes(db: Queryable, owner: string): Promise<void> {
  await db.query('UPDATE account_mailboxes SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1', [owner]);
}

/** Whose reading a write is: the process holding the mailbox, on the settings it read with. */
export interface MailboxFence {
  accountId: number;
  owner: string;
  version: number;
}

/** How reading the mailbox went, as its owner sees it; only while `fence` holds. */
export async function setMailboxState(db: Queryable, fence: MailboxFence, state: MailboxState, reason: string | null, now: Date): Promise<void> {
  await db.query(
    `UPDATE account_mailboxes SET state = $4, state_reason = $5, checked_at = $6 WHERE account_id = $1 AND lease_owner = $2 AND version = $3`,
    [fence.accountId, fence.owner, fence.version, state, reason, now],
  );
}

/** How far the mailbox has been read; only while `fence` holds. */
export async function saveMailboxCursor(db: Queryable, fence: MailboxFence, uidValidity: string, lastUid: number): Promise<void> {
  await db.query(
    `UPDATE account_mailboxes SET uid_validity = $4::bigint, last_uid = $5 WHERE account_id = $1 AND lease_owner = $2 AND version = $3`,
    [fence.accountId, fence.owner, fence.version, uidValidity, lastUid],
  );
}

/** Mailbox passwords as stored, for re-encryption under a new key (cli/rotateSecret.ts); locked until the transaction ends. */
export async function lockSealedMailboxPasswords(tx: Queryable): Promise<{ id: number; passwordEnc: string }[]> {
  return tx.query<{ id: number; passwordEnc: string }>(
    'SELECT account_id AS id, password_enc AS "passwordEnc" FROM account_mailboxes WHERE password_enc IS NOT NULL ORDER BY account_id FOR UPDATE',
  );
}

export async function storeSealedMailboxPasswords(tx: Queryable, rows: { id: number; passwordEnc: string }[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `UPDATE account_mailboxes m SET password_enc = r.enc FROM unnest($1::int[], $2::text[]) AS r(id, enc) WHERE m.account_id = r.id`,
    [rows.map((r) => r.id), rows.map((r) => r.passwordEnc)],
  );
}

/** Mailboxes a running process reads right now. */
export async function liveMailboxLeaseCount(db: Queryable, now: Date): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*) AS n FROM account_mailboxes WHERE lease_owner IS NOT NULL AND lease_expires_at >= $1', [now]);
  return row!.n;
}
