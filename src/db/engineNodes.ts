import type { Queryable } from './database.ts';

/**
 * The engine processes alive right now: each renews its row on every scheduler pass, so the
 * processes can split the accounts between them fairly (see Engine.launch).
 * Returns how many are alive, counting this one.
 */
export async function renewNode(db: Queryable, owner: string, now: Date, aliveUntil: Date): Promise<number> {
  await db.query(
    `INSERT INTO engine_nodes (owner, alive_until) VALUES ($1, $2)
     ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until`,
    [owner, aliveUntil],
  );
  const [row] = await db.query<{ n: number }>('SELECT count(*) AS n FROM engine_nodes WHERE alive_until >= $1 OR owner = $2', [now, owner]);
  return row!.n;
}

export async function removeNode(db: Queryable, owner: string): Promise<void> {
  await db.query('DELETE FROM engine_nodes WHERE owner = $1', [owner]);
}

/** Forgets processes that stopped renewing long ago (crashed ones never remove themselves). */
export async function forgetDeadNodes(db: Queryable, before: Date): Promise<void> {
  await db.query('DELETE FROM engine_nodes WHERE alive_until < $1', [before]);
}
