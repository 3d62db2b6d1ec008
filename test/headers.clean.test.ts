import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageSkeleton, renderMessage } from '../src/smtp/mime.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addServer, must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

// C0 controls (but CR, LF, NUL: refused as line breaks already), DEL and C1 controls.
const CONTROL_BYTE = /[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]/;

const headerLines = (raw: string) => raw.split('\r\n\r\n')[0]!.split('\r\n');

function render(subject: string, names: { from?: string; to?: string } = {}, unsubscribeUrl = 'https://mp.test/u/token') {
  return renderMessage(messageSkeleton({ campaignId: 7, fromName: names.from ?? 'Shop', replyTo: 'reply@shop.test' }), {
    from: 'news@shop.test',
    to: 'ann@rcpt.test',
    toName: names.to ?? 'Ann',
    subject,
    html: undefined,
    text: 'Hello',
    messageId: '<7.1.tag@mp.test>',
    unsubscribeUrl,
    date: new Date('2026-03-02T10:00:00Z'),
  });
}

describe('every header is folded and encoded within the limits of RFC 5322', () => {
  it('folds or encodes any subject and display name so lines stay within 78 characters, and readers get them back unchanged', async () => {
    const subjects = [
      'ab'.repeat(1501),
      'A subject of many short words, '.repeat(100).trim(),
      'Héllo wörld, ça va? '.repeat(60).trim(),
      '日本語の件名'.repeat(200),
      `short words then ${'x'.repeat(200)} and more`,
      'Hi \x0bthere \x1b[2J\x7f\x85 bell\x07',
    ];
    for (const subject of subjects) {
      const from = 'The "Best" Shop \\ Co '.repeat(8).trim();
      const to = `Ann${'n'.repeat(150)}\x1b`;
      const raw = render(subject, { from, to });
      for (const line of headerLines(raw)) {
        expect(line.length).toBeLessThanOrEqual(78);
        expect(line).not.toMatch(CONTROL_BYTE);
      }
      const parsed = await simpleParser(raw);
      expect(parsed.subject).toBe(subject);
      expect(parsed.from?.value[0]).toEqual({ name: from, address: 'news@shop.test' });
      expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value[0] : undefined).toEqual({ name: to, address: 'ann@rcpt.test' });
    }
  });

  it('keeps every line within 998 characters even for an unsubscribe URL longer than that', async () => {
    const url = `https://mp.test/u/${'t'.repeat(1500)}`;
    const raw = render('Hi', {}, url);
    for (const line of headerLines(raw)) expect(line.length).toBeLessThanOrEqual(998);
    const listUnsubscribe = (await simpleParser(raw)).headers.get('list') as { unsubscribe: { url: string } };
    // RFC 2369 §2: whitespace inside the angle brackets is not part of the URL.
    expect(listUnsubscribe.unsubscribe.url.replace(/\s+/g, '')).toBe(url);
  });
});

describe.each(databaseKinds)('control and bidirectional characters stop at the edge (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  let key: string;
  let listId: number;
  let accountId: number;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    peer = await startSmtpPeer();
    key = (await t.createUser()).apiKey;
    accountId = await addAccount(t, key, await addServer(t, key, peer.port), 'news@sender.test');
    listId = (await must(t, key, 'POST', '/api/v1/lists', { name: 'l' })).id;
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const campaign = (fields: Record<string, unknown>) =>
    t.api('POST', '/api/v1/campaigns', { key, body: { name: 'n', listIds: [listId], subject: 's', text: 't', ...fields } });

  it('refuses control characters in header fields and display names, and bidi overrides in display names, with 422 naming the field', async () => {
    const refused: [string, Record<string, unknown>, string][] = [
      ['subject', { subject: 'Hi \x0bthere' }, 'subject: must not contain control characters'],
      ['subject', { subject: 'Hi \x1b[2Jthere' }, 'subject: must not contain control characters'],
      ['subject', { subject: 'Hi\x85' }, 'subject: must not contain control characters'],
      ['fromName', { fromName: 'Shop\x1b' }, 'fromName: must not contain control characters'],
      ['fromName', { fromName: 'Shop \u202Egnp.exe' }, 'fromName: must not contain bidirectional override or isolate characters'],
      ['fromName', { fromName: 'Shop \u2066x\u2069' }, 'fromName: must not contain bidirectional override or isolate characters'],
      ['replyTo', { replyTo: 'reply\x0b@shop.test' }, 'replyTo: must be a valid email address'],
      ['name', { name: 'Campaign\x07' }, 'name: must not contain control characters'],
    ];
    for (const [field, body, message] of refused) {
      const res = await campaign(body);
      expect(res.status, field).toBe(422);
      expect(res.body.error.message).toMatch(new RegExp(`^${message.replace(/[()]/g, '\\$&')}`));
    }
    const server = await t.api('POST', '/api/v1/smtp-servers', { key, body: { name: 'relay\x1b', host: '127.0.0.1', port: 25, security: 'none' } });
    expect(server).toMatchObject({ status: 422, body: { error: { message: expect.stringMatching(/^name: must not contain control characters/) } } });
    const list = await t.api('POST', '/api/v1/lists', { key, body: { name: 'list \u202Eevil' } });
    expect(list).toMatchObject({ status: 422, body: { error: { message: expect.stringMatching(/^name: must not contain bidirectional/) } } });
    // Right-to-left text itself is fine.
    expect((await campaign({ fromName: 'חנות הספרים', subject: 'مرحبا' })).status).toBe(201);

    const imported = await must(t, key, 'POST', `/api/v1/lists/${listId}/contacts`, {
      contacts: [
        { email: 'esc@rcpt.test', name: 'Ann\x1b[31m' },
        { email: 'bidi@rcpt.test', name: 'Ann \u202Egnp.exe' },
        { email: 'fine@rcpt.test', name: 'Ann' },
      ],
    });
    expect(imported).toMatchObject({
      added: 1,
      invalid: [
        { row: 1, reason: expect.stringMatching(/^name: must not contain control characters/) },
        { row: 2, reason: expect.stringMatching(/^name: must not contain bidirectional/) },
      ],
    });
    const draft = (await campaign({})).body.id;
    const preview = await t.api('POST', `/api/v1/campaigns/${draft}/preview`, { key, body: { contact: { email: 'p@rcpt.test', name: 'P\u2067' } } });
    expect(preview).toMatchObject({ status: 422, body: { error: { message: expect.stringMatching(/^contact\.name: must not contain bidirectional/) } } });
  });

  it('sends a subject made of merge data folded, with its control characters encoded, never raw', async () => {
    const long = 'ab'.repeat(1501);
    await must(t, key, 'POST', `/api/v1/lists/${listId}/contacts`, {
      contacts: [{ email: 'merge@rcpt.test', name: 'Merge', attributes: { long, esc: 'red\x1b[31m\x0balert' } }],
    });
    const id = (await campaign({ subject: '{{attributes.long}} {{attributes.esc}}' })).body.id;
    const sent = await t.api('POST', `/api/v1/campaigns/${id}/test`, { key, body: { email: 'merge@rcpt.test', accountId } });
    expect(sent.status).toBe(200);
    const message = peer.messages.at(-1)!;
    for (const line of headerLines(message.raw)) {
      // The unsubscribe URL cannot be folded; it is well under the hard limit.
      expect(line.length).toBeLessThanOrEqual(line.includes('/u/') ? 998 : 78);
      expect(line).not.toMatch(CONTROL_BYTE);
    }
    expect((await simpleParser(message.raw)).subject).toBe(`${long} red\x1b[31m\x0balert`);
  });
});
