/**
 * The one place that decides what an SMTP result means (SMTP-FACTS.md, "Classify on reply code,
 * enhanced code and stage"). Nodemailer's err.code misleads (a 421 on MAIL arrives as EENVELOPE),
 * so this reads the reply code, the enhanced status code in the reply text, the stage (the command
 * that got the reply) and, when there was no reply at all, whether the final dot had gone out.
 */
export type SendOutcome =
  /** 2xx: delivered to the server. */
  | { kind: 'sent'; response: string }
  /** Temporary trouble with this message: retry it later, charging an attempt, at most `maxAttempts` in all. */
  | { kind: 'retry'; error: string; maxAttempts?: number }
  /** Permanent: the message fails. */
  | { kind: 'failed'; error: string; cause: FailureCause }
  /** The account is being throttled or cannot connect: it backs off; the message is not charged. */
  | { kind: 'account_throttled'; error: string }
  /** The provider says the account is out of quota: exhausted until its window resets. */
  | { kind: 'account_exhausted'; error: string }
  /**
   * The server refuses the account's credentials, or MailPilot refuses to connect or to send the
   * password (`refusedLocally`: the egress policy, AUTH without TLS): disabled until the user fixes it.
   */
  | { kind: 'account_disabled'; error: string; refusedLocally?: boolean }
  /** The connection dropped after the message data was sent: it may have been delivered. */
  | { kind: 'unknown'; error: string };

export type AccountOutcome = Extract<SendOutcome, { kind: 'account_throttled' | 'account_exhausted' | 'account_disabled' }>;

/**
 * Why a message failed for good: `hard_bounce` suppresses the address for the user; `sender_config`
 * (SPF/DKIM/DMARC) is surfaced on the campaign; `protocol` means MailPilot spoke wrongly and is logged loudly.
 */
export type FailureCause = 'hard_bounce' | 'rejected' | 'sender_config' | 'protocol' | 'local';

/** What nodemailer's SMTPConnection reports, plus whether the whole message (final dot) went out. */
export interface SmtpFailure {
  message: string;
  /** Nodemailer's error type (ECONNECTION, ETIMEDOUT, EAUTH, EENVELOPE, ...). */
  code?: string;
  responseCode?: number;
  response?: string;
  /** The command that failed: CONN, AUTH PLAIN, MAIL FROM, RCPT TO, DATA, API. */
  command?: string;
  /** True once the message and its final dot were handed to the connection. */
  dataSent?: boolean;
}

/** Mailbox full is a "persistent transient" failure (RFC 3463): a few tries, not the full five. */
export const MAILBOX_FULL_ATTEMPTS = 3;

const ENHANCED = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;
// The sending account's own allowance, as opposed to a recipient's mailbox being "over quota".
const SENDER_QUOTA_TEXT = /\b(daily|submission|sending)\b[^.]*\b(quota|limit)\b/i;
const THROTTLE_TEXT = /\brate\b|throttl|too many (connections|concurrent|messages)|try again later/i;
// 5.1.7 and 5.1.8 blame the sender's address, 5.1.90 is Exchange's sending quota: not hard bounces.
const HARD_BOUNCE = /^5\.1\.([0-6]|10)$/;
const UNKNOWN_USER_TEXT = /user unknown|unknown user|no such (user|mailbox|recipient)|does not exist/i;
const SENDER_AUTHENTICATION = new Set(['5.7.26', '5.7.27', '5.7.30', '5.7.32', '5.7.515']);
const PROTOCOL_ERRORS = new Set([500, 501, 503]);

function describe(err: SmtpFailure): string {
  return (err.response ?? err.message).trim().slice(0, 500);
}

function enhancedCode(reply: string): string {
  const m = ENHANCED.exec(reply);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : '';
}

/** A failure without any reply from the server: a dropped, refused or timed-out connection, or a local error. */
function classifyNoReply(err: SmtpFailure, error: string): SendOutcome {
  // The message went out and the reply never came (RFC 1047): it may have been delivered.
  if (err.dataSent) return { kind: 'unknown', error };
  if (err.code === 'EAUTH') return { kind: 'account_disabled', error };
  // A message the client itself refuses (bad address, too large) will not improve with time.
  if (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') return { kind: 'failed', error, cause: 'local' };
  // Before the final dot a drop counts as a 451 (RFC 5321 §3.8), and a refused or timed-out
  // connection or a TLS failure is the account's path to its server: the account backs off.
  return { kind: 'account_throttled', error };
}

export function classifyError(err: SmtpFailure): SendOutcome {
  const error = describe(err);
  const code = err.responseCode;
  if (code === undefined) return classifyNoReply(err, error);
  const reply = err.response ?? '';
  const enhanced = enhancedCode(reply);
  const stage = (err.command ?? '').toUpperCase();
  const atAuth = stage.startsWith('AUTH') || err.code === 'EAUTH';

  if (code >= 200 && code < 300) return { kind: 'sent', response: error };
  // Provider quota of the sending account, even when dressed as 5xx.
  if (enhanced === '5.4.5' || enhanced === '5.1.90' || SENDER_QUOTA_TEXT.test(reply)) return { kind: 'account_exhausted', error };
  if (code === 535 || (code === 530 && enhanced === '5.7.0') || (atAuth && code >= 500)) return { kind: 'account_disabled', error };
  // Rate-limit wording counts only without an enhanced code: "450 4.2.1 ... receiving mail at a rate"
  // is about one busy recipient, not about this account.
  const throttleText = enhanced === '' && THROTTLE_TEXT.test(reply);
  if (code === 421 || code === 432 || (code >= 400 && code < 500 && (atAuth || enhanced.startsWith('4.7.') || throttleText))) {
    return { kind: 'account_throttled', error };
  }
  if (code >= 400 && code < 500) return { kind: 'retry', error };
  if (enhanced === '5.2.2' || code === 552) return { kind: 'retry', error, maxAttempts: MAILBOX_FULL_ATTEMPTS };
  if (SENDER_AUTHENTICATION.has(enhanced)) return { kind: 'failed', error, cause: 'sender_config' };
  if (PROTOCOL_ERRORS.has(code)) return { kind: 'failed', error, cause: 'protocol' };
  const aboutRecipient = stage !== 'MAIL FROM';
  const unknownAddress = HARD_BOUNCE.test(enhanced) || (enhanced === '' && stage === 'RCPT TO' && UNKNOWN_USER_TEXT.test(reply));
  return { kind: 'failed', error, cause: aboutRecipient && unknownAddress ? 'hard_bounce' : 'rejected' };
}
