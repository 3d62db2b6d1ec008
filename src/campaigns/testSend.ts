import type { AppContext } from '../context.ts';
import type { Campaign } from '../db/campaigns.ts';
import { findListContact } from '../db/contacts.ts';
import type { Database } from '../db/database.ts';
import { credentials, loadSendingAccount } from '../db/sendingAccounts.ts';
import { accountDkimKey } from '../db/smtpAccounts.ts';
import { AppError, conflict, invalid } from '../errors.ts';
import type { SendOutcome } from '../smtp/classify.ts';
import { countTestSend, giveBack, reserveSends, type Reservation } from '../sendingPolicy/reservation.ts';
import { AccountTransport } from '../smtp/transport.ts';
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

/**
 * One real message of a campaign, to one address, through one of the user's accounts: composed as
 * the campaign's messages are (personalised as the contact with this address when there is one),
 * counted against the account's limits like any send, and given back when nothing went out. The
 * campaign's queue and counters are not touched.
 *
 * Errors: 422 `accountId` (no such account), 409 `account_inactive` or `account_at_limit`,
 * 502 `smtp_error` (the server did not take the message).
 */
export async function sendTestMessage(
  ctx: Pick<AppContext, 'clock' | 'secrets' | 'config'> & { db: Database },
  userId: number,
  campaign: Campaign,
  to: string,
  accountId: number,
): Promise<TestSendResult> {
  const { secretKey } = ctx.secrets;
  const account = await loadSendingAccount(ctx.db, userId, accountId);
  if (!account) throw invalid('accountId', 'no such SMTP account');
  const auth = credentials(secretKey, account);
  if (!account.active) throw conflict('account_inactive', 'this SMTP account or its server is switched off');

  const contact = await findListContact(ctx.db, userId, campaign.listIds, to);
  const recipient = { email: to, name: contact?.name ?? null, attributes: contact?.attributes ?? {} };
  const messageId = oneOffMessageId(ctx);
  const dkim = accountDkimKey(secretKey, account.id, account);
  const raw = composeMessage(ctx, prepareCampaign(campaign), recipient, { userId, email: account.email, dkim }, messageId);

  const reservation = await reserveSends(ctx.db, account.id, 1, ctx.clock.now());
  if (reservation.granted === 0) throw conflict('account_at_limit', atLimit(reservation));
  const startedAt = ctx.clock.now();
  const transport = new AccountTransport(account.server, auth, 1);
  let outcome: SendOutcome;
  try {
    outcome = await transport.send(account.email, to, raw);
  } finally {
    transport.close();
  }
  if (outcome.kind === 'sent' || outcome.kind === 'unknown') {
    await countTestSend(ctx.db, account.id, reservation.holdId, startedAt);
    return { sent: true, email: to, accountId: account.id, messageId };
  }
  // Nothing was delivered: the reserved send goes back.
  await giveBack(ctx.db, reservation.holdId, 1);
  throw new AppError(502, 'smtp_error', `the SMTP server did not take the test message: ${outcome.error}`);
}
