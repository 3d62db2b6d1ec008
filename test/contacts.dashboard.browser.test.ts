import ExcelJS from 'exceljs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChromium, launchChromium } from './helpers/chromium.ts';
import { databaseKinds } from './helpers/db.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const chromiumPath = ensureChromium();

/** The Lists page in headless Chromium: .xlsx import, finding and deleting a contact, erasure, deleting a list. */
describe.skipIf(!chromiumPath).each(databaseKinds)('contacts in the dashboard (%s)', (kind) => {
  let t: TestMailPilot;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    browser = await launchChromium(chromiumPath!, { width: 1280, height: 900 });
    page = await browser.context.newPage();
    // The page asks before deleting or erasing; the test says yes.
    page.on('dialog', (dialog) => void dialog.accept());
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('imports a spreadsheet, finds and deletes a contact, erases an address and deletes a list', async () => {
    const { apiKey } = await t.createUser('browser');
    const list = await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'Customers' });
    const wb = new ExcelJS.Workbook();
    wb.addWorksheet('Sheet1').addRows([
      ['Email Address', 'Name'],
      ['ann@web.test', 'Ann'],
      ['bob@web.test', 'Bob'],
    ]);
    const xlsx = Buffer.from(await wb.xlsx.writeBuffer());

    await page.goto(t.url);
    await page.getByLabel('API key').fill(apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Lists' }).click();
    await page.getByRole('heading', { name: 'Customers' }).waitFor();
    await page.getByLabel(/CSV or \.xlsx file for Customers/).setInputFiles({ name: 'people.xlsx', mimeType: 'application/octet-stream', buffer: xlsx });
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByText('2 added, 0 updated, 0 duplicates, 0 invalid').waitFor();
    await expect.poll(async () => (await must(t, apiKey, 'GET', `/api/v1/lists/${list.id}`)).contactCount).toBe(2);

    await page.getByLabel('Email address').fill('ann@web.test');
    await page.getByRole('button', { name: 'Find', exact: true }).click();
    await page.getByRole('button', { name: 'Delete ann@web.test from Customers' }).click();
    await page.getByText('ann@web.test deleted from Customers.').waitFor();
    expect((await must(t, apiKey, 'GET', '/api/v1/contacts?email=ann@web.test')).items).toEqual([]);

    await page.getByLabel('Email address').fill('bob@web.test');
    await page.getByRole('button', { name: 'Find', exact: true }).click();
    await page.getByRole('button', { name: 'Erase bob@web.test everywhere' }).click();
    await page.getByText('bob@web.test: 1 contacts and 0 messages erased; suppressed.').waitFor();
    expect(await must(t, apiKey, 'GET', '/api/v1/contacts/export?email=bob@web.test')).toMatchObject({ contacts: [], suppression: { reason: 'erased' } });

    await page.getByRole('button', { name: 'Delete list Customers' }).click();
    await expect.poll(async () => (await t.api('GET', `/api/v1/lists/${list.id}`, { key: apiKey })).status).toBe(404);
    await page.getByRole('heading', { name: 'Customers' }).waitFor({ state: 'detached' });
  }, 120_000);
});
