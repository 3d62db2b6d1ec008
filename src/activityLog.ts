import type { Events } from './events.ts';
import type { Logger } from './log.ts';

/**
 * Structured log lines for what campaigns and accounts do, so an operator can follow one campaign
 * (campaignId), one SMTP account (accountId) or one engine process (worker) through the log.
 * Returns the unsubscribe function.
 */
export function logActivity(events: Events, log: Logger, worker: string | undefined): () => void {
  return events.on((e) => {
    if (e.type === 'campaign.status') {
      log.info({ campaignId: e.campaignId, userId: e.userId, status: e.status }, `campaign ${e.status}`);
    } else if (e.type === 'account.outcomes') {
      log.debug({ accountId: e.accountId, userId: e.userId, worker, counts: e.counts }, 'send outcomes recorded');
    }
  });
}
