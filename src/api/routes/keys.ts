import { claimQuota } from '../../campaigns/quotas.ts';
import type { AppContext } from '../../context.ts';
import type { Queryable } from '../../db/database.ts';
import { insertApiKey, listApiKeys, revokeApiKey, type ApiKey } from '../../db/apiKeys.ts';
import { hashApiKey, newApiKey } from '../../secrets.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { conflict, notFound } from '../../errors.ts';
import { z } from 'zod';
import { id, idParams, noBody, noContent, page, pageQuery, pageOf, timestamp } from '../schemas.ts';

/** How much of a key is kept in clear, to tell keys apart in a listing. */
const KEY_PREFIX_CHARS = 8;

const keyReply = z.object({ id, prefix: z.string().describe(`the key's first ${KEY_PREFIX_CHARS} characters`), createdAt: timestamp, revokedAt: timestamp.nullable() });
const newKeyReply = keyReply.extend({ apiKey: z.string().describe('the key, shown this once') });

/** Makes a new key for a user: the key is in the reply only, the database keeps its SHA-256. */
export async function issueKey(db: Queryable, userId: number, now: Date): Promise<ApiKey & { apiKey: string }> {
  const apiKey = newApiKey();
  const stored = await insertApiKey(db, userId, hashApiKey(apiKey), apiKey.slice(0, KEY_PREFIX_CHARS), now);
  return { ...stored, apiKey };
}

/** A user's own API keys: more of them (one per script or machine), and revocation. */
export function keyRoutes(app: ZodApp, ctx: AppContext): void {
  app.post('/api/v1/me/keys', { schema: { body: noBody, response: { 201: newKeyReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    await claimQuota(req.db, 'apiKeys', userId, ctx.config.quotas.apiKeys);
    const key = await issueKey(req.db, userId, ctx.clock.now());
    return reply.status(201).send(key);
  });

  app.get('/api/v1/me/keys', { schema: { querystring: pageQuery, response: { 200: pageOf(keyReply) } } }, async (req) => {
    const rows = await listApiKeys(req.db, requireUser(req.caller), req.query.after ?? 0, req.query.limit + 1);
    return page(rows, req.query.limit);
  });

  app.delete('/api/v1/me/keys/:id', { schema: { params: idParams, response: { 204: noContent } } }, async (req, reply) => {
    const outcome = await revokeApiKey(req.db, requireUser(req.caller), req.params.id, ctx.clock.now());
    if (outcome === 'not_found') throw notFound('API key');
    if (outcome === 'last_key') throw conflict('last_key', 'this is the last live key of this user: create another one first');
    return reply.status(204).send();
  });
}
