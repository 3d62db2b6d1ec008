import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { pauseAccount } from '../src/db/accountHealth.ts';
import { onReconfigured, onSendOutcome } from '../src/engine/accountHealth.ts';
import { rateVerdict } from '../src/engine/rateGuard.ts';
import { databaseKinds } from './helpers/db.ts';
import { addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { arf, deliverReport, dsn } from './helpers/reports.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const UNKNOWN_USER = { code: 550, message: '5.1.1 The email account that you tried to reach does not exist' };
const BOUNCE_DOMAIN = 'bounces.guard.test';

/** The recipient number of r<N>@…, as addList names them. */
const recipientNumber = (address: string) => Number(/^r(\d+)@/.exec(address)![1]);

/** A paused account's reason, read back into its figures (engine/rateGuard.ts writes it). */
function figures(reason: string): { bad: number; sends: number; percent: string; limit: string; what: string } {
  const m = /^(\d+) (hard bounces?|complaints?) in the last (\d+) sends \((\d+\.\d+)%, above ([\d.]+)%\): check the list, then PATCH \{"resume": true\}$/.exec(reason);
  if (!m) throw new Error(`not a rate guard reason: ${reason}`);
  return { bad: Number(m[1]), what: m[2]!, sends: Number(m[3]), percent: m[4]!, limit: m[5]! };
}

describe('the rate verdict', () => {
  const settings = {
    hardBounces: { percent: 5, lastSends: 200, minSends: 100 },
    complaints: { percent: 0.3, lastSends: 2000, minSends: 1000 },
  };
  const clean = { sends: 2000, bad: 0 };

  it('says nothing below the minimum sample, at the threshold, or for a threshold turned off', () => {
    expect(rateVerdict(settings, { hardBounces: { sends: 99, bad: 99 }, complaints: clean })).toBeNull();
    expect(rateVerdict(settings, { hardBounces: { sends: 200, bad: 10 }, complaints: { sends: 1000, bad: 3 } })).toBeNull();
    expect(rateVerdict({ ...settings, hardBounces: null }, { hardBounces: { sends: 200, bad: 200 }, complaints: clean })).toBeNull();
  });

  it('past a threshold, gives the figures and what to do', () => {
    expect(rateVerdict(settings, { hardBounces: { sends: 200, bad: 12 }, complaints: clean })).toBe(
      '12 hard bounces in the last 200 sends (6.0%, above 5%): check the list, then PATCH {"resume": true}',
    );
    expect(rateVerdict(settings, { hardBounces: { sends: 200, bad: 0 }, complaints: { sends: 1500, bad: 5 } })).toBe(
      '5 complaints in the last 1500 sends (0.33%, above 0.3%): check the list, then PATCH {"resume": true}',
    );
  });
});

describe.each(databaseKinds)('the bounce and complaint rate guard (%s)', (kind) => {
  let t: TestMailPilot | undefined;
  let peer: SmtpPeer | undefined;
  afterEach(async () => {
    await t?.close();
    await peer?.close();
    t = peer = undefined;
  });

  it('5.1.1 refusals past 5% of the last sends pause the account with the figures; the campaign waits (bounce_rate); resume lifts it and counting starts again', async () => {
    let refused = (n: number) => n % 2 === 0;
    t = await startTestMailPilot(kind);
    peer = await startSmtpPeer({ onRcpt: (address) => (refused(recipientNumber(address)) ? UNKNOWN_USER : undefined) });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, peer.port);
    const account = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'news@guard.test', hourlyLimit: 0, dailyLimit: 0 });
    const RECIPIENTS = 250;
    const campaignId = await createCampaign(t, apiKey, [await addList(t, apiKey, RECIPIENTS, 'guard.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);

    const paused = await waitForCampaign(t, apiKey, campaignId, (c) => c.status === 'paused_limits', 60_000);
    expect(paused).toMatchObject({ pauseReason: 'bounce_rate', resumeAt: null });
    const { health } = await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`);
    expect(health.state).toBe('paused');
    const f = figures(health.reason);
    expect(f).toMatchObject({ what: 'hard bounces', limit: '5' });
    expect(f.sends).toBeGreaterThanOrEqual(100);
    expect(((f.bad / f.sends) * 100).toFixed(1)).toBe(f.percent);
    expect(Number(f.percent)).toBeGreaterThan(5);

    // Nothing more goes out while it is paused; what it had claimed is back in the queue, never attempted.
    const db = t.mp.ctx.db;
    const done = async () =>
      (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE campaign_id = $1 AND status IN ('sent', 'failed')`, [campaignId]))[0]!.n;
    const before = await done();
    await sleep(1_500);
    expect(await done()).toBe(before);
    expect(before).toBeLessThan(RECIPIENTS);
    const [queued] = await db.query<{ n: number; attempts: number }>(
      `SELECT count(*)::int AS n, coalesce(sum(attempts), 0)::int AS attempts FROM messages WHERE campaign_id = $1 AND status = 'pending'`,
      [campaignId],
    );
    expect(queued).toEqual({ n: RECIPIENTS - before, attempts: 0 });

    // 4% from now on: over the last 200 sends with the earlier ones it would be far above 5%.
    refused = (n) => n % 25 === 0;
    // The guard counts whole minutes from the resume on: the sends so far are all in the clock's first minute.
    (t.clock as FakeClock).advance(60_000);
    const resumed = await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${account.id}`, { resume: true });
    expect(resumed.health).toEqual({ state: 'healthy' });
    const completed = await waitForCampaign(t, apiKey, campaignId, (c) => c.status === 'completed', 60_000);
    expect(completed.sent + completed.failed).toBe(RECIPIENTS);
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`)).health).toEqual({ state: 'healthy' });
  }, 120_000);

  it('with another account that can send, the paused one stops and the other carries the campaign through', async () => {
    t = await startTestMailPilot(kind);
    peer = await startSmtpPeer({
      onRcpt: (address, session) =>
        session.envelope.mailFrom && session.envelope.mailFrom.address === 'bad@guard.test' && recipientNumber(address) % 2 === 0 ? UNKNOWN_USER : undefined,
    });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, peer.port);
    const bad = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'bad@guard.test', hourlyLimit: 0, dailyLimit: 0 });
    const good = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'good@guard.test', hourlyLimit: 0, dailyLimit: 0 });
    const RECIPIENTS = 400;
    const campaignId = await createCampaign(t, apiKey, [await addList(t, apiKey, RECIPIENTS, 'guard.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    const done = await waitForCampaign(t, apiKey, campaignId, (c) => c.status === 'completed', 60_000);
    expect(done.sent + done.failed).toBe(RECIPIENTS);
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${bad.id}`)).health.state).toBe('paused');
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${good.id}`)).health).toEqual({ state: 'healthy' });
    // Once paused, the bad account started nothing more: every message after its last one went through the good one.
    const [last] = await t.mp.ctx.db.query<{ lastBad: number; afterByGood: number; after: number }>(
      `WITH b AS (SELECT max(id) AS id FROM messages WHERE campaign_id = $1 AND account_id = $2)
       SELECT b.id::int AS "lastBad",
              (SELECT count(*)::int FROM messages m WHERE m.campaign_id = $1 AND m.id > b.id AND m.account_id = $3) AS "afterByGood",
              (SELECT count(*)::int FROM messages m WHERE m.campaign_id = $1 AND m.id > b.id) AS after
         FROM b`,
      [campaignId, bad.id, good.id],
    );
    expect(last!.after).toBeGreaterThan(0);
    expect(last!.afterByGood).toBe(last!.after);
  }, 120_000);

  it('a paused account stays paused whatever its server says or its user changes, and sends no test message, until resumed', async () => {
    t = await startTestMailPilot(kind, { engine: false });
    const { id: userId, apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, 2525);
    const account = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'news@guard.test', hourlyLimit: 0, dailyLimit: 0 });
    const reason = '12 hard bounces in the last 200 sends (6.0%, above 5%): check the list, then PATCH {"resume": true}';
    await pauseAccount(t.mp.ctx.db, account.id, reason);
    const who = { id: account.id, userId };
    await onSendOutcome(t.mp.ctx, who, { kind: 'account_disabled', error: '535 5.7.8 no', cause: 'credentials' });
    await onSendOutcome(t.mp.ctx, who, { kind: 'account_throttled', error: '454 Throttling failure', slowDown: true });
    await onSendOutcome(t.mp.ctx, who, { kind: 'account_exhausted', error: '550 5.4.5 quota' });
    await onReconfigured(t.mp.ctx.db, account.id, { active: true, password: 'new' });
    await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${account.id}`, { active: false });
    await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${account.id}`, { active: true, username: 'someone' });
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`)).health).toEqual({ state: 'paused', reason });

    const campaignId = await createCampaign(t, apiKey, [await addList(t, apiKey, 1, 'guard.test')]);
    const trial = await t.api('POST', `/api/v1/campaigns/${campaignId}/test`, { key: apiKey, body: { email: 'me@guard.test', accountId: account.id } });
    expect(trial).toMatchObject({ status: 409, body: { error: { code: 'account_paused', message: `this SMTP account is paused: ${reason}` } } });

    const bad = await t.api('PATCH', `/api/v1/smtp-accounts/${account.id}`, { key: apiKey, body: { resume: false } });
    expect(bad).toMatchObject({ status: 422, body: { error: { code: 'invalid_field', message: expect.stringMatching(/^resume: must be true/) } } });
    expect((await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${account.id}`, { resume: true })).health).toEqual({ state: 'healthy' });
  });

  it('bounces and complaints reported afterwards (DSN, ARF) push an account over; resume starts counting afresh', async () => {
    const clock = new FakeClock('2026-03-02T10:00:00Z');
    t = await startTestMailPilot(kind, { clock, config: { inbound: { host: '127.0.0.1', port: 0 } } });
    peer = await startSmtpPeer();
    const inbound = t.mp.inbound!.port;
    const { apiKey } = await t.createUser();
    await must(t, apiKey, 'PATCH', '/api/v1/me', {
      rateGuard: { hardBounces: { percent: 2, lastSends: 100, minSends: 20 }, complaints: { percent: 1, lastSends: 100, minSends: 20 } },
    });
    const serverId = await addServer(t, apiKey, peer.port);
    const account = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', {
      serverId,
      email: 'news@guard.test',
      hourlyLimit: 0,
      dailyLimit: 0,
      bounceDomain: BOUNCE_DOMAIN,
    });
    const campaignId = await createCampaign(t, apiKey, [await addList(t, apiKey, 50, 'guard.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    await waitForCampaign(t, apiKey, campaignId, (c) => c.status === 'completed');
    const health = async () => (await must(t!, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`)).health;
    const report = async (n: number, make: typeof dsn | typeof arf) => {
      const m = peer!.messages.find((x) => x.rcptTo[0] === `r${n}@guard.test`)!;
      const original = { messageId: m.headers.get('message-id')!, to: m.rcptTo[0]!, returnPath: m.mailFrom };
      expect(await deliverReport(inbound, m.mailFrom, make(original, { to: m.mailFrom }))).toEqual({ ok: true });
    };

    await report(0, dsn);
    // 1 in 50 is 2%: not above 2%.
    expect(await health()).toEqual({ state: 'healthy' });
    await report(1, arf);
    expect(await health()).toEqual({
      state: 'paused',
      reason: '1 complaint in the last 50 sends (2.0%, above 1%): check the list, then PATCH {"resume": true}',
    });

    clock.advance(2 * 60_000);
    expect((await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${account.id}`, { resume: true })).health).toEqual({ state: 'healthy' });
    // Reports of sends from before the resume no longer count: with them this would be 3 hard bounces in 50 (6%).
    await report(2, dsn);
    await report(3, dsn);
    expect(await health()).toEqual({ state: 'healthy' });
    const [usage] = await t.mp.ctx.db.query<{ sent: number; hardBounced: number; complained: number }>(
      'SELECT sum(sent)::int AS sent, sum(hard_bounced)::int AS "hardBounced", sum(complained)::int AS complained FROM smtp_usage WHERE account_id = $1',
      [account.id],
    );
    expect(usage).toEqual({ sent: 50, hardBounced: 3, complained: 1 });
  }, 60_000);
});
