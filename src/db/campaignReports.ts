import type { Queryable } from './database.ts';
import type { MessageStatus } from '../states.ts';

export interface AccountShare {
  accountId: number;
  /** null when the account was deleted since. */
  email: string | null;
  sent: number;
  failed: number;
}

/**
 * How a campaign's finished sends split over the accounts that made them. It counts the
 * campaign's messages, so it serves a detail view on demand, never a status read.
 */
export async function accountShares(db: Queryable, userId: number, campaignId: number): Promise<AccountShare[]> {
  return db.query<AccountShare>(
    `SELECT m.account_id AS "accountId", a.email,
            count(*) FILTER (WHERE m.status = 'sent') AS sent,
            count(*) FILTER (WHERE m.status = 'failed') AS failed
       FROM messages m LEFT JOIN smtp_accounts a ON a.id = m.account_id AND a.user_id = m.user_id
      WHERE m.campaign_id = $1 AND m.user_id = $2 AND m.status IN ('sent', 'failed') AND m.account_id IS NOT NULL
      GROUP BY m.account_id, a.email
      ORDER BY sent DESC, m.account_id`,
    [campaignId, userId],
  );
}

export interface OutcomeRow {
  id: number;
  email: string;
  status: MessageStatus;
  attempts: number;
  accountId: number | null;
  accountEmail: string | null;
  lastError: string | null;
  sentAt: Date | null;
  bounceType: string | null;
  bounceStatus: string | null;
  bounceDiagnostic: string | null;
  complainedAt: Date | null;
  repliedAt: Date | null;
}

/** One page of a campaign's messages with the sending account's address, in id order from `after`. */
export async function outcomePage(db: Queryable, userId: number, campaignId: number, after: number, limit: number): Promise<OutcomeRow[]> {
  return db.query<OutcomeRow>(
    `SELECT m.id, m.email, m.status, m.attempts, m.account_id AS "accountId", a.email AS "accountEmail",
            m.last_error AS "lastError", m.sent_at AS "sentAt", m.bounce_type AS "bounceType", m.bounce_status AS "bounceStatus",
            m.bounce_diagnostic AS "bounceDiagnostic", m.complained_at AS "complainedAt", m.replied_at AS "repliedAt"
       FROM messages m LEFT JOIN smtp_accounts a ON a.id = m.account_id AND a.user_id = m.user_id
      WHERE m.campaign_id = $1 AND m.user_id = $2 AND m.id > $3
      ORDER BY m.id LIMIT $4`,
    [campaignId, userId, after, limit],
  );
}
