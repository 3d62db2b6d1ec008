import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../src/api/app.ts';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const NOW = '2026-03-02T10:00:00.000Z';

interface ContactRow {
  email: string;
  name: string | null;
  attributes: Record<string, unknown>;
}

describe.each(databaseKinds)('lists and contact imports (%s)', (kind) => {
  let t: TestMailPilot;
  let alice: { id: number; apiKey: string };
  let bob: { id: number; apiKey: string };

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    alice = await t.createUser('alice');
    bob = await t.createUser('bob');
  });
  afterAll(() => t.close());

  const db = () => t.mp.ctx.db;

  async function createList(key: string, name = 'Newsletter'): Promise<number> {
    const res = await t.api('POST', '/api/v1/lists', { key, body: { name } });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  const importJson = (key: string, listId: number, contacts: unknown[]) =>
    t.api('POST', `/api/v1/lists/${listId}/contacts`, { key, body: { contacts } });
  const importCsv = (key: string, listId: number, csv: string, contentType = 'text/csv') =>
    t.api('POST', `/api/v1/lists/${listId}/contacts`, { key, body: csv, contentType });

  const contactsOf = (listId: number) =>
    db().query<ContactRow>('SELECT email, name, attributes FROM contacts WHERE list_id = $1 ORDER BY id', [listId]);
  const storedCount = async (listId: number) =>
    (await db().query<{ contact_count: number }>('SELECT contact_count FROM lists WHERE id = $1', [listId]))[0]!.contact_count;

  it('creates, reads and pages lists', async () => {
    const created = await t.api('POST', '/api/v1/lists', { key: alice.apiKey, body: { name: '  Customers  ' } });
    expect(created).toEqual({ status: 201, body: { id: created.body.id, name: 'Customers', contactCount: 0, createdAt: NOW } });
    const [row] = await db().query('SELECT user_id, name, contact_count FROM lists WHERE id = $1', [created.body.id]);
    expect(row).toEqual({ user_id: alice.id, name: 'Customers', contact_count: 0 });
    expect(await t.api('GET', `/api/v1/lists/${created.body.id}`, { key: alice.apiKey })).toEqual({ status: 200, body: created.body });

    const carol = await t.createUser('carol');
    const ids = [await createList(carol.apiKey, 'a'), await createList(carol.apiKey, 'b'), await createList(carol.apiKey, 'c')];
    const first = await t.api('GET', '/api/v1/lists?limit=2', { key: carol.apiKey });
    expect(first.body.items.map((l: { id: number }) => l.id)).toEqual(ids.slice(0, 2));
    expect(first.body.next).toBe(ids[1]);
    const second = await t.api('GET', `/api/v1/lists?limit=2&after=${first.body.next}`, { key: carol.apiKey });
    expect(second.body).toEqual({ items: [{ id: ids[2], name: 'c', contactCount: 0, createdAt: NOW }], next: null });
  });

  it('refuses invalid list fields with 422 naming the field', async () => {
    for (const [body, message] of [
      [{ name: '' }, /^name: /],
      [{ name: 'x'.repeat(201) }, /^name: /],
      [{}, /^name: /],
      [{ name: 'ok', color: 'red' }, /color/],
    ] as const) {
      const res = await t.api('POST', '/api/v1/lists', { key: alice.apiKey, body });
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.error.message).toMatch(message);
    }
  });

  it('imports JSON contacts with exact counts, normalised addresses and attributes', async () => {
    const listId = await createList(alice.apiKey);
    const res = await importJson(alice.apiKey, listId, [
      { email: ' Ann@Example.COM ', name: 'Ann', attributes: { city: 'Paris', vip: true, score: 7 } },
      { email: 'bob@example.com' },
      { email: 'not-an-address', name: 'X' },
      { email: 'ann@example.com', name: 'Ann again' },
      { email: 'eve@example.com', name: 'Eve\r\nBcc: victim@example.com' },
      { email: 'eve@example.com\r\n' + 'x' },
      { email: 'nested@example.com', attributes: { address: { street: 'x' } } },
      'just a string',
      { email: 'extra@example.com', phone: '123' },
      { name: 'no address' },
      { email: 'dan@example.com', name: null, attributes: null },
    ]);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      added: 3,
      updated: 0,
      duplicates: 1,
      invalid: [
        { row: 3, email: 'not-an-address', reason: 'email: not a valid email address' },
        { row: 5, email: 'eve@example.com', reason: 'name: must not contain control characters (line breaks, tabs, escape, ...)' },
        { row: 6, email: 'eve@example.com\r\nx', reason: 'email: must not contain line breaks or NUL' },
        { row: 7, email: 'nested@example.com', reason: 'attributes.address: must be a string, number or boolean' },
        { row: 8, email: null, reason: 'must be an object with an email' },
        { row: 9, email: 'extra@example.com', reason: 'unknown field "phone"' },
        { row: 10, email: null, reason: 'email: missing' },
      ],
      invalidCount: 7,
      warnings: [],
    });
    expect(await contactsOf(listId)).toEqual([
      { email: 'Ann@example.com', name: 'Ann', attributes: { city: 'Paris', vip: true, score: 7 } },
      { email: 'bob@example.com', name: null, attributes: {} },
      { email: 'dan@example.com', name: null, attributes: {} },
    ]);
    const [owner] = await db().query<{ n: number }>('SELECT count(*) AS n FROM contacts WHERE list_id = $1 AND user_id = $2', [listId, alice.id]);
    expect(owner!.n).toBe(3);
    expect((await t.api('GET', `/api/v1/lists/${listId}`, { key: alice.apiKey })).body.contactCount).toBe(3);

    const again = await importJson(alice.apiKey, listId, [
      { email: 'ANN@example.com', name: 'Ann B.', attributes: { city: 'Lyon', plan: 'pro' } },
      { email: 'new@example.com' },
      { email: 'bob@EXAMPLE.com', attributes: { plan: 'free' } },
    ]);
    expect(again.body).toEqual({ added: 1, updated: 2, duplicates: 0, invalid: [], invalidCount: 0, warnings: [] });
    expect(await contactsOf(listId)).toEqual([
      { email: 'Ann@example.com', name: 'Ann B.', attributes: { city: 'Lyon', vip: true, score: 7, plan: 'pro' } },
      { email: 'bob@example.com', name: null, attributes: { plan: 'free' } },
      { email: 'dan@example.com', name: null, attributes: {} },
      { email: 'new@example.com', name: null, attributes: {} },
    ]);
    expect(await storedCount(listId)).toBe(4);
    expect((await t.api('GET', '/api/v1/lists?limit=1000', { key: alice.apiKey })).body.items).toContainEqual(
      expect.objectContaining({ id: listId, contactCount: 4 }),
    );
  });

  it('refuses a JSON body without a contacts array with 422', async () => {
    const listId = await createList(alice.apiKey);
    for (const body of [{}, { contacts: 'a@example.com' }, { contacts: [], extra: 1 }]) {
      const res = await t.api('POST', `/api/v1/lists/${listId}/contacts`, { key: alice.apiKey, body });
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.error.message).toMatch(/^(contacts|body): /);
    }
    expect(await storedCount(listId)).toBe(0);
  });

  it('imports CSV with a header row: other columns become string attributes', async () => {
    const listId = await createList(alice.apiKey);
    await importJson(alice.apiKey, listId, [{ email: 'kept@example.com', name: 'Kept', attributes: { city: 'Oslo', tier: 1 } }]);
    const csv = [
      '\uFEFFEmail, Name ,City,Plan',
      'ann@example.com,Ann,Paris,pro',
      '"bob@example.com","Bob, Jr.","New York, NY",free',
      'broken-address,Nobody,X,Y',
      '',
      '  ANN@EXAMPLE.COM  ,Duplicate Ann,Rome,basic',
      'short@example.com,Short',
      'KEPT@Example.com,,Bergen,gold',
      ',Missing,Z,Z',
      'carl@example.com,"Carl ""The Man""",Berlin,pro',
    ].join('\r\n');
    const res = await importCsv(alice.apiKey, listId, csv, 'text/csv; charset=utf-8');
    expect(res.status).toBe(200);
    // Rows count data records: the header and the blank line are not rows.
    expect(res.body).toEqual({
      added: 4,
      updated: 1,
      duplicates: 1,
      invalid: [
        { row: 3, email: 'broken-address', reason: 'email: not a valid email address' },
        { row: 7, email: '', reason: 'email: missing' },
      ],
      invalidCount: 2,
      warnings: [],
    });
    expect(await contactsOf(listId)).toEqual([
      { email: 'kept@example.com', name: 'Kept', attributes: { city: 'Oslo', tier: 1, City: 'Bergen', Plan: 'gold' } },
      { email: 'ann@example.com', name: 'Ann', attributes: { City: 'Paris', Plan: 'pro' } },
      { email: 'bob@example.com', name: 'Bob, Jr.', attributes: { City: 'New York, NY', Plan: 'free' } },
      { email: 'short@example.com', name: 'Short', attributes: {} },
      { email: 'carl@example.com', name: 'Carl "The Man"', attributes: { City: 'Berlin', Plan: 'pro' } },
    ]);
    expect(await storedCount(listId)).toBe(5);
    expect((await t.api('GET', `/api/v1/lists/${listId}`, { key: alice.apiKey })).body.contactCount).toBe(5);
  });

  it('refuses a CSV without an email column with 422 listing the columns it saw, writing nothing', async () => {
    const listId = await createList(alice.apiKey);
    const needs = 'email: the file needs an email column (named email, e-mail or email address, in any case); ';
    for (const [csv, saw] of [
      ['name,city\nAnn,Paris\n', 'its columns are: "name", "city"'],
      ['Name;Adresse;Ville\nAnn;x@example.com;Paris\n', 'its columns are: "Name", "Adresse", "Ville"'],
      ['', 'it has no header row'],
      ['mail\n', 'its columns are: "mail"'],
    ]) {
      const res = await importCsv(alice.apiKey, listId, csv!);
      expect(res, JSON.stringify(csv)).toMatchObject({ status: 422, body: { error: { code: 'invalid_field', message: needs + saw } } });
    }
    expect(await contactsOf(listId)).toEqual([]);
  });

  it('answers a malformed CSV with 400', async () => {
    const listId = await createList(alice.apiKey);
    const res = await importCsv(alice.apiKey, listId, 'email,name\n"unterminated@example.com,Ann\n');
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'malformed_csv' } } });
  });

  it('refuses other content types with 415', async () => {
    const listId = await createList(alice.apiKey);
    const res = await importCsv(alice.apiKey, listId, 'email\na@example.com\n', 'text/plain');
    expect(res.status).toBe(415);
  });

  it('streams a large CSV across chunks: duplicates far apart, over a thousand invalid rows, beyond the body limit', async () => {
    const listId = await createList(alice.apiKey);
    const padding = 'p'.repeat(1000);
    const lines = ['email,name,padding'];
    const validRows = 11_000;
    for (let i = 0; i < validRows; i++) {
      lines.push(`user${i}@example.com,User ${i},${padding}`);
      // A repeat within the chunk being collected.
      if (i === 500) lines.push('user10@example.com,Again,x');
    }
    // Repeats of rows written in earlier chunks.
    lines.push('USER5@example.com,Again,x', 'user2500@EXAMPLE.com,Again,x', 'user10999@example.com,Again,x');
    const invalidRows = 1200;
    for (let i = 0; i < invalidRows; i++) lines.push(`bad${i},Bad,x`);
    const csv = lines.join('\n') + '\n';
    expect(csv.length).toBeGreaterThan(BODY_LIMIT_BYTES);

    const res = await importCsv(alice.apiKey, listId, csv);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ added: validRows, updated: 0, duplicates: 4, invalidCount: invalidRows });
    expect(res.body.invalid).toHaveLength(1000);
    expect(res.body.invalid[0]).toEqual({ row: validRows + 5, email: 'bad0', reason: 'email: not a valid email address' });
    expect(res.body.invalid[999].row).toBe(validRows + 4 + 1000);

    expect(await storedCount(listId)).toBe(validRows);
    const [counted] = await db().query<{ n: number }>('SELECT count(*) AS n FROM contacts WHERE list_id = $1', [listId]);
    expect(counted!.n).toBe(validRows);
    const [first] = await db().query<ContactRow>('SELECT email, name FROM contacts WHERE list_id = $1 AND lower(email) = $2', [
      listId,
      'user2500@example.com',
    ]);
    // The first occurrence in the file wins.
    expect(first).toEqual({ email: 'user2500@example.com', name: 'User 2500' });
  });

  it('keeps contactCount exact when contacts or their list go away', async () => {
    const listId = await createList(alice.apiKey);
    await importJson(alice.apiKey, listId, [{ email: 'a@example.com' }, { email: 'b@example.com' }, { email: 'c@example.com' }]);
    await db().query(`DELETE FROM contacts WHERE list_id = $1 AND email IN ('a@example.com', 'b@example.com')`, [listId]);
    expect((await t.api('GET', `/api/v1/lists/${listId}`, { key: alice.apiKey })).body.contactCount).toBe(1);
    await db().query('DELETE FROM lists WHERE id = $1', [listId]);
    expect(await contactsOf(listId)).toEqual([]);
  });

  it('answers 404 for another user\'s list on every route and changes nothing', async () => {
    const listId = await createList(alice.apiKey);
    await importJson(alice.apiKey, listId, [{ email: 'private@example.com', name: 'Private' }]);
    const before = await contactsOf(listId);

    expect((await t.api('GET', `/api/v1/lists/${listId}`, { key: bob.apiKey })).status).toBe(404);
    const json = await importJson(bob.apiKey, listId, [{ email: 'private@example.com', name: 'Hijacked' }, { email: 'x@example.com' }]);
    expect(json).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    const csv = await importCsv(bob.apiKey, listId, 'email,name\nprivate@example.com,Hijacked\n');
    expect(csv).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect((await importJson(alice.apiKey, 999_999, [{ email: 'a@example.com' }])).status).toBe(404);

    const bobLists = await t.api('GET', '/api/v1/lists', { key: bob.apiKey });
    expect(bobLists.body.items.map((l: { id: number }) => l.id)).not.toContain(listId);
    expect(await contactsOf(listId)).toEqual(before);
    expect(await storedCount(listId)).toBe(1);
  });

  it('requires a user key', async () => {
    expect((await t.api('GET', '/api/v1/lists', { key: t.adminKey })).status).toBe(403);
    expect((await t.api('POST', '/api/v1/lists', { body: { name: 'x' } })).status).toBe(401);
  });
});
