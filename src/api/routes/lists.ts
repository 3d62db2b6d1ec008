import { Readable } from 'node:stream';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { csvContacts, importContacts, jsonContacts, MAX_INVALID_LISTED } from '../../campaigns/contactImport.ts';
import { claimQuota } from '../../campaigns/quotas.ts';
import type { AppContext } from '../../context.ts';
import { getList, insertList, listLists } from '../../db/lists.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { AppError, invalid, notFound } from '../../errors.ts';
import { displayName, id, idParams, invalidRows, page, pageOf, pageQuery, timestamp } from '../schemas.ts';

const createListBody = z.object({ name: displayName }).strict();

// Each contact is checked on its own, so one bad row is reported in `invalid` instead of failing the import.
const jsonImportBody = z.object({ contacts: z.array(z.unknown()) }).strict();

const listReply = z.object({ id, name: z.string(), contactCount: z.number().int(), createdAt: timestamp });
const importReply = z.object({
  added: z.number().int(),
  updated: z.number().int(),
  duplicates: z.number().int().describe('rows repeating an address that appeared earlier in the same import'),
  invalid: invalidRows(MAX_INVALID_LISTED),
  invalidCount: z.number().int(),
});

export function listRoutes(app: ZodApp, ctx: AppContext): void {
  app.post('/api/v1/lists', { schema: { body: createListBody, response: { 201: listReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    await claimQuota(req.db, 'lists', userId, ctx.config.quotas.lists);
    const list = await insertList(req.db, userId, req.body.name, ctx.clock.now());
    return reply.status(201).send(list);
  });

  app.get('/api/v1/lists', { schema: { querystring: pageQuery, response: { 200: pageOf(listReply) } } }, async (req) => {
    const rows = await listLists(req.db, requireUser(req.caller), req.query.after ?? 0, req.query.limit + 1);
    return page(rows, req.query.limit);
  });

  app.get('/api/v1/lists/:id', { schema: { params: idParams, response: { 200: listReply } } }, async (req) => {
    const list = await getList(req.db, requireUser(req.caller), req.params.id);
    if (!list) throw notFound('list');
    return list;
  });

  // Scoped, so only the import route takes CSV, and takes it as the raw request stream: a file of a
  // million rows is parsed as it arrives instead of being buffered (and hitting the body limit).
  app.register(async (plugin) => {
    const scoped = plugin.withTypeProvider<ZodTypeProvider>();
    scoped.addContentTypeParser('text/csv', (_req, payload, done) => done(null, payload));

    scoped.post('/api/v1/lists/:id/contacts', { schema: { params: idParams, response: { 200: importReply } }, config: { dbScope: 'per-query', upload: 'stream' } }, async (req) => {
      const userId = requireUser(req.caller);
      const list = await getList(req.db, userId, req.params.id);
      if (!list) throw notFound('list');
      const now = ctx.clock.now();
      if (req.body instanceof Readable) return importContacts(req.db, userId, list.id, csvContacts(req.body), now, ctx.config.quotas.contacts);
      // Fastify reads text/plain as a string: most likely a CSV sent with the wrong type.
      if (typeof req.body === 'string') {
        throw new AppError(415, 'unsupported_media_type', 'send contacts as application/json or text/csv');
      }
      const body = jsonImportBody.safeParse(req.body);
      if (!body.success) {
        const issue = body.error.issues[0]!;
        throw invalid(issue.path.join('.') || 'body', issue.message);
      }
      return importContacts(req.db, userId, list.id, jsonContacts(body.data.contacts), now, ctx.config.quotas.contacts);
    });
  });
}
