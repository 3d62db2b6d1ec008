import type { Queryable } from './database.ts';

/** Finished campaigns (completed or stopped before `before`) whose per-recipient rows are still kept. */
export async function campaignsToArchive(db: Queryable, before: Date, limit: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>(
    `SELECT id FROM campaigns
      WHERE status IN ('completed', 'stopped') AND archived_at IS NULL AND completed_at < $1
      ORDER BY id LIMIT $2`,
    [before, limit],
  );
  return rows.map((r) => r.id);
}

/**
 * Deletes one batch of a finished campaign's per-recipient rows, the next `limit` rows after
 * `afterId`. Failures stay (they are what a user looks into later), and so would anything not yet
 * in a final state. Answers the last id looked at (null when there was none) and how many went.
 */
export async function deleteMessageBatch(
  db: Queryable,
  campaignId: number,
  afterId: number,
  limit: number,
): Promise<{ lastId: number | null; deleted: number }> {
  const [row] = await db.query<{ lastId: number | null; deleted: number }>(
    `WITH batch AS (
       SELECT id FROM messages WHERE campaign_id = $1 AND id > $2 ORDER BY id LIMIT $3
     ), gone AS (
       DELETE FROM messages m USING batch b
        WHERE m.id = b.id AND m.status IN ('sent', 'suppressed', 'cancelled')
       RETURNING 1
     )
     SELECT (SELECT max(id) FROM batch) AS "lastId", (SELECT count(*) FROM gone) AS deleted`,
    [campaignId, afterId, limit],
  );
  return row!;
}

export async function markArchived(db: Queryable, campaignId: number, now: Date): Promise<void> {
  await db.query(`UPDATE campaigns SET archived_at = $2 WHERE id = $1 AND status IN ('completed', 'stopped')`, [campaignId, now]);
}
