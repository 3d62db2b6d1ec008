import { QUOTA_VARIABLES, type Quotas } from '../config.ts';
import { countUserResource, lockUserResource, type CountedResource } from '../db/quotas.ts';
import type { Queryable } from '../db/database.ts';
import { AppError } from '../errors.ts';

const NAMES: Record<keyof Quotas, string> = {
  lists: 'lists',
  campaigns: 'campaigns',
  contacts: 'contacts',
  eventStreams: 'open event streams',
  apiKeys: 'live API keys',
};

/** `quota_exceeded`: the user holds the most the operator allows of something (409; 429 for event streams, which close again). */
export function quotaExceeded(what: keyof Quotas, max: number): AppError {
  const status = what === 'eventStreams' ? 429 : 409;
  return new AppError(
    status,
    'quota_exceeded',
    `${NAMES[what]}: this user may have at most ${max.toLocaleString('en')} (${QUOTA_VARIABLES[what].variable}, set by the operator)`,
  );
}

/**
 * Makes room for one more of `resource` inside the caller's transaction, or throws quota_exceeded:
 * the count is taken under a per-user lock held until that transaction ends, so concurrent
 * creations are counted one after another.
 */
export async function claimQuota(tx: Queryable, resource: Exclude<CountedResource, 'contacts'>, userId: number, max: number): Promise<void> {
  await lockUserResource(tx, resource, userId);
  if ((await countUserResource(tx, resource, userId)) >= max) throw quotaExceeded(resource, max);
}
