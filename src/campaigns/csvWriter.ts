/**
 * The one CSV writer of every export (RFC 4180 quoting, CRLF line ends). A value a spreadsheet
 * would run as a formula (starting with = + - @, a tab or a carriage return; OWASP "CSV
 * Injection") gets a leading apostrophe, which spreadsheets show as text. Addresses, names and SMTP
 * replies all come from people outside the user's control, so every field goes through the guard.
 */

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function csvField(value: unknown): string {
  let s = value === null || value === undefined ? '' : value instanceof Date ? value.toISOString() : String(value);
  if (FORMULA_START.test(s)) s = `'${s}`;
  return NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** One record: the fields, guarded and quoted, and CRLF. */
export const csvLine = (fields: readonly unknown[]): string => fields.map(csvField).join(',') + '\r\n';

/** A value as it was before csvField guarded it, so an exported file imports back unchanged. */
export const unguardCsvField = (value: string): string => (value.startsWith("'") && FORMULA_START.test(value.slice(1)) ? value.slice(1) : value);
