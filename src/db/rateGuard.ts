import type { Queryable } from './database.ts';

/**
 * What the bounce and complaint rate guard reads and writes (src/engine/rateGuard.ts decides):
 * each user's thresholds (users.rate_guard, defaults in 012_account_switch_and_rate_guard.sql) and
 * each account's recent sends, hard bounces and complaints, counted per UTC minute in smtp_usage
 * beside its sends.
 */

/** Past `percent` % of the account's last `lastSends` sends, once at least `minSends` of them are counted. */
export interface RateThreshold {
  percent: number;
  lastSends: number;
  minSends: number;
}

/** A user's thresholds; null turns one off. */
export interface RateGuardSettings {
  hardBounces: RateThreshold | null;
  complaints: RateThreshold | null;
}

export async function readRateGuard(db: Queryable, userId: number): Promise<RateGuardSettings | undefined> {
  const [row] = await db.query<{ rateGuard: RateGuardSettings }>('SELECT rate_guard AS "rateGuard" FROM users WHERE id = $1', [userId]);
  return row?.rateGuard;
}

export async function saveRateGuard(db: Queryable, userId: number, settings: RateGuardSettings): Promise<void> {
  await db.query('UPDATE users SET rate_guard = $2::jsonb WHERE id = $1', [userId, JSON.stringify(settings)]);
}

/** Among an account's newest sends: how many were counted, and of those how many bounced hard or drew a complaint. */
export interface RecentSends {
  sends: number;
  bad: number;
}

/**
 * The account's newest sends since its rate guard was last reset (smtp_accounts.rate_guard_since),
 * whole minutes until at least `lastSends` are covered, with their hard bounces and complaints. The
 * minute the reset fell in is left out, since it may hold sends from before it.
 * Reads at most `maxLastSends` usage rows (each minute that counts holds a send), newest first
 * along the primary key.
 */
export async function recentSends(
  db: Queryable,
  accountId: number,
  windows: { hardBounces: number; complaints: number },
): Promise<{ hardBounces: RecentSends; complaints: RecentSends }> {
  const [row] = await db.query<{ hbSends: number; hardBounces: number; cSends: number; complaints: number }>(
    `WITH newest AS (
       SELECT u.sent, u.hard_bounced, u.complained,
              sum(u.sent) OVER (ORDER BY u.minute_start DESC) - u.sent AS newer
         FROM smtp_usage u
        WHERE u.account_id = $1
          AND u.minute_start >= coalesce((SELECT rate_guard_since FROM smtp_accounts WHERE id = $1), '-infinity')
        ORDER BY u.minute_start DESC
        LIMIT greatest($2::int, $3::int))
     SELECT coalesce(sum(sent) FILTER (WHERE newer < $2), 0)::int AS "hbSends",
            coalesce(sum(hard_bounced) FILTER (WHERE newer < $2), 0)::int AS "hardBounces",
            coalesce(sum(sent) FILTER (WHERE newer < $3), 0)::int AS "cSends",
            coalesce(sum(complained) FILTER (WHERE newer < $3), 0)::int AS complaints
       FROM newest`,
    [accountId, windows.hardBounces, windows.complaints],
    { prepared: 'mp_rate_guard_recent_sends' },
  );
  return { hardBounces: { sends: row!.hbSends, bad: row!.hardBounces }, complaints: { sends: row!.cSends, bad: row!.complaints } };
}

/**
 * A hard bounce or complaint reported after the send, counted at the minute its message was sent
 * (nowhere when its account has been deleted since).
 */
export async function countReported(db: Queryable, accountId: number, sentAt: Date, kind: 'hard_bounce' | 'complaint'): Promise<void> {
  await db.query(
    `INSERT INTO smtp_usage AS u (account_id, minute_start, sent, hard_bounced, complained)
     SELECT a.id, date_trunc('minute', $2::timestamptz), 0, $3, $4 FROM smtp_accounts a WHERE a.id = $1
     ON CONFLICT ON CONSTRAINT smtp_usage_pkey DO UPDATE SET hard_bounced = u.hard_bounced + excluded.hard_bounced, complained = u.complained + excluded.complained`,
    [accountId, sentAt, kind === 'hard_bounce' ? 1 : 0, kind === 'complaint' ? 1 : 0],
  );
}
