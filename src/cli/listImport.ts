import { createReadStream, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import cliProgress from 'cli-progress';
import type { ImportResult } from '../campaigns/contactImport.ts';
import { XLSX_CONTENT_TYPE } from '../campaigns/contactFileTypes.ts';
import type { ApiClient } from './client/http.ts';

/** How many invalid rows the human-readable summary shows (the server lists up to 1,000). */
const SHOWN_INVALID = 10;

const megabytes = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

/**
 * `lists import FILE.csv|FILE.xlsx`: streams the file to POST /api/v1/lists/:id/contacts, into the
 * given list or a new one named after the file, with a progress bar of the bytes the server has
 * taken (it reads as fast as it imports, so the bar follows the import, not just the upload). A
 * `.xlsx` file goes as a spreadsheet, any other as CSV in `charset` (the server guesses without).
 */
export async function importListFile(
  client: ApiClient,
  file: string,
  opts: { list?: number; name?: string; json?: boolean; progress: boolean; charset?: string; verify?: boolean },
): Promise<{ listId: number; result: ImportResult }> {
  const size = statSync(file).size;
  const extension = extname(file);
  const contentType = extension.toLowerCase() === '.xlsx' ? XLSX_CONTENT_TYPE : opts.charset ? `text/csv; charset=${opts.charset}` : 'text/csv';
  const listId =
    opts.list ?? (await client.request<{ id: number }>('POST', '/api/v1/lists', { name: opts.name ?? basename(file, extension) })).id;

  const bar = opts.progress
    ? new cliProgress.SingleBar(
        { format: 'Importing |{bar}| {percentage}% | {sent}/{size} MB | {duration_formatted}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(size, 0, { sent: megabytes(0), size: megabytes(size) });
  let sent = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      sent += chunk.length;
      bar?.update(sent, { sent: megabytes(sent) });
      done(null, chunk);
    },
  });
  try {
    const stream = Readable.toWeb(createReadStream(file).pipe(counter)) as ReadableStream<Uint8Array>;
    const result = await client.request<ImportResult>('POST', `/api/v1/lists/${listId}/contacts${opts.verify ? '?verify=true' : ''}`, stream, contentType);
    bar?.update(size, { sent: megabytes(size) });
    return { listId, result };
  } finally {
    bar?.stop();
  }
}

export function describeImport(listId: number, r: ImportResult): string {
  const lines = [`list ${listId}: ${r.added} added, ${r.updated} updated, ${r.duplicates} duplicates, ${r.invalidCount} invalid`];
  for (const row of r.invalid.slice(0, SHOWN_INVALID)) lines.push(`  row ${row.row}: ${row.reason}${row.email ? ` (${row.email})` : ''}`);
  if (r.invalidCount > SHOWN_INVALID) lines.push(`  … and ${r.invalidCount - SHOWN_INVALID} more invalid rows`);
  for (const warning of r.warnings ?? []) lines.push(`  warning: ${warning}`);
  return lines.join('\n') + '\n';
}
