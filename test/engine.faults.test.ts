import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { type SmtpPeer, smtpPeers, startSmtpPeer } from './helpers/smtpPeer.ts';

const START = '2026-03-02T10:00:00Z';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every recipient at the peer, with how many times it was accepted. */
function deliveries(peer: SmtpPeer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of peer.messages) for (const r of m.rcptTo) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

async function allMessages(t: TestMailPilot, key: string, campaignId: number): Promise<any[]> {
  const items: any[] = [];
  let after = 0;
  for (;;) {
    const page = await must(t, key, 'GET', `/api/v1/campaigns/${campaignId}/messages?limit=500&after=${after}`);
    items.push(...page.items);
    if (page.next === null) return items;
    after = page.next;
  }
}

/** Moves business time on in steps while `until` is false, so back-offs and retries fall due. */
async function advanceUntil(clock: FakeClock, stepMs: number, until: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await until())) {
    if (Date.now() > deadline) throw new Error('condition not reached while advancing the clock');
    clock.advance(stepMs);
    await sleep(100);
  }
}

describe.each(databaseKinds)('the engine survives SMTP failures (%s)', (kind) => {
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

  it('a peer answering 451 once per recipient: all delivered exactly once, attempts = 2, retries wait for their time without spinning', async () => {
    const seen = new Set<string>();
    const p = await peer({
      onRcpt: (address) => {
        if (seen.has(address)) return undefined;
        seen.add(address);
        return { code: 451, message: '4.3.0 Mail server temporarily rejected message' };
      },
    });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, p.port);
    await addAccount(t, apiKey, serverId, 'retry@faults.test');
    const listId = await addList(t, apiKey, 150, 'retry.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);

    await waitForCampaign(t, apiKey, id, () => seen.size === 150);
    await waitForIdleEngine(t);
    expect(p.messages).toHaveLength(0);
    const waiting = await allMessages(t, apiKey, id);
    const now = clock.now().getTime();
    for (const m of waiting) {
      expect(m).toMatchObject({ status: 'pending', attempts: 1 });
      expect(m.lastError).toMatch(/^451 /);
      // First retry after 5 minutes, with up to 20% jitter.
      const wait = new Date(m.nextAttemptAt).getTime() - now;
      expect(wait).toBeGreaterThanOrEqual(5 * 60_000);
      expect(wait).toBeLessThanOrEqual(6 * 60_000);
    }
    const c = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`);
    expect(c).toMatchObject({ status: 'running', pending: 150 });

    // Nothing is due: the scheduler launches no worker while it waits (no busy loop).
    const launches = t.mp.engine!.launches;
    await sleep(1_500);
    expect(t.mp.engine!.launches).toBe(launches);

    clock.advance(6 * 60_000 + 1);
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 150, failed: 0, pending: 0 });
    const counts = deliveries(p);
    expect(counts.size).toBe(150);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    for (const m of await allMessages(t, apiKey, id)) expect(m).toMatchObject({ status: 'sent', attempts: 2, nextAttemptAt: null });
  });

  it('a 4xx that never clears fails the message after 5 attempts; other messages are not held up', async () => {
    const p = await peer({
      onRcpt: (address) => (address.startsWith('r3@') ? { code: 450, message: '4.2.0 Mailbox busy' } : undefined),
    });
    const { apiKey } = await t.createUser();
    await addAccount(t, apiKey, await addServer(t, apiKey, p.port), 'stubborn@faults.test');
    const listId = await addList(t, apiKey, 20, 'stubborn.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitForCampaign(t, apiKey, id, (x) => x.sent === 19);
    await advanceUntil(clock, 60 * 60_000, async () => (await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`)).status === 'completed');
    const done = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`);
    expect(done).toMatchObject({ sent: 19, failed: 1, pending: 0 });
    const failed = (await allMessages(t, apiKey, id)).filter((m) => m.status === 'failed');
    expect(failed).toEqual([expect.objectContaining({ email: 'r3@stubborn.test', attempts: 5, lastError: expect.stringMatching(/^450 /) })]);
  });

  it('550 5.1.1 for some recipients: those fail after one attempt with the reply, and are suppressed for the user', async () => {
    const p = await peer({
      onRcpt: (address) => (/^r\d*7@/.test(address) ? { code: 550, message: '5.1.1 The email account that you tried to reach does not exist' } : undefined),
    });
    const { id: userId, apiKey } = await t.createUser();
    // One recipient in ten bounces here; the rate guard would pause the account (rateGuard.test.ts proves it).
    await must(t, apiKey, 'PATCH', '/api/v1/me', { rateGuard: { hardBounces: null } });
    await addAccount(t, apiKey, await addServer(t, apiKey, p.port), 'bounce@faults.test');
    const listId = await addList(t, apiKey, 100, 'bounce.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 90, failed: 10, pending: 0 });

    const failed = (await allMessages(t, apiKey, id)).filter((m) => m.status === 'failed');
    expect(failed.map((m) => m.email).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `r${i * 10 + 7}@bounce.test`).sort());
    for (const m of failed) {
      expect(m.attempts).toBe(1);
      expect(m.lastError).toBe('550 5.1.1 The email account that you tried to reach does not exist');
    }
    const suppressed = await t.mp.ctx.db.query<{ email: string; reason: string }>(
      'SELECT email, reason FROM suppressions WHERE user_id = $1 ORDER BY email',
      [userId],
    );
    expect(suppressed.map((s) => s.email)).toEqual(failed.map((m) => m.email).sort());
    expect(new Set(suppressed.map((s) => s.reason))).toEqual(new Set(['hard_bounce']));
    expect(deliveries(p).size).toBe(90);

    // A later campaign to the same list skips them.
    const again = await createCampaign(t, apiKey, [listId]);
    expect(await must(t, apiKey, 'POST', `/api/v1/campaigns/${again}/start`)).toMatchObject({ total: 100, suppressed: 10 });
    await waitForCampaign(t, apiKey, again, (x) => x.status === 'completed');
  });

  it('421 and close every Nth message: the session reconnects, no cool-down, everything is delivered exactly once', async () => {
    let transactions = 0;
    const p = await peer({
      onData: () => (++transactions % 25 === 0 ? { code: 421, message: '4.7.0 Too many messages, closing connection' } : undefined),
    });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, p.port, 4);
    const accounts = [await addAccount(t, apiKey, serverId, 'busy1@faults.test'), await addAccount(t, apiKey, serverId, 'busy2@faults.test')];
    const listId = await addList(t, apiKey, 400, 'busy.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);

    // A 421 after a run of accepted messages is the connection's: done without business time passing.
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 400, failed: 0, pending: 0 });
    expect(transactions).toBeGreaterThanOrEqual(400 + 16);
    const list = await must(t, apiKey, 'GET', '/api/v1/smtp-accounts');
    for (const a of list.items.filter((x: any) => accounts.includes(x.id))) expect(a.health).toEqual({ state: 'healthy' });
    const counts = deliveries(p);
    expect(counts.size).toBe(400);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    // The session's trouble, not the message's: no attempt is charged.
    for (const m of await allMessages(t, apiKey, id)) expect(m.attempts).toBe(1);
  });

  it('an account whose server refuses AUTH (535) is disabled with a reason; nothing goes through it, the others deliver its share', async () => {
    const p = await peer({ users: { good: 'right-password', bad: 'right-password' } });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, p.port);
    const good = await addAccount(t, apiKey, serverId, 'good@faults.test', { username: 'good', password: 'right-password' });
    const bad = await addAccount(t, apiKey, serverId, 'bad@faults.test', { username: 'bad', password: 'wrong-password' });
    const listId = await addList(t, apiKey, 200, 'auth.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 200, failed: 0 });

    expect(p.messages.every((m) => m.user === 'good' && m.mailFrom === 'good@faults.test')).toBe(true);
    expect(deliveries(p).size).toBe(200);
    const badAccount = await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${bad}`);
    expect(badAccount.health).toEqual({ state: 'disabled', reason: expect.stringMatching(/credentials.*535/) });
    expect(badAccount.usage.sentThisHour).toBe(0);
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${good}`)).health).toEqual({ state: 'healthy' });
    for (const m of await allMessages(t, apiKey, id)) expect(m).toMatchObject({ attempts: 1, accountId: good, lastError: null });
  });

  it('when every account is disabled the campaign pauses with a warning naming them; a new password resumes it', async () => {
    const p = await peer({ users: { solo: 'new-password' } });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, p.port);
    const solo = await addAccount(t, apiKey, serverId, 'solo@faults.test', { username: 'solo', password: 'old-password' });
    const listId = await addList(t, apiKey, 30, 'solo.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const paused = await waitForCampaign(t, apiKey, id, (x) => x.status === 'paused_limits');
    expect(paused.warnings.join(' ')).toMatch(/solo@faults\.test.*535/);
    expect(paused).toMatchObject({ sent: 0, pending: 30, resumeAt: null, pauseReason: 'account_health' });
    expect(p.messages).toHaveLength(0);

    const fixed = await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${solo}`, { password: 'new-password' });
    expect(fixed.health).toEqual({ state: 'healthy' });
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 30, warnings: [] });
    expect(deliveries(p).size).toBe(30);
  });

  it('a provider quota reply (550 5.4.5) mid-campaign: the account is exhausted until its reset, the recipients are untouched', async () => {
    const accepted = new Map<string, number>();
    const p = await peer({
      onRcpt: (_address, session) => {
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        if (from === 'quota@faults.test' && (accepted.get(from) ?? 0) >= 30) return { code: 550, message: '5.4.5 Daily user sending quota exceeded.' };
        accepted.set(from, (accepted.get(from) ?? 0) + 1);
        return undefined;
      },
    });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, p.port);
    const quota = await addAccount(t, apiKey, serverId, 'quota@faults.test');
    const spare = await addAccount(t, apiKey, serverId, 'spare@faults.test', { ratePerSecond: 200 });
    const listId = await addList(t, apiKey, 300, 'quota.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 300, failed: 0 });

    const exhausted = await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${quota}`);
    // Gmail counts over a rolling 24 h: the account rests until every send it counted has left the window.
    const dayLater = new Date(clock.now().getTime() + 24 * 60 * 60_000).toISOString();
    expect(exhausted.health).toEqual({ state: 'exhausted', until: dayLater, reason: expect.stringMatching(/5\.4\.5/) });
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${spare}`)).health.state).toBe('healthy');
    expect(p.messages.filter((m) => m.mailFrom === 'quota@faults.test')).toHaveLength(30);
    expect(deliveries(p).size).toBe(300);
    for (const m of await allMessages(t, apiKey, id)) expect(m).toMatchObject({ status: 'sent', attempts: 1, lastError: null });
  });

  it('a connection dropped after the final dot: the message counts as possibly delivered and is not sent again', async () => {
    const p = await peer({ onData: (m) => (m.rcptTo[0] === 'r7@drop.test' ? 'drop' : undefined) });
    const { apiKey } = await t.createUser();
    await addAccount(t, apiKey, await addServer(t, apiKey, p.port), 'drop@faults.test');
    const listId = await addList(t, apiKey, 40, 'drop.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 40, failed: 0, pending: 0, possiblyDelivered: 1 });

    await waitForIdleEngine(t);
    clock.advance(24 * 60 * 60_000);
    await t.mp.engine!.wake();
    expect(p.attempts.filter((m) => m.rcptTo[0] === 'r7@drop.test')).toHaveLength(1);
    expect(deliveries(p).size).toBe(39);
    const dropped = (await allMessages(t, apiKey, id)).find((m) => m.email === 'r7@drop.test');
    expect(dropped).toMatchObject({ status: 'sent', attempts: 1, lastError: expect.stringMatching(/^possibly delivered/) });
    // The drop is the server's doing after the data: the account is not blamed for it.
    expect((await must(t, apiKey, 'GET', '/api/v1/smtp-accounts')).items[0].health.state).toBe('healthy');
  });

  it('an account whose server refuses connections backs off; another account delivers everything', async () => {
    const p = await peer();
    const closed = await startSmtpPeer();
    const deadPort = closed.port;
    await closed.close();
    const { apiKey } = await t.createUser();
    const dead = await addAccount(t, apiKey, await addServer(t, apiKey, deadPort), 'unreachable@faults.test');
    // Paced, so the unreachable account gets a share to fail on.
    await addAccount(t, apiKey, await addServer(t, apiKey, p.port), 'reachable@faults.test', { ratePerSecond: 300 });
    const listId = await addList(t, apiKey, 300, 'refused.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const done = await waitForCampaign(t, apiKey, id, (x) => x.status === 'completed');
    expect(done).toMatchObject({ sent: 300, failed: 0 });
    expect(deliveries(p).size).toBe(300);
    const health = (await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${dead}`)).health;
    // In MailPilot's words: a refused connection reads like any peer that is not an SMTP server.
    expect(health).toMatchObject({ state: 'throttled', reason: `the server at 127.0.0.1:${deadPort} did not answer as an SMTP server` });
    for (const m of await allMessages(t, apiKey, id)) expect(m.attempts).toBe(1);
  });
});
