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
/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters and MUST be at most 998. */
const MAX_HEADER_LINE = 78;
const MAX_LINE = 998;
/** The longest word a folded header keeps as it is: its own continuation line, or after "Subject: ". */
const MAX_PLAIN_WORD = MAX_HEADER_LINE - 'Subject: '.length;
/** Payload of one RFC 2047 encoded-word: with `=?UTF-8?Q?` and `?=`, 64 characters, under the 75 allowed. */
const ENCODED_WORD_CHARS = 52;
const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;
const LONGEST_WORD = /[^ ]+/g;
/** Text that goes out as is (7bit): ASCII, no control characters, no line over 76 (nodemailer's rule). */
const SEVEN_BIT = /^(?:[\t\x20-\x7e]{0,76}(?:\r?\n|$))*$/;
const LINE_BREAK = /\r?\n/g;

// Header values never carry a line break of their own: input validation refuses them, and this
// is the last line of defence against header injection.
const oneLine = (value: string) => value.replace(/[\r\n\0]+/g, ' ');

/** Printable ASCII whose every word fits on a folded line: such text goes out as it is. */
function plainFits(value: string): boolean {
  if (!ASCII_PRINTABLE.test(value)) return false;
  for (const [word] of value.matchAll(LONGEST_WORD)) if (word.length > MAX_PLAIN_WORD) return false;
  return true;
}

/** Text as RFC 2047 encoded-words of at most ENCODED_WORD_CHARS each, space-separated so they fold. */
function encodedWords(value: string): string {
  const nonAscii = value.replace(/[\x20-\x7e]/g, '').length;
  return libmime.encodeWord(value, nonAscii * 3 > value.length ? 'B' : 'Q', ENCODED_WORD_CHARS);
}

/**
 * Unstructured header text (a subject, which merge values may fill with anything): printable
 * ASCII in short words as it is, non-ASCII words as encoded-words; text with control characters or
 * a word too long to fold goes out as encoded-words entirely, so no control byte is ever sent raw
 * and every line can be folded within the limits.
 */
function encodeHeaderText(value: string): string {
  const text = oneLine(value);
  if (plainFits(text)) return text;
  if (/[\x00-\x1f\x7f-\x9f]/.test(text)) return encodedWords(text);
  const encoded = libmime.encodeWords(text, 'Q', ENCODED_WORD_CHARS);
  for (const [word] of encoded.matchAll(LONGEST_WORD)) if (word.length > MAX_PLAIN_WORD) return encodedWords(text);
  return encoded;
}

/**
 * Folds a header at spaces so no line passes 78 characters (each continuation starts with the
 * space). A word longer than a line (only a URL in List-Unsubscribe can be) is cut at 998
 * characters, the hard limit; RFC 2369 §2 has clients ignore whitespace inside its URL.
 */
function fold(header: string): string {
  if (header.length <= MAX_HEADER_LINE) return header;
  const lines: string[] = [];
  let line = '';
  for (const word of header.split(/(?= )/)) {
    if (line.length > 0 && line.length + word.length > MAX_HEADER_LINE) {
      lines.push(line);
      line = word;
    } else line += word;
  }
  lines.push(line);
  return lines.flatMap(cutAtHardLimit).join(CRLF);
}

function cutAtHardLimit(line: string): string[] {
  const pieces = [line.slice(0, MAX_LINE)];
  for (let at = MAX_LINE; at < line.length; at += MAX_LINE - 1) pieces.push(` ${line.slice(at, at + MAX_LINE - 1)}`);
  return pieces;
}

function mailbox(name: string | null, address: string): string {
  if (!name) return `<${address}>`;
  const plain = oneLine(name);
  const quoted = `"${plain.replace(/(["\\])/g, '\\$1')}"`;
  const display = plainFits(quoted) ? quoted : encodedWords(plain);
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
