import type { Queryable } from './database.ts';
import { recoverAccountMessages } from './messages.ts';
import type { AccountDkimColumns } from './smtpAccounts.ts';

/** What an account worker needs to know about its account. */
export interface WorkerAccount extends AccountDkimColumns {
  id: number;
  userId: number;
  email: string;
  username: string | null;
  passwordEnc: string | null;
  ratePerSecond: number | null;
  timezone: string;
  host: string;
  port: number;
  security: 'none' | 'starttls' | 'tls';
  /** This account's share of its server's connection cap. */
  connections: number;
  /** Throttles in a row without a successful send since (see accountHealth.ts). */
  throttleStrikes: number;
}

// Usable: switched on, server switched on, not disabled, and any back-off window over.
const USABLE = `a.active AND s.active AND (a.health = 'healthy' OR (a.health IN ('throttled', 'exhausted') AND a.health_until <= $1))`;

/** Accounts that could start sending now: usable, unleased, and their user has due work. */
export async function findLaunchCandidates(db: Queryable, now: Date): Promise<{ id: number; userId: number }[]> {
  return db.query(
    `SELECT a.id, a.user_id AS "userId"
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id
      WHERE ${USABLE}
        AND (a.lease_owner IS NULL OR a.lease_expires_at < $1)
        AND EXISTS (
          SELECT 1 FROM campaigns c
           WHERE c.user_id = a.user_id AND c.status = 'running'
             AND EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = c.id AND m.status = 'pending'
                           AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= $1)))
      -- Users take turns (everyone's first account, then everyone's second, ...): a process with
      -- room for only some accounts (its share, see Engine.launch) takes a few of everyone's.
      ORDER BY row_number() OVER (PARTITION BY a.user_id ORDER BY a.id), a.user_id`,
    [now],
  );
}

/*
 * Leases. The account lease IS the message lease: a 'sending' row belongs to whoever holds its
 * account's lease (messages.account_id), so one lease per account covers every message in flight
 * through it, and recovery is per account: taking over an expired lease, sweeping one, or releasing
 * one returns that account's 'sending' rows to the queue in the same transaction. No message needs
 * its own lease column, and no claim or outcome write needs a per-message heartbeat. Outcome writes
 * are fenced by lease_owner, so a worker that lost its account cannot overwrite its successor.
 */

/**
 * Takes the leases of those of the accounts that are usable and free (or expired). Whatever
 * previous holders left in 'sending' goes back to the queue in the same transaction, before this
 * owner can claim anything. One statement for many accounts: a process starting a thousand workers
 * one transaction at a time took minutes, and the users whose accounts came first ran ahead.
 */
export async function takeLeases(tx: Queryable, accountIds: number[], owner: string, now: Date, expiresAt: Date): Promise<WorkerAccount[]> {
  const rows = await tx.query<WorkerAccount>(
    `UPDATE smtp_accounts a SET lease_owner = $2, lease_expires_at = $4
       FROM smtp_servers s
      WHERE a.id = ANY($1::int[]) AND s.id = a.server_id AND ${USABLE.replaceAll('$1', '$3')}
        AND (a.lease_owner IS NULL OR a.lease_expires_at < $3)
      RETURNING a.id, a.user_id AS "userId", a.email, a.username, a.password_enc AS "passwordEnc",
                a.rate_per_second AS "ratePerSecond", a.timezone, s.host, s.port, s.security,
                a.dkim_domain AS "dkimDomain", a.dkim_selector AS "dkimSelector", a.dkim_key_enc AS "dkimKeyEnc",
                greatest(1, s.max_connections / (SELECT count(*) FROM smtp_accounts x WHERE x.server_id = s.id AND x.active))::int AS connections,
                a.throttle_strikes AS "throttleStrikes"`,
    [accountIds, owner, now, expiresAt],
  );
  if (rows.length > 0) await recoverAccountMessages(tx, rows.map((r) => r.id));
  return rows;
}

/**
 * Extends the leases `owner` still holds among `accountIds`. Returns each of them with whether it
 * was extended: a row another transaction has locked is skipped rather than waited for (one stuck
 * lock must not hold up every account's renewal), and stays the owner's. Accounts missing from
 * the result are no longer the owner's.
 */
export async function renewLeases(db: Queryable, owner: string, accountIds: number[], expiresAt: Date): Promise<Map<number, boolean>> {
  const rows = await db.query<{ id: number; renewed: boolean }>(
    `WITH renewed AS (
       UPDATE smtp_accounts SET lease_expires_at = $3
        WHERE id IN (SELECT id FROM smtp_accounts WHERE id = ANY($2::int[]) AND lease_owner = $1 FOR UPDATE SKIP LOCKED)
        RETURNING id)
     SELECT a.id, r.id IS NOT NULL AS renewed
       FROM smtp_accounts a LEFT JOIN renewed r ON r.id = a.id
      WHERE a.id = ANY($2::int[]) AND a.lease_owner = $1`,
    [owner, accountIds, expiresAt],
    { prepared: 'mp_renew_leases' },
  );
  return new Map(rows.map((r) => [r.id, r.renewed]));
}

/**
 * Gives the lease back. The worker has recorded every outcome it knows, so anything still 'sending'
 * under the account is an orphan (a claim whose reply was lost to a dropped connection): it goes
 * back to the queue now rather than waiting for a sweep.
 */
export async function releaseLease(tx: Queryable, accountId: number, owner: string): Promise<number> {
  const released = await tx.query(
    'UPDATE smtp_accounts SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2 RETURNING id',
    [accountId, owner],
  );
  return released.length > 0 ? recoverAccountMessages(tx, [accountId]) : 0;
}

/** Frees a lease whose holder stopped heartbeating (or an unleased account's orphans), returning its messages to the queue. */
export async function sweepAccount(tx: Queryable, accountId: number, now: Date): Promise<number> {
  const freed = await tx.query(
    `UPDATE smtp_accounts SET lease_owner = NULL, lease_expires_at = NULL
      WHERE id = $1 AND (lease_owner IS NULL OR lease_expires_at < $2) RETURNING id`,
    [accountId, now],
  );
  return freed.length > 0 ? recoverAccountMessages(tx, [accountId]) : 0;
}

/** Accounts whose holder stopped heartbeating, and unleased accounts that still have 'sending' rows. */
export async function accountsToSweep(db: Queryable, now: Date): Promise<number[]> {
  const rows = await db.query<{ id: number }>(
    `SELECT id FROM smtp_accounts WHERE lease_owner IS NOT NULL AND lease_expires_at < $1
     UNION
     SELECT a.id FROM smtp_accounts a
      WHERE a.lease_owner IS NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.account_id = a.id AND m.status = 'sending')`,
    [now],
  );
  return rows.map((r) => r.id);
}

/** Accounts whose lease another process holds live: with this process's own, what the processes share. */
export async function countOthersLiveLeases(db: Queryable, owner: string, now: Date): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    'SELECT count(*) AS n FROM smtp_accounts WHERE lease_owner IS NOT NULL AND lease_owner <> $1 AND lease_expires_at >= $2',
    [owner, now],
  );
  return row!.n;
}

export type Health = 'healthy' | 'throttled' | 'exhausted' | 'disabled';

export async function setAccountHealth(db: Queryable, accountId: number, health: Health, until: Date | null, reason: string | null): Promise<void> {
  await db.query('UPDATE smtp_accounts SET health = $2, health_until = $3, health_reason = $4 WHERE id = $1', [accountId, health, until, reason]);
}

/**
 * Throttles the account for `baseMs` doubled per throttle in a row (capped at `maxMs`), counting
 * this one. Returns the end of the back-off.
 */
export async function throttleAccount(
  db: Queryable,
  accountId: number,
  p: { now: Date; baseMs: number; maxMs: number; reason: string },
): Promise<Date> {
  const [row] = await db.query<{ until: Date }>(
    `UPDATE smtp_accounts
        SET health = 'throttled', health_reason = $5, throttle_strikes = throttle_strikes + 1,
            health_until = $2::timestamptz + make_interval(secs => least($4::float8, $3::float8 * power(2, least(throttle_strikes, 30))) / 1000)
      WHERE id = $1 RETURNING health_until AS until`,
    [accountId, p.now, p.baseMs, p.maxMs, p.reason],
  );
  return row?.until ?? p.now;
}

/** Marks the account out of quota until its next calendar day (in its timezone) begins. */
export async function exhaustAccount(db: Queryable, accountId: number, now: Date, reason: string): Promise<Date> {
  const [row] = await db.query<{ until: Date }>(
    `UPDATE smtp_accounts SET health = 'exhausted', health_until = next_day_window_start($2, timezone), health_reason = $3
      WHERE id = $1 RETURNING health_until AS until`,
    [accountId, now, reason],
  );
  return row?.until ?? now;
}

/** A successful send ends a run of throttles: the next one backs off from the base again. */
export async function clearThrottleStrikes(db: Queryable, accountId: number): Promise<void> {
  await db.query('UPDATE smtp_accounts SET throttle_strikes = 0 WHERE id = $1 AND throttle_strikes > 0', [accountId]);
}

export interface UserAccountState {
  id: number;
  /** Switched on by its user, on a server switched on. */
  active: boolean;
  usable: boolean;
  leased: boolean;
  /** End of a throttle or exhaustion window still in force. */
  blockedUntil: Date | null;
  health: Health;
  healthReason: string | null;
  email: string;
}

/** Every account of a user with what decides whether it can send, for the limits check. */
export async function userAccountStates(db: Queryable, userId: number, now: Date): Promise<UserAccountState[]> {
  return db.query<UserAccountState>(
    `SELECT a.id, a.email, a.health, a.health_reason AS "healthReason", (a.active AND s.active) AS active,
            (a.active AND s.active AND a.health <> 'disabled') AS usable,
            (a.lease_owner IS NOT NULL AND a.lease_expires_at >= $2) AS leased,
            CASE WHEN a.health IN ('throttled', 'exhausted') AND a.health_until > $2 THEN a.health_until END AS "blockedUntil"
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id
      WHERE a.user_id = $1 ORDER BY a.id`,
    [userId, now],
  );
}

/** Users with due work in a running campaign and no account sending for them right now. */
export async function idleUsersWithWork(db: Queryable, now: Date): Promise<number[]> {
  const rows = await db.query<{ userId: number }>(
    `SELECT DISTINCT c.user_id AS "userId" FROM campaigns c
      WHERE c.status = 'running'
        AND NOT EXISTS (SELECT 1 FROM smtp_accounts a WHERE a.user_id = c.user_id AND a.lease_owner IS NOT NULL AND a.lease_expires_at >= $1)
        AND EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = c.id AND m.status = 'pending'
                      AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= $1))`,
    [now],
  );
  return rows.map((r) => r.userId);
}

/** Number of a user's accounts that could ever send (active, on an active server, not disabled). */
export async function countUsableAccounts(db: Queryable, userId: number): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id
      WHERE a.user_id = $1 AND a.active AND s.active AND a.health <> 'disabled'`,
    [userId],
  );
  return row!.n;
}
