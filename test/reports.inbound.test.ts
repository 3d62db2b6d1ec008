import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, MAX_SESSIONS } from '../src/reports/inboundSmtp.ts';
import { readVerpAddress } from '../src/reports/verp.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { parsePrometheus, sumOf } from './helpers/prometheus.ts';
import { arf, autoReply, deliverReport as deliver, dsn, humanReply } from './helpers/reports.ts';
import { startSmtpPeer, type PeerScript, type SmtpPeer } from './helpers/smtpPeer.ts';

const BOUNCE_DOMAIN = 'bounces.shop.test';

/** Reads SMTP replies off a raw socket, line by line. */
function rawSession(port: number): Promise<{ socket: Socket; next(): Promise<string>; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buffer = '';
    const waiting: ((line: string) => void)[] = [];
    const lines: string[] = [];
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (d) => {
      buffer += d.toString();
      for (let i = buffer.indexOf('\r\n'); i >= 0; i = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const w = waiting.shift();
        if (w) w(line);
        else lines.push(line);
      }
    });
    socket.on('error', () => undefined);
    socket.once('connect', () =>
      resolve({ socket, closed, next: () => (lines.length > 0 ? Promise.resolve(lines.shift()!) : new Promise((r) => waiting.push(r))) }),
    );
    socket.once('error', reject);
  });
}

describe.each(databaseKinds)('bounces, complaints and replies at the inbound SMTP port (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const script: PeerScript = {};
  let port: number;
  let key: string;
  let campaignId: number;
  /** What each recipient of the campaign got: envelope sender and Message-ID. */
  const sent = new Map<string, { mailFrom: string; messageId: string; id: number }>();
  let other: { key: string; campaignId: number; messageId: string; email: string };

  const message = async (email: string) => {
    const page = await must(t, key, 'GET', `/api/v1/campaigns/${campaignId}/messages?limit=100`);
    return page.items.find((m: any) => m.email === email);
  };
  const campaign = () => must(t, key, 'GET', `/api/v1/campaigns/${campaignId}`);
  const suppression = async (k: string, email: string) => (await must(t, k, 'GET', `/api/v1/suppressions?limit=100`)).items.find((s: any) => s.email === email);
  const original = (email: string) => ({ messageId: sent.get(email)!.messageId, to: email, returnPath: sent.get(email)!.mailFrom });

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { config: { inbound: { host: '127.0.0.1', port: 0 } } });
    port = t.mp.inbound!.port;
    peer = await startSmtpPeer(script);
    key = (await t.createUser('shop')).apiKey;
    const serverId = await addServer(t, key, peer.port);
    await must(t, key, 'POST', '/api/v1/smtp-accounts', { serverId, email: 'news@shop.test', hourlyLimit: 0, dailyLimit: 0, bounceDomain: BOUNCE_DOMAIN });
    campaignId = await createCampaign(t, key, [await addList(t, key, 8)]);
    await must(t, key, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    await waitForCampaign(t, key, campaignId, (c) => c.status === 'completed');

    // Another user, whose message a forged report will name.
    const otherKey = (await t.createUser('other')).apiKey;
    const otherAccount = await addAccount(t, otherKey, await addServer(t, otherKey, peer.port), 'hello@other.test');
    const otherCampaign = await createCampaign(t, otherKey, [await addList(t, otherKey, 1, 'other.test', 'o')]);
    await must(t, otherKey, 'POST', `/api/v1/campaigns/${otherCampaign}/start`);
    await waitForCampaign(t, otherKey, otherCampaign, (c) => c.status === 'completed');
    expect(otherAccount).toBeGreaterThan(0);

    const ids = (await must(t, key, 'GET', `/api/v1/campaigns/${campaignId}/messages?limit=100`)).items;
    for (const m of peer.messages) {
      const email = m.rcptTo[0]!;
      const id = ids.find((x: any) => x.email === email)?.id;
      if (id) sent.set(email, { mailFrom: m.mailFrom, messageId: m.headers.get('message-id')!, id });
    }
    const o = peer.messages.find((m) => m.rcptTo[0] === 'o0@other.test')!;
    other = { key: otherKey, campaignId: otherCampaign, messageId: o.headers.get('message-id')!, email: 'o0@other.test' };
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  it('sends each message with an envelope sender of its own at the bounce domain, naming that message', () => {
    expect(sent.size).toBe(8);
    const senders = [...sent.values()].map((s) => s.mailFrom);
    expect(new Set(senders).size).toBe(8);
    for (const s of sent.values()) {
      expect(s.mailFrom).toMatch(new RegExp(`^mp\\.[0-9a-z.]+@${BOUNCE_DOMAIN.replaceAll('.', '\\.')}$`));
      expect(readVerpAddress([t.mp.ctx.secrets.secretKey], s.mailFrom)?.messageId).toBe(s.id);
      // Message-IDs <campaign.message.tag@domain>.
      expect(s.messageId).toMatch(new RegExp(`^<${campaignId}\\.${s.id}\\.[A-Za-z0-9_-]{10}@`));
    }
    // Without a bounce domain, the account's own address, as before.
    expect(peer.messages.find((m) => m.rcptTo[0] === other.email)!.mailFrom).toBe('hello@other.test');
  });

  it('a hard bounce fails the sent message, counts it, suppresses the address (reason bounce), once', async () => {
    const to = sent.get('r0@rcpt.test')!.mailFrom;
    expect(await deliver(port, to, dsn(original('r0@rcpt.test'), { to }))).toEqual({ ok: true });
    const m = await message('r0@rcpt.test');
    expect(m).toMatchObject({ status: 'failed', bounce: { type: 'hard', status: '5.1.1', diagnostic: expect.stringContaining('User unknown') } });
    expect(m.lastError).toMatch(/^bounced after it was accepted: 5\.1\.1/);
    expect(await campaign()).toMatchObject({ sent: 7, failed: 1, bounced: 1, softBounced: 0, status: 'completed', pending: 0 });
    expect(await suppression(key, 'r0@rcpt.test')).toMatchObject({ reason: 'bounce' });
    // The same report again changes nothing.
    expect(await deliver(port, to, dsn(original('r0@rcpt.test'), { to }))).toEqual({ ok: true });
    expect(await campaign()).toMatchObject({ sent: 7, failed: 1, bounced: 1 });
  });

  it('a soft bounce is recorded and counted; a hard one for the same message replaces it', async () => {
    const to = sent.get('r1@rcpt.test')!.mailFrom;
    expect(await deliver(port, to, dsn(original('r1@rcpt.test'), { to, action: 'delayed', status: '4.2.2', diagnostic: '452 4.2.2 Mailbox full' }))).toEqual({ ok: true });
    expect(await message('r1@rcpt.test')).toMatchObject({ status: 'sent', bounce: { type: 'soft', status: '4.2.2', diagnostic: '452 4.2.2 Mailbox full' } });
    expect(await campaign()).toMatchObject({ sent: 7, bounced: 1, softBounced: 1 });
    expect(await suppression(key, 'r1@rcpt.test')).toBeUndefined();
    expect(await deliver(port, to, dsn(original('r1@rcpt.test'), { to }))).toEqual({ ok: true });
    expect(await message('r1@rcpt.test')).toMatchObject({ status: 'failed', bounce: { type: 'hard' } });
    expect(await campaign()).toMatchObject({ sent: 6, failed: 2, bounced: 2, softBounced: 0 });
  });

  it('a complaint (ARF) is counted and suppresses the address (reason complaint)', async () => {
    const to = sent.get('r2@rcpt.test')!.mailFrom;
    expect(await deliver(port, to, arf(original('r2@rcpt.test'), { to }), 'fbl@isp.test')).toEqual({ ok: true });
    expect((await message('r2@rcpt.test')).complainedAt).not.toBeNull();
    expect(await campaign()).toMatchObject({ complained: 1, sent: 6 });
    expect(await suppression(key, 'r2@rcpt.test')).toMatchObject({ reason: 'complaint' });
  });

  it('an automatic reply changes nothing; a reply from a person sets repliedAt', async () => {
    const to = sent.get('r3@rcpt.test')!.mailFrom;
    expect(await deliver(port, to, autoReply(original('r3@rcpt.test'), { to, style: 'rfc3834' }))).toEqual({ ok: true });
    expect(await deliver(port, to, autoReply(original('r3@rcpt.test'), { to, style: 'subject' }), 'r3@rcpt.test')).toEqual({ ok: true });
    expect((await message('r3@rcpt.test')).repliedAt).toBeNull();
    expect(await deliver(port, to, humanReply(original('r3@rcpt.test'), { to }), 'r3@rcpt.test')).toEqual({ ok: true });
    expect((await message('r3@rcpt.test')).repliedAt).not.toBeNull();
    expect(await campaign()).toMatchObject({ replied: 1, sent: 6, failed: 2 });
  });

  it('refuses addresses that are not its VERP addresses, or forged ones, at RCPT', async () => {
    const real = sent.get('r4@rcpt.test')!.mailFrom;
    // The MAC's last hex digit changed to another: one in sixteen MACs ends in 0, so never to a fixed digit.
    const forged = real.replace(/([0-9a-f])@/, (_match, digit: string) => `${digit === '0' ? '1' : '0'}@`);
    expect(await deliver(port, `postmaster@${BOUNCE_DOMAIN}`, dsn(original('r4@rcpt.test'), { to: 'x@y' }))).toEqual({ ok: false, code: 550 });
    expect(await deliver(port, forged, dsn(original('r4@rcpt.test'), { to: forged }))).toEqual({ ok: false, code: 550 });
    expect(await message('r4@rcpt.test')).toMatchObject({ status: 'sent', bounce: null });
  });

  it("a report at one user's VERP address naming another user's message touches only the first", async () => {
    const to = sent.get('r4@rcpt.test')!.mailFrom;
    const forgedReport = dsn({ messageId: other.messageId, to: other.email }, { to });
    expect(await deliver(port, to, forgedReport)).toEqual({ ok: true });
    expect(await message('r4@rcpt.test')).toMatchObject({ status: 'failed', bounce: { type: 'hard' } });
    const o = (await must(t, other.key, 'GET', `/api/v1/campaigns/${other.campaignId}/messages`)).items[0];
    expect(o).toMatchObject({ status: 'sent', bounce: null });
    expect(await must(t, other.key, 'GET', `/api/v1/campaigns/${other.campaignId}`)).toMatchObject({ sent: 1, bounced: 0 });
    expect(await suppression(other.key, other.email)).toBeUndefined();
  });

  it('malformed reports are taken and ignored; a test message’s bounce changes nothing', async () => {
    const to = sent.get('r5@rcpt.test')!.mailFrom;
    const before = await campaign();
    for (const junk of ['garbage without headers', 'Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x--\r\n', Buffer.from([0, 1, 2, 255, 13, 10])]) {
      expect(await deliver(port, to, junk)).toEqual({ ok: true });
    }
    expect(await message('r5@rcpt.test')).toMatchObject({ status: 'sent', bounce: null });
    const accountId = (await must(t, key, 'GET', '/api/v1/smtp-accounts')).items[0].id;
    await must(t, key, 'POST', `/api/v1/campaigns/${campaignId}/test`, { email: 'tester@rcpt.test', accountId });
    const testMail = peer.messages.find((m) => m.rcptTo[0] === 'tester@rcpt.test')!;
    expect(readVerpAddress([t.mp.ctx.secrets.secretKey], testMail.mailFrom)).toMatchObject({ messageId: 0 });
    expect(await deliver(port, testMail.mailFrom, dsn({ messageId: testMail.headers.get('message-id')!, to: 'tester@rcpt.test' }, { to: testMail.mailFrom }))).toEqual({ ok: true });
    expect(await campaign()).toMatchObject({ sent: before.sent, failed: before.failed, bounced: before.bounced });
  });

  it('refuses a message over the size limit with 552, and cuts off one that never ends', async () => {
    const to = sent.get('r5@rcpt.test')!.mailFrom;
    const huge = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(MAX_MESSAGE_BYTES + 1024, 'x\r\n')]);
    expect(await deliver(port, to, huge)).toEqual({ ok: false, code: 552 });

    const s = await rawSession(port);
    expect(await s.next()).toMatch(/^220 /);
    s.socket.write(`HELO flood.test\r\nMAIL FROM:<>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
    expect(await s.next()).toMatch(/^250 /);
    expect(await s.next()).toMatch(/^250 /);
    expect(await s.next()).toMatch(/^250 /);
    expect(await s.next()).toMatch(/^354 /);
    const chunk = Buffer.alloc(1024 * 1024, 'y\r\n');
    let written = 0;
    const writing = (async () => {
      while (!s.socket.destroyed && written < 4 * MAX_MESSAGE_BYTES) {
        written += chunk.length;
        if (!s.socket.write(chunk)) await new Promise((r) => s.socket.once('drain', r).once('close', r));
      }
    })();
    await s.closed;
    await writing;
    expect(written).toBeLessThan(4 * MAX_MESSAGE_BYTES);
    expect(await message('r5@rcpt.test')).toMatchObject({ status: 'sent', bounce: null });
  });

  it('a report for a message whose send is still being recorded is answered 451, and taken when retried', async () => {
    // The peer holds its reply to the final dot, so the message stays 'sending' while its bounce comes in.
    script.dataDelayMs = 3_000;
    const slowCampaign = await createCampaign(t, key, [await addList(t, key, 1, 'rcpt.test', 'slow')]);
    await must(t, key, 'POST', `/api/v1/campaigns/${slowCampaign}/start`);
    const deadline = Date.now() + 30_000;
    while (!peer.attempts.some((m) => m.rcptTo[0] === 'slow0@rcpt.test') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const attempt = peer.attempts.find((m) => m.rcptTo[0] === 'slow0@rcpt.test')!;
    const report = dsn({ messageId: attempt.headers.get('message-id')!, to: 'slow0@rcpt.test' }, { to: attempt.mailFrom });
    expect(await deliver(port, attempt.mailFrom, report)).toEqual({ ok: false, code: 451 });
    script.dataDelayMs = 0;
    await waitForCampaign(t, key, slowCampaign, (c) => c.status === 'completed');
    expect(await deliver(port, attempt.mailFrom, report)).toEqual({ ok: true });
    expect(await must(t, key, 'GET', `/api/v1/campaigns/${slowCampaign}`)).toMatchObject({ sent: 0, failed: 1, bounced: 1 });
  });

  it('a flood of the same report counts once, and sessions past the limit are turned away', async () => {
    const m6 = sent.get('r6@rcpt.test')!;
    const before = await campaign();
    const results = await Promise.all(Array.from({ length: 40 }, () => deliver(port, m6.mailFrom, arf(original('r6@rcpt.test'), { to: m6.mailFrom }))));
    expect(results.filter((r) => r.ok).length).toBeGreaterThan(0);
    expect(await campaign()).toMatchObject({ complained: before.complained + 1 });

    const sessions = await Promise.all(Array.from({ length: MAX_SESSIONS + 5 }, () => rawSession(port)));
    const greetings = await Promise.all(sessions.map((s) => s.next()));
    expect(greetings.filter((g) => g.startsWith('421')).length).toBeGreaterThanOrEqual(5);
    expect(greetings.filter((g) => g.startsWith('220')).length).toBeLessThanOrEqual(MAX_SESSIONS);
    for (const s of sessions) s.socket.destroy();
  });

  it('counts bounces, complaints, replies and refusals in /metrics', async () => {
    const res = await t.api<string>('GET', '/metrics', { key: t.adminKey });
    const samples = parsePrometheus(res.body);
    expect(sumOf(samples, 'mailpilot_bounces_total', { type: 'hard' })).toBe(4);
    expect(sumOf(samples, 'mailpilot_bounces_total', { type: 'soft' })).toBe(1);
    expect(sumOf(samples, 'mailpilot_complaints_total')).toBe(2);
    expect(sumOf(samples, 'mailpilot_replies_total')).toBe(1);
    expect(sumOf(samples, 'mailpilot_inbound_messages_total', { source: 'smtp', result: 'refused' })).toBeGreaterThanOrEqual(3);
    expect(sumOf(samples, 'mailpilot_inbound_messages_total', { source: 'smtp', result: 'malformed' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(samples, 'mailpilot_inbound_messages_total', { source: 'smtp', result: 'deferred' })).toBe(1);
  });
});
