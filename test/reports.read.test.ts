import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { messageIdTag } from '../src/campaigns/unsubscribe.ts';
import { loadConfig } from '../src/config.ts';
import { bounceType, readReport } from '../src/reports/readReport.ts';
import { readFieldGroups } from '../src/reports/reportFields.ts';
import { readOwnMessageId, reportTarget } from '../src/reports/reportTargets.ts';
import { envelopeSender, readVerpAddress } from '../src/reports/verp.ts';
import { arf, autoReply, dsn, humanReply, qmailBounce } from './helpers/reports.ts';

const secret = randomBytes(32);
const other = randomBytes(32);
const ownId = (campaignId: number, messageId: number, key = secret) => `<${campaignId}.${messageId}.${messageIdTag(key, campaignId, messageId)}@mp.test>`;
const read = (raw: string, mailFrom?: string) => readReport(Buffer.from(raw), mailFrom === undefined ? {} : { mailFrom });

describe('VERP envelope senders', () => {
  it('are unique per message at the bounce domain, and only they verify', () => {
    const account = { email: 'news@shop.test', bounceDomain: 'bounces.shop.test' };
    const a = envelopeSender(secret, account, { messageId: 41, userId: 7 });
    const b = envelopeSender(secret, account, { messageId: 42, userId: 7 });
    expect(a).toMatch(/^mp\.[0-9a-z]+\.[0-9a-z]+\.[0-9a-f]{20}@bounces\.shop\.test$/);
    expect(a).not.toBe(b);
    expect(readVerpAddress([secret], a)).toEqual({ messageId: 41, userId: 7 });
    // Mail systems may change the case of the local part.
    expect(readVerpAddress([secret], a.toUpperCase())).toEqual({ messageId: 41, userId: 7 });
    // Another message id or user with the same MAC, another key, garbage: nothing.
    expect(readVerpAddress([secret], a.replace('mp.15.', 'mp.16.'))).toBeUndefined();
    expect(readVerpAddress([secret], a.replace('.7.', '.8.'))).toBeUndefined();
    expect(readVerpAddress([other], a)).toBeUndefined();
    expect(readVerpAddress([other, secret], a)).toEqual({ messageId: 41, userId: 7 });
    expect(readVerpAddress([secret], 'news@shop.test')).toBeUndefined();
    expect(readVerpAddress([secret], 'mp.zzzzzzzzzzzzz.zzzzzzz.00000000000000000000@x')).toBeUndefined();
    // Without a bounce domain: the account's address, as before.
    expect(envelopeSender(secret, { email: 'news@shop.test', bounceDomain: null }, { messageId: 1, userId: 1 })).toBe('news@shop.test');
  });

  it('Message-IDs verify only with their own campaign, message and key', () => {
    expect(readOwnMessageId([secret], ownId(3, 99))).toEqual({ campaignId: 3, messageId: 99 });
    expect(readOwnMessageId([secret], ownId(3, 99).replace('3.99.', '3.98.'))).toBeUndefined();
    expect(readOwnMessageId([secret], ownId(3, 99, other))).toBeUndefined();
    expect(readOwnMessageId([secret], '<99999999999.1.aaaaaaaaaa@x>')).toBeUndefined();
    expect(readOwnMessageId([secret], '<hello@world>')).toBeUndefined();
  });
});

describe('reading reports', () => {
  const original = { messageId: ownId(3, 99), to: 'ann@rcpt.test', returnPath: 'mp.2r.1.00000000000000000000@b.test' };

  it('a DSN: hard for an unknown user, with status and diagnostic on one line', async () => {
    const r = await read(dsn(original, { to: 'news@shop.test' }), '');
    expect(r.kind).toBe('bounce');
    expect(r.bounce).toEqual({ type: 'hard', status: '5.1.1', diagnostic: expect.stringMatching(/^550 5\.1\.1 <ann@rcpt\.test>: Recipient address rejected: User unknown/) });
    expect(r.messageIds).toEqual([original.messageId]);
    expect(r.verpCandidates).toContain(original.returnPath);
  });

  it('a DSN returning the whole message, a delayed one, a full mailbox, a spam block, a success notice', async () => {
    expect((await read(dsn(original, { to: 'x@y', full: true }))).messageIds).toEqual([original.messageId]);
    expect((await read(dsn(original, { to: 'x@y', action: 'delayed', status: '4.4.1' }))).bounce?.type).toBe('soft');
    expect((await read(dsn(original, { to: 'x@y', status: '5.2.2' }))).bounce?.type).toBe('soft');
    expect((await read(dsn(original, { to: 'x@y', status: '5.7.1' }))).bounce?.type).toBe('soft');
    const delivered = await read(dsn(original, { to: 'x@y', action: 'delivered', status: '2.0.0' }));
    expect(delivered.kind).toBe('other');
  });

  it('an ARF complaint, with the envelope sender from Original-Mail-From; not-spam is no complaint', async () => {
    const r = await read(arf(original, { to: 'fbl@shop.test' }));
    expect(r.kind).toBe('complaint');
    expect(r.messageIds).toEqual([original.messageId]);
    expect(r.verpCandidates).toContain(original.returnPath);
    expect((await read(arf(original, { to: 'fbl@shop.test', feedbackType: 'not-spam' }))).kind).toBe('other');
  });

  it('a non-standard bounce (qmail): the status code found in its text, the Message-ID in the quoted original', async () => {
    const r = await read(qmailBounce(original, { to: 'news@shop.test' }));
    expect(r.kind).toBe('bounce');
    expect(r.bounce).toEqual({ type: 'hard', status: '5.1.1', diagnostic: 'Remote host said: 550 5.1.1 mailbox unavailable' });
    expect(r.messageIds).toEqual([original.messageId]);
  });

  it('automatic replies (Auto-Submitted, an out-of-office subject) are told apart from a person', async () => {
    expect((await read(autoReply(original, { to: 'news@shop.test', style: 'rfc3834' }))).kind).toBe('auto_reply');
    expect((await read(autoReply(original, { to: 'news@shop.test', style: 'subject' }))).kind).toBe('auto_reply');
    const reply = await read(humanReply(original, { to: 'news@shop.test' }));
    expect(reply.kind).toBe('reply');
    expect(reply.messageIds[0]).toBe(original.messageId);
  });

  it('matches by VERP first, then by a verified Message-ID, and only within the mailbox owner', async () => {
    const verp = envelopeSender(secret, { email: 'n@s', bounceDomain: 'b.test' }, { messageId: 5, userId: 1 });
    const withVerp = await read(dsn({ ...original, returnPath: verp }, { to: 'n@s' }));
    expect(reportTarget([secret], withVerp, { ownerId: 1 })).toEqual({ userId: 1, messageId: 5 });
    expect(reportTarget([secret], withVerp, { ownerId: 2 })).toEqual({ userId: 2, messageId: 99, campaignId: 3 });
    const forged = await read(dsn({ ...original, messageId: ownId(3, 99, other), returnPath: undefined }, { to: 'n@s' }));
    expect(reportTarget([secret], forged, { ownerId: 1 })).toBeUndefined();
  });

  it('malformed, empty, binary and enormous input is read as nothing, never thrown', async () => {
    const noFields = 'Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n';
    expect((await read(noFields)).kind).toBe('other');
    expect((await read(noFields)).problem).toMatch(/without its message\/delivery-status part/);
    expect((await read('')).kind).toBe('other');
    expect((await readReport(randomBytes(200_000))).kind).toBe('other');
    const manyParts = `Content-Type: multipart/mixed; boundary=b\r\n\r\n${'--b\r\nContent-Type: text/plain\r\n\r\nx\r\n'.repeat(5_000)}--b--\r\n`;
    expect((await read(manyParts)).kind).toBe('other');
    const hugeHeader = `Subject: ${'x'.repeat(2_000_000)}\r\n\r\nbody`;
    expect((await read(hugeHeader)).kind).toBe('other');
    const emptyStatus = dsn(original, { to: 'x@y' }).replace(/Final-Recipient[\s\S]*?--dsn-boundary\r\nContent-Type: text\/rfc822-headers/, '\r\n--dsn-boundary\r\nContent-Type: text/rfc822-headers');
    expect((await read(emptyStatus)).problem).toMatch(/naming no recipient/);
  });

  it('status codes: hard only when the address is bad', () => {
    expect(bounceType('5.1.1')).toBe('hard');
    expect(bounceType('5.0.0')).toBe('hard');
    expect(bounceType('5.4.4')).toBe('hard');
    expect(bounceType('5.2.2')).toBe('soft');
    expect(bounceType('5.7.1')).toBe('soft');
    expect(bounceType('4.2.2')).toBe('soft');
    expect(bounceType(null)).toBe('soft');
  });

  it('field groups: continuation lines, blank-line groups, junk lines skipped', () => {
    const groups = readFieldGroups('A: 1\r\nB: two\r\n  lines\r\nnot a field\r\n\r\n\r\nC: 3\r\n');
    expect(groups).toEqual([new Map([['a', '1'], ['b', 'two lines']]), new Map([['c', '3']])]);
  });
});

describe('inbound port settings', () => {
  it('are off without MAILPILOT_INBOUND_PORT, on loopback by default, and refuse a bad port naming the variable', () => {
    expect(loadConfig({}).inbound).toBeUndefined();
    expect(loadConfig({ MAILPILOT_INBOUND_PORT: '2525' }).inbound).toEqual({ host: '127.0.0.1', port: 2525 });
    expect(loadConfig({ MAILPILOT_INBOUND_PORT: '25', MAILPILOT_INBOUND_HOST: '0.0.0.0' }).inbound).toEqual({ host: '0.0.0.0', port: 25 });
    expect(() => loadConfig({ MAILPILOT_INBOUND_PORT: 'smtp' })).toThrow(/MAILPILOT_INBOUND_PORT/);
  });
});
