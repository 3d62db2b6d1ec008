import { z } from 'zod';
import { reconsiderPaused } from '../../campaigns/autoPause.ts';
import type { AppContext } from '../../context.ts';
import { deleteDomainCap, insertDomainCap, listDomainCaps } from '../../db/domainCaps.ts';
import { conflict, notFound } from '../../errors.ts';
import { LIMIT_WINDOW_KINDS } from '../../sendingPolicy/limitWindows.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { domainName, id, idParams, noContent, page, pageOf, pageQuery, timestamp } from '../schemas.ts';

const MAX_INT = 2 ** 31 - 1;

const createBody = z
  .object({
    domain: domainName,
    hourlyLimit: z.number().int().min(0).max(MAX_INT).default(0),
    dailyLimit: z.number().int().min(0).max(MAX_INT).default(0),
    limitWindow: z.enum(LIMIT_WINDOW_KINDS).default('rolling'),
  })
  .strict()
  .refine((b) => b.hourlyLimit > 0 || b.dailyLimit > 0, { message: 'give hourlyLimit, dailyLimit or both (more than 0)', path: ['dailyLimit'] });

const domainCapReply = z.object({
  id,
  domain: z.string(),
  hourlyLimit: z.number().int().describe('0 = no hourly cap'),
  dailyLimit: z.number().int().describe('0 = no daily cap'),
  limitWindow: z.enum(LIMIT_WINDOW_KINDS),
  createdAt: timestamp,
});

/**
 * Domain caps (API.md): one limit over all of the user's accounts whose address is at a domain,
 * counted in the same serialised reservation step as each account's own limits
 * (sendingPolicy/reservation.ts). Gmail treats a sending domain as a bulk sender for good once it
 * passes ~5,000 messages a day over all its mailboxes (SMTP-FACTS.md).
 */
export function domainCapRoutes(app: ZodApp, ctx: AppContext): void {
  app.get('/api/v1/domain-caps', { schema: { querystring: pageQuery, response: { 200: pageOf(domainCapReply) } } }, async (req) => {
    const rows = await listDomainCaps(req.db, requireUser(req.caller), req.query.after ?? 0, req.query.limit + 1);
    return page(rows, req.query.limit);
  });

  app.post('/api/v1/domain-caps', { schema: { body: createBody, response: { 201: domainCapReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const cap = await insertDomainCap(req.db, userId, req.body, ctx.clock.now());
    if (!cap) throw conflict('domain_cap_exists', `there is a cap for ${req.body.domain} already: delete it first to set another`);
    await reconsiderPaused({ ...ctx, db: req.db, events: req.events }, userId);
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(201).send(cap);
  });

  app.delete('/api/v1/domain-caps/:id', { schema: { params: idParams, response: { 204: noContent } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    if (!(await deleteDomainCap(req.db, userId, req.params.id))) throw notFound('domain cap');
    await reconsiderPaused({ ...ctx, db: req.db, events: req.events }, userId);
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(204).send();
  });
}
