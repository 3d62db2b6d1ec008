import type { Campaign } from './campaigns.ts';
import { completeFinished } from './campaigns.ts';
import type { Queryable } from './database.ts';
import type { BounceType, MessageStatus } from '../states.ts';

/**
 * What a user holds about one address, and its erasure (GDPR articles 15 and 17). Every statement
 * is scoped to the user. An address's messages have no index of their own (one would slow every
 * queue build), so they are read campaign by campaign, in statements that each cover at most
 * MESSAGES_PER_STATEMENT queued messages: each stays far inside statement_timeout.
 */
const MESSAGES_PER_STATEMENT = 2_000_000;

export interface HeldMessage {
  id: number;
  campaignId: number;
  campaignName: string;
  email: string;
  status: MessageStatus;
  attempts: number;
  lastError: string | null;
  sentAt: Date | null;
  bounce: { type: BounceType; status: string | null; diagnostic: string | null } | null;
  bouncedAt: Date | null;
  complainedAt: Date | null;
  repliedAt: Date | null;
}

/** The user's campaigns that hold per-recipient rows, grouped so each group holds at most MESSAGES_PER_STATEMENT. */
async function campaignGroups(db: Queryable, userId: number): Promise<number[][]> {
  const rows = await db.query<{ id: number; total: number }>(
    `SELECT id, total FROM campaigns WHERE user_id = $1 AND started_at IS NOT NULL AND archived_at IS NULL ORDER BY id`,
    [userId],
  );
  const groups: number[][] = [];
  let group: number[] = [];
  let size = 0;
  for (const c of rows) {
    if (group.length && size + c.total > MESSAGES_PER_STATEMENT) {
      groups.push(group);
      group = [];
      size = 0;
    }
    group.push(c.id);
    size += c.total;
  }
  if (group.length) groups.push(group);
  return groups;
}

export async function heldMessages(db: Queryable, userId: number, email: string): Promise<HeldMessage[]> {
  const messages: HeldMessage[] = [];
  for (const ids of await campaignGroups(db, userId)) {
    const rows = await db.query<HeldMessage>(
      `SELECT m.id, m.campaign_id AS "campaignId", c.name AS "campaignName", m.email, m.status, m.attempts,
              m.last_error AS "lastError", m.sent_at AS "sentAt",
              CASE WHEN m.bounce_type IS NULL THEN NULL
                   ELSE json_build_object('type', m.bounce_type, 'status', m.bounce_status, 'diagnostic', m.bounce_diagnostic) END AS bounce,
              m.bounced_at AS "bouncedAt", m.complained_at AS "complainedAt", m.replied_at AS "repliedAt"
         FROM messages m JOIN campaigns c ON c.id = m.campaign_id
        WHERE m.campaign_id = ANY($2::int[]) AND m.user_id = $1 AND lower(m.email) = lower($3)
        ORDER BY m.id`,
      [userId, ids, email],
    );
    messages.push(...rows);
  }
  return messages;
}

export interface Erasure {
  contacts: number;
  messages: number;
  /** Campaigns whose last waiting message this was: completed by the erasure. */
  completed: Campaign[];
}

/**
 * Erases an address from everything the user holds, in the caller's transaction: its contacts on
 * every list, and in its messages the address, the merge data kept for them, the last SMTP error
 * and the bounce diagnostic (both may quote the address). A message still waiting becomes
 * `suppressed` and is counted so on its campaign, so the counters still add up to `total`. The
 * address stays on (or joins) the suppression list, reason `erased` unless it had one: that
 * entry is what keeps it from being mailed again.
 */
export async function eraseAddress(db: Queryable, userId: number, email: string, now: Date): Promise<Erasure> {
  await db.query(
    `INSERT INTO suppressions (user_id, email, reason, created_at) VALUES ($1, $2, 'erased', $3)
     ON CONFLICT (user_id, lower(email)) DO NOTHING`,
    [userId, email, now],
  );
  const contacts = await db.query(
    `DELETE FROM contacts c USING lists l
      WHERE l.user_id = $1 AND c.list_id = l.id AND c.user_id = $1 AND lower(c.email) = lower($2)
      RETURNING c.id`,
    [userId, email],
  );
  let messages = 0;
  const touched = new Set<number>();
  for (const ids of await campaignGroups(db, userId)) {
    const suppressed = await db.query<{ id: number }>(
      `WITH waiting AS (
         UPDATE messages SET status = 'suppressed'
          WHERE campaign_id = ANY($2::int[]) AND user_id = $1 AND status = 'pending' AND lower(email) = lower($3)
          RETURNING campaign_id
       )
       UPDATE campaigns c SET suppressed = c.suppressed + w.n
         FROM (SELECT campaign_id, count(*) AS n FROM waiting GROUP BY campaign_id) w
        WHERE c.id = w.campaign_id AND c.user_id = $1
       RETURNING c.id`,
      [userId, ids, email],
    );
    for (const c of suppressed) touched.add(c.id);
    const erased = await db.query(
      `UPDATE messages SET email = '', merge = NULL, last_error = NULL, bounce_diagnostic = NULL
        WHERE campaign_id = ANY($2::int[]) AND user_id = $1 AND lower(email) = lower($3)
        RETURNING id`,
      [userId, ids, email],
    );
    messages += erased.length;
  }
  const completed = await completeFinished(db, [...touched], now);
  return { contacts: contacts.length, messages, completed };
}
