import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { parsePrometheus, sumOf, type Sample } from './helpers/prometheus.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const HOURLY = 40;
const ACCOUNTS = 3;
const RECIPIENTS = 200;

const index = (address: string) => Number(/^r(\d+)@/.exec(address)?.[1]);
/** r7, r27, r47... do not exist (hard bounce). */
const bounces = (address: string) => index(address) % 20 === 7;
/**
 * r13, r33... r93 fail once with a transient error, then pass. All are among the first hour's
 * sends, so their retries (5 minutes later) are due when the next hour starts.
 */
const flaky = (address: string) => index(address) < 100 && index(address) % 20 === 13;

describe.each(databaseKinds)('/metrics agrees with the API during and after a send (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  const deferredOnce = new Set<string>();

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
    peer = await startSmtpPeer({
      onRcpt(address) {
        if (bounces(address)) return { code: 550, message: '5.1.1 No such user here' };
        if (flaky(address) && !deferredOnce.has(address)) {
          deferredOnce.add(address);
          return { code: 451, message: '4.3.0 Temporary local problem' };
        }
        return undefined;
      },
    });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const scrape = async (): Promise<{ text: string; samples: Sample[] }> => {
    const res = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    return { text, samples: parsePrometheus(text) };
  };

  /** Every counter and gauge against what the API says at a moment when nothing is in flight. */
  async function expectAgreement(apiKey: string, campaignId: number, samples: Sample[], earlierHours = new Map<string, number>()): Promise<void> {
    const campaign = await must(t, apiKey, 'GET', `/api/v1/campaigns/${campaignId}`);
    const accounts = (await must(t, apiKey, 'GET', '/api/v1/smtp-accounts')).items;
    const outcomes = (where: Record<string, string>) => sumOf(samples, 'mailpilot_send_outcomes_total', where);

    expect(outcomes({ outcome: 'sent' })).toBe(campaign.sent);
    expect(outcomes({ outcome: 'failed' })).toBe(campaign.failed);
    expect(outcomes({ outcome: 'retry' })).toBe(deferredOnce.size);
    expect(sumOf(samples, 'mailpilot_queue_messages', { status: 'pending' })).toBe(campaign.pending);
    expect(sumOf(samples, 'mailpilot_queue_messages', { status: 'sending' })).toBe(0);
    expect(sumOf(samples, 'mailpilot_campaigns', { status: campaign.status })).toBe(1);
    expect(sumOf(samples, 'mailpilot_active_workers')).toBe(0);
    // Every SMTP attempt is one outcome, one latency observation and one unit of the account's quota.
    expect(sumOf(samples, 'mailpilot_send_duration_seconds_count')).toBe(outcomes({}));
    for (const a of accounts) {
      expect(outcomes({ account_id: String(a.id) })).toBe((earlierHours.get(String(a.id)) ?? 0) + a.usage.sentThisHour);
      expect(sumOf(samples, 'mailpilot_account_quota_remaining', { account_id: String(a.id), window: 'hour' })).toBe(
        a.usage.hourlyLimit - a.usage.sentThisHour,
      );
    }
    expect(samples.some((s) => s.name === 'mailpilot_account_quota_remaining' && s.labels.window === 'day')).toBe(false);
  }

  it('counts outcomes by class and account, queue depth, states and quota exactly as the API reports them', async () => {
    const { apiKey } = await t.createUser('metered');
    const serverId = await addServer(t, apiKey, peer.port);
    for (let i = 0; i < ACCOUNTS; i++) {
      await addAccount(t, apiKey, serverId, `sender${i}@metered.test`, { hourlyLimit: HOURLY, password: 'not-in-metrics' });
    }
    const listId = await addList(t, apiKey, RECIPIENTS);
    const id = await createCampaign(t, apiKey, [listId]);

    const before = await scrape();
    expect(sumOf(before.samples, 'mailpilot_campaigns', { status: 'draft' })).toBe(1);
    expect(sumOf(before.samples, 'mailpilot_send_outcomes_total')).toBe(0);

    // Scrapes while the first hour's quota is being spent: counters only grow, never past the quota.
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const during: number[] = [];
    let paused = false;
    const watching = (async () => {
      while (!paused) {
        during.push(sumOf((await scrape()).samples, 'mailpilot_send_outcomes_total'));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitForCampaign(t, apiKey, id, (c) => c.status === 'paused_limits');
    await waitForIdleEngine(t);
    paused = true;
    await watching;
    expect(during.length).toBeGreaterThan(0);
    expect(during).toEqual([...during].sort((a, b) => a - b));
    expect(Math.max(...during)).toBeLessThanOrEqual(HOURLY * ACCOUNTS);

    // Mid-campaign, between two hours: the whole hour's quota spent, the rest waiting.
    const mid = await scrape();
    expect(sumOf(mid.samples, 'mailpilot_send_outcomes_total')).toBe(HOURLY * ACCOUNTS);
    expect(sumOf(mid.samples, 'mailpilot_queue_messages', { status: 'pending' })).toBeGreaterThan(0);
    await expectAgreement(apiKey, id, mid.samples);

    const firstHour = new Map(
      mid.samples.filter((s) => s.name === 'mailpilot_send_outcomes_total').map((s) => [s.labels.account_id!, 0] as [string, number]),
    );
    for (const accountId of firstHour.keys()) firstHour.set(accountId, sumOf(mid.samples, 'mailpilot_send_outcomes_total', { account_id: accountId }));

    clock.set('2026-03-02T11:00:00Z');
    // Recipients deferred during this hour retry minutes later: once only they are left, move the
    // clock past their retry time, still within the hour (and its quota).
    for (let waiting = false; !waiting; ) {
      const c = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`);
      const queued = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}/messages?status=pending&limit=1000`);
      const later = queued.items.filter((m: { nextAttemptAt: string | null }) => m.nextAttemptAt && new Date(m.nextAttemptAt) > clock.now());
      waiting = c.status === 'completed' || (c.pending === later.length && t.mp.engine!.activeWorkers === 0);
      if (!waiting) await new Promise((r) => setTimeout(r, 50));
    }
    clock.set('2026-03-02T11:59:00Z');
    const done = await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    await waitForIdleEngine(t);
    const end = await scrape();
    await expectAgreement(apiKey, id, end.samples, firstHour);
    expect(done.failed).toBe(RECIPIENTS / 20);
    expect(done.sent).toBe(RECIPIENTS - RECIPIENTS / 20);
    expect(sumOf(end.samples, 'mailpilot_queue_messages', { status: 'pending' })).toBe(0);

    // Ids only: no address, name or password in any sample line.
    const sampleLines = end.text.split('\n').filter((l) => !l.startsWith('#'));
    expect(sampleLines.join('\n')).not.toMatch(/@|metered|not-in-metrics|Recipient/);
  });

  it('needs the admin key', async () => {
    const { apiKey } = await t.createUser('nosy');
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    const asUser = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(asUser.status).toBe(403);
  });
});
