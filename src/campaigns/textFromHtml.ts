import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * The plain-text part of a campaign that has only HTML. Converting each recipient's HTML costs
 * ~250 µs, a large share of the per-message budget, so the conversion is done once, on the
 * template: its merge tags are swapped for inert words, the HTML is converted, the tags are put
 * back, and the result is a text template. (The caller falls back to converting each rendered
 * message when the result does not compile, e.g. a block tag that sat inside a dropped <style>.)
 */

const WRAP_COLUMNS = 78;

const LEAVE_CASE = [
  ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
  { selector: 'table', options: { uppercaseHeaderCells: false } },
  { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
];

let converter: ((html: string) => string) | undefined;

/**
 * Converts rendered HTML to text. html-to-text (with htmlparser2 and its other dependencies) is
 * loaded on the first campaign without a text part, not at start: a server whose campaigns all have
 * one never holds it.
 */
export function htmlToText(html: string): string {
  if (!converter) {
    const { compile } = createRequire(import.meta.url)('html-to-text') as typeof import('html-to-text');
    converter = compile({ wordwrap: WRAP_COLUMNS, selectors: LEAVE_CASE });
  }
  return converter(html);
}

// Comments, raw blocks, triple and double mustaches; a backslash-escaped mustache is text.
const MERGE_TAG = /(?<!\\)(?:\{\{!--[\s\S]*?--\}\}|\{\{\{\{[\s\S]*?\}\}\}\}|\{\{\{[\s\S]*?\}\}\}|\{\{[\s\S]*?\}\})/g;

/** A text template with the same merge tags as the HTML template it is derived from. */
export function textTemplateFromHtml(htmlTemplate: string): string {
  const tags: string[] = [];
  // Letters and digits only: the converter neither escapes, splits nor drops such a word (but may
  // upper-case it, hence the case-insensitive match below).
  const nonce = randomBytes(6).toString('hex');
  const inert = htmlTemplate.replace(MERGE_TAG, (tag) => `mp${nonce}t${tags.push(tag) - 1}e`);
  return (
    htmlToText(inert)
      // Braces that were text in the HTML (entities, escapes) stay text in the template.
      .replaceAll('{{', '\\{{')
      .replace(new RegExp(`mp${nonce}t(\\d+)e`, 'gi'), (_, i: string) => tags[Number(i)]!)
  );
}
