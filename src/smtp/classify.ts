/**
 * The one place that decides what an SMTP result means (SMTP-FACTS.md, "Classify on reply code,
 * enhanced code and stage"). Nodemailer's err.code misleads (a 421 on MAIL arrives as EENVELOPE),
 * so this reads the reply code, the enhanced status code in the reply text, and the stage.
 */
export type SendOutcome =
  /** 2xx: delivered to the server. */
  | { kind: 'sent'; response: string }
  /** Temporary trouble with this message: retry it later, charging an attempt. */
  | { kind: 'retry'; error: string }
  /** Permanent: the message fails; `suppress` when the address does not exist (hard bounce). */
  | { kind: 'failed'; error: string; suppress: boolean }
  /** The account is being throttled or cannot connect: it backs off; the message is not charged. */
  | { kind: 'account_throttled'; error: string }
  /** The provider says the account is out of quota: exhausted until its window resets. */
  | { kind: 'account_exhausted'; error: string }
  /** The server refuses the account's credentials: disabled until the user fixes it. */
  | { kind: 'account_disabled'; error: string }
  /** The connection dropped after the message data was sent: it may have been delivered. */
  | { kind: 'unknown'; error: string };

export interface SmtpError {
  message: string;
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

const ENHANCED = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;
const QUOTA_TEXT = /quota|limit exceeded|too many messages/i;
const THROTTLE_TEXT = /rate|throttl|too many (connections|concurrent)|try again later/i;
const HARD_BOUNCE = /^5\.1\.(1|2|10)$/;
const CONNECTION_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'ECONNREFUSED', 'EPROTOCOL']);

function describe(err: SmtpError): string {
  return (err.response ?? err.message).trim().slice(0, 500);
}

export function classifyError(err: SmtpError): SendOutcome {
  const error = describe(err);
  const code = err.responseCode;
  const enhanced = ENHANCED.exec(err.response ?? '')?.slice(0, 4).slice(1).join('.') ?? '';
  const stage = (err.command ?? '').toUpperCase();

  if (code === undefined) {
    // No reply at all: the connection failed or dropped. After the data went out the outcome is unknown.
    if (stage === 'DATA' || stage === 'MESSAGE' || stage.startsWith('DATA')) return { kind: 'unknown', error };
    if (err.code === 'EAUTH') return { kind: 'account_disabled', error };
    if (err.code && CONNECTION_CODES.has(err.code)) return { kind: 'account_throttled', error };
    return { kind: 'retry', error };
  }
  // Provider quota of the sending account, even when dressed as 5xx.
  if (enhanced === '5.4.5' || enhanced === '5.1.90' || (code === 454 && QUOTA_TEXT.test(error)) || (enhanced === '5.2.2' && code === 554 && QUOTA_TEXT.test(error))) {
    return { kind: 'account_exhausted', error };
  }
  if (code === 535 || (code === 530 && enhanced === '5.7.0') || enhanced === '5.7.30' || err.code === 'EAUTH') {
    return { kind: 'account_disabled', error };
  }
  if (code === 421 || code === 432 || (code >= 400 && code < 500 && (enhanced.startsWith('4.7.') || THROTTLE_TEXT.test(error)))) {
    return { kind: 'account_throttled', error };
  }
  if (code >= 200 && code < 300) return { kind: 'sent', response: error };
  if (code >= 400 && code < 500) return { kind: 'retry', error };
  // Mailbox full is a "persistent transient" failure (RFC 3463): worth a few more tries.
  if (enhanced === '5.2.2' || code === 552) return { kind: 'retry', error };
  return { kind: 'failed', error, suppress: HARD_BOUNCE.test(enhanced) };
}

/** A message handed to the server: accepted, unless the server rejected its one recipient. */
export function classifyInfo(info: { response?: string; rejectedErrors?: SmtpError[] }): SendOutcome {
  const rejection = info.rejectedErrors?.[0];
  if (rejection) return classifyError(rejection);
  return { kind: 'sent', response: (info.response ?? '').slice(0, 500) };
}
