import type { Queryable } from './database.ts';

export async function insertApiKey(db: Queryable, userId: number, hash: string, prefix: string, now: Date): Promise<number> {
  const [row] = await db.query<{ id: number }>(
    'INSERT INTO api_keys (user_id, hash, prefix, created_at) VALUES ($1, $2, $3, $4) RETURNING id',
    [userId, hash, prefix, now],
  );
  return row!.id;
}

export async function findUserIdByKeyHash(db: Queryable, hash: string): Promise<number | undefined> {
  const [row] = await db.query<{ userId: number }>(
    'SELECT user_id AS "userId" FROM api_keys WHERE hash = $1 AND revoked_at IS NULL',
    [hash],
  );
  return row?.userId;
}
