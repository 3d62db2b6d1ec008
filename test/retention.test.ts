import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveFinishedCampaigns } from '../src/campaigns/retention.ts';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const DAY = 24 * 60 * 60 * 1000;

describe.each(databaseKinds)('retention archives finished campaigns and leaves live ones alone (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  let slowPeer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
    peer = await startSmtpPeer({
      onRcpt: (address) => (address.startsWith('r3@') ? { code: 550, message: '5.1.1 no such user' } : undefined),
    });
    // Keeps a campaign running (in real time) while retention runs.
    slowPeer = await startSmtpPeer({ dataDelayMs: 400 });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
    await slowPeer.close();
  });

  const rowsByStatus = async (campaignId: number) => {
    const rows = await t.mp.ctx.db.query<{ status: string; n: number }>(
      'SELECT status, count(*) AS n FROM messages WHERE campaign_id = $1 GROUP BY status ORDER BY status',
      [campaignId],
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  };

  it('a campaign finished 31 days ago loses its per-recipient rows but keeps counters and failures; a running one is untouched', async () => {
    const { apiKey } = await t.createUser();
    await addAccount(t, apiKey, await addServer(t, apiKey, peer.port), 'old@sender.test');
    const listId = await addList(t, apiKey, 12);
    await t.api('POST', '/api/v1/suppressions/import', { key: apiKey, body: 'email\nr5@rcpt.test\n', contentType: 'text/csv' });
    const old = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${old}/start`);
    const finished = await waitForCampaign(t, apiKey, old, (c) => c.status === 'completed');
    expect(finished).toMatchObject({ total: 12, sent: 10, failed: 1, suppressed: 1 });
    expect(await rowsByStatus(old)).toEqual({ sent: 10, failed: 1, suppressed: 1 });

    // 30 days later the campaign is still within retention.
    clock.advance(30 * DAY);
    expect(await archiveFinishedCampaigns(t.mp.ctx.db, clock.now(), 30)).toEqual({ campaigns: 0, messagesDeleted: 0 });
    expect(await rowsByStatus(old)).toEqual({ sent: 10, failed: 1, suppressed: 1 });

    // A day on, the server's daily pass archives it by itself.
    clock.advance(DAY);
    const archived = await waitForCampaign(t, apiKey, old, (c) => c.archivedAt !== null, 30_000);
    expect(archived).toMatchObject({ status: 'completed', total: 12, sent: 10, failed: 1, suppressed: 1, pending: 0, archivedAt: clock.now().toISOString() });
    expect(await rowsByStatus(old)).toEqual({ failed: 1 });
    const failures = await must(t, apiKey, 'GET', `/api/v1/campaigns/${old}/messages`);
    expect(failures.items).toEqual([expect.objectContaining({ email: 'r3@rcpt.test', status: 'failed', lastError: expect.stringContaining('5.1.1') })]);
    const suppressions = (await t.api('GET', '/api/v1/suppressions/export.csv', { key: apiKey })).body as string;
    expect(suppressions).toContain('r3@rcpt.test,hard_bounce,');
    expect(suppressions).toContain('r5@rcpt.test,manual,');

    // A campaign running now keeps every row while retention runs again.
    const busy = await t.createUser();
    await addAccount(t, busy.apiKey, await addServer(t, busy.apiKey, slowPeer.port, 1), 'busy@sender.test');
    const running = await createCampaign(t, busy.apiKey, [await addList(t, busy.apiKey, 6, 'busy.test')]);
    await must(t, busy.apiKey, 'POST', `/api/v1/campaigns/${running}/start`);
    await waitForCampaign(t, busy.apiKey, running, (c) => c.sent >= 1);
    expect(await archiveFinishedCampaigns(t.mp.ctx.db, new Date(clock.now().getTime() + 365 * DAY), 30)).toEqual({ campaigns: 0, messagesDeleted: 0 });
    const live = await must(t, busy.apiKey, 'GET', `/api/v1/campaigns/${running}`);
    expect(live).toMatchObject({ status: 'running', archivedAt: null });
    const counts = await rowsByStatus(running);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(6);
    expect(await waitForCampaign(t, busy.apiKey, running, (c) => c.status === 'completed')).toMatchObject({ sent: 6 });
    expect(await rowsByStatus(running)).toEqual({ sent: 6 });
  });
});
