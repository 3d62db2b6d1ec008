import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChromium, launchChromium } from './helpers/chromium.ts';
import { databaseKinds } from './helpers/db.ts';
import { addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { arf, deliverReport, dsn, humanReply } from './helpers/reports.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const chromiumPath = ensureChromium();
const ARTIFACTS = 'test-artifacts/browser';

describe.skipIf(!chromiumPath).each(databaseKinds)('the dashboard shows bounces, complaints, replies and the mailbox status (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    t = await startTestMailPilot(kind, { config: { inbound: { host: '127.0.0.1', port: 0 } } });
    peer = await startSmtpPeer();
    browser = await launchChromium(chromiumPath!, { width: 1280, height: 900 });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await peer?.close();
  });

  it('on the campaign page, the campaign card and the account card', async () => {
    const { apiKey } = await t.createUser('dash');
    const serverId = await addServer(t, apiKey, peer.port);
    // A mailbox on a port where nothing listens: its trouble shows on the card, apart from the SMTP health.
    const imap = { host: '127.0.0.1', port: 1, security: 'none', username: 'box', password: 'pw' };
    await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'news@dash.test', hourlyLimit: 0, dailyLimit: 0, bounceDomain: 'bounces.dash.test', imap });
    const id = await createCampaign(t, apiKey, [await addList(t, apiKey, 5)], { name: 'Reported' });
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    const port = t.mp.inbound!.port;
    const of = (email: string) => {
      const m = peer.messages.find((x) => x.rcptTo[0] === email)!;
      return { verp: m.mailFrom, original: { messageId: m.headers.get('message-id')!, to: email } };
    };
    for (const [email, raw] of [
      ['r0@rcpt.test', (o: ReturnType<typeof of>) => dsn(o.original, { to: o.verp })],
      ['r1@rcpt.test', (o: ReturnType<typeof of>) => arf(o.original, { to: o.verp })],
      ['r2@rcpt.test', (o: ReturnType<typeof of>) => humanReply(o.original, { to: o.verp })],
    ] as const) {
      expect(await deliverReport(port, of(email).verp, raw(of(email)))).toEqual({ ok: true });
    }
    await waitForCampaign(t, apiKey, id, (c) => c.bounced === 1 && c.complained === 1 && c.replied === 1);

    const page = await browser.context.newPage();
    await page.goto(t.url);
    await page.getByLabel('API key').fill(apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Campaigns', level: 1 }).waitFor();
    await expect.poll(() => page.getByText('1 bounced', { exact: true }).isVisible()).toBe(true);
    expect(await page.getByText('1 complaints', { exact: true }).isVisible()).toBe(true);

    await page.getByRole('link', { name: 'Reported' }).click();
    await page.getByRole('heading', { name: 'Reported', level: 1 }).waitFor();
    const counter = (label: string) => page.locator('.counters div').filter({ has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) }).locator('dd');
    await expect.poll(() => counter('Bounced').textContent()).toBe('1');
    expect(await counter('Complaints').textContent()).toBe('1');
    expect(await counter('Replies').textContent()).toBe('1');
    expect(await counter('Failed').textContent()).toBe('1');
    await expect.poll(() => page.getByText(/^bounced after it was accepted: 5\.1\.1/).isVisible()).toBe(true);
    await page.screenshot({ path: `${ARTIFACTS}/${kind}-reports-campaign.png`, fullPage: true });

    await page.getByRole('link', { name: 'SMTP accounts' }).click();
    await expect.poll(() => page.getByText(/could not connect to the IMAP server/).isVisible(), { timeout: 30_000 }).toBe(true);
    expect(await page.getByText('Bounces to bounces.dash.test').isVisible()).toBe(true);
    expect(await page.getByText('No problems reported').isVisible()).toBe(true);
    await page.screenshot({ path: `${ARTIFACTS}/${kind}-reports-accounts.png`, fullPage: true });
  });
});
