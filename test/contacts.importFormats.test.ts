import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XLSX_CONTENT_TYPE } from '../src/campaigns/contactFileTypes.ts';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

interface ContactRow {
  email: string;
  name: string | null;
  attributes: Record<string, unknown>;
}

/** The files people have: Excel's windows-1252 and UTF-16, European semicolons, tabs, header aliases, .xlsx. */
describe.each(databaseKinds)('contact files as people have them (%s)', (kind) => {
  let t: TestMailPilot;
  let key: string;

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    key = (await t.createUser('ada')).apiKey;
  });
  afterAll(() => t.close());

  async function newList(): Promise<number> {
    return (await t.api('POST', '/api/v1/lists', { key, body: { name: 'files' } })).body.id;
  }

  async function upload(listId: number, body: Buffer, contentType: string): Promise<{ status: number; body: any }> {
    const res = await fetch(`${t.url}/api/v1/lists/${listId}/contacts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': contentType },
      body: new Uint8Array(body),
    });
    return { status: res.status, body: await res.json() };
  }

  const contactsOf = (listId: number) =>
    t.mp.ctx.db.query<ContactRow>('SELECT email, name, attributes FROM contacts WHERE list_id = $1 ORDER BY id', [listId]);

  const cp1252 = (text: string) => Buffer.from(text.replace(/ü/g, '\xfc').replace(/é/g, '\xe9').replace(/€/g, '\x80'), 'latin1');

  it('reads windows-1252 when the charset says so, and names no warning', async () => {
    const listId = await newList();
    const res = await upload(listId, cp1252('email,name,price\njurgen@example.com,Jürgen,5 €\n'), 'text/csv; charset=windows-1252');
    expect(res).toEqual({ status: 200, body: { added: 1, updated: 0, duplicates: 0, invalid: [], invalidCount: 0, warnings: [] } });
    expect(await contactsOf(listId)).toEqual([{ email: 'jurgen@example.com', name: 'Jürgen', attributes: { price: '5 €' } }]);
  });

  it('reads ISO-8859-15 (€ at 0xA4) and ISO-8859-1 as declared', async () => {
    const listId = await newList();
    const latin9 = Buffer.concat([Buffer.from('email,name,price\nrene@example.com,Ren', 'latin1'), Buffer.from([0xe9, 0x2c, 0x39, 0x20, 0xa4, 0x0a])]);
    expect((await upload(listId, latin9, 'text/csv; charset=ISO-8859-15')).status).toBe(200);
    const latin1 = Buffer.from('email,name\nzoe@example.com,Zo\xeb\n', 'latin1');
    expect((await upload(listId, latin1, 'text/csv; charset="iso-8859-1"')).status).toBe(200);
    expect(await contactsOf(listId)).toEqual([
      { email: 'rene@example.com', name: 'René', attributes: { price: '9 €' } },
      { email: 'zoe@example.com', name: 'Zoë', attributes: {} },
    ]);
  });

  it('reads an undeclared file that is not UTF-8 as windows-1252 and says so', async () => {
    const listId = await newList();
    const res = await upload(listId, cp1252('email,name\nann@example.com,Ann\njurgen@example.com,Jürgen\n'), 'text/csv');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ added: 2, invalidCount: 0 });
    expect(res.body.warnings).toEqual([
      'the file is not valid UTF-8 and declares no charset (from line 3); it was read as windows-1252. Send Content-Type: text/csv; charset=... to choose',
    ]);
    expect((await contactsOf(listId)).map((c) => c.name)).toEqual(['Ann', 'Jürgen']);
  });

  it('refuses, naming the line, bytes that are no UTF-8 in a file declared or shown to be UTF-8', async () => {
    const listId = await newList();
    const declared = await upload(listId, cp1252('email,name\nann@example.com,Ann\njurgen@example.com,Jürgen\n'), 'text/csv; charset=utf-8');
    expect(declared).toMatchObject({ status: 400, body: { error: { code: 'invalid_encoding' } } });
    expect(declared.body.error.message).toMatch(/^line 3 of the file is not valid UTF-8/);
    // Valid UTF-8 first (é), windows-1252 later: no single reading fits, so nothing is guessed.
    const mixed = Buffer.concat([Buffer.from('email,name\nrene@example.com,René\n', 'utf8'), cp1252('jurgen@example.com,Jürgen\n')]);
    const res = await upload(listId, mixed, 'text/csv');
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'invalid_encoding' } } });
    expect(res.body.error.message).toMatch(/^line 3 of the file is not valid UTF-8/);
    expect((await contactsOf(listId)).map((c) => c.name)).not.toContain('J\uFFFDrgen');
  });

  it('reads UTF-16 with a byte order mark, little- and big-endian, declared or not', async () => {
    const listId = await newList();
    const text = 'email\tname\njurgen@example.com\tJürgen\n';
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    const be = Buffer.from(le);
    be.swap16();
    expect((await upload(listId, le, 'text/csv')).body).toMatchObject({ added: 1, warnings: [] });
    expect((await upload(listId, be, 'text/csv; charset=utf-16')).body).toMatchObject({ added: 0, updated: 1 });
    expect(await contactsOf(listId)).toEqual([{ email: 'jurgen@example.com', name: 'Jürgen', attributes: {} }]);
  });

  it('refuses a charset it cannot read with 415 before reading the file', async () => {
    const listId = await newList();
    const res = await upload(listId, Buffer.from('email\na@example.com\n'), 'text/csv; charset=klingon');
    expect(res).toMatchObject({ status: 415, body: { error: { code: 'unsupported_charset' } } });
    expect(await contactsOf(listId)).toEqual([]);
  });

  it('detects semicolons, tabs and pipes from the header row; commas inside values stay', async () => {
    const listId = await newList();
    const files: [string, string][] = [
      ['E-Mail;Name;Stadt\r\nanna@example.de;Anna;Köln, Altstadt\r\n', 'anna@example.de'],
      ['"Email Address"\t"Full Name"\tPlan\nbob@example.com\tBob, Jr.\tpro\n', 'bob@example.com'],
      ['e_mail|name|city\ncarl@example.com|Carl|Berlin\n', 'carl@example.com'],
      ['EMAIL\ndora@example.com\n', 'dora@example.com'],
    ];
    for (const [csv] of files) expect((await upload(listId, Buffer.from(csv), 'text/csv')).body, csv).toMatchObject({ added: 1, invalidCount: 0 });
    expect(await contactsOf(listId)).toEqual([
      { email: 'anna@example.de', name: 'Anna', attributes: { Stadt: 'Köln, Altstadt' } },
      { email: 'bob@example.com', name: 'Bob, Jr.', attributes: { Plan: 'pro' } },
      { email: 'carl@example.com', name: 'Carl', attributes: { city: 'Berlin' } },
      { email: 'dora@example.com', name: null, attributes: {} },
    ]);
  });

  it('refuses two columns that both mean email', async () => {
    const listId = await newList();
    const res = await upload(listId, Buffer.from('Email,E-mail\na@example.com,b@example.com\n'), 'text/csv');
    expect(res).toMatchObject({ status: 422, body: { error: { message: 'header: the column "email" appears more than once' } } });
  });

  async function workbook(rows: unknown[][], extraSheet = false): Promise<Buffer> {
    const wb = new ExcelJS.Workbook();
    const sheet = wb.addWorksheet('Contacts');
    for (const r of rows) sheet.addRow(r);
    if (extraSheet) wb.addWorksheet('Other').addRow(['email', 'name']);
    return Buffer.from(await wb.xlsx.writeBuffer());
  }

  it('imports the first sheet of an .xlsx workbook with the same header rules', async () => {
    const listId = await newList();
    const file = await workbook(
      [
        ['Name', 'E-mail Address', 'Score', 'Joined', 'VIP'],
        ['Jürgen', 'jurgen@example.com', 42, new Date('2025-01-02T00:00:00Z'), true],
        [{ richText: [{ text: 'Ann ' }, { text: 'Lee', font: { bold: true } }] }, 'ann@example.com', { formula: '1+1', result: 2 }],
        [],
        ['No address', 'not-an-address'],
      ],
      true,
    );
    const res = await upload(listId, file, XLSX_CONTENT_TYPE);
    expect(res).toEqual({
      status: 200,
      body: { added: 2, updated: 0, duplicates: 0, invalid: [{ row: 3, email: 'not-an-address', reason: 'email: not a valid email address' }], invalidCount: 1, warnings: [] },
    });
    expect(await contactsOf(listId)).toEqual([
      { email: 'jurgen@example.com', name: 'Jürgen', attributes: { Score: '42', Joined: '2025-01-02T00:00:00.000Z', VIP: 'true' } },
      { email: 'ann@example.com', name: 'Ann Lee', attributes: { Score: '2' } },
    ]);
  });

  it("refuses, with 413 and before any row, a workbook whose table of texts would not fit in a server's heap", async () => {
    const listId = await newList();
    // 400,000 distinct addresses and names: 28 MB of shared strings, past the 24 MiB cap, in a 7 MB file.
    const file = join(mkdtempSync(join(tmpdir(), 'mailpilot-xlsx-')), 'big.xlsx');
    const wb = new ExcelJS.stream.xlsx.WorkbookWriter({ filename: file, useSharedStrings: true });
    const sheet = wb.addWorksheet('Contacts');
    sheet.addRow(['email', 'name']).commit();
    for (let i = 0; i < 400_000; i++) sheet.addRow([`person${i}@example${i % 100}.com`, `Person ${i}`]).commit();
    await wb.commit();
    const res = await upload(listId, readFileSync(file), XLSX_CONTENT_TYPE);
    rmSync(file);
    expect(res).toMatchObject({ status: 413, body: { error: { code: 'file_too_large', message: expect.stringContaining('larger than 24 MiB') } } });
    expect(await contactsOf(listId)).toEqual([]);
  }, 120_000);

  it('refuses an .xlsx without an email column (listing its columns), one too wide, and one that is no workbook', async () => {
    const listId = await newList();
    const noEmail = await upload(listId, await workbook([['Name', 'City'], ['Ann', 'Paris']]), XLSX_CONTENT_TYPE);
    expect(noEmail).toMatchObject({ status: 422, body: { error: { message: expect.stringContaining('its columns are: "Name", "City"') } } });
    const wide = await upload(listId, await workbook([['email', ...Array.from({ length: 300 }, (_, i) => `c${i}`)]]), XLSX_CONTENT_TYPE);
    expect(wide).toMatchObject({ status: 422, body: { error: { message: 'header: 301 columns; a file may have at most 250' } } });
    const junk = await upload(listId, Buffer.from('email\na@example.com\n'), XLSX_CONTENT_TYPE);
    expect(junk).toMatchObject({ status: 400, body: { error: { code: 'malformed_xlsx' } } });
    expect(await contactsOf(listId)).toEqual([]);
  });
});
