import { Readable } from 'node:stream';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import contentType from 'content-type';
import { contactColumns, csvContacts, importContacts, jsonContacts, MAX_INVALID_LISTED, recordContacts } from '../../campaigns/contactImport.ts';
import { checkedCharset, type Decoding } from '../../campaigns/textDecoding.ts';
import { XLSX_CONTENT_TYPE } from '../../campaigns/contactFileTypes.ts';
import { claimQuota } from '../../campaigns/quotas.ts';
import type { AppContext } from '../../context.ts';
import { getList, insertList, listLists } from '../../db/lists.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { AppError, conflict, invalid, notFound } from '../../errors.ts';
import { displayName, id, idParams, invalidRows, noBody, noContent, page, pageOf, pageQuery, timestamp } from '../schemas.ts';
import { deleteList } from '../../db/contacts.ts';
import { LOOKUP_TIMEOUT_MS, type MailDomains } from '../../contacts/mailDomains.ts';
import { BatchVerifier } from '../../contacts/verification.ts';

const createListBody = z.object({ name: displayName }).strict();

// Each contact is checked on its own, so one bad row is reported in `invalid` instead of failing the import.
const jsonImportBody = z.object({ contacts: z.array(z.unknown()) }).strict();

function parsedContentType(header: string | undefined): contentType.ParsedMediaType {
  try {
    return contentType.parse(header ?? '');
  } catch {
    throw new AppError(415, 'unsupported_media_type', 'the Content-Type header is malformed; send e.g. text/csv; charset=utf-8');
  }
}

// `verify=true`: each contact gets a verification (contacts/verification.ts) as it is imported.
const importQuery = z.object({ verify: z.enum(['true', 'false']).default('false') }).strict();
/** The longest an import chunk waits for the DNS answers of its new domains; later answers still fill the cache. */
const IMPORT_DNS_WAIT_MS = LOOKUP_TIMEOUT_MS;

const listReply = z.object({ id, name: z.string(), contactCount: z.number().int(), createdAt: timestamp });
const importReply = z.object({
  added: z.number().int(),
  updated: z.number().int(),
  duplicates: z.number().int().describe('rows repeating an address that appeared earlier in the same import'),
  invalid: invalidRows(MAX_INVALID_LISTED),
  invalidCount: z.number().int(),
  warnings: z.array(z.string()).describe('what the reader had to guess, e.g. the encoding of a file that declared none'),
});

export function listRoutes(app: ZodApp, ctx: AppContext, mailDomains: MailDomains): void {
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

  app.delete('/api/v1/lists/:id', { schema: { params: idParams, body: noBody, response: { 204: noContent } } }, async (req, reply) => {
    const deleted = await deleteList(req.db, requireUser(req.caller), req.params.id);
    if (deleted === 'absent') throw notFound('list');
    if (deleted !== 'deleted') {
      const ids = deleted.unstartedCampaigns.join(', ');
      throw conflict('list_in_use', `campaigns ${ids} have not started and send to this list: change their listIds (PATCH /api/v1/campaigns/:id) or stop them (POST /api/v1/campaigns/:id/stop) first`);
    }
    return reply.status(204).send();
  });

  // Scoped, so only the import route takes files, and takes them as the raw request stream: a file
  // of a million rows is parsed as it arrives instead of being buffered (and hitting the body limit).
  app.register(async (plugin) => {
    const scoped = plugin.withTypeProvider<ZodTypeProvider>();
    scoped.addContentTypeParser(['text/csv', XLSX_CONTENT_TYPE], (_req, payload, done) => done(null, payload));

    scoped.post('/api/v1/lists/:id/contacts', { schema: { params: idParams, querystring: importQuery, response: { 200: importReply } }, config: { dbScope: 'per-query', upload: 'stream' } }, async (req) => {
      const userId = requireUser(req.caller);
      const list = await getList(req.db, userId, req.params.id);
      if (!list) throw notFound('list');
      const now = ctx.clock.now();
      const verifier = req.query.verify === 'true' ? new BatchVerifier(mailDomains, IMPORT_DNS_WAIT_MS) : undefined;
      if (req.body instanceof Readable) {
        const type = parsedContentType(req.headers['content-type']);
        if (type.type === XLSX_CONTENT_TYPE) {
          // Loaded on the first spreadsheet: exceljs and its zip and XML readers cost every process memory otherwise.
          const { xlsxRecords } = await import('../../campaigns/xlsxRecords.ts');
          return importContacts(req.db, userId, list.id, recordContacts(xlsxRecords(req.body, contactColumns)), now, ctx.config.quotas.contacts, { verifier });
        }
        const decoding: Decoding = { charset: checkedCharset(type.parameters.charset), warnings: [] };
        return importContacts(req.db, userId, list.id, csvContacts(req.body, decoding), now, ctx.config.quotas.contacts, { warnings: decoding.warnings, verifier });
      }
      // Fastify reads text/plain as a string: most likely a CSV sent with the wrong type.
      if (typeof req.body === 'string') {
        throw new AppError(415, 'unsupported_media_type', `send contacts as application/json, text/csv or ${XLSX_CONTENT_TYPE} (.xlsx)`);
      }
      const body = jsonImportBody.safeParse(req.body);
      if (!body.success) {
        const issue = body.error.issues[0]!;
        throw invalid(issue.path.join('.') || 'body', issue.message);
      }
      return importContacts(req.db, userId, list.id, jsonContacts(body.data.contacts), now, ctx.config.quotas.contacts, { verifier });
    });
  });
}
