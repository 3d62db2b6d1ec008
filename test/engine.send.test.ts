import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

describe.each(databaseKinds)('one worker per account sends a whole campaign (%s)', (kind) => {
  let t: TestMailPilot;
  let peers: SmtpPeer[];
  beforeAll(async () => {
    t = await startTestMailPilot(kind);
    peers = [await startSmtpPeer(), await startSmtpPeer()];
  });
  afterAll(async () => {
    await t.close();
    for (const p of peers) await p.close();
  });

  it('delivers 5,000 recipients through 10 accounts on 2 servers, each exactly once, with the contract headers', async () => {
    const { apiKey } = await t.createUser('sender');
    const accountEmails: string[] = [];
    for (const peer of peers) {
      const serverId = await addServer(t, apiKey, peer.port);
      for (let i = 0; i < 5; i++) {
        const email = `acct${accountEmails.length}@sender.test`;
        accountEmails.push(email);
        await addAccount(t, apiKey, serverId, email);
      }
    }
    const listId = await addList(t, apiKey, 5000);
    const campaignId = await createCampaign(t, apiKey, [listId], { replyTo: 'replies@sender.test' });
    const openAtOnce = { now: 0, peak: 0 };
    const timer = setInterval(() => {
      openAtOnce.now = peers.reduce((n, p) => n + p.openSessions, 0);
      openAtOnce.peak = Math.max(openAtOnce.peak, openAtOnce.now);
    }, 5);

    const started = await must(t, apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    expect(started.status).toBe('running');
    expect(started.total).toBe(5000);
    const done = await waitForCampaign(t, apiKey, campaignId, (c) => c.status === 'completed');
    clearInterval(timer);
    expect(done).toMatchObject({ total: 5000, sent: 5000, failed: 0, pending: 0 });

    const received = peers.flatMap((p) => p.messages);
    const recipients = received.flatMap((m) => m.rcptTo);
    expect(recipients).toHaveLength(5000);
    expect(new Set(recipients).size).toBe(5000);

    const byAccount = new Map<string, number>();
    for (const m of received) {
      byAccount.set(m.mailFrom, (byAccount.get(m.mailFrom) ?? 0) + 1);
      expect(m.headers.get('from')).toBe(`"Spring Shop" <${m.mailFrom}>`);
      expect(m.headers.get('to')).toContain(`<${m.rcptTo[0]}>`);
      expect(m.headers.get('x-mailpilot-campaign')).toBe(String(campaignId));
      expect(m.headers.get('list-unsubscribe')).toMatch(/^<http:\/\/127\.0\.0\.1:\d+\/u\/[\w-]+\.[\w-]+>$/);
      expect(m.headers.get('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
      expect(m.headers.get('reply-to')).toBe('<replies@sender.test>');
    }
    expect([...byAccount.keys()].sort()).toEqual([...accountEmails].sort());
    expect(peers.map((p) => p.peakSessions).reduce((a, b) => a + b)).toBeGreaterThanOrEqual(10);
    expect(openAtOnce.peak).toBeGreaterThanOrEqual(10);
    const messageIds = received.map((m) => m.headers.get('message-id'));
    expect(new Set(messageIds).size).toBe(5000);

    const sample = received.find((m) => m.rcptTo[0] === 'r42@rcpt.test')!;
    expect(sample.headers.get('subject')).toBe('Hello Recipient 42');
    expect(sample.raw).toContain('Hi Recipient 42 from City0');

    const accounts = await must(t, apiKey, 'GET', '/api/v1/smtp-accounts');
    const usageSum = accounts.items.reduce((n: number, a: any) => n + a.usage.sentThisHour, 0);
    expect(usageSum).toBe(5000);
    const sentRows = await must(t, apiKey, 'GET', `/api/v1/campaigns/${campaignId}/messages?status=sent&limit=5`);
    expect(sentRows.items).toHaveLength(5);
    expect(sentRows.items[0]).toMatchObject({ status: 'sent', attempts: 1, lastError: null });
    expect(sentRows.next).toBe(sentRows.items[4].id);
  });
});
