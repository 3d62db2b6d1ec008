import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseIfStuck } from '../src/campaigns/autoPause.ts';
import type { AppEvent } from '../src/events.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

describe.each(databaseKinds)('campaign status events go out only once the change is committed (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(async () => {
    await t.close();
  });

  it('re-enabling an account resumes the paused campaign, and its event finds the change committed', async () => {
    const { id: userId, apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, 2525);
    const accountId = await addAccount(t, apiKey, serverId, 'only@events.test', { hourlyLimit: 10, dailyLimit: 0 });
    const listId = await addList(t, apiKey, 3, 'events.test');
    const id = await createCampaign(t, apiKey, [listId]);
    expect((await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`)).status).toBe('running');

    // The only account is switched off: no account could send, so the campaign waits with a reason.
    await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { active: false });
    await pauseIfStuck(t.mp.ctx, userId);
    expect(await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`)).toMatchObject({ status: 'paused_limits', pauseReason: 'account_health', resumeAt: null });

    // What a listener (an engine, an event stream) reads when the event reaches it, from outside the request.
    const seen: Promise<string>[] = [];
    const off = t.mp.ctx.events.on((e: AppEvent) => {
      if (e.type !== 'campaign.status' || e.campaignId !== id) return;
      seen.push(t.mp.ctx.db.query<{ status: string }>('SELECT status FROM campaigns WHERE id = $1', [id]).then(([r]) => `${e.status}:${r!.status}`));
    });
    try {
      await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { active: true });
    } finally {
      off();
    }
    expect(await Promise.all(seen)).toEqual(['running:running']);
  });

});
