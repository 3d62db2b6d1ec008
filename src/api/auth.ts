import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AppContext } from '../context.ts';
import { findKeyByHash } from '../db/apiKeys.ts';
import { hashApiKey, sameKey } from '../secrets.ts';
import { AppError } from '../errors.ts';

export type Caller = { kind: 'admin' } | { kind: 'user'; userId: number };

// One answer for every failure (no key, malformed header, unknown key, revoked key), so a reply
// tells nothing about why; and no failure costs more than one hash and one indexed lookup.
const unauthorized = () => new AppError(401, 'unauthorized', 'send a valid API key as "Authorization: Bearer <key>"');
const MAX_KEY_LENGTH = 256;

/**
 * Resolves the Bearer key to the admin or a user. Keys are stored as SHA-256 hashes: the database
 * finds the hash by index, and the hash found is compared again in constant time, so neither the
 * lookup nor the comparison leaks anything about a key through timing.
 */
export async function authenticate(ctx: AppContext, req: FastifyRequest): Promise<Caller> {
  const header = req.headers.authorization;
  const match = header ? /^Bearer +(\S+) *$/i.exec(header) : null;
  const key = match?.[1];
  if (!key || key.length > MAX_KEY_LENGTH) throw unauthorized();
  if (sameKey(key, ctx.secrets.adminKey)) return { kind: 'admin' };
  const hash = hashApiKey(key);
  const found = await findKeyByHash(ctx.db, hash);
  if (!found || !timingSafeEqual(Buffer.from(found.hash, 'hex'), Buffer.from(hash, 'hex'))) throw unauthorized();
  return { kind: 'user', userId: found.userId };
}

export function requireUser(caller: Caller): number {
  if (caller.kind !== 'user') throw new AppError(403, 'user_key_required', 'this endpoint acts for a user: use that user\'s API key, not the admin key');
  return caller.userId;
}

export function requireAdmin(caller: Caller): void {
  if (caller.kind !== 'admin') throw new AppError(403, 'admin_key_required', 'this endpoint needs the admin key');
}
