import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { ensureDovecot, startDovecot, type Dovecot } from './helpers/dovecot.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { arf, autoReply, deliverReport, dsn, humanReply, qmailBounce } from './helpers/reports.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const dovecotPath = ensureDovecot();
const BOUNCE_DOMAIN = 'bounces.shop.test';

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!dovecotPath).each(databaseKinds)('bounces, complaints and replies read from the account mailbox over IMAP (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  let dovecot: Dovecot;
  let key: string;
  let accountId: number;
  let serverId: number;
  let campaignId: number;
  const sent = new Map<string, { mailFrom: string; messageId: string }>();
  let other: { key: string; campaignId: number; messageId: string };

  const campaign = () => must(t, key, 'GET', `/api/v1/campaigns/${campaignId}`);
  const messages = async () => (await must(t, key, 'GET', `/api/v1/campaigns/${campaignId}/messages?limit=100`)).items as any[];
  const message = async (email: string) => (await messages()).find((m) => m.email === email);
  const suppressions = async (k: string) => (await must(t, k, 'GET', '/api/v1/suppressions?limit=100')).items as any[];
  const original = (email: string) => ({ messageId: sent.get(email)!.messageId, to: email, returnPath: sent.get(email)!.mailFrom });
  const append = (raw: string) => dovecot.append('box', raw, t.clock.now());
  const account = (id = accountId) => must(t, key, 'GET', `/api/v1/smtp-accounts/${id}`);
  const imapOf = (password: string) => ({ host: dovecot.host, port: dovecot.port, security: 'none', username: 'box', password });

  beforeAll(async () => {
    dovecot = await startDovecot(dovecotPath!, { box: 'box-secret' });
    t = await startTestMailPilot(kind, { config: { inbound: { host: '127.0.0.1', port: 0 } } });
    peer = await startSmtpPeer();
    key = (await t.createUser('shop')).apiKey;
    serverId = await addServer(t, key, peer.port);
    const created = await must(t, key, 'POST', '/api/v1/smtp-accounts', {
      serverId,
      email: 'news@shop.test',
      hourlyLimit: 0,
      dailyLimit: 0,
      bounceDomain: BOUNCE_DOMAIN,
      imap: imapOf('box-secret'),
    });
    accountId = created.id;
    campaignId = await createCampaign(t, key, [await addList(t, key, 10)]);
    await must(t, key, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    await waitForCampaign(t, key, campaignId, (c) => c.status === 'completed');
    for (const m of peer.messages) sent.set(m.rcptTo[0]!, { mailFrom: m.mailFrom, messageId: m.headers.get('message-id')! });

    const otherKey = (await t.createUser('other')).apiKey;
    await addAccount(t, otherKey, await addServer(t, otherKey, peer.port), 'hello@other.test');
    const otherCampaign = await createCampaign(t, otherKey, [await addList(t, otherKey, 1, 'other.test', 'o')]);
    await must(t, otherKey, 'POST', `/api/v1/campaigns/${otherCampaign}/start`);
    await waitForCampaign(t, otherKey, otherCampaign, (c) => c.status === 'completed');
    const o = peer.messages.find((m) => m.rcptTo[0] === 'o0@other.test')!;
    other = { key: otherKey, campaignId: otherCampaign, messageId: o.headers.get('message-id')! };
  });
  afterAll(async () => {
    await t?.close();
    await peer?.close();
    await dovecot?.stop();
  });

  it('shows the mailbox on the account, never its password, and reads it (status ok)', async () => {
    const a = await until('the mailbox to be read', async () => {
      const a = await account();
      return a.imap?.status.state === 'ok' && a;
    });
    expect(a.imap).toEqual({
      host: '127.0.0.1',
      port: dovecot.port,
      security: 'none',
      username: 'box',
      mailbox: 'INBOX',
      hasPassword: true,
      status: { state: 'ok', checkedAt: expect.any(String) },
    });
    expect(JSON.stringify(a)).not.toContain('box-secret');
    expect(a.bounceDomain).toBe(BOUNCE_DOMAIN);
    expect(a.health).toEqual({ state: 'healthy' });
  });

  it('applies every kind of report that lands in the mailbox, and nothing else', async () => {
    const ours = 'news@shop.test';
    await append(dsn({ ...original('r0@rcpt.test'), returnPath: undefined }, { to: ours }));
    await append(arf(original('r1@rcpt.test'), { to: 'fbl@shop.test' }));
    await append(autoReply(original('r2@rcpt.test'), { to: ours, style: 'rfc3834' }));
    await append(autoReply(original('r2@rcpt.test'), { to: ours, style: 'subject' }));
    await append(humanReply(original('r3@rcpt.test'), { to: ours }));
    await append(qmailBounce(original('r4@rcpt.test'), { to: ours }));
    await append(dsn(original('r5@rcpt.test'), { to: ours, action: 'delayed', status: '4.4.7', diagnostic: 'retry timeout exceeded' }));
    // Bad input: a forged Message-ID, another user's message, an unrelated mail, garbage, a huge message.
    const forged = sent.get('r6@rcpt.test')!.messageId.replace(/\.([A-Za-z0-9_-]{10})@/, '.AAAAAAAAAA@');
    await append(dsn({ messageId: forged, to: 'r6@rcpt.test' }, { to: ours }));
    await append(dsn({ messageId: other.messageId, to: 'o0@other.test' }, { to: ours }));
    await append('From: friend@pals.test\r\nTo: news@shop.test\r\nSubject: lunch?\r\nMessage-ID: <x1@pals.test>\r\n\r\nLunch tomorrow?\r\n');
    await append('\u0000\u0001 not a message at all');
    await append(`From: big@pals.test\r\nSubject: huge\r\n\r\n${'z'.repeat(3 * 1024 * 1024)}\r\n`);

    const c = await until('the reports to be applied', async () => {
      const c = await campaign();
      return c.bounced === 2 && c.complained === 1 && c.replied === 1 && c.softBounced === 1 && c;
    });
    expect(c).toMatchObject({ total: 10, sent: 8, failed: 2, bounced: 2, softBounced: 1, complained: 1, replied: 1, status: 'completed' });
    expect(await message('r0@rcpt.test')).toMatchObject({ status: 'failed', bounce: { type: 'hard', status: '5.1.1' } });
    expect(await message('r4@rcpt.test')).toMatchObject({ status: 'failed', bounce: { type: 'hard', status: '5.1.1' } });
    expect(await message('r5@rcpt.test')).toMatchObject({ status: 'sent', bounce: { type: 'soft', status: '4.4.7', diagnostic: 'retry timeout exceeded' } });
    expect((await message('r1@rcpt.test')).complainedAt).not.toBeNull();
    expect((await message('r2@rcpt.test')).repliedAt).toBeNull();
    expect((await message('r3@rcpt.test')).repliedAt).not.toBeNull();
    expect(await message('r6@rcpt.test')).toMatchObject({ status: 'sent', bounce: null });
    const reasons = Object.fromEntries((await suppressions(key)).map((s) => [s.email, s.reason]));
    expect(reasons).toEqual({ 'r0@rcpt.test': 'bounce', 'r4@rcpt.test': 'bounce', 'r1@rcpt.test': 'complaint' });
    expect(await must(t, other.key, 'GET', `/api/v1/campaigns/${other.campaignId}`)).toMatchObject({ sent: 1, failed: 0, bounced: 0 });
    expect(await suppressions(other.key)).toEqual([]);
    // Read-only: nothing in the user's mailbox was changed or marked read.
    expect((await dovecot.flags('box')).flat()).toEqual([]);
  });

  it('bounces arriving by IMAP and by the inbound port end in the right counters and suppressions', async () => {
    const port = t.mp.inbound!.port;
    const via = async (to: string, raw: string) => expect(await deliverReport(port, to, raw)).toEqual({ ok: true });
    await via(sent.get('r7@rcpt.test')!.mailFrom, dsn(original('r7@rcpt.test'), { to: sent.get('r7@rcpt.test')!.mailFrom }));
    await append(dsn(original('r8@rcpt.test'), { to: 'news@shop.test' }));
    // The same bounce both ways counts once.
    await via(sent.get('r8@rcpt.test')!.mailFrom, dsn(original('r8@rcpt.test'), { to: sent.get('r8@rcpt.test')!.mailFrom }));
    await append(dsn(original('r7@rcpt.test'), { to: 'news@shop.test' }));
    const c = await until('both bounces', async () => {
      const c = await campaign();
      return c.bounced === 4 && c;
    });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await campaign()).toMatchObject({ total: 10, sent: 6, failed: 4, bounced: 4, complained: 1, replied: 1, pending: 0 });
    expect(c.sent + c.failed + c.suppressed + c.cancelled).toBe(c.total);
    const reasons = Object.fromEntries((await suppressions(key)).map((s) => [s.email, s.reason]));
    expect(reasons).toMatchObject({ 'r7@rcpt.test': 'bounce', 'r8@rcpt.test': 'bounce' });
    expect(Object.keys(reasons)).toHaveLength(5);
    // A suppressed address is not sent to again.
    const again = await createCampaign(t, key, [(await must(t, key, 'GET', '/api/v1/lists')).items[0].id]);
    await must(t, key, 'POST', `/api/v1/campaigns/${again}/start`);
    expect(await waitForCampaign(t, key, again, (x) => x.status === 'completed')).toMatchObject({ total: 10, suppressed: 5, sent: 5 });
  });

  it('shows refused credentials and an unreachable server on the mailbox status, never on the SMTP health', async () => {
    const wrong = await must(t, key, 'POST', '/api/v1/smtp-accounts', {
      serverId,
      email: 'sales@shop.test',
      hourlyLimit: 0,
      dailyLimit: 0,
      imap: imapOf('not-the-password'),
    });
    const refused = await until('refused credentials to show', async () => {
      const a = await account(wrong.id);
      return a.imap?.status.state === 'auth_failed' && a;
    });
    expect(refused.imap.status.reason).toBe('the IMAP server refused the username or password');
    expect(refused.health).toEqual({ state: 'healthy' });

    await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${wrong.id}`, { imap: { ...imapOf('x'), port: 1 } });
    const unreachable = await until('the unreachable server to show', async () => {
      const a = await account(wrong.id);
      return a.imap?.status.state === 'failing' && a;
    });
    expect(unreachable.imap.status.reason).toMatch(/^could not connect to the IMAP server/);
    expect(unreachable.health).toEqual({ state: 'healthy' });

    // Fixed settings are used at once; removing them stops the reading.
    await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${wrong.id}`, { imap: imapOf('box-secret') });
    await until('the fixed mailbox to be read', async () => (await account(wrong.id)).imap?.status.state === 'ok');
    const removed = await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${wrong.id}`, { imap: null });
    expect(removed.imap).toBeUndefined();
    await until('the reader to stop', async () => t.mp.mailboxes!.reader(wrong.id) === undefined);
  });

  it('validates the settings, and keeps them from other users', async () => {
    const bad = [
      { imap: { ...imapOf('p'), host: 'bad host' } },
      { imap: { ...imapOf('p'), port: 0 } },
      { imap: { ...imapOf('p'), security: 'ssl' } },
      { imap: { ...imapOf('p'), mailbox: 'IN\r\nBOX' } },
      { imap: { ...imapOf('p'), extra: 1 } },
      { bounceDomain: 'not a domain' },
    ];
    for (const body of bad) {
      const res = await t.api('PATCH', `/api/v1/smtp-accounts/${accountId}`, { key, body });
      expect(res.status, JSON.stringify(body)).toBe(422);
    }
    expect((await t.api('GET', `/api/v1/smtp-accounts/${accountId}`, { key: other.key })).status).toBe(404);
    expect((await t.api('PATCH', `/api/v1/smtp-accounts/${accountId}`, { key: other.key, body: { imap: null } })).status).toBe(404);
    expect((await account()).imap.status.state).toBe('ok');
  });
});
