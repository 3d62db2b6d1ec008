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

/** One contact as a line of the COPY data that mergeContacts loads. */
export function contactCopyLine(c: ContactInput): string {
  return `${copyValue(c.email)}\t${copyValue(c.name)}\t${copyValue(JSON.stringify(c.attributes))}\n`;
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
 * table, then merged with one set-based statement. `lines` come from contactCopyLine, each address
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
      await tx.query(`CREATE TEMPORARY TABLE contact_staging (email text, name text, attributes jsonb) ON COMMIT DROP`);
      await tx.copyIn('contact_staging (email, name, attributes)', lines);
      const [row] = await tx.query<{ added: number; updated: number }>(
        `WITH written AS (
           INSERT INTO contacts (user_id, list_id, email, name, attributes, created_at, import_id)
           SELECT $1, $2, s.email, s.name, s.attributes, $3, $4 FROM contact_staging s
           ON CONFLICT (list_id, lower(email)) DO UPDATE
              SET name = coalesce(excluded.name, contacts.name),
                  attributes = contacts.attributes || excluded.attributes,
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
