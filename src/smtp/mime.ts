import { randomBytes } from 'node:crypto';
import libmime from 'libmime';
import { dkimSignature, type DkimKey } from './dkim.ts';
import { encodeQuotedPrintable } from './quotedPrintable.ts';

/**
 * Builds each message's raw MIME from a per-campaign skeleton: the fixed headers and the boundary
 * are prepared once, so a send only encodes what differs per recipient (2x nodemailer's composer).
 */
export interface MessageSkeleton {
  campaignId: number;
  fromName: string | null;
  replyTo: string | null;
  /** Contains "=_", which quoted-printable text never does. */
  boundary: string;
}

export function messageSkeleton(s: Omit<MessageSkeleton, 'boundary'>): MessageSkeleton {
  return { ...s, boundary: `=_mp_${randomBytes(12).toString('hex')}` };
}

export interface MessageParts {
  from: string;
  to: string;
  toName: string | null;
  subject: string;
  html: string | undefined;
  text: string | undefined;
  messageId: string;
  unsubscribeUrl: string;
  date: Date;
}

const CRLF = '\r\n';
const MAX_HEADER_LINE = 78;
const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;
/** Text that goes out as is (7bit): ASCII, no control characters, no line over 76 (nodemailer's rule). */
const SEVEN_BIT = /^(?:[\t\x20-\x7e]{0,76}(?:\r?\n|$))*$/;
const LINE_BREAK = /\r?\n/g;

// Header values never carry a line break of their own: input validation refuses them, and this
// is the last line of defence against header injection.
const oneLine = (value: string) => value.replace(/[\r\n\0]+/g, ' ');

function encodeHeaderText(value: string): string {
  return libmime.encodeWords(oneLine(value), 'Q', 52);
}

/** Folds a header at spaces so no line passes 78 characters (each continuation starts with the space). */
function fold(header: string): string {
  if (header.length <= MAX_HEADER_LINE) return header;
  let out = '';
  let line = '';
  for (const word of header.split(/(?= )/)) {
    if (line.length > 0 && line.length + word.length > MAX_HEADER_LINE) {
      out += line + CRLF;
      line = word;
    } else line += word;
  }
  return out + line;
}

function mailbox(name: string | null, address: string): string {
  if (!name) return `<${address}>`;
  const plain = oneLine(name);
  const display = ASCII_PRINTABLE.test(plain) ? `"${plain.replace(/(["\\])/g, '\\$1')}"` : libmime.encodeWord(plain, 'Q', 52);
  return `${display} <${address}>`;
}

/**
 * A body's transfer encoding and encoded text. Plain ASCII with short lines needs no encoding (and
 * no encoder's CPU); it never contains the boundary, so the boundary cannot end the part early.
 */
function encodeBody(content: string, boundary: string): { encoding: string; body: string } {
  if (SEVEN_BIT.test(content) && !content.includes(boundary)) return { encoding: '7bit', body: content.replace(LINE_BREAK, CRLF) };
  return { encoding: 'quoted-printable', body: encodeQuotedPrintable(content) };
}

function part(type: 'plain' | 'html', content: string, boundary: string): string {
  const { encoding, body } = encodeBody(content, boundary);
  return `Content-Type: text/${type}; charset=utf-8${CRLF}Content-Transfer-Encoding: ${encoding}${CRLF}${CRLF}${body}`;
}

/** The message's raw MIME; signed with DKIM (every top-level header) when a key is given. */
export function renderMessage(skeleton: MessageSkeleton, p: MessageParts, dkim?: DkimKey): string {
  const headers = [
    `From: ${mailbox(skeleton.fromName, p.from)}`,
    `To: ${mailbox(p.toName, p.to)}`,
    `Subject: ${encodeHeaderText(p.subject)}`,
    `Date: ${p.date.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: ${p.messageId}`,
    'MIME-Version: 1.0',
  ];
  if (skeleton.replyTo) headers.push(`Reply-To: <${skeleton.replyTo}>`);
  headers.push(
    `List-Unsubscribe: <${p.unsubscribeUrl}>`,
    'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
    `X-MailPilot-Campaign: ${skeleton.campaignId}`,
  );
  let body: string;
  if (p.html !== undefined && p.text !== undefined) {
    const { boundary } = skeleton;
    headers.push(`Content-Type: multipart/alternative; boundary="${boundary}"`);
    body =
      `--${boundary}${CRLF}${part('plain', p.text, boundary)}${CRLF}` +
      `--${boundary}${CRLF}${part('html', p.html, boundary)}${CRLF}` +
      `--${boundary}--${CRLF}`;
  } else {
    const encoded = encodeBody(p.html ?? p.text ?? '', skeleton.boundary);
    headers.push(`Content-Type: text/${p.html !== undefined ? 'html' : 'plain'}; charset=utf-8`, `Content-Transfer-Encoding: ${encoded.encoding}`);
    body = `${encoded.body}${CRLF}`;
  }
  const folded = headers.map(fold);
  if (dkim) folded.unshift(dkimSignature(folded, body, dkim, p.date));
  return `${folded.join(CRLF)}${CRLF}${CRLF}${body}`;
}
