import type { Queryable } from './database.ts';
import { SENDING_CAMPAIGN_STATUSES, sqlList, UNFINISHED_CAMPAIGN_STATUSES, type HealthState } from '../states.ts';

/**
 * Load figures for monitoring, read from the campaign counters that outcome batches keep (never by
 * counting messages). A campaign is active while the engine works for it (running, or waiting for
 * quota in paused_limits); its pending messages count while it is not final (scheduled or paused too).
 */

const UNFINISHED = `status IN (${sqlList(UNFINISHED_CAMPAIGN_STATUSES)})`;
const ACTIVE = `status IN (${sqlList(SENDING_CAMPAIGN_STATUSES)})`;
const PENDING = 'total - sent - failed - suppressed - cancelled';

export interface CampaignLoad {
  activeCampaigns: number;
  pending: number;
}

export interface UserLoad extends CampaignLoad {
  userId: number;
  /** Recipients and sends of the user's unfinished campaigns. */
  total: number;
  sent: number;
}

/** One user's load, or everyone's when userId is undefined. */
export async function campaignLoad(db: Queryable, userId: number | undefined): Promise<CampaignLoad & { concurrentUsers: number }> {
  const [row] = await db.query<CampaignLoad & { concurrentUsers: number }>(
    `SELECT count(*) FILTER (WHERE ${ACTIVE}) AS "activeCampaigns",
            coalesce(sum(${PENDING}), 0) AS pending,
            count(DISTINCT user_id) FILTER (WHERE ${ACTIVE}) AS "concurrentUsers"
       FROM campaigns WHERE ${UNFINISHED} AND ($1::int IS NULL OR user_id = $1)`,
    [userId ?? null],
  );
  return row!;
}

/** Every user with an unfinished campaign, heaviest (most pending) first. */
export async function loadPerUser(db: Queryable): Promise<UserLoad[]> {
  return db.query<UserLoad>(
    `SELECT user_id AS "userId", count(*) FILTER (WHERE ${ACTIVE}) AS "activeCampaigns",
            sum(total) AS total, sum(sent) AS sent, sum(${PENDING}) AS pending
       FROM campaigns WHERE ${UNFINISHED}
      GROUP BY user_id ORDER BY pending DESC, user_id`,
  );
}

export interface AccountSummary {
  id: number;
  userId: number;
  email: string;
  hourlyLimit: number;
  dailyLimit: number;
  active: boolean;
  health: HealthState;
  healthUntil: Date | null;
  healthReason: string | null;
}

/** The accounts of one user, or of everyone, in id order. */
export async function accountSummaries(db: Queryable, userId: number | undefined): Promise<AccountSummary[]> {
  return db.query<AccountSummary>(
    `SELECT id, user_id AS "userId", email, hourly_limit AS "hourlyLimit", daily_limit AS "dailyLimit", active, health, health_until AS "healthUntil", health_reason AS "healthReason"
       FROM smtp_accounts WHERE $1::int IS NULL OR user_id = $1 ORDER BY id`,
    [userId ?? null],
  );
}
