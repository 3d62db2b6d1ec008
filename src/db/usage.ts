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

/** Advisory lock class (with the account id as key) that serialises one account's reservations. */
const RESERVATION_LOCK = 7_246_002;

/**
 * Reserves up to `want` sends for an account, never past its hourly or daily limit.
 * An advisory lock on the account serialises its reservations across processes, and the usage is
 * read after taking it (a fresh snapshot), so concurrent reservations cannot overshoot. Not the
 * account row's lock: lease renewals update that row and must never wait on a reservation.
 */
export async function reserveSends(tx: Queryable, accountId: number, want: number, now: Date): Promise<Reservation> {
  const [acct] = await tx.query<{ hourStart: Date; validUntil: Date; hourlyLimit: number; dailyLimit: number; timezone: string }>(
    `SELECT hour_window_start($2, timezone) AS "hourStart",
            least(hour_window_start($2, timezone) + interval '1 hour', next_day_window_start($2, timezone)) AS "validUntil",
            hourly_limit AS "hourlyLimit", daily_limit AS "dailyLimit", timezone
       FROM smtp_accounts, pg_advisory_xact_lock($3::int, $1::int) WHERE id = $1`,
    [accountId, now, RESERVATION_LOCK],
    { prepared: 'mp_reserve_lock' },
  );
  if (!acct) return { granted: 0, hourStart: now, validUntil: now };
  const usage = (await readUsage(tx, [accountId], now)).get(accountId)!;
  let granted = want;
  if (acct.hourlyLimit > 0) granted = Math.min(granted, acct.hourlyLimit - usage.sentThisHour);
  if (acct.dailyLimit > 0) granted = Math.min(granted, acct.dailyLimit - usage.sentToday);
  granted = Math.max(0, granted);
  if (granted > 0) {
    await tx.query(
      `INSERT INTO smtp_usage (account_id, hour_start, sent) VALUES ($1, $2, $3)
       ON CONFLICT (account_id, hour_start) DO UPDATE SET sent = smtp_usage.sent + excluded.sent`,
      [accountId, acct.hourStart, granted],
      { prepared: 'mp_reserve_sends' },
    );
  }
  return { granted, hourStart: acct.hourStart, validUntil: acct.validUntil };
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
