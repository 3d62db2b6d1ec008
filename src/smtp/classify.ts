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
  /**
   * The server ended or refused this session, not the account or the message (421, a drop before
   * the final dot, 452 4.5.3, 432 4.3.2): the message goes out again on a new connection, uncharged,
   * after a short back-off. `fewerConnections`: the server allows fewer concurrent connections.
   */
  | { kind: 'session_ended'; error: string; fewerConnections?: boolean }
  /**
   * The account is being throttled or cannot reach its server: it backs off; the message is not
   * charged. `slowDown`: the server says the account sends too fast, so it restarts at a slower pace.
   */
  | { kind: 'account_throttled'; error: string; slowDown: boolean }
  /** The provider says the account is out of quota: exhausted until its window clears. */
  | { kind: 'account_exhausted'; error: string }
  /**
   * The account cannot send: the server refuses its credentials, or MailPilot refuses to connect or
   * to send the password (`refused_locally`: the egress policy, AUTH without TLS). Disabled until the
   * user fixes it.
   */
  | { kind: 'account_disabled'; error: string; cause: DisabledCause }
  /** The connection dropped after the message data was sent: it may have been delivered. */
  | { kind: 'unknown'; error: string };

export type AccountOutcome = Extract<SendOutcome, { kind: 'account_throttled' | 'account_exhausted' | 'account_disabled' }>;

/**
 * Why an account cannot authenticate: `credentials` refused; `basic_auth_off` (Microsoft 365
 * 5.7.30: passwords no longer accepted, OAuth2 is the way on); `oauth_revoked` (the token endpoint
 * answered invalid_grant: consent revoked or expired); `oauth_refused` (it refused the request
 * otherwise: client id or secret, token URL).
 */
export type DisabledCause = 'credentials' | 'basic_auth_off' | 'oauth_revoked' | 'oauth_refused' | 'refused_locally';

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
  /** Set when no OAuth2 access token could be had (smtp/oauthTokens.ts): what the token endpoint said. */
  token?: TokenFailure;
}

/**
 * Why no access token could be had: the token endpoint answered `invalid_grant` (the consent is
 * gone), refused the request otherwise (client id or secret, URL), or was unavailable for now.
 */
export type TokenFailure = 'invalid_grant' | 'refused' | 'unavailable';

/** Mailbox full is a "persistent transient" failure (RFC 3463): a few tries, not the full five. */
export const MAILBOX_FULL_ATTEMPTS = 3;

const ENHANCED = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;
// The sending account's own allowance, as opposed to a recipient's mailbox being "over quota".
const SENDER_QUOTA_TEXT = /\b(daily|submission|sending)\b[^.]*\b(quota|limit)\b/i;
const THROTTLE_TEXT = /\brate\b|throttl|too many (connections|concurrent|messages)|try again later/i;
// Google Workspace's SMTP relay: "450 4.2.1 Peak SMTP relay limit exceeded for customer" is the
// account's pace; a bare 4.2.1 is one busy recipient (SMTP-FACTS, provider limits).
const RELAY_LIMIT_TEXT = /\brelay limit\b/i;
// Greylisting answers 4xx (often 451 4.7.1) to a new sender/recipient pair: that recipient, later.
const GREYLIST_TEXT = /gr[ae]y-?list/i;
// Microsoft 365 with basic SMTP AUTH off (MC786329): the password itself is no longer accepted.
const BASIC_AUTH_OFF_TEXT = /basic authentication is not supported/i;
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

/** No access token could be had: the account's consent or client is refused, or the endpoint is away for now. */
function classifyTokenFailure(token: TokenFailure, error: string): SendOutcome {
  if (token === 'invalid_grant') return { kind: 'account_disabled', error, cause: 'oauth_revoked' };
  if (token === 'refused') return { kind: 'account_disabled', error, cause: 'oauth_refused' };
  return { kind: 'account_throttled', error, slowDown: false };
}

/** A failure without any reply from the server: a dropped, refused or timed-out connection, or a local error. */
function classifyNoReply(err: SmtpFailure, error: string): SendOutcome {
  // The message went out and the reply never came (RFC 1047): it may have been delivered.
  if (err.dataSent) return { kind: 'unknown', error };
  if (err.code === 'EAUTH') return { kind: 'account_disabled', error, cause: 'credentials' };
  // A message the client itself refuses (bad address, too large) will not improve with time.
  if (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') return { kind: 'failed', error, cause: 'local' };
  // A connection that was up and closed before the final dot: a drop counts as a 451 (RFC 5321
  // §3.8) on that session; the next one may well work.
  if (err.code === 'ECONNECTION') return { kind: 'session_ended', error };
  // A refused or timed-out connection or a TLS failure is the account's path to its server: it backs off.
  return { kind: 'account_throttled', error, slowDown: false };
}

export function classifyError(err: SmtpFailure): SendOutcome {
  const error = describe(err);
  if (err.token) return classifyTokenFailure(err.token, error);
  const code = err.responseCode;
  if (code === undefined) return classifyNoReply(err, error);
  const reply = err.response ?? '';
  const enhanced = enhancedCode(reply);
  const stage = (err.command ?? '').toUpperCase();
  const atAuth = stage.startsWith('AUTH') || err.code === 'EAUTH';

  if (code >= 200 && code < 300) return { kind: 'sent', response: error };
  // Provider quota of the sending account, even when dressed as 5xx.
  if (enhanced === '5.4.5' || enhanced === '5.1.90' || SENDER_QUOTA_TEXT.test(reply)) return { kind: 'account_exhausted', error };
  if (BASIC_AUTH_OFF_TEXT.test(reply) || (enhanced === '5.7.30' && (atAuth || stage === 'MAIL FROM'))) {
    return { kind: 'account_disabled', error, cause: 'basic_auth_off' };
  }
  if (code === 535 || (code === 530 && enhanced === '5.7.0') || (atAuth && code >= 500)) return { kind: 'account_disabled', error, cause: 'credentials' };
  // 421 closes the connection (RFC 5321 §3.8), whatever came before: the session, not the account.
  // 452 4.5.3 with one recipient per transaction means the session's recipient allowance is spent.
  if (code === 421 || (code === 452 && enhanced === '4.5.3')) return { kind: 'session_ended', error };
  // Exchange Online: more than 3 concurrent connections per mailbox.
  if (code === 432) return { kind: 'session_ended', error, fewerConnections: true };
  if (code >= 400 && code < 500 && GREYLIST_TEXT.test(reply)) return { kind: 'retry', error };
  if (code >= 400 && code < 500 && atAuth) return { kind: 'account_throttled', error, slowDown: false };
  // Rate-limit wording counts only without an enhanced code: "450 4.2.1 ... receiving mail at a rate"
  // is about one busy recipient, not about this account.
  const throttleText = enhanced === '' && THROTTLE_TEXT.test(reply);
  if (code >= 400 && code < 500 && (enhanced.startsWith('4.7.') || throttleText || RELAY_LIMIT_TEXT.test(reply))) {
    return { kind: 'account_throttled', error, slowDown: true };
  }
  if (code >= 400 && code < 500) return { kind: 'retry', error };
  if (enhanced === '5.2.2' || code === 552) return { kind: 'retry', error, maxAttempts: MAILBOX_FULL_ATTEMPTS };
  if (SENDER_AUTHENTICATION.has(enhanced)) return { kind: 'failed', error, cause: 'sender_config' };
  if (PROTOCOL_ERRORS.has(code)) return { kind: 'failed', error, cause: 'protocol' };
  const aboutRecipient = stage !== 'MAIL FROM';
  const unknownAddress = HARD_BOUNCE.test(enhanced) || (enhanced === '' && stage === 'RCPT TO' && UNKNOWN_USER_TEXT.test(reply));
  return { kind: 'failed', error, cause: aboutRecipient && unknownAddress ? 'hard_bounce' : 'rejected' };
}
