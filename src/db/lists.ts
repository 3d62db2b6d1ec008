import type { Queryable } from './database.ts';

export interface List {
  id: number;
  name: string;
  /** Kept by triggers on contacts (002_list_counts.sql), so reading it is free. */
  contactCount: number;
  createdAt: Date;
}

const COLUMNS = `id, name, contact_count AS "contactCount", created_at AS "createdAt"`;

export async function insertList(db: Queryable, userId: number, name: string, now: Date): Promise<List> {
  const [row] = await db.query<List>(`INSERT INTO lists (user_id, name, created_at) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`, [
    userId,
    name,
    now,
  ]);
  return row!;
}

export async function listLists(db: Queryable, userId: number, after: number, limit: number): Promise<List[]> {
  return db.query<List>(`SELECT ${COLUMNS} FROM lists WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [userId, after, limit]);
}

export async function getList(db: Queryable, userId: number, id: number): Promise<List | undefined> {
  const [row] = await db.query<List>(`SELECT ${COLUMNS} FROM lists WHERE id = $1 AND user_id = $2`, [id, userId]);
  return row;
}

/** Which of these ids are lists of the user. */
export async function existingListIds(db: Queryable, userId: number, ids: number[]): Promise<number[]> {
  const rows = await db.query<{ id: number }>('SELECT id FROM lists WHERE user_id = $1 AND id = ANY($2::int[])', [userId, ids]);
  return rows.map((r) => r.id);
}

/** Contacts on the user's lists among `ids`, counted once per list they are on. */
export async function countListContacts(db: Queryable, userId: number, ids: number[]): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT coalesce(sum(contact_count), 0)::int AS n FROM lists WHERE user_id = $1 AND id = ANY($2::int[])', [userId, ids]);
  return row!.n;
}
