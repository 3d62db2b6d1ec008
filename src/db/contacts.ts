import type { Queryable } from './database.ts';

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

/**
 * Adds contacts to one of the user's lists in one statement, or updates those already on it (a new
 * name replaces the old, attributes merge). A contact this same import already wrote is left alone
 * and counted in neither `added` nor `updated`: the caller counts it as a duplicate.
 */
export async function upsertContacts(
  db: Queryable,
  userId: number,
  listId: number,
  importId: number,
  contacts: ContactInput[],
  now: Date,
): Promise<{ added: number; updated: number }> {
  if (contacts.length === 0) return { added: 0, updated: 0 };
  const rows = await db.query<{ inserted: boolean }>(
    `INSERT INTO contacts (user_id, list_id, email, name, attributes, created_at, import_id)
     SELECT $1, $2, c.email, c.name, c.attributes::jsonb, $6, $7
       FROM unnest($3::text[], $4::text[], $5::text[]) AS c(email, name, attributes)
      WHERE EXISTS (SELECT 1 FROM lists WHERE id = $2 AND user_id = $1)
     ON CONFLICT (list_id, lower(email)) DO UPDATE
        SET name = coalesce(excluded.name, contacts.name),
            attributes = contacts.attributes || excluded.attributes,
            import_id = excluded.import_id
      WHERE contacts.import_id IS DISTINCT FROM excluded.import_id
     -- xmax is 0 only on a row this statement inserted, not on one it updated.
     RETURNING (xmax = 0) AS inserted`,
    [
      userId,
      listId,
      contacts.map((c) => c.email),
      contacts.map((c) => c.name),
      contacts.map((c) => JSON.stringify(c.attributes)),
      now,
      importId,
    ],
  );
  const added = rows.filter((r) => r.inserted).length;
  return { added, updated: rows.length - added };
}
