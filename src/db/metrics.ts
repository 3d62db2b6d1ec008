import { BACK_OFF_HEALTH_STATES, sqlList } from '../states.ts';
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

/** The active accounts, with their users. */
export async function activeAccounts(db: Queryable): Promise<{ accountId: number; userId: number }[]> {
  return db.query('SELECT id AS "accountId", user_id AS "userId" FROM smtp_accounts WHERE active ORDER BY id');
}

/** Active accounts by health state; a back-off whose time has passed counts as healthy, as the API shows it. */
export async function accountsByHealth(db: Queryable, now: Date): Promise<{ health: string; accounts: number }[]> {
  return db.query(
    `SELECT CASE WHEN health IN (${sqlList(BACK_OFF_HEALTH_STATES)}) AND health_until <= $1 THEN 'healthy' ELSE health END AS health,
            count(*) AS accounts
       FROM smtp_accounts WHERE active GROUP BY 1`,
    [now],
  );
}
