import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import { addSuppression, listSuppressions, removeSuppression } from '../../db/suppressions.ts';
import { SUPPRESSION_REASONS } from '../../states.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { invalid, notFound } from '../../errors.ts';
import { email, id, noContent, page, pageOf, pageQuery, timestamp } from '../schemas.ts';

const reason = z.enum(SUPPRESSION_REASONS);
const addBody = z.object({ email, reason: reason.default('manual') }).strict();
const listQuery = pageQuery.extend({ email: email.optional() }).strict();
// DELETE bodies are dropped by some clients and proxies, so the address may come as ?email= instead.
const removeBody = z.object({ email }).strict().nullish();
const removeQuery = z.object({ email: email.optional() }).strict();

/** A suppression list entry; also part of a data-protection export (contacts.ts). */
export const suppressionReply = z.object({ id, email: z.string(), reason, createdAt: timestamp });

/** A user's suppression list: addresses its campaigns skip, whoever added them. */
export function suppressionRoutes(app: ZodApp, ctx: AppContext): void {
  app.get('/api/v1/suppressions', { schema: { querystring: listQuery, response: { 200: pageOf(suppressionReply) } } }, async (req) => {
    const q = req.query;
    const rows = await listSuppressions(req.db, requireUser(req.caller), { after: q.after ?? 0, limit: q.limit + 1, email: q.email });
    return page(rows, q.limit);
  });

  app.post('/api/v1/suppressions', { schema: { body: addBody, response: { 200: suppressionReply.describe('already suppressed: the entry as it was'), 201: suppressionReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const { suppression, created } = await addSuppression(req.db, userId, req.body.email, req.body.reason, ctx.clock.now());
    return reply.status(created ? 201 : 200).send(suppression);
  });

  app.delete('/api/v1/suppressions', { schema: { body: removeBody, querystring: removeQuery, response: { 204: noContent } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const address = req.body?.email ?? req.query.email;
    if (address === undefined) throw invalid('email', 'give the address to lift, in the body or as ?email=');
    if (req.body?.email !== undefined && req.query.email !== undefined) throw invalid('email', 'give the address once, in the body or as ?email=');
    if (!(await removeSuppression(req.db, userId, address))) throw notFound('suppression');
    return reply.status(204).send();
  });
}
