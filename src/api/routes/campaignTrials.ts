import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import type { Queryable } from '../../db/database.ts';
import { getCampaign, type Campaign } from '../../db/campaigns.ts';
import { findListContact } from '../../db/contacts.ts';
import { accountDkimKey, getSenderAccount, loadSendingAccount } from '../../db/smtpAccounts.ts';
import { releaseSends, reserveSends } from '../../db/usage.ts';
import { oneOffMessageId, prepareCampaign, recipientVars, renderFor, type Recipient } from '../../engine/renderer.ts';
import type { SendOutcome } from '../../smtp/classify.ts';
import { AccountTransport } from '../../smtp/transport.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { ApiError, conflict, invalid, notFound } from '../errors.ts';
import { email, id, idParams } from '../schemas.ts';

/**
 * Trying a campaign before sending it: a preview rendered for one contact, and one real test message
 * through one of the user's accounts. Neither touches the campaign's queue or counters; a test
 * message counts against the account's limits like any other send.
 */

const previewBody = z
  .object({
    /** A contact on the campaign's lists; without it, the first contact of its first list. */
    email: email.optional(),
    /** Or values given here, for an address on no list. */
    contact: z
      .object({ email, name: z.string().max(200).optional(), attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((b) => b.email === undefined || b.contact === undefined, { message: 'give email or contact, not both', path: ['contact'] });

const testBody = z.object({ email, accountId: id }).strict();

export function campaignTrialRoutes(app: ZodApp, ctx: AppContext): void {
  const campaignOf = async (db: Queryable, userId: number, campaignId: number): Promise<Campaign> => {
    const campaign = await getCampaign(db, userId, campaignId);
    if (!campaign) throw notFound('campaign');
    return campaign;
  };

  app.post('/api/v1/campaigns/:id/preview', { schema: { params: idParams, body: previewBody.nullish() } }, async (req) => {
    const userId = requireUser(req.caller);
    const campaign = await campaignOf(req.db, userId, req.params.id);
    const body = req.body ?? {};
    let recipient: Recipient | undefined;
    if (body.contact) recipient = { email: body.contact.email, name: body.contact.name ?? null, attributes: body.contact.attributes ?? {} };
    else {
      recipient = await findListContact(req.db, userId, campaign.listIds, body.email);
      if (!recipient) {
        throw body.email === undefined
          ? invalid('contact', "the campaign's lists have no contacts: give a contact to preview with")
          : invalid('email', "no contact with this address on the campaign's lists");
      }
    }
    const { templates } = prepareCampaign(campaign);
    const vars = recipientVars(ctx, userId, campaign.id, recipient);
    return {
      to: { email: recipient.email, name: recipient.name },
      subject: templates.subject(vars),
      html: templates.html?.(vars) ?? null,
      text: templates.text?.(vars) ?? null,
    };
  });

  app.post('/api/v1/campaigns/:id/test', { schema: { params: idParams, body: testBody } }, async (req) => {
    const userId = requireUser(req.caller);
    const campaign = await campaignOf(req.db, userId, req.params.id);
    const { email: to, accountId } = req.body;
    const { secretKey } = ctx.secrets;
    const account = await loadSendingAccount(req.db, secretKey, userId, accountId);
    const sender = await getSenderAccount(req.db, userId, accountId);
    if (!account || !sender) throw invalid('accountId', 'no such SMTP account');
    if (!account.active || !account.server.active) throw conflict('account_inactive', 'this SMTP account or its server is switched off');

    // Personalised as the contact with this address when there is one.
    const contact = await findListContact(req.db, userId, campaign.listIds, to);
    const recipient = { email: to, name: contact?.name ?? null, attributes: contact?.attributes ?? {} };
    const messageId = oneOffMessageId(ctx);
    const dkim = accountDkimKey(secretKey, account.id, sender);
    const raw = renderFor(ctx, prepareCampaign(campaign), recipient, { userId, email: account.email, dkim }, messageId);

    const reservation = await reserveSends(req.db, account.id, 1, ctx.clock.now());
    if (reservation.granted === 0) throw conflict('account_at_limit', 'this SMTP account is at its hourly or daily limit');
    const transport = new AccountTransport(account.server, account, 1);
    let outcome: SendOutcome;
    try {
      outcome = await transport.send(account.email, to, raw);
    } finally {
      transport.close();
    }
    if (outcome.kind === 'sent' || outcome.kind === 'unknown') return { sent: true, email: to, accountId: account.id, messageId };
    // Nothing was delivered: the reserved send goes back.
    await releaseSends(req.db, account.id, reservation.hourStart, 1);
    throw new ApiError(502, 'smtp_error', `the SMTP server did not take the test message: ${outcome.error}`);
  });
}
