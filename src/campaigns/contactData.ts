/**
 * What one contact may hold. Every cap bounds what a user's data can cost elsewhere: the size of
 * the contacts table, a template's `{{#each attributes}}`, a header with the contact's name.
 */

/** Attributes per contact, the length of a name and of a value, and of all names and values together. */
export const MAX_ATTRIBUTES = 200;
export const MAX_ATTRIBUTE_NAME = 200;
export const MAX_ATTRIBUTE_VALUE = 10_000;
export const MAX_ATTRIBUTES_TOTAL = 65_536;
export const MAX_CONTACT_NAME = 200;

export type AttributeValue = string | number | boolean;

// C0 and C1 control characters and DEL: invisible, and in headers a way to confuse mail software.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069): in a display name they make
// "Shop\u202Egnp.exe" read as "Shopexe.png", a classic spoofing trick.
const BIDI_CONTROL = /[\u202a-\u202e\u2066-\u2069]/;

/** Why a display name (a sender's or a contact's name) is refused, or undefined. */
export function displayNameProblem(name: string): string | undefined {
  if (CONTROL.test(name)) return 'must not contain control characters (line breaks, tabs, escape, ...)';
  if (BIDI_CONTROL.test(name)) return 'must not contain bidirectional override or isolate characters (U+202A–U+202E, U+2066–U+2069)';
  return undefined;
}

/** Why a text that goes into a mail header (a subject) is refused, or undefined. */
export function headerTextProblem(text: string): string | undefined {
  return CONTROL.test(text) ? 'must not contain control characters (line breaks, tabs, escape, ...)' : undefined;
}

/** Why a contact's attributes are refused: the field (`attributes` or `attributes.NAME`) and what is wrong. */
export interface AttributesProblem {
  field: string;
  message: string;
  /** `field: message`. */
  problem: string;
}

const refused = (field: string, message: string): AttributesProblem => ({ field, message, problem: `${field}: ${message}` });

/** A contact's attributes, checked against the caps: the attributes, or why they are refused. */
export function checkAttributes(raw: unknown): { attributes: Record<string, AttributeValue> } | AttributesProblem {
  const attributes: Record<string, AttributeValue> = {};
  if (raw === undefined || raw === null) return { attributes };
  if (typeof raw !== 'object' || Array.isArray(raw)) return refused('attributes', 'must be an object');
  const entries = Object.entries(raw);
  if (entries.length > MAX_ATTRIBUTES) return refused('attributes', `more than ${MAX_ATTRIBUTES} attributes`);
  let total = 0;
  for (const [key, value] of entries) {
    if (key === '' || key.length > MAX_ATTRIBUTE_NAME) return refused('attributes', `names must be 1 to ${MAX_ATTRIBUTE_NAME} characters`);
    // PostgreSQL's jsonb cannot hold a NUL character.
    if (key.includes('\0')) return refused('attributes', 'names must not contain NUL');
    if (typeof value === 'string') {
      if (value.length > MAX_ATTRIBUTE_VALUE) return refused(`attributes.${key}`, `longer than ${MAX_ATTRIBUTE_VALUE} characters`);
      if (value.includes('\0')) return refused(`attributes.${key}`, 'must not contain NUL');
    } else if (typeof value !== 'number' && typeof value !== 'boolean') {
      return refused(`attributes.${key}`, 'must be a string, number or boolean');
    }
    total += key.length + String(value).length;
    if (total > MAX_ATTRIBUTES_TOTAL) return refused('attributes', `names and values longer than ${MAX_ATTRIBUTES_TOTAL} characters in all`);
    attributes[key] = value;
  }
  return { attributes };
}
