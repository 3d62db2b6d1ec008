import type { AppContext } from '../context.ts';
import type { ReportReceipt } from '../events.ts';
import { applyReport, isApplicable } from './applyReport.ts';
import { readReport } from './readReport.ts';
import { reportTarget } from './reportTargets.ts';
import type { ThrottledLog } from './throttledLog.ts';
import type { VerpClaim } from './verp.ts';

/**
 * One incoming message, from the inbound SMTP port or an account's mailbox, read and applied:
 * read it (readReport), find the message it is about (reportTarget: verified VERP address or
 * Message-ID), apply it (applyReport). Whatever it is, the answer is a receipt and, for anything
 * refused or ignored, a log line; hostile input never throws out of here (database trouble does,
 * so the caller can try again later).
 */
export async function takeInMessage(
  ctx: Pick<AppContext, 'db' | 'clock' | 'events' | 'secrets' | 'log'>,
  log: ThrottledLog,
  raw: Buffer,
  from: { source: 'smtp'; delivery: VerpClaim; mailFrom: string } | { source: 'imap'; ownerId: number; accountId: number },
): Promise<ReportReceipt> {
  const report = await readReport(raw, from.source === 'smtp' ? { mailFrom: from.mailFrom } : {});
  const where = from.source === 'smtp' ? { source: 'smtp' } : { source: 'imap', accountId: from.accountId, userId: from.ownerId };
  const receipt = (result: ReportReceipt, userId = 0) => {
    ctx.events.emit({ type: 'report.received', userId, source: from.source, result });
    return result;
  };

  if (report.problem) {
    log.write('info', `${from.source}:malformed`, { ...where, problem: report.problem }, 'ignored an incoming message that is not a readable report');
    return receipt('malformed');
  }
  if (report.kind === 'auto_reply') {
    log.write('debug', `${from.source}:auto_reply`, where, 'ignored an automatic reply');
    return receipt('auto_reply');
  }
  if (!isApplicable(report)) {
    // A mailbox receives all kinds of mail: most of it is none of MailPilot's business.
    log.write(from.source === 'smtp' ? 'info' : 'debug', `${from.source}:other`, where, 'ignored an incoming message that is no bounce, complaint or reply');
    return receipt('ignored');
  }
  const secrets = [ctx.secrets.secretKey, ...ctx.secrets.previousKeys];
  const target = reportTarget(secrets, report, from.source === 'smtp' ? { delivery: from.delivery } : { ownerId: from.ownerId });
  if (!target) {
    const level = report.kind === 'reply' ? 'debug' : 'info';
    log.write(level, `${from.source}:unmatched`, { ...where, kind: report.kind }, `ignored a ${report.kind} that names no message MailPilot sent`);
    return receipt('unmatched');
  }
  if (target.messageId === 0) {
    log.write('info', `${from.source}:test`, { ...where, userId: target.userId, kind: report.kind }, `ignored a ${report.kind} of a test message`);
    return receipt('ignored', target.userId);
  }
  const applied = await applyReport(ctx, target, report);
  const fields = { ...where, userId: target.userId, messageId: target.messageId, kind: report.kind };
  switch (applied.result) {
    case 'applied':
    case 'duplicate':
      log.write('debug', `${from.source}:${applied.result}`, { ...fields, effect: applied.kind }, `${applied.result === 'applied' ? 'recorded' : 'already had'} a ${applied.kind.replace('_', ' ')}`);
      return receipt(applied.result, target.userId);
    case 'in_flight':
      log.write('info', `${from.source}:deferred`, fields, `a ${report.kind} arrived while its message's send was still being recorded; it is read again later`);
      return receipt('deferred', target.userId);
    default:
      log.write('info', `${from.source}:unmatched`, { ...fields, reason: applied.result }, `ignored a ${report.kind} for a message that was not sent or is gone`);
      return receipt('unmatched', target.userId);
  }
}
