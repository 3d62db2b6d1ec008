import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csvField } from '../src/campaigns/csvWriter.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

describe.each(databaseKinds)('campaign reports: per-account share and outcome export (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  beforeAll(async () => {
    t = await startTestMailPilot(kind);
    peer = await startSmtpPeer({
      onRcpt: (address) => (/^r\d*3@/.test(address) ? { code: 550, message: '5.1.1 <' + address + '>: Recipient address rejected' } : undefined),
    });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  it('splits sends over the accounts that made them and exports every recipient with its SMTP reply', async () => {
    const { apiKey } = await t.createUser('reporter');
    // One recipient in ten bounces here; the rate guard would pause both accounts (rateGuard.test.ts proves it).
    await must(t, apiKey, 'PATCH', '/api/v1/me', { rateGuard: { hardBounces: null } });
    const serverId = await addServer(t, apiKey, peer.port);
    const accounts = [await addAccount(t, apiKey, serverId, 'one@report.test'), await addAccount(t, apiKey, serverId, 'two@report.test')];
    const listId = await addList(t, apiKey, 300);
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const done = await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 270, failed: 30 });

    const share = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}/accounts`);
    expect(share.next).toBeNull();
    expect(share.items.map((s: any) => s.accountId).sort()).toEqual([...accounts].sort());
    expect(share.items.reduce((n: number, s: any) => n + s.sent, 0)).toBe(done.sent);
    expect(share.items.reduce((n: number, s: any) => n + s.failed, 0)).toBe(done.failed);
    for (const s of share.items) {
      const received = peer.messages.filter((m) => m.mailFrom === s.email).length;
      expect(s.sent).toBe(received);
    }

    const res = await fetch(`${t.url}/api/v1/campaigns/${id}/messages.csv`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(res.headers.get('content-disposition')).toContain(`campaign-${id}-outcomes.csv`);
    const rows: Record<string, string>[] = parse(await res.text(), { columns: true });
    expect(rows).toHaveLength(300);
    expect(new Set(rows.map((r) => r.email)).size).toBe(300);
    const failed = rows.filter((r) => r.status === 'failed');
    expect(failed).toHaveLength(30);
    for (const r of failed) expect(r.lastError).toBe(`550 5.1.1 <${r.email}>: Recipient address rejected`);
    const sent = rows.find((r) => r.email === 'r0@rcpt.test')!;
    expect(sent).toMatchObject({ status: 'sent', attempts: '1', lastError: '' });
    expect(['one@report.test', 'two@report.test']).toContain(sent.accountEmail);
    expect(new Date(sent.sentAt!).toISOString()).toBe(sent.sentAt);
  });

  it('shows another user nothing', async () => {
    const owner = await t.createUser('owner');
    const other = await t.createUser('other');
    const listId = await addList(t, owner.apiKey, 1, 'private.test');
    const id = await createCampaign(t, owner.apiKey, [listId]);
    for (const path of [`/api/v1/campaigns/${id}/accounts`, `/api/v1/campaigns/${id}/messages.csv`]) {
      const res = await t.api('GET', path, { key: other.apiKey });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
      expect((await t.api('GET', path, { key: t.adminKey })).status).toBe(403);
    }
  });
});

describe('CSV fields', () => {
  it('quotes separators and defuses spreadsheet formulas', () => {
    expect(csvField('plain@example.test')).toBe('plain@example.test');
    expect(csvField('451 4.3.0 "busy", try later')).toBe('"451 4.3.0 ""busy"", try later"');
    expect(csvField('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField(null)).toBe('');
    expect(csvField(new Date('2026-03-02T10:00:00Z'))).toBe('2026-03-02T10:00:00.000Z');
  });
});
