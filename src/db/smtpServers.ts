import type { Security } from '../states.ts';
import type { Queryable } from './database.ts';

export interface SmtpServer {
  id: number;
  name: string;
  host: string;
  port: number;
  security: Security;
  maxConnections: number;
  active: boolean;
  createdAt: Date;
}

export interface ServerFields {
  name: string;
  host: string;
  port: number;
  security: Security;
  maxConnections: number;
  active: boolean;
}

const COLUMNS = `id, name, host, port, security, max_connections AS "maxConnections", active, created_at AS "createdAt"`;

const COLUMN_OF: Record<keyof ServerFields, string> = {
  name: 'name',
  host: 'host',
  port: 'port',
  security: 'security',
  maxConnections: 'max_connections',
  active: 'active',
};

export async function insertServer(db: Queryable, userId: number, fields: ServerFields, now: Date): Promise<SmtpServer> {
  const [row] = await db.query<SmtpServer>(
    `INSERT INTO smtp_servers (user_id, name, host, port, security, max_connections, active, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
    [userId, fields.name, fields.host, fields.port, fields.security, fields.maxConnections, fields.active, now],
  );
  return row!;
}

export async function listServers(db: Queryable, userId: number, after: number, limit: number): Promise<SmtpServer[]> {
  return db.query<SmtpServer>(
    `SELECT ${COLUMNS} FROM smtp_servers WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
    [userId, after, limit],
  );
}

export async function getServer(db: Queryable, userId: number, id: number): Promise<SmtpServer | undefined> {
  const [row] = await db.query<SmtpServer>(`SELECT ${COLUMNS} FROM smtp_servers WHERE id = $1 AND user_id = $2`, [id, userId]);
  return row;
}

/** Changes the given fields; undefined when the user has no such server. */
export async function updateServer(
  db: Queryable,
  userId: number,
  id: number,
  changes: Partial<ServerFields>,
): Promise<SmtpServer | undefined> {
  const keys = (Object.keys(COLUMN_OF) as (keyof ServerFields)[]).filter((k) => changes[k] !== undefined);
  if (keys.length === 0) return getServer(db, userId, id);
  const sets = keys.map((k, i) => `${COLUMN_OF[k]} = $${i + 3}`).join(', ');
  const [row] = await db.query<SmtpServer>(
    `UPDATE smtp_servers SET ${sets} WHERE id = $1 AND user_id = $2 RETURNING ${COLUMNS}`,
    [id, userId, ...keys.map((k) => changes[k])],
  );
  return row;
}

/**
 * Removes a server that no account uses. An account added concurrently is caught by the foreign key
 * (the statement's snapshot may not see it yet), which answers the same "in use".
 */
export async function deleteServer(db: Queryable, userId: number, id: number): Promise<'deleted' | 'not_found' | 'in_use'> {
  try {
    const [row] = await db.query<{ inUse: boolean }>(
      `WITH target AS (SELECT id FROM smtp_servers WHERE id = $1 AND user_id = $2),
            gone AS (DELETE FROM smtp_servers s USING target
                      WHERE s.id = target.id AND NOT EXISTS (SELECT 1 FROM smtp_accounts a WHERE a.server_id = target.id)
                      RETURNING s.id)
       SELECT NOT EXISTS (SELECT 1 FROM gone) AS "inUse" FROM target`,
      [id, userId],
    );
    if (!row) return 'not_found';
    return row.inUse ? 'in_use' : 'deleted';
  } catch (err) {
    if (isForeignKeyViolation(err)) return 'in_use';
    throw err;
  }
}

/** True for PostgreSQL's foreign_key_violation (both drivers expose the SQLSTATE as `code`). */
export function isForeignKeyViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '23503';
}
