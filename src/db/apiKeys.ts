import type { Database, Queryable } from './database.ts';
import { lockUserResource } from './quotas.ts';

/** A key as its owner sees it again: never the key, only the first characters to recognise it by. */
export interface ApiKey {
  id: number;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const COLUMNS = `id, prefix, created_at AS "createdAt", revoked_at AS "revokedAt"`;

export async function insertApiKey(db: Queryable, userId: number, hash: string, prefix: string, now: Date): Promise<ApiKey> {
  const [row] = await db.query<ApiKey>(
    `INSERT INTO api_keys (user_id, hash, prefix, created_at) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
    [userId, hash, prefix, now],
  );
  return row!;
}

/** The live key with this SHA-256 hash: one unique-index lookup, whatever the key. */
export async function findKeyByHash(db: Queryable, hash: string): Promise<{ userId: number; hash: string } | undefined> {
  const [row] = await db.query<{ userId: number; hash: string }>(
    'SELECT user_id AS "userId", hash FROM api_keys WHERE hash = $1 AND revoked_at IS NULL',
    [hash],
  );
  return row;
}

export async function listApiKeys(db: Queryable, userId: number, after: number, limit: number): Promise<ApiKey[]> {
  return db.query<ApiKey>(`SELECT ${COLUMNS} FROM api_keys WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`, [userId, after, limit]);
}

/**
 * Revokes one of the user's keys, unless it is the last live one (the user would lock itself out
 * for good: only a key can make a key). Revoking a revoked key changes nothing and succeeds. The
 * user's revocations (and key creations) queue on one lock, so two revocations at once cannot each
 * see the other's key still live and together leave none.
 */
export async function revokeApiKey(db: Database, userId: number, id: number, now: Date): Promise<'revoked' | 'not_found' | 'last_key'> {
  return db.transaction(async (tx) => {
    await lockUserResource(tx, 'apiKeys', userId);
    // A statement of its own after the lock: it reads what revocations before it committed.
    const [row] = await tx.query<{ lastKey: boolean }>(
      `WITH target AS (SELECT id, revoked_at FROM api_keys WHERE id = $1 AND user_id = $2),
            live AS (SELECT count(*) AS n FROM api_keys WHERE user_id = $2 AND revoked_at IS NULL),
            done AS (UPDATE api_keys k SET revoked_at = $3 FROM target, live
                      WHERE k.id = target.id AND target.revoked_at IS NULL AND live.n > 1 RETURNING k.id)
       SELECT (target.revoked_at IS NULL AND live.n <= 1) AS "lastKey" FROM target, live`,
      [id, userId, now],
    );
    if (!row) return 'not_found';
    return row.lastKey ? 'last_key' : 'revoked';
  });
}
