import type { Queryable } from './database.ts';

/** Sends counted against an account's limits in its current windows (see hour_window_start in 001_core.sql). */
export interface AccountUsage {
  accountId: number;
  sentThisHour: number;
  sentToday: number;
  hourlyLimit: number;
  dailyLimit: number;
}

export async function readUsage(db: Queryable, accountIds: number[], now: Date): Promise<Map<number, AccountUsage>> {
  const rows = await db.query<AccountUsage>(
    `SELECT a.id AS "accountId", a.hourly_limit AS "hourlyLimit", a.daily_limit AS "dailyLimit",
            coalesce(sum(u.sent) FILTER (WHERE u.hour_start = hour_window_start($2, a.timezone)), 0) AS "sentThisHour",
            coalesce(sum(u.sent), 0) AS "sentToday"
       FROM smtp_accounts a
       LEFT JOIN smtp_usage u ON u.account_id = a.id
        AND u.hour_start >= day_window_start($2, a.timezone) AND u.hour_start < next_day_window_start($2, a.timezone)
      WHERE a.id = ANY($1::int[])
      GROUP BY a.id`,
    [accountIds, now],
    { prepared: 'mp_read_usage' },
  );
  return new Map(rows.map((r) => [r.accountId, r]));
}

export interface Reservation {
  granted: number;
  /** The hour row the grant was counted in: unused grants go back there. */
  hourStart: Date;
  /** The grant may only be spent before this moment (the end of its clock hour). */
  validUntil: Date;
}

/**
 * Reserves up to `want` sends for an account, never past its hourly or daily limit, in one round
 * trip; concurrent reservations of one account (in any process) cannot overshoot. The steps are in
 * reserve_sends (007_reserve_sends.sql).
 */
export async function reserveSends(db: Queryable, accountId: number, want: number, now: Date): Promise<Reservation> {
  const [row] = await db.query<Reservation>(
    'SELECT granted, hour_start AS "hourStart", valid_until AS "validUntil" FROM reserve_sends($1, $2, $3)',
    [accountId, want, now],
    { prepared: 'mp_reserve_sends' },
  );
  return row!;
}

/** Gives back reserved sends that were not spent. */
export async function releaseSends(db: Queryable, accountId: number, hourStart: Date, count: number): Promise<void> {
  if (count <= 0) return;
  await db.query('UPDATE smtp_usage SET sent = greatest(0, sent - $3) WHERE account_id = $1 AND hour_start = $2', [
    accountId,
    hourStart,
    count,
  ]);
}

/**
 * When each account next regains quota: now if it has some, else the end of the window that is
 * full (midnight when the day is full, even if the hour resets sooner).
 */
export async function nextQuotaAt(db: Queryable, accountIds: number[], now: Date): Promise<Map<number, Date>> {
  const rows = await db.query<{ id: number; at: Date }>(
    `SELECT a.id,
            CASE WHEN a.daily_limit > 0 AND coalesce(d.sent, 0) >= a.daily_limit THEN next_day_window_start($2, a.timezone)
                 WHEN a.hourly_limit > 0 AND coalesce(h.sent, 0) >= a.hourly_limit
                   THEN least(hour_window_start($2, a.timezone) + interval '1 hour', next_day_window_start($2, a.timezone))
                 ELSE $2::timestamptz END AS at
       FROM smtp_accounts a
       LEFT JOIN LATERAL (SELECT sum(sent) AS sent FROM smtp_usage WHERE account_id = a.id
                            AND hour_start >= day_window_start($2, a.timezone) AND hour_start < next_day_window_start($2, a.timezone)) d ON true
       LEFT JOIN LATERAL (SELECT sent FROM smtp_usage WHERE account_id = a.id AND hour_start = hour_window_start($2, a.timezone)) h ON true
      WHERE a.id = ANY($1::int[])`,
    [accountIds, now],
  );
  return new Map(rows.map((r) => [r.id, r.at]));
}
