import { z } from 'zod';
import { checkAttributes, displayNameProblem, headerTextProblem, MAX_CONTACT_NAME } from '../campaigns/contactData.ts';
import { HEALTH_STATES } from '../states.ts';

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

/*
 * Reply schemas: they describe what the routes answer, for the OpenAPI document and the compiler
 * (the reply type of a route is their input type). Replies are serialised with JSON.stringify, never
 * parsed through them (see app.ts), so a field they miss is caught by test/api.replies.test.ts, not
 * dropped.
 */

/** A point in time: a Date in the route, an ISO 8601 string (UTC) in the reply. */
export const timestamp = z.date();

/** A collection page: `next` is the id to pass as ?after=, or null on the last page. */
export const pageOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), next: id.nullable() });

/** What every error answers (src/errors.ts AppError, and the validation errors of app.ts). */
export const errorReply = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .describe(
    "An error: 400 malformed, 401 no or bad key, 403 not allowed, 404 absent or another user's, 409 state conflict, 413 body too large, 415 wrong content type, 422 invalid field (the message starts with its name), 429 a quota, 5xx the server or an SMTP peer failed",
  );

/** The rows an import refused, and why (campaigns/contactImport.ts InvalidRow): the first `max` of them. */
export const invalidRows = (max: number) =>
  z
    .array(
      z.object({
        row: z.number().int().describe('1-based: the index in the JSON array + 1, or the CSV data record (the header not counted)'),
        email: z.string().nullable(),
        reason: z.string(),
      }),
    )
    .describe(`the first ${max} invalid rows; invalidCount counts them all`);

/** An account's health (db/accountHealth.ts HealthView): what it can do now, and what its server taught the engine. */
export const healthReply = z.object({
  state: z.enum(HEALTH_STATES),
  until: timestamp.optional().describe('a throttled or exhausted account sends again from then'),
  reason: z.string().optional(),
  maxConnections: z.number().int().optional().describe('the server accepts no more concurrent connections than this'),
  recovery: z
    .object({ until: timestamp, connections: z.literal(1), ratePerSecond: z.number().optional() })
    .optional()
    .describe('restarting gently after a throttle: one connection, at most ratePerSecond when given, until `until`'),
});

/** A 204: no body. */
export const noContent = z.undefined().describe('done; no body');
