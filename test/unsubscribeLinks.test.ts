import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unsubscribeToken } from '../src/campaigns/unsubscribe.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/** The longest valid address (RFC 5321 §4.5.3.1.3): a 64-character local part and a 189-character domain (254 in all). */
const LONGEST_ADDRESS = `${'l'.repeat(64)}@${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(56)}.test`;
const PAGE_HEADERS = {
  'content-security-policy': expect.stringMatching(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$/),
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};
const pageHeaders = (res: Response) => Object.fromEntries(Object.keys(PAGE_HEADERS).map((h) => [h, res.headers.get(h)]));

describe.each(databaseKinds)('one-click unsubscribe links work for every valid address (%s)', (kind) => {
  const currentKey = randomBytes(32);
  const previousKey = randomBytes(32);
  let t: TestMailPilot;
  let peer: SmtpPeer;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { config: { secretKey: currentKey.toString('hex'), previousSecretKeys: [previousKey.toString('hex')] } });
    peer = await startSmtpPeer({ lenientAddresses: true });
    // Ids near the top of their range make the longest tokens.
    await t.mp.ctx.db.query(`SELECT setval('users_id_seq', 2147483000), setval('campaigns_id_seq', 2147483600)`);
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const get = (path: string) => fetch(t.url + path, { redirect: 'manual' });
  const post = (path: string) =>
    fetch(t.url + path, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
  const suppressed = async (key: string) => (await must(t, key, 'GET', '/api/v1/suppressions')).items.map((s: { email: string }) => s.email);

  it('unsubscribes the longest address through the link its message carries, by GET page and by POST', async () => {
    expect(LONGEST_ADDRESS).toHaveLength(254);
    const { apiKey } = await t.createUser('longest');
    await addAccount(t, apiKey, await addServer(t, apiKey, peer.port), 'news@sender.test');
    const list = await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'long' });
    await must(t, apiKey, 'POST', `/api/v1/lists/${list.id}/contacts`, { contacts: [{ email: LONGEST_ADDRESS }] });
    const id = await createCampaign(t, apiKey, [list.id]);
    expect(id).toBeGreaterThan(2_147_483_600);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed', 30_000);

    const message = peer.messages.find((m) => m.rcptTo.includes(LONGEST_ADDRESS))!;
    for (const line of message.raw.split('\r\n\r\n')[0]!.split('\r\n')) expect(line.length).toBeLessThanOrEqual(998);
    const link = new URL(/^<(.+)>$/.exec(message.headers.get('list-unsubscribe')!.replace(/\s+/g, ''))![1]!);
    expect(link.pathname.length).toBeGreaterThan(350);

    const page = await get(link.pathname);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(LONGEST_ADDRESS);
    expect(pageHeaders(page)).toEqual(PAGE_HEADERS);
    expect(await suppressed(apiKey)).toEqual([]);

    const done = await post(link.pathname);
    expect(done.status).toBe(200);
    expect(pageHeaders(done)).toEqual(PAGE_HEADERS);
    expect(await suppressed(apiKey)).toEqual([LONGEST_ADDRESS]);
    expect((await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`)).unsubscribed).toBe(1);
  });

  it('accepts a link signed with a previous secret key on GET as on POST', async () => {
    const user = await t.createUser('rotated');
    const token = unsubscribeToken(previousKey, { userId: user.id, campaignId: 2_147_483_647, email: 'old@rcpt.test' });
    const page = await get(`/u/${token}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('old@rcpt.test');
    expect((await post(`/u/${token}`)).status).toBe(200);
    expect(await suppressed(user.apiKey)).toEqual(['old@rcpt.test']);

    const forged = unsubscribeToken(randomBytes(32), { userId: user.id, campaignId: 1, email: 'forged@rcpt.test' });
    const refused = await get(`/u/${forged}`);
    expect(refused.status).toBe(404);
    expect(pageHeaders(refused)).toEqual(PAGE_HEADERS);
    const refusedPost = await post(`/u/${forged}`);
    expect(refusedPost.status).toBe(404);
    expect(pageHeaders(refusedPost)).toEqual(PAGE_HEADERS);
    expect(await suppressed(user.apiKey)).toEqual(['old@rcpt.test']);
  });
});
