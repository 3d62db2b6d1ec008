import type { AppContext } from '../context.ts';
import { lockReportedMessage, recordBounce, recordComplaint, recordReply, type ReportedMessage } from '../db/deliveryReports.ts';
import { countReported } from '../db/rateGuard.ts';
import { addSuppressions } from '../db/suppressions.ts';
import { tenantScope } from '../db/tenantScope.ts';
import { checkRateGuard } from '../engine/rateGuard.ts';
import type { MessageReportKind } from '../events.ts';
import type { ReadReport } from './readReport.ts';
import type { ReportTarget } from './reportTargets.ts';

/**
 * What a matched report does (API.md "Bounces, complaints and replies"):
 *
 * - hard bounce: the message `sent → failed` (counted in `bounced`, moved from `sent` to `failed`),
 *   the address suppressed with reason `bounce`;
 * - soft bounce: recorded on the message, counted in `softBounced`;
 * - complaint: recorded, counted in `complained`, the address suppressed with reason `complaint`;
 * - reply (from a person): `repliedAt`, counted in `replied`.
 *
 * A hard bounce or complaint also counts against its account's rate (at the minute the message was
 * sent), and the rate guard then looks at that account (engine/rateGuard.ts).
 *
 * Each runs in one transaction of the message's user's tenant scope: row-level security lets it
 * see and change only that user's rows, whatever the report claims. Every effect happens once per
 * message; a repeated report is a `duplicate`.
 */
export type ApplyResult =
  | { result: 'applied' | 'duplicate'; kind: MessageReportKind; message: ReportedMessage }
  /** No such message of this user (forged, another user's, or archived by retention). */
  | { result: 'not_found' }
  /** The message never went out (queued, suppressed, cancelled, refused): no report can be about it. */
  | { result: 'not_sent' }
  /** Its send is still being recorded: the report must be tried again shortly. */
  | { result: 'in_flight' };

export type ApplicableReport = ReadReport & { kind: 'bounce' | 'complaint' | 'reply' };

export function isApplicable(report: ReadReport): report is ApplicableReport {
  return report.kind === 'bounce' || report.kind === 'complaint' || report.kind === 'reply';
}

export async function applyReport(ctx: Pick<AppContext, 'db' | 'clock' | 'events' | 'log'>, target: ReportTarget, report: ApplicableReport): Promise<ApplyResult> {
  const now = ctx.clock.now();
  const outcome = await tenantScope(ctx.db, target.userId).transaction(async (tx): Promise<ApplyResult> => {
    const m = await lockReportedMessage(tx, target.userId, target.messageId);
    if (!m || (target.campaignId !== undefined && m.campaignId !== target.campaignId)) return { result: 'not_found' };
    if (m.status === 'sending') return { result: 'in_flight' };
    if (m.sentAt === null || (m.status !== 'sent' && m.status !== 'failed')) return { result: 'not_sent' };

    if (report.kind === 'bounce') {
      const b = report.bounce!;
      const kind = b.type === 'hard' ? 'hard_bounce' : 'soft_bounce';
      // A hard bounce replaces a soft one; nothing replaces a hard one, and a second soft one adds nothing.
      if (m.bounceType === 'hard' || (b.type === 'soft' && m.bounceType === 'soft')) return { result: 'duplicate', kind, message: m };
      const reason = `bounced after it was accepted: ${[b.status, b.diagnostic].filter(Boolean).join(' ') || 'no reason given'}`;
      await recordBounce(tx, m, { ...b, at: now }, reason);
      if (b.type === 'hard') await addSuppressions(tx, target.userId, [m.email], 'bounce', now);
      if (b.type === 'hard' && m.accountId !== null) await countReported(tx, m.accountId, m.sentAt, 'hard_bounce');
      return { result: 'applied', kind, message: m };
    }
    if (report.kind === 'complaint') {
      if (m.complainedAt) return { result: 'duplicate', kind: 'complaint', message: m };
      await recordComplaint(tx, m, now);
      await addSuppressions(tx, target.userId, [m.email], 'complaint', now);
      if (m.accountId !== null) await countReported(tx, m.accountId, m.sentAt, 'complaint');
      return { result: 'applied', kind: 'complaint', message: m };
    }
    if (m.repliedAt) return { result: 'duplicate', kind: 'reply', message: m };
    await recordReply(tx, m, now);
    return { result: 'applied', kind: 'reply', message: m };
  });
  if (outcome.result === 'applied') {
    const { message: m, kind } = outcome;
    ctx.events.emit({ type: 'message.report', userId: target.userId, accountId: m.accountId, campaignId: m.campaignId, messageId: m.id, kind });
    ctx.events.emit({ type: 'campaign.progress', userId: target.userId, campaignId: m.campaignId });
    if (m.accountId !== null && (kind === 'hard_bounce' || kind === 'complaint')) {
      const account = { id: m.accountId, userId: target.userId };
      await checkRateGuard(ctx, account).catch((err) => ctx.log.warn({ err, accountId: account.id }, 'the bounce and complaint rate guard could not look at the account'));
    }
  }
  return outcome;
}
