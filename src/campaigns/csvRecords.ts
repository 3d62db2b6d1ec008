import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { CsvError, parse } from 'csv-parse';
import { AppError, invalid } from '../errors.ts';
import { utf8Chunks, type Decoding } from './textDecoding.ts';

/** A CSV record longer than this is refused, so a file without line breaks cannot fill memory. */
const MAX_CSV_RECORD_BYTES = 1024 * 1024;
/** Columns a CSV file may have (named or not): a header of 100,000 columns is an attack, not a list. */
export const MAX_CSV_COLUMNS = 250;
/** The field delimiters a header row may use, in the order a tie is decided. */
const DELIMITERS = [',', ';', '\t', '|'] as const;
/** How much of the header row is named back in an error. */
const MAX_ECHOED_HEADER = 300;

/**
 * Header names users write for the same column, compared without case, spaces, `-`, `_` and `.`
 * ("E-mail Address" → "emailaddress").
 */
const ALIASES: Record<string, string> = {
  email: 'email',
  emailaddress: 'email',
  emailaddr: 'email',
  name: 'name',
  fullname: 'name',
  displayname: 'name',
  contactname: 'name',
};

const headerKey = (h: string) => h.toLowerCase().replace(/[\s._-]+/g, '');

const missingEmailColumn = (header: string[]) => {
  const seen = header.filter((h) => h !== '');
  const listed = seen.length ? `its columns are: ${seen.map((h) => `"${h}"`).join(', ')}`.slice(0, MAX_ECHOED_HEADER) : 'it has no header row';
  return invalid('email', `the file needs an email column (named email, e-mail or email address, in any case); ${listed}`);
};

/**
 * Names the columns of a header row: the `known` names match case-insensitively and through their
 * aliases (`E-mail`, `Email Address`, `e_mail`, ...), any other column keeps its header as its name
 * (`keepOthers`) or is dropped. An `email` column is required.
 */
export function namedColumns(header: string[], known: readonly string[], keepOthers: boolean): (string | undefined)[] {
  if (header.length > MAX_CSV_COLUMNS) throw invalid('header', `${header.length} columns; a file may have at most ${MAX_CSV_COLUMNS}`);
  const columns = header.map((h) => {
    const lower = h.toLowerCase();
    if (known.includes(lower)) return lower;
    const alias = ALIASES[headerKey(h)];
    if (alias !== undefined && known.includes(alias)) return alias;
    return keepOthers && h !== '' ? h : undefined;
  });
  if (!columns.includes('email')) throw missingEmailColumn(header);
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

/** The delimiter a header row uses: the most frequent of `,` `;` tab `|` outside quotes (a comma when none). */
export function detectDelimiter(headerLine: string): string {
  const counts = new Map<string, number>();
  let quoted = false;
  for (const c of headerLine) {
    if (c === '"') quoted = !quoted;
    else if (!quoted && (DELIMITERS as readonly string[]).includes(c)) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  let best: string = DELIMITERS[0];
  for (const d of DELIMITERS) if ((counts.get(d) ?? 0) > (counts.get(best) ?? 0)) best = d;
  return best;
}

/**
 * Streams the data records of a CSV file with a header row, each as an object keyed by the names
 * `columns` gives the header's columns. The bytes are read as `decoding` says (textDecoding.ts) and
 * the delimiter is the header row's (detectDelimiter). Backpressure reaches the upload: the file is
 * read as fast as the records are consumed.
 */
export async function* csvRecords(
  input: Readable,
  columns: (header: string[]) => (string | undefined)[],
  decoding: Decoding = { charset: undefined, warnings: [] },
): AsyncGenerator<Record<string, string | undefined>> {
  let sawHeader = false;
  // The request is piped, not iterated: iterating would destroy it when the loop stops early, and
  // it must stay open for the answer (see finally). An aborted upload's error still reaches the loop.
  const through = new PassThrough();
  input.on('error', (err) => through.destroy(err));
  input.pipe(through);
  const text = utf8Chunks(through, decoding);
  const stop = new AbortController();
  let row = 0;
  let parser: ReturnType<typeof parse> | undefined;
  let pumped: Promise<void> | undefined;
  try {
    const head: Buffer[] = [];
    let headBytes = 0;
    let ended = false;
    while (!head.some((b) => b.includes(0x0a)) && headBytes <= MAX_CSV_RECORD_BYTES) {
      const next = await text.next();
      if (next.done) {
        ended = true;
        break;
      }
      head.push(next.value);
      headBytes += next.value.length;
    }
    const firstLine = Buffer.concat(head);
    const newline = firstLine.indexOf(0x0a);
    const p = parse({
      bom: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true,
      max_record_size: MAX_CSV_RECORD_BYTES,
      delimiter: detectDelimiter(firstLine.subarray(0, newline === -1 ? MAX_ECHOED_HEADER * 10 : newline).toString('utf8')),
      columns: (header: string[]) => {
        sawHeader = true;
        return columns(header);
      },
    });
    parser = p;
    const pump = async () => {
      if (!p.write(firstLine)) await once(p, 'drain', { signal: stop.signal });
      if (!ended) {
        for await (const chunk of text) {
          if (stop.signal.aborted) return;
          if (!p.write(chunk)) await once(p, 'drain', { signal: stop.signal });
        }
      }
      p.end();
    };
    pumped = pump().catch((err: unknown) => {
      if (!stop.signal.aborted) p.destroy(err as Error);
    });
    for await (const record of p as AsyncIterable<Record<string, string | undefined>>) {
      row++;
      yield record;
    }
  } catch (err) {
    if (err instanceof CsvError) {
      throw new AppError(400, 'malformed_csv', `the CSV is malformed after data row ${row} (earlier rows may already be imported; sending the fixed file again is safe): ${err.message}`);
    }
    throw err;
  } finally {
    stop.abort();
    parser?.destroy();
    if (pumped) await pumped;
    await text.return(undefined);
    // What was not read is read and dropped, so the answer goes out on a connection that stays
    // usable (the request's time limits still apply to the client sending it).
    input.unpipe(through);
    input.resume();
  }
  if (!sawHeader) throw missingEmailColumn([]);
}
