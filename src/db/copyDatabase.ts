import pg from 'pg';
import type { Database, Queryable } from './database.ts';

/** Rows per COPY round trip: a chunk is held in memory as text, so a million-row table never is whole. */
const CHUNK_ROWS = 20_000;

interface TableShape {
  name: string;
  /** Columns to copy (generated ones are computed again by the target). */
  columns: string[];
  /** Primary key columns, the order chunks are read in. */
  key: string[];
}

/** Tables that carry data, parents before the tables whose foreign keys point at them. */
async function tablesInOrder(db: Queryable): Promise<TableShape[]> {
  const tables = await db.query<{ name: string; columns: string[]; key: string[] | null }>(
    `SELECT c.relname AS name,
            (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns,
            (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
              WHERE i.indrelid = c.oid AND i.indisprimary) AS key
       FROM pg_class c
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname <> 'schema_migrations'
      ORDER BY c.relname`,
  );
  const edges = await db.query<{ child: string; parent: string }>(
    `SELECT child.relname AS child, parent.relname AS parent
       FROM pg_constraint k JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid
      WHERE k.contype = 'f' AND k.connamespace = 'public'::regnamespace AND k.conrelid <> k.confrelid`,
  );
  const ordered: TableShape[] = [];
  const placed = new Set<string>();
  let left = tables.map((t) => ({ name: t.name, columns: t.columns, key: t.key ?? t.columns }));
  while (left.length > 0) {
    const ready = left.filter((t) => edges.every((e) => e.child !== t.name || placed.has(e.parent)));
    if (ready.length === 0) throw new Error(`foreign keys form a cycle among ${left.map((t) => t.name).join(', ')}`);
    for (const t of ready) {
      ordered.push(t);
      placed.add(t.name);
    }
    left = left.filter((t) => !placed.has(t.name));
  }
  return ordered;
}

const ident = (name: string) => pg.escapeIdentifier(name);

/**
 * Copies every row of `source` into `target`, which must have the same schema (both migrated by
 * this code) and no data: in one target transaction, table by table in foreign-key order, through
 * COPY in chunks of CHUNK_ROWS; user triggers (list counters) are off while rows go in, since the
 * counters come along as data. Then every sequence is set past the highest id copied. Returns the
 * rows copied per table. Throws, leaving the target as it was, when the target holds data.
 */
export async function copyDatabase(source: Database, target: Database): Promise<{ table: string; rows: number }[]> {
  const tables = await tablesInOrder(target);
  return target.transaction(async (out) => {
    for (const t of tables) {
      const [row] = await out.query<{ some: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${ident(t.name)}) AS some`);
      if (row!.some) throw new Error(`the target database already holds data (table ${t.name}): give an empty database`);
    }
    const copied: { table: string; rows: number }[] = [];
    await source.transaction(async (from) => {
      for (const t of tables) {
        const columns = t.columns.map(ident).join(', ');
        const order = t.key.map(ident).join(', ');
        await out.exec(`ALTER TABLE ${ident(t.name)} DISABLE TRIGGER USER`);
        let rows = 0;
        for (;;) {
          const text = await from.copyOut(`SELECT ${columns} FROM ${ident(t.name)} ORDER BY ${order} LIMIT ${CHUNK_ROWS} OFFSET ${rows}`);
          const n = text === '' ? 0 : text.split('\n').length - 1;
          if (n > 0) await out.copyIn(`${ident(t.name)} (${columns})`, text);
          rows += n;
          if (n < CHUNK_ROWS) break;
        }
        await out.exec(`ALTER TABLE ${ident(t.name)} ENABLE TRIGGER USER`);
        copied.push({ table: t.name, rows });
      }
    });
    const sequences = await out.query<{ seq: string; tbl: string; col: string }>(
      `SELECT s.relname AS seq, t.relname AS tbl, a.attname AS col
         FROM pg_depend d
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_class t ON t.oid = d.refobjid
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE d.deptype IN ('a', 'i') AND t.relnamespace = 'public'::regnamespace`,
    );
    for (const q of sequences) {
      await out.query(`SELECT setval($1::regclass, coalesce(max(${ident(q.col)}), 0) + 1, false) FROM ${ident(q.tbl)}`, [ident(q.seq)]);
    }
    return copied;
  });
}
