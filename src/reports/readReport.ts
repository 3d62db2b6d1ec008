import type { AddressObject, Attachment, ParsedMail } from 'mailparser';
import type { BounceType } from '../states.ts';
import { readDeliveryStatus, readFeedbackReport, type DsnRecipient } from './reportFields.ts';

/**
 * What an incoming message is, read from its MIME (mailparser) and its DSN or ARF fields: a bounce
 * (RFC 3464 DSN, or one of the non-standard bounces providers still send), a complaint (RFC 5965
 * ARF), an automatic reply (RFC 3834 and its older conventions), a reply from a person, or none of
 * these. It says which of our messages it may be about (VERP addresses and Message-IDs, not yet
 * verified: see reportTargets.ts); it never decides that.
 */
export type ReportKind = 'bounce' | 'complaint' | 'auto_reply' | 'reply' | 'other';

export interface Bounce {
  type: BounceType;
  /** Enhanced status code (RFC 3463) such as 5.1.1, when the report gives one. */
  status: string | null;
  /** The remote server's words, one line, control characters removed, at most DIAGNOSTIC_CHARS. */
  diagnostic: string | null;
}

export interface ReadReport {
  kind: ReportKind;
  bounce?: Bounce;
  /** Addresses that may be VERP envelope senders: the report's own recipients, the original's Return-Path, ARF Original-Mail-From. */
  verpCandidates: string[];
  /** Message-IDs (with angle brackets) of the message reported on or replied to, most telling first. */
  messageIds: string[];
  /** Why a report was not read as one (a `multipart/report` without its fields, say), for the log. */
  problem?: string;
}

export const DIAGNOSTIC_CHARS = 300;

/** mailparser, loaded on the first report: a process that never reads one does without its ~9 MB of heap. */
const mailParser = async () => (await import('mailparser')).simpleParser;
/** Parts of a message past this many are not read: a report has three. */
const MAX_PARTS = 100;
const MAX_HEAD_BYTES = 256 * 1024;
const MAX_HTML_TO_TEXT_CHARS = 200_000;
/** Text scanned for status codes and Message-IDs in a non-standard bounce. */
const SCAN_CHARS = 64 * 1024;
const MAX_IDS = 20;

const DELIVERY_STATUS = new Set(['message/delivery-status', 'message/global-delivery-status']);
const FEEDBACK_REPORT = 'message/feedback-report';
const RETURNED_HEADERS = new Set(['text/rfc822-headers', 'message/rfc822', 'message/global', 'message/global-headers']);

// Non-standard bounces: who sends them and what they are called (Postfix, Exim, qmail, Exchange, Gmail, Sendmail, ...).
const BOUNCE_SENDER = /^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|bounces?|mdaemon)@/i;
const BOUNCE_SUBJECT =
  /(undeliver|undelivered mail|delivery status notification|delivery (has )?failed|delivery failure|mail delivery failed|returned mail|failure notice|non[- ]?delivery|could not be delivered|address not found|nondeliverable)/i;
// Automatic replies (RFC 3834 §5, and what vacation programs did before it).
const AUTO_SUBJECT =
  /^\s*(auto(matic)?[ -]?(reply|response|antwort|svar|réponse)|auto:|out of (the )?office|ooo\b|abwesen|absence|away from|vacation|réponse automatique|respuesta automática|risposta automatica)/i;
const REPLY_SUBJECT = /^\s*(re|aw|sv|fw|fwd|wg|tr)\s*:/i;
const AUTO_PRECEDENCE = new Set(['auto_reply', 'bulk', 'junk', 'list']);

const ENHANCED_CODE = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;
const REPLY_CODE = /\b([45])\d\d[ -]/;
const MESSAGE_ID = /<[^<>\s@]{1,200}@[^<>\s]{1,255}>/g;

/** Reads one message (raw bytes, possibly cut short at the size read). Never throws on hostile input. */
export async function readReport(raw: Buffer, envelope: { mailFrom?: string } = {}): Promise<ReadReport> {
  let mail: ParsedMail;
  try {
    mail = await (await mailParser())(raw, {
      keepDeliveryStatus: true,
      ignoreEmbedded: true,
      skipTextToHtml: true,
      skipTextLinks: true,
      skipImageLinks: true,
      keepCidLinks: true,
      checksumAlgo: false,
      maxHtmlLengthToParse: MAX_HTML_TO_TEXT_CHARS,
      maxChildNodes: MAX_PARTS,
      maxHeadSize: MAX_HEAD_BYTES,
    });
  } catch (err) {
    return { kind: 'other', verpCandidates: [], messageIds: [], problem: `not a readable message: ${(err as Error).message}` };
  }
  const ownRecipients = [
    ...addresses(mail.to),
    ...headerAddresses(mail, 'delivered-to'),
    ...headerAddresses(mail, 'x-original-to'),
  ];
  const contentType = mail.headers.get('content-type') as { value?: string; params?: Record<string, string> } | undefined;
  const reportType = contentType?.value === 'multipart/report' ? contentType.params?.['report-type']?.toLowerCase() : undefined;
  const part = (types: Set<string> | string) => mail.attachments.find((a) => (typeof types === 'string' ? a.contentType === types : types.has(a.contentType)));

  const feedback = part(FEEDBACK_REPORT);
  if (reportType === 'feedback-report' || feedback) {
    return readComplaint(feedback, await returnedHeaders(part(RETURNED_HEADERS)), ownRecipients);
  }
  const status = part(DELIVERY_STATUS);
  if (reportType === 'delivery-status' || status) {
    return readDsn(status, await returnedHeaders(part(RETURNED_HEADERS)), ownRecipients);
  }
  const from = addresses(mail.from)[0] ?? '';
  const subject = mail.subject ?? '';
  // Bounces come from a null envelope sender; over IMAP that is unknown, so the subject must do.
  const bounceLike = BOUNCE_SUBJECT.test(subject) && !REPLY_SUBJECT.test(subject) && !envelope.mailFrom;
  if (BOUNCE_SENDER.test(from) || bounceLike) {
    return readFreeFormBounce(mail, await returnedHeaders(part(RETURNED_HEADERS)), ownRecipients);
  }
  const repliedTo = [...idsIn(headerText(mail, 'in-reply-to')), ...referencesNewestFirst(mail)].slice(0, MAX_IDS);
  if (isAutomatic(mail)) return { kind: 'auto_reply', verpCandidates: ownRecipients, messageIds: repliedTo };
  if (repliedTo.length > 0) return { kind: 'reply', verpCandidates: ownRecipients, messageIds: repliedTo };
  return { kind: 'other', verpCandidates: [], messageIds: [] };
}

function readComplaint(part: Attachment | undefined, original: OriginalHeaders, own: string[]): ReadReport {
  const verpCandidates = [...own, ...original.returnPath];
  if (!part) return { kind: 'other', verpCandidates, messageIds: original.messageIds, problem: 'a feedback report without its message/feedback-report part' };
  const report = readFeedbackReport(part.content.toString('utf8'));
  if (report.originalMailFrom) verpCandidates.push(report.originalMailFrom);
  // RFC 5965 §3.5: "not-spam" says the opposite of a complaint.
  if (report.feedbackType === 'not-spam') return { kind: 'other', verpCandidates, messageIds: original.messageIds, problem: 'a not-spam report' };
  return { kind: 'complaint', verpCandidates, messageIds: original.messageIds };
}

function readDsn(part: Attachment | undefined, original: OriginalHeaders, own: string[]): ReadReport {
  const verpCandidates = [...own, ...original.returnPath];
  if (!part) return { kind: 'other', verpCandidates, messageIds: original.messageIds, problem: 'a delivery report without its message/delivery-status part' };
  const { recipients } = readDeliveryStatus(part.content.toString('utf8'));
  const failed = recipients.find((r) => r.action === 'failed') ?? recipients.find((r) => r.action === 'delayed');
  if (!failed) {
    const problem = recipients.length === 0 ? 'a delivery report naming no recipient' : 'a delivery report of success (delivered, relayed or expanded)';
    return { kind: 'other', verpCandidates, messageIds: original.messageIds, problem };
  }
  return { kind: 'bounce', bounce: dsnBounce(failed), verpCandidates, messageIds: original.messageIds };
}

function dsnBounce(r: DsnRecipient): Bounce {
  const diagnostic = r.diagnostic ? oneLine(r.diagnostic) : null;
  const status = r.status ?? null;
  return { type: r.action === 'failed' ? bounceType(status) : 'soft', status, diagnostic };
}

/** A bounce that is no DSN: the status code and the line it stands on, found in the text. */
function readFreeFormBounce(mail: ParsedMail, original: OriginalHeaders, own: string[]): ReadReport {
  const text = (mail.text ?? '').slice(0, SCAN_CHARS);
  const lines = text.split(/\r?\n/);
  const enhanced = lines.find((l) => ENHANCED_CODE.test(l));
  const basic = enhanced ? undefined : lines.find((l) => REPLY_CODE.test(l));
  let status: string | null = null;
  if (enhanced) status = ENHANCED_CODE.exec(enhanced)![0];
  else if (basic) status = `${REPLY_CODE.exec(basic)![1]}.0.0`;
  const line = enhanced ?? basic;
  const messageIds = original.messageIds.length > 0 ? original.messageIds : messageIdLines(text);
  return {
    kind: 'bounce',
    bounce: { type: status ? bounceType(status) : 'soft', status, diagnostic: line ? oneLine(line) : null },
    verpCandidates: [...own, ...original.returnPath],
    messageIds,
  };
}

/**
 * Hard when the status says the address itself is bad. Permanent failures that say nothing about
 * the address count as soft: a full mailbox (5.2.2), a message too big (5.2.3, 5.3.4) and policy
 * refusals such as spam blocks (5.7.x). No status at all is soft: nothing says it is permanent.
 */
export function bounceType(status: string | null): BounceType {
  if (!status?.startsWith('5.')) return 'soft';
  if (['5.2.2', '5.2.3', '5.3.4'].includes(status) || status.startsWith('5.7.')) return 'soft';
  return 'hard';
}

function isAutomatic(mail: ParsedMail): boolean {
  const autoSubmitted = headerText(mail, 'auto-submitted').toLowerCase();
  if (autoSubmitted && autoSubmitted !== 'no') return true;
  if (mail.headers.has('x-autoreply') || mail.headers.has('x-autorespond') || mail.headers.has('x-autoresponder')) return true;
  if (AUTO_PRECEDENCE.has(headerText(mail, 'precedence').toLowerCase())) return true;
  return AUTO_SUBJECT.test(mail.subject ?? '');
}

interface OriginalHeaders {
  messageIds: string[];
  returnPath: string[];
}

/** The Message-ID and Return-Path of the message a report returns (its headers, or all of it). */
async function returnedHeaders(part: Attachment | undefined): Promise<OriginalHeaders> {
  if (!part) return { messageIds: [], returnPath: [] };
  const text = part.content.subarray(0, MAX_HEAD_BYTES).toString('utf8');
  const head = text.split(/\r?\n\r?\n/, 1)[0] ?? '';
  try {
    const original = await (await mailParser())(`${head}\r\n\r\n`, { skipTextToHtml: true, skipHtmlToText: true, checksumAlgo: false });
    const messageIds = original.messageId ? idsIn(original.messageId) : [];
    return { messageIds: messageIds.length > 0 ? messageIds : messageIdLines(head), returnPath: headerAddresses(original, 'return-path') };
  } catch {
    return { messageIds: messageIdLines(head), returnPath: [] };
  }
}

/** Message-IDs on `Message-ID:` lines of text that quotes the original's headers. */
function messageIdLines(text: string): string[] {
  const ids: string[] = [];
  for (const m of text.matchAll(/^\s*message-id:\s*(<[^<>\r\n]+>)/gim)) if (ids.length < MAX_IDS) ids.push(m[1]!);
  return ids;
}

function referencesNewestFirst(mail: ParsedMail): string[] {
  const refs = mail.references === undefined ? [] : Array.isArray(mail.references) ? mail.references : [mail.references];
  return refs.flatMap(idsIn).reverse();
}

function idsIn(value: string): string[] {
  return [...value.matchAll(MESSAGE_ID)].map((m) => m[0]).slice(0, MAX_IDS);
}

function headerText(mail: Pick<ParsedMail, 'headers'>, name: string): string {
  const v = mail.headers.get(name);
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return '';
}

function addresses(v: AddressObject | AddressObject[] | undefined): string[] {
  if (!v) return [];
  return (Array.isArray(v) ? v : [v]).flatMap((a) => a.value.map((x) => x.address ?? '')).filter(Boolean);
}

/** An address header's addresses, whether mailparser parsed it (Return-Path, Delivered-To) or kept its text. */
function headerAddresses(mail: Pick<ParsedMail, 'headers'>, name: string): string[] {
  const v = mail.headers.get(name);
  const values = Array.isArray(v) ? v : v === undefined ? [] : [v];
  return values.flatMap((x) => {
    if (typeof x === 'string') return [x.replace(/[<>\s]/g, '')];
    if (x && typeof x === 'object' && 'value' in x && Array.isArray(x.value)) return addresses(x as AddressObject);
    return [];
  });
}

/** One line of printable text: control characters become spaces, runs of space one. */
function oneLine(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(/\s+/g, ' ').trim().slice(0, DIAGNOSTIC_CHARS);
}
