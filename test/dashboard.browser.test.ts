import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { ensureChromium, launchChromium } from './helpers/chromium.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const chromiumPath = ensureChromium();
const ARTIFACTS = 'test-artifacts/browser';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const RECIPIENTS = 150;
const SMALL_HOURLY_LIMIT = 10;
const BROWSER_TEST_TIMEOUT_MS = 300_000;

/** Sum of the layout shifts (Cumulative Layout Shift) not caused by input since the last reset. */
const WATCH_LAYOUT_SHIFTS = `
  window.__layoutShift = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (!e.hadRecentInput) window.__layoutShift += e.value;
  }).observe({ type: 'layout-shift', buffered: true });
`;

describe.skipIf(!chromiumPath).each(databaseKinds)('the dashboard in headless Chromium (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let apiKey: string;
  // Business time stands still at 10:00 on the server; the page's clock starts there too and runs.
  const clock = new FakeClock('2026-03-02T10:00:00Z');

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    t = await startTestMailPilot(kind, { clock });
    // A short delay per message keeps the campaign running long enough to pause it by hand.
    peer = await startSmtpPeer({ dataDelayMs: 15 });
    browser = await launchChromium(chromiumPath!, DESKTOP);
    page = await browser.context.newPage();
    await page.clock.install({ time: clock.now() });
    await page.addInitScript(WATCH_LAYOUT_SHIFTS);
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await peer?.close();
  });

  const shot = (name: string) => page.screenshot({ path: `${ARTIFACTS}/${kind}-${name}.png`, fullPage: true });
  const progress = (name: string) => page.getByRole('progressbar', { name: `Progress of ${name}` });
  const badge = (text: string) => page.locator('.badge', { hasText: new RegExp(`^${text}$`) });

  it('signs in, creates and starts a campaign, pauses and resumes it from the buttons, and watches it reach 100%', async () => {
    apiKey = (await t.createUser('browser')).apiKey;
    const serverId = await addServer(t, apiKey, peer.port);
    const fastAccount = await addAccount(t, apiKey, serverId, 'fast@browser.test', { ratePerSecond: 15 });
    await addList(t, apiKey, RECIPIENTS, 'browser.test');

    await page.goto(t.url);
    await page.getByLabel('API key').fill(apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Campaigns', level: 1 }).waitFor();
    await expect.poll(() => page.getByText('No campaigns yet').isVisible()).toBe(true);

    await page.getByRole('link', { name: 'New campaign' }).click();
    await page.getByLabel('Name', { exact: true }).fill('From the browser');
    await page.getByLabel(`list of ${RECIPIENTS}`).check();
    await page.getByLabel('Subject').fill('Hello {{name}}');
    await page.getByLabel('HTML body').fill('<p>Hi {{name}}</p>');
    await page.getByLabel('From name').fill('Browser Shop');
    await page.getByRole('button', { name: 'Create campaign' }).click();
    await page.getByRole('heading', { name: 'From the browser', level: 1 }).waitFor();
    await badge('Draft').waitFor();
    await shot('campaign-draft');

    await page.getByRole('button', { name: 'Start campaign From the browser' }).click();
    await badge('Running').waitFor();
    await expect.poll(async () => Number(await progress('From the browser').getAttribute('aria-valuenow')), { timeout: 30_000 }).toBeGreaterThan(0);
    await page.evaluate(() => ((window as any).__layoutShift = 0));

    await page.getByRole('button', { name: 'Pause campaign From the browser' }).click();
    await badge('Paused').waitFor();
    const campaigns = await must(t, apiKey, 'GET', '/api/v1/campaigns');
    const id = campaigns.items[0].id;
    const paused = await waitForCampaign(t, apiKey, id, (c) => c.status === 'paused');
    await waitForIdleEngine(t);
    const sentWhilePaused = peer.messages.length;
    expect(sentWhilePaused).toBeLessThan(RECIPIENTS);
    expect(paused.pending).toBeGreaterThan(0);
    await shot('campaign-paused');

    await page.getByRole('button', { name: 'Resume campaign From the browser' }).click();
    await badge('Running').waitFor();
    await expect.poll(async () => progress('From the browser').getAttribute('aria-valuenow'), { timeout: 60_000 }).toBe('100');
    await badge('Completed').waitFor();
    await expect.poll(() => page.getByText(`${RECIPIENTS} sent`, { exact: true }).isVisible()).toBe(true);
    await shot('campaign-completed');

    // What the page showed is what happened: every recipient once, all through the one account.
    expect(new Set(peer.messages.flatMap((m) => m.rcptTo)).size).toBe(RECIPIENTS);
    expect(peer.messages).toHaveLength(RECIPIENTS);
    const done = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`);
    expect(done).toMatchObject({ status: 'completed', sent: RECIPIENTS, pending: 0 });
    await expect.poll(() => page.getByRole('cell', { name: 'fast@browser.test' }).isVisible()).toBe(true);
    // Live counters, rates and bars changed for many seconds without moving the page around.
    expect(await page.evaluate(() => (window as any).__layoutShift)).toBeLessThan(0.05);

    // An account paused for its bounce rate shows why, and its Resume button lifts the pause.
    const reason = '12 hard bounces in the last 200 sends (6.0%, above 5%): check the list, then PATCH {"resume": true}';
    await t.mp.ctx.db.query(`UPDATE smtp_accounts SET health = 'paused', health_reason = $2 WHERE id = $1`, [fastAccount, reason]);
    await page.getByRole('link', { name: 'SMTP accounts' }).click();
    await page.getByText(reason).waitFor();
    await page.getByRole('button', { name: 'Resume fast@browser.test' }).click();
    await page.getByRole('button', { name: 'Resume fast@browser.test' }).waitFor({ state: 'detached' });
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${fastAccount}`)).health).toEqual({ state: 'healthy' });

    // Switch the fast account off from its card, and add one with a small hourly limit from the form.
    await page.getByRole('button', { name: 'Disable fast@browser.test' }).click();
    await page.getByRole('button', { name: 'Enable fast@browser.test' }).waitFor();
    expect((await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${fastAccount}`)).active).toBe(false);
    await page.getByText('Add an SMTP account').click();
    await page.getByLabel('Sending address').fill('small@browser.test');
    await page.getByLabel('Hourly limit').fill(String(SMALL_HOURLY_LIMIT));
    await page.getByLabel('Daily limit').fill('0');
    await page.getByRole('button', { name: 'Add account' }).click();
    await page.getByRole('heading', { name: 'small@browser.test' }).waitFor();
  }, BROWSER_TEST_TIMEOUT_MS);

  it("shows an account's usage bar at its limit and the resumeAt countdown of the paused campaign", async () => {
    const lists = await must(t, apiKey, 'GET', '/api/v1/lists');
    const id = (await must(t, apiKey, 'POST', '/api/v1/campaigns', { name: 'Over the limit', listIds: [lists.items[0].id], subject: 'Hi', text: 'Hi {{name}}' })).id;
    // The page's clock has run on since the first test; business time has not.
    await page.clock.setSystemTime(clock.now());

    await page.getByRole('link', { name: 'Campaigns' }).click();
    await page.getByRole('button', { name: 'Start campaign Over the limit' }).click();
    const stuck = await waitForCampaign(t, apiKey, id, (c) => c.status === 'paused_limits');
    expect(stuck).toMatchObject({ sent: SMALL_HOURLY_LIMIT, resumeAt: '2026-03-02T11:00:00.000Z' });
    const card = page.getByRole('article', { name: 'Over the limit' });
    await card.locator('.badge', { hasText: 'Paused: limits' }).waitFor();
    const countdown = card.getByRole('timer', { name: 'Resumes in' });
    await expect.poll(() => countdown.textContent()).toMatch(/^Resumes in (59:[0-5]\d|60:00) \(at /);
    const first = await countdown.textContent();
    await expect.poll(() => countdown.textContent(), { timeout: 10_000 }).not.toBe(first);
    await expect.poll(() => card.getByText('every SMTP account of this user is at a limit').isVisible()).toBe(true);
    await shot('campaigns-paused-limits');

    await page.getByRole('link', { name: 'SMTP accounts' }).click();
    const hourBar = page.getByRole('progressbar', { name: 'This hour usage of small@browser.test' });
    await expect.poll(() => hourBar.getAttribute('aria-valuenow')).toBe(String(SMALL_HOURLY_LIMIT));
    expect(await hourBar.getAttribute('aria-valuemax')).toBe(String(SMALL_HOURLY_LIMIT));
    expect(await hourBar.getAttribute('aria-valuetext')).toBe(`${SMALL_HOURLY_LIMIT} of ${SMALL_HOURLY_LIMIT}, at limit`);
    await expect.poll(() => page.getByRole('article', { name: 'small@browser.test' }).getByText('at limit').isVisible()).toBe(true);
    await shot('accounts-at-limit');

    // A phone-width screen: everything fits across, nothing scrolls sideways.
    await page.setViewportSize(PHONE);
    for (const [link, name] of [['SMTP accounts', 'accounts-phone'], ['Campaigns', 'campaigns-phone']] as const) {
      await page.getByRole('link', { name: link }).click();
      await page.waitForLoadState('networkidle');
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
      await shot(name);
    }
    await page.getByRole('link', { name: 'Over the limit' }).click();
    await page.getByRole('heading', { name: 'Over the limit', level: 1 }).waitFor();
    await page.getByRole('cell', { name: 'small@browser.test' }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
    await shot('campaign-detail-phone');
    await page.setViewportSize(DESKTOP);
  }, BROWSER_TEST_TIMEOUT_MS);

  it('signs the admin key in to the system view', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').fill(t.adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'System', level: 1 }).waitFor();
    // The system view shows what GET /stats says: one user sending one campaign, its queue.
    const stats = await must(t, t.adminKey, 'GET', '/api/v1/stats');
    const counter = (label: string) => page.locator('.counters div', { hasText: label }).locator('dd');
    await expect.poll(() => counter('Queue depth').textContent()).toBe(String(stats.pending));
    expect(await counter('Active campaigns').textContent()).toBe(String(stats.activeCampaigns));
    expect(await counter('Concurrent users').textContent()).toBe(String(stats.concurrentUsers));
    expect(stats.perUser).toHaveLength(1);
    await page.getByRole('progressbar', { name: `Pending messages of user ${stats.perUser[0].userId}` }).waitFor();
    await page.getByLabel('Email').fill('new@browser.test');
    await page.getByLabel('Name').fill('New user');
    await page.getByRole('button', { name: 'Create user' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toMatch(/User \d+ \(New user\) created\. Their API key, shown only now: mp_/);
    await shot('system');
  }, BROWSER_TEST_TIMEOUT_MS);
});
