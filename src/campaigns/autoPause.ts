import { couldEverSend, userAccountStates, type UserAccountState } from '../db/accountHealth.ts';
import { campaignsInStatus, reschedulePaused, runningCampaignIds, setCampaignStatus, type Campaign } from '../db/campaigns.ts';
import { hasDueMessages } from '../db/messages.ts';
import { readFacts } from '../sendingPolicy/facts.ts';
import { decide } from '../sendingPolicy/policy.ts';
import type { PauseReason } from '../states.ts';
import { announce, type CampaignContext } from './statusEvents.ts';

/**
 * Automatic pause and resume (DESIGN.md promise 3): when no account of a user can send and a
 * running campaign still has due messages, its running campaigns wait as paused_limits with
 * resumeAt = the earliest moment the sending policy (src/sendingPolicy/policy.ts) lets any account
 * that could send start a send, and pauseReason = the rule that holds that account back; the
 * scheduler resumes them then. When no account could ever send again by itself (all switched off,
 * disabled or paused for their bounce rate), they wait as paused_limits without a resumeAt, with
 * pauseReason account_health (or bounce_rate when an account switched on is paused for its rate),
 * and resume as soon as one can (reconsiderPaused, on every change of the user's accounts).
 *
 *   running ──every account at a limit──► paused_limits (resumeAt) ──resumeAt──► running
 *   running ──no account could send──► paused_limits (no resumeAt) ──an account is usable again──► running
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
  const next = await nextSend(ctx, accounts, now);
  if (next === 'now') return undefined;
  if (next === 'never') {
    await pauseForLimits(ctx, userId, null, stuckReason(accounts), `no SMTP account can send; these need attention: ${attentionOf(accounts) || 'none configured'}`);
    return undefined;
  }
  await pauseForLimits(ctx, userId, next.at, next.reason, waitingWords(next.reason, accounts));
  return next.at;
}

/** Why no account can send: one switched on is paused for its bounce or complaint rate, or something else needs attention. */
function stuckReason(accounts: UserAccountState[]): PauseReason {
  return accounts.some((a) => a.active && a.health === 'paused') ? 'bounce_rate' : 'account_health';
}

/**
 * The user's accounts or their rules changed (switched on, resumed, a new account or password, a
 * time zone, a limit, a window, a cap): campaigns waiting as paused_limits wait for the moment the
 * new rules give, or resume at once.
 */
export async function reconsiderPaused(ctx: CampaignContext, userId: number): Promise<void> {
  const waiting = await campaignsInStatus(ctx.db, userId, 'paused_limits');
  if (waiting.length === 0) return;
  const now = ctx.clock.now();
  const accounts = await userAccountStates(ctx.db, userId, now);
  const next = await nextSend(ctx, accounts, now);
  if (next === 'never') return;
  if (next === 'now') {
    for (const c of waiting) await resumeFromLimits(ctx, c);
  } else {
    for (const c of await reschedulePaused(ctx.db, userId, next.at, next.reason, waitingWords(next.reason, accounts))) announce(ctx.events, c);
  }
  ctx.events.emit({ type: 'engine.wake', userId });
}

/** When the first of these accounts may start a send, by the sending policy: now, at a moment (and why), or never by itself. */
async function nextSend(ctx: CampaignContext, accounts: UserAccountState[], now: Date): Promise<'now' | 'never' | { at: Date; reason: PauseReason }> {
  const usable = accounts.filter(couldEverSend);
  const facts = await readFacts(ctx.db, usable.map((a) => a.id), now);
  let earliest: { at: number; reason: PauseReason } | undefined;
  for (const a of usable) {
    const d = decide(facts.get(a.id)!, now.getTime(), 1);
    if (d.allowance > 0) return 'now';
    if (d.nextAt !== null && (!earliest || d.nextAt < earliest.at)) earliest = { at: d.nextAt, reason: d.reason ?? 'limits' };
  }
  return earliest ? { at: new Date(earliest.at), reason: earliest.reason } : 'never';
}

const attentionOf = (accounts: UserAccountState[]) =>
  accounts
    .filter((a) => !couldEverSend(a))
    .map(needsAttention)
    .join('; ');

function waitingWords(reason: PauseReason, accounts: UserAccountState[]): string {
  const attention = attentionOf(accounts);
  return attention ? `${WAITING_FOR[reason]}; these need attention: ${attention}` : WAITING_FOR[reason];
}

/** What a campaign waits for, in words, by the rule that holds its accounts back. */
const WAITING_FOR: Record<PauseReason, string> = {
  limits: 'every SMTP account of this user is at a limit or backing off',
  sending_window: 'every SMTP account of this user is outside its sending window',
  warmup: "every SMTP account of this user is at today's warm-up limit",
  domain_cap: "every SMTP account of this user is at its domain's cap",
  account_health: 'every SMTP account of this user is at a limit or backing off after its server\'s replies',
  bounce_rate: 'every SMTP account of this user is paused for its bounce or complaint rate',
  repeated_failures: 'its messages keep failing for the same reason',
};

function needsAttention(a: UserAccountState): string {
  if (!a.active) return `${a.email} (switched off)`;
  return `${a.email} (${a.healthReason ?? a.health})`;
}

/** running → paused_limits until `resumeAt`, or with no `resumeAt` until an account can send again (reconsiderPaused). */
export async function pauseForLimits(
  ctx: CampaignContext,
  userId: number,
  resumeAt: Date | null,
  code: PauseReason,
  reason: string,
): Promise<Campaign[]> {
  const paused: Campaign[] = [];
  for (const id of await runningCampaignIds(ctx.db, userId)) {
    const c = await setCampaignStatus(ctx.db, { id, userId }, ['running'], 'paused_limits', { resumeAt, pauseReason: reason, pauseCode: code });
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
 * fixed the cause: an account becoming usable does not (reconsiderPaused).
 */
export async function pauseForRepeatedFailures(ctx: CampaignContext, userId: number, campaignId: number, reason: string): Promise<void> {
  const c = await setCampaignStatus(ctx.db, { id: campaignId, userId }, ['running', 'paused_limits'], 'paused', {
    pauseReason: reason,
    pauseCode: 'repeated_failures',
  });
  if (c) announce(ctx.events, c);
}

/** Why the engine holds a campaign back (API.md pauseReason), while it does; null otherwise. */
export function pauseReasonOf(c: Campaign): PauseReason | null {
  return c.status === 'paused_limits' || c.status === 'paused' ? c.pauseCode : null;
}
