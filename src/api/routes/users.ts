import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import { insertApiKey } from '../../db/apiKeys.ts';
import { getUser, insertUser } from '../../db/users.ts';
import { hashApiKey, newApiKey } from '../../secrets.ts';
import type { ZodApp } from '../app.ts';
import { requireAdmin, requireUser } from '../auth.ts';
import { notFound } from '../errors.ts';
import { email } from '../schemas.ts';

const createUserBody = z.object({ name: z.string().trim().min(1).max(200), email }).strict();

export function userRoutes(app: ZodApp, ctx: AppContext): void {
  app.post('/api/v1/users', { schema: { body: createUserBody } }, async (req, reply) => {
    requireAdmin(req.caller);
    const now = ctx.clock.now();
    const apiKey = newApiKey();
    const user = await ctx.db.transaction(async (tx) => {
      const created = await insertUser(tx, req.body.name, req.body.email, now);
      await insertApiKey(tx, created.id, hashApiKey(apiKey), apiKey.slice(0, 8), now);
      return created;
    });
    return reply.status(201).send({ ...user, apiKey });
  });

  app.get('/api/v1/me', async (req) => {
    const user = await getUser(ctx.db, requireUser(req.caller));
    if (!user) throw notFound('user');
    return user;
  });
}
