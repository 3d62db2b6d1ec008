import nodemailer from 'nodemailer';

/**
 * Real-shaped incoming messages, as providers send them: DSNs (RFC 3464, the way Postfix writes
 * them), ARF complaints (RFC 5965, as feedback loops send them), a non-standard bounce (qmail),
 * automatic replies (RFC 3834 and older conventions) and a person's reply.
 */

export interface Original {
  /** The Message-ID we sent, with angle brackets. */
  messageId: string;
  to: string;
  from?: string;
  /** The envelope sender we used (Return-Path of the original). */
  returnPath?: string;
}

const CRLF = '\r\n';
const lines = (...l: string[]) => l.join(CRLF);

function originalHeaders(o: Original): string {
  return lines(
    ...(o.returnPath ? [`Return-Path: <${o.returnPath}>`] : []),
    `From: "Spring Shop" <${o.from ?? 'news@shop.test'}>`,
    `To: <${o.to}>`,
    'Subject: Hello',
    `Message-ID: ${o.messageId}`,
    'Date: Mon, 02 Mar 2026 10:00:00 +0000',
  );
}

export function dsn(o: Original, p: { to: string; action?: string; status?: string; diagnostic?: string; full?: boolean }): string {
  const status = p.status ?? '5.1.1';
  return lines(
    'Return-Path: <>',
    'From: MAILER-DAEMON@mx.rcpt.test (Mail Delivery System)',
    `To: <${p.to}>`,
    'Subject: Undelivered Mail Returned to Sender',
    'Auto-Submitted: auto-replied',
    'Message-ID: <20260302100001.ABC@mx.rcpt.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-boundary"',
    '',
    '--dsn-boundary',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host mx.rcpt.test.',
    '',
    "I'm sorry to have to inform you that your message could not",
    'be delivered to one or more recipients.',
    '',
    '--dsn-boundary',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.rcpt.test',
    'Arrival-Date: Mon,  2 Mar 2026 10:00:01 +0000',
    '',
    `Final-Recipient: rfc822; ${o.to}`,
    `Original-Recipient: rfc822;${o.to}`,
    `Action: ${p.action ?? 'failed'}`,
    `Status: ${status}`,
    'Remote-MTA: dns; mx2.rcpt.test',
    ...(p.diagnostic
      ? [`Diagnostic-Code: smtp; ${p.diagnostic}`]
      : [`Diagnostic-Code: smtp; 550 ${status} <${o.to}>: Recipient address`, '    rejected: User unknown in local recipient table']),
    '',
    '--dsn-boundary',
    `Content-Type: ${p.full ? 'message/rfc822' : 'text/rfc822-headers'}`,
    '',
    originalHeaders(o),
    ...(p.full ? ['Content-Type: text/plain', '', 'Hi there'] : []),
    '',
    '--dsn-boundary--',
    '',
  );
}

export function arf(o: Original, p: { to: string; feedbackType?: string }): string {
  return lines(
    'From: feedbackloop@isp.test',
    `To: <${p.to}>`,
    'Subject: FW: Hello',
    'Message-ID: <fbl-1@isp.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="arf-boundary"',
    '',
    '--arf-boundary',
    'Content-Type: text/plain; charset="US-ASCII"',
    '',
    'This is an email abuse report for an email message received from IP 192.0.2.1.',
    '',
    '--arf-boundary',
    'Content-Type: message/feedback-report',
    '',
    `Feedback-Type: ${p.feedbackType ?? 'abuse'}`,
    'User-Agent: SomeGenerator/1.0',
    'Version: 1',
    ...(o.returnPath ? [`Original-Mail-From: <${o.returnPath}>`] : []),
    `Original-Rcpt-To: <${o.to}>`,
    'Arrival-Date: Mon, 02 Mar 2026 10:00:01 +0000',
    'Source-IP: 192.0.2.1',
    '',
    '--arf-boundary',
    'Content-Type: message/rfc822',
    'Content-Disposition: inline',
    '',
    originalHeaders(o),
    '',
    'Hi there',
    '',
    '--arf-boundary--',
    '',
  );
}

/** qmail's bounce: no DSN, the reason in the text, the original quoted after it. */
export function qmailBounce(o: Original, p: { to: string }): string {
  return lines(
    'From: MAILER-DAEMON@mail.rcpt.test',
    `To: ${p.to}`,
    'Subject: failure notice',
    'Message-ID: <qmail-1@mail.rcpt.test>',
    '',
    'Hi. This is the qmail-send program at mail.rcpt.test.',
    "I'm afraid I wasn't able to deliver your message to the following addresses.",
    'This is a permanent error; I\'ve given up. Sorry it didn\'t work out.',
    '',
    `<${o.to}>:`,
    `192.0.2.7 does not like recipient.`,
    'Remote host said: 550 5.1.1 mailbox unavailable',
    'Giving up on 192.0.2.7.',
    '',
    '--- Below this line is a copy of the message.',
    '',
    originalHeaders(o),
    '',
    'Hi there',
    '',
  );
}

export function autoReply(o: Original, p: { to: string; style: 'rfc3834' | 'subject' }): string {
  return lines(
    `From: <${o.to}>`,
    `To: <${p.to}>`,
    p.style === 'rfc3834' ? 'Subject: Re: Hello' : 'Subject: Out of Office: Hello',
    ...(p.style === 'rfc3834' ? ['Auto-Submitted: auto-replied'] : []),
    `In-Reply-To: ${o.messageId}`,
    `References: ${o.messageId}`,
    'Message-ID: <ooo-1@rcpt.test>',
    '',
    'I am away until Monday.',
    '',
  );
}

export function humanReply(o: Original, p: { to: string }): string {
  return lines(
    `From: "Ann" <${o.to}>`,
    `To: <${p.to}>`,
    'Subject: Re: Hello',
    `In-Reply-To: ${o.messageId}`,
    `References: <older@rcpt.test> ${o.messageId}`,
    'Message-ID: <reply-1@rcpt.test>',
    '',
    'Thanks, sounds good!',
    '',
  );
}

/** Delivers a raw message to MailPilot's inbound port as a mail server would (null sender by default). */
export async function deliverReport(
  port: number,
  to: string,
  raw: string | Buffer,
  from = '',
): Promise<{ ok: true } | { ok: false; code: number | undefined }> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    await transport.sendMail({ envelope: { from, to: [to] }, raw });
    return { ok: true };
  } catch (err) {
    return { ok: false, code: (err as { responseCode?: number }).responseCode };
  } finally {
    transport.close();
  }
}
