import type { Queryable } from './database.ts';

/**
 * System-wide readings for /metrics, taken at scrape time. None counts rows of `messages` beyond
 * the in-flight ones: queue depth comes from the campaign counters, like every status read.
 */

export interface CampaignStateRow {
  status: string;
  campaigns: number;
  /** Messages of these campaigns not yet in a final state (pending or sending). */
  unfinished: number;
}

export async function campaignStates(db: Queryable): Promise<CampaignStateRow[]> {
  return db.query<CampaignStateRow>(
    `SELECT status, count(*) AS campaigns,
            coalesce(sum(greatest(0, total - sent - failed - suppressed - cancelled)), 0) AS unfinished
       FROM campaigns GROUP BY status`,
  );
}

/** Messages claimed by a worker and not yet recorded: bounded by workers × claim batch (partial index messages_sending). */
export async function countSending(db: Queryable): Promise<number> {
  const [row] = await db.query<{ n: number }>(`SELECT count(*) AS n FROM messages WHERE status = 'sending'`);
  return row!.n;
}

/** Account workers alive anywhere in the cluster: accounts whose lease is held and unexpired. */
export async function countLiveWorkers(db: Queryable, now: Date): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM smtp_accounts WHERE lease_owner IS NOT NULL AND lease_expires_at >= $1`,
    [now],
  );
  return row!.n;
}

export interface AccountQuotaRow {
  accountId: number;
  userId: number;
  hourlyLimit: number;
  dailyLimit: number;
  sentThisHour: number;
  sentToday: number;
}

/** Usage of every active account in its current hour and day (the windows of 001_core.sql). */
export async function activeAccountQuotas(db: Queryable, now: Date): Promise<AccountQuotaRow[]> {
  return db.query<AccountQuotaRow>(
    `SELECT a.id AS "accountId", a.user_id AS "userId", a.hourly_limit AS "hourlyLimit", a.daily_limit AS "dailyLimit",
            coalesce(sum(u.sent) FILTER (WHERE u.hour_start = hour_window_start($1, a.timezone)), 0) AS "sentThisHour",
            coalesce(sum(u.sent), 0) AS "sentToday"
       FROM smtp_accounts a
       LEFT JOIN smtp_usage u ON u.account_id = a.id
        AND u.hour_start >= day_window_start($1, a.timezone) AND u.hour_start < next_day_window_start($1, a.timezone)
      WHERE a.active
      GROUP BY a.id`,
    [now],
  );
}
