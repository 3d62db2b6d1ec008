import type { Readable } from 'node:stream';
import { notFound } from '../errors.ts';
import { contactCopyLine, mergeContacts, newImportId, type ContactInput } from '../db/contacts.ts';
import type { Database } from '../db/database.ts';
import { csvRecords, namedColumns } from './csvRecords.ts';
import { checkEmail, HEADER_BREAKER } from './emailAddress.ts';

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
const MAX_INVALID_LISTED = 1000;
const MAX_NAME = 200;
const MAX_ATTRIBUTE_KEY = 200;
const MAX_ATTRIBUTE_VALUE = 10_000;
/** How much of an invalid address is echoed back. */
const MAX_ECHOED_EMAIL = 320;

export async function importContacts(
  db: Database,
  userId: number,
  listId: number,
  source: Iterable<RawContact> | AsyncIterable<RawContact>,
  now: Date,
): Promise<ImportResult> {
  const importId = await newImportId(db);
  const result: ImportResult = { added: 0, updated: 0, duplicates: 0, invalid: [], invalidCount: 0 };
  const write = async (chunk: Chunk) => {
    const written = await mergeContacts(db, userId, listId, importId, chunk.lines.join(''), now);
    if (!written) throw notFound('list');
    const { added, updated } = written;
    result.added += added;
    result.updated += updated;
    // The rest were written earlier in this import, in an earlier chunk.
    result.duplicates += chunk.keys.size - added - updated;
  };
  // One chunk is written while the next is read and checked, so parsing and the database work in
  // parallel; waiting for the previous write before starting another keeps memory to two chunks.
  let writing: Promise<void> = Promise.resolve();
  let chunk = newChunk();
  try {
    for await (const raw of source) {
      const checked = checkContact(raw);
      if (typeof checked === 'string') {
        result.invalidCount++;
        if (result.invalid.length < MAX_INVALID_LISTED) {
          result.invalid.push({ row: raw.row, email: typeof raw.email === 'string' ? raw.email.slice(0, MAX_ECHOED_EMAIL) : null, reason: checked });
        }
        continue;
      }
      const key = checked.email.toLowerCase();
      if (chunk.keys.has(key)) {
        result.duplicates++;
        continue;
      }
      const line = contactCopyLine(checked);
      chunk.keys.add(key);
      chunk.lines.push(line);
      chunk.bytes += line.length;
      if (chunk.keys.size >= CHUNK_ROWS || chunk.bytes >= CHUNK_BYTES) {
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
  if (chunk.keys.size > 0) await write(chunk);
  return result;
}

/** Rows read and checked but not yet written; each address once (a statement may touch a contact once). */
interface Chunk {
  keys: Set<string>;
  lines: string[];
  bytes: number;
}

const newChunk = (): Chunk => ({ keys: new Set(), lines: [], bytes: 0 });

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
 * Streams the rows of a CSV file with a header row: `email` (required) and `name` columns are matched
 * case-insensitively, every other column becomes a string attribute named by its header.
 */
export async function* csvContacts(input: Readable): AsyncGenerator<RawContact> {
  let row = 0;
  for await (const record of csvRecords(input, (header) => namedColumns(header, ['email', 'name'], true))) {
    row++;
    const { email, name, ...rest } = record;
    const attributes: Record<string, string> = {};
    for (const [key, value] of Object.entries(rest)) if (value !== undefined) attributes[key] = value;
    yield { row, email: email ?? '', name: name || undefined, attributes };
  }
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
    if (HEADER_BREAKER.test(raw.name)) return 'name: must not contain line breaks or NUL';
    name = raw.name.trim() || null;
    if (name && name.length > MAX_NAME) return `name: longer than ${MAX_NAME} characters`;
  }

  const attributes: ContactInput['attributes'] = {};
  if (raw.attributes !== undefined && raw.attributes !== null) {
    if (typeof raw.attributes !== 'object' || Array.isArray(raw.attributes)) return 'attributes: must be an object';
    for (const [key, value] of Object.entries(raw.attributes)) {
      if (key === '' || key.length > MAX_ATTRIBUTE_KEY) return `attributes: names must be 1 to ${MAX_ATTRIBUTE_KEY} characters`;
      // PostgreSQL's jsonb cannot hold a NUL character.
      if (key.includes('\0')) return 'attributes: names must not contain NUL';
      if (typeof value === 'string') {
        if (value.length > MAX_ATTRIBUTE_VALUE) return `attributes.${key}: longer than ${MAX_ATTRIBUTE_VALUE} characters`;
        if (value.includes('\0')) return `attributes.${key}: must not contain NUL`;
      } else if (typeof value !== 'number' && typeof value !== 'boolean') {
        return `attributes.${key}: must be a string, number or boolean`;
      }
      attributes[key] = value;
    }
  }
  return { email, name, attributes };
}
