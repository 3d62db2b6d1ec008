import { canSendNowSql } from './accountHealth.ts';
import type { Queryable } from './database.ts';
import { recoverAccountMessages } from './messages.ts';
import { SENDING_ACCOUNT_COLUMNS, type SendingAccount } from './sendingAccounts.ts';

// Can send now, with the scheduler's clock as $1.
const CAN_SEND_NOW = canSendNowSql('$1');

/** Accounts that could start sending now: usable, unleased, and their user has due work. */
export async function findLaunchCandidates(db: Queryable, now: Date): Promise<{ id: number; userId: number }[]> {
  return db.query(
    `SELECT a.id, a.user_id AS "userId"
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id
      WHERE ${CAN_SEND_NOW}
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
export async function takeLeases(
  tx: Queryable,
  accountIds: number[],
  owner: string,
  now: Date,
  expiresAt: Date,
): Promise<(SendingAccount & { takenOver: boolean })[]> {
  // `prior` is the row as it was (the table joined to itself): an expired lease of another holder
  // taken over, as opposed to a free account, for metrics.
  const rows = await tx.query<SendingAccount & { takenOver: boolean }>(
    `WITH taken AS (
       UPDATE smtp_accounts a SET lease_owner = $2, lease_expires_at = $3
         FROM smtp_servers s, smtp_accounts prior
        WHERE a.id = ANY($4::int[]) AND s.id = a.server_id AND prior.id = a.id AND ${CAN_SEND_NOW}
          AND (a.lease_owner IS NULL OR a.lease_expires_at < $1)
        RETURNING a.id, prior.lease_owner IS NOT NULL AS taken_over)
     SELECT ${SENDING_ACCOUNT_COLUMNS}, taken.taken_over AS "takenOver"
       FROM taken JOIN smtp_accounts a ON a.id = taken.id JOIN smtp_servers s ON s.id = a.server_id`,
    [now, owner, expiresAt, accountIds],
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

/**
 * Frees a lease whose holder stopped heartbeating (or an unleased account's orphans), returning its
 * messages to the queue. `expired`: a holder's lease was freed (not merely orphans requeued).
 */
export async function sweepAccount(tx: Queryable, accountId: number, now: Date): Promise<{ requeued: number; expired: boolean; userId: number | undefined }> {
  const [freed] = await tx.query<{ expired: boolean; userId: number }>(
    `UPDATE smtp_accounts a SET lease_owner = NULL, lease_expires_at = NULL
       FROM smtp_accounts prior
      WHERE a.id = $1 AND prior.id = a.id AND (a.lease_owner IS NULL OR a.lease_expires_at < $2)
      RETURNING prior.lease_owner IS NOT NULL AS expired, a.user_id AS "userId"`,
    [accountId, now],
  );
  if (!freed) return { requeued: 0, expired: false, userId: undefined };
  return { requeued: await recoverAccountMessages(tx, [accountId]), expired: freed.expired, userId: freed.userId };
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
