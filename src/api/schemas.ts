import { z } from 'zod';
import { checkAttributes, displayNameProblem, headerTextProblem, MAX_CONTACT_NAME } from '../campaigns/contactData.ts';

/** Building blocks shared by the route schemas. */

const MAX_ID = 2 ** 31 - 1;

/** An id inside a JSON body: a JSON number, never a string or a boolean coerced into one. */
export const id = z.number().int().positive().max(MAX_ID);

/** An id in a path or a query string, where everything arrives as text: digits only. */
export const idText = z
  .string()
  .regex(/^[0-9]{1,10}$/, 'must be a positive integer id')
  .transform(Number)
  .pipe(z.number().int().positive().max(MAX_ID, 'is not an id that exists'));

export const idParams = z.object({ id: idText }).strict();

export const noQuery = z.object({}).strict();

/** No body, or an empty JSON object: for actions that take nothing. */
export const noBody = z.object({}).strict().nullish();

/** A refinement from a function that says what is wrong (or undefined). */
const refusing = (problem: (s: string) => string | undefined) => (s: string, check: z.RefinementCtx) => {
  const message = problem(s);
  if (message) check.addIssue({ code: 'custom', message });
};

// Values that end up in mail headers must not smuggle in new header lines or control characters.
export const headerSafe = (max: number) => z.string().max(max).superRefine(refusing(headerTextProblem));

/** A name shown to people (a sender's, a contact's): no control or bidirectional override characters; may be empty. */
export const displayText = (max: number) => z.string().max(max).superRefine(refusing(displayNameProblem));

/** The name of a user, a list, a server, a campaign: displayText, trimmed, not empty. */
export const displayName = z.string().trim().min(1).max(200).superRefine(refusing(displayNameProblem));

export const contactName = displayText(MAX_CONTACT_NAME);

/** A contact's attributes, within the caps of campaigns/contactData.ts. */
export const contactAttributes = z
  .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
  .superRefine((attributes, check) => {
    const checked = checkAttributes(attributes);
    if (!('problem' in checked)) return;
    const path = checked.field === 'attributes' ? [] : [checked.field.slice('attributes.'.length)];
    check.addIssue({ code: 'custom', message: checked.message, path });
  });

/** IANA names only: Intl also takes UTC offsets, which PostgreSQL reads with the opposite sign. */
function isIanaTimeZone(name: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(name)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export const timezone = z.string().max(64).refine(isIanaTimeZone, 'must be an IANA time zone name such as Europe/Paris');

// One or more DNS labels (RFC 1035 letters, digits, hyphens).
const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** A mail domain such as example.com, compared in lower case. */
export const domainName = z.string().trim().toLowerCase().regex(DOMAIN, 'must be a domain name such as example.com');

export const email = z.string().trim().max(254).pipe(z.email({ message: 'must be a valid email address' }));

const cursor = z
  .string()
  .regex(/^[0-9]{1,16}$/, 'must be the `next` value of the previous page')
  .transform(Number)
  .pipe(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER));

export const pageQuery = z
  .object({
    limit: z
      .string()
      .regex(/^[0-9]{1,4}$/, 'must be an integer from 1 to 1000')
      .transform(Number)
      .pipe(z.number().int().min(1).max(1000))
      .default(100),
    after: cursor.optional(),
  })
  .strict();

/** Every collection answers `{items, next}`: next is the id to pass as ?after=, or null. */
export function page<T extends { id: number }>(rows: T[], limit: number): { items: T[]; next: number | null } {
  const items = rows.slice(0, limit);
  return { items, next: rows.length > limit ? items.at(-1)!.id : null };
}
