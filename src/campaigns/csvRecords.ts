import { finished, type Readable } from 'node:stream';
import { CsvError, parse } from 'csv-parse';
import { AppError, invalid } from '../errors.ts';

/** A CSV record longer than this is refused, so a file without line breaks cannot fill memory. */
const MAX_CSV_RECORD_BYTES = 1024 * 1024;
/** Columns a CSV file may have (named or not): a header of 100,000 columns is an attack, not a list. */
export const MAX_CSV_COLUMNS = 250;

const missingEmailColumn = () => invalid('email', 'the CSV needs an email column');

/**
 * Names the columns of a header row: the `known` names match case-insensitively, any other column
 * keeps its header as its name (`keepOthers`) or is dropped. An `email` column is required.
 */
export function namedColumns(header: string[], known: readonly string[], keepOthers: boolean): (string | undefined)[] {
  if (header.length > MAX_CSV_COLUMNS) throw invalid('header', `${header.length} columns; a CSV file may have at most ${MAX_CSV_COLUMNS}`);
  const columns = header.map((h) => {
    const lower = h.toLowerCase();
    if (known.includes(lower)) return lower;
    return keepOthers && h !== '' ? h : undefined;
  });
  if (!columns.includes('email')) throw missingEmailColumn();
  const seen = new Set<string>();
  for (const c of columns) {
    if (c === undefined) continue;
    // As an object key it would set the record's prototype, not hold a value.
    if (c === '__proto__') throw invalid('header', 'a column cannot be named "__proto__"');
    if (seen.has(c)) throw invalid('header', `the column "${c}" appears more than once`);
    seen.add(c);
  }
  return columns;
}

/**
 * Streams the data records of a CSV file with a header row, each as an object keyed by the names
 * `columns` gives the header's columns.
 * Backpressure reaches the upload: the file is read as fast as the records are consumed.
 */
export async function* csvRecords(input: Readable, columns: (header: string[]) => (string | undefined)[]): AsyncGenerator<Record<string, string | undefined>> {
  let sawHeader = false;
  const parser = parse({
    bom: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count: true,
    max_record_size: MAX_CSV_RECORD_BYTES,
    columns: (header: string[]) => {
      sawHeader = true;
      return columns(header);
    },
  });
  // Not pipeline: it would destroy the request when the file is refused (a header with too many
  // columns), and the client would see a reset instead of the answer. An aborted upload's error
  // still reaches the parser, and so this loop.
  finished(input, (err) => err && parser.destroy(err));
  input.pipe(parser);
  let row = 0;
  try {
    for await (const record of parser as AsyncIterable<Record<string, string | undefined>>) {
      row++;
      yield record;
    }
  } catch (err) {
    if (err instanceof CsvError) {
      throw new AppError(400, 'malformed_csv', `the CSV is malformed after data row ${row} (earlier rows may already be imported; sending the fixed file again is safe): ${err.message}`);
    }
    throw err;
  } finally {
    // What the parser did not read is read and dropped, so the answer goes out on a connection
    // that stays usable (the request's time limits still apply to the client sending it).
    input.unpipe(parser);
    input.resume();
  }
  if (!sawHeader) throw missingEmailColumn();
}
