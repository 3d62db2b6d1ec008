import { pauseForLimits } from '../campaigns/lifecycle.ts';
import type { AppContext } from '../context.ts';
import { userAccountStates, type UserAccountState } from '../db/engineAccounts.ts';
import { hasDueMessages } from '../db/messages.ts';
import { nextQuotaAt } from '../db/usage.ts';

/**
 * Automatic pause (promise 3): when no account of a user can send and none is sending, its running
 * campaigns become paused_limits with resumeAt = the earliest moment any usable account regains
 * quota. Returns that moment, or undefined when the user is not stuck.
 */
export async function pauseIfStuck(ctx: AppContext, userId: number): Promise<Date | undefined> {
  const now = ctx.clock.now();
  const accounts = await userAccountStates(ctx.db, userId, now);
  if (accounts.some((a) => a.leased)) return undefined;
  if (!(await hasDueMessages(ctx.db, userId, now))) return undefined;
  const usable = accounts.filter((a) => a.usable);
  const attention = accounts.filter((a) => !a.usable).map(needsAttention).join('; ');
  if (usable.length === 0) {
    await pauseForLimits(ctx, userId, null, `no SMTP account can send; these need attention: ${attention || 'none configured'}`);
    return undefined;
  }
  const quotaAt = await nextQuotaAt(ctx.db, usable.map((a) => a.id), now);
  let earliest: Date | undefined;
  for (const a of usable) {
    const quota = quotaAt.get(a.id)!;
    const at = a.blockedUntil && a.blockedUntil > quota ? a.blockedUntil : quota;
    if (!earliest || at < earliest) earliest = at;
  }
  if (!earliest || earliest <= now) return undefined;
  const reason = 'every SMTP account of this user is at a limit';
  await pauseForLimits(ctx, userId, earliest, attention ? `${reason}; these need attention: ${attention}` : reason);
  return earliest;
}

function needsAttention(a: UserAccountState): string {
  if (!a.active) return `${a.email} (switched off)`;
  return `${a.email} (${a.healthReason ?? a.health})`;
}
