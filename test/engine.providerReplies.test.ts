import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { allMessages, deliveries, waitFor } from './helpers/outcomes.ts';
import { type ScriptedError, smtpPeers } from './helpers/smtpPeer.ts';

/**
 * Real providers' replies, scripted on smtp-server peers, and what each does to the account:
 * the cool-downs (exact `health.until`, the campaign's `resumeAt` on it, the resume then, at a pace
 * that does not hit the same wall at once), greylisting, and basic authentication switched off.
 */

const START = '2026-03-02T10:00:00Z';
const SECOND = 1000;
const iso = (ms: number) => new Date(ms).toISOString();

describe.each(databaseKinds)('provider replies and the account (%s)', (kind) => {
  let t: TestMailPilot;
  const clock = new FakeClock(START);
  const peers = smtpPeers();
  const peer = peers.start;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
  });
  afterAll(async () => {
    await t.close();
    await peers.closeAll();
  });

  const account = async (key: string, id: number) => must(t, key, 'GET', `/api/v1/smtp-accounts/${id}`);
  const campaign = async (key: string, id: number) => must(t, key, 'GET', `/api/v1/campaigns/${id}`);

  /** Moves the clock to `at` and lets the scheduler act on it. */
  async function advanceTo(at: number): Promise<void> {
    clock.set(new Date(at));
    await t.mp.engine!.wake();
  }

  // Each reply as the provider sends it, at the stage it sends it.
  const quotaReplies: [string, 'MAIL FROM' | 'RCPT TO' | 'DATA', ScriptedError][] = [
    ['Gmail: 550 5.4.5 daily user sending quota', 'MAIL FROM', { code: 550, message: '5.4.5 Daily user sending quota exceeded.' }],
    [
      'Microsoft 365: 554 5.2.2 submission quota',
      'DATA',
      {
        code: 554,
        message:
          '5.2.2 mailbox full; STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message Submission quota exceeded',
      },
    ],
    ['Microsoft 365: 550 5.1.90 recipient rate limit', 'RCPT TO', { code: 550, message: "5.1.90 Your message can't be sent because you've reached your daily limit for message recipients" }],
    ['SES: 454 daily message quota', 'MAIL FROM', { code: 454, message: 'Throttling failure: Daily message quota exceeded.' }],
  ];

  it.each(quotaReplies)('%s: exhausted for exactly 24 h, the campaign resumes then, the refused message is sent uncharged', async (_name, stage, refusal) => {
    const ALLOWED = 12;
    let allowance = ALLOWED;
    let refused = 0;
    const refuse = () => {
      if (allowance > 0) return undefined;
      refused++;
      return refusal;
    };
    const p = await peer({
      onMailFrom: () => (stage === 'MAIL FROM' ? refuse() : undefined),
      onRcpt: () => (stage === 'RCPT TO' ? refuse() : undefined),
      onData: () => {
        if (stage === 'DATA' && refuse()) return refusal;
        allowance--;
        return undefined;
      },
    });
    const { apiKey } = await t.createUser();
    const id = await addAccount(t, apiKey, await addServer(t, apiKey, p.port, 1), 'quota@provider.test');
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 20, 'quota.test')]);
    const t0 = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);

    const paused = await waitForCampaign(t, apiKey, cid, (c) => c.status === 'paused_limits');
    const until = iso(t0 + 24 * 60 * 60 * SECOND);
    const a = await account(apiKey, id);
    expect(a.health).toEqual({ state: 'exhausted', until, reason: expect.stringContaining(`${refusal.code} ${refusal.message.slice(0, 20)}`) });
    expect(paused).toMatchObject({ resumeAt: until, sent: ALLOWED, pending: 20 - ALLOWED, failed: 0 });
    // The refused message went back uncharged: neither an attempt nor a send of the account's quota.
    expect(refused).toBe(1);
    expect(a.usage.sentToday).toBe(ALLOWED);
    const waiting = (await allMessages(t, apiKey, cid)).filter((m) => m.status === 'pending');
    expect(waiting.every((m) => m.attempts === 0)).toBe(true);

    // The provider's rolling window clears; not a moment before the account's cool-down ends, nothing moves.
    allowance = Infinity;
    await advanceTo(t0 + 24 * 60 * 60 * SECOND - SECOND);
    expect(await campaign(apiKey, cid)).toMatchObject({ status: 'paused_limits', sent: ALLOWED });
    await advanceTo(t0 + 24 * 60 * 60 * SECOND);
    const done = await waitForCampaign(t, apiKey, cid, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 20, failed: 0, pending: 0 });
    expect(refused).toBe(1);
    const counts = deliveries(p);
    expect(counts.size).toBe(20);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    for (const m of await allMessages(t, apiKey, cid)) expect(m).toMatchObject({ status: 'sent', attempts: 1 });
    expect((await account(apiKey, id)).health).toEqual({ state: 'healthy' });
  });

  const rateReplies: [string, ScriptedError][] = [
    // SES drops the message it answers this to: it must be sent again.
    ['SES: 454 maximum sending rate', { code: 454, message: 'Throttling failure: Maximum sending rate exceeded.' }],
    ['Google relay: 450 4.2.1 peak relay limit', { code: 450, message: '4.2.1 Peak SMTP relay limit exceeded for customer. To protect our users, Gmail temporarily limits relay.' }],
  ];

  it.each(rateReplies)('%s: throttled for exactly 30 s, resumed then with one connection at half the pace the server took, which it then never refuses', async (_name, refusal) => {
    // The provider's wall: at most PER_SECOND transactions in any second (low enough for a busy machine to reach it).
    const PER_SECOND = 8;
    const TOTAL = 24;
    const starts: number[] = [];
    const refusedAt: number[] = [];
    const p = await peer({
      onMailFrom: () => {
        const now = Date.now();
        if (starts.filter((s) => s > now - SECOND).length >= PER_SECOND) {
          refusedAt.push(now);
          return refusal;
        }
        starts.push(now);
        return undefined;
      },
    });
    const { apiKey } = await t.createUser();
    const id = await addAccount(t, apiKey, await addServer(t, apiKey, p.port, 2), 'fast@provider.test');
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, TOTAL, 'rate.test')]);
    const t0 = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);

    const paused = await waitForCampaign(t, apiKey, cid, (c) => c.status === 'paused_limits');
    const until = t0 + 30 * SECOND;
    const { health, usage } = await account(apiKey, id);
    expect(health).toEqual({
      state: 'throttled',
      until: iso(until),
      reason: `${refusal.code} ${refusal.message}`,
      recovery: { until: iso(until + 10 * 60 * SECOND), connections: 1, ratePerSecond: expect.any(Number) },
    });
    expect(health.recovery.ratePerSecond).toBeGreaterThanOrEqual(1);
    expect(health.recovery.ratePerSecond).toBeLessThanOrEqual(PER_SECOND / 2);
    expect(paused.resumeAt).toBe(iso(until));
    expect(paused.sent).toBe(starts.length);
    // What the server refused (and, for SES, dropped) is not charged: it goes out again.
    expect(usage.sentToday).toBe(starts.length);
    const refusedBefore = refusedAt.length;
    expect(refusedBefore).toBeGreaterThanOrEqual(1);

    await waitFor('the sessions to close', async () => (p.openSessions === 0 ? true : undefined));
    p.peakSessions = 0;
    // The 30 s pass in business time only: let the provider's one-second window pass in real time too.
    await new Promise((r) => setTimeout(r, Math.max(0, Math.max(...starts, ...refusedAt) + SECOND - Date.now())));
    await advanceTo(until - SECOND);
    expect(await campaign(apiKey, cid)).toMatchObject({ status: 'paused_limits' });
    const resumedAt = Date.now();
    await advanceTo(until);
    const done = await waitForCampaign(t, apiKey, cid, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: TOTAL, failed: 0, pending: 0 });
    // The gentle restart does not hit the same wall: no refusal after the resume, one connection.
    expect(refusedAt.filter((r) => r >= resumedAt)).toEqual([]);
    expect(p.peakSessions).toBe(1);
    const counts = deliveries(p);
    expect(counts.size).toBe(TOTAL);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    for (const m of await allMessages(t, apiKey, cid)) expect(m).toMatchObject({ status: 'sent', attempts: 1 });
    expect((await account(apiKey, id)).usage.sentToday).toBe(TOTAL);
  });

  it('greylisting (451 4.7.1): that recipient is retried after 5 minutes, the account is not throttled', async () => {
    const seen = new Set<string>();
    const p = await peer({
      onRcpt: (address) => {
        if (seen.has(address)) return undefined;
        seen.add(address);
        return address.startsWith('r3@') ? { code: 451, message: '4.7.1 Greylisting in action, please come back later' } : undefined;
      },
    });
    const { apiKey } = await t.createUser();
    const id = await addAccount(t, apiKey, await addServer(t, apiKey, p.port), 'grey@provider.test');
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 10, 'grey.test')]);
    const t0 = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);

    await waitForCampaign(t, apiKey, cid, (c) => c.sent === 9);
    expect((await account(apiKey, id)).health).toEqual({ state: 'healthy' });
    const grey = await waitFor('the greylisted message back in the queue', async () =>
      (await allMessages(t, apiKey, cid)).find((m) => m.email === 'r3@grey.test' && m.status === 'pending' && m.attempts === 1),
    );
    expect(grey.lastError).toBe('451 4.7.1 Greylisting in action, please come back later');
    expect(new Date(grey.nextAttemptAt).getTime() - t0).toBeGreaterThanOrEqual(5 * 60 * SECOND);
    expect(await campaign(apiKey, cid)).toMatchObject({ status: 'running', resumeAt: null });

    await advanceTo(t0 + 6 * 60 * SECOND + 1);
    const done = await waitForCampaign(t, apiKey, cid, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 10, failed: 0 });
    expect((await allMessages(t, apiKey, cid)).find((m) => m.email === 'r3@grey.test')).toMatchObject({ status: 'sent', attempts: 2 });
    expect(deliveries(p).size).toBe(10);
  });

  it('Microsoft 365 550 5.7.30 (basic authentication off): the account is disabled with a reason that says to switch to OAuth2; its share goes to the other account, none failed', async () => {
    const m365 = await peer({
      users: { 'office@provider.test': 'password' },
      onMailFrom: () => ({ code: 550, message: '5.7.30 Basic authentication is not supported for Client Submission.' }),
    });
    const other = await peer({});
    const { apiKey } = await t.createUser();
    const office = await addAccount(t, apiKey, await addServer(t, apiKey, m365.port), 'office@provider.test', {
      username: 'office@provider.test',
      password: 'password',
    });
    await addAccount(t, apiKey, await addServer(t, apiKey, other.port), 'spare@provider.test', { ratePerSecond: 100 });
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 30, 'basic.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);

    const done = await waitForCampaign(t, apiKey, cid, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 30, failed: 0 });
    const { health } = await account(apiKey, office);
    expect(health.state).toBe('disabled');
    expect(health.reason).toMatch(/^Microsoft 365 no longer accepts a password.*switch the account to OAuth2.*550 5\.7\.30/);
    expect(m365.messages).toHaveLength(0);
    expect(deliveries(other).size).toBe(30);
    for (const m of await allMessages(t, apiKey, cid)) expect(m.attempts).toBe(1);
  });
});
