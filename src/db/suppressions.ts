import type { Queryable } from './database.ts';

export type SuppressionReason = 'unsubscribed' | 'hard_bounce' | 'manual' | 'complaint';

/** Adds addresses to a user's suppression list; an address already there keeps its first reason. */
export async function addSuppressions(db: Queryable, userId: number, emails: string[], reason: SuppressionReason, now: Date): Promise<void> {
  if (emails.length === 0) return;
  await db.query(
    `INSERT INTO suppressions (user_id, email, reason, created_at)
     SELECT $1, e, $3, $4 FROM unnest($2::text[]) AS e
     ON CONFLICT (user_id, lower(email)) DO NOTHING`,
    [userId, emails, reason, now],
  );
}
