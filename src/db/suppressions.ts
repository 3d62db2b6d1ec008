import type { SuppressionReason } from '../states.ts';
import type { Queryable } from './database.ts';

/** An address a user never sends to again (compared case-insensitively). */
export interface Suppression {
  id: number;
  email: string;
  reason: SuppressionReason;
  createdAt: Date;
}

const COLUMNS = `id, email, reason, created_at AS "createdAt"`;

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

/** Suppresses one address; `created` is false when it already was (the entry keeps its first reason). */
export async function addSuppression(
  db: Queryable,
  userId: number,
  email: string,
  reason: SuppressionReason,
  now: Date,
): Promise<{ suppression: Suppression; created: boolean }> {
  const [inserted] = await db.query<Suppression>(
    `INSERT INTO suppressions (user_id, email, reason, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (user_id, lower(email)) DO NOTHING RETURNING ${COLUMNS}`,
    [userId, email, reason, now],
  );
  if (inserted) return { suppression: inserted, created: true };
  return { suppression: (await findSuppression(db, userId, email))!, created: false };
}

export async function findSuppression(db: Queryable, userId: number, email: string): Promise<Suppression | undefined> {
  const [row] = await db.query<Suppression>(`SELECT ${COLUMNS} FROM suppressions WHERE user_id = $1 AND lower(email) = lower($2)`, [
    userId,
    email,
  ]);
  return row;
}

export async function listSuppressions(
  db: Queryable,
  userId: number,
  p: { after: number; limit: number; email?: string },
): Promise<Suppression[]> {
  return db.query<Suppression>(
    `SELECT ${COLUMNS} FROM suppressions
      WHERE user_id = $1 AND id > $2 AND ($4::text IS NULL OR lower(email) = lower($4))
      ORDER BY id LIMIT $3`,
    [userId, p.after, p.limit, p.email ?? null],
  );
}

/** Lifts a suppression; false when the address was not suppressed. */
export async function removeSuppression(db: Queryable, userId: number, email: string): Promise<boolean> {
  const rows = await db.query('DELETE FROM suppressions WHERE user_id = $1 AND lower(email) = lower($2) RETURNING id', [userId, email]);
  return rows.length > 0;
}
