import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOAuthSecret } from '../src/db/smtpAccounts.ts';
import { ensureChromium, launchChromium } from './helpers/chromium.ts';
import { databaseKinds } from './helpers/db.ts';
import { addServer, must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const chromiumPath = ensureChromium();
const BROWSER_TEST_TIMEOUT_MS = 180_000;

describe.skipIf(!chromiumPath).each(databaseKinds)('the dashboard adds an OAuth2 account (%s)', (kind) => {
  let t: TestMailPilot;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    browser = await launchChromium(chromiumPath!, { width: 1280, height: 900 });
    page = await browser.context.newPage();
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('fills the OAuth2 fields instead of a password; the account logs in with XOAUTH2 and the secrets are stored sealed', async () => {
    const { apiKey } = await t.createUser('oauth-browser');
    await addServer(t, apiKey, 587);
    await page.goto(t.url);
    await page.getByLabel('API key').fill(apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'SMTP accounts' }).click();
    await page.getByText('Add an SMTP account').click();
    await page.getByLabel('Sending address').fill('office@browser.test');
    await page.getByLabel('Login').selectOption('oauth2');
    await expect.poll(() => page.getByLabel('Password', { exact: true }).count()).toBe(0);
    await page.getByLabel('Client ID').fill('client-of-the-app');
    await page.getByLabel('Client secret').fill('secret-typed-in-the-browser');
    await page.getByLabel('Refresh token').fill('0.refresh-token-typed-in-the-browser');
    await page.getByLabel('Token URL').fill('https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token');
    await page.getByRole('button', { name: 'Add account' }).click();
    await page.getByRole('heading', { name: 'office@browser.test' }).waitFor();
    await expect.poll(() => page.getByText('OAuth2 as office@browser.test').isVisible()).toBe(true);

    const { items } = await must(t, apiKey, 'GET', '/api/v1/smtp-accounts');
    expect(items[0]).toMatchObject({
      hasPassword: false,
      auth: { type: 'oauth2', clientId: 'client-of-the-app', tokenUrl: 'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token', user: 'office@browser.test' },
    });
    const [row] = await t.mp.ctx.db.query<{ refresh: string }>('SELECT oauth_refresh_token_enc AS refresh FROM smtp_accounts WHERE id = $1', [items[0].id]);
    expect(accountOAuthSecret(t.mp.ctx.secrets.secretKey, items[0].id, 'refresh_token', row!.refresh)).toBe('0.refresh-token-typed-in-the-browser');
    expect(await page.content()).not.toContain('typed-in-the-browser');
  }, BROWSER_TEST_TIMEOUT_MS);
});
