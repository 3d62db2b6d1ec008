import type { LimitWindowKind } from '../sendingPolicy/limitWindows.ts';
import type { Queryable } from './database.ts';

/** A limit shared by all of a user's accounts whose address is at `domain` (API.md `domain-caps`). */
export interface DomainCapRecord {
  id: number;
  domain: string;
  hourlyLimit: number;
  dailyLimit: number;
  limitWindow: LimitWindowKind;
  createdAt: Date;
}

const COLUMNS = `id, domain, hourly_limit AS "hourlyLimit", daily_limit AS "dailyLimit", limit_window AS "limitWindow", created_at AS "createdAt"`;

/** Adds a cap; undefined when the user already has one for the domain. */
export async function insertDomainCap(
  db: Queryable,
  userId: number,
  c: Omit<DomainCapRecord, 'id' | 'createdAt'>,
  now: Date,
): Promise<DomainCapRecord | undefined> {
  const [row] = await db.query<DomainCapRecord>(
    `INSERT INTO domain_caps (user_id, domain, hourly_limit, daily_limit, limit_window, created_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (user_id, domain) DO NOTHING RETURNING ${COLUMNS}`,
    [userId, c.domain, c.hourlyLimit, c.dailyLimit, c.limitWindow, now],
  );
  return row;
}

export async function listDomainCaps(db: Queryable, userId: number, after: number, limit: number): Promise<DomainCapRecord[]> {
  return db.query<DomainCapRecord>(`SELECT ${COLUMNS} FROM domain_caps WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [userId, after, limit]);
}

export async function deleteDomainCap(db: Queryable, userId: number, id: number): Promise<boolean> {
  return (await db.query('DELETE FROM domain_caps WHERE id = $1 AND user_id = $2 RETURNING id', [id, userId])).length > 0;
}
