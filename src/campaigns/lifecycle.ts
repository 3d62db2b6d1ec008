import { countAccountsThatCouldSend } from '../db/accountHealth.ts';
import {
  completeFinished,
  getCampaign,
  setCampaignStatus,
  setCampaignTotals,
  stoppedWithUnfinishedMessages,
  updateUnstartedCampaign,
  type Campaign,
  type NewCampaign,
} from '../db/campaigns.ts';
import { cancelPending, materialiseQueue } from '../db/messages.ts';
import { conflict, notFound } from '../errors.ts';
import { STOPPABLE_CAMPAIGN_STATUSES } from '../states.ts';
import { pauseIfStuck } from './autoPause.ts';
import { announce, type CampaignContext } from './statusEvents.ts';

/**
 * The one owner of campaign status. Every transition is a conditional UPDATE from the states that
 * allow it, so concurrent requests and engine processes cannot skip a step:
 *   draft ⇄ scheduled → running ⇄ paused (manual) · running ⇄ paused_limits (autoPause.ts) → completed;
 *   any non-final state → stopped (what is left is cancelled).
 * Status events go out through ctx.events, after the change is committed.
 */

async function refuse(ctx: CampaignContext, userId: number, id: number, action: string): Promise<never> {
  const current = await getCampaign(ctx.db, userId, id);
  if (!current) throw notFound('campaign');
  throw conflict('invalid_state', `cannot ${action} a campaign that is ${current.status}`);
}

/**
 * Builds the queue from the campaign's lists and starts sending (or waits for quota). The scheduler
 * passes `dueBy`: the campaign then starts only if it is still scheduled for that moment or earlier
 * (it may have been rescheduled or made a draft since the scheduler read it).
 */
export async function startCampaign(ctx: CampaignContext, userId: number, id: number, opts: { dueBy?: Date } = {}): Promise<Campaign> {
  const now = ctx.clock.now();
  const started = await ctx.db.transaction(async (tx) => {
    const campaign = await getCampaign(tx, userId, id, { lock: true });
    if (!campaign) throw notFound('campaign');
    if (opts.dueBy && !(campaign.status === 'scheduled' && campaign.scheduledAt! <= opts.dueBy)) return undefined;
    if (campaign.status !== 'draft' && campaign.status !== 'scheduled') {
      throw conflict('invalid_state', `cannot start a campaign that is ${campaign.status}`);
    }
    if ((await countAccountsThatCouldSend(tx, userId)) === 0) {
      throw conflict(
        'no_smtp_accounts',
        'add an active SMTP account (POST /api/v1/smtp-accounts), or switch one on or resume a paused one, before starting a campaign',
      );
    }
    const counts = await materialiseQueue(tx, userId, id, campaign.listIds, campaign.skipUndeliverable);
    await setCampaignTotals(tx, id, counts);
    const running = await setCampaignStatus(tx, { id, userId }, ['draft', 'scheduled'], 'running', { startedAt: now });
    const [completed] = await completeFinished(tx, [id], now);
    return completed ?? running!;
  });
  if (!started) return (await getCampaign(ctx.db, userId, id))!;
  announce(ctx.events, started);
  if (started.status === 'running') {
    await pauseIfStuck(ctx, userId);
    ctx.events.emit({ type: 'engine.wake', userId });
  }
  return (await getCampaign(ctx.db, userId, id))!;
}

/**
 * Changes a campaign before it starts: its content, lists or schedule. Setting `scheduledAt`
 * schedules it (draft → scheduled, or a new time); clearing it cancels the schedule (→ draft).
 */
export async function updateCampaign(ctx: CampaignContext, userId: number, id: number, changes: Partial<NewCampaign>): Promise<Campaign> {
  const updated = await updateUnstartedCampaign(ctx.db, userId, id, changes);
  if (!updated) return refuse(ctx, userId, id, 'change');
  if (changes.scheduledAt !== undefined) {
    announce(ctx.events, updated);
    // The scheduler re-arms its timer for the new time.
    ctx.events.emit({ type: 'engine.wake', userId });
  }
  return updated;
}

export async function pauseCampaign(ctx: CampaignContext, userId: number, id: number): Promise<Campaign> {
  const paused = await setCampaignStatus(ctx.db, { id, userId }, ['running', 'paused_limits'], 'paused');
  return paused ? announce(ctx.events, paused) : refuse(ctx, userId, id, 'pause');
}

export async function resumeCampaign(ctx: CampaignContext, userId: number, id: number): Promise<Campaign> {
  const resumed = await setCampaignStatus(ctx.db, { id, userId }, ['paused'], 'running');
  if (!resumed) return refuse(ctx, userId, id, 'resume');
  announce(ctx.events, resumed);
  await pauseIfStuck(ctx, userId);
  ctx.events.emit({ type: 'engine.wake', userId });
  return (await getCampaign(ctx.db, userId, id))!;
}

/**
 * Stops a campaign for good: everything still queued is cancelled; sends in flight finish. The
 * status changes first and alone (no transaction spanning both), so no worker can deadlock with it;
 * a message a worker hands back afterwards is cancelled by recordOutcomes, and settleStopped
 * catches any that slipped between.
 */
export async function stopCampaign(ctx: CampaignContext, userId: number, id: number): Promise<Campaign> {
  const stopped = await setCampaignStatus(ctx.db, { id, userId }, [...STOPPABLE_CAMPAIGN_STATUSES], 'stopped', {
    completedAt: ctx.clock.now(),
  });
  if (!stopped) return refuse(ctx, userId, id, 'stop');
  announce(ctx.events, stopped);
  await cancelPending(ctx.db, id);
  return (await getCampaign(ctx.db, userId, id))!;
}

/** Cancels stragglers left queued in stopped campaigns (see stopCampaign). */
export async function settleStopped(ctx: CampaignContext): Promise<void> {
  for (const id of await stoppedWithUnfinishedMessages(ctx.db)) await cancelPending(ctx.db, id);
}

/** running or paused_limits → completed, for those of the campaigns whose every message is final. */
export async function completeIfFinished(ctx: CampaignContext, ids: number[]): Promise<void> {
  for (const c of await completeFinished(ctx.db, ids, ctx.clock.now())) announce(ctx.events, c);
}
