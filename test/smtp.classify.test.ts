import { describe, expect, it } from 'vitest';
import { classifyError, MAILBOX_FULL_ATTEMPTS, type SmtpFailure } from '../src/smtp/classify.ts';

/** A reply as nodemailer's SMTPConnection reports it: the reply text, its code, the command that got it. */
function reply(response: string, command: string, extra: Partial<SmtpFailure> = {}): SmtpFailure {
  return { message: `failed: ${response}`, code: 'EENVELOPE', response, responseCode: Number(response.slice(0, 3)), command, ...extra };
}

/** No reply at all: a dropped, refused or timed-out connection. */
function noReply(code: string, dataSent: boolean): SmtpFailure {
  return { message: 'Connection closed unexpectedly', code, command: 'CONN', dataSent };
}

describe('every SMTP reply class of SMTP-FACTS.md maps to one action', () => {
  const cases: [string, SmtpFailure, ReturnType<typeof classifyError>['kind'], Record<string, unknown>?][] = [
    // 421 anywhere closes the connection: the session ended, not the account; the message goes out again on a new one.
    ['421 greeting', reply('421 4.7.0 Try again later, closing connection.', 'CONN', { code: 'EPROTOCOL' }), 'session_ended'],
    ['Gmail 421 4.7.0 on MAIL', reply('421 4.7.0 Try again later, closing connection.', 'MAIL FROM'), 'session_ended'],
    ['421 on MAIL', reply('421 4.7.28 Our system has detected an unusual rate of unsolicited mail', 'MAIL FROM'), 'session_ended'],
    ['421 after the final dot', reply('421 4.4.2 closing connection', 'DATA', { code: 'EMESSAGE', dataSent: true }), 'session_ended'],
    ['drop before the final dot (RFC 5321 §3.8: a 451)', noReply('ECONNECTION', false), 'session_ended'],
    // One recipient per transaction: 452 4.5.3 means the session's allowance is spent.
    ['452 4.5.3 too many recipients', reply('452 4.5.3 Your message has too many recipients.', 'RCPT TO'), 'session_ended'],
    ['432 Exchange connections per mailbox', reply('432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded', 'MAIL FROM'), 'session_ended', { fewerConnections: true }],
    // The server says the account sends too fast: it backs off and restarts slower; the message is not charged.
    ['450 4.7.1 policy throttling', reply('450 4.7.1 Client host rejected: too many connections', 'RCPT TO'), 'account_throttled', { slowDown: true }],
    ['SES sending rate', reply('454 Throttling failure: Maximum sending rate exceeded.', 'MAIL FROM'), 'account_throttled', { slowDown: true }],
    ['Google relay peak', reply('450 4.2.1 Peak SMTP relay limit exceeded for customer. To protect our users, Gmail temporarily limits relay', 'MAIL FROM'), 'account_throttled', { slowDown: true }],
    // Trouble on the way to the server: it backs off, with no word about its pace.
    ['454 temporary auth failure', reply('454 4.7.0 Temporary authentication failure', 'AUTH PLAIN', { code: 'EAUTH' }), 'account_throttled', { slowDown: false }],
    ['connection refused', { message: 'connect ECONNREFUSED 127.0.0.1:2525', code: 'ESOCKET', command: 'CONN' }, 'account_throttled', { slowDown: false }],
    ['connection timeout', { message: 'Connection timeout', code: 'ETIMEDOUT', command: 'CONN' }, 'account_throttled', { slowDown: false }],
    ['TLS failure', { message: 'Error initiating TLS', code: 'ETLS', command: 'CONN' }, 'account_throttled', { slowDown: false }],
    ['token endpoint unavailable', { message: 'the token endpoint answered HTTP 503', code: 'EAUTH', command: 'AUTH XOAUTH2', token: 'unavailable' }, 'account_throttled', { slowDown: false }],
    // After the final dot with no reply the outcome is unknown: possibly delivered, never resent.
    ['drop after the final dot', noReply('ECONNECTION', true), 'unknown'],
    ['timeout after the final dot', noReply('ETIMEDOUT', true), 'unknown'],
    // Temporary trouble with the message: retried with back-off.
    ['450 4.2.1 busy recipient', reply('450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages', 'RCPT TO'), 'retry'],
    ['451 4.3.0', reply('451 4.3.0 Mail server temporarily rejected message.', 'RCPT TO'), 'retry'],
    ['451 4.4.2 after data', reply('451 4.4.2 Timeout waiting for data', 'DATA', { code: 'EMESSAGE', dataSent: true }), 'retry'],
    ['452 4.2.2 mailbox full (temporary)', reply('452 4.2.2 The email account that you tried to reach is over quota.', 'RCPT TO'), 'retry'],
    ['greylisting 451 4.7.1', reply('451 4.7.1 Greylisting in action, please come back later', 'RCPT TO'), 'retry'],
    ['552 5.2.2 mailbox full', reply('552 5.2.2 The email account that you tried to reach is over quota.', 'RCPT TO'), 'retry', { maxAttempts: MAILBOX_FULL_ATTEMPTS }],
    // The sending account's provider quota, even dressed as 5xx: exhausted until its window resets.
    ['Gmail daily quota', reply('550 5.4.5 Daily user sending quota exceeded.', 'MAIL FROM'), 'account_exhausted'],
    ['Exchange submission quota', reply('554 5.2.2 mailbox full; STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Submission quota exceeded', 'DATA'), 'account_exhausted'],
    ['Exchange recipient rate', reply('550 5.1.90 Your message can\'t be sent because you\'ve reached your daily limit for message recipients', 'RCPT TO'), 'account_exhausted'],
    ['SES daily quota', reply('454 Throttling failure: Daily message quota exceeded.', 'MAIL FROM'), 'account_exhausted'],
    // Credentials refused: the account is disabled until its user fixes it.
    ['535 bad credentials', reply('535 5.7.8 Authentication credentials invalid', 'AUTH PLAIN', { code: 'EAUTH' }), 'account_disabled', { cause: 'credentials' }],
    ['530 5.7.0 authentication required', reply('530 5.7.0 Authentication required', 'MAIL FROM'), 'account_disabled', { cause: 'credentials' }],
    ['missing credentials', { message: 'Missing credentials for "PLAIN"', code: 'EAUTH', command: 'API' }, 'account_disabled', { cause: 'credentials' }],
    ['XOAUTH2 token refused twice', reply('535 5.7.8 Username and Password not accepted', 'AUTH XOAUTH2', { code: 'EAUTH' }), 'account_disabled', { cause: 'credentials' }],
    // Microsoft 365 with basic auth off: the password itself is refused, OAuth2 is the way on.
    ['550 5.7.30 basic auth off at AUTH', reply('550 5.7.30 Basic authentication is not supported for Client Submission.', 'AUTH LOGIN', { code: 'EAUTH' }), 'account_disabled', { cause: 'basic_auth_off' }],
    ['550 5.7.30 basic auth off at MAIL', reply('550 5.7.30 Basic authentication is not supported for Client Submission.', 'MAIL FROM'), 'account_disabled', { cause: 'basic_auth_off' }],
    // The token endpoint: invalid_grant is consent revoked or expired; any other refusal needs the user too.
    ['OAuth2 consent revoked', { message: 'the token endpoint answered invalid_grant', code: 'EAUTH', command: 'AUTH XOAUTH2', token: 'invalid_grant' }, 'account_disabled', { cause: 'oauth_revoked' }],
    ['OAuth2 client refused', { message: 'the token endpoint refused the request (HTTP 401, invalid_client)', code: 'EAUTH', command: 'AUTH XOAUTH2', token: 'refused' }, 'account_disabled', { cause: 'oauth_refused' }],
    // Permanent failures of the message.
    ['550 5.1.1 unknown user', reply('550 5.1.1 The email account that you tried to reach does not exist.', 'RCPT TO'), 'failed', { cause: 'hard_bounce' }],
    ['550 5.1.10 null MX', reply('550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup', 'RCPT TO'), 'failed', { cause: 'hard_bounce' }],
    ['550 5.1.2 bad domain', reply('550 5.1.2 Host unknown', 'RCPT TO'), 'failed', { cause: 'hard_bounce' }],
    ['550 unknown user without enhanced code', reply('550 No such user here', 'RCPT TO'), 'failed', { cause: 'hard_bounce' }],
    ['553 5.1.7 bad sender address is not a bounce', reply('553 5.1.7 The sender address is invalid', 'MAIL FROM'), 'failed', { cause: 'rejected' }],
    ['550 5.7.1 spam', reply('550 5.7.1 Message rejected as spam', 'DATA', { code: 'EMESSAGE', dataSent: true }), 'failed', { cause: 'rejected' }],
    ['550 5.7.30 at DATA is Gmail\'s sender authentication, not basic auth', reply('550 5.7.30 The message does not meet the authentication requirements', 'DATA'), 'failed', { cause: 'sender_config' }],
    ['550 5.7.26 DMARC', reply('550 5.7.26 Unauthenticated email from example.com is not accepted due to domain\'s DMARC policy', 'DATA'), 'failed', { cause: 'sender_config' }],
    ['550 5.7.515 Outlook authentication', reply('550 5.7.515 Access denied, sending domain does not meet the required authentication level', 'DATA'), 'failed', { cause: 'sender_config' }],
    ['500 syntax error', reply('500 5.5.2 Syntax error, command unrecognized', 'MAIL FROM'), 'failed', { cause: 'protocol' }],
    ['503 bad sequence', reply('503 5.5.1 Bad sequence of commands', 'RCPT TO'), 'failed', { cause: 'protocol' }],
  ];

  it.each(cases)('%s', (_name, failure, kind, extra) => {
    const outcome = classifyError(failure);
    expect(outcome.kind).toBe(kind);
    if (extra) expect(outcome).toMatchObject(extra);
    if (outcome.kind !== 'sent') expect(outcome.error.length).toBeGreaterThan(0);
  });
});
