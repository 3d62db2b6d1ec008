import { generateKeyPairSync } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { DKIM_DOMAIN, DKIM_SELECTOR, dkimKeyPair, verifyDkim } from './helpers/dkim.ts';
import { addAccount, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type ReceivedMessage, type SmtpPeer } from './helpers/smtpPeer.ts';

/** The path of a message's one-click unsubscribe URL, to call on the test server's own port. */
function unsubscribePath(m: ReceivedMessage): string {
  const url = /^<(.+)>$/.exec(m.headers.get('list-unsubscribe') ?? '')?.[1];
  if (!url) throw new Error('no List-Unsubscribe header');
  return new URL(url).pathname;
}

describe.each(databaseKinds)('what a campaign sends, to whom, and what the providers require (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
    peer = await startSmtpPeer();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const importCsv = (key: string, listId: number, csv: string) =>
    t.api('POST', `/api/v1/lists/${listId}/contacts`, { key, body: csv, contentType: 'text/csv' });
  const newList = async (key: string, csv: string) => {
    const list = await must(t, key, 'POST', '/api/v1/lists', { name: 'list' });
    expect((await importCsv(key, list.id, csv)).status).toBe(200);
    return list.id as number;
  };
  const suppress = (key: string, csv: string) => t.api('POST', '/api/v1/suppressions/import', { key, body: csv, contentType: 'text/csv' });
  const received = (since: number) => peer.messages.slice(since);
  const post = (path: string, init: RequestInit = {}) => fetch(t.url + path, { method: 'POST', redirect: 'manual', ...init });

  it('delivers personalised, DKIM-signed messages whose one-click unsubscribe later campaigns honour', async () => {
    const { apiKey } = await t.createUser('shop');
    const dkim = dkimKeyPair(2048);
    const serverId = await addServer(t, apiKey, peer.port);
    const account = await t.api('POST', '/api/v1/smtp-accounts', {
      key: apiKey,
      body: { serverId, email: 'news@sender.test', hourlyLimit: 0, dailyLimit: 0, dkim: { domain: DKIM_DOMAIN, selector: DKIM_SELECTOR, privateKey: dkim.privateKey } },
    });
    expect(account.status).toBe(201);
    expect(account.body.dkim).toEqual({ domain: DKIM_DOMAIN, selector: DKIM_SELECTOR });
    expect(JSON.stringify(account.body)).not.toContain('PRIVATE KEY');

    const customers = await newList(apiKey, 'email,name,city\nann@rcpt.test,Ann,Paris\nbob@rcpt.test,Bob <Jr>,Oslo\ndave@rcpt.test,Dave,Rome\n');
    const vips = await newList(apiKey, 'email,name,city\nBOB@RCPT.test,Robert,Bergen\ncarol@rcpt.test,Carol,Lyon\n');
    expect((await suppress(apiKey, 'email\nDave@RCPT.test\n')).body).toMatchObject({ added: 1, existing: 0, invalidCount: 0 });

    const campaignId = await createCampaign(t, apiKey, [customers, vips], {
      subject: 'Hello {{name}}',
      html: '<h1>Hi {{name}}</h1><p>News for {{attributes.city}} &amp; around{{attributes.missing}}</p><p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>',
      text: undefined,
    });
    const since = peer.messages.length;
    const started = await must(t, apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    // Bob is on both lists (in another case) and counts once; Dave is suppressed.
    expect(started).toMatchObject({ total: 4, suppressed: 1 });
    const done = await waitForCampaign(t, apiKey, campaignId, (c) => c.status === 'completed');
    expect(done).toMatchObject({ total: 4, sent: 3, suppressed: 1, failed: 0, pending: 0, unsubscribed: 0 });

    const messages = received(since);
    expect(messages.flatMap((m) => m.rcptTo).sort()).toEqual(['ann@rcpt.test', 'bob@rcpt.test', 'carol@rcpt.test']);
    for (const m of messages) {
      expect(m.headers.get('list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
      const { result, signedHeaders } = await verifyDkim(m.raw, dkim.txt);
      expect(result).toBe('pass');
      expect(signedHeaders).toEqual(expect.arrayContaining(['from', 'to', 'subject', 'list-unsubscribe', 'list-unsubscribe-post']));
    }
    const bob = await simpleParser(messages.find((m) => m.rcptTo[0] === 'bob@rcpt.test')!.raw);
    // The first list naming an address wins: Bob's own name and city, escaped in HTML, raw in text.
    expect(bob.subject).toBe('Hello Bob <Jr>');
    expect(bob.html).toContain('<h1>Hi Bob &lt;Jr&gt;</h1><p>News for Oslo &amp; around</p>');
    expect(bob.text).toContain('Hi Bob <Jr>');
    expect(bob.text).toContain('News for Oslo & around');
    expect(bob.text).toMatch(/Unsubscribe \[http:\/\/\S+\/u\/[\w-]+\.[\w-]+\]/);

    // A GET (a link scanner, a preview) shows a page with a button and unsubscribes nobody.
    const ann = messages.find((m) => m.rcptTo[0] === 'ann@rcpt.test')!;
    const page = await fetch(t.url + unsubscribePath(ann));
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<form method="post">[\s\S]*<button/);
    const exported = async () => (await t.api('GET', '/api/v1/suppressions/export.csv', { key: apiKey })).body as string;
    expect(await exported()).not.toContain('ann@rcpt.test');

    // Forged, altered or foreign tokens are refused and suppress nothing.
    const token = unsubscribePath(ann).slice('/u/'.length);
    const [payload, mac] = token.split('.') as [string, string];
    const otherPayload = Buffer.from(JSON.stringify([1, campaignId, 'carol@rcpt.test'])).toString('base64url');
    // The MAC altered in its second-to-last character, which always carries six bits of the MAC (one MAC in 256 ends in "AA").
    const alteredMac = `${mac.slice(0, -2)}${mac.at(-2) === 'A' ? 'B' : 'A'}${mac.at(-1)}`;
    for (const forged of [`${otherPayload}.${mac}`, `${payload}.${alteredMac}`, `${payload}x.${mac}`, payload, 'garbage']) {
      expect((await post(`/u/${forged}`)).status, forged).toBeGreaterThanOrEqual(400);
      expect((await post(`/u/${forged}`)).status, forged).toBeLessThan(500);
      expect((await fetch(`${t.url}/u/${forged}`)).status, forged).toBe(404);
    }

    // RFC 8058: a form POST with no cookie or key, answered without a redirect.
    const oneClick = { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' };
    const res = await post(unsubscribePath(ann), oneClick);
    expect(res.status).toBe(200);
    expect(res.headers.get('location')).toBeNull();
    expect((await post(unsubscribePath(ann), oneClick)).status).toBe(200);
    const csv = await exported();
    expect(csv).toMatch(/^email,reason,created_at\r\n/);
    expect(csv).toContain('ann@rcpt.test,unsubscribed,2026-03-02T10:00:00.000Z\r\n');
    expect(csv).not.toContain('carol@rcpt.test');
    expect(await must(t, apiKey, 'GET', `/api/v1/campaigns/${campaignId}`)).toMatchObject({ unsubscribed: 1 });

    // The next campaign, after the list is imported again, skips both suppressed addresses.
    await importCsv(apiKey, customers, 'email,name\nANN@rcpt.test,Ann Again\n');
    const next = await createCampaign(t, apiKey, [customers]);
    const sinceNext = peer.messages.length;
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${next}/start`);
    expect(await waitForCampaign(t, apiKey, next, (c) => c.status === 'completed')).toMatchObject({ total: 3, sent: 1, suppressed: 2 });
    expect(received(sinceNext).flatMap((m) => m.rcptTo)).toEqual(['bob@rcpt.test']);
  });

  it('honours an unsubscribe that arrives while the campaign is sending', async () => {
    const { apiKey } = await t.createUser('midway');
    const serverId = await addServer(t, apiKey, peer.port);
    await addAccount(t, apiKey, serverId, 'midway@sender.test', { hourlyLimit: 2 });
    const rows = ['email', ...Array.from({ length: 5 }, (_, i) => `m${i}@midway.test`)].join('\n');
    const listId = await newList(apiKey, rows);
    const id = await createCampaign(t, apiKey, [listId]);
    const since = peer.messages.length;
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitForCampaign(t, apiKey, id, (c) => c.status === 'paused_limits' && c.sent === 2);
    await waitForIdleEngine(t);
    const first = new Set(received(since).flatMap((m) => m.rcptTo));
    const waiting = ['m0', 'm1', 'm2', 'm3', 'm4'].map((l) => `${l}@midway.test`).find((e) => !first.has(e))!;

    expect((await suppress(apiKey, `email,reason\n${waiting.toUpperCase()},complaint\n`)).status).toBe(200);
    // The next hour's quota (2) sends the two others left; the suppressed address is skipped.
    clock.advance(60 * 60 * 1000);
    const done = await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    expect(done).toMatchObject({ total: 5, sent: 4, suppressed: 1, pending: 0 });
    const recipients = received(since).flatMap((m) => m.rcptTo);
    expect(recipients).toHaveLength(4);
    expect(recipients).not.toContain(waiting);
    const suppressedRows = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}/messages?status=suppressed`);
    expect(suppressedRows.items.map((m: { email: string }) => m.email)).toEqual([waiting]);
  });

  it('previews a campaign for one contact and sends one test message through a chosen account', async () => {
    const { apiKey } = await t.createUser('tester');
    const dkim = dkimKeyPair(1024);
    const serverId = await addServer(t, apiKey, peer.port);
    const accountId = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', {
      serverId,
      email: 'tests@sender.test',
      hourlyLimit: 10,
      dailyLimit: 0,
      dkim: { domain: DKIM_DOMAIN, selector: DKIM_SELECTOR, privateKey: dkim.privateKey },
    }).then((a) => a.id as number);
    const listId = await newList(apiKey, 'email,name,plan\nzed@rcpt.test,Zed,gold\namy@rcpt.test,Amy <3,silver\n');
    const id = await createCampaign(t, apiKey, [listId], {
      subject: '{{name}}, your {{attributes.plan}} plan',
      html: '<p>Dear {{name}}</p><p>{{attributes.plan}}</p>',
      text: 'Dear {{name}} ({{email}})',
    });

    const amy = await t.api('POST', `/api/v1/campaigns/${id}/preview`, { key: apiKey, body: { email: 'AMY@rcpt.test' } });
    expect(amy.status).toBe(200);
    expect(amy.body).toEqual({
      to: { email: 'amy@rcpt.test', name: 'Amy <3' },
      subject: 'Amy <3, your silver plan',
      html: '<p>Dear Amy &lt;3</p><p>silver</p>',
      text: 'Dear Amy <3 (amy@rcpt.test)',
    });
    // Without an address: the first contact of the first list (in address order).
    expect((await t.api('POST', `/api/v1/campaigns/${id}/preview`, { key: apiKey })).body.to.email).toBe('amy@rcpt.test');
    const adHoc = await t.api('POST', `/api/v1/campaigns/${id}/preview`, { key: apiKey, body: { contact: { email: 'x@y.test', attributes: { plan: 'trial' } } } });
    expect(adHoc.body).toMatchObject({ subject: ', your trial plan', text: 'Dear  (x@y.test)' });
    expect((await t.api('POST', `/api/v1/campaigns/${id}/preview`, { key: apiKey, body: { email: 'nobody@rcpt.test' } })).status).toBe(422);

    const since = peer.messages.length;
    const sent = await t.api('POST', `/api/v1/campaigns/${id}/test`, { key: apiKey, body: { email: 'zed@rcpt.test', accountId } });
    expect(sent).toMatchObject({ status: 200, body: { sent: true, email: 'zed@rcpt.test', accountId } });
    const [message] = received(since);
    expect(message!.rcptTo).toEqual(['zed@rcpt.test']);
    expect(message!.mailFrom).toBe('tests@sender.test');
    expect((await verifyDkim(message!.raw, dkim.txt)).result).toBe('pass');
    expect((await simpleParser(message!.raw)).subject).toBe('Zed, your gold plan');
    const usage = (await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${accountId}`)).usage;
    expect(usage.sentThisHour).toBe(1);
    // A test send never touches the campaign.
    expect(await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`)).toMatchObject({ status: 'draft', total: 0, sent: 0 });

    const stranger = await t.createUser('stranger');
    expect((await t.api('POST', `/api/v1/campaigns/${id}/test`, { key: stranger.apiKey, body: { email: 'a@b.test', accountId } })).status).toBe(404);
    const otherId = await createCampaign(t, stranger.apiKey, [await newList(stranger.apiKey, 'email\na@b.test\n')]);
    const foreign = await t.api('POST', `/api/v1/campaigns/${otherId}/test`, { key: stranger.apiKey, body: { email: 'a@b.test', accountId } });
    expect(foreign).toMatchObject({ status: 422, body: { error: { message: 'accountId: no such SMTP account' } } });
    expect(received(since)).toHaveLength(1);
  });

  it('refuses DKIM keys that cannot sign, and never returns the key', async () => {
    const { apiKey } = await t.createUser('keys');
    const serverId = await addServer(t, apiKey, peer.port);
    const base = { serverId, email: 'k@sender.test', hourlyLimit: 0, dailyLimit: 0 };
    const weak = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const good = dkimKeyPair(1024).privateKey;
    for (const [dkim, message] of [
      [{ domain: DKIM_DOMAIN, selector: DKIM_SELECTOR, privateKey: 'not a key' }, /^dkim\.privateKey: must be a PEM-encoded private key/],
      [{ domain: DKIM_DOMAIN, selector: DKIM_SELECTOR, privateKey: weak }, /^dkim\.privateKey: must be an RSA key of 1024/],
      [{ domain: DKIM_DOMAIN, selector: DKIM_SELECTOR, privateKey: ec }, /^dkim\.privateKey: must be an RSA key/],
      [{ domain: 'not a domain', selector: DKIM_SELECTOR, privateKey: good }, /^dkim\.domain: /],
      [{ domain: DKIM_DOMAIN, selector: 'bad_selector', privateKey: good }, /^dkim\.selector: /],
      [{ domain: DKIM_DOMAIN, privateKey: good }, /^dkim\.selector: /],
    ] as const) {
      const res = await t.api('POST', '/api/v1/smtp-accounts', { key: apiKey, body: { ...base, dkim } });
      expect(res.status, JSON.stringify(dkim).slice(0, 80)).toBe(422);
      expect(res.body.error.message).toMatch(message);
    }
    const created = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', base);
    expect(created.dkim).toBeUndefined();
    const patched = await t.api('PATCH', `/api/v1/smtp-accounts/${created.id}`, {
      key: apiKey,
      body: { dkim: { domain: 'Example.COM', selector: 's1', privateKey: good } },
    });
    expect(patched.body.dkim).toEqual({ domain: 'example.com', selector: 's1' });
    const [row] = await t.mp.ctx.db.query<{ dkim_key_enc: string }>('SELECT dkim_key_enc FROM smtp_accounts WHERE id = $1', [created.id]);
    expect(row!.dkim_key_enc).toMatch(/^v1:/);
    expect(row!.dkim_key_enc).not.toContain('PRIVATE');
    const listed = await t.api('GET', '/api/v1/smtp-accounts', { key: apiKey });
    expect(JSON.stringify(listed.body)).not.toContain('PRIVATE KEY');
    const cleared = await t.api('PATCH', `/api/v1/smtp-accounts/${created.id}`, { key: apiKey, body: { dkim: null } });
    expect(cleared.body.dkim).toBeUndefined();
  });
});
