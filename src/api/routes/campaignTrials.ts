import { z } from 'zod';
import { previewMessage, type Recipient } from '../../campaigns/composition.ts';
import { sendTestMessage } from '../../campaigns/testSend.ts';
import type { AppContext } from '../../context.ts';
import type { Queryable } from '../../db/database.ts';
import { getCampaign, type Campaign } from '../../db/campaigns.ts';
import { findListContact } from '../../db/contacts.ts';
import { invalid, notFound } from '../../errors.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { contactAttributes, contactName, email, id, idParams } from '../schemas.ts';

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
      .object({ email, name: contactName.optional(), attributes: contactAttributes.optional() })
      .strict()
      .optional(),
  })
  .strict()
  .refine((b) => b.email === undefined || b.contact === undefined, { message: 'give email or contact, not both', path: ['contact'] });

const testBody = z.object({ email, accountId: id }).strict();

const previewReply = z.object({
  to: z.object({ email: z.string(), name: z.string().nullable() }),
  subject: z.string(),
  html: z.string().nullable(),
  text: z.string().nullable(),
});
const testReply = z.object({ sent: z.literal(true), email: z.string(), accountId: id, messageId: z.string().describe('the Message-ID header, with its angle brackets') });

export function campaignTrialRoutes(app: ZodApp, ctx: AppContext): void {
  const campaignOf = async (db: Queryable, userId: number, campaignId: number): Promise<Campaign> => {
    const campaign = await getCampaign(db, userId, campaignId);
    if (!campaign) throw notFound('campaign');
    return campaign;
  };

  app.post('/api/v1/campaigns/:id/preview', { schema: { params: idParams, body: previewBody.nullish(), response: { 200: previewReply } } }, async (req) => {
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
    return { to: { email: recipient.email, name: recipient.name }, ...previewMessage(ctx, userId, campaign, recipient) };
  });

  // Per query: the SMTP conversation (and an OAuth2 token request) must hold no database connection (the reservation commits first).
  app.post('/api/v1/campaigns/:id/test', { schema: { params: idParams, body: testBody, response: { 200: testReply } }, config: { dbScope: 'per-query' } }, async (req) => {
    const userId = requireUser(req.caller);
    const campaign = await campaignOf(req.db, userId, req.params.id);
    return sendTestMessage({ ...ctx, db: req.db }, userId, campaign, req.body.email, req.body.accountId);
  });
}
