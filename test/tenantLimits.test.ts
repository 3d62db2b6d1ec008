import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE, MAX_ATTRIBUTES, MAX_ATTRIBUTES_TOTAL } from '../src/campaigns/contactData.ts';
import { MAX_CSV_COLUMNS } from '../src/campaigns/csvRecords.ts';
import { loadConfig, QUOTA_VARIABLES, type Quotas } from '../src/config.ts';
import { databaseKinds } from './helpers/db.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const attributes = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, value]));

/** Small quotas, so each is reached in a few requests. */
const QUOTAS: Quotas = { lists: 3, campaigns: 2, contacts: 5, eventStreams: 2, apiKeys: 3 };

describe('per-user quotas come from the environment', () => {
  it('reads each variable, defaults each, and names the variable of a bad value', () => {
    const defaults = loadConfig({}).quotas;
    expect(defaults).toEqual({ lists: 200, campaigns: 10_000, contacts: 5_000_000, eventStreams: 20, apiKeys: 50 });
    const env = Object.fromEntries(Object.values(QUOTA_VARIABLES).map((q, i) => [q.variable, String(i + 7)]));
    expect(loadConfig(env).quotas).toEqual({ lists: 7, campaigns: 8, contacts: 9, eventStreams: 10, apiKeys: 11 });
    expect(() => loadConfig({ MAILPILOT_MAX_LISTS_PER_USER: '0' })).toThrow(/^MAILPILOT_MAX_LISTS_PER_USER must be a whole number/);
  });
});

describe.each(databaseKinds)('what one user may hold is capped (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false, config: { quotas: QUOTAS } });
  });
  afterAll(() => t.close());

  const importJson = (key: string, listId: number, contacts: unknown[]) => t.api('POST', `/api/v1/lists/${listId}/contacts`, { key, body: { contacts } });
  const importCsv = (key: string, listId: number, csv: string) =>
    t.api('POST', `/api/v1/lists/${listId}/contacts`, { key, body: csv, contentType: 'text/csv' });
  const contactsOf = (listId: number) =>
    t.mp.ctx.db.query<{ email: string; attributes: Record<string, unknown> }>('SELECT email, attributes FROM contacts WHERE list_id = $1 ORDER BY id', [listId]);

  it("refuses a contact's attributes past each cap, on import, when merged into a contact, and in a preview", async () => {
    const { apiKey } = await t.createUser('wide');
    const listId = (await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'wide' })).id;
    const tooMany = await importJson(apiKey, listId, [
      { email: 'count@rcpt.test', attributes: attributes(MAX_ATTRIBUTES + 1) },
      { email: 'name@rcpt.test', attributes: { ['k'.repeat(MAX_ATTRIBUTE_NAME + 1)]: 'v' } },
      { email: 'value@rcpt.test', attributes: { k: 'x'.repeat(MAX_ATTRIBUTE_VALUE + 1) } },
      { email: 'total@rcpt.test', attributes: attributes(Math.ceil(MAX_ATTRIBUTES_TOTAL / MAX_ATTRIBUTE_VALUE) + 1, 'x'.repeat(MAX_ATTRIBUTE_VALUE - 10)) },
      { email: 'fits@rcpt.test', attributes: attributes(MAX_ATTRIBUTES) },
    ]);
    expect(tooMany.status).toBe(200);
    expect(tooMany.body).toMatchObject({
      added: 1,
      invalid: [
        { row: 1, email: 'count@rcpt.test', reason: `attributes: more than ${MAX_ATTRIBUTES} attributes` },
        { row: 2, email: 'name@rcpt.test', reason: `attributes: names must be 1 to ${MAX_ATTRIBUTE_NAME} characters` },
        { row: 3, email: 'value@rcpt.test', reason: `attributes.k: longer than ${MAX_ATTRIBUTE_VALUE} characters` },
        { row: 4, email: 'total@rcpt.test', reason: `attributes: names and values longer than ${MAX_ATTRIBUTES_TOTAL} characters in all` },
      ],
    });

    // Attributes merge on a second import: a contact that would then hold too many keeps what it had.
    const more = await importJson(apiKey, listId, [
      { email: 'fits@rcpt.test', attributes: { extra: 'x' } },
      { email: 'other@rcpt.test', attributes: { a: 'b' } },
    ]);
    expect(more.body).toMatchObject({ added: 1, updated: 0, invalid: [{ row: 1, email: 'fits@rcpt.test', reason: expect.stringMatching(/^attributes: with the attributes this contact already has, more than/) }] });
    const [fits] = await contactsOf(listId);
    expect(Object.keys(fits!.attributes)).toHaveLength(MAX_ATTRIBUTES);
    expect(fits!.attributes.extra).toBeUndefined();

    const draft = await must(t, apiKey, 'POST', '/api/v1/campaigns', { name: 'n', listIds: [listId], subject: 's', text: 't' });
    const preview = await t.api('POST', `/api/v1/campaigns/${draft.id}/preview`, { key: apiKey, body: { contact: { email: 'p@rcpt.test', attributes: attributes(MAX_ATTRIBUTES + 1) } } });
    expect(preview).toMatchObject({ status: 422, body: { error: { code: 'invalid_field', message: `contact.attributes: more than ${MAX_ATTRIBUTES} attributes` } } });
    const long = await t.api('POST', `/api/v1/campaigns/${draft.id}/preview`, { key: apiKey, body: { contact: { email: 'p@rcpt.test', attributes: { k: 'x'.repeat(MAX_ATTRIBUTE_VALUE + 1) } } } });
    expect(long.body.error.message).toBe(`contact.attributes.k: longer than ${MAX_ATTRIBUTE_VALUE} characters`);
  });

  it('refuses a CSV with more columns than allowed before reading a row, and one with more attribute columns than a contact holds', async () => {
    const { apiKey } = await t.createUser('columns');
    const listId = (await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'csv' })).id;
    const header = (n: number) => ['email', ...Array.from({ length: n }, (_, i) => `c${i}`)].join(',');
    const row = (n: number) => ['wide@rcpt.test', ...Array.from({ length: n }, () => '1')].join(',');
    const huge = await importCsv(apiKey, listId, `${header(100_000)}\n${row(100_000)}\n`);
    expect(huge).toMatchObject({ status: 422, body: { error: { message: `header: 100001 columns; a file may have at most ${MAX_CSV_COLUMNS}` } } });
    const wide = await importCsv(apiKey, listId, `${header(MAX_ATTRIBUTES + 1)}\n${row(MAX_ATTRIBUTES + 1)}\n`);
    expect(wide).toMatchObject({ status: 422, body: { error: { message: `header: ${MAX_ATTRIBUTES + 1} attribute columns; a contact holds at most ${MAX_ATTRIBUTES} attributes` } } });
    expect(await contactsOf(listId)).toEqual([]);
    const fits = await importCsv(apiKey, listId, `${header(MAX_ATTRIBUTES)}\n${row(MAX_ATTRIBUTES)}\n`);
    expect(fits.body).toMatchObject({ added: 1, invalidCount: 0 });
  });

  it('refuses lists, campaigns and API keys past the quota with 409 naming the variable, counting concurrent requests exactly', async () => {
    const { apiKey } = await t.createUser('hoarder');
    const lists = await Promise.all(Array.from({ length: 10 }, (_, i) => t.api('POST', '/api/v1/lists', { key: apiKey, body: { name: `l${i}` } })));
    expect(lists.filter((r) => r.status === 201)).toHaveLength(QUOTAS.lists);
    expect(lists.find((r) => r.status !== 201)).toMatchObject({
      status: 409,
      body: { error: { code: 'quota_exceeded', message: `lists: this user may have at most 3 (MAILPILOT_MAX_LISTS_PER_USER, set by the operator)` } },
    });
    expect((await must(t, apiKey, 'GET', '/api/v1/lists')).items).toHaveLength(QUOTAS.lists);

    const listId = lists.find((r) => r.status === 201)!.body.id;
    const campaign = { name: 'n', listIds: [listId], subject: 's', text: 't' };
    const campaigns = await Promise.all(Array.from({ length: 5 }, () => t.api('POST', '/api/v1/campaigns', { key: apiKey, body: campaign })));
    expect(campaigns.filter((r) => r.status === 201)).toHaveLength(QUOTAS.campaigns);
    expect(campaigns.find((r) => r.status !== 201)?.body.error.message).toMatch(/^campaigns: this user may have at most 2 \(MAILPILOT_MAX_CAMPAIGNS_PER_USER/);

    // The user's first key counts: two more are allowed.
    const keys = await Promise.all(Array.from({ length: 5 }, () => t.api('POST', '/api/v1/me/keys', { key: apiKey })));
    expect(keys.filter((r) => r.status === 201)).toHaveLength(QUOTAS.apiKeys - 1);
    expect(keys.find((r) => r.status !== 201)?.body.error).toMatchObject({ code: 'quota_exceeded', message: expect.stringMatching(/^live API keys: .*MAILPILOT_MAX_API_KEYS_PER_USER/) });
    // A revoked key makes room for another.
    const spare = keys.find((r) => r.status === 201)!.body;
    expect((await t.api('DELETE', `/api/v1/me/keys/${spare.id}`, { key: apiKey })).status).toBe(204);
    expect((await t.api('POST', '/api/v1/me/keys', { key: apiKey })).status).toBe(201);

    // Another user's quota is their own.
    const other = await t.createUser('neighbour');
    expect((await t.api('POST', '/api/v1/lists', { key: other.apiKey, body: { name: 'mine' } })).status).toBe(201);
  });

  it("refuses the import that would pass the user's contact quota, writing nothing of it", async () => {
    const { apiKey } = await t.createUser('collector');
    const first = (await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'a' })).id;
    const second = (await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'b' })).id;
    const contacts = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ email: `${prefix}${i}@rcpt.test` }));
    expect((await importJson(apiKey, first, contacts(4, 'a'))).body.added).toBe(4);
    const over = await importJson(apiKey, second, contacts(2, 'b'));
    expect(over).toMatchObject({ status: 409, body: { error: { code: 'quota_exceeded', message: expect.stringMatching(/^contacts: .*MAILPILOT_MAX_CONTACTS_PER_USER/) } } });
    expect(await contactsOf(second)).toEqual([]);
    // Updating contacts already held adds none, and one more still fits.
    expect((await importJson(apiKey, first, [...contacts(4, 'a'), { email: 'last@rcpt.test' }])).body).toMatchObject({ added: 1, updated: 4 });
    const csv = await importCsv(apiKey, second, 'email\nnone@rcpt.test\n');
    expect(csv.status).toBe(409);
  });

  it('refuses an event stream past the quota with 429, and takes one again once a stream closes', async () => {
    const { apiKey } = await t.createUser('watcher');
    const listId = (await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'l' })).id;
    const id = (await must(t, apiKey, 'POST', '/api/v1/campaigns', { name: 'n', listIds: [listId], subject: 's', text: 't' })).id;
    const open = () => {
      const stop = new AbortController();
      const response = fetch(`${t.url}/api/v1/campaigns/${id}/events`, { headers: { authorization: `Bearer ${apiKey}` }, signal: stop.signal });
      return { response, stop };
    };
    const streams = [open(), open()];
    for (const s of streams) expect((await s.response).status).toBe(200);
    const refused = await open().response;
    expect(refused.status).toBe(429);
    expect((await refused.json()).error).toEqual({
      code: 'quota_exceeded',
      message: 'open event streams: this user may have at most 2 (MAILPILOT_MAX_EVENT_STREAMS_PER_USER, set by the operator)',
    });
    streams[0]!.stop.abort();
    const deadline = Date.now() + 5000;
    let again = open();
    while ((await again.response).status === 429 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      again = open();
    }
    expect((await again.response).status).toBe(200);
    again.stop.abort();
    streams[1]!.stop.abort();
  });
});
