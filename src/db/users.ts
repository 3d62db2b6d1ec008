import type { Queryable } from './database.ts';

export interface User {
  id: number;
  name: string;
  email: string;
}

export async function insertUser(db: Queryable, name: string, email: string, now: Date): Promise<User> {
  const [row] = await db.query<User>(
    'INSERT INTO users (name, email, created_at) VALUES ($1, $2, $3) RETURNING id, name, email',
    [name, email, now],
  );
  return row!;
}

export async function getUser(db: Queryable, id: number): Promise<User | undefined> {
  const [row] = await db.query<User>('SELECT id, name, email FROM users WHERE id = $1', [id]);
  return row;
}
