import type { Verification } from '../contacts/verification.ts';
import type { Database, Queryable } from './database.ts';
import { countUserResource, lockUserResource } from './quotas.ts';

export interface ContactInput {
  /** Trimmed, domain lower-cased; unique (case-insensitively) within one call. */
  email: string;
  name: string | null;
  attributes: Record<string, string | number | boolean>;
}

/** A number that marks the rows one import writes (see contacts.import_id in 002_list_counts.sql). */
export async function newImportId(db: Queryable): Promise<number> {
  const [row] = await db.query<{ id: number }>(`SELECT nextval('contact_imports_seq') AS id`);
  return row!.id;
}

// COPY text format: a backslash, tab, newline or carriage return inside a value is escaped. Most
// values have none, and testing first is ten times cheaper than a replace that finds nothing.
const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_SPECIALS = /[\\\t\n\r]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const copyValue = (value: string | null) => {
  if (value === null) return '\\N';
  return COPY_SPECIAL.test(value) ? value.replace(COPY_SPECIALS, (c) => COPY_ESCAPES[c]!) : value;
};

/**
 * One contact as a line of the COPY data that mergeContacts loads, without a verification (the
 * contact keeps the one it has), or, from contactCopyHead, with one (JSON, contacts/verification.ts).
 */
export function contactCopyLine(c: ContactInput): string {
  return `${contactCopyHead(c)}\\N\n`;
}

/** A COPY line up to its verification: completed by verifiedCopyLine once the verification is known. */
export function contactCopyHead(c: ContactInput): string {
  return `${copyValue(c.email)}\t${copyValue(c.name)}\t${copyValue(JSON.stringify(c.attributes))}\t`;
}

export function verifiedCopyLine(head: string, verificationJson: string): string {
  return `${head}${copyValue(verificationJson)}\n`;
}

/** What one contact may hold in all (see campaigns/contactData.ts): checked again when attributes merge. */
export interface AttributeCaps {
  count: number;
  total: number;
}

export type MergeOutcome = { added: number; updated: number; overCaps: string[] } | 'no_list' | 'over_quota';

/** SQL: whether the attributes `expr` hold at most `count` names, and names and values of `total` characters. */
const fitsCaps = (expr: string, count: string, total: string) =>
  `(SELECT count(*) <= ${count} AND coalesce(sum(length(a.key) + length(a.value #>> '{}')), 0) <= ${total} FROM jsonb_each(${expr}) a)`;

/** Thrown inside the transaction to roll the chunk back when it would pass the user's contact quota. */
class OverQuota extends Error {}

/**
 * Adds contacts to one of the user's lists, or updates those already on it (a new name replaces the
 * old, attributes merge), in one transaction: the rows are bulk-loaded with COPY into a temporary
 * table, then merged with one set-based statement. `lines` come from contactCopyLine (or verifiedCopyLine), each address
 * once (case-insensitively), `rows` of them. A contact this same import already wrote is left alone
 * and counted in neither `added` nor `updated`: the caller counts it as a duplicate. A contact whose merged
 * attributes would pass `caps` is left as it was and its address returned in `overCaps`. Nothing is
 * written when the user would hold more than `maxContacts` contacts ('over_quota', counted under a
 * per-user lock, so concurrent imports cannot both pass it), nor when the list is gone ('no_list').
 */
export async function mergeContacts(
  db: Database,
  userId: number,
  listId: number,
  importId: number,
  lines: string,
  rows: number,
  now: Date,
  limits: { caps: AttributeCaps; maxContacts: number },
): Promise<MergeOutcome> {
  try {
    return await db.transaction(async (tx) => {
      // Held until commit: the list cannot be deleted while its contacts are written (contacts have
      // no foreign key to do it, see 005_content_at_scale.sql).
      const [list] = await tx.query('SELECT 1 FROM lists WHERE id = $1 AND user_id = $2 FOR KEY SHARE', [listId, userId]);
      if (!list) return 'no_list';
      await lockUserResource(tx, 'contacts', userId);
      await tx.query(`CREATE TEMPORARY TABLE contact_staging (email text, name text, attributes jsonb, verification jsonb) ON COMMIT DROP`);
      await tx.copyIn('contact_staging (email, name, attributes, verification)', lines);
      const [row] = await tx.query<{ added: number; updated: number }>(
        `WITH written AS (
           INSERT INTO contacts (user_id, list_id, email, name, attributes, created_at, import_id, verification)
           SELECT $1, $2, s.email, s.name, s.attributes, $3, $4, s.verification FROM contact_staging s
           ON CONFLICT (list_id, lower(email)) DO UPDATE
              SET name = coalesce(excluded.name, contacts.name),
                  attributes = contacts.attributes || excluded.attributes,
                  verification = coalesce(excluded.verification, contacts.verification),
                  import_id = excluded.import_id
            WHERE contacts.import_id IS DISTINCT FROM excluded.import_id
              AND ${fitsCaps('contacts.attributes || excluded.attributes', '$5', '$6')}
           -- xmax is 0 only on a row this statement inserted, not on one it updated.
           RETURNING xmax = 0 AS inserted
         )
         SELECT count(*) FILTER (WHERE inserted) AS added, count(*) FILTER (WHERE NOT inserted) AS updated FROM written`,
        [userId, listId, now, importId, limits.caps.count, limits.caps.total],
      );
      const { added, updated } = row!;
      if (added > 0 && (await countUserResource(tx, 'contacts', userId)) > limits.maxContacts) throw new OverQuota();
      // The rows neither added nor updated were written earlier in this import, or would pass the
      // caps merged (those still carry another import's id). Most chunks have neither.
      if (added + updated === rows) return { added, updated, overCaps: [] };
      const overCaps = await tx.query<{ email: string }>(
        `SELECT s.email FROM contact_staging s
           JOIN contacts c ON c.list_id = $1 AND lower(c.email) = lower(s.email)
          WHERE c.import_id IS DISTINCT FROM $2`,
        [listId, importId],
      );
      return { added, updated, overCaps: overCaps.map((r) => r.email) };
    });
  } catch (err) {
    if (err instanceof OverQuota) return 'over_quota';
    throw err;
  }
}

export interface ContactRow {
  email: string;
  name: string | null;
  attributes: Record<string, unknown>;
}

/**
 * A contact on one of the given lists of the user: the one with this address (case-insensitively),
 * or without an address the first contact of the first list that has one. The first list wins, as
 * when a campaign's queue is built.
 */
export async function findListContact(db: Queryable, userId: number, listIds: number[], email?: string): Promise<ContactRow | undefined> {
  for (const listId of listIds) {
    const [row] = await db.query<ContactRow>(
      `SELECT email, name, attributes FROM contacts
        WHERE list_id = $1 AND user_id = $2 AND ($3::text IS NULL OR lower(email) = lower($3))
        ORDER BY lower(email) LIMIT 1`,
      [listId, userId, email ?? null],
    );
    if (row) return row;
  }
  return undefined;
}

/** A contact as the API shows it: `suppressed` is the address's suppression state now. */
export interface Contact {
  id: number;
  listId: number;
  listName: string;
  email: string;
  name: string | null;
  attributes: Record<string, string | number | boolean>;
  /** The last verification (contacts/verification.ts), or null when never verified. */
  verification: Verification | null;
  suppressed: boolean;
  createdAt: Date;
}

const CONTACT_COLUMNS = `c.id, c.list_id AS "listId", l.name AS "listName", c.email, c.name, c.attributes, c.verification,
  EXISTS (SELECT 1 FROM suppressions s WHERE s.user_id = c.user_id AND lower(s.email) = lower(c.email)) AS suppressed,
  c.created_at AS "createdAt"`;

export async function getContact(db: Queryable, userId: number, listId: number, contactId: number): Promise<Contact | undefined> {
  const [row] = await db.query<Contact>(
    `SELECT ${CONTACT_COLUMNS} FROM contacts c JOIN lists l ON l.id = c.list_id
      WHERE c.id = $3 AND c.list_id = $2 AND c.user_id = $1 AND l.user_id = $1`,
    [userId, listId, contactId],
  );
  return row;
}

/**
 * The address on every list of the user, in list order. One index probe per list (the user has at
 * most MAILPILOT_MAX_LISTS_PER_USER), never a scan of their contacts.
 */
export async function findContacts(db: Queryable, userId: number, email: string): Promise<Contact[]> {
  return db.query<Contact>(
    `SELECT ${CONTACT_COLUMNS} FROM lists l JOIN contacts c ON c.list_id = l.id AND lower(c.email) = lower($2)
      WHERE l.user_id = $1 AND c.user_id = $1
      ORDER BY l.id`,
    [userId, email],
  );
}

/**
 * Changes one contact: a new address (its verification is then forgotten), name (null clears it)
 * or attributes (replacing them all). 'duplicate' when the list already has the new address.
 */
export async function updateContact(
  db: Queryable,
  userId: number,
  listId: number,
  contactId: number,
  changes: { email?: string; name?: string | null; attributes?: Record<string, string | number | boolean> },
): Promise<boolean | 'duplicate'> {
  try {
    const rows = await db.query(
      `UPDATE contacts SET email = coalesce($4, email),
                           verification = CASE WHEN $4::text IS NULL OR $4 = email THEN verification END,
                           name = CASE WHEN $5 THEN $6 ELSE name END,
                           attributes = coalesce($7::jsonb, attributes)
        WHERE id = $3 AND list_id = $2 AND user_id = $1 RETURNING id`,
      [
        userId,
        listId,
        contactId,
        changes.email ?? null,
        changes.name !== undefined,
        changes.name ?? null,
        changes.attributes === undefined ? null : JSON.stringify(changes.attributes),
      ],
    );
    return rows.length > 0;
  } catch (err) {
    if ((err as { code?: string }).code === '23505') return 'duplicate';
    throw err;
  }
}

export async function setVerification(db: Queryable, userId: number, contactId: number, verification: object): Promise<void> {
  await db.query('UPDATE contacts SET verification = $3 WHERE id = $2 AND user_id = $1', [userId, contactId, JSON.stringify(verification)]);
}

// Campaigns that have started and not finished: their queue was built and may still wait.
const WAITING_CAMPAIGNS = `SELECT id FROM campaigns WHERE user_id = $1 AND status IN ('running', 'paused', 'paused_limits')`;

/**
 * Deletes one contact. The messages still waiting for it in started campaigns keep a copy of its
 * name and attributes (messages.merge), so they go out as they would have.
 */
export async function deleteContact(db: Queryable, userId: number, listId: number, contactId: number): Promise<boolean> {
  await db.query(
    `UPDATE messages m SET merge = jsonb_build_object('name', c.name, 'attributes', c.attributes)
       FROM contacts c
      WHERE c.id = $3 AND c.list_id = $2 AND c.user_id = $1
        AND m.campaign_id IN (${WAITING_CAMPAIGNS} AND $2 = ANY(list_ids))
        AND m.status IN ('pending', 'sending') AND m.contact_id = c.id`,
    [userId, listId, contactId],
  );
  const rows = await db.query('DELETE FROM contacts WHERE id = $3 AND list_id = $2 AND user_id = $1 RETURNING id', [userId, listId, contactId]);
  return rows.length > 0;
}

/**
 * Deletes a list and its contacts, unless a campaign that has not started uses it (their ids are
 * returned: the campaign would start without it). Started campaigns keep their queue, and the
 * messages still waiting keep a copy of their contact's name and attributes.
 */
export async function deleteList(db: Queryable, userId: number, listId: number): Promise<'deleted' | 'absent' | { unstartedCampaigns: number[] }> {
  const [list] = await db.query('SELECT id FROM lists WHERE id = $2 AND user_id = $1 FOR UPDATE', [userId, listId]);
  if (!list) return 'absent';
  const unstarted = await db.query<{ id: number }>(
    `SELECT id FROM campaigns WHERE user_id = $1 AND $2 = ANY(list_ids) AND status IN ('draft', 'scheduled') ORDER BY id LIMIT 20`,
    [userId, listId],
  );
  if (unstarted.length) return { unstartedCampaigns: unstarted.map((c) => c.id) };
  await db.query(
    `UPDATE messages m SET merge = jsonb_build_object('name', c.name, 'attributes', c.attributes)
       FROM contacts c
      WHERE m.campaign_id IN (${WAITING_CAMPAIGNS} AND $2 = ANY(list_ids))
        AND m.status IN ('pending', 'sending') AND m.merge IS NULL
        AND c.id = m.contact_id AND c.list_id = $2`,
    [userId, listId],
  );
  // The trigger lists_delete_contacts (005_content_at_scale.sql) deletes its contacts.
  await db.query('DELETE FROM lists WHERE id = $2 AND user_id = $1', [userId, listId]);
  return 'deleted';
}

/** Up to `limit` contacts of one of the user's lists after id `after`, in id order (id and address only). */
export async function contactAddresses(db: Queryable, userId: number, listId: number, after: number, limit: number): Promise<{ id: number; email: string }[]> {
  return db.query<{ id: number; email: string }>(
    'SELECT id, email FROM contacts WHERE list_id = $2 AND user_id = $1 AND id > $3 ORDER BY id LIMIT $4',
    [userId, listId, after, limit],
  );
}

/** Keeps the verifications of many contacts of one list, in one statement. */
export async function setVerifications(db: Queryable, userId: number, listId: number, results: { id: number; verification: object }[]): Promise<void> {
  if (results.length === 0) return;
  await db.query(
    `UPDATE contacts c SET verification = v.verification
       FROM jsonb_to_recordset($3::jsonb) AS v(id integer, verification jsonb)
      WHERE c.id = v.id AND c.list_id = $2 AND c.user_id = $1`,
    [userId, listId, JSON.stringify(results)],
  );
}
