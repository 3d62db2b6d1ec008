import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import type { Queryable } from '../../db/database.ts';
import { readRateGuard, saveRateGuard, type RateGuardSettings } from '../../db/rateGuard.ts';
import { getUser, insertUser } from '../../db/users.ts';
import type { ZodApp } from '../app.ts';
import { requireAdmin, requireUser } from '../auth.ts';
import { notFound } from '../../errors.ts';
import { displayName, email, id } from '../schemas.ts';
import { issueKey } from './keys.ts';

const createUserBody = z.object({ name: displayName, email }).strict();

/** The most recent sends a threshold may look at: the rate guard reads at most this many usage rows per check. */
const MAX_LAST_SENDS = 10_000;

const rateThreshold = z
  .object({
    percent: z.number().gt(0).max(100),
    lastSends: z.number().int().min(1).max(MAX_LAST_SENDS),
    minSends: z.number().int().min(1).max(MAX_LAST_SENDS),
  })
  .strict()
  .refine((t) => t.minSends <= t.lastSends, { message: 'must not be more than lastSends', path: ['minSends'] });

/** The bounce and complaint rate guard (README "Bounce and complaint rate guard"): a field left out stays as it is, null turns it off. */
const patchMeBody = z
  .object({
    rateGuard: z.object({ hardBounces: rateThreshold.nullable(), complaints: rateThreshold.nullable() }).partial().strict(),
  })
  .strict();

const rateThresholdReply = z
  .object({ percent: z.number(), lastSends: z.number().int(), minSends: z.number().int() })
  .nullable()
  .describe("an account is paused past `percent` % of its last `lastSends` sends, once `minSends` are counted; null: off");
const userReply = z.object({ id, name: z.string(), email: z.string() });
const createdUserReply = userReply.extend({ apiKey: z.string().describe('the new user\'s first API key, shown this once') });
/** The caller: its rate guard thresholds (README "Bounce and complaint rate guard") besides who it is. */
const meReply = userReply.extend({ rateGuard: z.object({ hardBounces: rateThresholdReply, complaints: rateThresholdReply }) });

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

  /** The caller as the API shows it: `{id, name, email, rateGuard}`. */
  const me = async (db: Queryable, userId: number) => {
    const user = await getUser(db, userId);
    const rateGuard = await readRateGuard(db, userId);
    if (!user || !rateGuard) throw notFound('user');
    return { ...user, rateGuard };
  };

  app.get('/api/v1/me', { schema: { response: { 200: meReply } } }, async (req) => me(req.db, requireUser(req.caller)));

  app.patch('/api/v1/me', { schema: { body: patchMeBody, response: { 200: meReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const current = await readRateGuard(req.db, userId);
    if (!current) throw notFound('user');
    const next: RateGuardSettings = { ...current, ...req.body.rateGuard };
    await saveRateGuard(req.db, userId, next);
    return me(req.db, userId);
  });
}
