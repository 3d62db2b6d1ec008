import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import { deleteRecipientThrottle, insertRecipientThrottle, listRecipientThrottles } from '../../db/recipientThrottles.ts';
import { conflict, notFound } from '../../errors.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { domainName, id, idParams, noContent, page, pageOf, pageQuery, timestamp } from '../schemas.ts';

const MAX_INT = 2 ** 31 - 1;

const createBody = z
  .object({
    domain: domainName,
    perMinute: z.number().int().min(1).max(MAX_INT).nullable().default(null),
    perHour: z.number().int().min(1).max(MAX_INT).nullable().default(null),
  })
  .strict()
  .refine((b) => b.perMinute !== null || b.perHour !== null, { message: 'give perMinute, perHour or both', path: ['perMinute'] });

const throttleReply = z.object({
  id,
  domain: z.string(),
  perMinute: z.number().int().nullable(),
  perHour: z.number().int().nullable(),
  createdAt: timestamp,
});

/**
 * Recipient-domain throttles (API.md): at most so many messages a minute (each UTC minute) or an hour
 * (any 60 minutes, counted to the minute) to recipients at a domain, over all of the user's accounts.
 * Messages that must wait stay pending while mail to other domains keeps flowing (engine/messageClaims.ts).
 */
export function recipientThrottleRoutes(app: ZodApp, ctx: AppContext): void {
  app.get('/api/v1/recipient-throttles', { schema: { querystring: pageQuery, response: { 200: pageOf(throttleReply) } } }, async (req) => {
    const rows = await listRecipientThrottles(req.db, requireUser(req.caller), req.query.after ?? 0, req.query.limit + 1);
    return page(rows, req.query.limit);
  });

  app.post('/api/v1/recipient-throttles', { schema: { body: createBody, response: { 201: throttleReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const throttle = await insertRecipientThrottle(req.db, userId, req.body, ctx.clock.now());
    if (!throttle) throw conflict('recipient_throttle_exists', `there is a throttle for ${req.body.domain} already: delete it first to set another`);
    return reply.status(201).send(throttle);
  });

  app.delete('/api/v1/recipient-throttles/:id', { schema: { params: idParams, response: { 204: noContent } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    if (!(await deleteRecipientThrottle(req.db, userId, req.params.id))) throw notFound('recipient throttle');
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(204).send();
  });
}
