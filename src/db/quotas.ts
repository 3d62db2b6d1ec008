import type { Queryable } from './database.ts';

/** What a user holds that a quota caps. */
export type CountedResource = 'lists' | 'campaigns' | 'contacts' | 'apiKeys';

// Advisory lock classes (two-key form, the user's id second); 7246001 and 7246002 are the
// migration and reserve_sends locks.
const LOCK_CLASS: Record<CountedResource, number> = { lists: 7_246_003, campaigns: 7_246_004, contacts: 7_246_005, apiKeys: 7_246_006 };

const COUNT: Record<CountedResource, string> = {
  lists: 'SELECT count(*) AS n FROM lists WHERE user_id = $1',
  campaigns: 'SELECT count(*) AS n FROM campaigns WHERE user_id = $1',
  // Kept by triggers (002_list_counts.sql): no contact is counted here.
  contacts: 'SELECT coalesce(sum(contact_count), 0) AS n FROM lists WHERE user_id = $1',
  apiKeys: 'SELECT count(*) AS n FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL',
};

/**
 * Serialises changes to what the user holds of `resource` until the transaction `tx` ends, so two
 * concurrent requests cannot both see room for one more (or both revoke a last-but-one key).
 */
export async function lockUserResource(tx: Queryable, resource: CountedResource, userId: number): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS[resource], userId]);
}

/** How much of `resource` the user holds now. */
export async function countUserResource(tx: Queryable, resource: CountedResource, userId: number): Promise<number> {
  const [row] = await tx.query<{ n: number }>(COUNT[resource], [userId]);
  return Number(row!.n);
}
