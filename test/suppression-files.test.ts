import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

describe.each(databaseKinds)('suppression lists as CSV files (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  const importCsv = (key: string, csv: string, query = '', contentType = 'text/csv') =>
    t.api('POST', `/api/v1/suppressions/import${query}`, { key, body: csv, contentType });
  const exportCsv = async (key: string) => {
    const res = await fetch(`${t.url}/api/v1/suppressions/export.csv`, { headers: { authorization: `Bearer ${key}` } });
    return { status: res.status, type: res.headers.get('content-type'), disposition: res.headers.get('content-disposition'), text: await res.text() };
  };

  it('imports with reasons and times, case-insensitively, and exports what it holds', async () => {
    const { apiKey } = await t.createUser();
    const res = await importCsv(
      apiKey,
      [
        'Email,Reason,created_at,ignored',
        'Ann@Example.COM,unsubscribed,2026-01-15T08:00:00Z,x',
        'bob@example.com,,,',
        'ANN@example.com,complaint,,',
        'carl@example.com,spam,,',
        'dora@example.com,manual,yesterday,',
        'not-an-address,manual,,',
        '"""eve, the second""@example.com",hard_bounce,,',
        'fay@example.com,HARD_BOUNCE,,',
      ].join('\n'),
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      added: 3,
      existing: 1,
      invalid: [
        { row: 4, email: 'carl@example.com', reason: 'reason: must be one of unsubscribed, hard_bounce, manual, complaint, bounce, erased' },
        { row: 5, email: 'dora@example.com', reason: 'created_at: must be a past ISO 8601 time' },
        { row: 6, email: 'not-an-address', reason: 'email: not a valid email address' },
        { row: 7, email: '"eve, the second"@example.com', reason: 'email: not a valid email address' },
      ],
      invalidCount: 4,
    });
    // Again, with a default reason for rows without one: everything is already there.
    expect((await importCsv(apiKey, 'email\nBOB@example.com\ngus@example.com\n', '?reason=complaint')).body).toMatchObject({ added: 1, existing: 1 });

    const file = await exportCsv(apiKey);
    expect(file).toMatchObject({ status: 200, type: 'text/csv; charset=utf-8', disposition: 'attachment; filename="suppressions.csv"' });
    expect(file.text).toBe(
      [
        'email,reason,created_at',
        'Ann@example.com,unsubscribed,2026-01-15T08:00:00.000Z',
        'bob@example.com,manual,2026-03-02T10:00:00.000Z',
        'fay@example.com,hard_bounce,2026-03-02T10:00:00.000Z',
        'gus@example.com,complaint,2026-03-02T10:00:00.000Z',
        '',
      ].join('\r\n'),
    );

    // An export imports into another user's list unchanged, and the two lists stay apart.
    const other = await t.createUser();
    expect((await importCsv(other.apiKey, file.text)).body).toMatchObject({ added: 4, existing: 0, invalidCount: 0 });
    expect((await exportCsv(other.apiKey)).text).toBe(file.text);
    const third = await t.createUser();
    expect((await exportCsv(third.apiKey)).text).toBe('email,reason,created_at\r\n');
  });

  it('exports addresses a spreadsheet would run as formulas with the guard every export has, and imports its own file back unchanged', async () => {
    const { apiKey } = await t.createUser();
    const risky = ['+sum@rcpt.test', '-cmd@rcpt.test', 'plain@rcpt.test'];
    for (const email of risky) expect((await t.api('POST', '/api/v1/suppressions', { key: apiKey, body: { email } })).status).toBe(201);
    const exported = (await exportCsv(apiKey)).text;
    const firstFields = exported.trimEnd().split('\r\n').slice(1).map((l) => l.split(',')[0]);
    expect(firstFields.sort()).toEqual(["'+sum@rcpt.test", "'-cmd@rcpt.test", 'plain@rcpt.test']);

    const other = await t.createUser();
    expect((await importCsv(other.apiKey, exported)).body).toMatchObject({ added: 3, invalidCount: 0 });
    const held = (await t.api('GET', '/api/v1/suppressions', { key: other.apiKey })).body.items.map((s: { email: string }) => s.email);
    expect(held.sort()).toEqual([...risky].sort());
  });

  it('exports lists longer than one page in full', async () => {
    const { apiKey } = await t.createUser();
    const emails = Array.from({ length: 12_345 }, (_, i) => `s${String(i).padStart(5, '0')}@page.test`);
    expect((await importCsv(apiKey, ['email', ...emails].join('\n'))).body).toMatchObject({ added: emails.length });
    const lines = (await exportCsv(apiKey)).text.trimEnd().split('\r\n');
    expect(lines.slice(1).map((l) => l.split(',')[0])).toEqual(emails);
  });

  it('refuses files without an email column, malformed CSV, other types, and callers without a user key', async () => {
    const { apiKey } = await t.createUser();
    expect(await importCsv(apiKey, 'address,reason\na@b.test,manual\n')).toMatchObject({
      status: 422,
      body: { error: { message: 'email: the file needs an email column (named email, e-mail or email address, in any case); its columns are: "address", "reason"' } },
    });
    expect((await importCsv(apiKey, 'email\n"a@b.test\n')).status).toBe(400);
    expect((await importCsv(apiKey, 'email\na@b.test\n', '', 'text/plain')).status).toBe(415);
    expect((await importCsv(apiKey, 'email\na@b.test\n', '?reason=bored')).status).toBe(422);
    expect((await t.api('GET', '/api/v1/suppressions/export.csv', { key: t.adminKey })).status).toBe(403);
    expect((await t.api('GET', '/api/v1/suppressions/export.csv')).status).toBe(401);
    expect((await exportCsv(apiKey)).text).toBe('email,reason,created_at\r\n');
  });
});
