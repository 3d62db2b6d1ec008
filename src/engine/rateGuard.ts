import type { AppContext } from '../context.ts';
import { readRateGuard, recentSends, type RateGuardSettings, type RateThreshold, type RecentSends } from '../db/rateGuard.ts';
import { onRateExceeded } from './accountHealth.ts';

/**
 * The bounce and complaint rate guard (README "Bounce and complaint rate guard"). Gmail wants a
 * spam-complaint rate under 0.1 %, never 0.3 % (SMTP-FACTS.md, bulk-sender rules), and a bounce rate of a few percent
 * gets mailboxes suspended: past one of its user's thresholds an account is paused (health
 * `paused`, see engine/accountHealth.ts) with the figures in its reason, until its user resumes it.
 *
 * Fed by both kinds of evidence: hard bounces during the SMTP conversation (5.1.x, counted with
 * each outcome batch) and bounces and complaints reported afterwards (reports/applyReport.ts).
 */

/** The reason an account is paused for, or null when it is within its user's thresholds. */
export function rateVerdict(settings: RateGuardSettings, recent: { hardBounces: RecentSends; complaints: RecentSends }): string | null {
  return (
    exceeded(settings.hardBounces, recent.hardBounces, 'hard bounce', 'hard bounces') ??
    exceeded(settings.complaints, recent.complaints, 'complaint', 'complaints')
  );
}

function exceeded(limit: RateThreshold | null, seen: RecentSends, one: string, many: string): string | null {
  if (!limit || seen.sends < limit.minSends || seen.sends === 0) return null;
  const percent = (seen.bad / seen.sends) * 100;
  if (percent <= limit.percent) return null;
  const digits = limit.percent < 1 ? 2 : 1;
  return (
    `${seen.bad} ${seen.bad === 1 ? one : many} in the last ${seen.sends} sends (${percent.toFixed(digits)}%, above ${limit.percent}%): ` +
    'check the list, then PATCH {"resume": true}'
  );
}

/**
 * Looks at the account's recent sends against its user's thresholds and pauses it when one is
 * exceeded. Returns whether this call paused it.
 */
export async function checkRateGuard(ctx: Pick<AppContext, 'db' | 'events' | 'log'>, account: { id: number; userId: number }): Promise<boolean> {
  const settings = await readRateGuard(ctx.db, account.userId);
  if (!settings || (!settings.hardBounces && !settings.complaints)) return false;
  const recent = await recentSends(ctx.db, account.id, {
    hardBounces: settings.hardBounces?.lastSends ?? 0,
    complaints: settings.complaints?.lastSends ?? 0,
  });
  const reason = rateVerdict(settings, recent);
  return reason !== null && onRateExceeded(ctx, account, reason);
}
