import type { AppContext } from '../context.ts';
import type { Campaign } from '../db/campaigns.ts';
import { findListContact } from '../db/contacts.ts';
import type { Database } from '../db/database.ts';
import { accountAccessTokens, credentials, loadSendingAccount, type SendingAccount } from '../db/sendingAccounts.ts';
import { accountDkimKey, getAccount } from '../db/smtpAccounts.ts';
import { AppError, conflict, invalid } from '../errors.ts';
import { countTestSend, giveBack, reserveSends, type Reservation } from '../sendingPolicy/reservation.ts';
import { AccountTransport, transportOptions, type AccountCredentials, type SessionTimeouts, type TransportOutcome } from '../smtp/transport.ts';
import { envelopeSender } from '../reports/verp.ts';
import { composeMessage, oneOffMessageId, prepareCampaign } from './composition.ts';

/** Why the account may not send now, for the user. */
function atLimit(r: Reservation): string {
  const when = r.nextAt ? ` until ${r.nextAt.toISOString()}` : '';
  const why: Record<string, string> = {
    limits: 'is at its hourly or daily limit',
    warmup: "is at today's warm-up limit",
    domain_cap: "is at its domain's cap",
    sending_window: 'is outside its sending window',
    account_health: 'cannot send (see its health)',
  };
  return `this SMTP account ${why[r.reason ?? 'limits'] ?? why.limits}${when}`;
}

export interface TestSendResult {
  sent: true;
  email: string;
  accountId: number;
  messageId: string;
}

// The greeting may take a third of the deadline, at most this long.
const MAX_GREETING_MS = 10_000;

/**
 * One real message of a campaign, to one address, through one of the user's accounts: composed as
 * the campaign's messages are (personalised as the contact with this address when there is one),
 * counted against the account's limits like any send, and given back when nothing went out. The
 * campaign's queue and counters are not touched.
 *
 * `ctx.db` must run each query in a transaction of its own (a tenant scope, not a request's
 * transaction): the quota is reserved in one short transaction, the SMTP conversation holds no
 * connection and no lock, and a send that went nowhere is given back in another. The whole send has
 * a deadline (`config.testSendTimeoutMs`).
 *
 * Errors: 422 `accountId` (no such account), 409 `account_inactive`, `account_disabled` or
 * `account_at_limit`, 409 `smtp_host_refused` (the egress policy) or `plaintext_auth_refused`,
 * 502 `smtp_error` (the server did not take the message, or did not answer as an SMTP server),
 * 504 `smtp_timeout` (no answer within the deadline).
 */
export async function sendTestMessage(
  ctx: Pick<AppContext, 'clock' | 'secrets' | 'config' | 'log'> & { db: Database },
  userId: number,
  campaign: Campaign,
  to: string,
  accountId: number,
): Promise<TestSendResult> {
  const { secretKey } = ctx.secrets;
  // The deadline counts from here: slow database work before the conversation shortens the conversation.
  const deadlineAt = performance.now() + ctx.config.testSendTimeoutMs;
  const [account, view] = await Promise.all([loadSendingAccount(ctx.db, userId, accountId), getAccount(ctx.db, userId, accountId)]);
  if (!account || !view) throw invalid('accountId', 'no such SMTP account');
  const { username, password, oauth } = credentials(secretKey, account);
  const auth: AccountCredentials = { username, password, xoauth2: oauth ? accountAccessTokens(ctx).source(account.id, oauth) : undefined };
  if (!account.active) throw conflict('account_inactive', 'this SMTP account or its server is switched off');
  if (view.health === 'disabled') throw conflict('account_disabled', `this SMTP account is disabled: ${view.healthReason ?? 'see its health'}`);
  if (view.health === 'paused') throw conflict('account_paused', `this SMTP account is paused: ${view.healthReason ?? 'see its health'}`);

  const contact = await findListContact(ctx.db, userId, campaign.listIds, to);
  const recipient = { email: to, name: contact?.name ?? null, attributes: contact?.attributes ?? {} };
  const messageId = oneOffMessageId(ctx);
  const dkim = accountDkimKey(secretKey, account.id, account);
  const raw = composeMessage(ctx, prepareCampaign(campaign), recipient, { userId, email: account.email, dkim }, messageId);

  const reservation = await reserveSends(ctx.db, account.id, 1, ctx.clock.now());
  if (reservation.granted === 0) throw conflict('account_at_limit', atLimit(reservation));
  const unspent = () => giveBack(ctx.db, reservation.holdId, 1);
  const startedAt = ctx.clock.now();
  let outcome: TransportOutcome;
  try {
    // With a bounce domain, a test message's bounce comes back there too (message 0: it changes nothing).
    const from = envelopeSender(secretKey, account, { messageId: 0, userId });
    outcome = await sendWithin(ctx.config, deadlineAt, account, auth, from, to, raw);
  } catch (err) {
    await unspent();
    throw err;
  }
  const seconds = ctx.config.testSendTimeoutMs / 1000;
  // The message went out (its reply may have been lost): it counts as a send.
  if (outcome.kind === 'sent' || outcome.kind === 'unknown') await countTestSend(ctx.db, account.id, reservation.holdId, startedAt);
  if (outcome.kind === 'unknown' && outcome.problem === 'timed_out') {
    throw new AppError(504, 'smtp_timeout', `the SMTP server did not confirm the test message within ${seconds} s: ${outcome.error}; it may have been delivered`);
  }
  if (outcome.kind === 'sent' || outcome.kind === 'unknown') return { sent: true, email: to, accountId: account.id, messageId };
  await unspent();
  if (outcome.problem === 'timed_out') throw new AppError(504, 'smtp_timeout', `the test message was not sent within ${seconds} s: ${outcome.error}`);
  if (outcome.problem === 'egress_denied') throw conflict('smtp_host_refused', `the test message was not sent: ${outcome.error}`);
  if (outcome.problem === 'plaintext_auth') throw conflict('plaintext_auth_refused', `the test message was not sent: ${outcome.error}`);
  throw new AppError(502, 'smtp_error', `the SMTP server did not take the test message: ${outcome.error}`);
}

function testSendTimeouts(deadlineMs: number): SessionTimeouts {
  const greetingMs = Math.min(MAX_GREETING_MS, Math.round(deadlineMs / 3));
  return { greetingMs, socketMs: deadlineMs, openMs: deadlineMs, sendMs: deadlineMs };
}

/**
 * Sends over a session of its own, cut at `deadlineAt` (performance.now() time). The transport
 * reports a peer that did not answer as an SMTP server no sooner than a silent one (the greeting's
 * wait), so a closed port, a silent one and one that speaks another protocol look the same, in time
 * as in words.
 */
async function sendWithin(
  config: AppContext['config'],
  deadlineAt: number,
  account: SendingAccount,
  auth: AccountCredentials,
  from: string,
  to: string,
  raw: string,
): Promise<TransportOutcome> {
  const timeouts = testSendTimeouts(config.testSendTimeoutMs);
  const transport = new AccountTransport(account.server, auth, 1, transportOptions(config, timeouts));
  const deadline = setTimeout(() => transport.close('timed_out'), Math.max(0, deadlineAt - performance.now()));
  try {
    return await transport.send(from, to, raw);
  } finally {
    clearTimeout(deadline);
    transport.close();
  }
}
