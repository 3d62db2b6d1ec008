import { SENDING_CAMPAIGN_STATUSES, sqlList, type CampaignStatus, type PauseReason } from '../states.ts';
import type { Queryable } from './database.ts';

// Running, or waiting for quota (paused_limits): the engine works for these.
const SENDING = sqlList(SENDING_CAMPAIGN_STATUSES);

export interface Campaign {
  id: number;
  userId: number;
  name: string;
  subject: string;
  html: string | null;
  text: string | null;
  fromName: string | null;
  replyTo: string | null;
  listIds: number[];
  status: CampaignStatus;
  /** Why the engine paused it, in words (a warning). */
  pauseReason: string | null;
  /** Why the engine paused it, as a code (API.md pauseReason). */
  pauseCode: PauseReason | null;
  resumeAt: Date | null;
  scheduledAt: Date | null;
  startedAt: Date | null;
  completedAt: Date | null;
  total: number;
  sent: number;
  failed: number;
  suppressed: number;
  cancelled: number;
  /** Of `sent`, those whose server reply was lost after the final dot. */
  possiblyDelivered: number;
  /** A reply that blamed the sender's domain authentication (SPF/DKIM/DMARC). */
  senderWarning: string | null;
  /** Recipients who unsubscribed through this campaign's messages. */
  unsubscribed: number;
  /** Messages hard-bounced after they were accepted (a DSN; also counted in `failed`), soft-bounced, complained about, replied to. */
  bounced: number;
  softBounced: number;
  complained: number;
  replied: number;
  /** When retention removed its per-recipient rows. */
  archivedAt: Date | null;
  /** Leave out addresses whose last verification found them undeliverable when the queue is built. */
  skipUndeliverable: boolean;
  /** Addresses so left out (not in `total`), and how many for each reason. */
  skipped: number;
  skippedReasons: Record<string, number>;
  createdAt: Date;
}

export const CAMPAIGN_COLUMNS = `id, user_id AS "userId", name, subject, html, text, from_name AS "fromName", reply_to AS "replyTo",
  list_ids AS "listIds", status, pause_reason AS "pauseReason", pause_code AS "pauseCode", resume_at AS "resumeAt", scheduled_at AS "scheduledAt",
  started_at AS "startedAt", completed_at AS "completedAt", total, sent, failed, suppressed, cancelled, unsubscribed,
  bounced, soft_bounced AS "softBounced", complained, replied,
  possibly_delivered AS "possiblyDelivered", sender_warning AS "senderWarning", archived_at AS "archivedAt", created_at AS "createdAt",
  skip_undeliverable AS "skipUndeliverable", skipped, skipped_reasons AS "skippedReasons"`;

export interface NewCampaign {
  name: string;
  subject: string;
  html: string | null;
  text: string | null;
  fromName: string | null;
  replyTo: string | null;
  listIds: number[];
  scheduledAt: Date | null;
  skipUndeliverable: boolean;
}

export async function insertCampaign(db: Queryable, userId: number, c: NewCampaign, now: Date): Promise<Campaign> {
  const [row] = await db.query<Campaign>(
    `INSERT INTO campaigns (user_id, name, subject, html, text, from_name, reply_to, list_ids, status, scheduled_at, created_at, skip_undeliverable)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ${CAMPAIGN_COLUMNS}`,
    [userId, c.name, c.subject, c.html, c.text, c.fromName, c.replyTo, c.listIds, c.scheduledAt ? 'scheduled' : 'draft', c.scheduledAt, now, c.skipUndeliverable],
  );
  return row!;
}

const CONTENT_COLUMN: Record<keyof NewCampaign, string> = {
  name: 'name',
  subject: 'subject',
  html: 'html',
  text: 'text',
  fromName: 'from_name',
  replyTo: 'reply_to',
  listIds: 'list_ids',
  scheduledAt: 'scheduled_at',
  skipUndeliverable: 'skip_undeliverable',
};

/**
 * Changes a campaign that has not started (draft or scheduled); undefined when it is not the
 * user's or has started. Setting `scheduledAt` schedules it, clearing it makes it a draft again.
 */
export async function updateUnstartedCampaign(
  db: Queryable,
  userId: number,
  id: number,
  changes: Partial<NewCampaign>,
): Promise<Campaign | undefined> {
  const params: unknown[] = [id, userId];
  const sets: string[] = [];
  for (const [key, column] of Object.entries(CONTENT_COLUMN) as [keyof NewCampaign, string][]) {
    if (changes[key] === undefined) continue;
    params.push(changes[key]);
    sets.push(`${column} = $${params.length}`);
  }
  if (changes.scheduledAt !== undefined) {
    // The new value: on the right of SET, scheduled_at would still be the old one.
    params.push(changes.scheduledAt);
    sets.push(`status = CASE WHEN $${params.length}::timestamptz IS NULL THEN 'draft' ELSE 'scheduled' END`);
  }
  if (sets.length === 0) sets.push('id = id');
  const [row] = await db.query<Campaign>(
    `UPDATE campaigns SET ${sets.join(', ')} WHERE id = $1 AND user_id = $2 AND status IN ('draft', 'scheduled')
     RETURNING ${CAMPAIGN_COLUMNS}`,
    params,
  );
  return row;
}

export async function getCampaign(db: Queryable, userId: number, id: number, opts: { lock?: boolean } = {}): Promise<Campaign | undefined> {
  const [row] = await db.query<Campaign>(
    `SELECT ${CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1 AND user_id = $2${opts.lock ? ' FOR UPDATE' : ''}`,
    [id, userId],
  );
  return row;
}

export async function listCampaigns(db: Queryable, userId: number, after: number, limit: number): Promise<Campaign[]> {
  return db.query<Campaign>(
    `SELECT ${CAMPAIGN_COLUMNS} FROM campaigns WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
    [userId, after, limit],
  );
}

export async function countRunningCampaigns(db: Queryable, userId: number): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM campaigns WHERE user_id = $1 AND status IN (${SENDING})`,
    [userId],
  );
  return row!.n;
}

/** Moves a campaign from one of `from` to `to`; undefined when it was in none of them. */
export async function setCampaignStatus(
  db: Queryable,
  where: { id: number; userId?: number },
  from: CampaignStatus[],
  to: CampaignStatus,
  sets: { resumeAt?: Date | null; startedAt?: Date; completedAt?: Date; pauseReason?: string; pauseCode?: PauseReason } = {},
): Promise<Campaign | undefined> {
  // A pause reason and code are set by the move that pauses, and cleared by every other.
  const [row] = await db.query<Campaign>(
    `UPDATE campaigns SET status = $3,
        resume_at = CASE WHEN $4 THEN $5::timestamptz ELSE NULL END,
        started_at = coalesce(started_at, $6),
        completed_at = coalesce($7, completed_at),
        pause_reason = CASE WHEN $8 THEN $9 ELSE NULL END,
        pause_code = $11
      WHERE id = $1 AND ($2::int IS NULL OR user_id = $2) AND status = ANY($10::text[])
      RETURNING ${CAMPAIGN_COLUMNS}`,
    [
      where.id,
      where.userId ?? null,
      to,
      sets.resumeAt !== undefined,
      sets.resumeAt ?? null,
      sets.startedAt ?? null,
      sets.completedAt ?? null,
      sets.pauseReason !== undefined,
      sets.pauseReason ?? null,
      from,
      sets.pauseCode ?? null,
    ],
  );
  return row;
}

export async function setCampaignTotals(
  db: Queryable,
  id: number,
  add: { total: number; suppressed: number; skipped: number; skippedReasons: Record<string, number> },
): Promise<void> {
  await db.query('UPDATE campaigns SET total = total + $2, suppressed = suppressed + $3, skipped = skipped + $4, skipped_reasons = $5 WHERE id = $1', [
    id,
    add.total,
    add.suppressed,
    add.skipped,
    JSON.stringify(add.skippedReasons),
  ]);
}

/** Running campaigns of one user, in id order: the round-robin of its account workers. */
export async function runningCampaignIds(db: Queryable, userId: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>(`SELECT id FROM campaigns WHERE user_id = $1 AND status = 'running' ORDER BY id`, [userId], {
    prepared: 'mp_running_campaigns',
  });
  return rows.map((r) => r.id);
}

/** Completes running campaigns whose every message is in a final state. */
export async function completeFinished(db: Queryable, ids: number[], now: Date): Promise<Campaign[]> {
  if (ids.length === 0) return [];
  return db.query<Campaign>(
    `UPDATE campaigns SET status = 'completed', completed_at = $2, resume_at = NULL, pause_reason = NULL, pause_code = NULL
      WHERE id = ANY($1::int[]) AND status IN (${SENDING})
        AND sent + failed + suppressed + cancelled >= total
      RETURNING ${CAMPAIGN_COLUMNS}`,
    [ids, now],
  );
}

/** Running (or limit-paused) campaigns whose every message is in a final state, for completion. */
export async function finishedCampaignIds(db: Queryable): Promise<number[]> {
  const rows = await db.query<{ id: number }>(
    `SELECT id FROM campaigns WHERE status IN (${SENDING}) AND sent + failed + suppressed + cancelled >= total`,
  );
  return rows.map((r) => r.id);
}

export async function campaignsDue(db: Queryable, status: 'scheduled' | 'paused_limits', now: Date): Promise<Campaign[]> {
  const column = status === 'scheduled' ? 'scheduled_at' : 'resume_at';
  return db.query<Campaign>(
    `SELECT ${CAMPAIGN_COLUMNS} FROM campaigns WHERE status = $1 AND ${column} <= $2 ORDER BY id`,
    [status, now],
  );
}

/** Keeps the first reply that blamed the sender's domain authentication, per campaign. */
export async function noteSenderWarnings(db: Queryable, warnings: Map<number, string>): Promise<void> {
  if (warnings.size === 0) return;
  await db.query(
    `UPDATE campaigns c SET sender_warning = w.warning
       FROM unnest($1::int[], $2::text[]) AS w(id, warning)
      WHERE c.id = w.id AND c.sender_warning IS NULL`,
    [[...warnings.keys()], [...warnings.values()]],
  );
}

/** Stopped campaigns that still have messages not in a final state (see lifecycle.settleStopped). */
export async function stoppedWithUnfinishedMessages(db: Queryable): Promise<number[]> {
  const rows = await db.query<{ id: number }>(`SELECT id FROM campaigns WHERE status = 'stopped' AND sent + failed + suppressed + cancelled < total`);
  return rows.map((r) => r.id);
}

/** What a campaign's messages are composed from. */
export type ComposableCampaign = Pick<Campaign, 'id' | 'subject' | 'html' | 'text' | 'fromName' | 'replyTo'>;

export async function getCampaignContent(db: Queryable, id: number): Promise<ComposableCampaign | undefined> {
  const [row] = await db.query<ComposableCampaign>(
    'SELECT id, subject, html, text, from_name AS "fromName", reply_to AS "replyTo" FROM campaigns WHERE id = $1',
    [id],
  );
  return row;
}

/** The user's campaigns the engine works for, with their messages not yet final. */
export async function sendingCampaignsOf(db: Queryable, userId: number): Promise<{ id: number; pending: number }[]> {
  return db.query(
    `SELECT id, greatest(0, total - sent - failed - suppressed - cancelled) AS pending FROM campaigns
      WHERE user_id = $1 AND status IN (${SENDING}) ORDER BY id`,
    [userId],
  );
}

/** The user's campaigns in one status, in id order. */
export async function campaignsInStatus(db: Queryable, userId: number, status: CampaignStatus): Promise<Campaign[]> {
  return db.query<Campaign>(`SELECT ${CAMPAIGN_COLUMNS} FROM campaigns WHERE user_id = $1 AND status = $2 ORDER BY id`, [userId, status]);
}

/** Moves the resume moment (and its reason) of the user's campaigns waiting as paused_limits. */
export async function reschedulePaused(db: Queryable, userId: number, resumeAt: Date, code: PauseReason, reason: string): Promise<Campaign[]> {
  return db.query<Campaign>(
    `UPDATE campaigns SET resume_at = $2, pause_code = $3, pause_reason = $4
      WHERE user_id = $1 AND status = 'paused_limits' AND resume_at IS DISTINCT FROM $2
      RETURNING ${CAMPAIGN_COLUMNS}`,
    [userId, resumeAt, code, reason],
  );
}
