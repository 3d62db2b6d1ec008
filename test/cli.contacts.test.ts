import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ExcelJS from 'exceljs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.ts';
import { databaseKinds } from './helpers/db.ts';
import { startDnsServer, type DnsServer } from './helpers/dnsServer.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

/** The contact commands, run as a user would: spreadsheet and windows-1252 imports, find, delete, export, erase. */
describe.each(databaseKinds)('mailpilot contacts and lists (%s)', (kind) => {
  let t: TestMailPilot;
  let dns: DnsServer;
  let dir: string;
  beforeAll(async () => {
    // --verify asks DNS: a server on loopback, never the internet.
    dns = await startDnsServer();
    dns.setMx('cli.test', ['mx.cli.test']);
    t = await startTestMailPilot(kind, { engine: false, config: { dnsServers: [dns.address] } });
    dir = mkdtempSync(join(tmpdir(), 'mailpilot-cli-contacts-'));
  });
  afterAll(async () => {
    await t.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports .xlsx and windows-1252 files, finds, shows, deletes, exports and erases contacts, and deletes a list', async () => {
    const { apiKey } = await t.createUser();
    const env = { MAILPILOT_URL: t.url, MAILPILOT_API_KEY: apiKey };
    const cli = async (...args: string[]) => {
      const res = await runCli([...args, '--json'], { env });
      expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(0);
      return res.stdout === '' ? undefined : JSON.parse(res.stdout);
    };

    const wb = new ExcelJS.Workbook();
    wb.addWorksheet('People').addRows([
      ['E-mail', 'Name'],
      ['ann@cli.test', 'Ann'],
    ]);
    const xlsx = join(dir, 'people.xlsx');
    await wb.xlsx.writeFile(xlsx);
    const fromSheet = await cli('lists', 'import', xlsx);
    expect(fromSheet).toMatchObject({ added: 1, invalidCount: 0 });
    expect(await must(t, apiKey, 'GET', `/api/v1/lists/${fromSheet.listId}`)).toMatchObject({ name: 'people', contactCount: 1 });

    const csv = join(dir, 'export.csv');
    writeFileSync(csv, Buffer.from('Email;Name\nann@cli.test;J\xfcrgen\n', 'latin1'));
    const declared = await cli('lists', 'import', csv, '--charset', 'windows-1252', '--verify');
    expect(declared).toMatchObject({ added: 1, warnings: [] });
    const guessed = await runCli(['lists', 'import', csv, '--list', String(declared.listId)], { env });
    expect(guessed.stdout).toContain('warning: the file is not valid UTF-8 and declares no charset');

    const found = await cli('contacts', 'find', 'ANN@cli.test');
    expect(found.items.map((c: any) => [c.listId, c.name])).toEqual([
      [fromSheet.listId, 'Ann'],
      [declared.listId, 'Jürgen'],
    ]);
    expect(found.items[1].verification).toMatchObject({ status: 'deliverable', checks: { domain: 'mx' } });
    const human = await runCli(['contacts', 'find', 'ann@cli.test'], { env });
    expect(human.stdout).toContain(`list ${declared.listId} (export)\tann@cli.test\tJürgen`);
    expect((await cli('contacts', 'show', String(fromSheet.listId), String(found.items[0].id))).name).toBe('Ann');

    expect(await cli('contacts', 'delete', String(fromSheet.listId), String(found.items[0].id))).toEqual({ id: found.items[0].id, deleted: true });
    expect((await cli('contacts', 'find', 'ann@cli.test')).items).toHaveLength(1);
    expect((await cli('contacts', 'export', 'ann@cli.test')).contacts).toHaveLength(1);
    expect(await cli('contacts', 'erase', 'ann@cli.test')).toMatchObject({ erasedContacts: 1, suppressed: true });
    expect(await cli('contacts', 'export', 'ann@cli.test')).toMatchObject({ contacts: [], messages: [], suppression: { reason: 'erased' } });

    expect(await cli('lists', 'verify', String(fromSheet.listId))).toEqual({ verified: 0, deliverable: 0, undeliverable: 0, risky: 0, unknown: 0 });
    await must(t, apiKey, 'POST', `/api/v1/lists/${fromSheet.listId}/contacts`, { contacts: [{ email: 'cat@cli.test' }, { email: 'dog@gone.test' }] });
    expect(await cli('lists', 'verify', String(fromSheet.listId))).toEqual({ verified: 2, deliverable: 1, undeliverable: 1, risky: 0, unknown: 0 });
    expect(await cli('lists', 'delete', String(fromSheet.listId))).toEqual({ id: fromSheet.listId, deleted: true });
    const again = await runCli(['lists', 'delete', String(fromSheet.listId)], { env });
    expect(again).toMatchObject({ code: 5, stderr: expect.stringContaining('list not found') });
  });
});
