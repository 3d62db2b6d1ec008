import type { AppContext } from '../../context.ts';
import { healthView } from '../../db/accountHealth.ts';
import { accountSummaries, campaignLoad, loadPerUser } from '../../db/stats.ts';
import { readAccountUsage } from '../../sendingPolicy/accountUsage.ts';
import { z } from 'zod';
import type { ZodApp } from '../app.ts';
import { healthReply, id } from '../schemas.ts';

const count = z.number().int();
const statsReply = z.object({
  activeCampaigns: count.describe('campaigns running or paused by their limits'),
  pending: count.describe('messages of unfinished campaigns not sent, failed, suppressed or cancelled yet'),
  accounts: z.array(
    z.object({
      accountId: id,
      userId: id.optional().describe('admin key only'),
      email: z.string(),
      sentThisHour: count,
      sentToday: count,
      hourlyLimit: count,
      dailyLimit: count,
      health: healthReply,
    }),
  ),
  concurrentUsers: count.optional().describe('admin key only: users with a campaign sending'),
  perUser: z
    .array(z.object({ userId: id, activeCampaigns: count, pending: count, total: count, sent: count }))
    .optional()
    .describe('admin key only: every user with an unfinished campaign, most pending first'),
});

/**
 * What is going on now: a user's key sees its own load and accounts; the admin key sees the whole
 * system, plus how many users are sending at once and each one's load (see db/stats.ts).
 */
export function statsRoutes(app: ZodApp, ctx: AppContext): void {
  app.get('/api/v1/stats', { schema: { response: { 200: statsReply } } }, async (req) => {
    const userId = req.caller.kind === 'user' ? req.caller.userId : undefined;
    const now = ctx.clock.now();
    const load = await campaignLoad(req.db, userId);
    const summaries = await accountSummaries(req.db, userId);
    const usage = await readAccountUsage(req.db, summaries.map((a) => a.id), now);
    const accounts = summaries.map((a) => {
      const u = usage.get(a.id);
      return {
        accountId: a.id,
        ...(userId === undefined ? { userId: a.userId } : {}),
        email: a.email,
        sentThisHour: u?.sentThisHour ?? 0,
        sentToday: u?.sentToday ?? 0,
        hourlyLimit: a.hourlyLimit,
        dailyLimit: a.dailyLimit,
        health: healthView(a, now),
      };
    });
    const view = { activeCampaigns: load.activeCampaigns, pending: load.pending, accounts };
    if (userId === undefined) return { ...view, concurrentUsers: load.concurrentUsers, perUser: await loadPerUser(req.db) };
    return view;
  });
}
