import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../context.ts';
import { findUserIdByKeyHash } from '../db/apiKeys.ts';
import { hashApiKey, sameKey } from '../secrets.ts';
import { ApiError } from './errors.ts';

export type Caller = { kind: 'admin' } | { kind: 'user'; userId: number };

const unauthorized = () => new ApiError(401, 'unauthorized', 'send a valid API key as "Authorization: Bearer <key>"');

/** Resolves the Bearer key to the admin or a user. One hash and one indexed lookup, whatever the key. */
export async function authenticate(ctx: AppContext, req: FastifyRequest): Promise<Caller> {
  const header = req.headers.authorization;
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match?.[1]) throw unauthorized();
  const key = match[1];
  if (sameKey(key, ctx.secrets.adminKey)) return { kind: 'admin' };
  const userId = await findUserIdByKeyHash(ctx.db, hashApiKey(key));
  if (userId === undefined) throw unauthorized();
  return { kind: 'user', userId };
}

export function requireUser(caller: Caller): number {
  if (caller.kind !== 'user') throw new ApiError(403, 'user_key_required', 'this endpoint acts for a user: use that user\'s API key, not the admin key');
  return caller.userId;
}

export function requireAdmin(caller: Caller): void {
  if (caller.kind !== 'admin') throw new ApiError(403, 'admin_key_required', 'this endpoint needs the admin key');
}
