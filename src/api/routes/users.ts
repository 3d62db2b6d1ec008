import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import { getUser, insertUser } from '../../db/users.ts';
import type { ZodApp } from '../app.ts';
import { requireAdmin, requireUser } from '../auth.ts';
import { notFound } from '../../errors.ts';
import { displayName, email, id } from '../schemas.ts';
import { issueKey } from './keys.ts';

const createUserBody = z.object({ name: displayName, email }).strict();

const userReply = z.object({ id, name: z.string(), email: z.string() });
const createdUserReply = userReply.extend({ apiKey: z.string().describe('the new user\'s first API key, shown this once') });

export function userRoutes(app: ZodApp, ctx: AppContext): void {
  app.post('/api/v1/users', { schema: { body: createUserBody, response: { 201: createdUserReply } } }, async (req, reply) => {
    requireAdmin(req.caller);
    const now = ctx.clock.now();
    const created = await req.db.transaction(async (tx) => {
      const user = await insertUser(tx, req.body.name, req.body.email, now);
      const { apiKey } = await issueKey(tx, user.id, now);
      return { ...user, apiKey };
    });
    return reply.status(201).send(created);
  });

  app.get('/api/v1/me', { schema: { response: { 200: userReply } } }, async (req) => {
    const user = await getUser(req.db, requireUser(req.caller));
    if (!user) throw notFound('user');
    return user;
  });
}
