import type { Queryable } from './database.ts';

// Serialises the claims of one user's accounts while the user has recipient throttles.
const THROTTLE_LOCK = 7_246_004;

/** At most so many messages a minute or an hour to recipients at `domain`, over all of a user's accounts. */
export interface RecipientThrottle {
  id: number;
  domain: string;
  perMinute: number | null;
  perHour: number | null;
  createdAt: Date;
}

const COLUMNS = `id, domain, per_minute AS "perMinute", per_hour AS "perHour", created_at AS "createdAt"`;

/** Adds a throttle; undefined when the user already has one for the domain. */
export async function insertRecipientThrottle(
  db: Queryable,
  userId: number,
  t: Omit<RecipientThrottle, 'id' | 'createdAt'>,
  now: Date,
): Promise<RecipientThrottle | undefined> {
  const [row] = await db.query<RecipientThrottle>(
    `INSERT INTO recipient_throttles (user_id, domain, per_minute, per_hour, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (user_id, domain) DO NOTHING RETURNING ${COLUMNS}`,
    [userId, t.domain, t.perMinute, t.perHour, now],
  );
  return row;
}

export async function listRecipientThrottles(db: Queryable, userId: number, after: number, limit: number): Promise<RecipientThrottle[]> {
  return db.query<RecipientThrottle>(`SELECT ${COLUMNS} FROM recipient_throttles WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [
    userId,
    after,
    limit,
  ]);
}

export async function deleteRecipientThrottle(db: Queryable, userId: number, id: number): Promise<boolean> {
  return (await db.query('DELETE FROM recipient_throttles WHERE id = $1 AND user_id = $2 RETURNING id', [id, userId])).length > 0;
}

export async function userHasThrottles(db: Queryable, userId: number): Promise<boolean> {
  const rows = await db.query('SELECT 1 FROM recipient_throttles WHERE user_id = $1 LIMIT 1', [userId], { prepared: 'mp_user_has_throttles' });
  return rows.length > 0;
}

/** A throttled domain and how many more messages to it may start now. */
export interface ThrottleRoom {
  domain: string;
  room: number;
}

/**
 * Locks the user's throttled claims until the transaction ends, then reads the room each throttle
 * has: per minute in the current UTC minute, per hour in the last 60 minutes (to the minute, on the
 * safe side), less the messages to the domain already claimed and not yet recorded. Empty when the
 * user has no throttles (nothing locked then).
 */
export async function lockThrottleRooms(tx: Queryable, userId: number, minute: Date, hourFrom: Date): Promise<ThrottleRoom[]> {
  await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [THROTTLE_LOCK, userId]);
  return tx.query<ThrottleRoom>(
    `SELECT t.domain,
            greatest(0, least(coalesce(t.per_minute - m.sent, 2147483647), coalesce(t.per_hour - h.sent, 2147483647)) - f.n)::int AS room
       FROM recipient_throttles t
      CROSS JOIN LATERAL (SELECT coalesce(sum(r.sent), 0) AS sent FROM recipient_minutes r
                           WHERE r.user_id = t.user_id AND r.domain = t.domain AND r.minute_start = $2) m
      CROSS JOIN LATERAL (SELECT coalesce(sum(r.sent), 0) AS sent FROM recipient_minutes r
                           WHERE r.user_id = t.user_id AND r.domain = t.domain AND r.minute_start >= $3 AND r.minute_start <= $2) h
      CROSS JOIN LATERAL (SELECT count(*) AS n FROM messages x
                           WHERE x.account_id IN (SELECT a.id FROM smtp_accounts a WHERE a.user_id = t.user_id)
                             AND x.status = 'sending' AND email_domain(x.email) = t.domain) f
      WHERE t.user_id = $1`,
    [userId, minute, hourFrom],
  );
}
