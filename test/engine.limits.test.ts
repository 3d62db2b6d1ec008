import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const HOURLY = 10;
const DAILY = 30;

describe.each(databaseKinds)('limits are exact; campaigns pause and resume by themselves (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
    peer = await startSmtpPeer();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  /** Sends per account as the peer saw them, in the current fake hour and day. */
  function receivedPerAccount(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const m of peer.messages) counts.set(m.mailFrom, (counts.get(m.mailFrom) ?? 0) + 1);
    return counts;
  }

  it('sends exactly the hourly then the daily quota, resuming at each reset', async () => {
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, peer.port, 20);
    for (let i = 0; i < 10; i++) await addAccount(t, apiKey, serverId, `a${i}@limits.test`, { hourlyLimit: HOURLY, dailyLimit: DAILY });
    const listId = await addList(t, apiKey, 500);
    const id = await createCampaign(t, apiKey, [listId]);

    let hourBaseline = new Map<string, number>();
    let dayBaseline = new Map<string, number>();
    const expectPausedAfter = async (sent: number, resumeAt: string) => {
      const c = await waitForCampaign(t, apiKey, id, (x) => x.status === 'paused_limits' && x.resumeAt === resumeAt);
      await waitForIdleEngine(t);
      expect(c).toMatchObject({ status: 'paused_limits', sent, resumeAt });
      expect(c.warnings.join(' ')).toMatch(/limit/);
      expect(peer.messages).toHaveLength(sent);
      const now = receivedPerAccount();
      const accounts = await must(t, apiKey, 'GET', '/api/v1/smtp-accounts');
      for (const a of accounts.items) {
        const thisHour = (now.get(a.email) ?? 0) - (hourBaseline.get(a.email) ?? 0);
        const today = (now.get(a.email) ?? 0) - (dayBaseline.get(a.email) ?? 0);
        // Every account used its whole hour, and no account went past it or past its day.
        expect(thisHour).toBe(HOURLY);
        expect(today).toBeLessThanOrEqual(DAILY);
        expect(a.usage).toMatchObject({ sentThisHour: thisHour, sentToday: today, hourlyLimit: HOURLY, dailyLimit: DAILY, effectiveDailyLimit: DAILY });
      }
      hourBaseline = now;
    };

    expect((await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`)).status).toBe('running');
    await expectPausedAfter(100, '2026-03-02T11:00:00.000Z');

    clock.set('2026-03-02T11:00:00Z');
    await expectPausedAfter(200, '2026-03-02T12:00:00.000Z');

    // The third hour uses up the day: the next reset that helps is midnight, not 13:00.
    clock.set('2026-03-02T12:00:00Z');
    await expectPausedAfter(300, '2026-03-03T00:00:00.000Z');
    for (const n of receivedPerAccount().values()) expect(n).toBe(DAILY);

    // Still the same day an hour later: nothing moves.
    clock.set('2026-03-02T13:00:00Z');
    await t.mp.engine!.wake();
    await waitForIdleEngine(t);
    expect(peer.messages).toHaveLength(300);
    expect((await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`)).status).toBe('paused_limits');

    clock.set('2026-03-03T00:00:00Z');
    dayBaseline = receivedPerAccount();
    await expectPausedAfter(400, '2026-03-03T01:00:00.000Z');
    clock.set('2026-03-03T01:00:00Z');
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 500, pending: 0, resumeAt: null });
    expect(new Set(peer.messages.flatMap((m) => m.rcptTo)).size).toBe(500);
  });

  it('starting while every account is at its limit goes straight to paused_limits', async () => {
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, peer.port);
    await addAccount(t, apiKey, serverId, 'only@limits.test', { hourlyLimit: 1, dailyLimit: 0 });
    const listId = await addList(t, apiKey, 3, 'full.test');
    const first = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${first}/start`);
    await waitForCampaign(t, apiKey, first, (c) => c.status === 'paused_limits' && c.sent === 1);
    await waitForIdleEngine(t);
    const second = await createCampaign(t, apiKey, [listId]);
    const started = await must(t, apiKey, 'POST', `/api/v1/campaigns/${second}/start`);
    const nextHour = new Date(Math.floor(clock.now().getTime() / 3_600_000 + 1) * 3_600_000).toISOString();
    expect(started).toMatchObject({ status: 'paused_limits', resumeAt: nextHour });
  });
});
