import type { BounceType, MessageStatus } from '../states.ts';
import type { Queryable } from './database.ts';

/**
 * What bounces, complaints and replies do to a message and its campaign's counters
 * (src/reports/applyReport.ts decides which). Each runs in the reporting user's tenant
 * transaction, on the message row locked first, so two reports of the same message (or a report
 * and the engine) never count twice.
 */

/** A message as a report sees it, locked until the transaction ends. */
export interface ReportedMessage {
  id: number;
  campaignId: number;
  accountId: number | null;
  email: string;
  status: MessageStatus;
  sentAt: Date | null;
  bounceType: BounceType | null;
  complainedAt: Date | null;
  repliedAt: Date | null;
}

export async function lockReportedMessage(tx: Queryable, userId: number, messageId: number): Promise<ReportedMessage | undefined> {
  const [row] = await tx.query<ReportedMessage>(
    `SELECT id, campaign_id AS "campaignId", account_id AS "accountId", email, status, sent_at AS "sentAt",
            bounce_type AS "bounceType", complained_at AS "complainedAt", replied_at AS "repliedAt"
       FROM messages WHERE id = $1 AND user_id = $2 FOR UPDATE`,
    [messageId, userId],
  );
  return row;
}

export interface BounceRecord {
  type: BounceType;
  status: string | null;
  diagnostic: string | null;
  at: Date;
}

/**
 * Records a bounce on a locked message. A hard one turns a sent message into a failed one
 * (`failed` replaces `lastError`) and moves it from the campaign's `sent` to `failed`; it replaces
 * a soft one recorded before. Counters: `bounced` (hard) and `soft_bounced` (soft), once each.
 */
export async function recordBounce(tx: Queryable, m: ReportedMessage, b: BounceRecord, failedReason: string): Promise<void> {
  const fail = b.type === 'hard' && m.status === 'sent';
  // A message whose address was erased (dataProtection.ts) keeps the bounce, not its texts, which may quote the address.
  await tx.query(
    `UPDATE messages SET bounce_type = $2, bounce_status = $3, bounce_diagnostic = CASE WHEN email = '' THEN NULL ELSE $4 END, bounced_at = $5,
            status = CASE WHEN $6 THEN 'failed' ELSE status END,
            last_error = CASE WHEN email = '' THEN NULL WHEN $6 THEN $7 ELSE last_error END
      WHERE id = $1`,
    [m.id, b.type, b.status, b.diagnostic, b.at, fail, failedReason],
  );
  const hard = b.type === 'hard' ? 1 : 0;
  const softDelta = b.type === 'soft' ? 1 : m.bounceType === 'soft' ? -1 : 0;
  await tx.query(
    `UPDATE campaigns SET sent = sent - $2, failed = failed + $2, bounced = bounced + $3, soft_bounced = soft_bounced + $4 WHERE id = $1`,
    [m.campaignId, fail ? 1 : 0, hard, softDelta],
  );
}

export async function recordComplaint(tx: Queryable, m: ReportedMessage, at: Date): Promise<void> {
  await tx.query('UPDATE messages SET complained_at = $2 WHERE id = $1', [m.id, at]);
  await tx.query('UPDATE campaigns SET complained = complained + 1 WHERE id = $1', [m.campaignId]);
}

export async function recordReply(tx: Queryable, m: ReportedMessage, at: Date): Promise<void> {
  await tx.query('UPDATE messages SET replied_at = $2 WHERE id = $1', [m.id, at]);
  await tx.query('UPDATE campaigns SET replied = replied + 1 WHERE id = $1', [m.campaignId]);
}
