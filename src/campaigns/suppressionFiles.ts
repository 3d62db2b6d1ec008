import { Readable } from 'node:stream';
import type { Database } from '../db/database.ts';
import { insertSuppressions, pageSuppressions, type SuppressionRow } from '../db/suppressionFiles.ts';
import { SUPPRESSION_REASONS, type SuppressionReason } from '../states.ts';
import type { InvalidRow } from './contactImport.ts';
import { csvRecords, namedColumns } from './csvRecords.ts';
import { csvLine, unguardCsvField } from './csvWriter.ts';
import { checkEmail } from './emailAddress.ts';

/**
 * A user's suppression list as a CSV file, both ways: export streams it page by page, import
 * streams a file in (as exported, or any file with an email column) in chunks, so neither holds
 * the whole list in memory.
 */

const CSV_COLUMNS = ['email', 'reason', 'created_at'] as const;
const CHUNK_ROWS = 5000;
const EXPORT_PAGE = 5000;
export const MAX_INVALID_LISTED = 1000;
const MAX_ECHOED_EMAIL = 320;

export interface SuppressionImportResult {
  added: number;
  /** Rows whose address was already suppressed, including by an earlier row of the same file. */
  existing: number;
  invalid: InvalidRow[];
  invalidCount: number;
}

export function exportSuppressions(db: Database, userId: number): Readable {
  async function* lines(): AsyncGenerator<string> {
    yield csvLine(CSV_COLUMNS);
    for (let after = ''; ; ) {
      const rows = await pageSuppressions(db, userId, after, EXPORT_PAGE);
      if (rows.length > 0) yield rows.map((r) => csvLine([r.email, r.reason, r.createdAt])).join('');
      if (rows.length < EXPORT_PAGE) return;
      after = rows.at(-1)!.key;
    }
  }
  return Readable.from(lines());
}

/**
 * Imports a CSV with an `email` column and optional `reason` (default `defaultReason`) and
 * `created_at` (ISO 8601, default now) columns; other columns are ignored.
 */
export async function importSuppressions(
  db: Database,
  userId: number,
  input: Readable,
  defaultReason: SuppressionReason,
  now: Date,
): Promise<SuppressionImportResult> {
  const result: SuppressionImportResult = { added: 0, existing: 0, invalid: [], invalidCount: 0 };
  let chunk: SuppressionRow[] = [];
  const flush = async () => {
    const added = await insertSuppressions(db, userId, chunk);
    result.added += added;
    result.existing += chunk.length - added;
    chunk = [];
  };
  let row = 0;
  for await (const record of csvRecords(input, (header) => namedColumns(header, CSV_COLUMNS, false))) {
    row++;
    const checked = checkSuppression(record, defaultReason, now);
    if (typeof checked === 'string') {
      result.invalidCount++;
      if (result.invalid.length < MAX_INVALID_LISTED) result.invalid.push({ row, email: record.email?.slice(0, MAX_ECHOED_EMAIL) ?? null, reason: checked });
      continue;
    }
    chunk.push(checked);
    if (chunk.length >= CHUNK_ROWS) await flush();
  }
  await flush();
  return result;
}

function checkSuppression(record: Record<string, string | undefined>, defaultReason: SuppressionReason, now: Date): SuppressionRow | string {
  // An address the export guarded against spreadsheet formulas comes back as it was.
  const address = checkEmail(record.email === undefined ? undefined : unguardCsvField(record.email));
  if ('problem' in address) return address.problem;
  const reason = record.reason ? record.reason.toLowerCase() : defaultReason;
  if (!(SUPPRESSION_REASONS as readonly string[]).includes(reason)) return `reason: must be one of ${SUPPRESSION_REASONS.join(', ')}`;
  let createdAt = now;
  if (record.created_at) {
    createdAt = new Date(record.created_at);
    if (Number.isNaN(createdAt.getTime()) || createdAt > now) return 'created_at: must be a past ISO 8601 time';
  }
  return { email: address.email, reason: reason as SuppressionReason, createdAt };
}
