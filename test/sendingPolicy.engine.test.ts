import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addList, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/**
 * The sending policy as the engine obeys it, under the fake clock, over days: each test is its own
 * user (the automatic pause is per user) sending to one SMTP peer, and reads what the peer received.
 */
describe.each(databaseKinds)('the engine obeys the sending policy (%s)', (kind) => {
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

  /** A user with one server on the peer and the given accounts; returns the key and account ids. */
  async function sender(name: string, accounts: Record<string, unknown>[]) {
    const { apiKey } = await t.createUser(name);
    const serverId = await addServer(t, apiKey, peer.port, 20);
    const ids: number[] = [];
    for (const [i, fields] of accounts.entries()) {
      const a = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: `a${i}@${name}.test`, hourlyLimit: 0, dailyLimit: 0, ...fields });
      ids.push(a.id);
    }
    return { apiKey, ids };
  }
  const sentFrom = (domain: string) => peer.messages.filter((m) => m.mailFrom.endsWith(`@${domain}`));
  const campaign = (key: string, id: number) => must(t, key, 'GET', `/api/v1/campaigns/${id}`);
  const waitsUntil = async (key: string, id: number, resumeAt: string, pauseReason: string) => {
    const c = await waitForCampaign(t, key, id, (x) => x.status === 'paused_limits' && x.resumeAt === resumeAt);
    await waitForIdleEngine(t);
    expect(c.pauseReason).toBe(pauseReason);
    return c;
  };

  it('forgets no send when the time zone changes: a half-hour zone keeps the hour, and resumeAt follows it', async () => {
    clock.set('2026-03-02T10:05:00Z');
    const { apiKey, ids } = await sender('zone', [{ hourlyLimit: 10 }]);
    const id = await createCampaign(t, apiKey, [await addList(t, apiKey, 30, 'zone-rcpt.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitsUntil(apiKey, id, '2026-03-02T11:00:00.000Z', 'limits');
    expect(sentFrom('zone.test')).toHaveLength(10);

    // In Asia/Kolkata (UTC+5:30) 10:05Z is 15:35: its clock hour began at 09:30Z and holds all ten sends.
    const moved = await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${ids[0]}`, { timezone: 'Asia/Kolkata' });
    expect(moved.usage).toMatchObject({ sentThisHour: 10, nextSendAt: '2026-03-02T10:30:00.000Z' });
    expect(await campaign(apiKey, id)).toMatchObject({ status: 'paused_limits', resumeAt: '2026-03-02T10:30:00.000Z' });

    // Pausing and resuming does not make room in the same hour.
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/pause`);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/resume`);
    await waitsUntil(apiKey, id, '2026-03-02T10:30:00.000Z', 'limits');
    expect(sentFrom('zone.test')).toHaveLength(10);

    clock.set('2026-03-02T10:30:00Z');
    await waitsUntil(apiKey, id, '2026-03-02T11:30:00.000Z', 'limits');
    expect(sentFrom('zone.test')).toHaveLength(20);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/stop`);
  });

  it('counts the two 01:00 hours of the night clocks go back as two hours (America/New_York)', async () => {
    clock.set('2026-11-01T05:10:00Z');
    const { apiKey } = await sender('dst', [{ hourlyLimit: 10, timezone: 'America/New_York' }]);
    const id = await createCampaign(t, apiKey, [await addList(t, apiKey, 30, 'dst-rcpt.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    // 01:10 EDT: the hour ends at the second 01:00, which is 01:00 EST.
    await waitsUntil(apiKey, id, '2026-11-01T06:00:00.000Z', 'limits');
    clock.set('2026-11-01T06:00:00Z');
    await waitsUntil(apiKey, id, '2026-11-01T07:00:00.000Z', 'limits');
    expect(sentFrom('dst.test')).toHaveLength(20);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/stop`);
  });

  it('sends a calendar day twice across midnight but a rolling 24 hours once, and forecasts each day as it goes', async () => {
    clock.set('2026-03-04T23:50:00Z');
    const calendar = await sender('calendar', [{ dailyLimit: 10 }]);
    const rolling = await sender('rolling', [{ dailyLimit: 10, limitWindow: 'rolling' }]);
    const start = async (s: { apiKey: string }, domain: string) => {
      const id = await createCampaign(t, s.apiKey, [await addList(t, s.apiKey, 25, domain)]);
      await must(t, s.apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
      return id;
    };
    const c1 = await start(calendar, 'cal-rcpt.test');
    const c2 = await start(rolling, 'roll-rcpt.test');
    await waitsUntil(calendar.apiKey, c1, '2026-03-05T00:00:00.000Z', 'limits');
    // Sent at 23:50: the minute has left the 24 hours at 23:51 the next day.
    await waitsUntil(rolling.apiKey, c2, '2026-03-05T23:51:00.000Z', 'limits');

    const forecast = await must(t, rolling.apiKey, 'GET', `/api/v1/campaigns/${c2}/forecast`);
    // The next ten go at 23:51 and leave the window a minute after a day has passed: the last five go then.
    expect(forecast).toEqual({
      finishAt: '2026-03-06T23:52:00.000Z',
      days: [
        { date: '2026-03-05', sends: 10 },
        { date: '2026-03-06', sends: 5 },
      ],
    });

    clock.set('2026-03-05T00:00:00Z');
    await waitsUntil(calendar.apiKey, c1, '2026-03-06T00:00:00.000Z', 'limits');
    expect(sentFrom('calendar.test')).toHaveLength(20);
    expect(sentFrom('rolling.test')).toHaveLength(10);
    await must(t, calendar.apiKey, 'POST', `/api/v1/campaigns/${c1}/stop`);

    clock.set('2026-03-05T23:51:00Z');
    await waitsUntil(rolling.apiKey, c2, '2026-03-06T23:52:00.000Z', 'limits');
    expect(sentFrom('rolling.test')).toHaveLength(20);
    clock.set('2026-03-06T23:52:00Z');
    await waitForCampaign(t, rolling.apiKey, c2, (c) => c.status === 'completed');
    expect(sentFrom('rolling.test')).toHaveLength(25);
  });

  it('sends only inside its sending window: a campaign started on Saturday waits for Monday 09:00 in Paris', async () => {
    clock.set('2026-03-28T10:00:00Z');
    const window = { timezone: 'Europe/Paris', days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' };
    const { apiKey } = await sender('office', [{ sendingWindow: window }]);
    const id = await createCampaign(t, apiKey, [await addList(t, apiKey, 5, 'office-rcpt.test')]);
    const started = await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    // Summer time has begun by Monday: 09:00 in Paris is 07:00Z.
    expect(started).toMatchObject({ status: 'paused_limits', resumeAt: '2026-03-30T07:00:00.000Z', pauseReason: 'sending_window' });
    expect(await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}/forecast?timezone=Europe/Paris`)).toEqual({
      finishAt: '2026-03-30T07:00:00.000Z',
      days: [{ date: '2026-03-30', sends: 5 }],
    });
    clock.set('2026-03-30T07:00:00Z');
    await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    expect(sentFrom('office.test')).toHaveLength(5);
  });

  it('ramps up by sending day, and a day without sends does not count', async () => {
    clock.set('2026-04-01T10:00:00Z');
    const { apiKey, ids } = await sender('warm', [{ dailyLimit: 100, warmup: { startPerDay: 5, increasePerDay: 5 } }]);
    const id = await createCampaign(t, apiKey, [await addList(t, apiKey, 40, 'warm-rcpt.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitsUntil(apiKey, id, '2026-04-02T00:00:00.000Z', 'warmup');
    expect(sentFrom('warm.test')).toHaveLength(5);
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${ids[0]}`)).usage).toMatchObject({ sentToday: 5, effectiveDailyLimit: 5 });
    expect(await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}/forecast`)).toEqual({
      finishAt: '2026-04-04T00:00:00.000Z',
      days: [
        { date: '2026-04-02', sends: 10 },
        { date: '2026-04-03', sends: 15 },
        { date: '2026-04-04', sends: 10 },
      ],
    });

    clock.set('2026-04-02T00:00:00Z');
    await waitsUntil(apiKey, id, '2026-04-03T00:00:00.000Z', 'warmup');
    expect(sentFrom('warm.test')).toHaveLength(15);
    // Day 3 passes without sends (paused by hand): on 4 April the account is on its third sending day.
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/pause`);
    clock.set('2026-04-04T00:00:00Z');
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/resume`);
    await waitsUntil(apiKey, id, '2026-04-05T00:00:00.000Z', 'warmup');
    expect(sentFrom('warm.test')).toHaveLength(30);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/stop`);
  });

  it('pauses between two sends for a random gap in [minGapSeconds, maxGapSeconds]', async () => {
    clock.set('2026-04-10T10:00:00Z');
    const { apiKey } = await sender('gaps', [{ minGapSeconds: 60, maxGapSeconds: 120 }]);
    const id = await createCampaign(t, apiKey, [await addList(t, apiKey, 4, 'gaps-rcpt.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const STEP_MS = 5_000;
    for (let i = 0; i < 200 && (await campaign(apiKey, id)).status !== 'completed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      clock.advance(STEP_MS);
    }
    const dates = sentFrom('gaps.test').map((m) => Date.parse(m.headers.get('date')!));
    expect(dates).toHaveLength(4);
    for (let i = 1; i < dates.length; i++) {
      const gap = dates[i]! - dates[i - 1]!;
      expect(gap).toBeGreaterThanOrEqual(60_000);
      expect(gap).toBeLessThanOrEqual(120_000 + 2 * STEP_MS);
    }
  });

  it('fills the limits, window and pace of a provider preset, for the fields not given', async () => {
    const { apiKey } = await t.createUser('presets');
    const serverId = await addServer(t, apiKey, peer.port);
    const m365 = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'a@m365.test', preset: 'microsoft365' });
    expect(m365).toMatchObject({ preset: 'microsoft365', limitWindow: 'rolling', hourlyLimit: 1440, dailyLimit: 8000, ratePerSecond: 0.4, maxConnections: 3 });
    const lowered = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'b@gmail.test', preset: 'gmail', dailyLimit: 200 });
    expect(lowered).toMatchObject({ limitWindow: 'rolling', hourlyLimit: 80, dailyLimit: 200, ratePerSecond: 1, maxConnections: 2 });
    const missing = await t.api('POST', '/api/v1/smtp-accounts', { key: apiKey, body: { serverId, email: 'c@x.test' } });
    expect(missing.status).toBe(422);
    expect(missing.body.error.message).toMatch(/^hourlyLimit: /);
  });

  it('holds mail to a throttled recipient domain back while mail to other domains flows', async () => {
    clock.set('2026-04-20T10:00:30Z');
    const { apiKey } = await sender('throttled', [{}]);
    await must(t, apiKey, 'POST', '/api/v1/recipient-throttles', { domain: 'slow-rcpt.test', perMinute: 5 });
    const slow = await addList(t, apiKey, 12, 'slow-rcpt.test', 's');
    const fast = await addList(t, apiKey, 10, 'fast-rcpt.test', 'f');
    const id = await createCampaign(t, apiKey, [slow, fast]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const toDomain = (d: string) => sentFrom('throttled.test').filter((m) => m.rcptTo[0]!.endsWith(`@${d}`)).length;
    await waitForCampaign(t, apiKey, id, (c) => c.sent === 15);
    await waitForIdleEngine(t);
    expect([toDomain('slow-rcpt.test'), toDomain('fast-rcpt.test')]).toEqual([5, 10]);
    expect(await campaign(apiKey, id)).toMatchObject({ status: 'running', pending: 7 });

    clock.set('2026-04-20T10:01:00Z');
    await waitForCampaign(t, apiKey, id, (c) => c.sent === 20);
    clock.set('2026-04-20T10:02:00Z');
    await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    expect(toDomain('slow-rcpt.test')).toBe(12);
  });
});

describe.each(databaseKinds)('usage counts sends, never reservations (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:59:30Z');
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
    // Slow replies keep reserved sends waiting in the worker's queue.
    peer = await startSmtpPeer({ dataDelayMs: 150 });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  it('reports what the peer received while a worker holds more, and gives back at once what an ended hour held', async () => {
    const { apiKey } = await t.createUser('holder');
    const serverId = await addServer(t, apiKey, peer.port);
    const account = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'a@holder.test', hourlyLimit: 100, dailyLimit: 1000, maxConnections: 1 });
    const id = await createCampaign(t, apiKey, [await addList(t, apiKey, 40, 'holder-rcpt.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const held = async () =>
      (await t.mp.ctx.db.query<{ n: number }>('SELECT coalesce(sum(remaining), 0)::int AS n FROM send_holds WHERE account_id = $1', [account.id]))[0]!.n;

    await waitForCampaign(t, apiKey, id, (c) => c.sent >= 3);
    const usage = (await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`)).usage;
    expect(await held()).toBeGreaterThan(usage.sentThisHour);
    expect(usage.sentThisHour).toBeLessThanOrEqual(peer.messages.length);

    // The hour ends while the worker holds sends reserved in it: they go back before it sends on.
    clock.set('2026-03-02T11:00:00Z');
    await waitForCampaign(t, apiKey, id, (c) => c.sent >= peer.messages.length && peer.messages.length > 8);
    const [oldHold] = await t.mp.ctx.db.query<{ n: number }>(
      `SELECT coalesce(sum(remaining), 0)::int AS n FROM send_holds WHERE account_id = $1 AND reserved_at < '2026-03-02T11:00:00Z'`,
      [account.id],
    );
    expect(oldHold!.n).toBe(0);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/stop`);
    await waitForIdleEngine(t);
    const final = (await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`)).usage;
    const before11 = peer.messages.filter((m) => Date.parse(m.headers.get('date')!) < Date.parse('2026-03-02T11:00:00Z')).length;
    expect(final).toMatchObject({ sentThisHour: peer.messages.length - before11, sentToday: peer.messages.length });
    expect(await held()).toBe(0);
  });
});
