import type { Readable } from 'node:stream';
import { invalid, notFound } from '../errors.ts';
import { contactCopyHead, contactCopyLine, mergeContacts, newImportId, verifiedCopyLine, type ContactInput } from '../db/contacts.ts';
import type { Database } from '../db/database.ts';
import { csvRecords, namedColumns } from './csvRecords.ts';
import type { Decoding } from './textDecoding.ts';
import type { BatchVerifier } from '../contacts/verification.ts';
import { checkAttributes, displayNameProblem, MAX_ATTRIBUTES, MAX_ATTRIBUTES_TOTAL, MAX_CONTACT_NAME } from './contactData.ts';
import { checkEmail } from './emailAddress.ts';
import { quotaExceeded } from './quotas.ts';

/**
 * Contact import into a list, from a JSON array or a streamed CSV file. Rows are validated one by
 * one (a bad row is reported, not fatal) and written in chunks, each bulk-loaded and merged in one
 * transaction, so memory stays flat whatever the file size. Chunks commit as they go: an interrupted
 * import keeps what it wrote, and sending the file again is safe (addresses already on the list are
 * updated, not added twice).
 */

export interface InvalidRow {
  /** 1-based: the index in the JSON array + 1, or the CSV data record (the header row is not counted). */
  row: number;
  email: string | null;
  reason: string;
}

export interface ImportResult {
  added: number;
  updated: number;
  /** Rows repeating an address that appeared earlier in the same import. */
  duplicates: number;
  /** The first MAX_INVALID_LISTED invalid rows; invalidCount has them all. */
  invalid: InvalidRow[];
  invalidCount: number;
  /** What the reader had to guess, e.g. the encoding of a file that declared none. */
  warnings: string[];
}

/** A row as received, before validation. */
export interface RawContact {
  row: number;
  email: unknown;
  name?: unknown;
  attributes?: unknown;
  /** Why the row is unusable whatever its fields say (set by the reader). */
  problem?: string;
}

/** A chunk is written when it has this many rows or this many bytes, whichever comes first. */
const CHUNK_ROWS = 10_000;
const CHUNK_BYTES = 8 * 1024 * 1024;
export const MAX_INVALID_LISTED = 1000;
const OVER_CAPS_WHEN_MERGED = `attributes: with the attributes this contact already has, more than ${MAX_ATTRIBUTES} attributes or ${MAX_ATTRIBUTES_TOTAL} characters of names and values`;
/** How much of an invalid address is echoed back. */
const MAX_ECHOED_EMAIL = 320;

export async function importContacts(
  db: Database,
  userId: number,
  listId: number,
  source: Iterable<RawContact> | AsyncIterable<RawContact>,
  now: Date,
  maxContacts: number,
  opts: { warnings?: string[]; verifier?: BatchVerifier } = {},
): Promise<ImportResult> {
  const { warnings = [], verifier } = opts;
  const importId = await newImportId(db);
  // `warnings` is the reader's, filled as it reads.
  const result: ImportResult = { added: 0, updated: 0, duplicates: 0, invalid: [], invalidCount: 0, warnings };
  const invalidRow = (row: number, email: unknown, reason: string) => {
    result.invalidCount++;
    if (result.invalid.length < MAX_INVALID_LISTED) {
      result.invalid.push({ row, email: typeof email === 'string' ? email.slice(0, MAX_ECHOED_EMAIL) : null, reason });
    }
  };
  const write = async (chunk: Chunk) => {
    if (verifier) {
      // The chunk's lookups started as its rows were read; they are waited for here, at most the verifier's bound.
      await verifier.settle(chunk.unverified.map((c) => c.email));
      chunk.lines = chunk.unverified.map((c) => verifiedCopyLine(c.head, verifier.verifiedJson(c.email, now)));
      chunk.unverified = [];
    }
    const written = await mergeContacts(db, userId, listId, importId, chunk.lines.join(''), chunk.rows.size, now, {
      caps: { count: MAX_ATTRIBUTES, total: MAX_ATTRIBUTES_TOTAL },
      maxContacts,
    });
    if (written === 'no_list') throw notFound('list');
    if (written === 'over_quota') throw quotaExceeded('contacts', maxContacts);
    const { added, updated, overCaps } = written;
    result.added += added;
    result.updated += updated;
    for (const email of overCaps) invalidRow(chunk.rows.get(email.toLowerCase())!, email, OVER_CAPS_WHEN_MERGED);
    // The rest were written earlier in this import, in an earlier chunk.
    result.duplicates += chunk.rows.size - added - updated - overCaps.length;
  };
  // One chunk is written while the next is read and checked, so parsing and the database work in
  // parallel; waiting for the previous write before starting another keeps memory to two chunks.
  let writing: Promise<void> = Promise.resolve();
  let chunk = newChunk();
  try {
    for await (const raw of source) {
      const checked = checkContact(raw);
      if (typeof checked === 'string') {
        invalidRow(raw.row, raw.email, checked);
        continue;
      }
      const key = checked.email.toLowerCase();
      if (chunk.rows.has(key)) {
        result.duplicates++;
        continue;
      }
      chunk.rows.set(key, raw.row);
      if (verifier) {
        verifier.prefetch(checked.email);
        const head = contactCopyHead(checked);
        chunk.unverified.push({ email: checked.email, head });
        chunk.bytes += head.length;
      } else {
        const line = contactCopyLine(checked);
        chunk.lines.push(line);
        chunk.bytes += line.length;
      }
      if (chunk.rows.size >= CHUNK_ROWS || chunk.bytes >= CHUNK_BYTES) {
        await writing;
        writing = write(chunk);
        chunk = newChunk();
      }
    }
  } catch (err) {
    // What was read before the error is written (see the module comment); the error is the answer.
    await writing.catch(() => undefined);
    throw err;
  }
  await writing;
  if (chunk.rows.size > 0) await write(chunk);
  return result;
}

/** Rows read and checked but not yet written; each address once (a statement may touch a contact once). */
interface Chunk {
  /** Lower-cased address → its row number. */
  rows: Map<string, number>;
  lines: string[];
  /** When verifying: the contacts' lines up to their verification, completed once their domains are looked up. */
  unverified: { email: string; head: string }[];
  bytes: number;
}

const newChunk = (): Chunk => ({ rows: new Map(), lines: [], unverified: [], bytes: 0 });

/** The rows of a JSON import body's `contacts` array. */
export function jsonContacts(contacts: unknown[]): RawContact[] {
  return contacts.map((c, i) => {
    const row = i + 1;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) return { row, email: undefined, problem: 'must be an object with an email' };
    const { email, name, attributes, ...rest } = c as Record<string, unknown>;
    const unknown = Object.keys(rest)[0];
    return { row, email, name, attributes, problem: unknown === undefined ? undefined : `unknown field "${unknown}"` };
  });
}

/**
 * Names the columns of a contact file's header row: `email` (required) and `name` columns are matched
 * case-insensitively and through their aliases, every other column becomes an attribute named by its header.
 */
export function contactColumns(header: string[]): (string | undefined)[] {
  const named = namedColumns(header, ['email', 'name'], true);
  const attributes = named.filter((c) => c !== undefined && c !== 'email' && c !== 'name').length;
  if (attributes > MAX_ATTRIBUTES) throw invalid('header', `${attributes} attribute columns; a contact holds at most ${MAX_ATTRIBUTES} attributes`);
  return named;
}

/** The rows of a file's records, keyed by contactColumns' names; every other column a string attribute. */
export async function* recordContacts(records: AsyncIterable<Record<string, string | undefined>>): AsyncGenerator<RawContact> {
  let row = 0;
  for await (const record of records) {
    row++;
    const { email, name, ...rest } = record;
    const attributes: Record<string, string> = {};
    for (const [key, value] of Object.entries(rest)) if (value !== undefined) attributes[key] = value;
    yield { row, email: email ?? '', name: name || undefined, attributes };
  }
}

/** Streams the rows of a CSV file with a header row (delimiter, encoding and headers: csvRecords.ts, textDecoding.ts). */
export function csvContacts(input: Readable, decoding: Decoding): AsyncGenerator<RawContact> {
  return recordContacts(csvRecords(input, contactColumns, decoding));
}

/** The contact to write, or why the row is invalid. */
function checkContact(raw: RawContact): ContactInput | string {
  if (raw.problem) return raw.problem;
  const address = checkEmail(raw.email);
  if ('problem' in address) return address.problem;
  const { email } = address;

  let name: string | null = null;
  if (raw.name !== undefined && raw.name !== null) {
    if (typeof raw.name !== 'string') return 'name: must be a string';
    const problem = displayNameProblem(raw.name);
    if (problem) return `name: ${problem}`;
    name = raw.name.trim() || null;
    if (name && name.length > MAX_CONTACT_NAME) return `name: longer than ${MAX_CONTACT_NAME} characters`;
  }

  const checked = checkAttributes(raw.attributes);
  if ('problem' in checked) return checked.problem;
  const { attributes } = checked;
  return { email, name, attributes };
}
