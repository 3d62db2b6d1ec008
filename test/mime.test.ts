import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { messageSkeleton, renderMessage } from '../src/smtp/mime.ts';

const skeleton = messageSkeleton({ campaignId: 7, fromName: 'Shop', replyTo: null });

function render(text: string, html: string): string {
  return renderMessage(skeleton, {
    from: 'sender@shop.test',
    to: 'ann@example.test',
    toName: 'Ann',
    subject: 'Hi',
    text,
    html,
    messageId: '<7.1.tag@mailpilot.test>',
    unsubscribeUrl: 'https://mailpilot.test/u/token',
    date: new Date('2026-11-26T12:00:00Z'),
  });
}

/** Each part's Content-Transfer-Encoding, in order (plain, then html). */
const encodings = (raw: string) => [...raw.matchAll(/Content-Transfer-Encoding: (\S+)/g)].map((m) => m[1]);

describe('message bodies', () => {
  it('sends short-lined ASCII as 7bit and everything else quoted-printable; readers get the same text either way', async () => {
    const cases: { text: string; html: string; expected: string[] }[] = [
      { text: 'Hello Ann,\nsee you.', html: '<p style="color: red">Hello Ann</p>', expected: ['7bit', '7bit'] },
      { text: 'Héllo Ann', html: '<p>' + 'x'.repeat(77) + '</p>', expected: ['quoted-printable', 'quoted-printable'] },
      // A bare CR, a control character and the boundary itself cannot go out unencoded.
      { text: 'one\rtwo', html: `<p>\u0001</p>`, expected: ['quoted-printable', 'quoted-printable'] },
      { text: `--${skeleton.boundary}--`, html: '<p>ok</p>', expected: ['quoted-printable', '7bit'] },
    ];
    for (const c of cases) {
      const raw = render(c.text, c.html);
      expect(encodings(raw)).toEqual(c.expected);
      for (const line of raw.split('\r\n')) expect(line).not.toMatch(/[\r\n]/);
      const parsed = await simpleParser(raw);
      expect(parsed.text?.replace(/\n$/, '')).toBe(c.text.replace(/\r?\n/g, '\n'));
      expect(parsed.html).toBe(c.html);
    }
  });
});
