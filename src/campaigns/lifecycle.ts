import { conflict, notFound } from '../api/errors.ts';
import type { AppContext } from '../context.ts';
import {
  completeFinished,
  getCampaign,
  resumeEnginePaused,
  setCampaignStatus,
  setCampaignTotals,
  type Campaign,
  type CampaignStatus,
} from '../db/campaigns.ts';
import { countUsableAccounts } from '../db/engineAccounts.ts';
import { cancelPending, materialiseQueue } from '../db/messages.ts';
import { pauseIfStuck } from '../engine/limits.ts';

/**
 * The one owner of campaign status. Every transition is a conditional UPDATE from the states that
 * allow it, so concurrent requests and engine processes cannot skip a step:
 *   draft → scheduled → running ⇄ paused (manual) · running ⇄ paused_limits (engine) → completed;
 *   any non-final state → stopped (what is left is cancelled).
 */

function announce(ctx: AppContext, c: Campaign): Campaign {
  ctx.events.emit({ type: 'campaign.status', userId: c.userId, campaignId: c.id, status: c.status });
  return c;
}

async function refuse(ctx: AppContext, userId: number, id: number, action: string): Promise<never> {
  const current = await getCampaign(ctx.db, userId, id);
  if (!current) throw notFound('campaign');
  throw conflict('invalid_state', `cannot ${action} a campaign that is ${current.status}`);
}

/** Builds the queue from the campaign's lists and starts sending (or waits for quota). */
export async function startCampaign(ctx: AppContext, userId: number, id: number): Promise<Campaign> {
  const now = ctx.clock.now();
  const started = await ctx.db.transaction(async (tx) => {
    const campaign = await getCampaign(tx, userId, id, { lock: true });
    if (!campaign) throw notFound('campaign');
    if (campaign.status !== 'draft' && campaign.status !== 'scheduled') {
      throw conflict('invalid_state', `cannot start a campaign that is ${campaign.status}`);
    }
    if ((await countUsableAccounts(tx, userId)) === 0) {
      throw conflict('no_smtp_accounts', 'add an active SMTP account (POST /api/v1/smtp-accounts) before starting a campaign');
    }
    const counts = await materialiseQueue(tx, userId, id, campaign.listIds);
    await setCampaignTotals(tx, id, counts);
    const running = await setCampaignStatus(tx, { id, userId }, ['draft', 'scheduled'], 'running', { startedAt: now });
    const [completed] = await completeFinished(tx, [id], now);
    return completed ?? running!;
  });
  announce(ctx, started);
  if (started.status === 'running') {
    await pauseIfStuck(ctx, userId);
    ctx.events.emit({ type: 'engine.wake', userId });
  }
  return (await getCampaign(ctx.db, userId, id))!;
}

export async function pauseCampaign(ctx: AppContext, userId: number, id: number): Promise<Campaign> {
  const paused = await setCampaignStatus(ctx.db, { id, userId }, ['running', 'paused_limits'], 'paused');
  return paused ? announce(ctx, paused) : refuse(ctx, userId, id, 'pause');
}

export async function resumeCampaign(ctx: AppContext, userId: number, id: number): Promise<Campaign> {
  const resumed = await setCampaignStatus(ctx.db, { id, userId }, ['paused'], 'running');
  if (!resumed) return refuse(ctx, userId, id, 'resume');
  announce(ctx, resumed);
  await pauseIfStuck(ctx, userId);
  ctx.events.emit({ type: 'engine.wake', userId });
  return (await getCampaign(ctx.db, userId, id))!;
}

const STOPPABLE: CampaignStatus[] = ['draft', 'scheduled', 'running', 'paused', 'paused_limits'];

/**
 * Stops a campaign for good: everything still queued is cancelled; sends in flight finish. The
 * status changes first and alone (no transaction spanning both), so no worker can deadlock with it;
 * a message a worker hands back afterwards is cancelled by recordOutcomes, and settleStopped
 * catches any that slipped between.
 */
export async function stopCampaign(ctx: AppContext, userId: number, id: number): Promise<Campaign> {
  const stopped = await setCampaignStatus(ctx.db, { id, userId }, STOPPABLE, 'stopped', { completedAt: ctx.clock.now() });
  if (!stopped) return refuse(ctx, userId, id, 'stop');
  announce(ctx, stopped);
  await cancelPending(ctx.db, id);
  return (await getCampaign(ctx.db, userId, id))!;
}

/** Cancels stragglers left queued in stopped campaigns (see stopCampaign). */
export async function settleStopped(ctx: AppContext): Promise<void> {
  const rows = await ctx.db.query<{ id: number }>(
    `SELECT id FROM campaigns WHERE status = 'stopped' AND sent + failed + suppressed + cancelled < total`,
  );
  for (const { id } of rows) await cancelPending(ctx.db, id);
}

/** The engine's transitions. */
export async function pauseForLimits(ctx: AppContext, userId: number, resumeAt: Date | null, reason: string | null): Promise<Campaign[]> {
  const rows = await ctx.db.query<{ id: number }>(`SELECT id FROM campaigns WHERE user_id = $1 AND status = 'running'`, [userId]);
  const paused: Campaign[] = [];
  for (const { id } of rows) {
    // No account will ever regain quota by itself (all disabled): a manual pause with the reason.
    const to = resumeAt ? 'paused_limits' : 'paused';
    const c = await setCampaignStatus(ctx.db, { id, userId }, ['running'], to, { resumeAt, pauseReason: reason });
    if (c) paused.push(announce(ctx, c));
  }
  return paused;
}

/**
 * One of the user's accounts may be able to send again (re-enabled, a new password, a new account):
 * campaigns the engine paused because no account could send carry on.
 */
export async function resumeForUsableAccount(ctx: AppContext, userId: number): Promise<void> {
  if ((await countUsableAccounts(ctx.db, userId)) === 0) return;
  const resumed = await resumeEnginePaused(ctx.db, userId);
  for (const c of resumed) announce(ctx, c);
  if (resumed.length > 0) await pauseIfStuck(ctx, userId);
}

export async function resumeFromLimits(ctx: AppContext, campaign: Campaign): Promise<void> {
  const resumed = await setCampaignStatus(ctx.db, { id: campaign.id }, ['paused_limits'], 'running');
  if (resumed) announce(ctx, resumed);
}

export async function completeIfFinished(ctx: AppContext, ids: number[]): Promise<void> {
  for (const c of await completeFinished(ctx.db, ids, ctx.clock.now())) announce(ctx, c);
}
