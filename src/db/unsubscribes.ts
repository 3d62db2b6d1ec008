import type { Queryable } from './database.ts';

/**
 * Records a recipient's unsubscribe: the address joins the user's suppressions (reason
 * `unsubscribed`), and the campaign it came from counts it, once per address (an address already
 * suppressed, or a second click, counts nothing). Answers whether the address was newly suppressed.
 */
export async function recordUnsubscribe(
  db: Queryable,
  u: { userId: number; campaignId: number; email: string },
  now: Date,
): Promise<boolean> {
  const [row] = await db.query<{ added: boolean }>(
    `WITH added AS (
       INSERT INTO suppressions (user_id, email, reason, created_at)
       SELECT $1, $3, 'unsubscribed', $4 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)
       ON CONFLICT (user_id, lower(email)) DO NOTHING
       RETURNING 1
     ), counted AS (
       UPDATE campaigns SET unsubscribed = unsubscribed + 1
        WHERE id = $2 AND user_id = $1 AND EXISTS (SELECT 1 FROM added)
     )
     SELECT EXISTS (SELECT 1 FROM added) AS added`,
    [u.userId, u.campaignId, u.email, now],
  );
  return row!.added;
}
