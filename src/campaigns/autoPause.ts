import { backOffUntil, countAccountsThatCouldSend, couldEverSend, userAccountStates, type UserAccountState } from '../db/accountHealth.ts';
import { resumeEnginePaused, runningCampaignIds, setCampaignStatus, type Campaign } from '../db/campaigns.ts';
import { hasDueMessages } from '../db/messages.ts';
import { nextQuotaAt } from '../db/usage.ts';
import { announce, type CampaignContext } from './statusEvents.ts';

/**
 * Automatic pause and resume (DESIGN.md promise 3): when no account of a user can send and a
 * running campaign still has due messages, its running campaigns wait as paused_limits with
 * resumeAt = the earliest moment any account that could send regains quota; the scheduler resumes
 * them then. When no account could ever send again (all switched off or disabled), they are paused
 * with the reason instead, and resume as soon as one can (resumeForUsableAccount).
 *
 *   running ──every account at a limit──► paused_limits ──resumeAt──► running
 *   running ──no account could send──► paused (with a reason) ──an account is usable again──► running
 *   running ──messages keep failing for one local reason──► paused (with the reason) ──its user resumes it──► running
 */

/**
 * Pauses the user's running campaigns if no account can send and none is sending. Returns the
 * moment they resume, or undefined when the user is not stuck (or can only be resumed by hand).
 */
export async function pauseIfStuck(ctx: CampaignContext, userId: number): Promise<Date | undefined> {
  const now = ctx.clock.now();
  const accounts = await userAccountStates(ctx.db, userId, now);
  if (accounts.some((a) => a.leased)) return undefined;
  if (!(await hasDueMessages(ctx.db, userId, now))) return undefined;
  const usable = accounts.filter(couldEverSend);
  const attention = accounts.filter((a) => !couldEverSend(a)).map(needsAttention).join('; ');
  if (usable.length === 0) {
    await pauseForLimits(ctx, userId, null, `no SMTP account can send; these need attention: ${attention || 'none configured'}`);
    return undefined;
  }
  const quotaAt = await nextQuotaAt(ctx.db, usable.map((a) => a.id), now);
  let earliest: Date | undefined;
  for (const a of usable) {
    const quota = quotaAt.get(a.id)!;
    const blockedUntil = backOffUntil(a, now);
    const at = blockedUntil && blockedUntil > quota ? blockedUntil : quota;
    if (!earliest || at < earliest) earliest = at;
  }
  if (!earliest || earliest <= now) return undefined;
  const reason = 'every SMTP account of this user is at a limit or backing off';
  await pauseForLimits(ctx, userId, earliest, attention ? `${reason}; these need attention: ${attention}` : reason);
  return earliest;
}

function needsAttention(a: UserAccountState): string {
  if (!a.active) return `${a.email} (switched off)`;
  return `${a.email} (${a.healthReason ?? a.health})`;
}

/**
 * running → paused_limits until `resumeAt`; with no `resumeAt` (no account will regain quota by
 * itself) running → paused, keeping the reason so resumeForUsableAccount can tell it from a manual pause.
 */
export async function pauseForLimits(ctx: CampaignContext, userId: number, resumeAt: Date | null, reason: string | null): Promise<Campaign[]> {
  const paused: Campaign[] = [];
  for (const id of await runningCampaignIds(ctx.db, userId)) {
    const to = resumeAt ? 'paused_limits' : 'paused';
    const pauseCause = resumeAt ? undefined : 'no_usable_account';
    const c = await setCampaignStatus(ctx.db, { id, userId }, ['running'], to, { resumeAt, pauseReason: reason, pauseCause });
    if (c) paused.push(announce(ctx.events, c));
  }
  return paused;
}

/** paused_limits → running, when its resumeAt has come (the scheduler calls it). */
export async function resumeFromLimits(ctx: CampaignContext, campaign: Campaign): Promise<void> {
  const resumed = await setCampaignStatus(ctx.db, { id: campaign.id }, ['paused_limits'], 'running');
  if (resumed) announce(ctx.events, resumed);
}

/**
 * running (or waiting for quota) → paused, because its messages keep failing for the same local
 * reason (their content: see engine/localFailures.ts). Only its user resumes it, once they have
 * fixed the cause: an account becoming usable does not (resumeForUsableAccount).
 */
export async function pauseForRepeatedFailures(ctx: CampaignContext, userId: number, campaignId: number, reason: string): Promise<void> {
  const c = await setCampaignStatus(ctx.db, { id: campaignId, userId }, ['running', 'paused_limits'], 'paused', {
    pauseReason: reason,
    pauseCause: 'repeated_failures',
  });
  if (c) announce(ctx.events, c);
}

/**
 * One of the user's accounts may be able to send again (re-enabled, a new password, a new account):
 * campaigns the engine paused because no account could send carry on.
 */
export async function resumeForUsableAccount(ctx: CampaignContext, userId: number): Promise<void> {
  if ((await countAccountsThatCouldSend(ctx.db, userId)) === 0) return;
  const resumed = await resumeEnginePaused(ctx.db, userId);
  for (const c of resumed) announce(ctx.events, c);
  if (resumed.length > 0) await pauseIfStuck(ctx, userId);
}
