import type { Queryable } from './database.ts';
import type { SuppressionReason } from '../states.ts';

export interface SuppressionRow {
  email: string;
  reason: SuppressionReason;
  createdAt: Date;
}

/**
 * Adds a batch of suppressions, each address once in the batch (case-insensitively). An address
 * the user has already suppressed keeps its reason and time. Answers how many were added.
 */
export async function insertSuppressions(db: Queryable, userId: number, rows: SuppressionRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  const [row] = await db.query<{ added: number }>(
    `WITH added AS (
       INSERT INTO suppressions (user_id, email, reason, created_at)
       SELECT $1, s.email, s.reason, s.created_at
         FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS s(email, reason, created_at)
       ON CONFLICT (user_id, lower(email)) DO NOTHING
       RETURNING 1
     )
     SELECT count(*) AS added FROM added`,
    [userId, rows.map((r) => r.email), rows.map((r) => r.reason), rows.map((r) => r.createdAt)],
  );
  return row!.added;
}

/** A page of a user's suppressions in address order, after the address `after` (lower-cased). */
export async function pageSuppressions(db: Queryable, userId: number, after: string, limit: number): Promise<(SuppressionRow & { key: string })[]> {
  return db.query(
    `SELECT email, reason, created_at AS "createdAt", lower(email) AS key FROM suppressions
      WHERE user_id = $1 AND lower(email) > $2 ORDER BY lower(email) LIMIT $3`,
    [userId, after, limit],
  );
}
