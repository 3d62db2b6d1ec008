import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const ROWS = 200_000;
/** Rows already on the list before the big import (imported again, they count as updated). */
const EXISTING = 1000;

/**
 * The big file, generated while it is uploaded: row i is contact i, except that every 1000th row
 * repeats an address of 500 rows earlier (in upper case), and every 997th row has a broken address.
 */
function bigCsv(): { stream: ReadableStream<Uint8Array>; expected: { added: number; updated: number; duplicates: number; invalid: number[] } } {
  const expected = { added: 0, updated: 0, duplicates: 0, invalid: [] as number[] };
  for (let row = 1; row <= ROWS; row++) {
    if (row % 997 === 0) expected.invalid.push(row);
    else if (row % 1000 === 0) expected.duplicates++;
    else if (row <= EXISTING) expected.updated++;
    else expected.added++;
  }
  const line = (row: number) => {
    if (row % 997 === 0) return `broken-${row},Broken,x\n`;
    if (row % 1000 === 0) return `C${row - 500}@BIG.TEST,Again,y\n`;
    return `c${row}@big.test,Contact ${row},City${row % 13}\n`;
  };
  const encoder = new TextEncoder();
  let next = 1;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (next === 1) controller.enqueue(encoder.encode('email,name,city\n'));
      if (next > ROWS) return controller.close();
      let chunk = '';
      for (const end = Math.min(next + 2000, ROWS + 1); next < end; next++) chunk += line(next);
      controller.enqueue(encoder.encode(chunk));
    },
  });
  return { stream, expected };
}

describe.each(databaseKinds)('imports at scale (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it(`streams a ${ROWS.toLocaleString('en')}-row CSV through the API with exact counts`, { timeout: 300_000 }, async () => {
    const { apiKey } = await t.createUser();
    const list = await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'big' });
    const existing = ['email', ...Array.from({ length: EXISTING }, (_, i) => `c${i + 1}@big.test`)].join('\n');
    const first = await t.api('POST', `/api/v1/lists/${list.id}/contacts`, { key: apiKey, body: existing, contentType: 'text/csv' });
    expect(first.body).toMatchObject({ added: EXISTING, updated: 0 });

    // Memory is measured by bench/import.ts (server peak RSS over a 1M-row upload), not here: this
    // process's RSS also holds the embedded database and the test's own garbage, and varied from 9 to
    // 221 MB between runs of the same code.
    const { stream, expected } = bigCsv();
    const res = await fetch(`${t.url}/api/v1/lists/${list.id}/contacts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'text/csv' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    const body = await res.json();

    expect(res.status).toBe(200);
    expect(body).toMatchObject({
      added: expected.added,
      updated: expected.updated,
      duplicates: expected.duplicates,
      invalidCount: expected.invalid.length,
    });
    expect(body.invalid.map((r: { row: number }) => r.row)).toEqual(expected.invalid);
    expect(body.invalid[0]).toEqual({ row: 997, email: 'broken-997', reason: 'email: not a valid email address' });
    const stored = await must(t, apiKey, 'GET', `/api/v1/lists/${list.id}`);
    expect(stored.contactCount).toBe(EXISTING + expected.added);
    const [counted] = await t.mp.ctx.db.query<{ n: number }>('SELECT count(*) AS n FROM contacts WHERE list_id = $1', [list.id]);
    expect(counted!.n).toBe(EXISTING + expected.added);
    // The first occurrence in the file wins over its repeat.
    const [repeated] = await t.mp.ctx.db.query<{ name: string }>('SELECT name FROM contacts WHERE list_id = $1 AND lower(email) = $2', [list.id, 'c1500@big.test']);
    expect(repeated!.name).toBe('Contact 1500');
  });
});

describe.each(databaseKinds)('bulk-loaded values arrive exactly (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it('keeps backslashes, tabs, line breaks and quotes, and refuses a __proto__ column', async () => {
    const { apiKey } = await t.createUser();
    const list = await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'odd' });
    const proto = await t.api('POST', `/api/v1/lists/${list.id}/contacts`, { key: apiKey, body: 'email,__proto__\na@x.test,p\n', contentType: 'text/csv' });
    expect(proto).toMatchObject({ status: 422, body: { error: { message: 'header: a column cannot be named "__proto__"' } } });
    const csv = 'email,name,constructor,note\r\n' + 'odd@x.test,"Back\\slash","c","tab\there\r\nline ""two"" \\N"\r\n';
    const res = await t.api('POST', `/api/v1/lists/${list.id}/contacts`, { key: apiKey, body: csv, contentType: 'text/csv' });
    expect(res.body).toMatchObject({ added: 1, invalidCount: 0 });
    const json = await t.api('POST', `/api/v1/lists/${list.id}/contacts`, {
      key: apiKey,
      body: { contacts: [{ email: 'json@x.test', attributes: { constructor: 'j', path: 'C:\\dir\ttab' } }] },
    });
    expect(json.body).toMatchObject({ added: 1, invalidCount: 0 });
    // A JSON body smuggling __proto__ is refused outright (Fastify's prototype-poisoning guard).
    const poisoned = '{"contacts": [{"email": "p@x.test", "attributes": {"__proto__": "x"}}]}';
    expect((await t.api('POST', `/api/v1/lists/${list.id}/contacts`, { key: apiKey, body: poisoned, contentType: 'application/json' })).status).toBe(400);
    const rows = await t.mp.ctx.db.query<{ email: string; name: string | null; attributes: string }>(
      'SELECT email, name, attributes::text AS attributes FROM contacts WHERE list_id = $1 ORDER BY id',
      [list.id],
    );
    expect(rows.map((r) => ({ ...r, attributes: JSON.parse(r.attributes) }))).toEqual([
      { email: 'odd@x.test', name: 'Back\\slash', attributes: { constructor: 'c', note: 'tab\there\r\nline "two" \\N' } },
      { email: 'json@x.test', name: null, attributes: { constructor: 'j', path: 'C:\\dir\ttab' } },
    ]);
  });
});

describe.each(databaseKinds)('contacts go with their list (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it('deleting a user or a list deletes its contacts (no foreign key, a trigger)', async () => {
    const gone = await t.createUser();
    const kept = await t.createUser();
    const lists: Record<string, number> = {};
    for (const [owner, name] of [
      [gone, 'a'],
      [gone, 'b'],
      [kept, 'c'],
      [kept, 'd'],
    ] as const) {
      lists[name] = (await must(t, owner.apiKey, 'POST', '/api/v1/lists', { name })).id;
      await t.api('POST', `/api/v1/lists/${lists[name]}/contacts`, { key: owner.apiKey, body: `email\n${name}1@x.test\n${name}2@x.test\n`, contentType: 'text/csv' });
    }
    const db = t.mp.ctx.db;
    await db.query('DELETE FROM users WHERE id = $1', [gone.id]);
    await db.query('DELETE FROM lists WHERE id = $1', [lists.d]);
    const left = await db.query<{ email: string }>('SELECT email FROM contacts ORDER BY email');
    expect(left.map((r) => r.email)).toEqual(['c1@x.test', 'c2@x.test']);
    expect((await must(t, kept.apiKey, 'GET', `/api/v1/lists/${lists.c}`)).contactCount).toBe(2);
  });
});

describe.each(databaseKinds)('queues built from lists at scale (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  const csv = (from: number, to: number, upper = false) => {
    const rows = ['email,name'];
    for (let i = from; i < to; i++) rows.push(`${upper ? 'Q' : 'q'}${i}@queue.test,Q ${i}`);
    return rows.join('\n');
  };

  it('queues each address once across overlapping lists, in batches, without the suppressed ones', { timeout: 300_000 }, async () => {
    const { apiKey } = await t.createUser();
    const server = await must(t, apiKey, 'POST', '/api/v1/smtp-servers', { name: 's', host: '127.0.0.1', port: 2, security: 'none' });
    await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { serverId: server.id, email: 'q@sender.test', hourlyLimit: 0, dailyLimit: 0 });
    const lists: number[] = [];
    // 45,000 and 10,000 contacts, 5,000 of them on both lists (in another case): more than two batches.
    for (const [from, to, upper] of [
      [0, 45_000, false],
      [40_000, 50_000, true],
    ] as const) {
      const list = await must(t, apiKey, 'POST', '/api/v1/lists', { name: `q${from}` });
      const res = await t.api('POST', `/api/v1/lists/${list.id}/contacts`, { key: apiKey, body: csv(from, to, upper), contentType: 'text/csv' });
      expect(res.body.added).toBe(to - from);
      lists.push(list.id);
    }
    const suppressed = ['email', ...Array.from({ length: 300 }, (_, i) => `Q${i * 150}@QUEUE.test`)].join('\n');
    expect((await t.api('POST', '/api/v1/suppressions/import', { key: apiKey, body: suppressed, contentType: 'text/csv' })).body.added).toBe(300);

    const campaign = await must(t, apiKey, 'POST', '/api/v1/campaigns', { name: 'q', listIds: lists, subject: 's', text: 't' });
    const started = await must(t, apiKey, 'POST', `/api/v1/campaigns/${campaign.id}/start`);
    expect(started).toMatchObject({ status: 'running', total: 50_000, suppressed: 300, pending: 49_700 });

    const [queue] = await t.mp.ctx.db.query<{ rows: number; addresses: number; pending: number; fromFirstList: number }>(
      `SELECT count(*) AS rows, count(DISTINCT lower(email)) AS addresses, count(*) FILTER (WHERE status = 'pending') AS pending,
              count(*) FILTER (WHERE email LIKE 'q%') AS "fromFirstList"
         FROM messages WHERE campaign_id = $1`,
      [campaign.id],
    );
    // The first list naming an address wins: 45,000 from it, the other 5,000 only on the second.
    expect(queue).toEqual({ rows: 50_000, addresses: 50_000, pending: 49_700, fromFirstList: 45_000 });
  });
});
