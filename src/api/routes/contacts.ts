import { z } from 'zod';
import { checkEmail } from '../../campaigns/emailAddress.ts';
import { announce } from '../../campaigns/statusEvents.ts';
import { BatchVerifier, VERIFICATION_REASONS, VERIFICATION_STATUSES, verifyAddress, type VerificationStatus } from '../../contacts/verification.ts';
import { LOOKUP_TIMEOUT_MS, MAIL_DOMAIN_ANSWERS, type MailDomains } from '../../contacts/mailDomains.ts';
import type { AppContext } from '../../context.ts';
import { contactAddresses, findContacts, getContact, setVerification, setVerifications, updateContact, deleteContact, type Contact } from '../../db/contacts.ts';
import { getList } from '../../db/lists.ts';
import { eraseAddress, heldMessages } from '../../db/dataProtection.ts';
import { findSuppression } from '../../db/suppressions.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { conflict, invalid, notFound } from '../../errors.ts';
import { BOUNCE_TYPES, MESSAGE_STATUSES } from '../../states.ts';
import { contactAttributes, contactName, email, id, idParams, idText, noBody, noContent, pageOf, timestamp } from '../schemas.ts';
import { suppressionReply } from './suppressions.ts';

const contactParams = z.object({ id: idText, contactId: idText }).strict();
const emailQuery = z.object({ email }).strict();
const eraseBody = z.object({ email }).strict();
/** A page of a list's contacts to verify: at most MAX_VERIFIED_PER_REQUEST, so one request's DNS work is bounded. */
const MAX_VERIFIED_PER_REQUEST = 10_000;
const verifyListQuery = z
  .object({ after: z.coerce.number().int().min(0).optional(), limit: z.coerce.number().int().min(1).max(MAX_VERIFIED_PER_REQUEST).default(1000) })
  .strict();
/** Any field; `name: null` clears the name, `attributes` replaces them all. */
const patchBody = z.object({ email, name: contactName.nullable(), attributes: contactAttributes }).partial().strict();

const count = z.number().int();

/** A contact's last verification (contacts/verification.ts Verification). */
const verificationReply = z.object({
  status: z.enum(VERIFICATION_STATUSES),
  reasons: z.array(z.enum(VERIFICATION_REASONS)).describe('why, in the order they are checked'),
  checks: z.object({
    syntax: z.boolean(),
    domain: z.enum(MAIL_DOMAIN_ANSWERS).describe('mx: takes mail through MX hosts; address: through its A/AAAA address; none: takes no mail; unknown: DNS did not answer in time'),
    disposable: z.boolean(),
    role: z.boolean(),
  }),
  checkedAt: z.iso.datetime(),
});

const contactReply = z.object({
  id,
  listId: id,
  listName: z.string(),
  email: z.string(),
  name: z.string().nullable(),
  attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  verification: verificationReply.nullable().describe('null: never verified'),
  suppressed: z.boolean().describe("the address is on the user's suppression list now"),
  createdAt: timestamp,
});

/** A page of a list verified: how many, and how many came out as each status. */
const listVerifiedReply = z.object({
  verified: count,
  ...(Object.fromEntries(VERIFICATION_STATUSES.map((s) => [s, count])) as Record<VerificationStatus, typeof count>),
  next: id.nullable().describe('the `after` of the following page; null after the last'),
});

/** What an export holds of one message (db/dataProtection.ts HeldMessage). */
const heldMessageReply = z.object({
  id,
  campaignId: id,
  campaignName: z.string(),
  email: z.string(),
  status: z.enum(MESSAGE_STATUSES),
  attempts: count,
  lastError: z.string().nullable(),
  sentAt: timestamp.nullable(),
  bounce: z.object({ type: z.enum(BOUNCE_TYPES), status: z.string().nullable(), diagnostic: z.string().nullable() }).nullable(),
  bouncedAt: timestamp.nullable(),
  complainedAt: timestamp.nullable(),
  repliedAt: timestamp.nullable(),
});

const exportReply = z.object({
  email: z.string(),
  exportedAt: timestamp,
  contacts: z.array(contactReply),
  messages: z.array(heldMessageReply).describe("the user's messages to the address, in campaigns that still keep per-recipient rows"),
  suppression: suppressionReply.nullable(),
});

const erasureReply = z.object({
  email: z.string(),
  erasedContacts: count,
  erasedMessages: count,
  suppressed: z.literal(true).describe('the address stays suppressed (reason erased) so no campaign writes to it again'),
});

/** The address as stored: trimmed, its domain lower-cased (campaigns/emailAddress.ts). */
function normalised(address: string): string {
  const checked = checkEmail(address);
  if ('problem' in checked) throw invalid('email', checked.problem.replace(/^email: /, ''));
  return checked.email;
}

function present(c: Contact) {
  return {
    id: c.id,
    listId: c.listId,
    listName: c.listName,
    email: c.email,
    name: c.name,
    attributes: c.attributes,
    verification: c.verification,
    suppressed: c.suppressed,
    createdAt: c.createdAt,
  };
}

/**
 * One contact at a time, an address across all of the user's lists, and data-protection requests:
 * everything held about an address (GDPR art. 15) and its erasure (art. 17).
 */
export function contactRoutes(app: ZodApp, ctx: AppContext, mailDomains: MailDomains): void {
  const found = async (db: Parameters<typeof getContact>[0], userId: number, listId: number, contactId: number) => {
    const contact = await getContact(db, userId, listId, contactId);
    if (!contact) throw notFound('contact');
    return contact;
  };

  app.get('/api/v1/lists/:id/contacts/:contactId', { schema: { params: contactParams, response: { 200: contactReply } } }, async (req) => {
    return present(await found(req.db, requireUser(req.caller), req.params.id, req.params.contactId));
  });

  app.patch('/api/v1/lists/:id/contacts/:contactId', { schema: { params: contactParams, body: patchBody, response: { 200: contactReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const { email: address, name, attributes } = req.body;
    const changes = { email: address === undefined ? undefined : normalised(address), name: name === null ? null : name?.trim() || undefined, attributes };
    const updated = await updateContact(req.db, userId, req.params.id, req.params.contactId, changes);
    if (updated === 'duplicate') throw conflict('duplicate_contact', `email: ${changes.email} is already on this list`);
    if (!updated) throw notFound('contact');
    return present(await found(req.db, userId, req.params.id, req.params.contactId));
  });

  app.delete('/api/v1/lists/:id/contacts/:contactId', { schema: { params: contactParams, body: noBody, response: { 204: noContent } } }, async (req, reply) => {
    if (!(await deleteContact(req.db, requireUser(req.caller), req.params.id, req.params.contactId))) throw notFound('contact');
    return reply.status(204).send();
  });

  // Verifies now (DNS at most mailDomains' lookup timeout) and keeps the result on the contact.
  app.post('/api/v1/lists/:id/contacts/:contactId/verify', { schema: { params: contactParams, body: noBody, response: { 200: contactReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const contact = await found(req.db, userId, req.params.id, req.params.contactId);
    const verification = await verifyAddress(mailDomains, contact.email, ctx.clock.now());
    await setVerification(req.db, userId, contact.id, verification);
    return present({ ...contact, verification });
  });

  // A list's contacts, a page at a time: `next` is the `after` of the following page, null after the last.
  app.post('/api/v1/lists/:id/verify', { schema: { params: idParams, querystring: verifyListQuery, body: noBody, response: { 200: listVerifiedReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    if (!(await getList(req.db, userId, req.params.id))) throw notFound('list');
    const page = await contactAddresses(req.db, userId, req.params.id, req.query.after ?? 0, req.query.limit);
    const verifier = new BatchVerifier(mailDomains, LOOKUP_TIMEOUT_MS);
    for (const c of page) verifier.prefetch(c.email);
    await verifier.settle(page.map((c) => c.email));
    const now = ctx.clock.now();
    const results = page.map((c) => ({ id: c.id, verification: verifier.verify(c.email, now) }));
    await setVerifications(req.db, userId, req.params.id, results);
    const counts: Record<VerificationStatus, number> = { deliverable: 0, undeliverable: 0, risky: 0, unknown: 0 };
    for (const r of results) counts[r.verification.status]++;
    return { verified: results.length, ...counts, next: results.length === req.query.limit ? page.at(-1)!.id : null };
  });

  app.get('/api/v1/contacts', { schema: { querystring: emailQuery, response: { 200: pageOf(contactReply) } } }, async (req) => {
    const contacts = await findContacts(req.db, requireUser(req.caller), req.query.email);
    return { items: contacts.map(present), next: null };
  });

  app.get('/api/v1/contacts/export', { schema: { querystring: emailQuery, response: { 200: exportReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const address = req.query.email;
    const [contacts, messages, suppression] = [
      await findContacts(req.db, userId, address),
      await heldMessages(req.db, userId, address),
      await findSuppression(req.db, userId, address),
    ];
    return { email: address, exportedAt: ctx.clock.now(), contacts: contacts.map(present), messages, suppression: suppression ?? null };
  });

  app.post('/api/v1/contacts/erase', { schema: { body: eraseBody, response: { 200: erasureReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const erased = await eraseAddress(req.db, userId, normalised(req.body.email), ctx.clock.now());
    for (const c of erased.completed) announce(req.events, c);
    return { email: req.body.email, erasedContacts: erased.contacts, erasedMessages: erased.messages, suppressed: true as const };
  });
}
