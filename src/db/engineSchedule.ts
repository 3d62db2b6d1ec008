import { NEXT_BACK_OFF_END_SQL } from './accountHealth.ts';
import type { Queryable } from './database.ts';

/**
 * The next future moment the scheduler has something to do: a scheduled start, a limit resume,
 * a retry falling due in a running campaign, or an account's back-off ending. The engine sets a
 * timer for it, so none of these waits for a poll and nothing spins while work is not yet due.
 */
export async function nextWakeAt(db: Queryable, now: Date): Promise<Date | undefined> {
  const [row] = await db.query<{ at: Date | null }>(
    `SELECT least(
       (SELECT min(CASE WHEN status = 'scheduled' THEN scheduled_at ELSE resume_at END)
          FROM campaigns WHERE status IN ('scheduled', 'paused_limits')
           AND CASE WHEN status = 'scheduled' THEN scheduled_at ELSE resume_at END > $1),
       (SELECT m.next_attempt_at FROM messages m
         WHERE m.status = 'pending' AND m.next_attempt_at > $1
           AND EXISTS (SELECT 1 FROM campaigns c WHERE c.id = m.campaign_id AND c.status = 'running')
         ORDER BY m.next_attempt_at LIMIT 1),
       ${NEXT_BACK_OFF_END_SQL('$1')}
     ) AS at`,
    [now],
  );
  return row?.at ?? undefined;
}
