import { Transform, type Readable } from 'node:stream';
import ExcelJS from 'exceljs';
import { AppError } from '../errors.ts';

/** The compressed file; a million contacts take about 30 MiB. */
const MAX_XLSX_BYTES = 200 * 1024 * 1024;
/**
 * The workbook's shared strings (every distinct text of every sheet) are held in memory while the
 * sheet is read, so their XML is capped, decompressed: a small zip cannot expand into gigabytes,
 * and the strings stay inside a server's 128 MB heap (bin/mailpilot.js): 300,000 rows of distinct
 * addresses and names are 21 MB of it and peaked at 96 MB of heap. Bigger lists go as CSV, which
 * streams without such a table.
 */
const MAX_SHARED_STRINGS_BYTES = 24 * 1024 * 1024;
/** The cell formats, read so that dates come out as dates rather than day numbers. */
const MAX_STYLES_BYTES = 16 * 1024 * 1024;
/** A cell's text past this is cut here; the contact's caps (contactData.ts) then refuse the row. */
const MAX_CELL_CHARS = 100_000;


const tooBig = (what: string, bytes: number) => new AppError(413, 'file_too_large', `the spreadsheet's ${what} is larger than ${bytes / 1024 / 1024} MiB; split it, or send it as CSV`);

/** Passes bytes through and fails once more than `max` went by. */
function byteCap(max: number, error: () => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      done(seen > max ? error() : null, chunk);
    },
  });
}

function capped(entry: Readable, max: number, what: string): Readable {
  const cap = byteCap(max, () => tooBig(what, max));
  entry.on('error', (err) => cap.destroy(err));
  return entry.pipe(cap);
}

interface ReaderInternals {
  _parseSharedStrings(entry: Readable): AsyncGenerator<unknown>;
  _parseStyles(entry: Readable): Promise<void>;
}
const parent = ExcelJS.stream.xlsx.WorkbookReader.prototype as unknown as ReaderInternals;

// exceljs 4.4.0's reader keeps the shared strings and the styles in memory, read by these two
// methods (the version is pinned in package.json for them): their decompressed size is capped.
class BoundedWorkbookReader extends ExcelJS.stream.xlsx.WorkbookReader {
  _parseSharedStrings(entry: Readable): AsyncGenerator<unknown> {
    return parent._parseSharedStrings.call(this, capped(entry, MAX_SHARED_STRINGS_BYTES, 'text (shared strings)'));
  }

  _parseStyles(entry: Readable): Promise<void> {
    return parent._parseStyles.call(this, capped(entry, MAX_STYLES_BYTES, 'cell formats (styles)'));
  }
}

/** A cell's value as the text a CSV cell would hold: numbers and booleans as written, dates as ISO 8601, formulas as their result. */
function cellText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value.slice(0, MAX_CELL_CHARS).trim();
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') {
    const v = value as { richText?: { text: string }[]; text?: unknown; result?: unknown; error?: unknown };
    if (Array.isArray(v.richText)) return cellText(v.richText.map((r) => r.text).join(''));
    if ('result' in v) return cellText(v.result);
    if ('text' in v) return cellText(v.text);
  }
  return undefined;
}

/**
 * Streams the data records of the first sheet of an .xlsx file (Office Open XML) whose first row is
 * its header, each as an object keyed by the names `columns` gives the header's cells, as
 * csvRecords does for CSV. Rows with no value are skipped. Memory: one row, plus the workbook's
 * shared strings (capped); a sheet stored before them waits in a temporary file.
 */
export async function* xlsxRecords(input: Readable, columns: (header: string[]) => (string | undefined)[]): AsyncGenerator<Record<string, string | undefined>> {
  const capped = byteCap(MAX_XLSX_BYTES, () => tooBig('file', MAX_XLSX_BYTES));
  input.on('error', (err) => capped.destroy(err));
  input.pipe(capped);
  const reader = new BoundedWorkbookReader(capped, { worksheets: 'emit', sharedStrings: 'cache', hyperlinks: 'ignore', styles: 'cache', entries: 'ignore' });
  let names: (string | undefined)[] | undefined;
  try {
    for await (const sheet of reader) {
      for await (const row of sheet) {
        // row.values is 1-based; a sheet has at most 16,384 columns. Cells past the header's are ignored, as in a CSV file.
        const values = row.values as unknown[];
        const cells: (string | undefined)[] = [];
        for (let i = 1; i < values.length; i++) cells.push(cellText(values[i]));
        if (!names) {
          names = columns(cells.map((c) => c ?? ''));
          continue;
        }
        if (cells.every((c) => c === undefined || c === '')) continue;
        const record: Record<string, string | undefined> = {};
        for (const [i, name] of names.entries()) if (name !== undefined) record[name] = cells[i];
        yield record;
      }
      break;
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError(400, 'malformed_xlsx', `the file is not a readable .xlsx workbook: ${(err as Error).message.slice(0, 200)}`);
  } finally {
    input.unpipe(capped);
    input.resume();
  }
  if (!names) columns([]);
}
