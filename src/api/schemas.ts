import { z } from 'zod';

/** Building blocks shared by the route schemas. */

const MAX_ID = 2 ** 31 - 1;

export const id = z.coerce.number().int().positive().max(MAX_ID);
export const idParams = z.object({ id }).strict();

// Values that end up in mail headers must not smuggle in new header lines.
export const headerSafe = (max: number) =>
  z.string().max(max).refine((s) => !/[\r\n\0]/.test(s), 'must not contain line breaks or NUL');

export const email = z.string().trim().max(254).pipe(z.email({ message: 'must be a valid email address' }));

export const pageQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    after: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict();

/** Every collection answers `{items, next}`: next is the id to pass as ?after=, or null. */
export function page<T extends { id: number }>(rows: T[], limit: number): { items: T[]; next: number | null } {
  const items = rows.slice(0, limit);
  return { items, next: rows.length > limit ? items.at(-1)!.id : null };
}
